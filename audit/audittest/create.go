package audittest

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

// namedLog is a log made for one case, and the case's name.
type namedLog struct {
	name string
	log  audit.Log
}

// invalidLogs returns logs that Validate rejects, each named for why: a
// required field missing, and every string field over its bound, with
// invalid UTF-8 and with a NUL byte; the metadata bounds likewise.
func invalidLogs(g *gen) []namedLog {
	var out []namedLog
	with := func(name string, change func(l *audit.Log)) {
		l := newLog(g.id("invalid-"), at(0, 0))
		change(&l)
		out = append(out, namedLog{name, l})
	}
	for _, f := range fields {
		if f.required {
			with(f.name+" missing", func(l *audit.Log) { f.set(l, "") })
		}
		with(f.name+" one byte too long", func(l *audit.Log) { f.set(l, fill(f.max+1, "x")) })
		// Half as many characters as the bound, but more bytes.
		with(f.name+" too many bytes in fewer characters", func(l *audit.Log) { f.set(l, strings.Repeat("é", f.max/2+1)) })
		with(f.name+" invalid UTF-8", func(l *audit.Log) { f.set(l, "bad\xffutf8") })
		with(f.name+" NUL byte", func(l *audit.Log) { f.set(l, "nul\x00byte") })
	}
	with("created_at zero", func(l *audit.Log) { l.CreatedAt = time.Time{} })
	with("metadata too many keys", func(l *audit.Log) {
		l.Metadata = make(map[string]string, audit.MaxMetadataKeys+1)
		for i := range audit.MaxMetadataKeys + 1 {
			l.Metadata["k"+strconv.Itoa(i)] = "v"
		}
	})
	with("metadata empty key", func(l *audit.Log) { l.Metadata = map[string]string{"": "v"} })
	with("metadata key one byte too long", func(l *audit.Log) {
		l.Metadata = map[string]string{fill(audit.MaxMetadataKeyLen+1, "k"): "v"}
	})
	with("metadata value one byte too long", func(l *audit.Log) {
		l.Metadata = map[string]string{"k": fill(audit.MaxMetadataValueLen+1, "€")}
	})
	with("metadata key invalid UTF-8", func(l *audit.Log) { l.Metadata = map[string]string{"k\xff": "v"} })
	with("metadata value invalid UTF-8", func(l *audit.Log) { l.Metadata = map[string]string{"k": "v\xc3"} })
	with("metadata key NUL byte", func(l *audit.Log) { l.Metadata = map[string]string{"k\x00": "v"} })
	with("metadata value NUL byte", func(l *audit.Log) { l.Metadata = map[string]string{"k": "\x00"} })
	return out
}

func checkCreateValidates(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(1)
	canceled, cancel := context.WithCancel(bg)
	cancel()
	for _, tt := range invalidLogs(g) {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.log
			if err := l.Validate(); err == nil {
				t.Fatalf("audittest: %s passes Validate; the case is wrong", fmtLog(l))
			}
			repo := k.mustRepo(t)
			// A stored log, whose ID the invalid log then takes: validation
			// comes first, before the check for a duplicate ID.
			all := k.mustCreate(t, repo, newLog(g.id("stored-"), at(1, 0)))
			what := "Create(" + fmtLog(l) + ")"
			try := func(what string, ctx context.Context, l audit.Log) {
				t.Helper()
				err := repo.Create(ctx, &l)
				if k.checkErrorIs(t, what, err, audit.ErrInvalidLog) {
					k.checkDefinite(t, what, err)
				}
			}
			try(what, bg, l)
			try(what+" with a canceled ctx", canceled, l)
			// With the ID of a stored log, the log must still be refused as
			// invalid, not as a duplicate — unless its ID was what made it
			// invalid.
			dup := l.Clone()
			dup.ID = all[0].ID
			if dup.Validate() != nil {
				try("Create("+fmtLog(dup)+") with the ID of a stored log", bg, dup)
			}
			k.checkList(t, repo, audit.Filter{Limit: audit.MaxLimit}, all)
		})
	}
}

