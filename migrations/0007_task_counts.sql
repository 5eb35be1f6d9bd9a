-- How many tasks each user holds, kept by the statements that insert and delete tasks
-- (src/modules/tasks/repository.ts) in the same statement or transaction as the change, so it
-- is exact. The per-user cap (TASKS_PER_USER_MAX) is a condition of the create's own statement:
-- a create takes this row's lock for an instant instead of counting up to the cap's number of
-- index entries before every insert (a user near the cap made every create read 10,000 entries).
-- Bulk loads that write tasks directly (task-api seed) set the counts of the users they filled.
CREATE TABLE task_counts (
  user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  tasks   integer NOT NULL CHECK (tasks >= 0)
);

INSERT INTO task_counts (user_id, tasks)
SELECT user_id, count(*)::int FROM tasks GROUP BY user_id;
