-- One webhook per url and user (POST/PATCH of a second one answers 409): two would deliver every
-- event to the same receiver twice, and the per-user cap (WEBHOOKS_PER_USER_MAX) is what bounds
-- how many a user may hold. The url is compared as stored.
--
-- On a database that already holds such duplicates this migration stops with PostgreSQL's
-- "could not create unique index ... Key (user_id, url)=(...) is duplicated." Nothing is
-- deleted for you: list them with
--   SELECT user_id, url, array_agg(id ORDER BY id) FROM webhooks GROUP BY 1, 2 HAVING count(*) > 1;
-- delete (or re-point) all but one of each, and run the migration again.
CREATE UNIQUE INDEX webhooks_user_url_key ON webhooks (user_id, url);
