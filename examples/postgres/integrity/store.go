package integrity

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/raystack/salt/audit"
)

// ErrNotSealed is returned when a log or a tree size asked for is not in
// the sealed tree (yet).
var ErrNotSealed = errors.New("integrity: not sealed")

// Querier is what reading the tree needs from a database handle: a
// read-only role will do. *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// DB is what the Sealer needs: a Querier that also begins transactions.
type DB interface {
	Querier
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// tables are the qualified names of the tables of one schema.
type tables struct {
	logs  string // audit_logs
	seals string // audit_seals
}

func newTables(schema string) tables {
	t := tables{logs: pgx.Identifier{"audit_logs"}.Sanitize(), seals: pgx.Identifier{"audit_seals"}.Sanitize()}
	if schema != "" {
		t.logs = pgx.Identifier{schema, "audit_logs"}.Sanitize()
		t.seals = pgx.Identifier{schema, "audit_seals"}.Sanitize()
	}
	return t
}

// key is the order in which logs are sealed: by the transaction that
// wrote them, then by ID, bytewise.
type key struct {
	xact int64
	id   string
}

func (k key) less(o key) bool {
	return k.xact < o.xact || k.xact == o.xact && k.id < o.id
}

// sealHead is the bookkeeping of a seal: the columns of its row in
// audit_seals other than its leaves, stored hashes and checkpoint. Seal
// seq appended leaves [treeSize-count, treeSize), whose stored hashes
// start at firstHash; last is the (xact_id, id) of the last log sealed so
// far; horizon and next are the xmin and xmax of the seal's snapshot; and
// complete says that every log below horizon is sealed.
type sealHead struct {
	seq, treeSize int64
	count         int
	firstHash     int64
	last          key
	horizon, next int64
	complete      bool
}

// SealDomain opens the encoding of a seal's bookkeeping that its
// checkpoint signs (see sealHead.digest), before the version byte.
const SealDomain = "salt-audit-seal\x00"

// digest returns the SHA-256 that the checkpoint of the seal carries on
// its "seal" line, so that the signature covers the seal's bookkeeping and
// its leaf records, not the tree alone: SealDomain, the version 1, seq,
// tree size, count, first hash, last xact (8 bytes each, big endian), the
// last ID (its length in 4 bytes, then its bytes), horizon and next xact
// (8 bytes each), complete (1 byte) and the SHA-256 of the leaves column.
func (h *sealHead) digest(leavesHash [sha256.Size]byte) tlog.Hash {
	b := make([]byte, 0, len(SealDomain)+1+6*8+4+len(h.last.id)+2*8+1+sha256.Size)
	b = append(b, SealDomain...)
	b = append(b, 1)
	for _, v := range []int64{h.seq, h.treeSize, int64(h.count), h.firstHash, h.last.xact} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	b = appendCanonicalString(b, h.last.id)
	b = binary.BigEndian.AppendUint64(b, uint64(h.horizon))
	b = binary.BigEndian.AppendUint64(b, uint64(h.next))
	if h.complete {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = append(b, leavesHash[:]...)
	return sha256.Sum256(b)
}

// firstLeaf returns the index of the first leaf the seal appended.
func (h *sealHead) firstLeaf() int64 { return h.treeSize - int64(h.count) }

// headColumns are the columns of a sealHead, in scanHead's order.
const headColumns = "seq, tree_size, count, first_hash, last_xact, last_id, horizon, next_xact, complete"

func (h *sealHead) dest() []any {
	return []any{&h.seq, &h.treeSize, &h.count, &h.firstHash, &h.last.xact, &h.last.id, &h.horizon, &h.next, &h.complete}
}

// Tree reads the sealed tree of one schema: its checkpoints, and proofs
// against them. It needs only SELECT on audit_logs and audit_seals. It is
// safe for concurrent use.
type Tree struct {
	db Querier
	t  tables
}

// NewTree returns a Tree over the tables Migrate created in schema ("" for
// the search_path's).
func NewTree(db Querier, schema string) *Tree {
	return &Tree{db: db, t: newTables(schema)}
}

// Latest returns the newest checkpoint, unverified: the caller checks it
// with OpenCheckpoint and its keys. It returns an error wrapping
// ErrNotSealed before the first seal.
func (t *Tree) Latest(ctx context.Context) (Checkpoint, error) {
	return t.checkpoint(ctx, "SELECT checkpoint FROM "+t.t.seals+" ORDER BY seq DESC LIMIT 1")
}

// CheckpointAt returns the newest checkpoint of the tree at size, as
// Latest does.
func (t *Tree) CheckpointAt(ctx context.Context, size int64) (Checkpoint, error) {
	return t.checkpoint(ctx, "SELECT checkpoint FROM "+t.t.seals+" WHERE tree_size = $1 ORDER BY seq DESC LIMIT 1", size)
}

func (t *Tree) checkpoint(ctx context.Context, sql string, args ...any) (Checkpoint, error) {
	var msg string
	if err := t.db.QueryRow(ctx, sql, args...).Scan(&msg); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return Checkpoint{}, fmt.Errorf("%w: no checkpoint", ErrNotSealed)
		}
		return Checkpoint{}, fmt.Errorf("integrity: reading a checkpoint: %w", err)
	}
	text, _, ok := cutNote(msg)
	if !ok {
		return Checkpoint{}, fmt.Errorf("%w checkpoint note", ErrMalformed)
	}
	c, err := ParseCheckpointText(text)
	if err != nil {
		return Checkpoint{}, err
	}
	c.Note = []byte(msg)
	return c, nil
}

