package postgres

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/raystack/salt/audit"
)

// TestListUsesIndex shows with EXPLAIN ANALYZE that List reads a page as a
// range of an index, in order, and stops after Limit rows: no sequential
// scan, no sort, however large the table. It runs on 10k logs, and on a
// million with AUDIT_PG_LARGE=1. A small org is read through the org
// index; for an org that holds a large part of the table the planner may
// also read the time index and skip other orgs' rows, which is as cheap.
func TestListUsesIndex(t *testing.T) {
	n := 10_000
	if os.Getenv(largeEnv) != "" {
		n = 1_000_000
	}
	r := dataset(t, n)
	type listCase struct {
		name    string
		filter  audit.Filter
		indexes []string // any of them will do
		// strict forbids sorting and bitmap scans. They are the planner's
		// choice, and fine, for an org with fewer logs than a few pages
		// (the small org of the 10k dataset): it reads them all through
		// the org index and sorts them.
		strict bool
	}
	var cases []listCase
	for _, org := range []string{bigOrg, smallOrg} {
		indexes := []string{"audit_logs_org_created_idx"}
		if org == bigOrg {
			indexes = append(indexes, "audit_logs_created_idx")
		}
		deep := deepCursor(t, r, audit.Filter{OrgID: org}, orgDepth(org, n))
		strict := datasetOrgShare[org]*float64(n) >= 1000
		cases = append(cases,
			listCase{org + " first page", audit.Filter{OrgID: org}, indexes, strict},
			listCase{org + " keyset page", audit.Filter{OrgID: org, Cursor: deep}, indexes, strict},
			listCase{org + " keyset page, time range", audit.Filter{OrgID: org, Cursor: deep,
				Since: datasetStart, Until: datasetStart.AddDate(0, 0, 20)}, indexes, strict},
			listCase{org + " keyset page, action", audit.Filter{OrgID: org, Cursor: deep, Action: "app.user.updated"}, indexes, strict},
		)
	}
	deepAll := deepCursor(t, r, audit.Filter{}, min(10_000, n/2))
	cases = append(cases,
		listCase{"no org, first page", audit.Filter{}, []string{"audit_logs_created_idx"}, true},
		listCase{"no org, keyset page", audit.Filter{Cursor: deepAll}, []string{"audit_logs_created_idx"}, true},
	)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			sql, args, ok, err := r.listQuery(tt.filter)
			if err != nil || !ok {
				t.Fatalf("listQuery: %v, %v", ok, err)
			}
			plan := explain(t, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+sql, args...)
			t.Logf("%s\n%s", sql, plan)
			used := false
			for _, index := range tt.indexes {
				used = used || strings.Contains(plan, "Index Scan using "+index+" ") ||
					!tt.strict && strings.Contains(plan, "Bitmap Index Scan on "+index+" ")
			}
			if !used {
				t.Errorf("plan scans none of %v:\n%s", tt.indexes, plan)
			}
			bad := []string{"Seq Scan"}
			if tt.strict {
				bad = append(bad, "Sort", "Bitmap")
			}
			for _, bad := range bad {
				if strings.Contains(plan, bad) {
					t.Errorf("plan has a %s, want an index range scan in List's order:\n%s", bad, plan)
				}
			}
			if !strings.HasPrefix(plan, "Limit") {
				t.Errorf("plan does not stop at the page's Limit:\n%s", plan)
			}
			// The work is one page's, whatever the size of the table.
			if n := pageBuffers(t, plan); n > maxPageBuffers {
				t.Errorf("the page touched %d buffers, want at most %d:\n%s", n, maxPageBuffers, plan)
			}
		})
	}
}

// maxPageBuffers bounds the buffers (8 kB pages of table and index) that
// reading one page of 100 logs may touch. A page of logs that are stored
// together touches a few dozen; the worst case here, one log in five
// matching, about a hundred.
const maxPageBuffers = 300

var buffersRE = regexp.MustCompile(`Buffers: shared( hit=(\d+))?( read=(\d+))?`)

// pageBuffers returns the buffers the plan's top node touched. Nodes are
// printed top first, and a node's count includes its children's, so the
// first Buffers line of the nodes (before the planner's own, under
// "Planning:") is the top node's. A plan without one fails the test: the
// bound on buffers would check nothing.
func pageBuffers(t *testing.T, plan string) int {
	t.Helper()
	nodes, _, _ := strings.Cut(plan, "\nPlanning")
	m := buffersRE.FindStringSubmatch(nodes)
	if m == nil || m[1] == "" && m[3] == "" {
		t.Fatalf("the plan has no Buffers: shared hit=... read=... line; was it made with EXPLAIN (ANALYZE, BUFFERS)?\n%s", plan)
	}
	hit, _ := strconv.Atoi(m[2])
	read, _ := strconv.Atoi(m[4])
	return hit + read
}

// orgDepth is how deep in an org's logs the keyset pages of plan tests and
// benchmarks start: 10000 logs, or half the org's logs if it has fewer
// than 20000.
func orgDepth(org string, n int) int {
	return min(10_000, int(datasetOrgShare[org]*float64(n))/2)
}

// explain runs an EXPLAIN statement planned for its arguments' values, as
// List's queries are, and returns its text.
func explain(t *testing.T, sql string, args ...any) string {
	t.Helper()
	rows, err := mustPool(t).Query(context.Background(), sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return strings.Join(lines, "\n")
}

// deepCursor returns the cursor after the first depth logs that match f.
func deepCursor(tb testing.TB, r *Repository, f audit.Filter, depth int) string {
	tb.Helper()
	for depth > 0 {
		f.Limit = min(audit.MaxLimit, depth)
		page, err := r.List(context.Background(), f)
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) < f.Limit {
			tb.Fatalf("only %d logs match %+v", len(page), f)
		}
		f.Cursor = audit.NextCursor(page)
		depth -= len(page)
	}
	return f.Cursor
}
