-- The in-process event bus's retry schedule and dead letters (embedded mode, or PostgreSQL
-- without a broker). A handler that fails leaves a row here: the bus retries it with backoff
-- until it succeeds (the row is deleted) or fails EVENTS_DELIVERY_LIMIT times (dead_at is set:
-- a dead letter, listed and replayed by `task-api dead-letters`). With RabbitMQ, the broker's
-- queues play this part and the table stays empty.

CREATE TABLE event_retries (
  consumer         text NOT NULL,
  event_id         uuid NOT NULL,
  type             text NOT NULL,
  payload          jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
  -- Deliveries so far (the first one included).
  attempts         integer NOT NULL CHECK (attempts >= 1),
  -- When the next attempt is due; while one runs, the end of its lease.
  next_attempt_at  timestamptz(3) NOT NULL,
  last_error       text NOT NULL,
  reason           text NOT NULL DEFAULT 'failed' CHECK (reason IN ('failed', 'poison')),
  dead_at          timestamptz(3),
  created_at       timestamptz(3) NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);
-- What the retry loop claims: live rows by due time.
CREATE INDEX event_retries_due_idx ON event_retries (next_attempt_at) WHERE dead_at IS NULL;
-- What the operator lists: a consumer's dead letters, oldest first.
CREATE INDEX event_retries_dead_idx ON event_retries (consumer, dead_at) WHERE dead_at IS NOT NULL;
