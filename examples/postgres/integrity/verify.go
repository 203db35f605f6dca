package integrity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
)

// Kind is what a Finding reports.
type Kind string

// The kinds of findings. Every kind but Purged is a failure.
const (
	// Modified: a sealed log's row no longer hashes to its leaf. Fields
	// names the fields that differ.
	Modified Kind = "modified"
	// Deleted: a sealed log's row is gone, and retention does not account
	// for it.
	Deleted Kind = "deleted"
	// Purged: sealed logs removed by retention, as sealed purge logs
	// count them. Not a failure, but never left unsaid.
	Purged Kind = "purged"
	// BadPurge: a purge log that retention could not have written (its
	// cutoff is within the minimum retention of its time), or one not in
	// retention's format, or purge logs that count other than the sealed
	// logs missing under their cutoffs.
	BadPurge Kind = "bad-purge"
	// Inserted: a row that the tree should hold but does not.
	Inserted Kind = "inserted"
	// Invalid: a row that is not a valid log (it fails audit.Log.Validate,
	// or its metadata or created_at are no Log's), sealed as its raw
	// columns or waiting to be: only a write around the Repository stores
	// one.
	Invalid Kind = "invalid"
	// Backdated: a log stored more than the allowed lateness after its
	// CreatedAt: its transaction had not committed when a seal took its
	// snapshot, more than the lateness after the log's time. Written after
	// the fact, imported, or retried long after an outage.
	Backdated Kind = "backdated"
	// Reordered: logs whose order in the tree is not the order of their
	// (transaction, ID).
	Reordered Kind = "reordered"
	// Truncated: the tree is shorter than a checkpoint kept outside the
	// database.
	Truncated Kind = "truncated"
	// Inconsistent: the tree is not an extension of a kept checkpoint.
	Inconsistent Kind = "inconsistent"
	// UnknownKey: a checkpoint signed by no known key.
	UnknownKey Kind = "unknown-key"
	// BadSignature: a checkpoint whose signature by a known key fails.
	BadSignature Kind = "bad-signature"
	// BadCheckpoint: a checkpoint that is malformed, of another origin,
	// or of another size than its seal.
	BadCheckpoint Kind = "bad-checkpoint"
	// TreeAltered: the tree table itself was changed: seals missing, leaf
	// hashes that do not lead to the signed roots, stored hashes that do
	// not follow from the leaves, a seal's bookkeeping or leaf records
	// other than its checkpoint signed.
	TreeAltered Kind = "tree-altered"
	// Stale: the newest valid checkpoint, or the oldest log waiting to be
	// sealed, is older than allowed: the sealer has stopped, or the seals
	// after the newest were deleted.
	Stale Kind = "stale"
	// Unverified: nothing authenticates the tree, or part of it: no valid
	// checkpoint covers those leaves.
	Unverified Kind = "unverified"
)

// Finding is one thing wrong with the trail (or, for Purged, one thing
// to know about it).
type Finding struct {
	Kind   Kind
	Leaf   int64    // the leaf index, or -1
	LogID  string   // the log's ID, if known
	Fields []string // for Modified, the fields that differ
	Detail string
}

// String returns the finding as one line: kind, leaf, log and detail.
func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(string(f.Kind))
	if f.Leaf >= 0 {
		b.WriteString(" leaf " + strconv.FormatInt(f.Leaf, 10))
	}
	if f.LogID != "" {
		b.WriteString(" log " + strconv.Quote(f.LogID))
	}
	if len(f.Fields) > 0 {
		b.WriteString(": " + strings.Join(f.Fields, ", "))
	}
	if f.Detail != "" {
		b.WriteString(": " + f.Detail)
	}
	return b.String()
}

// Report is the outcome of Verify.
type Report struct {
	// Origin is the trail's origin: Options.Origin, or, if that was empty,
	// the origin of the first checkpoint that verified.
	Origin      string
	Logs        int64 // rows of audit_logs read
	Leaves      int64 // leaves in the tree table
	Pending     int64 // logs not sealed yet
	Purged      int64 // sealed logs removed by retention
	Checkpoints int   // checkpoints that verified
	// Latest is the newest checkpoint that verified, if any.
	Latest   Checkpoint
	Findings []Finding
}

// OK reports whether everything verified: no finding but Purged.
func (r *Report) OK() bool {
	for _, f := range r.Findings {
		if f.Kind != Purged {
			return false
		}
	}
	return true
}

