package audit_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

func TestMemoryRepositoryOutOfOrderInserts(t *testing.T) {
	ctx := context.Background()
	repo := audit.NewMemoryRepository()
	base := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	var all []audit.Log
	for i := range 3000 {
		l := validLog()
		// Random IDs, and times that repeat and go back and forth.
		l.ID = fmt.Sprintf("%08x-%d", rng.Uint32(), i)
		l.OrgID = fmt.Sprint("org-", i%3)
		l.CreatedAt = base.Add(time.Duration(rng.IntN(500)) * time.Millisecond).Add(time.Duration(rng.IntN(1000)))
		if err := repo.Create(ctx, &l); err != nil {
			t.Fatal(err)
		}
		l.CreatedAt = l.CreatedAt.Truncate(time.Microsecond)
		all = append(all, l)
	}
	if repo.Len() != len(all) {
		t.Fatalf("Len = %d, want %d", repo.Len(), len(all))
	}
	newestFirst := func(a, b audit.Log) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	}
	slices.SortFunc(all, newestFirst)

	for _, f := range []audit.Filter{{}, {OrgID: "org-1"}, {OrgID: "org-2", Since: base.Add(100 * time.Millisecond), Until: base.Add(300 * time.Millisecond)}} {
		var want []audit.Log
		for _, l := range all {
			if f.Match(l) {
				want = append(want, l)
			}
		}
		f.Limit = 97
		var got []audit.Log
		for {
			page, err := repo.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if len(page) < f.Limit {
				break
			}
			f.Cursor = audit.NextCursor(page)
		}
		if len(got) != len(want) {
			t.Fatalf("filter %+v: got %d logs, want %d", f, len(got), len(want))
		}
		for i := range want {
			if got[i].ID != want[i].ID {
				t.Fatalf("filter %+v: log %d is %s, want %s", f, i, got[i].ID, want[i].ID)
			}
		}
	}
}

