package integrity

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
)

// memTree is the tree of leaf hashes built in memory with tlog, to compare
// with what the sealer stored.
type memTree struct{ hashes []tlog.Hash }

func (m *memTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = m.hashes[x]
	}
	return out, nil
}

func (m *memTree) add(tb testing.TB, n int64, h tlog.Hash) {
	tb.Helper()
	hs, err := tlog.StoredHashesForRecordHash(n, h, m)
	if err != nil {
		tb.Fatal(err)
	}
	m.hashes = append(m.hashes, hs...)
}

// sealedOrder returns the IDs of the logs of schema in the order the
// sealer must seal them: (xact_id, id).
func sealedOrder(tb testing.TB, schema string) []audit.Log {
	tb.Helper()
	rows, err := mustPool(tb).Query(context.Background(), "SELECT "+logColumns+" FROM "+newTables(schema).logs+" ORDER BY xact_id NULLS FIRST, id")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []audit.Log
	var sc rowScanner
	for rows.Next() {
		s, err := sc.scan(rows)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, s.log)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestSealAndProve seals logs written through every path in several
// seals, and checks each checkpoint against a tree built in memory from
// the logs' leaf hashes, and inclusion and consistency proofs against the
// checkpoints.
func TestSealAndProve(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	repo := newRepo(t, schema)
	key, verifiers, _ := newKey(t, testOrigin, 1)
	sl := newSealer(t, schema, key, WithMaxLeaves(40))

	empty, err := sl.Seal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if empty.Size != 0 || empty.Hash != sha256Empty() {
		t.Fatalf("empty tree: got size %d hash %v, want 0 and SHA-256 of nothing", empty.Size, empty.Hash)
	}
	if err := repo.CreateBatch(ctx, makeLogs("batch", 100, testTime)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, l := range makeLogs("one", 30, testTime) {
		wg.Go(func() {
			if err := repo.Create(ctx, l); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var cps []Checkpoint
	for {
		cp, err := sl.Seal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
		if cp.Size == 130 {
			break
		}
		if len(cps) > 1000 {
			t.Fatalf("sealed %d of 130 logs after 1000 seals", cp.Size)
		}
	}
	// Other tests' transactions may hold the horizon back for a while, so
	// a seal may take fewer, but never more than WithMaxLeaves.
	prev, full := int64(0), false
	for _, cp := range cps {
		if cp.Size-prev > 40 {
			t.Errorf("a seal appended %d logs, more than WithMaxLeaves(40)", cp.Size-prev)
		}
		full = full || cp.Size-prev == 40
		prev = cp.Size
	}
	if !full {
		t.Errorf("no seal appended 40 logs of the 130 waiting: sizes %v", cps)
	}

	logs := sealedOrder(t, schema)
	var mem memTree
	for i, l := range logs {
		h, err := l.LeafHash()
		if err != nil {
			t.Fatal(err)
		}
		mem.add(t, int64(i), h)
	}
	tree := NewTree(mustPool(t), schema)
	for _, cp := range append([]Checkpoint{empty}, cps...) {
		opened, err := OpenCheckpoint(cp.Note, testOrigin, verifiers)
		if err != nil {
			t.Fatalf("checkpoint of size %d: %v", cp.Size, err)
		}
		want, err := tlog.TreeHash(cp.Size, &mem)
		if err != nil {
			t.Fatal(err)
		}
		if opened.Hash != want || opened.Size != cp.Size {
			t.Errorf("checkpoint of size %d: root %v, want %v from the logs in (xact_id, id) order", cp.Size, opened.Hash, want)
		}
		stored, err := tlog.TreeHash(cp.Size, tree.HashReader(ctx))
		if err != nil || stored != want {
			t.Errorf("root of the stored hashes at size %d: got %v, %v; want %v", cp.Size, stored, err, want)
		}
	}
	latest, err := tree.Latest(ctx)
	if err != nil || latest.Size != 130 || !slices.Equal(latest.Note, cps[len(cps)-1].Note) {
		t.Fatalf("Latest: got size %d, %v; want the last seal's checkpoint", latest.Size, err)
	}
	for _, i := range []int{0, 1, 39, 40, 64, 99, 100, 129} {
		p, err := tree.InclusionProof(ctx, logs[i].ID, 0)
		if err != nil {
			t.Fatalf("InclusionProof(%s): %v", logs[i].ID, err)
		}
		if p.LeafIndex != int64(i) {
			t.Errorf("%s: leaf %d, want %d", logs[i].ID, p.LeafIndex, i)
		}
		if _, err := p.Verify(testOrigin, verifiers); err != nil {
			t.Errorf("%s: %v", logs[i].ID, err)
		}
		p.Log.Actor.ID = "someone else"
		if _, err := p.Verify(testOrigin, verifiers); !errors.Is(err, ErrProof) {
			t.Errorf("%s with another actor: got %v, want ErrProof", logs[i].ID, err)
		}
	}
	// Against an older checkpoint: a log in its tree, and one after it.
	older := cps[slices.IndexFunc(cps, func(cp Checkpoint) bool { return cp.Size > 0 })]
	if p, err := tree.InclusionProof(ctx, logs[older.Size-1].ID, older.Size); err != nil || p.TreeSize != older.Size {
		t.Errorf("proof of leaf %d in the tree of %d: got %+v, %v", older.Size-1, older.Size, p, err)
	} else if _, err := p.Verify(testOrigin, verifiers); err != nil {
		t.Errorf("proof of leaf %d in the tree of %d: %v", older.Size-1, older.Size, err)
	}
	if _, err := tree.InclusionProof(ctx, logs[older.Size].ID, older.Size); !errors.Is(err, ErrNotSealed) {
		t.Errorf("proof of leaf %d in the tree of %d: got %v, want ErrNotSealed", older.Size, older.Size, err)
	}
	if _, err := tree.InclusionProof(ctx, "no-such-log", 0); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("proof of an unknown log: got %v, want audit.ErrNotFound", err)
	}
	for _, pair := range [][2]int{{1, 130}, {40, 80}, {40, 130}, {80, 130}, {130, 130}} {
		p, err := tree.ConsistencyProof(ctx, int64(pair[0]), int64(pair[1]))
		if err != nil {
			t.Fatal(err)
		}
		older, _ := tlog.TreeHash(int64(pair[0]), &mem)
		newer, _ := tlog.TreeHash(int64(pair[1]), &mem)
		if err := VerifyConsistency(Checkpoint{Size: int64(pair[0]), Hash: older}, Checkpoint{Size: int64(pair[1]), Hash: newer}, p); err != nil {
			t.Errorf("sizes %v: %v", pair, err)
		}
		if pair[0] > 0 && pair[0] < pair[1] {
			older[0] ^= 1
			if err := VerifyConsistency(Checkpoint{Size: int64(pair[0]), Hash: older}, Checkpoint{Size: int64(pair[1]), Hash: newer}, p); !errors.Is(err, ErrProof) {
				t.Errorf("sizes %v, another old root: got %v, want ErrProof", pair, err)
			}
		}
	}
}

func sha256Empty() tlog.Hash {
	h, _ := tlog.TreeHash(0, nil)
	return h
}

// TestSealLateCommit holds a transaction that wrote a log open across
// seals, while newer transactions commit: its log is sealed once it
// commits, in a later seal, and none is skipped or sealed twice.
func TestSealLateCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	repo := newRepo(t, schema)
	key, _, _ := newKey(t, testOrigin, 1)
	sl := newSealer(t, schema, key)
	logs := makeLogs("late", 3, testTime)

	if err := repo.Create(ctx, logs[0]); err != nil {
		t.Fatal(err)
	}
	first := sealAll(t, sl, schema)
	if first.Size != 1 {
		t.Fatalf("first seal: size %d, want 1", first.Size)
	}
	tx, err := mustPool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "INSERT INTO "+newTables(schema).logs+" (id, source, action, actor_type, created_at) VALUES ($1, 'frontier', 'app.late', 'user', $2)",
		logs[1].ID, logs[1].CreatedAt); err != nil {
		t.Fatal(err)
	}
	if err := repo.Create(ctx, logs[2]); err != nil { // a newer transaction, committed first
		t.Fatal(err)
	}
	for range 3 {
		cp, err := sl.Seal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != 1 {
			t.Fatalf("a seal while an older transaction is open: size %d, want 1: nothing after the open transaction may be sealed", cp.Size)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	last := sealAll(t, sl, schema)
	if last.Size != 3 {
		t.Fatalf("after the commit: size %d, want 3", last.Size)
	}
	tree := NewTree(mustPool(t), schema)
	for _, l := range logs {
		if _, _, err := tree.LeafIndex(ctx, l.ID); err != nil {
			t.Errorf("%s: %v", l.ID, err)
		}
	}
	checkDense(t, schema)
}

// checkDense checks that the seals of schema hold every leaf once, in
// order, and that their leaf records name every log once.
func checkDense(tb testing.TB, schema string) {
	tb.Helper()
	ctx := context.Background()
	type sealRow struct {
		sealHead
		leaves, hashes []byte
	}
	rows, err := mustPool(tb).Query(ctx, "SELECT "+headColumns+", leaves, hashes FROM "+newTables(schema).seals+" ORDER BY seq")
	if err != nil {
		tb.Fatal(err)
	}
	seals, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sealRow, error) {
		var s sealRow
		return s, r.Scan(append(s.dest(), &s.leaves, &s.hashes)...)
	})
	if err != nil {
		tb.Fatal(err)
	}
	var size int64
	seen := map[string]int64{}
	for i, s := range seals {
		if s.seq != int64(i+1) || s.treeSize != size+int64(s.count) {
			tb.Fatalf("seal %d: seq %d, size %d after %d with %d leaves: not dense", i, s.seq, s.treeSize, size, s.count)
		}
		recs, err := parseLeaves(s.leaves, s.count)
		if err != nil {
			tb.Fatal(err)
		}
		for j, r := range recs {
			if prev, dup := seen[r.id]; dup {
				tb.Fatalf("log %s is leaf %d and leaf %d", r.id, prev, size+int64(j))
			}
			seen[r.id] = size + int64(j)
		}
		if want := (tlog.StoredHashIndex(0, s.treeSize) - tlog.StoredHashIndex(0, size)) * tlog.HashSize; int64(len(s.hashes)) != want {
			tb.Fatalf("seal %d: %d bytes of hashes, want %d", s.seq, len(s.hashes), want)
		}
		size = s.treeSize
	}
	var n int64
	if err := mustPool(tb).QueryRow(ctx, "SELECT count(*) FROM "+newTables(schema).logs).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	if int64(len(seen)) != n || size != n {
		tb.Fatalf("%d leaves name %d logs, %d logs stored", size, len(seen), n)
	}
}

// TestSealersTakeTurns runs sealers of several "replicas" at once while
// logs are written: each seal either runs alone or returns ErrBusy, and the
// tree ends dense, each log sealed once.
func TestSealersTakeTurns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	repo := newRepo(t, schema)
	key, _, _ := newKey(t, testOrigin, 1)
	var wg sync.WaitGroup
	logs := makeLogs("turns", 400, testTime)
	wg.Go(func() {
		for i := 0; i < len(logs); i += 20 {
			if err := repo.CreateBatch(ctx, logs[i:i+20]); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var sealed atomic.Int64
	for r := range 4 {
		sl := newSealer(t, schema, key, WithMaxLeaves(25))
		wg.Go(func() {
			for range 40 {
				_, err := sl.Seal(ctx)
				switch {
				case errors.Is(err, ErrBusy):
				case err != nil:
					t.Errorf("replica %d: %v", r, err)
					return
				default:
					sealed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// Each seal that returned a checkpoint stored exactly one seal row.
	var rows int64
	if err := mustPool(t).QueryRow(ctx, "SELECT count(*) FROM "+newTables(schema).seals).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != sealed.Load() || rows == 0 {
		t.Errorf("%d seals stored, %d seals returned a checkpoint; want as many, and some", rows, sealed.Load())
	}
	sealAll(t, newSealer(t, schema, key), schema)
	checkDense(t, schema)
}

// The sealer process: the test binary run again with sealerProcessEnv set seals
// one schema and stops, its transaction open, after writing its seal row;
// it prints "ready" and waits to be killed.
const sealerProcessEnv = "AUDIT_SEALER_PROCESS"

func runSealerProcess() int {
	schema := os.Getenv(sealerProcessEnv)
	ctx := context.Background()
	p, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	k, _, err := seededKey(testOrigin, 1) // the test's key
	if err != nil {
		fmt.Println(err)
		return 1
	}
	sl, err := NewSealer(p, testOrigin, []Key{k}, WithSchema(schema))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	sl.beforeCommit = func(context.Context) error {
		fmt.Println("ready")
		time.Sleep(time.Minute) // killed before this ends
		return errors.New("not killed")
	}
	_, err = sl.Seal(ctx)
	fmt.Println("seal:", err)
	return 1
}

// TestSealerKilled kills a sealer process in the middle of a seal, its
// seal row written but not committed: the next sealer takes over once the
// server has ended the dead one's transaction, and the tree has no gap and
// no duplicate.
func TestSealerKilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	repo := newRepo(t, schema)
	key, _, _ := newKey(t, testOrigin, 1)
	if err := repo.CreateBatch(ctx, makeLogs("killed", 50, testTime)); err != nil {
		t.Fatal(err)
	}
	sealAll(t, newSealer(t, schema, key, WithMaxLeaves(20)), schema)
	if err := repo.CreateBatch(ctx, makeLogs("after", 50, testTime)); err != nil {
		t.Fatal(err)
	}

	cmdCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cmdCtx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), sealerProcessEnv+"="+schema)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the sealer process said %q, %v; want ready", line, err)
	}
	// The killed-to-be sealer holds the lock: another one is turned away.
	sl := newSealer(t, schema, key, WithMaxLeaves(20))
	if _, err := sl.Seal(ctx); !errors.Is(err, ErrBusy) {
		t.Errorf("a seal while the sealer process holds the lock: got %v, want ErrBusy", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := sl.Seal(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("seal after the kill: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sealAll(t, sl, schema)
	checkDense(t, schema)
}

// TestSealReadsIndex checks that a seal reads the logs it seals as a
// range of the (xact_id, id) index, with no sort, however many there are.
func TestSealReadsIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	repo := newRepo(t, schema)
	logs := makeLogs("plan", 3000, testTime)
	for i := 0; i < len(logs); i += 30 {
		if err := repo.CreateBatch(ctx, logs[i:i+30]); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := mustPool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "ANALYZE "+newTables(schema).logs); err != nil {
		t.Fatal(err)
	}
	var first int64
	if err := tx.QueryRow(ctx, "SELECT min(xact_id) FROM "+newTables(schema).logs).Scan(&first); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{100, DefaultMaxLeaves} {
		rows, err := tx.Query(ctx, "EXPLAIN SELECT "+logColumns+" FROM "+newTables(schema).logs+
			" WHERE (xact_id, id) > ($1, $3) AND xact_id < $2 ORDER BY xact_id, id LIMIT $4", first+10, int64(1)<<62, "", limit)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		if !strings.Contains(plan, "Index Scan using audit_logs_xact_idx") || strings.Contains(plan, "Sort") {
			t.Errorf("limit %d: the seal's query is not a range scan of audit_logs_xact_idx without a sort:\n%s", limit, plan)
		}
	}
}

// TestRunSignsCheckpoints runs a sealer with no log arriving: it still
// signs a checkpoint every interval, and hands each to every sink, a
// failing sink reported to the error handler without stopping the others.
func TestRunSignsCheckpoints(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	key, verifiers, _ := newKey(t, testOrigin, 1)
	path := filepath.Join(t.TempDir(), "latest.ckpt")
	var mu sync.Mutex
	var got []Checkpoint
	var errs []error
	sl := newSealer(t, schema, key, WithInterval(20*time.Millisecond),
		WithSinks(
			SinkFunc(func(context.Context, Checkpoint, Prover) error { return errors.New("sink down") }),
			FileSink{Path: path},
			SinkFunc(func(_ context.Context, cp Checkpoint, _ Prover) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, cp)
				return nil
			})),
		WithErrorHandler(func(err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sl.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d checkpoints after a minute, want 5", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: got %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, cp := range got {
		if _, err := OpenCheckpoint(cp.Note, testOrigin, verifiers); err != nil || cp.Size != 0 {
			t.Errorf("checkpoint of size %d: %v; want a valid one of the empty tree", cp.Size, err)
		}
	}
	if len(errs) < len(got) || !strings.Contains(errs[0].Error(), "sink down") {
		t.Errorf("errors: %v; want the failing sink's, once per checkpoint", errs)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(b, testOrigin, verifiers); err != nil {
		t.Errorf("the file sink's checkpoint: %v", err)
	}
	var seals int
	if err := mustPool(t).QueryRow(context.Background(), "SELECT count(*) FROM "+newTables(schema).seals).Scan(&seals); err != nil || seals < len(got) {
		t.Errorf("%d seals stored, %v; want at least %d", seals, err, len(got))
	}
}

// TestSealInvalidRows stores, around the Repository, rows that are no
// valid log: an actor name longer than Validate allows, metadata that is
// not all strings, a created_at of infinity. Sealing does not stop at
// them, which would let any role that may insert stop it for good: each is
// sealed as its raw row, the logs after them too, and the verifier names
// each as an invalid log at its leaf, and as modified if it then changes.
func TestSealInvalidRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	repo := newRepo(t, schema)
	key, verifiers, _ := newKey(t, testOrigin, 1)
	sl := newSealer(t, schema, key)
	insert := "INSERT INTO " + newTables(schema).logs + " (id, source, action, actor_type, actor_name, metadata, created_at) VALUES ($1, 's', 'a', 'user', $2, $3, $4)"
	bad := []struct {
		id, name, metadata string
		created            any
		why                string
	}{
		{"too-long", strings.Repeat("x", 2000), "{}", time.Now(), "actor.name"},
		{"number", "", `{"outcome": 1}`, time.Now(), "metadata"},
		{"infinite", "", "{}", "infinity", "created_at: infinity"},
	}
	for _, b := range bad {
		if _, err := mustPool(t).Exec(ctx, insert, b.id, b.name, b.metadata, b.created); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.Create(ctx, makeLogs("after", 1, time.Now())[0]); err != nil {
		t.Fatal(err)
	}
	if cp := sealAll(t, sl, schema); cp.Size != 4 {
		t.Fatalf("sealed a tree of %d, want all 4 rows", cp.Size)
	}
	checkDense(t, schema)
	tree := NewTree(mustPool(t), schema)
	var wants []want
	for _, b := range bad {
		leaf, _, err := tree.LeafIndex(ctx, b.id)
		if err != nil {
			t.Fatalf("%s: %v", b.id, err)
		}
		wants = append(wants, want{kind: Invalid, leaf: leaf, id: b.id, words: b.why})
		if _, err := tree.InclusionProof(ctx, b.id, 0); !errors.Is(err, audit.ErrInvalidLog) {
			t.Errorf("an inclusion proof of %s: got %v, want audit.ErrInvalidLog", b.id, err)
		}
	}
	tr := &trail{schema: schema, key: key, verifiers: verifiers, sealer: sl}
	checkFindings(t, tr.verify(t, Options{}), wants...)
	// Changed, a raw row is named like any sealed log.
	tr.tamper(t, `UPDATE audit_logs SET metadata = '{"outcome": 2}' WHERE id = 'number'`)
	wants[1] = want{kind: Modified, leaf: wants[1].leaf, id: "number", fields: []string{"metadata"}, words: "not a valid log"}
	checkFindings(t, tr.verify(t, Options{}), wants...)
}

// TestSealRefusesRewrittenHistory has the table's owner change a sealed
// log and delete the seals from the one that holds it on, so that the
// database holds another history of the trail: the sealer that signed the
// first, running or restarted with its kept checkpoint, refuses to sign
// the second (a log must never sign two inconsistent checkpoints), its
// FileSink keeps the checkpoint of the first, and the verifier, given that
// file, names what changed.
func TestSealRefusesRewrittenHistory(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 40)
	ctx := context.Background()
	sink := FileSink{Path: filepath.Join(t.TempDir(), "kept.ckpt")}
	var mu sync.Mutex
	var errs []error
	s := newSealer(t, tr.schema, tr.key, WithInterval(20*time.Millisecond), WithSinks(sink),
		WithErrorHandler(func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }))
	// runUntil runs s until cond holds, for a minute at most.
	runUntil := func(what string, cond func() bool) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		for !cond() && rctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run: %v, want the context's error", err)
		}
		if !cond() {
			t.Fatalf("Run for a minute: %s", what)
		}
	}
	keptSize := func() int64 {
		b, _ := sink.Latest(ctx)
		text, _, _ := cutNote(string(b))
		c, _ := ParseCheckpointText(text)
		return c.Size
	}
	runUntil("the file sink keeps no checkpoint of the 40 logs", func() bool { return keptSize() == 40 })
	before, err := sink.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}

	victim := tr.logs[5].ID
	tr.tamper(t, "UPDATE audit_logs SET actor_id = 'mallory' WHERE id = $1", victim)
	tr.tamper(t, "DELETE FROM audit_seals WHERE seq >= (SELECT min(seq) FROM audit_seals WHERE count > 0)")
	countSeals := func() int {
		var n int
		if err := mustPool(t).QueryRow(ctx, "SELECT count(*) FROM "+newTables(tr.schema).seals).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	left := countSeals()

	// The running sealer remembers what it signed.
	runUntil("no error from the sealer", func() bool { mu.Lock(); defer mu.Unlock(); return len(errs) >= 3 })
	mu.Lock()
	for _, err := range errs {
		if !errors.Is(err, ErrInconsistent) {
			t.Errorf("Run reported %v, want ErrInconsistent", err)
		}
	}
	mu.Unlock()
	if after, _ := sink.Latest(ctx); string(after) != string(before) {
		t.Errorf("the file sink's checkpoint changed to %q", after)
	}
	// Restarted, it reads what its FileSink kept; or is given it.
	for name, opt := range map[string]SealerOption{
		"a FileSink":  WithSinks(sink),
		"WithTrusted": WithTrusted(before),
	} {
		if _, err := newSealer(t, tr.schema, tr.key, opt).Seal(ctx); !errors.Is(err, ErrInconsistent) {
			t.Errorf("a sealer restarted with %s: got %v, want ErrInconsistent", name, err)
		}
	}
	if n := countSeals(); n != left {
		t.Errorf("%d seals, want the %d left, none signed since", n, left)
	}
	rep := tr.verify(t, Options{Kept: [][]byte{before}})
	if rep.OK() || !slices.ContainsFunc(rep.Findings, func(f Finding) bool { return f.Kind == Truncated }) {
		t.Errorf("with the file sink's checkpoint: findings %v, want the tree found cut short", rep.Findings)
	}
}

// TestSealChecksLastSeal alters the last seal in the database in the ways
// that would make a sealer that takes it as it is sign a tree it never
// had: a fresh sealer, which trusts no checkpoint yet, refuses each.
func TestSealChecksLastSeal(t *testing.T) {
	t.Parallel()
	other, _, _ := newKey(t, testOrigin, 2)
	for _, tt := range []struct {
		name   string
		tamper func(tr *trail, last int64)
	}{
		{"its bookkeeping changed", func(tr *trail, last int64) {
			tr.tamper(t, "UPDATE audit_seals SET next_xact = 4611686018427387904 WHERE seq = $1", last)
		}},
		{"its leaf records changed", func(tr *trail, last int64) {
			tr.tamper(t, "UPDATE audit_seals SET leaves = overlay(leaves PLACING '\\x01'::bytea FROM 3) WHERE seq = $1", last)
		}},
		{"its checkpoint signed by another key", func(tr *trail, last int64) {
			var msg string
			if err := mustPool(t).QueryRow(context.Background(), "SELECT checkpoint FROM "+newTables(tr.schema).seals+" WHERE seq = $1", last).Scan(&msg); err != nil {
				t.Fatal(err)
			}
			text, _, _ := cutNote(msg)
			forged, err := note.Sign(&note.Note{Text: text}, other.Signer)
			if err != nil {
				t.Fatal(err)
			}
			tr.tamper(t, "UPDATE audit_seals SET checkpoint = $1 WHERE seq = $2", string(forged), last)
		}},
		{"its stored hashes changed", func(tr *trail, _ int64) {
			tr.tamper(t, "UPDATE audit_seals SET hashes = decode(repeat('00', length(hashes)), 'hex') WHERE seq = (SELECT max(seq) FROM audit_seals WHERE count > 0)")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := newTrail(t, 40)
			var last int64
			if err := mustPool(t).QueryRow(context.Background(), "SELECT max(seq) FROM "+newTables(tr.schema).seals).Scan(&last); err != nil {
				t.Fatal(err)
			}
			tt.tamper(tr, last)
			if _, err := newSealer(t, tr.schema, tr.key).Seal(context.Background()); !errors.Is(err, ErrInconsistent) {
				t.Fatalf("got %v, want ErrInconsistent", err)
			}
		})
	}
}

// TestNewSealerKeys: NewSealer takes only keys named as the origin, whose
// verifier is their own.
func TestNewSealerKeys(t *testing.T) {
	t.Parallel()
	key, _, _ := newKey(t, testOrigin, 1)
	other, _, _ := newKey(t, testOrigin, 2)
	foreign, _, _ := newKey(t, "example.com/audit/other", 3)
	for _, tt := range []struct {
		name string
		keys []Key
		opts []SealerOption
	}{
		{"no key", nil, nil},
		{"a key named otherwise", []Key{foreign}, nil},
		{"the verifier of another key", []Key{{Signer: key.Signer, Verifier: other.Verifier}}, nil},
		{"a previous key named otherwise", []Key{key}, []SealerOption{WithPreviousKeys(foreign.Verifier)}},
		{"the same key twice", []Key{key, key}, nil},
	} {
		if _, err := NewSealer(mustPool(t), testOrigin, tt.keys, tt.opts...); err == nil {
			t.Errorf("%s: NewSealer succeeded, want an error", tt.name)
		}
	}
	if _, err := NewSealer(mustPool(t), testOrigin, []Key{key, other}, WithPreviousKeys(key.Verifier)); err != nil {
		t.Errorf("two keys of the trail: %v", err)
	}
}

// TestSealLateCommitSavepoint holds open a transaction that wrote a log
// inside a savepoint: the log's xact_id is the top-level transaction's
// (what pg_current_xact_id() returns, not the subtransaction's), so the
// open transaction holds the horizon back and the log is sealed after it
// commits, never skipped.
func TestSealLateCommitSavepoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	repo := newRepo(t, schema)
	key, _, _ := newKey(t, testOrigin, 1)
	sl := newSealer(t, schema, key)
	logs := makeLogs("sp", 2, testTime)
	tx, err := mustPool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, q := range []string{"SELECT 1", "SAVEPOINT a"} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+newTables(schema).logs+" (id, source, action, actor_type, created_at) VALUES ($1, 'frontier', 'app.late', 'user', $2)",
		logs[0].ID, logs[0].CreatedAt); err != nil {
		t.Fatal(err)
	}
	var xact, top int64
	var sub string
	if err := tx.QueryRow(ctx, "SELECT xact_id, pg_current_xact_id()::text::bigint, xmin::text FROM "+newTables(schema).logs+" WHERE id = $1", logs[0].ID).Scan(&xact, &top, &sub); err != nil {
		t.Fatal(err)
	}
	if xact != top || sub == fmt.Sprint(top) {
		t.Fatalf("xact_id %d, top-level transaction %d, row xmin %s: want the top-level id, and a subtransaction's xmin", xact, top, sub)
	}
	if _, err := tx.Exec(ctx, "RELEASE a"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Create(ctx, logs[1]); err != nil { // newer, committed first
		t.Fatal(err)
	}
	for range 3 {
		if cp, err := sl.Seal(ctx); err != nil || cp.Size != 0 {
			t.Fatalf("a seal while the savepoint's transaction is open: size %d, %v; want 0", cp.Size, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if cp := sealAll(t, sl, schema); cp.Size != 2 {
		t.Fatalf("after the commit: size %d, want 2", cp.Size)
	}
	checkDense(t, schema)
}

// The restore process: the test binary run again, through
// scripts/with-postgres.sh on a cluster of its own, with restoreEnv set to
// a directory holding a trail dumped from the test's cluster. It restores
// the trail, writes a log and seals, and prints the seal's outcome.
const restoreEnv = "AUDIT_RESTORE_DIR"

func runRestoreProcess() int {
	dir := os.Getenv(restoreEnv)
	ctx := context.Background()
	conn, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	defer conn.Close()
	if err := postgres.Migrate(ctx, conn, "restored"); err != nil {
		fmt.Println("migrate:", err)
		return 1
	}
	c, err := conn.Acquire(ctx)
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	defer c.Release()
	for _, table := range []string{"audit_logs", "audit_seals"} {
		f, err := os.Open(filepath.Join(dir, table))
		if err != nil {
			fmt.Println(err)
			return 1
		}
		_, err = c.Conn().PgConn().CopyFrom(ctx, f, "COPY restored."+table+" FROM STDIN")
		f.Close()
		if err != nil {
			fmt.Println("restoring", table+":", err)
			return 1
		}
	}
	repo := postgres.NewRepository(conn, postgres.WithSchema("restored"))
	defer repo.Close()
	if err := repo.Create(ctx, makeLogs("after-restore", 1, time.Now())[0]); err != nil {
		fmt.Println("create:", err)
		return 1
	}
	k, _, err := seededKey(testOrigin, 1)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	sl, err := NewSealer(conn, testOrigin, []Key{k}, WithSchema("restored"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	cp, err := sl.Seal(ctx)
	fmt.Printf("seal: size %d, regressed %v, %v\n", cp.Size, errors.Is(err, ErrXactRegressed), err)
	return 0
}

// TestSealXactRegressed dumps a sealed trail and restores it into another
// cluster, whose transaction ids are below the trail's: a log written
// there would sort before every sealed one, where sealing never looks, so
// the sealer must refuse with ErrXactRegressed rather than sign the same
// tree again and again.
func TestSealXactRegressed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTrail(t, 20)
	// A new cluster starts below a thousand; make this one's ids higher.
	var xact int64
	if err := mustPool(t).QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&xact); err != nil {
		t.Fatal(err)
	}
	if xact < 5000 {
		if _, err := mustPool(t).Exec(ctx, fmt.Sprintf("DO $$ BEGIN FOR i IN 1..%d LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$", 5000-xact)); err != nil {
			t.Fatal(err)
		}
	}
	repo := newRepo(t, tr.schema)
	if err := repo.Create(ctx, makeLogs("late", 1, time.Now())[0]); err != nil {
		t.Fatal(err)
	}
	sealAll(t, tr.sealer, tr.schema)
	dir := t.TempDir()
	conn, err := mustPool(t).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"audit_logs", "audit_seals"} {
		f, err := os.Create(filepath.Join(dir, table))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Conn().PgConn().CopyTo(ctx, f, "COPY "+pgx.Identifier{tr.schema, table}.Sanitize()+" TO STDOUT"); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	conn.Release()

	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "../../../scripts/with-postgres.sh", os.Args[0], "-test.run=^$")
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "DATABASE_URL=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, restoreEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the restore process: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "regressed true") {
		t.Fatalf("sealing after the restore: %s; want ErrXactRegressed", out)
	}
	t.Logf("the restore process: %s", out)
}

// TestSealLockIsTheTable runs two sealers of one table named two ways,
// by its schema and through the search_path: they share one lock, the
// table's, so the second is turned away while the first seals.
func TestSealLockIsTheTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	key, _, _ := newKey(t, testOrigin, 1)
	cfg, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 2
	viaPath, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer viaPath.Close()
	first, err := NewSealer(viaPath, testOrigin, []Key{key})
	if err != nil {
		t.Fatal(err)
	}
	holding, release := make(chan struct{}), make(chan struct{})
	first.beforeCommit = func(context.Context) error {
		close(holding)
		<-release
		return nil
	}
	done := make(chan error, 1)
	go func() { _, err := first.Seal(ctx); done <- err }()
	select {
	case <-holding:
	case err := <-done:
		t.Fatalf("the first seal ended before holding the lock: %v", err)
	}
	// Were the lock another, this seal would wait for the first one's row.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = newSealer(t, schema, key).Seal(sctx)
	cancel()
	close(release)
	if !errors.Is(err, ErrBusy) {
		t.Errorf("a seal of the same table by its schema's name: got %v, want ErrBusy", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSealDoesNotBlockWriters holds a seal's transaction open, its lock
// taken, its snapshot read and its seal row written, and writes logs
// meanwhile through every write path of the Repository: group commit
// (Create), CreateBatch, and the INSERT of a closed Repository's Create.
// Every write returns before the seal is let go: sealing takes no lock a
// writer needs. The logs written meanwhile are not the held seal's, whose
// snapshot predates them; a later seal takes them, with no gap.
func TestSealDoesNotBlockWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	repo := newRepo(t, schema)
	key, _, _ := newKey(t, testOrigin, 1)
	if err := repo.CreateBatch(ctx, makeLogs("before", 10, testTime)); err != nil {
		t.Fatal(err)
	}
	held := newSealer(t, schema, key)
	holding, release := make(chan struct{}), make(chan struct{})
	held.beforeCommit = func(context.Context) error {
		close(holding)
		<-release
		return nil
	}
	type sealed struct {
		cp  Checkpoint
		err error
	}
	done := make(chan sealed, 1)
	go func() { cp, err := held.Seal(ctx); done <- sealed{cp, err} }()
	select {
	case <-holding:
	case s := <-done:
		t.Fatalf("the seal ended before it was held: %v", s.err)
	}
	released := false
	defer func() {
		if !released {
			close(release)
			<-done
		}
	}()

	// A writer that waited for the held seal would wait until the seal
	// is let go, after the writes: the bound makes it fail instead.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	grouped := makeLogs("grouped", 20, testTime)
	batched := makeLogs("batched", 20, testTime)
	alone := makeLogs("alone", 3, testTime)
	closed := newRepo(t, schema)
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, l := range grouped {
		wg.Go(func() {
			if err := repo.Create(wctx, l); err != nil {
				t.Errorf("Create %s while a seal is held: %v", l.ID, err)
			}
		})
	}
	wg.Go(func() {
		if err := repo.CreateBatch(wctx, batched); err != nil {
			t.Errorf("CreateBatch while a seal is held: %v", err)
		}
	})
	for _, l := range alone {
		wg.Go(func() {
			if err := closed.Create(wctx, l); err != nil {
				t.Errorf("Create %s by a closed Repository while a seal is held: %v", l.ID, err)
			}
		})
	}
	wg.Wait()
	select {
	case s := <-done:
		t.Fatalf("the held seal ended before it was let go: %v", s.err)
	default:
	}
	if t.Failed() {
		t.FailNow()
	}

	close(release)
	released = true
	s := <-done
	if s.err != nil {
		t.Fatalf("the held seal: %v", s.err)
	}
	// Other tests' transactions may hold its horizon back: it seals at
	// most the 10 logs committed before its snapshot, never those after.
	if s.cp.Size > 10 {
		t.Errorf("the held seal sealed %d logs, want at most the 10 committed before its snapshot", s.cp.Size)
	}
	all := slices.Concat(grouped, batched, alone)
	if cp := sealAll(t, newSealer(t, schema, key), schema); cp.Size != int64(10+len(all)) {
		t.Fatalf("after the held seal: a tree of %d, want %d", cp.Size, 10+len(all))
	}
	tree := NewTree(mustPool(t), schema)
	for _, l := range all {
		if leaf, _, err := tree.LeafIndex(ctx, l.ID); err != nil || leaf < 10 {
			t.Errorf("%s: leaf %d, %v; want a leaf after the 10 logs written before", l.ID, leaf, err)
		}
	}
	checkDense(t, schema)
}