// Defaults of Options.
const (
	// DefaultMaxLateness is how long after its CreatedAt a log may be
	// stored by default: far more than a Logger's timeout, the
	// repository's write timeout and the clock skew between replicas, and
	// enough for a retry of a store whose outcome was unknown
	// (audit.ErrMaybeStored) within an hour of an outage. A service that
	// retries for longer, or imports old logs, needs more.
	DefaultMaxLateness = time.Hour
	// DefaultMaxAge is how old, by default, the newest checkpoint and the
	// oldest log waiting to be sealed may be: a sealer stopped for longer
	// is reported. Sealers sign every DefaultInterval, so an hour leaves
	// room for a restart or a failover.
	DefaultMaxAge = time.Hour
	// DefaultMinRetention is the least age, by default, that a purge's
	// cutoff must have at the purge log's time: the minimum purge age
	// that the database's retention function requires of a cutoff unless
	// the tables' owner changed it (postgres.DefaultPurgeMinAge). A purge
	// log whose cutoff is more recent is no retention's: anyone who may
	// write a log can write one. A trail whose owner set a shorter
	// minimum age is verified with Options.MinRetention set to it; one
	// with a longer retention may set it higher, to bound what a forged
	// purge log could pass for.
	DefaultMinRetention = postgres.DefaultPurgeMinAge
)

// Options configure Verify.
type Options struct {
	// Origin is the trail's origin; "" accepts the origin of the first
	// checkpoint that verifies (Report.Origin says which).
	Origin string
	// Verifiers are the public keys of the trail (see Verifiers).
	Verifiers note.Verifiers
	// Kept are checkpoints kept outside the database, as signed notes.
	Kept [][]byte
	// MaxLateness bounds how long after its CreatedAt a log may be stored
	// (see Backdated). 0 means DefaultMaxLateness; a negative value turns
	// the check off, e.g. after importing old logs.
	MaxLateness time.Duration
	// MaxAge bounds the age of the newest checkpoint and of the oldest log
	// waiting to be sealed (see Stale). 0 means DefaultMaxAge; a negative
	// value turns the check off.
	MaxAge time.Duration
	// MinRetention is the least age a purge's cutoff must have at the
	// time of its purge log (see Purged). 0 means DefaultMinRetention; a
	// negative value means none: the cutoff must only not be after it.
	MinRetention time.Duration
	// Now is the clock for MaxAge; time.Now if nil.
	Now func() time.Time
	// Progress, if not nil, receives a line about once a second.
	Progress io.Writer
	// progressEvery is how often Progress receives a line: 0 means
	// progressInterval, a negative value at every step (for tests).
	progressEvery time.Duration
}

// progressInterval is how often, by default, Options.Progress receives a
// line.
const progressInterval = time.Second

// Verify checks the trail of schema, reading only audit_logs and
// audit_seals: every checkpoint's signature and what it signs; the tree,
// recomputed from the leaves and checked against every checkpoint; every
// log against its leaf; retention against the purge logs; and the kept
// checkpoints against the tree. It returns a Report of everything it
// found, and an error only when it could not read. A row or a seal that
// cannot be decoded is a finding, never an error, and what Verify holds in
// memory is bounded by the leaves that seals really hold, whatever sizes
// the tree table claims.
func Verify(ctx context.Context, db Querier, schema string, opts Options) (*Report, error) {
	return verify(ctx, db, schema, opts, maxGap)
}