func TestMemoryRepositoryManyIDs(t *testing.T) {
	// Enough IDs to grow the ID index several times.
	ctx := context.Background()
	repo := audit.NewMemoryRepository()
	l := validLog()
	const n = 10000
	for i := range n {
		l.ID = fmt.Sprint("id-", i)
		if err := repo.Create(ctx, &l); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		id := fmt.Sprint("id-", i)
		got, err := repo.GetByID(ctx, id)
		if err != nil || got.ID != id {
			t.Fatalf("GetByID(%q) = %q, %v", id, got.ID, err)
		}
		l.ID = id
		if err := repo.Create(ctx, &l); !errors.Is(err, audit.ErrAlreadyExists) {
			t.Fatalf("Create of existing %q: got %v, want ErrAlreadyExists", id, err)
		}
	}
	if _, err := repo.GetByID(ctx, "id-x"); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func TestMemoryRepositoryKeepsEveryField(t *testing.T) {
	ctx := context.Background()
	repo := audit.NewMemoryRepository()
	l := validLog()
	l.Actor.Name = "Ādá 日本 🚀"
	l.Metadata = map[string]string{"": "x"}
	if err := repo.Create(ctx, &l); !errors.Is(err, audit.ErrInvalidLog) {
		t.Fatalf("got %v, want ErrInvalidLog", err)
	}
	l.Metadata = map[string]string{"long": strings.Repeat("v", audit.MaxMetadataValueLen), "k": "日本"}
	l.CreatedAt = time.Date(2026, 11, 26, 9, 30, 0, 123456789, time.FixedZone("x", -7200))
	if err := repo.Create(ctx, &l); err != nil {
		t.Fatal(err)
	}
	got, err := repo.GetByID(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := l
	want.CreatedAt = l.CreatedAt.UTC().Truncate(time.Microsecond)
	checkSameLog(t, got, want)
	if got.CreatedAt.Location() != time.UTC || got.CreatedAt.Nanosecond()%1000 != 0 {
		t.Errorf("got created_at %v, want UTC at microsecond precision", got.CreatedAt)
	}
}

// Create checks the bytes of a log on its copy: a rejected log must leave
// no trace, report the field Validate reports, and not disturb the logs
// stored after it.
func TestMemoryRepositoryRejectsOnTheCopy(t *testing.T) {
	ctx := context.Background()
	repo := audit.NewMemoryRepository()
	bad := []func(l *audit.Log){
		func(l *audit.Log) { l.Actor.Name = "nul\x00" },
		func(l *audit.Log) { l.Target.Type = "bad\xffutf8" },
		func(l *audit.Log) { l.Metadata = map[string]string{"k": "ok", "k2": "v\xc3"} },
		func(l *audit.Log) { l.Metadata = map[string]string{"k\x00": "v"} },
		func(l *audit.Log) { l.ID = "id\x00" },
	}
	var want []audit.Log
	for i := range 200 {
		l := validLog()
		l.ID = fmt.Sprintf("id-%03d", i)
		l.Actor.Name = strings.Repeat("é", i%7) + "ada"
		l.Metadata = map[string]string{"i": fmt.Sprint(i), "name": "Ådá"}
		if i%3 == 0 {
			b := l
			b.Metadata = maps.Clone(l.Metadata)
			bad[i%len(bad)](&b)
			err := repo.Create(ctx, &b)
			if !errors.Is(err, audit.ErrInvalidLog) || err.Error() != b.Validate().Error() {
				t.Fatalf("Create: got %v, want Validate's error %v", err, b.Validate())
			}
		}
		if err := repo.Create(ctx, &l); err != nil {
			t.Fatal(err)
		}
		want = append(want, l)
	}
	if repo.Len() != len(want) {
		t.Fatalf("got %d logs stored, want %d", repo.Len(), len(want))
	}
	for _, w := range want {
		got, err := repo.GetByID(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkSameLog(t, got, w)
	}
}

// BenchmarkMemoryList reads pages of one org's logs out of 100k: the first
// page, and a page deep into the listing by keyset cursor. Neither should
// depend on how many logs the repository holds.
func BenchmarkMemoryList(b *testing.B) {
	ctx := context.Background()
	repo := audit.NewMemoryRepository()
	l := validLog()
	base := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	const n = 100_000
	var deep []audit.Log
	for i := range n {
		l.ID = fmt.Sprintf("%012d", i)
		l.OrgID = fmt.Sprint("org-", i%10)
		l.CreatedAt = base.Add(time.Duration(i) * time.Millisecond)
		if err := repo.Create(ctx, &l); err != nil {
			b.Fatal(err)
		}
		if i == n/2 {
			deep = []audit.Log{l}
		}
	}
	for _, bc := range []struct {
		name   string
		filter audit.Filter
	}{
		{"page=first", audit.Filter{OrgID: "org-3", Limit: 100}},
		{"page=keyset", audit.Filter{OrgID: "org-3", Limit: 100, Cursor: audit.NextCursor(deep)}},
		{"page=first/all-orgs", audit.Filter{Limit: 100}},
		{"page=first/action-filter", audit.Filter{OrgID: "org-3", Action: l.Action, Limit: 100}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				page, err := repo.List(ctx, bc.filter)
				if err != nil || len(page) != 100 {
					b.Fatalf("got %d logs, %v", len(page), err)
				}
			}
		})
	}
}

// FuzzMemoryRepositoryCreate checks that Create, which checks a log's text
// on its stored copy, accepts exactly the logs Validate accepts, with
// Validate's error, and that a stored log reads back unchanged next to
// the logs stored before and after it.
func FuzzMemoryRepositoryCreate(f *testing.F) {
	f.Add("0193a4b2-7c3d-7e21-8f00-1234567890ab", "org-1", "frontier", "app.user.created", "u-1", "user", "Ada", "u-2", "user", "grace@example.com", "ip", "203.0.113.9", uint8(3))
	f.Add("id\x00", "", "s", "a", "", "user", "Ådá 日本", "", "", "", "k\xff", strings.Repeat("v", 300), uint8(0))
	f.Add("id", "org", "s", "a", "u", "user", strings.Repeat("n", 256), "t", "type", "", "", "", uint8(19))
	f.Fuzz(func(t *testing.T, id, org, source, action, actorID, actorType, actorName, targetID, targetType, targetName, key, value string, extra uint8) {
		ctx := context.Background()
		l := audit.Log{
			ID: id, OrgID: org, Source: source, Action: action,
			Actor:     audit.Actor{ID: actorID, Type: actorType, Name: actorName},
			Target:    audit.Target{ID: targetID, Type: targetType, Name: targetName},
			CreatedAt: time.Date(2026, 11, 26, 9, 30, 0, 123456000, time.UTC),
		}
		if key != "" || value != "" || extra > 0 {
			l.Metadata = map[string]string{key: value}
			for i := range int(extra % 24) { // past the pairs that fit on the stack
				l.Metadata[fmt.Sprintf("k%02d", i)] = value
			}
		}
		repo := audit.NewMemoryRepository()
		before := validLog()
		before.ID = "\x01before"
		if err := repo.Create(ctx, &before); err != nil {
			t.Fatal(err)
		}
		want := l.Validate()
		err := repo.Create(ctx, &l)
		switch {
		case want == nil && l.ID == before.ID:
			if !errors.Is(err, audit.ErrAlreadyExists) {
				t.Fatalf("Create of a stored ID: %v, want ErrAlreadyExists", err)
			}
			want = err // not stored
		case (err == nil) != (want == nil):
			t.Fatalf("Create: %v; Validate: %v", err, want)
		case err != nil && !errors.Is(err, audit.ErrInvalidLog):
			t.Fatalf("Create: %v, want an error wrapping ErrInvalidLog", err)
		case err != nil && err.Error() != want.Error():
			t.Fatalf("Create: %v; Validate: %v: want the same first offending field", err, want)
		}
		after := validLog()
		after.ID = "\x7fafter"
		if after.ID == l.ID {
			after.ID += "2"
		}
		if err := repo.Create(ctx, &after); err != nil {
			t.Fatal(err)
		}
		stored := []audit.Log{before, after}
		if want == nil {
			stored = append(stored, l)
		}
		if repo.Len() != len(stored) {
			t.Fatalf("got %d logs stored, want %d", repo.Len(), len(stored))
		}
		for _, w := range stored {
			got, err := repo.GetByID(ctx, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			checkSameLog(t, got, w)
		}
	})
}

// Create reports an invalid log before a canceled context, and a canceled
// context before a duplicate ID, whatever makes the log invalid.
func TestMemoryRepositoryErrorPrecedence(t *testing.T) {
	repo := audit.NewMemoryRepository()
	stored := validLog()
	if err := repo.Create(context.Background(), &stored); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name   string
		change func(*audit.Log)
		want   error
	}{
		{"missing source", func(l *audit.Log) { l.Source = "" }, audit.ErrInvalidLog},
		{"name not UTF-8", func(l *audit.Log) { l.Actor.Name = "bad\xff" }, audit.ErrInvalidLog},
		{"NUL in metadata", func(l *audit.Log) { l.Metadata = map[string]string{"k": "\x00"} }, audit.ErrInvalidLog},
		{"stored ID, not UTF-8", func(l *audit.Log) { l.ID = stored.ID; l.Target.Name = "bad\xff" }, audit.ErrInvalidLog},
		{"stored ID", func(l *audit.Log) { l.ID = stored.ID }, context.Canceled},
		{"valid, non-ASCII", func(l *audit.Log) { l.ID = "new"; l.Actor.Name = "Ådá" }, context.Canceled},
		{"valid", func(l *audit.Log) { l.ID = "new" }, context.Canceled},
	} {
		l := validLog()
		tt.change(&l)
		if err := repo.Create(canceled, &l); !errors.Is(err, tt.want) {
			t.Errorf("%s, canceled context: got %v, want %v", tt.name, err, tt.want)
		}
		if errors.Is(tt.want, audit.ErrInvalidLog) {
			continue
		}
		// With a live context, the duplicate is reported.
		if l.ID == stored.ID {
			if err := repo.Create(context.Background(), &l); !errors.Is(err, audit.ErrAlreadyExists) {
				t.Errorf("%s: got %v, want ErrAlreadyExists", tt.name, err)
			}
		}
	}
	if repo.Len() != 1 {
		t.Errorf("got %d logs stored, want 1", repo.Len())
	}
}
