package audittest

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

func checkListOrder(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(7)
	// Distinct microseconds, some close together and some a second apart,
	// some given in other zones; IDs are random, so they tell nothing
	// about the order.
	logs := g.logs(60, "order-", func(i int) time.Time {
		if i%2 == 0 {
			return at(i, g.ns())
		}
		return at(i*1_000_003, g.ns())
	}, func(i int, l *audit.Log) {
		switch i % 3 {
		case 1:
			l.CreatedAt = l.CreatedAt.In(zoneEast)
		case 2:
			l.CreatedAt = l.CreatedAt.In(zoneWest)
		}
	})
	// Times of one second written with 0 to 6 fractional digits: a store
	// that orders times as text, which leaves out trailing zeros, orders
	// them wrongly.
	second := base.Truncate(time.Second).Add(time.Minute)
	for _, us := range []int{0, 100000, 120000, 123000, 123400, 123450, 123456, 900000, 999999} {
		logs = append(logs, newLog(g.id("order-"), second.Add(time.Duration(us)*time.Microsecond)))
	}
	g.shuffle(logs)
	repo := k.mustRepo(t)
	all := k.mustCreate(t, repo, logs...)
	k.checkList(t, repo, audit.Filter{Limit: audit.MaxLimit}, all)
	k.checkList(t, repo, audit.Filter{}, all)
	k.checkList(t, repo, audit.Filter{Limit: 10}, all)
	k.checkWalk(t, repo, audit.Filter{Limit: 7}, all)
}

// tieIDs differ in ways that byte order and collations disagree about:
// case, punctuation, digits as numbers, accents composed or not, and
// characters above U+FFFF against those in U+E000 to U+FFFF, which UTF-16
// code units (SQL Server's _BIN2 collations, Java, JavaScript) order the
// other way round.
var tieIDs = []string{
	"a", "B", "b", "A", "_", "-", "a-1", "a1", "a_1", "aa", "Z", "z", "0", "9", "10", "2", "~",
	"\u00e9", "e\u0301", "e", "f", "\u00fc", "u", "\U0001D518", "a b", "ab", "a.b", "A-1", "\u00c9",
	"\uff21", "\ufb01", "\ue000", "\U0001F510",
}

func checkListTieBreak(t *testing.T, k *kit) {
	t.Helper()
	// Two groups of logs that share a microsecond each. Within a group the
	// nanoseconds, which the repository must truncate, run opposite to the
	// IDs, so a store that keeps them orders the group wrongly.
	sorted := slices.Clone(tieIDs)
	slices.Sort(sorted)
	g := newGen(8)
	var logs []audit.Log
	for rank, id := range sorted {
		ns := 999 - rank*999/len(sorted)
		logs = append(logs, newLog(id, at(50, ns)), newLog(id+"@40", at(40, ns).In(zoneEast)))
	}
	logs = append(logs, newLog("newer", at(51, 0)), newLog("older", at(39, 999)))
	g.shuffle(logs)

	repo := k.mustRepo(t)
	all := k.mustCreate(t, repo, logs...)
	k.checkList(t, repo, audit.Filter{Limit: audit.MaxLimit}, all)
	k.checkList(t, repo, audit.Filter{Since: at(50, 0), Until: at(51, 0)}, all)
	// Pages that end inside a group continue by ID.
	k.checkWalk(t, repo, audit.Filter{Limit: 1}, all)
	k.checkWalk(t, repo, audit.Filter{Limit: 4}, all)
	// Cursors inside a group at IDs no log has. By bytes, U+FFFF and
	// U+10000 both sort above the IDs in U+E000 to U+FFFF and below those
	// above U+FFFF; by UTF-16 code units, U+FFFF sorts above all of them
	// and U+10000 below.
	for _, id := range []string{"\uffff", "\U00010000"} {
		k.checkList(t, repo, audit.Filter{Cursor: cursorAt(at(50, 0), id), Limit: audit.MaxLimit}, all)
	}
}

// dimension is one exact-match field of Filter, with the values the logs
// of checkFilterFields take for it. Values differ in case, trailing space
// and Unicode normalization, which a store comparing other than byte by
// byte confuses.
type dimension struct {
	name   string
	values []string
	set    func(l *audit.Log, v string)
	get    func(l audit.Log) string
	filter func(f *audit.Filter, v string)
}

