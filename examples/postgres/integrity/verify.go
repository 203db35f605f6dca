package integrity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/raystack/salt/audit"
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
	// Inserted: a row that the tree should hold but does not.
	Inserted Kind = "inserted"
	// Backdated: a log whose transaction began after a seal that was
	// signed more than the allowed lateness after the log's CreatedAt:
	// written after the fact, or imported.
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
	// not follow from the leaves.
	TreeAltered Kind = "tree-altered"
	// Stale: the newest valid checkpoint is older than allowed: the seals
	// after it, and the logs they sealed, may have been deleted.
	Stale Kind = "stale"
	// Unverified: nothing authenticates the tree: no checkpoint verifies.
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

// DefaultMaxLateness is the lateness that Verify allows by default
// between a log's CreatedAt and the start of the transaction that stored
// it: far more than a Logger's timeout and the repository's write
// timeout, plus the clock skew between replicas.
const DefaultMaxLateness = 5 * time.Minute

// Options configure Verify.
type Options struct {
	// Origin is the trail's origin; "" accepts the origin of the first
	// checkpoint that verifies.
	Origin string
	// Verifiers are the public keys of the trail (see Verifiers).
	Verifiers note.Verifiers
	// Kept are checkpoints kept outside the database, as signed notes.
	Kept [][]byte
	// MaxLateness bounds how long after its CreatedAt a log's transaction
	// may begin (see Backdated). 0 means DefaultMaxLateness; a negative
	// value turns the check off, e.g. after importing old logs.
	MaxLateness time.Duration
	// MaxAge, if positive, is how old the newest checkpoint may be.
	MaxAge time.Duration
	// Now is the clock for MaxAge; time.Now if nil.
	Now func() time.Time
	// Progress, if not nil, receives a line about once a second.
	Progress io.Writer
}

