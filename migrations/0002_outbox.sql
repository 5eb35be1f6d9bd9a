-- Transactional outbox: every task write inserts its event here in the same transaction; the
-- relay (src/modules/events/relay.ts) publishes pending rows and marks them published.
-- No foreign keys: an event outlives the task and the account it is about.

CREATE TABLE outbox (
  id            uuid PRIMARY KEY,
  aggregate     text NOT NULL,
  aggregate_id  uuid NOT NULL,
  user_id       uuid NOT NULL,
  type          text NOT NULL,
  payload       jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
  trace_context jsonb,
  created_at    timestamptz(3) NOT NULL DEFAULT now(),
  published_at  timestamptz(3),
  attempts      integer NOT NULL DEFAULT 0
);
-- What the relay claims, oldest first: only the pending rows are in this index.
CREATE INDEX outbox_pending_idx ON outbox (created_at, id) WHERE published_at IS NULL;
-- What pruning deletes: published rows older than the retention.
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