// cutNote splits a signed note into its text and its signature lines.
func cutNote(msg string) (text, sigs string, ok bool) {
	i := strings.LastIndex(msg, "\n\n")
	if i < 0 {
		return "", "", false
	}
	return msg[:i+1], msg[i+2:], true
}

// HashReader returns a tlog.HashReader of the stored hashes, read from
// the seals with one query per call.
func (t *Tree) HashReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) { return t.readHashes(ctx, indexes) })
}

func (t *Tree) readHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	// The hashes column is stored uncompressed, so substring reads only
	// the chunks that hold the hash.
	rows, err := t.db.Query(ctx, `SELECT q.i, s.h FROM unnest($1::bigint[]) WITH ORDINALITY AS q(i, ord)
		LEFT JOIN LATERAL (
			SELECT substring(hashes FROM ((q.i - first_hash) * 32 + 1)::integer FOR 32) AS h
			FROM `+t.t.seals+` WHERE count > 0 AND first_hash <= q.i ORDER BY first_hash DESC LIMIT 1
		) s ON true ORDER BY q.ord`, indexes)
	if err != nil {
		return nil, fmt.Errorf("integrity: reading hashes: %w", err)
	}
	out := make([]tlog.Hash, 0, len(indexes))
	for rows.Next() {
		var i int64
		var h []byte
		if err := rows.Scan(&i, &h); err != nil {
			return nil, fmt.Errorf("integrity: reading hashes: %w", err)
		}
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("%w: stored hash %d is not in the tree", ErrNotSealed, i)
		}
		out = append(out, tlog.Hash(h))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("integrity: reading hashes: %w", err)
	}
	if len(out) != len(indexes) {
		return nil, fmt.Errorf("integrity: reading hashes: got %d, want %d", len(out), len(indexes))
	}
	return out, nil
}

// LeafIndex returns the leaf index of the log with ID id, and the log as
// stored. It returns an error wrapping audit.ErrNotFound for an unknown
// ID, and ErrNotSealed for a log not sealed yet. For a row that is not a
// valid log, sealed as its raw columns, the log holds what could be read.
func (t *Tree) LeafIndex(ctx context.Context, id string) (int64, audit.Log, error) {
	i, s, err := t.leafIndex(ctx, id)
	return i, s.log, err
}