func checkCreateRejectsDuplicateID(t *testing.T, k *kit) {
	t.Helper()
	repo := k.mustRepo(t)
	first := newLog("dup-Id", at(10, 300))
	first.OrgID = "org-a"
	all := k.mustCreate(t, repo, first)

	for _, tt := range []struct {
		name   string
		change func(l *audit.Log)
	}{
		{"the same log", func(*audit.Log) {}},
		{"other fields", func(l *audit.Log) {
			l.Source, l.Action, l.Metadata = "other", "other.action", map[string]string{"k": "v"}
		}},
		{"another org", func(l *audit.Log) { l.OrgID = "org-b" }},
		{"another time", func(l *audit.Log) { l.CreatedAt = at(-5, 0) }},
		{"the same time in another zone", func(l *audit.Log) { l.CreatedAt = l.CreatedAt.In(zoneEast) }},
	} {
		dup := first.Clone()
		tt.change(&dup)
		what := "Create(" + fmtLog(dup) + ") of " + tt.name + " with a stored ID"
		err := repo.Create(bg, &dup)
		if k.checkErrorIs(t, what, err, audit.ErrAlreadyExists) {
			k.checkDefinite(t, what, err)
		}
		// The stored log stays as it was, after each rejected duplicate.
		if got, err := repo.GetByID(bg, first.ID); err != nil {
			t.Errorf("GetByID(%q) after %s: got error %v, want the first log stored with that ID: %s", first.ID, what, err, k.rule)
		} else {
			k.checkLog(t, fmt.Sprintf("GetByID(%q) after %s", first.ID, what), got, stored(first))
		}
	}

	// IDs that differ in a byte only are different IDs, whatever a
	// collation or a normalization would say.
	var others []audit.Log
	for _, id := range []string{"dup-id", "DUP-ID", "dup-Id ", " dup-Id", "dup-\u0130d", "dup-I\u0307d"} {
		others = append(others, newLog(id, at(10, 300)))
	}
	for _, l := range others {
		if err := repo.Create(bg, &l); err != nil {
			t.Errorf("Create(%s) after storing ID %q: got error %v, want nil: %s", fmtLog(l), first.ID, err, k.rule)
			continue
		}
		all = append(all, stored(l))
	}

	got, err := repo.GetByID(bg, first.ID)
	if err != nil {
		t.Fatalf("GetByID(%q): got error %v, want the first log stored with that ID: %s", first.ID, err, k.rule)
	}
	k.checkLog(t, fmt.Sprintf("GetByID(%q) after the rejected duplicates", first.ID), got, stored(first))
	k.checkList(t, repo, audit.Filter{Limit: audit.MaxLimit}, all)
}

// sameLog reports whether a and b are equal in every field, CreatedAt
// with its location included.
func sameLog(a, b audit.Log) bool {
	return a.ID == b.ID && a.OrgID == b.OrgID && a.Source == b.Source && a.Action == b.Action &&
		a.Actor == b.Actor && a.Target == b.Target && maps.Equal(a.Metadata, b.Metadata) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.CreatedAt.Location() == b.CreatedAt.Location()
}

// mutateLog changes every field of l and every entry of its map, adds an
// entry and deletes one: whatever a repository shares with l changes.
func mutateLog(l *audit.Log) {
	l.ID += "-changed"
	l.OrgID += "-changed"
	l.Source += "-changed"
	l.Action += "-changed"
	l.Actor.Name += "-changed"
	l.Target.ID += "-changed"
	l.CreatedAt = l.CreatedAt.Add(time.Hour)
	if l.Metadata == nil {
		return
	}
	for k := range l.Metadata {
		l.Metadata[k] += "-changed"
	}
	delete(l.Metadata, "request_id")
	l.Metadata["added"] = "by the caller"
}

func checkCreateCopiesLog(t *testing.T, k *kit) {
	t.Helper()
	repo := k.mustRepo(t)
	l := newLog("copied", at(20, 789).In(zoneWest))
	l.OrgID = "org-a"
	l.Metadata = map[string]string{"request_id": "r-1", "ip": "192.0.2.1", "outcome": audit.OutcomeSuccess}
	before := l
	before.Metadata = maps.Clone(l.Metadata)

	if err := repo.Create(bg, &l); err != nil {
		t.Fatalf("Create(%s): got error %v, want nil: %s", fmtLog(before), err, k.rule)
	}
	if !sameLog(l, before) {
		t.Errorf("the caller's log after Create: got %s, want %s unchanged: %s", fmtLog(l), fmtLog(before), k.rule)
	}
	want := stored(before)

	md := l.Metadata
	mutateLog(&l)
	if got, err := repo.GetByID(bg, want.ID); err != nil {
		t.Errorf("GetByID(%q) after the caller changed its log: got error %v, want the log as stored: %s", want.ID, err, k.rule)
	} else {
		k.checkLog(t, fmt.Sprintf("GetByID(%q) after the caller changed its log and map", want.ID), got, want)
	}
	k.checkList(t, repo, audit.Filter{}, []audit.Log{want})

	// Changing the map again, now that it has been read back, must not
	// reach what a later read returns either.
	md["outcome"] = "changed again"
	k.checkList(t, repo, audit.Filter{Metadata: map[string]string{"outcome": audit.OutcomeSuccess}}, []audit.Log{want})
}

