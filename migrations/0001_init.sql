-- Users, and tasks hash-partitioned by owner.
-- The partition count comes from the setting task_api.task_partitions (the migrate command sets it
-- from TASK_PARTITIONS; 4 when unset). It only matters the first time this file runs.

CREATE TYPE user_role AS ENUM ('user', 'admin');
CREATE TYPE task_status AS ENUM ('todo', 'in_progress', 'done');
-- Declaration order is the sort order: low < medium < high < urgent.
CREATE TYPE task_priority AS ENUM ('low', 'medium', 'high', 'urgent');

CREATE TABLE users (
  id            uuid PRIMARY KEY,
  email         text NOT NULL,
  password_hash text NOT NULL,
  role          user_role NOT NULL DEFAULT 'user',
  name          text,
  created_at    timestamptz(3) NOT NULL,
  updated_at    timestamptz(3) NOT NULL,
  CONSTRAINT users_email_normalised CHECK (email = lower(btrim(email)))
);
CREATE UNIQUE INDEX users_email_key ON users (email);
-- Admins are few; this keeps "how many admins are left" cheap.
CREATE INDEX users_admins_idx ON users (id) WHERE role = 'admin';

CREATE TABLE tasks (
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  id           uuid NOT NULL,
  title        text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
  description  text CHECK (char_length(description) <= 10000),
  status       task_status NOT NULL DEFAULT 'todo',
  priority     task_priority NOT NULL DEFAULT 'medium',
  due_at       timestamptz(3),
  tags         text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
  created_at   timestamptz(3) NOT NULL,
  updated_at   timestamptz(3) NOT NULL,
  completed_at timestamptz(3),
  version      integer NOT NULL DEFAULT 1,
  search       tsvector GENERATED ALWAYS AS (
                 to_tsvector('english'::regconfig, title || ' ' || coalesce(description, ''))
               ) STORED,
  PRIMARY KEY (user_id, id)
) PARTITION BY HASH (user_id);

DO $$
DECLARE
  n int := coalesce(nullif(current_setting('task_api.task_partitions', true), ''), '4')::int;
BEGIN
  FOR r IN 0 .. n - 1 LOOP
    EXECUTE format('CREATE TABLE tasks_p%s PARTITION OF tasks FOR VALUES WITH (MODULUS %s, REMAINDER %s)', r, n, r);
  END LOOP;
END $$;

-- One index per list shape. Every one leads with user_id, so a user's list stays inside the
-- user's slice of one partition; descending sorts are backward scans of the same index.
CREATE INDEX tasks_user_created_idx  ON tasks (user_id, created_at, id);
CREATE INDEX tasks_user_updated_idx  ON tasks (user_id, updated_at, id);
CREATE INDEX tasks_user_due_idx      ON tasks (user_id, (coalesce(due_at, 'infinity'::timestamptz)), id);
CREATE INDEX tasks_user_priority_idx ON tasks (user_id, priority, created_at, id);
CREATE INDEX tasks_user_status_idx   ON tasks (user_id, status, created_at, id);
CREATE INDEX tasks_tags_idx          ON tasks USING gin (tags);
CREATE INDEX tasks_search_idx        ON tasks USING gin (search);
-- The admin's cross-user listing, newest first.
CREATE INDEX tasks_created_idx       ON tasks (created_at, id);