// verify is Verify, holding places for at most gapCap leaves of missing
// seals.
func verify(ctx context.Context, db Querier, schema string, opts Options, gapCap int64) (*Report, error) {
	if opts.MaxLateness == 0 {
		opts.MaxLateness = DefaultMaxLateness
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	switch {
	case opts.MinRetention == 0:
		opts.MinRetention = DefaultMinRetention
	case opts.MinRetention < 0:
		opts.MinRetention = 0
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.progressEvery == 0 {
		opts.progressEvery = progressInterval
	}
	if opts.Verifiers == nil {
		opts.Verifiers = note.VerifierList()
	}
	v := &verifier{ctx: ctx, db: db, t: newTables(schema), opts: opts, rep: &Report{}, now: opts.Now(), gapCap: gapCap, progressAt: time.Now()}
	if err := v.readSeals(); err != nil {
		return nil, err
	}
	v.rep.Origin = v.opts.Origin
	v.checkKept()
	if err := v.readLogs(); err != nil {
		return nil, err
	}
	v.classifyMissing()
	v.checkOrder()
	v.checkFreshness()
	return v.rep, nil
}

// Bounds of what the verifier reads of a tree table that claims sizes
// beyond reason. A seal holds at most 2^20 leaves.
const (
	// maxGap bounds the leaves, over all the missing seals, that the
	// verifier holds a place for: as many as one seal can hold.
	maxGap = 1 << 20
	// maxColumn bounds the leaves and hashes columns of a seal that the
	// verifier reads: a seal of 2^20 leaves has about 64 MiB of stored
	// hashes and, with IDs of 36 bytes, 86 MiB of records.
	maxColumn = 128 << 20
	// maxNote bounds the checkpoint column it reads.
	maxNote = 64 << 10
)

// sealInfo is what the verifier keeps of a seal.
type sealInfo struct {
	sealHead
	time time.Time // the checkpoint's, if it verified; else sealed_at
	// authentic: its checkpoint verified, signs its bookkeeping and
	// leaves, and the tree up to it leads to the signed roots.
	authentic bool
}

type verifier struct {
	ctx  context.Context
	db   Querier
	t    tables
	opts Options
	rep  *Report
	now  time.Time

	seals  []sealInfo
	lat    []*sealInfo // the authentic seals, in order
	leaves []leaf      // by leaf index
	known  []bool      // false for leaves of a seal that is missing
	byID   map[string]int64
	mem    memHashes // stored hashes recomputed from the leaf hashes
	// authentic is the size of the longest prefix of the tree that a
	// valid checkpoint covers, with every seal up to it authentic.
	authentic int64
	gap       int64 // leaves held for missing seals
	gapCap    int64 // at most

	seen   []bool
	order  []orderEntry
	purges []purge // valid purge logs, by leaf
	// oldestPending is the CreatedAt of the oldest log not sealed yet.
	oldestPending time.Time

	progressAt time.Time
}

// orderEntry is a sealed log whose row was read: its transaction and its
// leaf. Its ID is the leaf record's, so that the entry holds no memory of
// the row.
type orderEntry struct {
	xact int64
	leaf int64
}

// purge is a purge log that counts: sealed and authentic, or waiting to
// be sealed (leaf is then the tree's size), and within the rules of
// retention.
type purge struct {
	leaf   int64
	cutoff int64 // Unix microseconds
	count  int64
}

func (v *verifier) add(f Finding) { v.rep.Findings = append(v.rep.Findings, f) }

func (v *verifier) progress(format string, args ...any) {
	if v.opts.Progress == nil || time.Since(v.progressAt) < v.opts.progressEvery {
		return
	}
	v.progressAt = time.Now()
	fmt.Fprintf(v.opts.Progress, format+"\n", args...)
}

// memHashes are stored hashes in memory, a tlog.HashReader.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("stored hash %d of %d", x, len(m))
		}
		out[i] = m[x]
	}
	return out, nil
}

