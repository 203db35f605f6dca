package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

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
	stored := makeLog("stored")
	if err := r.Create(ctx, &stored); err != nil {
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
	var (
		ok      = func(err error) bool { return err == nil }
		dup     = func(err error) bool { return errors.Is(err, audit.ErrAlreadyExists) }
		dropped = func(err error) bool { return errors.Is(err, ErrNotStored) && !errors.Is(err, audit.ErrAlreadyExists) }
	)
	for _, batch := range []struct {
		name  string
		logs  []audit.Log
		wants []func(error) bool
	}{
		{"some dropped", []audit.Log{makeLog("a"), drop(makeLog("b")), makeLog("c"), drop(makeLog("d"))}, []func(error) bool{ok, dropped, ok, dropped}},
		{"all dropped", []audit.Log{drop(makeLog("e")), drop(makeLog("f")), drop(makeLog("g"))}, []func(error) bool{dropped, dropped, dropped}},
		// A stored ID sends the batch to INSERT ... ON CONFLICT DO NOTHING,
		// which returns neither the duplicate nor the dropped row.
		{"dropped and duplicate", []audit.Log{makeLog("h"), stored, drop(makeLog("i"))}, []func(error) bool{ok, dup, dropped}},
		// A dropped row whose ID is stored already is not that log.
		{"dropped with a stored id", []audit.Log{makeLog("j"), drop(stored)}, []func(error) bool{ok, dropped}},
		{"one, dropped", []audit.Log{drop(makeLog("k"))}, []func(error) bool{dropped}},
	} {
		for _, write := range writePaths(schema) {
			logs := withSuffix(batch.logs, "-"+write.name, "stored")
			for i, err := range write.do(t, r, logs) {
				if !batch.wants[i](err) {
					t.Errorf("%s, %s: log %s (%s): unexpected result %v", batch.name, write.name, logs[i].ID, logs[i].Action, err)
				}
			}
		}
	}
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
	if want := 1 + 2*(2+0+1+1) + callers/8; n != want {
		t.Errorf("logs stored: got %d, want %d", n, want)
	}
}

// withSuffix returns a copy of logs whose IDs, but keep, end with suffix.
func withSuffix(logs []audit.Log, suffix, keep string) []audit.Log {
	out := make([]audit.Log, len(logs))
	for i, l := range logs {
		out[i] = l.Clone()
		if l.ID != keep {
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
	bad := makeLog("bad")
	// Random letters: the server compresses an index entry that is too
	// large, and repeated ones would fit.
	rng := rand.New(rand.NewPCG(1, 2))
	id := make([]byte, audit.MaxMetadataValueLen)
	for i := range id {
		id[i] = 'a' + byte(rng.IntN(26))
	}
	bad.Metadata[audit.MetadataRequestID] = string(id)
	if err := bad.Validate(); err != nil {
		t.Fatal(err)
	}
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

// TestRowSecurityFailsOneRow writes, as the service's role, under a
// row-level security policy that refuses some rows. The server refuses
// COPY into such a table, and the batch is written with INSERT instead;
// the policy's error (42501, like a missing privilege) fails the refused
// log alone.
func TestRowSecurityFailsOneRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	role := schema + "_service"
	createRoles(t, role)
	for _, sql := range []string{
		"GRANT USAGE ON SCHEMA " + schema + " TO " + role,
		"GRANT SELECT, INSERT ON " + schema + ".audit_logs TO " + role,
		"ALTER TABLE " + schema + ".audit_logs ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY readable ON " + schema + ".audit_logs FOR SELECT USING (true)",
		"CREATE POLICY no_forbidden ON " + schema + ".audit_logs FOR INSERT WITH CHECK (action <> 'app.forbidden')",
	} {
		if _, err := mustPool(t).Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	rp := rolePool(t, role)
	r := NewRepository(rp, WithSchema(schema))
	t.Cleanup(func() { _ = r.Close() })
	bad := makeLog("bad")
	bad.Action = "app.forbidden"
	logs := []audit.Log{makeLog("good-1"), bad, makeLog("good-2"), makeLog("good-3")}
	check := func(what string, logs []audit.Log, errs []error) {
		t.Helper()
		for i, err := range errs {
			if isBad := logs[i].Action == bad.Action; isBad && sqlState(err) != "42501" || !isBad && err != nil {
				t.Errorf("%s: log %s: unexpected result %v", what, logs[i].ID, err)
			}
		}
	}
	batch := withSuffix(logs, "-flush", "")
	check("flush", batch, flushLogs(t, r, batch))
	batch = withSuffix(logs, "-stream", "")
	check("stream", batch, streamLogs(t, idleRepositoryOn(t, rp, schema), batch))
	batch = withSuffix(logs, "-concurrent", "")
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	for i := range batch {
		wg.Go(func() { errs[i] = r.Create(ctx, &batch[i]) })
	}
	wg.Wait()
	check("concurrent", batch, errs)
}
