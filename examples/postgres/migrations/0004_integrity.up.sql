-- 0004: what the integrity sealer (package integrity) needs: the
-- transaction that wrote each log, and the append-only table that holds
-- the Merkle tree over the logs and its signed checkpoints.

-- xact_id is the 64-bit transaction id (xid8, as bigint) of the
-- transaction that inserted the row. The sealer seals only rows whose
-- transaction ended before the oldest one still running (the xmin of its
-- snapshot), in (xact_id, id) order, so a transaction that commits late is
-- sealed in a later batch and never skipped. The DEFAULT fills it on every
-- path that lists its columns (group commit's COPY, INSERT, CreateBatch),
-- so writers need no change. Adding a column without a default and then
-- setting one changes only the catalog: no rewrite of a large table, no
-- long lock. Rows written before this migration keep NULL and are sealed
-- first, in id order.
ALTER TABLE audit_logs ADD COLUMN IF NOT EXISTS xact_id bigint;
ALTER TABLE audit_logs ALTER COLUMN xact_id SET DEFAULT (pg_current_xact_id()::text::bigint);

-- The sealer reads the rows after the last one it sealed in (xact_id, id)
-- order, a range of this index that ends at the horizon: no sort, however
-- many rows a seal takes. Inserts land on its rightmost pages, as they do
-- on the primary key's with time-ordered IDs. (An index on xact_id alone
-- would be smaller, the rows of one group-commit batch sharing a key, but
-- leave the sealer to sort every batch by id; PostgreSQL 15 has no BRIN
-- operator class for xid8, and a BRIN on the bigint would leave it to sort
-- whole seals.)
CREATE INDEX IF NOT EXISTS audit_logs_xact_idx ON audit_logs (xact_id, id);

-- audit_seals: one row per seal, in order. Seal seq appended the leaves
-- [tree_size - count, tree_size): leaves holds a record per leaf (its log
-- ID, CreatedAt, field digests and flags, see package integrity), hashes
-- the stored hashes of golang.org/x/mod/sumdb/tlog that those leaves
-- added, in stored-hash order from first_hash on, and checkpoint the
-- signed note of the tree at tree_size. Every seal writes a checkpoint,
-- also when no log arrived. last_xact and last_id are the (xact_id, id) of
-- the last log sealed so far; horizon and next_xact are the xmin and xmax
-- of the seal's snapshot (every transaction below horizon had ended, none
-- from next_xact on had committed); complete says that every log below
-- horizon is sealed. The checkpoint signs these columns and the leaves
-- (its "seal" line), so the verifier and the next seal trust them only
-- as far as they match it.
CREATE TABLE IF NOT EXISTS audit_seals (
    seq        bigint PRIMARY KEY,
    tree_size  bigint NOT NULL,
    count      integer NOT NULL,
    first_hash bigint NOT NULL,
    last_xact  bigint NOT NULL,
    last_id    text COLLATE "C" NOT NULL,
    horizon    bigint NOT NULL,
    next_xact  bigint NOT NULL,
    complete   boolean NOT NULL,
    leaves     bytea NOT NULL,
    hashes     bytea NOT NULL,
    checkpoint text NOT NULL,
    sealed_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_seals_count CHECK (count >= 0 AND tree_size >= count)
);
-- Hashes are incompressible: skip the attempt.
ALTER TABLE audit_seals ALTER COLUMN hashes SET STORAGE EXTERNAL;
-- Proofs find the seal that holds a stored hash by first_hash, the one
-- that holds a log by its (xact_id, id), and a checkpoint by its size.
CREATE INDEX IF NOT EXISTS audit_seals_first_hash_idx ON audit_seals (first_hash) WHERE count > 0;
CREATE INDEX IF NOT EXISTS audit_seals_last_idx ON audit_seals (last_xact, last_id) WHERE count > 0;
CREATE INDEX IF NOT EXISTS audit_seals_tree_size_idx ON audit_seals (tree_size, seq);

-- The tree is append-only too, with no exception: a tree with a hole
-- would make every later checkpoint unverifiable.
CREATE OR REPLACE FUNCTION audit_seals_reject_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'the audit tree is append-only: % on %.% is not allowed',
            TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
DROP TRIGGER IF EXISTS audit_seals_append_only ON audit_seals;
CREATE TRIGGER audit_seals_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit_seals_reject_change();
