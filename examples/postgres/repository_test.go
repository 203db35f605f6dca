package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

// roundTripLogs are logs at the edges of what a log may hold, with IDs
// that start with prefix.
func roundTripLogs(prefix string) []audit.Log {
	logs := []audit.Log{makeLog("full"), makeLog("nil-md"), makeLog("empty-md"), makeLog("no-org"),
		makeLog("ünïcode-🙂"), makeLog("zone"), makeLog("min-time"), makeLog("max-time"), makeLog("bounds")}
	logs[1].Metadata = nil
	logs[2].Metadata = map[string]string{}
	logs[3].OrgID = ""
	logs[4].Actor.Name = `Zoë "quoted" \ back <tag> & amp`
	logs[4].Metadata = map[string]string{"k\"ey": "v\nal\tue \u2028 🙂 \x01\x7f", "html": "<script>&</script>", "empty": ""}
	logs[5].CreatedAt = time.Date(2025, 1, 2, 3, 4, 5, 999999999, time.FixedZone("X", -7*3600))
	logs[6].CreatedAt = time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)
	logs[7].CreatedAt = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	long := func(n int) string { return strings.Repeat("é", n/2) }
	logs[8] = audit.Log{
		ID: "bounds" + strings.Repeat("x", audit.MaxIDLen-6-len(prefix)), OrgID: long(audit.MaxOrgIDLen),
		Source: long(audit.MaxSourceLen), Action: long(audit.MaxActionLen),
		Actor:     audit.Actor{ID: long(audit.MaxEntityIDLen), Type: long(audit.MaxEntityTypeLen), Name: long(audit.MaxEntityNameLen)},
		Target:    audit.Target{ID: long(audit.MaxEntityIDLen), Type: long(audit.MaxEntityTypeLen), Name: long(audit.MaxEntityNameLen)},
		Metadata:  map[string]string{},
		CreatedAt: testTime,
	}
	for i := range audit.MaxMetadataKeys {
		logs[8].Metadata[fmt.Sprintf("%03d", i)+long(audit.MaxMetadataKeyLen-3)] = long(audit.MaxMetadataValueLen)
	}
	for i := range logs {
		logs[i].ID = prefix + logs[i].ID
	}
	return logs
}

// TestCreateGetRoundTrip stores edge-case logs in each of the ways a log
// is written (a lone Create's INSERT, a group commit batch's COPY, and
// CreateBatch) and reads them back.
func TestCreateGetRoundTrip(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	ctx := context.Background()

	alone := roundTripLogs("alone-")
	for i := range alone {
		in := alone[i].Clone()
		if err := r.Create(ctx, &alone[i]); err != nil {
			t.Fatalf("Create(%s): %v", in.ID, err)
		}
		if !reflect.DeepEqual(alone[i].Clone(), in) {
			t.Errorf("Create modified its argument: got %+v, want %+v", alone[i], in)
		}
	}

	batch := roundTripLogs("batch-")
	var reqs []*request
	for i := range batch {
		rw, err := newRow(&batch[i])
		if err != nil {
			t.Fatal(err)
		}
		req := &request{row: rw, tuple: appendCopyRow(nil, &rw), done: make(chan error, 1)}
		req.state.Store(taken)
		reqs = append(reqs, req)
	}
	r.flush(reqs)
	for i, req := range reqs {
		if err := <-req.done; err != nil {
			t.Fatalf("group commit of %s: %v", batch[i].ID, err)
		}
	}

	imported := roundTripLogs("import-")
	ptrs := make([]*audit.Log, len(imported))
	for i := range imported {
		ptrs[i] = &imported[i]
	}
	if err := r.CreateBatch(ctx, ptrs); err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}

	for _, logs := range [][]audit.Log{alone, batch, imported} {
		for _, in := range logs {
			got, err := r.GetByID(ctx, in.ID)
			if err != nil {
				t.Fatalf("GetByID(%s): %v", in.ID, err)
			}
			want := in.Clone()
			want.CreatedAt = in.CreatedAt.UTC().Truncate(time.Microsecond)
			checkLog(t, got, want)
		}
	}
}

// checkLog compares logs, treating nil and empty metadata alike.
func checkLog(t *testing.T, got, want audit.Log) {
	t.Helper()
	got, want = got.Clone(), want.Clone()
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location: got %v, want UTC", got.CreatedAt.Location())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v,\nwant %+v", got, want)
	}
}

