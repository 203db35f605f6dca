package integrity

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Defaults of the Sealer's options.
const (
	DefaultInterval    = 10 * time.Second
	DefaultMaxLeaves   = 20000
	DefaultSinkTimeout = 10 * time.Second
)

// ErrBusy is returned by Seal when another sealer, of this process or
// another replica, holds the seal lock of the schema.
var ErrBusy = errors.New("integrity: another sealer is sealing")

// Sealer appends the committed logs of one schema to its Merkle tree and
// signs a checkpoint of the tree each time: Run does it every interval.
// Any number of replicas may run one; they take turns through a
// transaction-scoped advisory lock, and writers never wait for them.
//
// A Sealer is safe for concurrent use.
type Sealer struct {
	db          DB
	t           tables
	origin      string
	signers     []note.Signer
	interval    time.Duration
	maxLeaves   int
	sinks       []Sink
	sinkTimeout time.Duration
	onError     func(error)
	now         func() time.Time
	lockKey     int64

	// beforeCommit, when set by a test, runs in each seal's transaction
	// after the seal row is written and before COMMIT.
	beforeCommit func(ctx context.Context) error
}

// SealerOption configures a Sealer.
type SealerOption func(*Sealer)

// WithSchema sets the schema of the audit_logs and audit_seals tables, as
// given to postgres.Migrate. The default, "", is the search_path's.
func WithSchema(schema string) SealerOption { return func(s *Sealer) { s.t = newTables(schema) } }

// WithInterval sets how often Run seals and signs a checkpoint. Every
// interval brings a new checkpoint, also when no log arrived. The default
// is DefaultInterval.
func WithInterval(d time.Duration) SealerOption { return func(s *Sealer) { s.interval = d } }

// WithMaxLeaves bounds how many logs one seal appends, so that a seal's
// row and its transaction stay small; Run seals again at once while more
// are waiting. The default is DefaultMaxLeaves.
func WithMaxLeaves(n int) SealerOption { return func(s *Sealer) { s.maxLeaves = n } }

// WithSinks sets where Run hands each checkpoint after it is committed, so
// that copies live outside the database. A sink that fails is reported to
// the error handler; the checkpoint stays in the database, and the next
// one supersedes it.
func WithSinks(sinks ...Sink) SealerOption { return func(s *Sealer) { s.sinks = sinks } }

// WithSinkTimeout bounds each sink's Publish. The default is
// DefaultSinkTimeout.
func WithSinkTimeout(d time.Duration) SealerOption { return func(s *Sealer) { s.sinkTimeout = d } }

// WithErrorHandler sets what Run calls with the errors of seals and sinks
// that it goes on after. The default logs them with slog.
func WithErrorHandler(f func(error)) SealerOption { return func(s *Sealer) { s.onError = f } }

// WithClock sets the clock that dates checkpoints. The default is
// time.Now.
func WithClock(now func() time.Time) SealerOption { return func(s *Sealer) { s.now = now } }

