-- Pruning of finished deliveries (the delivery worker, DELIVERY_RETENTION_DAYS): every few
-- minutes it deletes webhook deliveries and emails that succeeded or failed and were created
-- more than the retention ago, 1000 rows per statement. These indexes hold the finished rows
-- only, by age, so that each statement reads just the rows it deletes; without them every
-- statement, even one with nothing to delete, would scan the whole table. Pending rows are never
-- pruned and stay out of them (the worker's due indexes of 0003 cover those).
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (created_at) WHERE status IN ('succeeded', 'failed');
CREATE INDEX email_deliveries_finished_idx ON email_deliveries (created_at) WHERE status IN ('succeeded', 'failed');
