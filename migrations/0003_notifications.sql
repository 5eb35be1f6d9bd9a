-- Notifications: the consumer side of task events (in-app notifications, webhooks, email).
-- Every row belongs to a user and goes with the account (ON DELETE CASCADE).

-- Which events a consumer has already applied: the idempotency record. A redelivered event
-- finds its row here and changes nothing.
CREATE TABLE processed_events (
  consumer     text NOT NULL,
  event_id     uuid NOT NULL,
  processed_at timestamptz(3) NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);

-- Channels a user wants; no row means the defaults (in-app on, email off, webhooks on).
CREATE TABLE notification_preferences (
  user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  in_app     boolean NOT NULL DEFAULT true,
  email      boolean NOT NULL DEFAULT false,
  webhooks   boolean NOT NULL DEFAULT true,
  updated_at timestamptz(3) NOT NULL DEFAULT now()
);

CREATE TABLE notifications (
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  id         uuid NOT NULL,
  event_id   uuid NOT NULL,
  task_id    uuid,
  type       text NOT NULL,
  title      text NOT NULL,
  body       text NOT NULL,
  created_at timestamptz(3) NOT NULL,
  read_at    timestamptz(3),
  PRIMARY KEY (user_id, id),
  UNIQUE (user_id, event_id)
);
-- The unread filter: a user's unread notifications, newest first.
CREATE INDEX notifications_user_unread_idx ON notifications (user_id, id) WHERE read_at IS NULL;

CREATE TABLE webhooks (
  id         uuid PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  url        text NOT NULL CHECK (char_length(url) <= 2048),
  events     text[] NOT NULL CHECK (cardinality(events) >= 1),
  secret     text NOT NULL,
  active     boolean NOT NULL DEFAULT true,
  created_at timestamptz(3) NOT NULL,
  updated_at timestamptz(3) NOT NULL
);
CREATE INDEX webhooks_user_idx ON webhooks (user_id, id);

-- One row per delivery attempt. A failed attempt that will be retried gets a new pending row
-- (attempt + 1); a manual redelivery also adds a row. The payload is the event as received.
CREATE TABLE webhook_deliveries (
  id              uuid PRIMARY KEY,
  webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  event_id        uuid NOT NULL,
  attempt         integer NOT NULL CHECK (attempt >= 1),
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  payload         jsonb NOT NULL,
  response_status integer,
  error           text,
  next_attempt_at timestamptz(3) NOT NULL,
  created_at      timestamptz(3) NOT NULL,
  delivered_at    timestamptz(3)
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
-- What the delivery worker claims: pending rows whose time has come.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- Email jobs, sent by the same worker with retries (one row per email, attempts counted).
CREATE TABLE email_deliveries (
  id              uuid PRIMARY KEY,
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  event_id        uuid NOT NULL,
  recipient       text NOT NULL,
  subject         text NOT NULL,
  body            text NOT NULL,
  attempts        integer NOT NULL DEFAULT 0,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  error           text,
  next_attempt_at timestamptz(3) NOT NULL,
  created_at      timestamptz(3) NOT NULL,
  sent_at         timestamptz(3),
  UNIQUE (user_id, event_id)
);
CREATE INDEX email_deliveries_due_idx ON email_deliveries (next_attempt_at) WHERE status = 'pending';
