package integrity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
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

// Errors of the Sealer.
var (
	// ErrBusy is returned by Seal when another sealer, of this process or
	// another replica, holds the seal lock of the table.
	ErrBusy = errors.New("integrity: another sealer is sealing")
	// ErrInconsistent is returned when a tree does not extend a checkpoint
	// signed or kept before: it is smaller, or of the same size with
	// another root, or a consistency proof from the older one fails, or
	// the last seal in the database does not verify with the sealer's
	// keys. A log must never sign a checkpoint inconsistent with one it
	// signed before (C2SP tlog-checkpoint), so Seal then signs nothing,
	// and a FileSink keeps what it holds.
	ErrInconsistent = errors.New("integrity: the tree does not extend the checkpoint signed before")
	// ErrXactRegressed is returned by Seal when the database's transaction
	// ids have gone back below those of logs already sealed, as after a
	// dump and restore into another cluster, a logical migration, or
	// pg_resetwal: new logs would sort before the sealed ones, where
	// sealing never looks, so Seal refuses rather than sign a tree that
	// leaves them out. See the package documentation, "Transaction ids".
	ErrXactRegressed = errors.New("integrity: transaction ids went back below those of sealed logs")
)

// Sealer appends the committed logs of one schema to its Merkle tree and
// signs a checkpoint of the tree each time: Run does it every interval.
// Any number of replicas may run one; they take turns through a
// transaction-scoped advisory lock, and writers never wait for them.
//
// Before it signs, a Sealer checks that the tree in the database extends
// every checkpoint it trusts: the last one it committed, the ones given
// with WithTrusted, and the latest of each sink that is a Keeper; and that
// the last seal in the database verifies with its keys and its stored
// hashes lead to the root that seal signed. Otherwise Seal returns
// ErrInconsistent and signs nothing, so that a history rewritten in the
// database is never signed again.
//
// A Sealer is safe for concurrent use.
type Sealer struct {
	db          DB
	t           tables
	origin      string
	signers     []note.Signer
	own         note.Verifiers // of its keys
	verifiers   note.Verifiers // of its keys and WithPreviousKeys
	previous    []note.Verifier
	trustedIn   [][]byte
	interval    time.Duration
	maxLeaves   int
	sinks       []Sink
	sinkTimeout time.Duration
	onError     func(error)
	now         func() time.Time

	mu     sync.Mutex
	trust  Checkpoint // the largest checkpoint known good; Size -1 until loaded
	loaded bool

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
// one supersedes it. Sinks that are Keepers also tell the Sealer, at its
// first seal, the checkpoint the tree must extend.
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

// WithTrusted gives checkpoints, as signed notes, that the tree must
// extend: kept outside the database, or cosigned by witnesses. The Sealer
// checks them at its first seal, as it does the latest of its Keeper
// sinks; one that does not verify with its keys, or that the tree does
// not extend, makes every seal fail.
func WithTrusted(notes ...[]byte) SealerOption {
	return func(s *Sealer) { s.trustedIn = append(s.trustedIn, notes...) }
}

// WithPreviousKeys gives the verifiers of keys rotated out, so that the
// Sealer still accepts the checkpoints they signed as its own: the last
// seal in the database, and those of WithTrusted and Keeper sinks. A
// rotation that signed with both keys for a while needs none.
func WithPreviousKeys(vs ...note.Verifier) SealerOption {
	return func(s *Sealer) { s.previous = append(s.previous, vs...) }
}

// NewSealer returns a Sealer of the trail named origin (the first line of
// its checkpoints, e.g. "example.com/audit/frontier"), signing with keys.
// Several keys sign each checkpoint, which is how a key is rotated: sign
// with the old and the new key until every verifier knows the new one.
// Each key must be named origin, as C2SP asks of a log's key, and its
// verifier must match its signer.
//
// The signing keys must not be kept in the database: whoever can change
// the database and knows a key can rewrite the trail and sign it again.
func NewSealer(db DB, origin string, keys []Key, opts ...SealerOption) (*Sealer, error) {
	if db == nil {
		return nil, errors.New("integrity: NewSealer with a nil db")
	}
	if len(keys) == 0 {
		return nil, errors.New("integrity: NewSealer without a key")
	}
	if _, err := ParseCheckpointText(Checkpoint{Origin: origin}.text()); err != nil || origin == "" {
		return nil, fmt.Errorf("integrity: origin %q is not one line of text", origin)
	}
	s := &Sealer{
		db: db, t: newTables(""), origin: origin,
		interval: DefaultInterval, maxLeaves: DefaultMaxLeaves, sinkTimeout: DefaultSinkTimeout,
		onError: func(err error) { slog.Error("audit sealer", "err", err) },
		now:     time.Now,
		trust:   Checkpoint{Size: -1},
	}
	for _, o := range opts {
		o(s)
	}
	if s.interval <= 0 || s.maxLeaves < 1 || s.maxLeaves > 1<<20 {
		return nil, fmt.Errorf("integrity: interval %v and max leaves %d: want both positive, at most 2^20 leaves", s.interval, s.maxLeaves)
	}
	var own, all []note.Verifier
	seen := map[string]bool{}
	add := func(v note.Verifier) {
		if id := fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()); !seen[id] {
			seen[id] = true
			all = append(all, v)
		}
	}
	for _, k := range keys {
		if k.Signer == nil || k.Verifier == nil {
			return nil, errors.New("integrity: NewSealer with a key that lacks its signer or its verifier")
		}
		if k.Signer.Name() != k.Verifier.Name() || k.Signer.KeyHash() != k.Verifier.KeyHash() {
			return nil, fmt.Errorf("integrity: key %s+%08x has the verifier of %s+%08x",
				k.Signer.Name(), k.Signer.KeyHash(), k.Verifier.Name(), k.Verifier.KeyHash())
		}
		if k.Signer.Name() != origin {
			return nil, fmt.Errorf("integrity: key named %q signs the checkpoints of %q: name keys as the origin", k.Signer.Name(), origin)
		}
		if slices.ContainsFunc(own, func(v note.Verifier) bool { return v.KeyHash() == k.Verifier.KeyHash() }) {
			return nil, fmt.Errorf("integrity: key %s+%08x is given twice", k.Signer.Name(), k.Signer.KeyHash())
		}
		s.signers = append(s.signers, k.Signer)
		own = append(own, k.Verifier)
		add(k.Verifier)
	}
	for _, v := range s.previous {
		if v == nil || v.Name() != origin {
			return nil, fmt.Errorf("integrity: a previous key not named %q", origin)
		}
		add(v)
	}
	s.own = note.VerifierList(own...)
	s.verifiers = note.VerifierList(all...)
	return s, nil
}