var dimensions = []dimension{
	{"OrgID", []string{"org-a", "org-b", "Org-A", ""},
		func(l *audit.Log, v string) { l.OrgID = v }, func(l audit.Log) string { return l.OrgID },
		func(f *audit.Filter, v string) { f.OrgID = v }},
	{"Source", []string{"billing", "Billing", "billing ", "shop"},
		func(l *audit.Log, v string) { l.Source = v }, func(l audit.Log) string { return l.Source },
		func(f *audit.Filter, v string) { f.Source = v }},
	{"Action", []string{"app.user.created", "app.user.deleted", "app.user"},
		func(l *audit.Log, v string) { l.Action = v }, func(l audit.Log) string { return l.Action },
		func(f *audit.Filter, v string) { f.Action = v }},
	{"ActorID", []string{"u1", "u2", "u10", ""},
		func(l *audit.Log, v string) { l.Actor.ID = v }, func(l audit.Log) string { return l.Actor.ID },
		func(f *audit.Filter, v string) { f.ActorID = v }},
	{"ActorType", []string{audit.ActorTypeUser, audit.ActorTypeService, audit.ActorTypeSystem},
		func(l *audit.Log, v string) { l.Actor.Type = v }, func(l audit.Log) string { return l.Actor.Type },
		func(f *audit.Filter, v string) { f.ActorType = v }},
	{"TargetID", []string{"caf\u00e9", "cafe\u0301", "t1", ""},
		func(l *audit.Log, v string) { l.Target.ID = v }, func(l audit.Log) string { return l.Target.ID },
		func(f *audit.Filter, v string) { f.TargetID = v }},
	{"TargetType", []string{"order", "user", ""},
		func(l *audit.Log, v string) { l.Target.Type = v }, func(l audit.Log) string { return l.Target.Type },
		func(f *audit.Filter, v string) { f.TargetType = v }},
}

func checkFilterFields(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(9)
	metadata := []map[string]string{nil, {"outcome": "success"}, {"outcome": "denied", "ip": "192.0.2.1"}}
	logs := g.logs(300, "field-", func(i int) time.Time { return at(i/3, g.ns()) }, func(_ int, l *audit.Log) {
		for _, d := range dimensions {
			d.set(l, d.values[g.rng.IntN(len(d.values))])
		}
		l.Metadata = metadata[g.rng.IntN(len(metadata))]
	})
	repo := k.mustRepo(t)
	all := k.mustCreate(t, repo, logs...)

	type tc struct {
		name string
		f    audit.Filter
	}
	var filters []tc
	for _, d := range dimensions {
		for _, v := range append(slices.Clone(d.values), "absent") {
			if v == "" {
				continue // "" matches any value
			}
			f := audit.Filter{Limit: audit.MaxLimit}
			d.filter(&f, v)
			filters = append(filters, tc{d.name + "=" + strconv.Quote(v), f})
		}
	}
	filters = append(filters, tc{"Source longer than any stored string", audit.Filter{Source: fill(audit.MaxMetadataValueLen, "s")}})

	// Combinations built from stored logs, so that each matches something.
	for n, l := range all[:12] {
		prefix := "log" + strconv.Itoa(n) + ":"
		for i := range dimensions {
			d, e := dimensions[i], dimensions[(i+1)%len(dimensions)]
			if d.get(l) == "" || e.get(l) == "" {
				continue
			}
			f := audit.Filter{Limit: audit.MaxLimit}
			d.filter(&f, d.get(l))
			e.filter(&f, e.get(l))
			filters = append(filters, tc{prefix + d.name + "+" + e.name, f})
		}
		every := audit.Filter{Limit: audit.MaxLimit, Metadata: l.Metadata}
		for _, d := range dimensions {
			d.filter(&every, d.get(l))
		}
		filters = append(filters, tc{prefix + "every field", every})
		every.Since, every.Until = l.CreatedAt, l.CreatedAt.Add(time.Microsecond)
		filters = append(filters, tc{prefix + "every field and its microsecond", every})
	}
	filters = append(filters,
		tc{"Source and Action, default limit", audit.Filter{Source: "billing", Action: "app.user"}},
		tc{"OrgID and ActorType, limit 5", audit.Filter{OrgID: "org-a", ActorType: audit.ActorTypeService, Limit: 5}},
		tc{"no field", audit.Filter{Limit: audit.MaxLimit}},
	)
	for _, tt := range filters {
		t.Run(tt.name, func(t *testing.T) {
			k.checkList(t, repo, tt.f, all)
		})
	}
}