// NewSealer returns a Sealer of the trail named origin (the first line of
// its checkpoints, e.g. "example.com/audit/frontier"), signing with
// signers. Several signers sign each checkpoint with each key, which is
// how a key is rotated: sign with the old and the new key until every
// verifier knows the new one. A signer's name should be the origin.
//
// The signing keys must not be kept in the database: whoever can change
// the database and knows a key can rewrite the trail and sign it again.
func NewSealer(db DB, origin string, signers []note.Signer, opts ...SealerOption) (*Sealer, error) {
	if db == nil {
		return nil, errors.New("integrity: NewSealer with a nil db")
	}
	if len(signers) == 0 {
		return nil, errors.New("integrity: NewSealer without a signer")
	}
	if _, err := ParseCheckpointText(Checkpoint{Origin: origin}.text()); err != nil || origin == "" {
		return nil, fmt.Errorf("integrity: origin %q is not one line of text", origin)
	}
	s := &Sealer{
		db: db, t: newTables(""), origin: origin, signers: signers,
		interval: DefaultInterval, maxLeaves: DefaultMaxLeaves, sinkTimeout: DefaultSinkTimeout,
		onError: func(err error) { slog.Error("audit sealer", "err", err) },
		now:     time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	if s.interval <= 0 || s.maxLeaves < 1 || s.maxLeaves > 1<<20 {
		return nil, fmt.Errorf("integrity: interval %v and max leaves %d: want both positive, at most 2^20 leaves", s.interval, s.maxLeaves)
	}
	h := fnv.New64a()
	h.Write([]byte("github.com/raystack/salt/audit seal\x00" + s.t.schema))
	s.lockKey = int64(h.Sum64())
	return s, nil
}

// Run seals every interval until ctx ends, and returns ctx's error. While
// a seal leaves logs waiting (more than WithMaxLeaves), it seals again at
// once. After each seal it hands the checkpoint to the sinks. Errors, and
// rounds skipped because another replica was sealing, do not stop it:
// errors go to the error handler, and a seal that failed left nothing
// behind, so the next one starts where the last committed seal ended.
func (s *Sealer) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		more := true
		for more {
			var cp Checkpoint
			var err error
			cp, more, err = s.seal(ctx)
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, ErrBusy):
			case err != nil:
				s.onError(err)
			default:
				s.publish(ctx, cp)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// publish hands cp to every sink.
func (s *Sealer) publish(ctx context.Context, cp Checkpoint) {
	for _, sink := range s.sinks {
		sctx, cancel := context.WithTimeout(ctx, s.sinkTimeout)
		err := sink.Publish(sctx, cp)
		cancel()
		if err != nil {
			s.onError(fmt.Errorf("integrity: publishing the checkpoint of size %d: %w", cp.Size, err))
		}
	}
}

// Seal appends the logs committed since the last seal, at most
// WithMaxLeaves of them, to the tree, and signs and stores a checkpoint
// of it, in one transaction; it returns that checkpoint. It does not call
// the sinks (Run does). It returns an error wrapping ErrBusy if another
// sealer holds the lock. If it fails, or its connection is lost, nothing
// of it is stored.
//
// A stored log that fails audit.Log.Validate has no canonical encoding
// and cannot be sealed; only a write that went around the Repository can
// store one. Sealing stops there, rather than skip it: Seal returns an
// error that names the log and wraps audit.ErrInvalidLog, until the log
// is removed.
func (s *Sealer) Seal(ctx context.Context) (Checkpoint, error) {
	cp, _, err := s.seal(ctx)
	return cp, err
}

// seal is Seal; more reports that logs are still waiting.
func (s *Sealer) seal(ctx context.Context) (cp Checkpoint, more bool, err error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return cp, false, fmt.Errorf("integrity: seal: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var locked bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", s.lockKey).Scan(&locked); err != nil {
		return cp, false, fmt.Errorf("integrity: seal: %w", err)
	}
	if !locked {
		return cp, false, ErrBusy
	}
	// The previous seal, under the lock: this one continues it.
	var seq, size int64
	last := key{}
	err = tx.QueryRow(ctx, "SELECT seq, tree_size, last_xact, last_id FROM "+s.t.seals+" ORDER BY seq DESC LIMIT 1").
		Scan(&seq, &size, &last.xact, &last.id)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return cp, false, fmt.Errorf("integrity: seal: reading the last seal: %w", err)
	}
	// Every transaction below horizon has ended: the rows they committed
	// are visible to the statements after this one (in read committed,
	// whose snapshots are later; in repeatable read, whose snapshot is
	// this one), and no row below it can appear later.
	var horizon, next int64
	if err := tx.QueryRow(ctx, "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint FROM pg_current_snapshot() s").
		Scan(&horizon, &next); err != nil {
		return cp, false, fmt.Errorf("integrity: seal: %w", err)
	}
	logs, err := s.pending(ctx, tx, last, horizon)
	if err != nil {
		return cp, false, err
	}
	complete := len(logs) < s.maxLeaves

	hashes, leaves, err := s.hashLogs(ctx, tx, size, logs)
	if err != nil {
		return cp, false, err
	}
	newSize := size + int64(len(logs))
	if len(logs) > 0 {
		last = key{logs[len(logs)-1].xactID, logs[len(logs)-1].log.ID}
	}
	firstHash := tlog.StoredHashIndex(0, size)
	reader := s.reader(ctx, tx, firstHash, hashes)
	root, err := tlog.TreeHash(newSize, reader)
	if err != nil {
		return cp, false, fmt.Errorf("integrity: seal: root of %d leaves: %w", newSize, err)
	}
	cp = Checkpoint{Origin: s.origin, Size: newSize, Hash: root, Time: s.now().UTC().Truncate(time.Second)}
	if cp, err = cp.sign(s.signers); err != nil {
		return cp, false, err
	}
	hashBytes := make([]byte, 0, len(hashes)*tlog.HashSize)
	for _, h := range hashes {
		hashBytes = append(hashBytes, h[:]...)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+s.t.seals+
		" (seq, tree_size, count, first_hash, last_xact, last_id, horizon, next_xact, complete, leaves, hashes, checkpoint)"+
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
		seq+1, newSize, len(logs), firstHash, last.xact, last.id, horizon, next, complete, leaves, hashBytes, string(cp.Note)); err != nil {
		return cp, false, fmt.Errorf("integrity: seal %d: %w", seq+1, err)
	}
	if s.beforeCommit != nil {
		if err := s.beforeCommit(ctx); err != nil {
			return cp, false, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return cp, false, fmt.Errorf("integrity: seal %d: %w", seq+1, err)
	}
	return cp, !complete, nil
}

// pending returns the logs to seal next, in order: those after last in
// (xact_id, id) order whose transaction is below horizon, at most
// maxLeaves. Logs written before migration 4 have no xact_id, and come
// first, in id order, as xact_id 0.
func (s *Sealer) pending(ctx context.Context, tx pgx.Tx, last key, horizon int64) ([]storedLog, error) {
	var logs []storedLog
	read := func(sql string, args ...any) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("integrity: seal: reading logs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			l, err := scanLog(rows)
			if err != nil {
				return fmt.Errorf("integrity: seal: reading logs: %w", err)
			}
			logs = append(logs, l)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("integrity: seal: reading logs: %w", err)
		}
		return nil
	}
	if last.xact == 0 {
		if err := read("SELECT "+logColumns+" FROM "+s.t.logs+" WHERE xact_id IS NULL AND id > $1 ORDER BY id LIMIT $2",
			last.id, s.maxLeaves); err != nil {
			return nil, err
		}
		if len(logs) > 0 {
			last = key{0, logs[len(logs)-1].log.ID}
		}
	}
	if n := s.maxLeaves - len(logs); n > 0 {
		if err := read("SELECT "+logColumns+" FROM "+s.t.logs+
			" WHERE (xact_id, id) > ($1, $3) AND xact_id < $2 ORDER BY xact_id, id LIMIT $4",
			last.xact, horizon, last.id, n); err != nil {
			return nil, err
		}
	}
	return logs, nil
}

