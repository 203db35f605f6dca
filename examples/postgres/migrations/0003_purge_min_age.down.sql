-- 0003 down: the purge function of 0001, without a minimum age or a log
-- of itself, and no retention settings.
CREATE OR REPLACE FUNCTION audit_logs_purge(cutoff timestamptz, max_rows integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    deleted bigint;
BEGIN
    PERFORM set_config('salt_audit.purge', 'on', true);
    IF max_rows IS NULL THEN
        DELETE FROM audit_logs WHERE created_at < cutoff;
    ELSE
        DELETE FROM audit_logs WHERE id IN (
            SELECT id FROM audit_logs
            WHERE created_at < cutoff
            ORDER BY created_at, id
            LIMIT max_rows);
    END IF;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('salt_audit.purge', 'off', true);
    RETURN deleted;
END
$$;
DROP TABLE IF EXISTS audit_retention;
DROP FUNCTION IF EXISTS audit_retention_owner_only();
