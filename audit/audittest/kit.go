package audittest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

// kit holds what every check of one case needs. Its check methods report
// with t.Errorf and never stop the test, so they may be called from other
// goroutines; its must methods stop the test with t.Fatalf.
type kit struct {
	newRepo func(t *testing.T) audit.Repository
	rule    string
}

// bg is the context of every call that is not about cancellation. Go 1.23,
// the module's language version, has no testing.T.Context.
var bg = context.Background()

// mustRepo returns a fresh repository from newRepo.
func (k *kit) mustRepo(t *testing.T) audit.Repository {
	t.Helper()
	repo := k.newRepo(t)
	if repo == nil {
		t.Fatal("audittest: newRepo returned a nil Repository")
	}
	return repo
}

// mustCreate stores logs in order and returns them as the repository must
// hold them (see stored).
func (k *kit) mustCreate(t *testing.T, repo audit.Repository, logs ...audit.Log) []audit.Log {
	t.Helper()
	out := make([]audit.Log, 0, len(logs))
	for _, l := range logs {
		want := stored(l)
		if err := repo.Create(bg, &l); err != nil {
			t.Fatalf("Create(%s): got error %v, want nil: Create stores a valid log (needed to check: %s)", fmtLog(want), err, k.rule)
		}
		out = append(out, want)
	}
	return out
}

// mustList returns List(f), which must succeed.
func (k *kit) mustList(t *testing.T, repo audit.Repository, f audit.Filter) []audit.Log {
	t.Helper()
	page, err := repo.List(bg, f)
	if err != nil {
		t.Fatalf("List(%s): got error %v, want nil: List accepts a valid filter (needed to check: %s)", fmtFilter(f), err, k.rule)
	}
	return page
}

// checkErrorIs reports unless errors.Is(err, target); what names the call.
func (k *kit) checkErrorIs(t *testing.T, what string, err, target error) bool {
	t.Helper()
	if errors.Is(err, target) {
		return true
	}
	if err == nil {
		t.Errorf("%s: got nil error, want an error wrapping %s: %s", what, errorName(target), k.rule)
	} else {
		t.Errorf("%s: got error %q, want an error wrapping %s: %s", what, err, errorName(target), k.rule)
	}
	return false
}

// checkDefinite reports if err wraps audit.ErrMaybeStored: Create's
// outcome is known to it when it rejects an invalid log or a duplicate ID,
// or is given a ctx that is done already, and what it knows it must say.
// what names the call.
func (k *kit) checkDefinite(t *testing.T, what string, err error) bool {
	t.Helper()
	if !errors.Is(err, audit.ErrMaybeStored) {
		return true
	}
	t.Errorf("%s: got error %q, which wraps audit.ErrMaybeStored, want an error that does not: the outcome is known: %s", what, err, k.rule)
	return false
}

// errorName returns the name of a sentinel error of package audit.
func errorName(target error) string {
	for _, s := range []struct {
		err  error
		name string
	}{
		{audit.ErrNotFound, "audit.ErrNotFound"},
		{audit.ErrAlreadyExists, "audit.ErrAlreadyExists"},
		{audit.ErrInvalidLog, "audit.ErrInvalidLog"},
		{audit.ErrInvalidFilter, "audit.ErrInvalidFilter"},
		{audit.ErrMaybeStored, "audit.ErrMaybeStored"},
	} {
		if errors.Is(target, s.err) {
			return s.name
		}
	}
	return strconv.Quote(target.Error())
}

// checkList checks that List(f) returns exactly what Filter.Match selects
// from all, the logs the repository holds, in order and cut at the page
// size.
func (k *kit) checkList(t *testing.T, repo audit.Repository, f audit.Filter, all []audit.Log) bool {
	t.Helper()
	what := "List(" + fmtFilter(f) + ")"
	got, err := repo.List(bg, f)
	if err != nil {
		t.Errorf("%s: got error %v, want nil: %s", what, err, k.rule)
		return false
	}
	return k.checkLogs(t, what, got, expect(all, f))
}

// checkWalk pages through the logs that f selects, starting at f.Cursor,
// each page with f.Limit, and checks that the pages together are exactly
// what Filter.Match selects from all, in order: none twice, none missing.
// Every page but the last must be full, and after a short page the next
// one must be empty. It returns the logs seen.
func (k *kit) checkWalk(t *testing.T, repo audit.Repository, f audit.Filter, all []audit.Log) ([]audit.Log, bool) {
	t.Helper()
	want := matching(all, f)
	what := "walking List(" + fmtFilter(f) + ") page by page"
	limit := f.PageSize()
	var got []audit.Log
	for n := 1; ; n++ {
		if n > len(want)/limit+2 {
			// Say which logs came too often, or should not have come.
			k.checkLogs(t, fmt.Sprintf("%s: got %d pages and more, want %d", what, n-1, len(want)/limit+1), got, want)
			return got, false
		}
		page, err := repo.List(bg, f)
		if err != nil {
			t.Errorf("%s: page %d: got error %v, want nil: %s", what, n, err, k.rule)
			return got, false
		}
		if len(page) > limit {
			t.Errorf("%s: page %d: got %d logs, want at most the limit %d: %s", what, n, len(page), limit, k.rule)
			return got, false
		}
		got = append(got, page...)
		if len(page) == limit {
			f.Cursor = audit.NextCursor(page)
			continue
		}
		if len(page) > 0 {
			f.Cursor = audit.NextCursor(page)
			if more, err := repo.List(bg, f); err != nil || len(more) > 0 {
				t.Errorf("%s: after short page %d of %d logs: got %d more logs (error %v), want none: a page shorter than the limit is the last; %s",
					what, n, len(page), len(more), err, k.rule)
				return got, false
			}
		}
		break
	}
	return got, k.checkLogs(t, what, got, want)
}