func checkResultsBelongToCaller(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(4)
	repo := k.mustRepo(t)
	all := k.mustCreate(t, repo, g.logs(3, "owned-", func(i int) time.Time { return at(i, 0) }, func(_ int, l *audit.Log) {
		l.Metadata["outcome"] = audit.OutcomeSuccess
	})...)
	want := all[0]

	got, err := repo.GetByID(bg, want.ID)
	if err != nil {
		t.Fatalf("GetByID(%q): got error %v, want nil: %s", want.ID, err, k.rule)
	}
	if got.Metadata == nil {
		t.Errorf("GetByID(%q): got nil Metadata, want %s: %s", want.ID, fmtMetadata(want.Metadata), k.rule)
	}
	mutateLog(&got)
	page := k.mustList(t, repo, audit.Filter{})
	// What a List returned stays as it was when the repository is used
	// again: it is not a buffer that the next call fills.
	before := make([]audit.Log, len(page))
	for i := range page {
		before[i] = page[i].Clone()
	}
	k.mustList(t, repo, audit.Filter{Cursor: audit.NextCursor(page[:1]), Limit: 1})
	if _, err := repo.GetByID(bg, all[1].ID); err != nil {
		t.Errorf("GetByID(%q): got error %v, want nil: %s", all[1].ID, err, k.rule)
	}
	for i := range page {
		if !sameLog(page[i], before[i]) {
			t.Errorf("a page List returned, after more calls to List and GetByID: log %d: got %s, want %s unchanged: %s", i, fmtLog(page[i]), fmtLog(before[i]), k.rule)
		}
		mutateLog(&page[i])
	}

	if got, err := repo.GetByID(bg, want.ID); err != nil {
		t.Errorf("GetByID(%q) after the caller changed what List and GetByID returned: got error %v, want nil: %s", want.ID, err, k.rule)
	} else {
		k.checkLog(t, fmt.Sprintf("GetByID(%q) after the caller changed what List and GetByID returned", want.ID), got, want)
	}
	k.checkList(t, repo, audit.Filter{}, all)
	k.checkList(t, repo, audit.Filter{Metadata: map[string]string{"outcome": audit.OutcomeSuccess}}, all)
}

func checkGetByIDUnknown(t *testing.T, k *kit) {
	t.Helper()
	repo := k.mustRepo(t)
	_, err := repo.GetByID(bg, "log-1")
	k.checkErrorIs(t, `GetByID("log-1") on an empty repository`, err, audit.ErrNotFound)

	var logs []audit.Log
	for i, id := range []string{"log-1", "Log-2", "caf\u00e9", "\u65e5\u672c"} {
		logs = append(logs, newLog(id, at(i, 0)))
	}
	k.mustCreate(t, repo, logs...)
	for _, id := range []string{
		"log-", "log-10", "LOG-1", "log-1 ", " log-1", "log-2", "cafe\u0301", "CAF\u00c9", "\u65e5",
		"", strings.Repeat("x", audit.MaxIDLen+1), "log-\xff", "log-\x00",
	} {
		log, err := repo.GetByID(bg, id)
		if !k.checkErrorIs(t, fmt.Sprintf("GetByID(%s)", fmtString(id)), err, audit.ErrNotFound) && err == nil {
			t.Logf("\tGetByID(%s) returned %s", fmtString(id), fmtLog(log))
		}
	}
}