// readSeals reads the seals in order, checks each checkpoint and what it
// signs, rebuilds the tree from the sealed leaf hashes, and compares it
// with the stored hashes and the signed roots.
func (v *verifier) readSeals() error {
	rows, err := v.db.Query(v.ctx, "SELECT "+headColumns+`, sealed_at,
		octet_length(leaves), CASE WHEN octet_length(leaves) <= $1 THEN leaves END,
		octet_length(hashes), CASE WHEN octet_length(hashes) <= $1 THEN hashes END,
		octet_length(checkpoint), CASE WHEN octet_length(checkpoint) <= $2 THEN checkpoint END
		FROM `+v.t.seals+" ORDER BY seq", maxColumn, maxNote)
	if err != nil {
		return fmt.Errorf("integrity: verify: reading the seals: %w", err)
	}
	defer rows.Close()
	var size int64
	failed := false // a seal did not verify: later ones cannot
	v.byID = map[string]int64{}
	for rows.Next() {
		var info sealInfo
		var leavesLen, hashesLen, noteLen int64
		var leaves, hashes []byte
		var msg *string
		if err := rows.Scan(append(info.dest(), &info.time, &leavesLen, &leaves, &hashesLen, &hashes, &noteLen, &msg)...); err != nil {
			return fmt.Errorf("integrity: verify: reading the seals: %w", err)
		}
		v.progress("auditverify: read %d seals, %d leaves", len(v.seals), size)
		if want := int64(len(v.seals)) + 1; info.seq != want {
			v.add(Finding{Kind: TreeAltered, Leaf: -1, Detail: fmt.Sprintf("seal %d follows seal %d: seals are missing", info.seq, want-1)})
		}
		first := info.firstLeaf()
		if first != size {
			v.add(Finding{Kind: TreeAltered, Leaf: size, Detail: fmt.Sprintf("seal %d holds leaves %d to %d, after a tree of %d leaves", info.seq, first, info.treeSize-1, size)})
		}
		var cp Checkpoint
		var cpErr error
		if msg == nil {
			cpErr = fmt.Errorf("%w: a checkpoint of %d bytes", ErrMalformed, noteLen)
		} else {
			cp, cpErr = OpenCheckpoint([]byte(*msg), v.opts.Origin, v.opts.Verifiers)
		}
		switch {
		case cpErr != nil:
		case cp.Size != info.treeSize:
			cpErr = fmt.Errorf("%w: checkpoint of a tree of %d in seal %d of a tree of %d", ErrMalformed, cp.Size, info.seq, info.treeSize)
		case cp.Seal == (tlog.Hash{}):
			cpErr = fmt.Errorf("%w: the checkpoint has no seal line", ErrMalformed)
		}
		signed := false
		if cpErr == nil {
			if v.opts.Origin == "" {
				v.opts.Origin = cp.Origin
			}
			info.time = cp.Time
			signed = leaves != nil && cp.Seal == info.digest(sha256.Sum256(leaves))
			if !signed {
				v.add(Finding{Kind: TreeAltered, Leaf: first, Detail: fmt.Sprintf(
					"seal %d: its bookkeeping or leaf records are not what its checkpoint signed", info.seq)})
			}
		} else {
			v.add(checkpointFinding(fmt.Sprintf("checkpoint of seal %d (tree of %d)", info.seq, info.treeSize), cpErr))
		}
		var recs []leaf
		switch {
		case leaves == nil:
			err = fmt.Errorf("%w: a leaves column of %d bytes", ErrMalformed, leavesLen)
		case hashes == nil:
			err = fmt.Errorf("%w: a hashes column of %d bytes", ErrMalformed, hashesLen)
		case first < size:
		case first-size > v.gapCap-v.gap:
			err = fmt.Errorf("%w: seal %d starts %d leaves after the last one, beyond what missing seals can hold", ErrMalformed, info.seq, first-size)
		default:
			recs, err = parseLeaves(leaves, info.count)
			if err == nil && int64(len(hashes)) != (tlog.StoredHashIndex(0, info.treeSize)-info.firstHash)*tlog.HashSize {
				err = fmt.Errorf("%w: seal %d has %d bytes of hashes", ErrMalformed, info.seq, len(hashes))
			}
			if err == nil && info.firstHash != tlog.StoredHashIndex(0, first) {
				err = fmt.Errorf("%w: seal %d says its hashes start at %d", ErrMalformed, info.seq, info.firstHash)
			}
		}
		if first < size || err != nil {
			if err != nil {
				v.add(Finding{Kind: TreeAltered, Leaf: first, Detail: fmt.Sprintf("seal %d: %v", info.seq, err)})
			}
			failed = true
			v.seals = append(v.seals, info)
			continue // its leaves cannot be placed
		}
		for size < first { // a missing seal's leaves: unknown
			v.addLeaf(leaf{}, tlog.Hash{}, false)
			v.gap++
			size++
		}
		altered := 0
		for j := range recs {
			i := first + int64(j)
			h := tlog.Hash(hashes[(tlog.StoredHashIndex(0, i)-info.firstHash)*tlog.HashSize:])
			if prev, dup := v.byID[recs[j].id]; dup {
				v.add(Finding{Kind: TreeAltered, Leaf: i, LogID: recs[j].id, Detail: fmt.Sprintf("the log is also leaf %d", prev)})
			} else {
				v.byID[recs[j].id] = i
			}
			v.addLeaf(recs[j], h, true)
			for x := tlog.StoredHashIndex(0, i); x < int64(len(v.mem)); x++ {
				if tlog.Hash(hashes[(x-info.firstHash)*tlog.HashSize:]) != v.mem[x] {
					altered++
				}
			}
		}
		size = info.treeSize
		if altered > 0 {
			v.add(Finding{Kind: TreeAltered, Leaf: first, Detail: fmt.Sprintf("seal %d: %d stored hashes do not follow from its leaf hashes (proofs read from the database will fail)", info.seq, altered)})
		}
		if cpErr == nil {
			root, _ := tlog.TreeHash(cp.Size, v.mem)
			switch {
			case root == cp.Hash && signed && !failed:
				info.authentic = true
				v.authentic = cp.Size
				v.rep.Checkpoints++
				v.rep.Latest = cp
				v.addPurges(recs, first, info.time)
			case root != cp.Hash && !failed:
				v.add(Finding{Kind: TreeAltered, Leaf: v.authentic, Detail: fmt.Sprintf(
					"the leaf hashes of the tree table do not lead to the signed root of seal %d (tree of %d): leaves %d to %d were altered in the tree table",
					info.seq, cp.Size, v.authentic, cp.Size-1)})
			}
		}
		if !info.authentic {
			failed = true
		}
		v.seals = append(v.seals, info)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity: verify: reading the seals: %w", err)
	}
	v.rep.Leaves = int64(len(v.leaves))
	v.seen = make([]bool, len(v.leaves))
	for j := range v.seals {
		if v.seals[j].authentic {
			v.lat = append(v.lat, &v.seals[j])
		}
	}
	if len(v.seals) > 0 && v.rep.Checkpoints == 0 {
		v.add(Finding{Kind: Unverified, Leaf: -1, Detail: "no checkpoint verifies with the keys given: nothing in the tree is authenticated"})
	} else if v.authentic < v.rep.Leaves {
		v.add(Finding{Kind: Unverified, Leaf: v.authentic, Detail: fmt.Sprintf("leaves %d to %d are covered by no valid checkpoint", v.authentic, v.rep.Leaves-1)})
	}
	return nil
}

