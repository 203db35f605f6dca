-- 0002: the append-only guard of 0001 let any role that may DELETE from
-- audit_logs through: it trusted the salt_audit.purge setting, which any
-- session can set with set_config. Now a DELETE passes only with the
-- setting on AND run by the table's owner, which is what happens inside
-- audit_logs_purge (SECURITY DEFINER, owned by the role that ran Migrate,
-- as the table is). Another role cannot act as the owner without being a
-- member of it, and a member could drop the trigger anyway.
--
-- The function pins its search_path: it runs with the rights and the
-- search_path of whoever changes the table, and a schema of theirs placed
-- before pg_catalog could otherwise replace current_setting or
-- pg_get_userbyid with functions that say yes.
--
-- CREATE OR REPLACE: the trigger of 0001 keeps calling this function, and
-- databases migrated with 0001 alone get the stricter guard from here.
CREATE OR REPLACE FUNCTION audit_logs_reject_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('salt_audit.purge', true) = 'on'
       AND (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) = current_user
    THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit logs are append-only: % on %.% is not allowed',
            TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Old logs are removed by retention, with the audit_logs_purge function.';
END
$$;
