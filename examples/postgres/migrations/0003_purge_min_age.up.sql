-- 0003: retention that cannot wipe the trail. Before, a role granted
-- EXECUTE on audit_logs_purge could delete logs written seconds before,
-- and nothing told that a purge had run.
--
-- audit_retention holds the minimum age of a log that a purge may delete,
-- 30 days unless the owner changes it:
--     UPDATE audit_retention SET min_age = interval '400 days';
-- The table is the owner's (the role that ran Migrate): no grant is made
-- on it, and a statement trigger refuses any change by another role, in
-- case a default privilege granted one.
CREATE TABLE audit_retention (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    min_age  interval NOT NULL CHECK (min_age >= interval '0')
);
INSERT INTO audit_retention (min_age) VALUES (interval '30 days');

CREATE FUNCTION audit_retention_owner_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) <> current_user THEN
        RAISE EXCEPTION 'only the owner of %.% may change the retention settings', TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_retention_owner_only
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit_retention
    FOR EACH STATEMENT EXECUTE FUNCTION audit_retention_owner_only();

-- audit_logs_purge refuses a cutoff later than now() minus the minimum
-- age (now() is the server's clock at the start of the transaction, which
-- the caller cannot move forward) with SQLSTATE SA001, a code of its own,
-- and one before the year 1, before any time a log may have, or NULL,
-- with 22023 (invalid_parameter_value). It runs in UTC, so that the
-- minimum age is that many 24-hour days whatever the caller's TimeZone
-- (in a zone with daylight saving time, now() - interval '30 days' is 30
-- days of that zone's calendar, an hour or more off). It writes, in the
-- transaction of its DELETE, an audit log of what it deleted: source
-- audit_logs_purge, action audit.logs.purged, actor type system, metadata
-- cutoff (RFC 3339, UTC, six fractional digits) and count (decimal). One
-- log per call, so one per chunk of Purge, even when it deletes nothing;
-- if the log is not stored (a trigger dropped it), the function fails
-- with SQLSTATE SA002, and its DELETE is rolled back with it. The log's
-- ID is a UUIDv7, as the Logger makes them: 48 bits of Unix milliseconds,
-- the version and variant bits, random bits. CREATE OR REPLACE keeps the
-- function's grants.
CREATE OR REPLACE FUNCTION audit_logs_purge(cutoff timestamptz, max_rows integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET TimeZone = 'UTC' AS $$
DECLARE
    deleted bigint;
    logged  bigint;
    keep    interval;
    at      timestamptz;
BEGIN
    SELECT r.min_age INTO STRICT keep FROM audit_retention r;
    IF cutoff IS NULL OR cutoff < '0001-01-01 00:00:00+00' THEN
        RAISE EXCEPTION 'no audit log is older than cutoff %', coalesce(cutoff::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cutoff > now() - keep THEN
        RAISE EXCEPTION 'audit logs younger than % are kept: cutoff % is after %', keep, cutoff, now() - keep
            USING ERRCODE = 'SA001',
                  HINT = 'The owner of audit_retention sets the minimum age.';
    END IF;
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
    at := clock_timestamp();
    INSERT INTO audit_logs (id, source, action, actor_type, metadata, created_at)
    VALUES (
        encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
            PLACING substring(int8send(floor(extract(epoch FROM at) * 1000)::bigint) FROM 3)
            FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid::text,
        'audit_logs_purge', 'audit.logs.purged', 'system',
        jsonb_build_object(
            'cutoff', to_char(cutoff AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            'count', deleted::text),
        at);
    GET DIAGNOSTICS logged = ROW_COUNT;
    IF logged <> 1 THEN
        RAISE EXCEPTION 'the log of this purge was not stored in audit_logs (a trigger dropped it?): nothing is deleted'
            USING ERRCODE = 'SA002';
    END IF;
    RETURN deleted;
END
$$;