// hashLogs returns the stored hashes that logs add to a tree of size
// leaves, and their leaf records.
func (s *Sealer) hashLogs(ctx context.Context, tx pgx.Tx, size int64, logs []storedLog) ([]tlog.Hash, []byte, error) {
	firstHash := tlog.StoredHashIndex(0, size)
	hashes := make([]tlog.Hash, 0, 2*len(logs)+1)
	leaves := make([]byte, 0, len(logs)*(2+36+8+4*numDigests))
	reader := s.reader(ctx, tx, firstHash, nil)
	var enc []byte
	for i := range logs {
		l := &logs[i].log
		var err error
		if enc, err = l.AppendCanonical(enc[:0]); err != nil {
			// PostgreSQL holds it, so a writer let it through: sealing
			// cannot skip it, and cannot hash what has no encoding.
			return nil, nil, fmt.Errorf("integrity: seal: log %q cannot be sealed: %w", l.ID, err)
		}
		reader.newHashes = hashes
		hs, err := tlog.StoredHashesForRecordHash(size+int64(i), tlog.RecordHash(enc), reader)
		if err != nil {
			return nil, nil, fmt.Errorf("integrity: seal: hashing log %q: %w", l.ID, err)
		}
		hashes = append(hashes, hs...)
		r := newLeaf(l)
		leaves = appendLeaf(leaves, &r)
	}
	return hashes, leaves, nil
}

// sealReader reads stored hashes from those being added (from index
// first on) and, for older ones, from the seals already committed.
type sealReader struct {
	ctx       context.Context
	tree      *Tree
	first     int64
	newHashes []tlog.Hash
	cache     map[int64]tlog.Hash
}

func (s *Sealer) reader(ctx context.Context, tx pgx.Tx, first int64, hashes []tlog.Hash) *sealReader {
	return &sealReader{ctx: ctx, tree: &Tree{db: tx, t: s.t}, first: first, newHashes: hashes, cache: map[int64]tlog.Hash{}}
}

// ReadHashes implements tlog.HashReader.
func (r *sealReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var old []int64
	for i, x := range indexes {
		if x >= r.first {
			if x-r.first >= int64(len(r.newHashes)) {
				return nil, fmt.Errorf("integrity: stored hash %d is not written yet", x)
			}
			out[i] = r.newHashes[x-r.first]
		} else if h, ok := r.cache[x]; ok {
			out[i] = h
		} else {
			old = append(old, x)
		}
	}
	if len(old) == 0 {
		return out, nil
	}
	hs, err := r.tree.readHashes(r.ctx, old)
	if err != nil {
		return nil, err
	}
	for i, x := range old {
		r.cache[x] = hs[i]
	}
	for i, x := range indexes {
		if x < r.first {
			out[i] = r.cache[x]
		}
	}
	return out, nil
}
