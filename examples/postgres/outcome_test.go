package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
)

// writePaths are the ways group commit writes a batch: a batch at hand
// (flush) and one streamed into an open COPY (stream), for the tests that
// check each caller's result.
func writePaths(schema string) []struct {
	name string
	do   func(*testing.T, *Repository, []audit.Log) []error
} {
	return []struct {
		name string
		do   func(*testing.T, *Repository, []audit.Log) []error
	}{{"flush", flushLogs}, {"stream", func(t *testing.T, _ *Repository, logs []audit.Log) []error {
		t.Helper()
		return streamLogs(t, idleRepository(t, schema), logs)
	}}}
}

// TestDroppedRows adds a BEFORE INSERT trigger that returns NULL for some
// logs, as triggers that filter or route rows do: the server reports fewer
// rows than it was sent and stores none of those. Each write path fails
// exactly the logs that were dropped, with ErrNotStored, and never says
// that a dropped log already exists.
func TestDroppedRows(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	stored, stored2 := makeLog("stored"), makeLog("stored-2")
	if err := r.CreateBatch(ctx, []*audit.Log{&stored, &stored2}); err != nil {
		t.Fatal(err)
	}
	if err := exec(t, schema, `CREATE FUNCTION drop_some() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.action = 'app.dropped' THEN
				RETURN NULL;
			END IF;
			RETURN NEW;
		END
		$$;
		CREATE TRIGGER drop_some BEFORE INSERT ON audit_logs
			FOR EACH ROW EXECUTE FUNCTION drop_some()`); err != nil {
		t.Fatal(err)
	}
	drop := func(l audit.Log) audit.Log { l.Action = "app.dropped"; return l }
	ok, dup, dropped, maybe := isStored, isDuplicate, isDropped, isMaybeStored
	checkBatches(t, r, schema, []batchCase{
		{"some dropped", []audit.Log{makeLog("a"), drop(makeLog("b")), makeLog("c"), drop(makeLog("d"))}, []func(error) bool{ok, dropped, ok, dropped}},
		{"all dropped", []audit.Log{drop(makeLog("e")), drop(makeLog("f")), drop(makeLog("g"))}, []func(error) bool{dropped, dropped, dropped}},
		// A stored ID sends the batch to INSERT ... ON CONFLICT DO NOTHING,
		// which returns neither the duplicate nor the dropped row.
		{"dropped and duplicate", []audit.Log{makeLog("h"), stored, drop(makeLog("i"))}, []func(error) bool{ok, dup, dropped}},
		// A dropped log whose ID an earlier log has: the COPY's answers
		// cannot tell it from a log a trigger changed as it stored it.
		{"dropped with a stored id", []audit.Log{makeLog("j"), drop(stored)}, []func(error) bool{ok, maybe}},
		// INSERT ... ON CONFLICT's can: it did not store that row.
		{"dropped with a stored id, and a duplicate", []audit.Log{makeLog("j2"), stored2, drop(stored)}, []func(error) bool{ok, dup, dup}},
		{"one, dropped", []audit.Log{drop(makeLog("k"))}, []func(error) bool{dropped}},
	}, stored.ID, stored2.ID)
	// Many callers, most of them dropped: only the others succeed.
	const callers = 64
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			l := makeLog(fmt.Sprintf("caller-%d", i))
			if i%8 != 0 {
				l = drop(l)
			}
			errs[i] = r.Create(ctx, &l)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i%8 == 0 && err != nil || i%8 != 0 && !dropped(err) {
			t.Errorf("Create caller-%d: unexpected result %v", i, err)
		}
	}
	// CreateBatch is atomic: a dropped log fails the whole batch, names
	// the logs dropped, and stores nothing.
	logs := []audit.Log{makeLog("import-a"), drop(makeLog("import-b")), makeLog("import-c")}
	err := r.CreateBatch(ctx, ptrs(logs))
	if !dropped(err) || !strings.Contains(err.Error(), `"import-b"`) || strings.Contains(err.Error(), `"import-a"`) {
		t.Errorf("CreateBatch with a dropped log: got %v, want ErrNotStored naming import-b alone", err)
	}
	checkStored(t, r, false, ids(logs)...)

	var n int
	if err := mustPool(t).QueryRow(ctx, "SELECT count(*) FROM "+r.table.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := 2 + 2*(2+0+1+1+1) + callers/8; n != want {
		t.Errorf("logs stored: got %d, want %d", n, want)
	}
}

