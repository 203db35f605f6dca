-- 0001: the audit_logs table, its indexes, the append-only guard and the
-- retention function. Migrate runs this in one transaction with
-- search_path set to the target schema (then pg_temp), so names here are
-- unqualified.

-- One column per field that Filter matches exactly, so each is a plain
-- btree-comparable value; metadata is jsonb, matched with @> through a GIN
-- index. Identifiers and names compared for order or equality use the "C"
-- collation: bytewise, like Go string comparison, and cheaper than a
-- linguistic collation.
CREATE TABLE IF NOT EXISTS audit_logs (
    id          text COLLATE "C" NOT NULL,
    org_id      text COLLATE "C" NOT NULL DEFAULT '',
    source      text COLLATE "C" NOT NULL,
    action      text COLLATE "C" NOT NULL,
    actor_id    text COLLATE "C" NOT NULL DEFAULT '',
    actor_type  text COLLATE "C" NOT NULL,
    actor_name  text NOT NULL DEFAULT '',
    target_id   text COLLATE "C" NOT NULL DEFAULT '',
    target_type text COLLATE "C" NOT NULL DEFAULT '',
    target_name text NOT NULL DEFAULT '',
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    CONSTRAINT audit_logs_pkey PRIMARY KEY (id),
    CONSTRAINT audit_logs_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);

-- List of one org's logs, newest first, and keyset pages of it: an index
-- range scan that stops after Limit rows. Services without tenants store
-- org_id '' and list without an org: audit_logs_created_idx serves them,
-- and the retention function.
CREATE INDEX IF NOT EXISTS audit_logs_org_created_idx
    ON audit_logs (org_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS audit_logs_created_idx
    ON audit_logs (created_at DESC, id DESC);

-- Filter.Metadata is matched with metadata @> '{"k":"v"}'. jsonb_path_ops
-- indexes only what @> needs, in a smaller index than the default opclass.
CREATE INDEX IF NOT EXISTS audit_logs_metadata_idx
    ON audit_logs USING gin (metadata jsonb_path_ops);

-- Append-only: the database itself rejects UPDATE, DELETE and TRUNCATE,
-- whoever asks. The one exception is DELETE inside audit_logs_purge, which
-- sets salt_audit.purge for its own transaction.
CREATE OR REPLACE FUNCTION audit_logs_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('salt_audit.purge', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit logs are append-only: % on %.% is not allowed',
            TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Old logs are removed by retention, with the audit_logs_purge function.';
END
$$;

DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs;
CREATE TRIGGER audit_logs_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_reject_change();

-- audit_logs_purge deletes the logs created before cutoff, at most max_rows
-- of them (all when max_rows is NULL), oldest first, and returns how many
-- it deleted. It runs with its owner's rights, so a retention job can be
-- granted EXECUTE on it without being granted DELETE on the table.
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
REVOKE ALL ON FUNCTION audit_logs_purge(timestamptz, integer) FROM PUBLIC;
