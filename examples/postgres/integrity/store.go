package integrity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
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
	schema string
	logs   string // audit_logs
	seals  string // audit_seals
}

func newTables(schema string) tables {
	t := tables{schema: schema, logs: pgx.Identifier{"audit_logs"}.Sanitize(), seals: pgx.Identifier{"audit_seals"}.Sanitize()}
	if schema != "" {
		t.logs = pgx.Identifier{schema, "audit_logs"}.Sanitize()
		t.seals = pgx.Identifier{schema, "audit_seals"}.Sanitize()
	}
	return t
}

// logColumns are the columns a log is read with; xact_id comes last, 0
// for a row written before migration 4.
const logColumns = "id, org_id, source, action, actor_id, actor_type, actor_name, " +
	"target_id, target_type, target_name, metadata, created_at, COALESCE(xact_id, 0)"

// storedLog is a row of audit_logs.
type storedLog struct {
	log    audit.Log
	xactID int64
}

// scanLog reads a row selected with logColumns. Sealing and verifying
// read every log, so it reads the raw values: the ten strings share one
// allocation, and metadata is decoded as the Repository decodes it.
func scanLog(rows pgx.Rows) (storedLog, error) {
	var s storedLog
	vals := rows.RawValues()
	fds := rows.FieldDescriptions()
	if len(vals) != 13 {
		return s, fmt.Errorf("got %d columns, want 13", len(vals))
	}
	n := 0
	for _, v := range vals[:10] {
		n += len(v)
	}
	md := vals[10]
	if fds[10].Format == pgx.BinaryFormatCode { // jsonb: a version byte, then the text
		if len(md) == 0 || md[0] != 1 {
			return s, fmt.Errorf("unexpected jsonb encoding of metadata")
		}
		md = md[1:]
	}
	buf := make([]byte, 0, n+len(md))
	for _, v := range vals[:10] {
		buf = append(buf, v...)
	}
	buf = append(buf, md...)
	all := string(buf)
	var f [10]string
	off := 0
	for i, v := range vals[:10] {
		f[i] = all[off : off+len(v)]
		off += len(v)
	}
	l := &s.log
	*l = audit.Log{
		ID: f[0], OrgID: f[1], Source: f[2], Action: f[3],
		Actor:  audit.Actor{ID: f[4], Type: f[5], Name: f[6]},
		Target: audit.Target{ID: f[7], Type: f[8], Name: f[9]},
	}
	tm := rows.Conn().TypeMap()
	if err := tm.Scan(fds[11].DataTypeOID, fds[11].Format, vals[11], &l.CreatedAt); err != nil {
		return s, fmt.Errorf("created_at of log %q: %w", l.ID, err)
	}
	l.CreatedAt = l.CreatedAt.UTC()
	if err := tm.Scan(fds[12].DataTypeOID, fds[12].Format, vals[12], &s.xactID); err != nil {
		return s, fmt.Errorf("xact_id of log %q: %w", l.ID, err)
	}
	var err error
	if l.Metadata, err = postgres.DecodeMetadata(all[off:]); err != nil {
		return s, fmt.Errorf("metadata of log %q: %w", l.ID, err)
	}
	return s, nil
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

// seal is a row of audit_seals, as the verifier reads it.
type seal struct {
	seq, treeSize    int64
	count            int
	last             key
	horizon, next    int64
	complete         bool
	leaves, hashes   []byte
	checkpoint       []byte
	sealedAt         time.Time
	firstHash        int64
	firstLeafOfBatch int64
}

const sealColumns = "seq, tree_size, count, last_xact, last_id, horizon, next_xact, complete, leaves, hashes, checkpoint, sealed_at"

func scanSeal(row pgx.Row) (seal, error) {
	var s seal
	var cp string
	err := row.Scan(&s.seq, &s.treeSize, &s.count, &s.last.xact, &s.last.id, &s.horizon, &s.next, &s.complete,
		&s.leaves, &s.hashes, &cp, &s.sealedAt)
	s.checkpoint = []byte(cp)
	s.firstLeafOfBatch = s.treeSize - int64(s.count)
	s.firstHash = tlog.StoredHashIndex(0, s.firstLeafOfBatch)
	return s, err
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
	for i := len(msg) - 2; i >= 0; i-- {
		if msg[i] == '\n' && msg[i+1] == '\n' {
			return msg[:i+1], msg[i+2:], true
		}
	}
	return "", "", false
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
// ID, and ErrNotSealed for a log not sealed yet.
func (t *Tree) LeafIndex(ctx context.Context, id string) (int64, audit.Log, error) {
	rows, err := t.db.Query(ctx, "SELECT "+logColumns+" FROM "+t.t.logs+" WHERE id = $1", id)
	if err != nil {
		return 0, audit.Log{}, fmt.Errorf("integrity: reading log %q: %w", id, err)
	}
	var s storedLog
	found := false
	for rows.Next() {
		if s, err = scanLog(rows); err != nil {
			rows.Close()
			return 0, audit.Log{}, fmt.Errorf("integrity: reading log %q: %w", id, err)
		}
		found = true
	}
	if err := rows.Err(); err != nil {
		return 0, audit.Log{}, fmt.Errorf("integrity: reading log %q: %w", id, err)
	}
	if !found {
		return 0, audit.Log{}, fmt.Errorf("%w: log %q", audit.ErrNotFound, id)
	}
	// The first seal whose last key is at or after the log's key holds it.
	var size int64
	var count int
	var leaves []byte
	err = t.db.QueryRow(ctx, "SELECT tree_size, count, leaves FROM "+t.t.seals+
		" WHERE count > 0 AND (last_xact, last_id) >= ($1, $2) ORDER BY last_xact, last_id, seq LIMIT 1",
		s.xactID, s.log.ID).Scan(&size, &count, &leaves)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, s.log, fmt.Errorf("%w: log %q", ErrNotSealed, id)
	}
	if err != nil {
		return 0, s.log, fmt.Errorf("integrity: finding the seal of log %q: %w", id, err)
	}
	recs, err := parseLeaves(leaves, count)
	if err != nil {
		return 0, s.log, err
	}
	for i := range recs {
		if recs[i].id == id {
			return size - int64(count) + int64(i), s.log, nil
		}
	}
	return 0, s.log, fmt.Errorf("%w: log %q is not in the seal that should hold it", ErrNotSealed, id)
}

// InclusionProof returns the proof that the log with ID id is in the tree
// of the checkpoint of treeSize (the latest checkpoint if treeSize is 0),
// with that checkpoint and the log: everything VerifyInclusion needs,
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
	index, l, err := t.LeafIndex(ctx, id)
	if err != nil {
		return InclusionProof{}, err
	}
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