func TestCreateRejects(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	ctx := context.Background()
	first := makeLog("dup")
	if err := r.Create(ctx, &first); err != nil {
		t.Fatal(err)
	}
	first.CreatedAt = first.CreatedAt.Truncate(time.Microsecond)
	for _, tt := range []struct {
		name string
		log  audit.Log
		want error
	}{
		{"duplicate id", func() audit.Log { l := makeLog("dup"); l.Action = "app.user.forged"; return l }(), audit.ErrAlreadyExists},
		{"no id", makeLog(""), audit.ErrInvalidLog},
		{"NUL byte", func() audit.Log { l := makeLog("nul"); l.Actor.Name = "a\x00b"; return l }(), audit.ErrInvalidLog},
		{"invalid UTF-8", func() audit.Log { l := makeLog("utf8"); l.Metadata = map[string]string{"k": "\xff"}; return l }(), audit.ErrInvalidLog},
		{"before timestamptz", func() audit.Log { l := makeLog("early"); l.CreatedAt = minTime.Add(-time.Microsecond); return l }(), audit.ErrInvalidLog},
		{"after timestamptz", func() audit.Log { l := makeLog("late"); l.CreatedAt = maxTime; return l }(), audit.ErrInvalidLog},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := r.Create(ctx, &tt.log)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want an error wrapping %v", err, tt.want)
			}
			if tt.log.ID == "" {
				return
			}
			got, err := r.GetByID(ctx, tt.log.ID)
			if errors.Is(tt.want, audit.ErrAlreadyExists) {
				if err != nil {
					t.Fatal(err)
				}
				checkLog(t, got, first) // the stored log is kept
			} else if !errors.Is(err, audit.ErrNotFound) {
				t.Errorf("GetByID after a rejected Create: got %v, want ErrNotFound", err)
			}
		})
	}
}