// roundTripLogs returns logs that exercise every field: Unicode, sizes at
// every bound, metadata nil, empty and with empty values, and times in
// other zones, before 1970 and near the end of year 9999.
func roundTripLogs() []audit.Log {
	full := audit.Log{
		ID:     "round-trip-full",
		OrgID:  "org-42",
		Source: "frontier",
		Action: "app.user.created",
		Actor:  audit.Actor{ID: "u-123", Type: audit.ActorTypeUser, Name: "Ada Lovelace"},
		Target: audit.Target{ID: "u-456", Type: "user", Name: "grace@example.com"},
		Metadata: map[string]string{
			audit.MetadataIP: "192.0.2.10", audit.MetadataUserAgent: "curl/8.5.0",
			audit.MetadataRequestID: "req-1", audit.MetadataTraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
			audit.MetadataOutcome: audit.OutcomeSuccess,
			// Keys that document stores and HTTP libraries are known to
			// change: dotted paths, operators, header-like names.
			"http.route": "/v1/users", "$set": "x", "a.b.c": "d", "X-Forwarded-For": "203.0.113.1",
		},
		CreatedAt: at(1, 1),
	}
	unicode := audit.Log{
		ID:     "round-trip-\u00fcn\u00efc\u00f8d\u00e9-\U0001F510",
		OrgID:  "\u7d44\u7e54-1",
		Source: "\u30b5\u30fc\u30d3\u30b9",
		Action: "app.\u7528\u6237.created",
		Actor:  audit.Actor{ID: "\u30e6\u30fc\u30b6\u30fc", Type: "user", Name: "Zo\u00eb \u00c5ngstr\u00f6m \u202eevil"},
		Target: audit.Target{ID: "cafe\u0301", Type: "\u0434\u043e\u043a\u0443\u043c\u0435\u043d\u0442", Name: "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd"},
		Metadata: map[string]string{
			"\u043a\u043b\u044e\u0447": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435",
			"emoji \U0001F511":         "\U0001F389\U0001F468\u200d\U0001F469\u200d\U0001F467",
			"tab\tkey":                 "line\nbreak\r\n",
			"control":                  "a\x01b\x7f",
			"separator":                "\u2028\u2029\ufeff",
		},
		CreatedAt: at(2, 999),
	}
	largest := audit.Log{CreatedAt: at(3, 500), Metadata: make(map[string]string, audit.MaxMetadataKeys)}
	for i, f := range fields {
		// The ID and a few fields end in multi-byte characters: a store
		// must count bytes, and cut nothing.
		unit := []string{"é", "x", "€", "\U0001F600"}[i%4]
		f.set(&largest, fill(f.max, unit))
	}
	largest.ID = fill(audit.MaxIDLen-1, "é") + "L"
	for i := range audit.MaxMetadataKeys {
		key := fill(audit.MaxMetadataKeyLen-3, "ключ") + fmt.Sprintf("%03d", i)
		largest.Metadata[key] = fill(audit.MaxMetadataValueLen, "€")
	}
	minimal := audit.Log{ID: "round-trip-minimal", Source: "s", Action: "a", Actor: audit.Actor{Type: "system"}, CreatedAt: at(4, 0)}

	logs := []audit.Log{full, unicode, largest, minimal}
	add := func(id string, createdAt time.Time, change func(l *audit.Log)) {
		l := newLog(id, createdAt)
		if change != nil {
			change(&l)
		}
		logs = append(logs, l)
	}
	add("round-trip-nil-metadata", at(5, 0), func(l *audit.Log) { l.Metadata = nil })
	add("round-trip-empty-metadata", at(6, 0), func(l *audit.Log) { l.Metadata = map[string]string{} })
	add("round-trip-empty-value", at(7, 0), func(l *audit.Log) { l.Metadata = map[string]string{"empty": "", "k": "v"} })
	add("round-trip-east", at(8, 123).In(zoneEast), nil)
	add("round-trip-west", at(9, 999).In(zoneWest), nil)
	add("round-trip-whole-second", base.Truncate(time.Second), nil)
	add("round-trip-1969", time.Date(1969, time.July, 20, 20, 17, 40, 123456789, time.UTC), nil)
	add("round-trip-9999", time.Date(9999, time.December, 31, 23, 59, 59, 999999999, time.UTC), nil)
	return logs
}

func checkRoundTrip(t *testing.T, k *kit) {
	t.Helper()
	repo := k.mustRepo(t)
	logs := roundTripLogs()
	all := k.mustCreate(t, repo, logs...)
	for _, want := range all {
		got, err := repo.GetByID(bg, want.ID)
		if err != nil {
			t.Errorf("GetByID(%s): got error %v, want %s: %s", fmtString(want.ID), err, fmtLog(want), k.rule)
			continue
		}
		k.checkLog(t, "GetByID("+fmtString(want.ID)+")", got, want)
	}
	k.checkList(t, repo, audit.Filter{Limit: audit.MaxLimit}, all)
}