// Verify checks the trail of schema, reading only audit_logs and
// audit_seals: every checkpoint's signature; the tree, recomputed from
// the leaves and checked against every checkpoint; every log against its
// leaf; and the kept checkpoints against the tree. It returns a Report of
// everything it found, and an error only when it could not read.
func Verify(ctx context.Context, db Querier, schema string, opts Options) (*Report, error) {
	if opts.MaxLateness == 0 {
		opts.MaxLateness = DefaultMaxLateness
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Verifiers == nil {
		opts.Verifiers = note.VerifierList()
	}
	v := &verifier{ctx: ctx, db: db, t: newTables(schema), opts: opts, rep: &Report{}, progressAt: time.Now()}
	if err := v.readSeals(); err != nil {
		return nil, err
	}
	v.checkKept()
	if err := v.readLogs(); err != nil {
		return nil, err
	}
	v.classifyMissing()
	v.checkOrder()
	v.checkFreshness()
	return v.rep, nil
}

// maxGap bounds the leaves of missing seals that the verifier holds a
// place for, so that a tree table that claims a size beyond reason is
// reported rather than allocated: four times the most leaves one seal can
// hold.
const maxGap = 1 << 22

// sealInfo is what the verifier keeps of a seal.
type sealInfo struct {
	seq      int64
	size     int64
	last     key
	horizon  int64
	next     int64
	complete bool
	time     time.Time // the checkpoint's, if it verified; else sealed_at
}

type verifier struct {
	ctx  context.Context
	db   Querier
	t    tables
	opts Options
	rep  *Report

	seals  []sealInfo
	leaves []leaf      // by leaf index
	hashes []tlog.Hash // sealed leaf hashes, by leaf index
	known  []bool      // false for leaves of a seal that is missing
	byID   map[string]int64
	mem    memHashes // stored hashes recomputed from the leaf hashes
	// authentic is the size of the longest prefix of the tree that a
	// valid checkpoint covers.
	authentic int64
	cps       []Checkpoint // valid checkpoints, in seal order

	seen   []bool
	order  []orderEntry
	purges []purge
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

type purge struct {
	leaf   int64
	cutoff time.Time
	count  int64
}

func (v *verifier) add(f Finding) { v.rep.Findings = append(v.rep.Findings, f) }

func (v *verifier) progress(format string, args ...any) {
	if v.opts.Progress == nil || time.Since(v.progressAt) < time.Second {
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

// readSeals reads the seals in order, checks each checkpoint, rebuilds
// the tree from the sealed leaf hashes, and compares it with the stored
// hashes and the signed roots.
func (v *verifier) readSeals() error {
	rows, err := v.db.Query(v.ctx, "SELECT "+sealColumns+" FROM "+v.t.seals+" ORDER BY seq")
	if err != nil {
		return fmt.Errorf("integrity: verify: reading the seals: %w", err)
	}
	defer rows.Close()
	var size int64
	failed := false // a checkpoint did not match: later ones cannot
	v.byID = map[string]int64{}
	for rows.Next() {
		s, err := scanSeal(rows)
		if err != nil {
			return fmt.Errorf("integrity: verify: reading the seals: %w", err)
		}
		v.progress("auditverify: read %d seals, %d leaves", len(v.seals), size)
		if want := int64(len(v.seals)) + 1; s.seq != want {
			v.add(Finding{Kind: TreeAltered, Leaf: -1, Detail: fmt.Sprintf("seal %d follows seal %d: seals are missing", s.seq, want-1)})
		}
		first := s.firstLeafOfBatch
		if first != size {
			v.add(Finding{Kind: TreeAltered, Leaf: size, Detail: fmt.Sprintf("seal %d holds leaves %d to %d, after a tree of %d leaves", s.seq, first, s.treeSize-1, size)})
		}
		info := sealInfo{seq: s.seq, size: s.treeSize, last: s.last, horizon: s.horizon, next: s.next, complete: s.complete, time: s.sealedAt}
		cp, cpErr := OpenCheckpoint(s.checkpoint, v.opts.Origin, v.opts.Verifiers)
		if cpErr == nil && cp.Size != s.treeSize {
			cpErr = fmt.Errorf("%w: checkpoint of a tree of %d in seal %d of a tree of %d", ErrMalformed, cp.Size, s.seq, s.treeSize)
		}
		if cpErr == nil {
			if v.opts.Origin == "" {
				v.opts.Origin = cp.Origin
			}
			info.time = cp.Time
		} else {
			v.add(checkpointFinding(fmt.Sprintf("checkpoint of seal %d (tree of %d)", s.seq, s.treeSize), cpErr))
		}
		recs, err := parseLeaves(s.leaves, s.count)
		if err == nil && int64(len(s.hashes)) != (tlog.StoredHashIndex(0, s.treeSize)-s.firstHash)*tlog.HashSize {
			err = fmt.Errorf("%w: seal %d has %d bytes of hashes", ErrMalformed, s.seq, len(s.hashes))
		}
		if err == nil && first-size > maxGap {
			err = fmt.Errorf("%w: seal %d starts %d leaves after the last one", ErrMalformed, s.seq, first-size)
		}
		if first < size || err != nil {
			if err != nil {
				v.add(Finding{Kind: TreeAltered, Leaf: first, Detail: fmt.Sprintf("seal %d: %v", s.seq, err)})
			}
			v.seals = append(v.seals, info)
			continue // its leaves cannot be placed
		}
		for size < first { // a missing seal's leaves: unknown
			v.addLeaf(leaf{}, tlog.Hash{}, false)
			size++
		}
		altered := 0
		for j := range recs {
			i := first + int64(j)
			h := tlog.Hash(s.hashes[(tlog.StoredHashIndex(0, i)-s.firstHash)*tlog.HashSize:])
			if prev, dup := v.byID[recs[j].id]; dup {
				v.add(Finding{Kind: TreeAltered, Leaf: i, LogID: recs[j].id, Detail: fmt.Sprintf("the log is also leaf %d", prev)})
			} else {
				v.byID[recs[j].id] = i
			}
			v.addLeaf(recs[j], h, true)
			for x := tlog.StoredHashIndex(0, i); x < int64(len(v.mem)); x++ {
				if tlog.Hash(s.hashes[(x-s.firstHash)*tlog.HashSize:]) != v.mem[x] {
					altered++
				}
			}
		}
		size = s.treeSize
		if altered > 0 {
			v.add(Finding{Kind: TreeAltered, Leaf: first, Detail: fmt.Sprintf("seal %d: %d stored hashes do not follow from its leaf hashes (proofs read from the database will fail)", s.seq, altered)})
		}
		if cpErr == nil {
			root, _ := tlog.TreeHash(cp.Size, v.mem)
			switch {
			case root == cp.Hash && !failed:
				v.authentic = cp.Size
				v.cps = append(v.cps, cp)
				v.rep.Checkpoints++
				v.rep.Latest = cp
			case root != cp.Hash && !failed:
				failed = true
				v.add(Finding{Kind: TreeAltered, Leaf: v.authentic, Detail: fmt.Sprintf(
					"the leaf hashes of the tree table do not lead to the signed root of seal %d (tree of %d): leaves %d to %d were altered in the tree table",
					s.seq, cp.Size, v.authentic, cp.Size-1)})
			}
		}
		v.seals = append(v.seals, info)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity: verify: reading the seals: %w", err)
	}
	v.rep.Leaves = int64(len(v.leaves))
	v.seen = make([]bool, len(v.leaves))
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
	v.hashes = append(v.hashes, h)
	v.known = append(v.known, known)
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
	var enc []byte
	for rows.Next() {
		s, err := scanLog(rows)
		if err != nil {
			return fmt.Errorf("integrity: verify: reading the logs: %w", err)
		}
		v.rep.Logs++
		v.progress("auditverify: checked %d logs of a tree of %d", v.rep.Logs, len(v.leaves))
		v.checkLog(&s, &enc)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity: verify: reading the logs: %w", err)
	}
	return nil
}

func (v *verifier) checkLog(s *storedLog, enc *[]byte) {
	l := &s.log
	k := key{s.xactID, l.ID}
	i, sealed := v.byID[l.ID]
	var h tlog.Hash
	var encErr error
	if *enc, encErr = l.AppendCanonical((*enc)[:0]); encErr == nil {
		h = tlog.RecordHash(*enc)
	}
	if !sealed {
		if v.covered(k) {
			detail := "not in the tree, though the seals cover its transaction"
			if encErr != nil {
				detail += "; " + encErr.Error()
			}
			v.add(Finding{Kind: Inserted, Leaf: -1, LogID: l.ID, Detail: detail})
		} else {
			v.rep.Pending++
			if v.oldestPending.IsZero() || l.CreatedAt.Before(v.oldestPending) {
				v.oldestPending = l.CreatedAt
			}
			if encErr != nil {
				v.add(Finding{Kind: Inserted, Leaf: -1, LogID: l.ID, Detail: "not sealed, and it cannot be: " + encErr.Error()})
			}
		}
		v.checkLateness(l, s.xactID, -1)
		return
	}
	v.seen[i] = true
	v.order = append(v.order, orderEntry{s.xactID, i})
	if encErr != nil || h != v.hashes[i] {
		r := newLeaf(l)
		f := Finding{Kind: Modified, Leaf: i, LogID: l.ID, Fields: v.leaves[i].diff(&r)}
		if encErr != nil {
			f.Detail = encErr.Error()
		} else if len(f.Fields) == 0 {
			f.Detail = "the fields cannot be named: their digests match"
		}
		if i >= v.authentic {
			f.Detail = strings.TrimPrefix(f.Detail+"; its leaf is covered by no valid checkpoint", "; ")
		}
		v.add(f)
		return
	}
	v.checkLateness(l, s.xactID, i)
	if l.Action == "audit.logs.purged" && l.Actor.Type == audit.ActorTypeSystem && i < v.authentic {
		cutoff, err1 := time.Parse(time.RFC3339Nano, l.Metadata["cutoff"])
		count, err2 := strconv.ParseInt(l.Metadata["count"], 10, 64)
		if err1 == nil && err2 == nil && count >= 0 {
			v.purges = append(v.purges, purge{leaf: i, cutoff: cutoff, count: count})
		}
	}
}

// covered reports whether a log of key k should be in the tree: the last
// seal sealed everything up to its last key, and everything below its
// horizon if it was complete.
func (v *verifier) covered(k key) bool {
	if len(v.seals) == 0 {
		return false
	}
	s := v.seals[len(v.seals)-1]
	return !s.last.less(k) || s.complete && k.xact < s.horizon
}

// checkLateness reports a log whose transaction began after a seal signed
// more than MaxLateness after the log's CreatedAt. The transaction id
// tells when it began: after the seal whose snapshot's next transaction id
// is not above it.
func (v *verifier) checkLateness(l *audit.Log, xact int64, leafIndex int64) {
	if v.opts.MaxLateness < 0 || xact == 0 {
		return
	}
	k := sort.Search(len(v.seals), func(k int) bool { return v.seals[k].next > xact })
	if k == 0 {
		return
	}
	s := v.seals[k-1]
	if !l.CreatedAt.Before(s.time.Add(-v.opts.MaxLateness)) {
		return
	}
	state := "sealed"
	if leafIndex < 0 {
		state = "not sealed yet"
	}
	v.add(Finding{Kind: Backdated, Leaf: leafIndex, LogID: l.ID, Detail: fmt.Sprintf(
		"created at %s, but stored by a transaction that began after seal %d of %s (%s); written after the fact or imported",
		l.CreatedAt.Format(time.RFC3339Nano), s.seq, s.time.Format(time.RFC3339), state)})
}

// classifyMissing reports the sealed logs whose rows are gone: removed by
// retention when sealed purge logs after them count them, and were
// created before their cutoff; deleted otherwise.
func (v *verifier) classifyMissing() {
	var total int64
	for _, p := range v.purges {
		total += p.count
	}
	var retained, deleted []int64
	var cutoff time.Time
	for i, seen := range v.seen {
		if seen || !v.known[i] {
			continue
		}
		created := time.UnixMicro(v.leaves[i].createdAt).UTC()
		purged := false
		for _, p := range v.purges {
			if p.leaf > int64(i) && created.Before(p.cutoff) {
				purged = true
				if p.cutoff.After(cutoff) {
					cutoff = p.cutoff
				}
			}
		}
		if purged {
			retained = append(retained, int64(i))
		} else {
			deleted = append(deleted, int64(i))
		}
	}
	if int64(len(retained)) <= total {
		if len(retained) > 0 {
			v.rep.Purged = int64(len(retained))
			v.add(Finding{Kind: Purged, Leaf: retained[0], Detail: fmt.Sprintf(
				"%d logs, leaves %d to %d, removed by retention: created before %s, and counted by %d sealed purge logs (%d in all)",
				len(retained), retained[0], retained[len(retained)-1], cutoff.Format(time.RFC3339Nano), len(v.purges), total)})
		}
	} else {
		for _, i := range retained {
			v.add(v.deletedFinding(i, fmt.Sprintf("older than a retention cutoff, but the purge logs count %d of the %d such logs missing", total, len(retained))))
		}
	}
	for _, i := range deleted {
		v.add(v.deletedFinding(i, ""))
	}
}

func (v *verifier) deletedFinding(i int64, detail string) Finding {
	created := time.UnixMicro(v.leaves[i].createdAt).UTC().Format(time.RFC3339Nano)
	d := "created at " + created + ", its row is gone"
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
// stopped, or its seals were deleted.
func (v *verifier) checkFreshness() {
	if v.opts.MaxAge <= 0 {
		return
	}
	now := v.opts.Now()
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
			"the newest valid checkpoint (tree of %d) is from %s, %s ago: the seals after it may have been deleted, and their logs with them",
			v.rep.Latest.Size, v.rep.Latest.Time.Format(time.RFC3339), age.Round(time.Second))})
	}
}