// addLeaf appends a leaf to the tree rebuilt in memory.
func (v *verifier) addLeaf(r leaf, h tlog.Hash, known bool) {
	hs, err := tlog.StoredHashesForRecordHash(int64(len(v.leaves)), h, v.mem)
	if err != nil {
		panic("integrity: the tree in memory lacks a hash: " + err.Error())
	}
	v.mem = append(v.mem, hs...)
	v.leaves = append(v.leaves, r)
	v.known = append(v.known, known)
}

// addPurges adds the purge logs among the records of an authentic seal,
// whose first leaf is first and whose checkpoint is of time at.
func (v *verifier) addPurges(recs []leaf, first int64, at time.Time) {
	for j := range recs {
		if r := &recs[j]; r.flags&leafPurge != 0 {
			v.addPurge(first+int64(j), r.id, r.createdAt, at, purge{leaf: first + int64(j), cutoff: r.cutoff, count: r.count})
		}
	}
}

// addPurge adds p, the purge log id created at created (Unix
// microseconds), sealed by a checkpoint of time at (or waiting to be
// sealed at the verifier's time), if retention could have written it: its
// cutoff is at least MinRetention before its time, the earlier of its
// CreatedAt and at. A purge log in retention's format can be written by
// anyone who may write a log, so this bounds what one can pass for:
// removing the oldest logs, older than the minimum retention.
func (v *verifier) addPurge(leafIndex int64, id string, created int64, at time.Time, p purge) {
	when := min(created, at.UnixMicro())
	if latest := when - v.opts.MinRetention.Microseconds(); p.cutoff > latest {
		if leafIndex >= int64(len(v.leaves)) {
			leafIndex = -1
		}
		v.add(Finding{Kind: BadPurge, Leaf: leafIndex, LogID: id, Detail: fmt.Sprintf(
			"a purge log whose cutoff, %s, is less than the minimum retention (%v) before its time, %s: retention could not have written it",
			time.UnixMicro(p.cutoff).UTC().Format(time.RFC3339Nano), v.opts.MinRetention, time.UnixMicro(when).UTC().Format(time.RFC3339Nano))})
		return
	}
	v.purges = append(v.purges, p)
}

// checkpointFinding turns a checkpoint's error into a finding.
func checkpointFinding(what string, err error) Finding {
	f := Finding{Kind: BadCheckpoint, Leaf: -1, Detail: what + ": " + err.Error()}
	switch {
	case errors.Is(err, ErrUnknownKey):
		f.Kind = UnknownKey
	case errors.Is(err, ErrBadSignature):
		f.Kind = BadSignature
	}
	return f
}

// checkKept checks each kept checkpoint against the tree: it must verify,
// be no larger than the tree, and be a prefix of it.
func (v *verifier) checkKept() {
	for i, msg := range v.opts.Kept {
		what := fmt.Sprintf("kept checkpoint %d", i+1)
		kept, err := OpenCheckpoint(msg, v.opts.Origin, v.opts.Verifiers)
		if err != nil {
			v.add(checkpointFinding(what, err))
			continue
		}
		what += fmt.Sprintf(" (tree of %d, %s)", kept.Size, kept.Time.Format(time.RFC3339))
		n := int64(len(v.leaves))
		if kept.Size > n {
			v.add(Finding{Kind: Truncated, Leaf: n, Detail: fmt.Sprintf("the tree has %d leaves, %s has %d: leaves %d to %d are gone", n, what, kept.Size, n, kept.Size-1)})
			continue
		}
		if kept.Size == 0 {
			continue
		}
		// The consistency proof from the kept tree to the newest valid
		// one, from the rebuilt tree, as a client holding both would check.
		newer := Checkpoint{Size: n}
		newer.Hash, _ = tlog.TreeHash(n, v.mem)
		if v.rep.Checkpoints > 0 && v.rep.Latest.Size >= kept.Size {
			newer = v.rep.Latest
		}
		p, err := tlog.ProveTree(newer.Size, kept.Size, v.mem)
		if err == nil {
			err = VerifyConsistency(kept, newer, p)
		}
		if err != nil {
			v.add(Finding{Kind: Inconsistent, Leaf: -1, Detail: fmt.Sprintf("the tree is not an extension of %s: %v", what, err)})
		}
	}
}

