-- 0001 down: removes everything 0001 created, logs included.
DROP FUNCTION IF EXISTS audit_logs_purge(timestamptz, integer);
DROP TABLE IF EXISTS audit_logs;
DROP FUNCTION IF EXISTS audit_logs_reject_change();
