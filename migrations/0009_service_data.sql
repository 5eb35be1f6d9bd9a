-- Each service owns its data. The tasks and notifications modules no longer reference the users
-- table (in the split topology it lives in another database): what they need of an account is a
-- copy of their own, kept by the account events (user.created / user.updated / user.deleted,
-- from the users module's outbox), and an account's deletion reaches them as user.deleted, on
-- which each deletes what it holds of the account (src/modules/*/accounts.ts).
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_user_id_fkey;
ALTER TABLE task_counts DROP CONSTRAINT IF EXISTS task_counts_user_id_fkey;
ALTER TABLE notification_preferences DROP CONSTRAINT IF EXISTS notification_preferences_user_id_fkey;
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_user_id_fkey;
ALTER TABLE webhooks DROP CONSTRAINT IF EXISTS webhooks_user_id_fkey;
ALTER TABLE email_deliveries DROP CONSTRAINT IF EXISTS email_deliveries_user_id_fkey;

-- The tasks module's copy of the accounts: the owner the admin's list shows beside a task.
-- deleted_at marks an account whose deletion was applied (its tasks are gone; late events about
-- it change nothing). updated_at orders the changes (an older event never overwrites a newer one).
CREATE TABLE task_owners (
  user_id    uuid PRIMARY KEY,
  email      text NOT NULL,
  role       text NOT NULL CHECK (role IN ('user', 'admin')),
  updated_at timestamptz(3) NOT NULL,
  deleted_at timestamptz(3)
);

-- A closed account takes no more tasks: the create's own statement checks it on the count row it
-- locks anyway (src/modules/tasks/repository.ts), and the deletion takes that lock before it
-- deletes the tasks, so a create racing the deletion either lands before it (and is deleted with
-- the rest) or fails.
ALTER TABLE task_counts ADD COLUMN closed boolean NOT NULL DEFAULT false;

-- The notifications module's copy: where emails go. A row may exist before the account's
-- user.created arrives (a write of the user's own took its lock first): email is then null.
CREATE TABLE notification_recipients (
  user_id    uuid PRIMARY KEY,
  email      text,
  updated_at timestamptz(3),
  deleted_at timestamptz(3)
);

-- A database that held every module's tables (the monolith) fills the copies from the accounts
-- it has; a service's own database has no accounts and starts empty.
INSERT INTO task_owners (user_id, email, role, updated_at)
SELECT id, email, role::text, updated_at FROM users;
INSERT INTO notification_recipients (user_id, email, updated_at)
SELECT id, email, updated_at FROM users;