// readLogs reads every row of audit_logs, and checks it against its leaf.
func (v *verifier) readLogs() error {
	rows, err := v.db.Query(v.ctx, "SELECT "+logColumns+" FROM "+v.t.logs)
	if err != nil {
		return fmt.Errorf("integrity: verify: reading the logs: %w", err)
	}
	defer rows.Close()
	var sc rowScanner
	for rows.Next() {
		s, err := sc.scan(rows)
		if err != nil {
			return fmt.Errorf("integrity: verify: reading the logs: %w", err)
		}
		v.rep.Logs++
		v.progress("auditverify: checked %d logs of a tree of %d", v.rep.Logs, len(v.leaves))
		v.checkLog(&s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity: verify: reading the logs: %w", err)
	}
	return nil
}

func (v *verifier) checkLog(s *storedLog) {
	l := &s.log
	k := key{s.xactID, l.ID}
	i, sealed := v.byID[l.ID]
	if !sealed {
		switch {
		case v.covered(k):
			detail := "not in the tree, though the seals cover its transaction"
			if s.bad != nil {
				detail += "; not a valid log: " + s.bad.why.Error()
			}
			v.add(Finding{Kind: Inserted, Leaf: -1, LogID: l.ID, Detail: detail})
		case s.bad != nil:
			v.rep.Pending++
			v.add(Finding{Kind: Invalid, Leaf: -1, LogID: l.ID, Detail: "not sealed yet, and not a valid log: " + s.bad.why.Error() +
				"; it will be sealed as its raw row"})
		default:
			v.rep.Pending++
			if v.oldestPending.IsZero() || l.CreatedAt.Before(v.oldestPending) {
				v.oldestPending = l.CreatedAt
			}
		}
		if s.bad == nil {
			v.checkLateness(l, s.xactID, -1)
			v.checkPurgeLog(l, s.xactID, -1)
		}
		return
	}
	v.seen[i] = true
	v.order = append(v.order, orderEntry{s.xactID, i})
	if s.hash != v.mem[tlog.StoredHashIndex(0, i)] { // a leaf's first stored hash is its own
		var r leaf
		if s.bad != nil {
			r = s.bad.rec
		} else {
			r = newLeaf(l, s.xactID)
		}
		f := Finding{Kind: Modified, Leaf: i, LogID: l.ID, Fields: v.leaves[i].diff(&r)}
		switch {
		case s.bad != nil:
			f.Detail = "not a valid log: " + s.bad.why.Error()
		case len(f.Fields) == 0:
			f.Detail = "the fields cannot be named: their digests match"
		}
		if i >= v.authentic {
			f.Detail = strings.TrimPrefix(f.Detail+"; its leaf is covered by no valid checkpoint", "; ")
		}
		v.add(f)
		return
	}
	if s.bad != nil {
		v.add(Finding{Kind: Invalid, Leaf: i, LogID: l.ID, Detail: "sealed as its raw row, not a valid log: " + s.bad.why.Error()})
		return
	}
	v.checkLateness(l, s.xactID, i)
	v.checkPurgeLog(l, s.xactID, i)
}

// checkPurgeLog reports a log of retention's action that is not in its
// format, and counts a valid purge log waiting to be sealed (leaf -1);
// sealed ones count from their leaf records.
func (v *verifier) checkPurgeLog(l *audit.Log, xact, leafIndex int64) {
	if l.Action != ActionPurged {
		return
	}
	p, ok := purgeOf(l)
	switch {
	case !ok:
		v.add(Finding{Kind: BadPurge, Leaf: leafIndex, LogID: l.ID, Detail: fmt.Sprintf(
			"action %s is retention's, but the log is not in its format: actor type %q, cutoff %q, count %q",
			ActionPurged, l.Actor.Type, l.Metadata["cutoff"], l.Metadata["count"])})
	case leafIndex < 0 && xact != 0:
		v.addPurge(int64(len(v.leaves)), l.ID, l.CreatedAt.UnixMicro(), v.now,
			purge{leaf: int64(len(v.leaves)), cutoff: p.cutoff.UnixMicro(), count: p.count})
	}
}

// covered reports whether a log of key k should be in the tree: the last
// authentic seal sealed everything up to its last key, and everything
// below its horizon if it was complete. The last seal, authentic or not,
// is asked too: when it is not, the trail already fails, and what it says
// can only name more logs, never hide one that the authentic seals cover.
func (v *verifier) covered(k key) bool {
	by := func(s *sealInfo) bool { return !s.last.less(k) || s.complete && k.xact < s.horizon }
	return len(v.lat) > 0 && by(v.lat[len(v.lat)-1]) || len(v.seals) > 0 && by(&v.seals[len(v.seals)-1])
}

// checkLateness reports a log stored more than MaxLateness after its
// CreatedAt. A seal's next transaction id is the xmax of its snapshot, the
// latest completed transaction id plus one: a transaction whose id is not
// below it had not committed when the snapshot was taken, and the
// checkpoint's time is from before the snapshot. So a log whose xact_id is
// at least the next id of an authentic seal committed after that seal's
// time; if that is more than MaxLateness after its CreatedAt, it was
// stored late. The last such seal is the latest bound.
func (v *verifier) checkLateness(l *audit.Log, xact int64, leafIndex int64) {
	if v.opts.MaxLateness < 0 || xact == 0 {
		return
	}
	j := sort.Search(len(v.lat), func(j int) bool { return v.lat[j].next > xact })
	if j == 0 {
		return
	}
	s := v.lat[j-1]
	if !l.CreatedAt.Before(s.time.Add(-v.opts.MaxLateness)) {
		return
	}
	state := "sealed"
	if leafIndex < 0 {
		state = "not sealed yet"
	}
	v.add(Finding{Kind: Backdated, Leaf: leafIndex, LogID: l.ID, Detail: fmt.Sprintf(
		"created at %s, but its transaction had not committed by seal %d of %s (%s): stored more than %v after its time",
		l.CreatedAt.Format(time.RFC3339Nano), s.seq, s.time.Format(time.RFC3339), state, v.opts.MaxLateness)})
}

// classifyMissing reports the sealed logs whose rows are gone, as removed
// by retention or deleted. Retention (the audit_logs_purge function)
// deletes the oldest logs first, in (created_at, id) order, those created
// before its cutoff, and writes purge logs that count them; so a missing
// log counts as purged only if
//
//   - a valid purge log after it in the tree (or waiting to be sealed)
//     has a cutoff after its CreatedAt;
//   - no sealed log older than it, in (created_at, id) order, is still
//     there: the missing ones are the oldest;
//   - and the purge logs count exactly as many logs as are missing so.
//
// Any other missing log is deleted. It takes O((missing + purges) log
// purges) after one pass over the leaves.
func (v *verifier) classifyMissing() {
	// The oldest sealed log still there.
	oldest := -1
	for i, seen := range v.seen {
		if seen && (oldest < 0 || v.olderLeaf(i, oldest)) {
			oldest = i
		}
	}
	// cutoffAfter[k] is the latest cutoff of the purges from k on, which
	// are in leaf order.
	cutoffAfter := make([]int64, len(v.purges)+1)
	cutoffAfter[len(v.purges)] = math.MinInt64
	var total int64
	for k := len(v.purges) - 1; k >= 0; k-- {
		cutoffAfter[k] = max(cutoffAfter[k+1], v.purges[k].cutoff)
		total += v.purges[k].count
	}
	var candidates []int64
	for i, seen := range v.seen {
		if seen || !v.known[i] {
			continue
		}
		k := sort.Search(len(v.purges), func(k int) bool { return v.purges[k].leaf > int64(i) })
		switch {
		case v.leaves[i].createdAt >= cutoffAfter[k]:
			v.add(v.deletedFinding(int64(i), ""))
		case oldest >= 0 && v.olderLeaf(oldest, i):
			v.add(v.deletedFinding(int64(i), fmt.Sprintf(
				"older than a retention cutoff, but leaf %d, an older sealed log, is still there: retention removes the oldest first", oldest)))
		default:
			candidates = append(candidates, int64(i))
		}
	}
	n := int64(len(candidates))
	if n == total {
		if n > 0 {
			v.rep.Purged = n
			v.add(Finding{Kind: Purged, Leaf: candidates[0], Detail: fmt.Sprintf(
				"%d logs, leaves %d to %d, removed by retention: the oldest sealed logs, created before %s, as %d purge logs count them",
				n, candidates[0], candidates[n-1], time.UnixMicro(cutoffAfter[0]).UTC().Format(time.RFC3339Nano), len(v.purges))})
		}
		return
	}
	for _, i := range candidates {
		v.add(v.deletedFinding(i, fmt.Sprintf("older than a retention cutoff, but the purge logs count %d logs removed, and %d such logs are missing", total, n)))
	}
	if total > n {
		v.add(Finding{Kind: BadPurge, Leaf: -1, Detail: fmt.Sprintf(
			"%d purge logs count %d logs removed, but %d sealed logs are missing under their cutoffs: logs purged before they were sealed, or a forged count",
			len(v.purges), total, n)})
	}
}

// olderLeaf reports whether leaf i comes before leaf j in (created_at, id)
// order, retention's.
func (v *verifier) olderLeaf(i, j int) bool {
	a, b := &v.leaves[i], &v.leaves[j]
	return a.createdAt < b.createdAt || a.createdAt == b.createdAt && a.id < b.id
}

func (v *verifier) deletedFinding(i int64, detail string) Finding {
	d := "created at " + v.leaves[i].created() + ", its row is gone"
	if detail != "" {
		d += "; " + detail
	}
	if i >= v.authentic {
		d += "; its leaf is covered by no valid checkpoint"
	}
	return Finding{Kind: Deleted, Leaf: i, LogID: v.leaves[i].id, Detail: d}
}

// checkOrder reports the logs whose leaf order is not their (transaction,
// ID) order, the order the sealer seals in: sorted that way, the leaf
// indexes should increase. The longest increasing run of them, not
// necessarily contiguous, is taken as the order, and every log outside it
// is reported: for two logs swapped, those two.
func (v *verifier) checkOrder() {
	slices.SortFunc(v.order, func(a, b orderEntry) int {
		ka, kb := key{a.xact, v.leaves[a.leaf].id}, key{b.xact, v.leaves[b.leaf].id}
		switch {
		case ka.less(kb):
			return -1
		case kb.less(ka):
			return 1
		}
		return 0
	})
	// Longest increasing subsequence of the leaf indexes, by patience
	// sorting: tails[l] is the index in order of the smallest last leaf of
	// an increasing run of length l+1; prev links each entry to the one
	// before it in its run.
	var tails []int
	prev := make([]int, len(v.order))
	for j, e := range v.order {
		l := sort.Search(len(tails), func(l int) bool { return v.order[tails[l]].leaf >= e.leaf })
		prev[j] = -1
		if l > 0 {
			prev[j] = tails[l-1]
		}
		if l == len(tails) {
			tails = append(tails, j)
		} else {
			tails[l] = j
		}
	}
	if len(tails) == len(v.order) {
		return
	}
	inOrder := make([]bool, len(v.order))
	for j := tails[len(tails)-1]; j >= 0; j = prev[j] {
		inOrder[j] = true
	}
	after := int64(-1) // the leaf of the last log in order before this one
	for j, e := range v.order {
		if inOrder[j] {
			after = e.leaf
			continue
		}
		where := "before every other leaf"
		if after >= 0 {
			where = fmt.Sprintf("right after leaf %d", after)
		}
		v.add(Finding{Kind: Reordered, Leaf: e.leaf, LogID: v.leaves[e.leaf].id, Detail: fmt.Sprintf(
			"out of order: its transaction and ID put it %s", where)})
	}
}

// checkFreshness reports a newest checkpoint older than MaxAge, or none,
// and logs waiting to be sealed for longer than MaxAge: the sealer has
// stopped, or the seals after the newest were deleted. A sealer that still
// runs signs on: what it cannot show is a tail deleted with its seals
// while the sealer was stopped and restarted without a kept checkpoint;
// only a checkpoint kept outside the database shows that.
func (v *verifier) checkFreshness() {
	if v.opts.MaxAge < 0 {
		return
	}
	now := v.now
	if p := v.oldestPending; !p.IsZero() && now.Sub(p) > v.opts.MaxAge {
		v.add(Finding{Kind: Stale, Leaf: -1, Detail: fmt.Sprintf(
			"%d logs are not sealed, the oldest created at %s, %s ago: the sealer has stopped, or its seals were deleted",
			v.rep.Pending, p.Format(time.RFC3339Nano), now.Sub(p).Round(time.Second))})
	}
	if v.rep.Checkpoints == 0 {
		if v.rep.Logs > 0 {
			v.add(Finding{Kind: Stale, Leaf: -1, Detail: "there is no valid checkpoint"})
		}
		return
	}
	if age := now.Sub(v.rep.Latest.Time); age > v.opts.MaxAge {
		v.add(Finding{Kind: Stale, Leaf: -1, Detail: fmt.Sprintf(
			"the newest valid checkpoint (tree of %d) is from %s, %s ago: the sealer has stopped, or the seals after it were deleted, and their logs with them",
			v.rep.Latest.Size, v.rep.Latest.Time.Format(time.RFC3339), age.Round(time.Second))})
	}
}