func (t *Tree) leafIndex(ctx context.Context, id string) (int64, storedLog, error) {
	var s storedLog
	rows, err := t.db.Query(ctx, "SELECT "+logColumns+" FROM "+t.t.logs+" WHERE id = $1", id)
	if err != nil {
		return 0, s, fmt.Errorf("integrity: reading log %q: %w", id, err)
	}
	var sc rowScanner
	found := false
	for rows.Next() {
		if s, err = sc.scan(rows); err != nil {
			rows.Close()
			return 0, s, fmt.Errorf("integrity: reading log %q: %w", id, err)
		}
		found = true
	}
	if err := rows.Err(); err != nil {
		return 0, s, fmt.Errorf("integrity: reading log %q: %w", id, err)
	}
	if !found {
		return 0, s, fmt.Errorf("%w: log %q", audit.ErrNotFound, id)
	}
	// The first seal whose last key is at or after the log's key holds it.
	var size int64
	var count int
	var leaves []byte
	err = t.db.QueryRow(ctx, "SELECT tree_size, count, leaves FROM "+t.t.seals+
		" WHERE count > 0 AND (last_xact, last_id) >= ($1, $2) ORDER BY last_xact, last_id, seq LIMIT 1",
		s.xactID, s.log.ID).Scan(&size, &count, &leaves)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, s, fmt.Errorf("%w: log %q", ErrNotSealed, id)
	}
	if err != nil {
		return 0, s, fmt.Errorf("integrity: finding the seal of log %q: %w", id, err)
	}
	recs, err := parseLeaves(leaves, count)
	if err != nil {
		return 0, s, err
	}
	for i := range recs {
		if recs[i].id == id {
			return size - int64(count) + int64(i), s, nil
		}
	}
	return 0, s, fmt.Errorf("%w: log %q is not in the seal that should hold it", ErrNotSealed, id)
}

// InclusionProof returns the proof that the log with ID id is in the tree
// of the checkpoint of treeSize (the latest checkpoint if treeSize is 0),
// with that checkpoint and the log: everything InclusionProof.Verify needs,
// offline.
func (t *Tree) InclusionProof(ctx context.Context, id string, treeSize int64) (InclusionProof, error) {
	var cp Checkpoint
	var err error
	if treeSize == 0 {
		cp, err = t.Latest(ctx)
	} else {
		cp, err = t.CheckpointAt(ctx, treeSize)
	}
	if err != nil {
		return InclusionProof{}, err
	}
	index, row, err := t.leafIndex(ctx, id)
	if err != nil {
		return InclusionProof{}, err
	}
	if row.bad != nil {
		// Its leaf hashes its raw columns, which an InclusionProof does
		// not carry.
		return InclusionProof{}, fmt.Errorf("integrity: log %q, leaf %d, is not a valid log (%w): %w", id, index, row.bad.why, audit.ErrInvalidLog)
	}
	l := row.log
	if index >= cp.Size {
		return InclusionProof{}, fmt.Errorf("%w: log %q is leaf %d, after the tree of size %d", ErrNotSealed, id, index, cp.Size)
	}
	p, err := tlog.ProveRecord(cp.Size, index, t.HashReader(ctx))
	if err != nil {
		return InclusionProof{}, fmt.Errorf("integrity: proving log %q: %w", id, err)
	}
	return InclusionProof{Log: l, LeafIndex: index, TreeSize: cp.Size, Proof: p, Checkpoint: string(cp.Note)}, nil
}

// ConsistencyProof returns the proof that the tree of size oldSize is a
// prefix of the tree of size newSize: what tlog.CheckTree checks with the
// root hashes of both. oldSize must be at least 1: the empty tree is a
// prefix of every tree.
func (t *Tree) ConsistencyProof(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
	var size int64
	if err := t.db.QueryRow(ctx, "SELECT COALESCE(max(tree_size), 0) FROM "+t.t.seals).Scan(&size); err != nil {
		return nil, fmt.Errorf("integrity: reading the tree size: %w", err)
	}
	if newSize > size || oldSize < 1 || oldSize > newSize {
		return nil, fmt.Errorf("%w: sizes %d and %d, tree of %d", ErrNotSealed, oldSize, newSize, size)
	}
	p, err := tlog.ProveTree(newSize, oldSize, t.HashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("integrity: proving sizes %d and %d: %w", oldSize, newSize, err)
	}
	return p, nil
}