func checkFilterTimeRange(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(10)
	// Two logs in each of microseconds 0 to 19, with 500 to 999 extra
	// nanoseconds that the repository truncates: a bound a nanosecond after
	// a whole microsecond falls between the stored time and the given one.
	logs := g.logs(40, "time-", func(i int) time.Time { return at(i/2, 500+g.rng.IntN(500)) }, func(i int, l *audit.Log) {
		l.Source = []string{"a", "b"}[i%2]
	})
	repo := k.mustRepo(t)
	all := k.mustCreate(t, repo, logs...)

	for _, tt := range []struct {
		name string
		f    audit.Filter
	}{
		{"Since at a stored time", audit.Filter{Since: at(10, 0)}},
		{"Since a nanosecond after a stored time", audit.Filter{Since: at(10, 1)}},
		{"Since just before the next microsecond", audit.Filter{Since: at(10, 999)}},
		{"Until at a stored time", audit.Filter{Until: at(10, 0)}},
		{"Until a nanosecond after a stored time", audit.Filter{Until: at(10, 1)}},
		{"Until the next microsecond", audit.Filter{Until: at(11, 0)}},
		{"Since equal to Until", audit.Filter{Since: at(10, 0), Until: at(10, 0)}},
		{"window", audit.Filter{Since: at(5, 0), Until: at(15, 0)}},
		{"window in other zones", audit.Filter{Since: at(5, 0).In(zoneEast), Until: at(15, 0).In(zoneWest)}},
		{"window with nanoseconds", audit.Filter{Since: at(4, 999), Until: at(16, 1)}},
		{"window of one microsecond", audit.Filter{Since: at(7, 0), Until: at(8, 0)}},
		{"Since before every log", audit.Filter{Since: at(-100, 0)}},
		{"Since after every log", audit.Filter{Since: at(20, 0)}},
		{"Until after every log", audit.Filter{Until: at(100, 0)}},
		{"Until before every log", audit.Filter{Until: at(0, 0)}},
		{"window and Source", audit.Filter{Since: at(3, 0), Until: at(17, 500), Source: "a"}},
		{"window, limit 3", audit.Filter{Since: at(3, 0), Until: at(17, 0), Limit: 3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k.checkList(t, repo, tt.f, all)
		})
	}

	// An open bound is open: it excludes neither the years before 1970
	// nor those after now.
	repo = k.mustRepo(t)
	var far []audit.Log
	for i, createdAt := range []time.Time{
		time.Date(1, time.January, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(1969, time.December, 31, 23, 59, 59, 999999000, time.UTC),
		time.Unix(0, 0).UTC(),
		base,
		time.Now().Add(time.Hour),
		time.Date(9999, time.December, 31, 23, 59, 59, 999999000, time.UTC),
	} {
		far = append(far, newLog(fmt.Sprintf("far-%d", i), createdAt))
	}
	all = k.mustCreate(t, repo, far...)
	for _, f := range []audit.Filter{
		{},
		{Since: time.Date(1969, time.January, 1, 0, 0, 0, 0, time.UTC)},
		{Until: time.Date(1970, time.January, 1, 0, 0, 0, 1, time.UTC)},
		{Since: base},
		{Until: time.Date(9999, time.December, 31, 23, 59, 59, 999999001, time.UTC)},
	} {
		k.checkList(t, repo, f, all)
	}
}

func checkFilterMetadata(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(11)
	metadata := []map[string]string{
		nil,
		{},
		{"outcome": "success"},
		{"outcome": "success", "ip": "192.0.2.1"},
		{"outcome": "success", "ip": "192.0.2.1", "request_id": "r-1"},
		{"outcome": "denied", "ip": "192.0.2.1"},
		{"outcome": "Success"},
		{"Outcome": "success"},
		{"outcome": "success "},
		{"empty": ""},
		{"empty": "x"},
		{"\u043a\u043b\u044e\u0447": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435"},
		// Keys that a store building a JSON path or a query from them gets
		// wrong: dotted, quoted, escaped, operators.
		{"a.b": "dotted", "a": "plain"},
		{"it's": "quoted", `say "hi"`: "double", `back\slash`: "escaped", "$gt": "operator"},
	}
	logs := g.logs(3*len(metadata), "md-", func(i int) time.Time { return at(i, g.ns()) }, func(i int, l *audit.Log) {
		l.Metadata = metadata[i%len(metadata)]
		l.Action = []string{"app.a", "app.b", "app.c"}[i%3]
	})
	repo := k.mustRepo(t)
	all := k.mustCreate(t, repo, logs...)

	for _, tt := range []struct {
		name string
		f    audit.Filter
	}{
		{"one pair", audit.Filter{Metadata: map[string]string{"outcome": "success"}}},
		{"two pairs", audit.Filter{Metadata: map[string]string{"outcome": "success", "ip": "192.0.2.1"}}},
		{"three pairs", audit.Filter{Metadata: map[string]string{"outcome": "success", "ip": "192.0.2.1", "request_id": "r-1"}}},
		{"pairs no log holds together", audit.Filter{Metadata: map[string]string{"outcome": "denied", "request_id": "r-1"}}},
		{"key only some logs hold", audit.Filter{Metadata: map[string]string{"ip": "192.0.2.1"}}},
		{"empty value", audit.Filter{Metadata: map[string]string{"empty": ""}}},
		{"empty value of an absent key", audit.Filter{Metadata: map[string]string{"absent": ""}}},
		{"value of an absent key", audit.Filter{Metadata: map[string]string{"absent": "x"}}},
		{"value in other case", audit.Filter{Metadata: map[string]string{"outcome": "Success"}}},
		{"key in other case", audit.Filter{Metadata: map[string]string{"Outcome": "success"}}},
		{"value with trailing space", audit.Filter{Metadata: map[string]string{"outcome": "success "}}},
		{"Unicode pair", audit.Filter{Metadata: map[string]string{"\u043a\u043b\u044e\u0447": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435"}}},
		{"empty map", audit.Filter{Metadata: map[string]string{}}},
		{"dotted key", audit.Filter{Metadata: map[string]string{"a.b": "dotted"}}},
		{"quoted keys", audit.Filter{Metadata: map[string]string{"it's": "quoted", `say "hi"`: "double"}}},
		{"escaped key and an operator", audit.Filter{Metadata: map[string]string{`back\slash`: "escaped", "$gt": "operator"}}},
		{"pair and Action", audit.Filter{Metadata: map[string]string{"outcome": "success"}, Action: "app.b"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k.checkList(t, repo, tt.f, all)
		})
	}
}

func checkFilterInvalid(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(12)
	repo := k.mustRepo(t)
	k.mustCreate(t, repo, g.logs(5, "invalid-filter-", func(i int) time.Time { return at(i, 0) }, nil)...)
	for _, tt := range []struct {
		name string
		f    audit.Filter
	}{
		{"Limit negative", audit.Filter{Limit: -1}},
		{"Limit above MaxLimit", audit.Filter{Limit: audit.MaxLimit + 1}},
		{"Limit MaxInt", audit.Filter{Limit: math.MaxInt}},
		{"Since after Until", audit.Filter{Since: at(1, 0), Until: at(0, 0)}},
		{"Since a nanosecond after Until", audit.Filter{Since: at(0, 1), Until: at(0, 0)}},
		{"OrgID invalid UTF-8", audit.Filter{OrgID: "org-\xff"}},
		{"Source NUL byte", audit.Filter{Source: "s\x00"}},
		{"Action invalid UTF-8", audit.Filter{Action: "\xc3"}},
		{"ActorID NUL byte", audit.Filter{ActorID: "\x00"}},
		{"ActorType invalid UTF-8", audit.Filter{ActorType: "user\xfe"}},
		{"TargetID NUL byte", audit.Filter{TargetID: "t\x00"}},
		{"TargetType invalid UTF-8", audit.Filter{TargetType: "\xed\xa0\x80"}},
		{"Source too long to be stored anywhere", audit.Filter{Source: fill(audit.MaxMetadataValueLen+1, "s")}},
		{"Metadata empty key", audit.Filter{Metadata: map[string]string{"": "v"}}},
		{"Metadata key invalid UTF-8", audit.Filter{Metadata: map[string]string{"\xff": "v"}}},
		{"Metadata value NUL byte", audit.Filter{Metadata: map[string]string{"k": "v\x00"}}},
		{"Cursor not a cursor", audit.Filter{Cursor: "not-a-cursor"}},
	} {
		if err := tt.f.Validate(); err == nil {
			t.Fatalf("audittest: %s: %s passes Filter.Validate; the case is wrong", tt.name, fmtFilter(tt.f))
		}
		page, err := repo.List(bg, tt.f)
		if !k.checkErrorIs(t, tt.name+": List("+fmtFilter(tt.f)+")", err, audit.ErrInvalidFilter) && len(page) > 0 {
			t.Logf("\tList returned %d logs %s", len(page), fmtIDs(page))
		}
	}
}

func checkListLimit(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(13)
	const n = 250 // more than DefaultLimit, fewer than MaxLimit
	logs := g.logs(n, "limit-", func(i int) time.Time { return at(i/3, g.ns()) }, func(i int, l *audit.Log) {
		l.OrgID = []string{"org-a", "org-b"}[i%2]
	})
	repo := k.mustRepo(t)
	all := k.mustCreate(t, repo, logs...)
	for _, f := range []audit.Filter{
		{}, {Limit: 1}, {Limit: 2}, {Limit: 7}, {Limit: audit.DefaultLimit - 1}, {Limit: audit.DefaultLimit},
		{Limit: audit.DefaultLimit + 1}, {Limit: n - 1}, {Limit: n}, {Limit: n + 1}, {Limit: audit.MaxLimit},
		{OrgID: "org-a"}, {OrgID: "org-a", Limit: n/2 - 1}, {OrgID: "org-a", Limit: n / 2}, {OrgID: "org-a", Limit: n/2 + 1},
	} {
		k.checkList(t, repo, f, all)
	}
	for _, limit := range []int{-1, audit.MaxLimit + 1} {
		f := audit.Filter{Limit: limit}
		_, err := repo.List(bg, f)
		k.checkErrorIs(t, "List("+fmtFilter(f)+")", err, audit.ErrInvalidFilter)
	}
}

func checkTenantIsolation(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(14)
	// Orgs whose IDs differ by case, trailing space or a suffix, with
	// logs interleaved in time and otherwise alike.
	orgs := []string{"org-a", "org-b", "org-a ", "ORG-A", "org-ab", "org", ""}
	logs := g.logs(15*len(orgs), "tenant-", func(i int) time.Time { return at(i/len(orgs), g.ns()) }, func(i int, l *audit.Log) {
		l.OrgID = orgs[i%len(orgs)]
		l.Metadata["outcome"] = audit.OutcomeSuccess
	})
	repo := k.mustRepo(t)
	all := k.mustCreate(t, repo, logs...)

	checkOrg := func(t *testing.T, what, org string, got []audit.Log) {
		t.Helper()
		for _, l := range got {
			if l.OrgID != org {
				t.Errorf("%s: got a log of org %s, want only org %s: %s\n\t%s", what, fmtString(l.OrgID), fmtString(org), k.rule, fmtLog(l))
			}
		}
	}
	for i, org := range orgs {
		if org == "" {
			continue
		}
		t.Run("OrgID="+strconv.Quote(org), func(t *testing.T) {
			f := audit.Filter{OrgID: org, Limit: 4}
			got, _ := k.checkWalk(t, repo, f, all)
			checkOrg(t, "walking List("+fmtFilter(f)+")", org, got)

			f = audit.Filter{OrgID: org, Source: "audittest", ActorType: audit.ActorTypeUser,
				Metadata: map[string]string{"outcome": audit.OutcomeSuccess}, Since: at(2, 0), Limit: audit.MaxLimit}
			k.checkList(t, repo, f, all)
			checkOrg(t, "List("+fmtFilter(f)+")", org, k.mustList(t, repo, f))

			// A cursor carries a position, not an org: one made from
			// another org's page still lists this org only.
			other := orgs[(i+1)%len(orgs)]
			f = audit.Filter{OrgID: other, Limit: 5}
			f = audit.Filter{OrgID: org, Cursor: audit.NextCursor(k.mustList(t, repo, f)), Limit: audit.MaxLimit}
			k.checkList(t, repo, f, all)
			checkOrg(t, "List("+fmtFilter(f)+")", org, k.mustList(t, repo, f))
		})
	}
	// Without OrgID, List is not tenant scoped: every org's logs.
	k.checkWalk(t, repo, audit.Filter{Limit: 40}, all)
}