// Run seals every interval until ctx ends, and returns ctx's error. While
// a seal leaves logs waiting (more than WithMaxLeaves), it seals again at
// once. After each seal it hands the checkpoint to the sinks. Errors, and
// rounds skipped because another replica was sealing, do not stop it:
// errors go to the error handler, and a seal that failed left nothing
// behind, so the next one starts where the last committed seal ended.
// ErrInconsistent and ErrXactRegressed come back every round until
// someone acts (see the package documentation).
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
	tree := &Tree{db: s.db, t: s.t}
	for _, sink := range s.sinks {
		sctx, cancel := context.WithTimeout(ctx, s.sinkTimeout)
		err := sink.Publish(sctx, cp, tree)
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
// sealer holds the lock, ErrInconsistent if the tree in the database does
// not extend what the Sealer trusts, and ErrXactRegressed if transaction
// ids went back. If it fails, or its connection is lost, nothing of it is
// stored.
//
// A stored row that is not a valid log (it fails audit.Log.Validate, or
// its metadata or created_at are no Log's: only a write around the
// Repository can store one) has no canonical encoding. Sealing does not
// stop there, which would let any role that may insert stop it for good:
// the row is sealed as its raw columns (see RawDomain), so it stays
// tamper-evident, and the verifier reports it as an invalid log.
func (s *Sealer) Seal(ctx context.Context) (Checkpoint, error) {
	cp, _, err := s.seal(ctx)
	return cp, err
}

// lockNamespace is the high half of the seal lock's key; the low half is
// the oid of the audit_seals table, so that each table has its own lock.
const lockNamespace = 0x73616c74 // "salt"

// seal is Seal; more reports that logs are still waiting.
func (s *Sealer) seal(ctx context.Context) (cp Checkpoint, more bool, err error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return cp, false, fmt.Errorf("integrity: seal: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var locked bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock(($1::bigint << 32) | $2::text::regclass::oid::bigint)",
		lockNamespace, s.t.seals).Scan(&locked); err != nil {
		return cp, false, fmt.Errorf("integrity: seal: %w", err)
	}
	if !locked {
		return cp, false, ErrBusy
	}
	// The previous seal, under the lock: this one continues it, once it is
	// known to be the sealer's own and to extend what the sealer trusts.
	prev, prevCp, err := s.lastSeal(ctx, tx)
	if err != nil {
		return cp, false, err
	}
	size, last := prev.treeSize, prev.last
	firstHash := tlog.StoredHashIndex(0, size)
	reader := s.reader(ctx, tx, firstHash)
	if err := s.checkTrust(ctx, reader, prevCp); err != nil {
		return cp, false, err
	}
	// Every transaction below horizon has ended: the rows they committed
	// are visible to the statements after this one (in read committed,
	// whose snapshots are later; in repeatable read, whose snapshot is
	// this one), and no row below it can appear later. The checkpoint is
	// dated before the snapshot: a log not below next had not committed
	// by then.
	at := s.now().UTC().Truncate(time.Second)
	var horizon, next int64
	if err := tx.QueryRow(ctx, "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint FROM pg_current_snapshot() s").
		Scan(&horizon, &next); err != nil {
		return cp, false, fmt.Errorf("integrity: seal: %w", err)
	}
	if prev.seq > 0 && (horizon < prev.horizon || last.xact > 0 && horizon <= last.xact) {
		return cp, false, fmt.Errorf("%w: the oldest running transaction is %d, seal %d sealed logs of transaction %d and saw %d running",
			ErrXactRegressed, horizon, prev.seq, last.xact, prev.horizon)
	}
	logs, err := s.pending(ctx, tx, last, horizon)
	if err != nil {
		return cp, false, err
	}
	complete := len(logs) < s.maxLeaves

	hashes, leaves, err := hashLogs(reader, size, logs)
	if err != nil {
		return cp, false, err
	}
	newSize := size + int64(len(logs))
	if len(logs) > 0 {
		last = key{logs[len(logs)-1].xactID, logs[len(logs)-1].log.ID}
	}
	reader.newHashes = hashes
	root, err := tlog.TreeHash(newSize, reader)
	if err != nil {
		return cp, false, fmt.Errorf("integrity: seal: root of %d leaves: %w", newSize, err)
	}
	head := sealHead{seq: prev.seq + 1, treeSize: newSize, count: len(logs), firstHash: firstHash,
		last: last, horizon: horizon, next: next, complete: complete}
	cp = Checkpoint{Origin: s.origin, Size: newSize, Hash: root, Time: at, Seal: head.digest(sha256.Sum256(leaves))}
	if cp, err = cp.sign(s.signers); err != nil {
		return cp, false, err
	}
	if _, err := OpenCheckpoint(cp.Note, s.origin, s.own); err != nil {
		return cp, false, fmt.Errorf("integrity: seal: the checkpoint just signed does not verify with the keys' verifiers: %w", err)
	}
	hashBytes := make([]byte, 0, len(hashes)*tlog.HashSize)
	for _, h := range hashes {
		hashBytes = append(hashBytes, h[:]...)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+s.t.seals+
		" (seq, tree_size, count, first_hash, last_xact, last_id, horizon, next_xact, complete, leaves, hashes, checkpoint)"+
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
		head.seq, newSize, len(logs), firstHash, last.xact, last.id, horizon, next, complete, leaves, hashBytes, string(cp.Note)); err != nil {
		return cp, false, fmt.Errorf("integrity: seal %d: %w", head.seq, err)
	}
	if s.beforeCommit != nil {
		if err := s.beforeCommit(ctx); err != nil {
			return cp, false, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return cp, false, fmt.Errorf("integrity: seal %d: %w", head.seq, err)
	}
	s.advance(cp)
	return cp, !complete, nil
}

// lastSeal reads the newest seal and its checkpoint, which must verify
// with the sealer's keys and sign the seal's bookkeeping. Before the first
// seal it returns a zero head and the empty tree's checkpoint.
func (s *Sealer) lastSeal(ctx context.Context, tx pgx.Tx) (sealHead, Checkpoint, error) {
	var h sealHead
	var leavesHash []byte
	var msg string
	err := tx.QueryRow(ctx, "SELECT "+headColumns+", sha256(leaves), checkpoint FROM "+s.t.seals+" ORDER BY seq DESC LIMIT 1").
		Scan(append(h.dest(), &leavesHash, &msg)...)
	if errors.Is(err, pgx.ErrNoRows) {
		empty, _ := tlog.TreeHash(0, nil)
		return sealHead{}, Checkpoint{Hash: empty}, nil
	}
	if err != nil {
		return h, Checkpoint{}, fmt.Errorf("integrity: seal: reading the last seal: %w", err)
	}
	cp, err := OpenCheckpoint([]byte(msg), s.origin, s.verifiers)
	switch {
	case err != nil:
		return h, cp, fmt.Errorf("%w: the checkpoint of the last seal, %d, does not verify with the sealer's keys: %w", ErrInconsistent, h.seq, err)
	case cp.Size != h.treeSize || len(leavesHash) != sha256.Size || cp.Seal != h.digest([sha256.Size]byte(leavesHash)):
		return h, cp, fmt.Errorf("%w: the last seal, %d, is not what its checkpoint signed", ErrInconsistent, h.seq)
	}
	return h, cp, nil
}

// checkTrust checks that the tree of cur, the verified checkpoint of the
// last seal, read through r, extends every checkpoint the sealer trusts,
// and that its stored hashes lead to cur's root.
func (s *Sealer) checkTrust(ctx context.Context, r *sealReader, cur Checkpoint) error {
	s.mu.Lock()
	loaded, trust := s.loaded, s.trust
	s.mu.Unlock()
	if !loaded {
		kept, err := s.loadTrust(ctx)
		if err != nil {
			return err
		}
		for _, k := range kept {
			if err := extends(cur, k, proveFrom(cur, r)); err != nil {
				return err
			}
			if k.Size > trust.Size {
				trust = k
			}
		}
		s.mu.Lock()
		s.loaded = true
		if trust.Size > s.trust.Size {
			s.trust = trust
		}
		trust = s.trust
		s.mu.Unlock()
	}
	if trust.Size >= 0 {
		if err := extends(cur, trust, proveFrom(cur, r)); err != nil {
			return err
		}
	}
	root, err := tlog.TreeHash(cur.Size, r)
	if err != nil {
		return fmt.Errorf("integrity: seal: root of the sealed tree: %w", err)
	}
	if root != cur.Hash {
		return fmt.Errorf("%w: the stored hashes of the tree of %d do not lead to its signed root", ErrInconsistent, cur.Size)
	}
	return nil
}

// proveFrom returns the consistency proofs to the tree of cur, from the
// stored hashes r reads.
func proveFrom(cur Checkpoint, r tlog.HashReader) func(int64) (tlog.TreeProof, error) {
	return func(old int64) (tlog.TreeProof, error) { return tlog.ProveTree(cur.Size, old, r) }
}

// loadTrust opens the checkpoints of WithTrusted and the latest of each
// Keeper sink with the sealer's keys.
func (s *Sealer) loadTrust(ctx context.Context) ([]Checkpoint, error) {
	var out []Checkpoint
	open := func(what string, msg []byte) error {
		cp, err := OpenCheckpoint(msg, s.origin, s.verifiers)
		if err != nil {
			return fmt.Errorf("integrity: seal: %s: %w", what, err)
		}
		out = append(out, cp)
		return nil
	}
	for i, msg := range s.trustedIn {
		if err := open(fmt.Sprintf("trusted checkpoint %d", i+1), msg); err != nil {
			return nil, err
		}
	}
	for i, sink := range s.sinks {
		k, ok := sink.(Keeper)
		if !ok {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, s.sinkTimeout)
		msg, err := k.Latest(sctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("integrity: seal: the checkpoint kept by sink %d: %w", i+1, err)
		}
		if msg != nil {
			if err := open(fmt.Sprintf("the checkpoint kept by sink %d", i+1), msg); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// advance records cp, just committed, as the checkpoint the next seals
// must extend. Seals are serialized by the lock, so a larger one
// supersedes.
func (s *Sealer) advance(cp Checkpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cp.Size >= s.trust.Size {
		s.trust = cp
	}
}

// pending returns the logs to seal next, in order: those after last in
// (xact_id, id) order whose transaction is below horizon, at most
// maxLeaves. Logs written before migration 4 have no xact_id, and come
// first, in id order, as xact_id 0.
func (s *Sealer) pending(ctx context.Context, tx pgx.Tx, last key, horizon int64) ([]storedLog, error) {
	var logs []storedLog
	var sc rowScanner
	read := func(sql string, args ...any) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("integrity: seal: reading logs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			l, err := sc.scan(rows)
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
// leaves, whose stored hashes reader reads, and their leaf records.
func hashLogs(reader *sealReader, size int64, logs []storedLog) ([]tlog.Hash, []byte, error) {
	hashes := make([]tlog.Hash, 0, 2*len(logs)+1)
	leaves := make([]byte, 0, len(logs)*(1+36+8+4*numDigests+1))
	for i := range logs {
		l := &logs[i]
		reader.newHashes = hashes
		hs, err := tlog.StoredHashesForRecordHash(size+int64(i), l.hash, reader)
		if err != nil {
			return nil, nil, fmt.Errorf("integrity: seal: hashing log %q: %w", l.log.ID, err)
		}
		hashes = append(hashes, hs...)
		var r leaf
		if l.bad != nil {
			r = l.bad.rec
		} else {
			r = newLeaf(&l.log, l.xactID)
		}
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

func (s *Sealer) reader(ctx context.Context, tx pgx.Tx, first int64) *sealReader {
	return &sealReader{ctx: ctx, tree: &Tree{db: tx, t: s.t}, first: first, cache: map[int64]tlog.Hash{}}
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