func TestGetByIDNotFound(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	for _, id := range []string{"missing", "", "a\x00b", "\xff", strings.Repeat("x", audit.MaxIDLen+1)} {
		if _, err := r.GetByID(context.Background(), id); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("GetByID(%q): got %v, want ErrNotFound", id, err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l := makeLog("canceled")
	if err := r.Create(ctx, &l); !errors.Is(err, context.Canceled) {
		t.Errorf("Create: got %v, want context.Canceled", err)
	}
	if _, err := r.List(ctx, audit.Filter{}); !errors.Is(err, context.Canceled) {
		t.Errorf("List: got %v, want context.Canceled", err)
	}
	if _, err := r.GetByID(ctx, "canceled"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetByID: got %v, want context.Canceled", err)
	}
	if err := r.CreateBatch(ctx, []*audit.Log{&l}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateBatch: got %v, want context.Canceled", err)
	}
	if _, err := r.GetByID(context.Background(), "canceled"); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("GetByID after canceled creates: got %v, want ErrNotFound", err)
	}
}

func TestListInvalidFilter(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	for _, f := range []audit.Filter{
		{Limit: -1},
		{Limit: audit.MaxLimit + 1},
		{Cursor: "not a cursor"},
		{Since: testTime, Until: testTime.Add(-time.Second)},
		{ActorID: "\x00"},
	} {
		if _, err := r.List(context.Background(), f); !errors.Is(err, audit.ErrInvalidFilter) {
			t.Errorf("List(%+v): got %v, want ErrInvalidFilter", f, err)
		}
	}
}

// TestListMatchesMemory checks List against the reference implementation:
// the same logs go into both, and every filter pages through the same
// sequence of logs in both. Times collide on purpose, so that order falls
// to IDs, which include non-ASCII bytes.
func TestListMatchesMemory(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	mem := audit.NewMemoryRepository()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	times := make([]time.Time, 40)
	for i := range times {
		times[i] = base.Add(time.Duration(rng.IntN(3_600_000_000)) * time.Microsecond)
	}
	var logs []*audit.Log
	for i := range 600 {
		l := &audit.Log{
			ID:        fmt.Sprintf("%s-%04d", pick("a", "B", "z", "é", "日本", "~"), i),
			OrgID:     pick("", "org-1", "org-2", "org-3"),
			Source:    pick("frontier", "shield"),
			Action:    pick("app.user.created", "app.user.deleted", "app.group.updated"),
			Actor:     audit.Actor{ID: pick("", "u1", "u2", "svc"), Type: pick("user", "service")},
			Target:    audit.Target{ID: pick("t1", "t2", "t3", ""), Type: pick("user", "group", "")},
			CreatedAt: times[rng.IntN(len(times))].Add(time.Duration(rng.IntN(1000))), // ns below µs
		}
		if rng.IntN(3) > 0 {
			l.Metadata = map[string]string{"outcome": pick("success", "failure"), "ip": pick("1", "2")}
		}
		logs = append(logs, l)
		if err := mem.Create(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	// Half through group commit, concurrently; half through COPY.
	errs := make(chan error, len(logs))
	for _, l := range logs[:300] {
		go func() { errs <- r.Create(ctx, l) }()
	}
	for range 300 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := r.CreateBatch(ctx, logs[300:]); err != nil {
		t.Fatal(err)
	}

	at := func(i int) time.Time { return times[i].Add(time.Duration(i) * 333) }
	filters := []audit.Filter{
		{},
		{Limit: 7},
		{OrgID: "org-1", Limit: 13},
		{OrgID: "", Source: "shield", Limit: 50},
		{Action: "app.user.deleted", ActorType: "service"},
		{ActorID: "u1", TargetType: "group", Limit: 3},
		{TargetID: "t2", Metadata: map[string]string{"outcome": "failure"}, Limit: 9},
		{Metadata: map[string]string{"outcome": "success", "ip": "2"}, Limit: 11},
		{Metadata: map[string]string{"missing": "x"}},
		{Since: at(3), Limit: 17},
		{Until: at(5), Limit: 17},
		{OrgID: "org-2", Since: at(7), Until: at(8).Add(time.Hour)},
		{Since: times[9], Until: times[9]}, // empty range
		{Since: times[9], Until: times[9].Add(time.Microsecond), Limit: 1},
		{Since: times[10].Add(1), Limit: 5}, // rounds up to the next µs
		{Until: times[11].Add(1), Limit: 5},
		{Since: time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Since: time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Until: time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for i, f := range filters {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			want := pageAll(t, mem, f)
			got := pageAll(t, r, f)
			if len(got) != len(want) {
				t.Fatalf("got %d logs, want %d", len(got), len(want))
			}
			for j := range got {
				if got[j].ID != want[j].ID {
					t.Fatalf("log %d: got %s, want %s", j, got[j].ID, want[j].ID)
				}
				checkLog(t, got[j], want[j])
			}
		})
	}
}

// pageAll lists every page of f and checks page sizes.
func pageAll(t *testing.T, r audit.Repository, f audit.Filter) []audit.Log {
	t.Helper()
	var all []audit.Log
	for range 1000 {
		page, err := r.List(context.Background(), f)
		if err != nil {
			t.Fatalf("%T.List: %v", r, err)
		}
		if len(page) > f.PageSize() {
			t.Fatalf("%T.List: got %d logs, want at most %d", r, len(page), f.PageSize())
		}
		all = append(all, page...)
		if len(page) < f.PageSize() {
			return all
		}
		f.Cursor = audit.NextCursor(page)
	}
	t.Fatal("too many pages")
	return nil
}

func TestListForgedCursor(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	l := makeLog("x")
	if err := r.Create(context.Background(), &l); err != nil {
		t.Fatal(err)
	}
	// Cursors at the first and last times a valid log can have page as
	// usual; cursors holding a time no log can have are malformed, by the
	// audit package's contract, and never reach the database.
	for _, tt := range []struct {
		name    string
		at      time.Time
		want    int
		wantErr error
	}{
		{"first valid time", time.Time{}.Add(time.Microsecond), 0, nil},
		{"last valid time", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), 1, nil},
		{"far past", time.UnixMicro(-1 << 63), 0, audit.ErrInvalidFilter},
		{"far future", time.UnixMicro(1<<63 - 1), 0, audit.ErrInvalidFilter},
	} {
		cursor := audit.NextCursor([]audit.Log{{ID: "x", CreatedAt: tt.at}})
		page, err := r.List(context.Background(), audit.Filter{Cursor: cursor})
		if !errors.Is(err, tt.wantErr) || len(page) != tt.want {
			t.Errorf("%s: got %d logs, %v; want %d, %v", tt.name, len(page), err, tt.want, tt.wantErr)
		}
	}
}

func TestCreateBatch(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	ctx := context.Background()
	a, b := makeLog("a"), makeLog("b")
	b.Metadata = nil
	if err := r.CreateBatch(ctx, []*audit.Log{&a, &b}); err != nil {
		t.Fatal(err)
	}
	if err := r.CreateBatch(ctx, nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
	got, err := r.List(ctx, audit.Filter{})
	if err != nil || len(got) != 2 {
		t.Fatalf("List: got %d logs, %v; want 2", len(got), err)
	}
	for _, tt := range []struct {
		name string
		logs []audit.Log
		want error
	}{
		{"stored id", []audit.Log{makeLog("c"), makeLog("a")}, audit.ErrAlreadyExists},
		{"repeated id", []audit.Log{makeLog("d"), makeLog("d")}, audit.ErrAlreadyExists},
		{"invalid log", []audit.Log{makeLog("e"), makeLog("")}, audit.ErrInvalidLog},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ptrs := make([]*audit.Log, len(tt.logs))
			for i := range tt.logs {
				ptrs[i] = &tt.logs[i]
			}
			if err := r.CreateBatch(ctx, ptrs); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want an error wrapping %v", err, tt.want)
			}
			// Atomic: nothing of a failed batch is stored.
			if _, err := r.GetByID(ctx, tt.logs[0].ID); !errors.Is(err, audit.ErrNotFound) {
				t.Errorf("GetByID(%q) after a failed batch: got %v, want ErrNotFound", tt.logs[0].ID, err)
			}
		})
	}
}
