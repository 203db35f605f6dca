-- 0004 down: drops the tree, its checkpoints and the xact_id column.
DROP TABLE IF EXISTS audit_seals;
DROP FUNCTION IF EXISTS audit_seals_reject_change();
DROP INDEX IF EXISTS audit_logs_xact_idx;
ALTER TABLE IF EXISTS audit_logs DROP COLUMN IF EXISTS xact_id;