// checkLogs checks that got holds the logs of want, in the same order and
// with every field equal; what names the call that returned got.
func (k *kit) checkLogs(t *testing.T, what string, got, want []audit.Log) bool {
	t.Helper()
	if slices.EqualFunc(got, want, func(a, b audit.Log) bool { return a.ID == b.ID }) {
		for i := range got {
			if !k.checkLog(t, fmt.Sprintf("%s: log %d", what, i), got[i], want[i]) {
				return false
			}
		}
		return true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: got %d logs %s, want %d logs %s: %s", what, len(got), fmtIDs(got), len(want), fmtIDs(want), k.rule)
	wantIDs := make(map[string]audit.Log, len(want))
	for _, l := range want {
		wantIDs[l.ID] = l
	}
	seen := make(map[string]int, len(got))
	var twice, unexpected []audit.Log
	for _, l := range got {
		seen[l.ID]++
		if seen[l.ID] == 2 {
			twice = append(twice, l)
		}
		if _, ok := wantIDs[l.ID]; !ok {
			unexpected = append(unexpected, l)
		}
	}
	var missing []audit.Log
	for _, l := range want {
		if seen[l.ID] == 0 {
			missing = append(missing, l)
		}
	}
	writeLogs(&b, "returned more than once", twice)
	writeLogs(&b, "returned, but not selected by the filter (or not stored)", unexpected)
	writeLogs(&b, "selected by the filter, but not returned", missing)
	if len(twice)+len(unexpected)+len(missing) == 0 {
		for i := range got {
			if got[i].ID != want[i].ID {
				fmt.Fprintf(&b, "\n\tfirst out of order, at %d: got %s, want %s", i, fmtLog(got[i]), fmtLog(want[i]))
				break
			}
		}
	}
	t.Error(b.String())
	return false
}

func writeLogs(b *strings.Builder, title string, logs []audit.Log) {
	const most = 5
	if len(logs) == 0 {
		return
	}
	fmt.Fprintf(b, "\n\t%d %s:", len(logs), title)
	for i, l := range logs {
		if i == most {
			fmt.Fprintf(b, "\n\t\t… and %d more", len(logs)-most)
			break
		}
		b.WriteString("\n\t\t" + fmtLog(l))
	}
}

// checkLog checks that got equals want, field by field; want is in the
// form stored returns.
func (k *kit) checkLog(t *testing.T, what string, got, want audit.Log) bool {
	t.Helper()
	diffs := diffLog(got, want)
	if len(diffs) == 0 {
		return true
	}
	t.Errorf("%s: got %s, want %s: %s\n\t%s", what, fmtLog(got), fmtLog(want), k.rule, strings.Join(diffs, "\n\t"))
	return false
}

// diffLog describes how got differs from want, one field a line.
func diffLog(got, want audit.Log) []string {
	var diffs []string
	str := func(field, g, w string) {
		if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", field, fmtString(g), fmtString(w)))
		}
	}
	str("id", got.ID, want.ID)
	str("org_id", got.OrgID, want.OrgID)
	str("source", got.Source, want.Source)
	str("action", got.Action, want.Action)
	str("actor.id", got.Actor.ID, want.Actor.ID)
	str("actor.type", got.Actor.Type, want.Actor.Type)
	str("actor.name", got.Actor.Name, want.Actor.Name)
	str("target.id", got.Target.ID, want.Target.ID)
	str("target.type", got.Target.Type, want.Target.Type)
	str("target.name", got.Target.Name, want.Target.Name)
	if !maps.Equal(got.Metadata, want.Metadata) {
		diffs = append(diffs, fmt.Sprintf("metadata: got %s, want %s", fmtMetadata(got.Metadata), fmtMetadata(want.Metadata)))
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		diffs = append(diffs, fmt.Sprintf("created_at: got %s, want %s", fmtTime(got.CreatedAt), fmtTime(want.CreatedAt)))
	}
	if loc := got.CreatedAt.Location(); loc != time.UTC {
		diffs = append(diffs, fmt.Sprintf("created_at: got location %q, want UTC", loc))
	}
	return diffs
}

// stored returns l as Create promises to store it: CreatedAt in UTC,
// truncated to microseconds, and a Metadata map of its own.
func stored(l audit.Log) audit.Log {
	l = l.Clone()
	l.CreatedAt = l.CreatedAt.UTC().Truncate(time.Microsecond)
	return l
}

// newestFirst orders logs as List returns them: CreatedAt descending, then
// ID descending, comparing bytes. Both logs must be in stored form.
func newestFirst(a, b audit.Log) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// matching returns the logs of all that f matches, newest first,
// regardless of f.Limit.
func matching(all []audit.Log, f audit.Filter) []audit.Log {
	var out []audit.Log
	for _, l := range all {
		if f.Match(l) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, newestFirst)
	return out
}

// expect returns what List(f) must return from a repository holding all.
func expect(all []audit.Log, f audit.Filter) []audit.Log {
	out := matching(all, f)
	if n := f.PageSize(); n >= 0 && len(out) > n {
		out = out[:n]
	}
	return out
}