// TestChangingTrigger adds a BEFORE INSERT trigger that changes some rows
// (as triggers that normalize or route do) and drops others: a log stored
// changed is stored, on every path, and whatever other logs of its batch
// meet. A trigger that stores a row under a new ID stores the log, and
// the COPY and INSERT ... ON CONFLICT agree; when the same batch also had
// a log dropped, the counts cannot tell which was which, and both logs
// may be stored.
func TestChangingTrigger(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	stored := makeLog("stored")
	if err := r.Create(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	if err := exec(t, schema, `CREATE FUNCTION change() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.action = 'app.dropped' THEN
				RETURN NULL;
			END IF;
			NEW.actor_name := upper(NEW.actor_name);
			IF NEW.action = 'app.renamed' THEN
				NEW.id := NEW.id || '-renamed';
			END IF;
			RETURN NEW;
		END
		$$;
		CREATE TRIGGER change BEFORE INSERT ON audit_logs FOR EACH ROW EXECUTE FUNCTION change()`); err != nil {
		t.Fatal(err)
	}
	with := func(l audit.Log, action string) audit.Log { l.Action = action; return l }
	ok, dup, dropped, maybe := isStored, isDuplicate, isDropped, isMaybeStored
	checkBatches(t, r, schema, []batchCase{
		// A COPY that stored fewer rows than it was sent.
		{"changed and dropped", []audit.Log{makeLog("a"), with(makeLog("b"), "app.dropped")}, []func(error) bool{ok, dropped}},
		// INSERT ... ON CONFLICT, after a COPY that met a stored ID.
		{"changed and dropped, duplicate", []audit.Log{makeLog("c"), stored, with(makeLog("d"), "app.dropped")}, []func(error) bool{ok, dup, dropped}},
		{"renamed", []audit.Log{with(makeLog("e"), "app.renamed"), makeLog("f")}, []func(error) bool{ok, ok}},
		{"renamed, duplicate", []audit.Log{with(makeLog("g"), "app.renamed"), stored, makeLog("h")}, []func(error) bool{ok, dup, ok}},
		{"renamed and dropped", []audit.Log{with(makeLog("i"), "app.renamed"), with(makeLog("j"), "app.dropped"), makeLog("k")},
			[]func(error) bool{maybe, maybe, ok}},
		{"renamed and dropped, duplicate", []audit.Log{with(makeLog("l"), "app.renamed"), stored, with(makeLog("m"), "app.dropped")},
			[]func(error) bool{maybe, dup, maybe}},
		{"one, renamed", []audit.Log{with(makeLog("n"), "app.renamed")}, []func(error) bool{ok}},
	}, stored.ID)
	// CreateBatch names the logs dropped, not those changed, and stores
	// none.
	imported := []audit.Log{makeLog("import-changed"), with(makeLog("import-dropped"), "app.dropped")}
	if err := r.CreateBatch(ctx, ptrs(imported)); !errors.Is(err, ErrNotStored) ||
		!strings.Contains(err.Error(), `"import-dropped"`) || strings.Contains(err.Error(), `"import-changed"`) {
		t.Errorf("CreateBatch: got %v, want ErrNotStored naming import-dropped alone", err)
	}
	checkStored(t, r, false, ids(imported)...)
	for _, id := range []string{"a-flush", "c-stream", "f-flush", "h-stream", "e-flush-renamed", "g-stream-renamed", "n-flush-renamed"} {
		if got, err := r.GetByID(ctx, id); err != nil || got.Actor.Name != "ADA" {
			t.Errorf("GetByID(%s): got actor name %q, %v; want the log as the trigger changed it", id, got.Actor.Name, err)
		}
	}
}

// The results a log may get, for tables of batches.
var (
	isStored    = func(err error) bool { return err == nil }
	isDuplicate = func(err error) bool { return errors.Is(err, audit.ErrAlreadyExists) }
	isDropped   = func(err error) bool {
		return errors.Is(err, ErrNotStored) && !errors.Is(err, audit.ErrMaybeStored) && !errors.Is(err, audit.ErrAlreadyExists)
	}
	isMaybeStored = func(err error) bool { return errors.Is(err, audit.ErrMaybeStored) && !errors.Is(err, ErrNotStored) }
)

// batchCase is a batch of logs, and the result each of them must get.
type batchCase struct {
	name  string
	logs  []audit.Log
	wants []func(error) bool
}

// checkBatches writes each batch on every write path, with the IDs of its
// logs, but those of keep, made the path's own, and checks each log's
// result.
func checkBatches(t *testing.T, r *Repository, schema string, batches []batchCase, keep ...string) {
	t.Helper()
	for _, batch := range batches {
		for _, write := range writePaths(schema) {
			logs := withSuffix(batch.logs, "-"+write.name, keep...)
			for i, err := range write.do(t, r, logs) {
				if !batch.wants[i](err) {
					t.Errorf("%s, %s: log %s (%s): unexpected result %v", batch.name, write.name, logs[i].ID, logs[i].Action, err)
				}
			}
		}
	}
}

// withSuffix returns a copy of logs whose IDs, but those of keep, end
// with suffix.
func withSuffix(logs []audit.Log, suffix string, keep ...string) []audit.Log {
	out := make([]audit.Log, len(logs))
	for i, l := range logs {
		out[i] = l.Clone()
		if !slices.Contains(keep, l.ID) {
			out[i].ID += suffix
		}
	}
	return out
}

// TestOneBadRowFailsAlone adds the index a DBA might add on a metadata
// key, and writes a log whose request ID, valid by Validate, is too large
// for that index (SQLSTATE 54000): it fails alone, and its neighbors are
// stored, on every path that writes more than one log at a time.
func TestOneBadRowFailsAlone(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	if err := exec(t, schema, "CREATE INDEX audit_logs_request_id_idx ON audit_logs ((metadata->>'request_id'))"); err != nil {
		t.Fatal(err)
	}
	bad := tooLargeForIndex(t, "bad", 1)
	const good = 62
	logs := someLogs("good", good)
	logs = append(logs[:good/2], append([]audit.Log{bad}, logs[good/2:]...)...)
	for _, write := range writePaths(schema) {
		batch := withSuffix(logs, "-"+write.name, "")
		for i, err := range write.do(t, r, batch) {
			switch {
			case batch[i].ID == "bad-"+write.name && sqlState(err) != "54000":
				t.Errorf("%s: log %s: got %v, want SQLSTATE 54000 (index row too large)", write.name, batch[i].ID, err)
			case batch[i].ID != "bad-"+write.name && err != nil:
				t.Errorf("%s: log %s: got %v, want it stored: one bad log fails alone", write.name, batch[i].ID, err)
			}
		}
	}
	// Concurrent callers.
	errs := make([]error, len(logs))
	var wg sync.WaitGroup
	for i := range logs {
		wg.Go(func() {
			l := logs[i].Clone()
			l.ID += "-concurrent"
			errs[i] = r.Create(ctx, &l)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if isBad := logs[i].ID == "bad"; isBad && sqlState(err) != "54000" || !isBad && err != nil {
			t.Errorf("Create %s-concurrent: unexpected result %v", logs[i].ID, err)
		}
	}
	var n int
	if err := mustPool(t).QueryRow(ctx, "SELECT count(*) FROM "+r.table.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3*good {
		t.Errorf("logs stored: got %d, want %d", n, 3*good)
	}
}

// tooLargeForIndex returns a valid log whose request ID is too large for
// an index on metadata->>'request_id' (SQLSTATE 54000), its letters drawn
// from seed.
func tooLargeForIndex(t *testing.T, id string, seed uint64) audit.Log {
	t.Helper()
	l := makeLog(id)
	// Random letters: the server compresses an index entry that is too
	// large, and repeated ones would fit.
	rng := rand.New(rand.NewPCG(seed, 2))
	rid := make([]byte, audit.MaxMetadataValueLen)
	for i := range rid {
		rid[i] = 'a' + byte(rng.IntN(26))
	}
	l.Metadata[audit.MetadataRequestID] = string(rid)
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestSomeBadRowsFailAlone is TestOneBadRowFailsAlone with two bad logs in
// separate halves of a batch, and with three spread over a larger one: on
// every path that writes more than one log at a time, exactly the bad logs
// fail, every other one is stored, and narrowing spends no more statements
// than halving down to each bad log takes (counted by a statement trigger,
// the COPY included).
func TestSomeBadRowsFailAlone(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	if err := exec(t, schema, `CREATE INDEX audit_logs_request_id_idx ON audit_logs ((metadata->>'request_id'));
		CREATE SEQUENCE inserts;
		CREATE FUNCTION count_insert() RETURNS trigger LANGUAGE plpgsql
		SET search_path FROM CURRENT AS $$
		BEGIN
			PERFORM nextval('inserts');
			RETURN NULL;
		END
		$$;
		CREATE TRIGGER count BEFORE INSERT ON audit_logs
			FOR EACH STATEMENT EXECUTE FUNCTION count_insert()`); err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, tt := range []struct {
		name string
		n    int   // logs in the batch
		bad  []int // positions of the bad logs
	}{
		{"two in separate halves", 64, []int{5, 40}},
		{"three spread", 300, []int{7, 150, 290}},
		// More than wholesaleBad, clustered where narrowing looks first:
		// they outnumber the logs written when the eighth is found.
		{"ten at the start", 64, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	} {
		logs := someLogs(strings.ReplaceAll(tt.name, " ", "-"), tt.n)
		for i, at := range tt.bad {
			logs[at] = tooLargeForIndex(t, logs[at].ID+"-bad", uint64(i+1))
		}
		for _, write := range writePaths(schema) {
			if err := exec(t, schema, "SELECT setval('inserts', 1, false)"); err != nil {
				t.Fatal(err)
			}
			batch := withSuffix(logs, "-"+write.name)
			for i, err := range write.do(t, r, batch) {
				switch isBad := slices.Contains(tt.bad, i); {
				case isBad && sqlState(err) != "54000":
					t.Errorf("%s, %s: log %s: got %v, want SQLSTATE 54000 (index row too large)", tt.name, write.name, batch[i].ID, err)
				case !isBad && err != nil:
					t.Errorf("%s, %s: log %s: got %v, want it stored: a bad log fails alone", tt.name, write.name, batch[i].ID, err)
				}
			}
			stored += tt.n - len(tt.bad)
			statements := counted(t, schema)
			// The COPY, then two statements per halving down to each bad
			// log at most.
			if want := 1 + 2*len(tt.bad)*bits.Len(uint(tt.n-1)); statements > want {
				t.Errorf("%s, %s: %d statements, want at most %d", tt.name, write.name, statements, want)
			}
			t.Logf("%s, %s: %d statements", tt.name, write.name, statements)
		}
	}
	var n int
	if err := mustPool(t).QueryRow(ctx, "SELECT count(*) FROM "+r.table.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != stored {
		t.Errorf("logs stored: got %d, want %d", n, stored)
	}
}

// TestRowSecurity writes, as the service's role, into a table under
// row-level security as a multi-tenant service would set it: a session
// reads the logs of the org it names, and may insert any log but those a
// policy refuses. The server refuses COPY into such a table: group commit
// writes with INSERT instead, for a while (one refused COPY, not one per
// batch), with no RETURNING or ON CONFLICT, which the SELECT policy would
// judge. The policy's error (42501, like a missing privilege) fails the
// refused log alone, and a log stored before gets ErrAlreadyExists.
func TestRowSecurity(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	role := schema + "_service"
	createRoles(t, role)
	rowSecurity(t, mustPool(t), schema, role)
	checkRowSecurity(t, mustPool(t), rolePool(t, role), schema)
}

// TestRowSecurityMessages is TestRowSecurity on a server that writes its
// messages in German, on a server of the test's own: the server's messages
// follow its environment's LANGUAGE, which a test cannot set on the
// server the others share, once a session's lc_messages is a locale other
// than C (C.UTF-8, which every glibc has).
func TestRowSecurityMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := startServer(t, 4, "LANGUAGE=de")
	const schema, role = "audit", "service"
	if err := Migrate(ctx, admin, schema); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" NOLOGIN"); err != nil {
		t.Fatal(err)
	}
	rowSecurity(t, admin, schema, role)
	rp := paramPool(t, admin, map[string]string{"role": role, "lc_messages": "C.UTF-8"})
	var pgErr *pgconn.PgError
	if _, err := rp.Exec(ctx, "SELECT 1/0"); !errors.As(err, &pgErr) || pgErr.Message != "Division durch Null" {
		t.Fatalf("SELECT 1/0: got %v, want the server's message in German, \"Division durch Null\": "+
			"the test needs PostgreSQL's German messages and a glibc whose C.UTF-8 honors LANGUAGE", err)
	}
	checkRowSecurity(t, admin, rp, schema)
}

// rowSecurity puts the audit_logs of schema, on admin's server, under
// row-level security for role: role reads the logs of the org its session
// names in app.org, and inserts any log but those of action
// app.forbidden.
func rowSecurity(t *testing.T, admin *pgxpool.Pool, schema, role string) {
	t.Helper()
	for _, sql := range []string{
		"GRANT USAGE ON SCHEMA " + schema + " TO " + role,
		"GRANT SELECT, INSERT ON " + schema + ".audit_logs TO " + role,
		"ALTER TABLE " + schema + ".audit_logs ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY tenant ON " + schema + ".audit_logs FOR SELECT USING (org_id = current_setting('app.org', true))",
		"CREATE POLICY no_forbidden ON " + schema + ".audit_logs FOR INSERT WITH CHECK (action <> 'app.forbidden')",
	} {
		if _, err := admin.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// checkRowSecurity writes through rp, a pool of the role that rowSecurity
// set up, on every write path, and checks each log's result and, through
// admin, which logs are stored.
func checkRowSecurity(t *testing.T, admin, rp *pgxpool.Pool, schema string) {
	t.Helper()
	ctx := context.Background()
	r := NewRepository(rp, WithSchema(schema))
	t.Cleanup(func() { _ = r.Close() })
	stored := makeLog("stored")
	if err := r.Create(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	bad := makeLog("bad")
	bad.Action = "app.forbidden"
	logs := []audit.Log{makeLog("good-1"), bad, makeLog("good-2"), stored, makeLog("good-3")}
	var want []string // the logs that should be stored
	check := func(what string, logs []audit.Log, errs []error) {
		t.Helper()
		for i, err := range errs {
			switch {
			case logs[i].ID == stored.ID:
				if !errors.Is(err, audit.ErrAlreadyExists) {
					t.Errorf("%s: log %s, stored before: got %v, want ErrAlreadyExists", what, logs[i].ID, err)
				}
			case logs[i].Action == bad.Action:
				if sqlState(err) != "42501" || errors.Is(err, audit.ErrMaybeStored) {
					t.Errorf("%s: log %s: got %v, want the policy's error, SQLSTATE 42501", what, logs[i].ID, err)
				}
			case err != nil:
				t.Errorf("%s: log %s: got %v, want it stored", what, logs[i].ID, err)
			default:
				want = append(want, logs[i].ID)
			}
		}
	}
	for _, name := range []string{"flush-1", "flush-2", "flush-3"} {
		batch := withSuffix(logs, "-"+name, stored.ID)
		check(name, batch, flushLogs(t, r, batch))
	}
	if n := r.stats.copyRefused.Load(); n != 1 {
		t.Errorf("three batches: %d COPY statements refused, want 1: the refusal holds for the next batches", n)
	}
	batch := withSuffix(logs, "-stream", stored.ID)
	check("stream", batch, streamLogs(t, idleRepositoryOn(t, rp, schema), batch))
	batch = withSuffix(logs, "-concurrent", stored.ID)
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	for i := range batch {
		wg.Go(func() { errs[i] = r.Create(ctx, &batch[i]) })
	}
	wg.Wait()
	check("concurrent", batch, errs)
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+schema+".audit_logs WHERE id = ANY($1) AND action <> 'app.forbidden'",
		want).Scan(&n); err != nil || n != len(want) {
		t.Errorf("logs stored: got %d, %v; want %d", n, err, len(want))
	}
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+schema+".audit_logs").Scan(&n); err != nil || n != len(want)+1 {
		t.Errorf("logs in the table: got %d, %v; want %d", n, err, len(want)+1)
	}
}

// TestInsertRule adds a conditional DO INSTEAD rule on INSERT, which the
// repository does not support (COPY ignores rules, an INSERT follows
// them), and on which the server refuses INSERT ... ON CONFLICT: a batch
// holding a log stored before is still written, each log getting its own
// result, rather than every log the server's 0A000.
func TestInsertRule(t *testing.T) {
	t.Parallel()
	r, schema := newRepo(t)
	ctx := context.Background()
	stored := makeLog("stored")
	if err := r.Create(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	if err := exec(t, schema, `CREATE TABLE elsewhere (LIKE audit_logs);
		CREATE RULE route AS ON INSERT TO audit_logs WHERE NEW.action = 'app.routed'
			DO INSTEAD INSERT INTO elsewhere VALUES (NEW.*)`); err != nil {
		t.Fatal(err)
	}
	routed := makeLog("routed")
	routed.Action = "app.routed"
	for _, write := range writePaths(schema) {
		logs := withSuffix([]audit.Log{makeLog("new-1"), stored, makeLog("new-2"), routed}, "-"+write.name, stored.ID)
		errs := write.do(t, r, logs)
		for i, err := range errs[:3] {
			if logs[i].ID == stored.ID && !errors.Is(err, audit.ErrAlreadyExists) || logs[i].ID != stored.ID && err != nil {
				t.Errorf("%s: log %s: unexpected result %v", write.name, logs[i].ID, err)
			}
		}
		// The COPY failed: the routed log went through an INSERT, which
		// followed the rule, as a lone INSERT would.
		if !errors.Is(errs[3], ErrNotStored) {
			t.Errorf("%s: log %s, routed by the rule: got %v, want ErrNotStored", write.name, logs[3].ID, errs[3])
		}
		checkStored(t, r, true, logs[0].ID, logs[2].ID)
	}
}
