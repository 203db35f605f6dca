package audittest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

// cursorAt returns the cursor that continues after a log at createdAt with
// the given ID, whether or not such a log is stored: a cursor is a
// position in the order of List, not a reference to a log.
func cursorAt(createdAt time.Time, id string) string {
	return audit.NextCursor([]audit.Log{{ID: id, CreatedAt: createdAt}})
}

func checkPagination(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(20)
	// Nine groups of five logs sharing a microsecond, so that pages end
	// inside groups; every exact-match field takes one of two values.
	logs := g.logs(45, "page-", func(i int) time.Time { return at(i/5*10, g.ns()) }, func(i int, l *audit.Log) {
		for _, d := range dimensions {
			d.set(l, d.values[g.rng.IntN(2)])
		}
		l.OrgID = []string{"org-a", "org-b"}[i%2]
		if i%3 == 0 {
			l.Metadata["outcome"] = audit.OutcomeSuccess
		}
	})
	repo := k.mustRepo(t)
	all := k.mustCreate(t, repo, logs...)

	for _, limit := range []int{1, 2, 3, 5, 7, 44, 45, 46, 0} {
		k.checkWalk(t, repo, audit.Filter{Limit: limit}, all)
	}
	// Every field restricts every page, not only the first.
	for _, d := range dimensions {
		f := audit.Filter{Limit: 3}
		d.filter(&f, d.values[0])
		k.checkWalk(t, repo, f, all)
	}
	k.checkWalk(t, repo, audit.Filter{Since: at(10, 0), Until: at(40, 0), Limit: 3}, all)
	k.checkWalk(t, repo, audit.Filter{OrgID: "org-b", Metadata: map[string]string{"outcome": audit.OutcomeSuccess}, Limit: 2}, all)

	// A cursor and the time bounds restrict a page together, whichever is
	// tighter: a cursor newer than Until, or older than Since.
	for _, f := range []audit.Filter{
		{Until: at(30, 0), Cursor: cursorAt(at(1000, 0), "~")},
		{Until: at(30, 0), Cursor: cursorAt(at(40, 0), "0"), Limit: 4},
		{Until: at(20, 1), Cursor: cursorAt(at(20, 0), "~")},
		{Since: at(20, 0), Until: at(40, 0), Cursor: cursorAt(at(50, 0), "~"), Limit: 2},
		{Since: at(20, 0), Cursor: cursorAt(at(10, 0), "~")},
		{Since: at(20, 0), Cursor: cursorAt(at(20, 0), "~")},
	} {
		k.checkList(t, repo, f, all)
		k.checkWalk(t, repo, f, all)
	}

	// Cursors at positions where no log is stored: before, inside and
	// after groups, between groups, past either end. Generated IDs start
	// with "page-", so "0" sorts below and "~" above every one of them.
	member := matching(all, audit.Filter{Since: at(20, 0), Until: at(21, 0)})[2]
	for _, c := range []struct {
		name   string
		cursor string
	}{
		{"newer than every log", cursorAt(at(1000, 0), "~")},
		{"above a group", cursorAt(at(20, 0), "~")},
		{"below a group", cursorAt(at(20, 0), "0")},
		{"at a stored log", cursorAt(member.CreatedAt, member.ID)},
		{"just below a stored log", cursorAt(member.CreatedAt, member.ID[:len(member.ID)-1])},
		{"just above a stored log", cursorAt(member.CreatedAt, member.ID+"0")},
		{"between groups", cursorAt(at(15, 0), "m")},
		{"between groups, with nanoseconds", cursorAt(at(29, 999), "~")},
		{"older than every log", cursorAt(at(-1, 0), "~")},
	} {
		k.checkList(t, repo, audit.Filter{Cursor: c.cursor, Limit: audit.MaxLimit}, all)
		k.checkList(t, repo, audit.Filter{Cursor: c.cursor, OrgID: "org-a", Limit: 3}, all)
		k.checkWalk(t, repo, audit.Filter{Cursor: c.cursor, Limit: 6}, all)
	}
}

func checkPaginationLarge(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(21)
	// More logs than MaxLimit, in 40 microseconds: dozens share each one.
	const n = audit.MaxLimit + 500
	logs := g.logs(n, "large-", func(i int) time.Time { return at(i%40, g.ns()) }, func(i int, l *audit.Log) {
		l.OrgID = []string{"org-a", "org-b"}[i%2]
		if i%5 == 0 {
			l.Metadata["outcome"] = audit.OutcomeDenied
		}
	})
	repo := k.mustRepo(t)
	all := k.mustCreate(t, repo, logs...)
	for _, f := range []audit.Filter{
		{},
		{Limit: 97},
		{Limit: audit.MaxLimit},
		{OrgID: "org-b", Limit: 61},
		{Metadata: map[string]string{"outcome": audit.OutcomeDenied}, Limit: 33},
		{Since: at(10, 0), Until: at(30, 0), Limit: 250},
	} {
		k.checkWalk(t, repo, f, all)
	}
	k.checkWalkWhileWriting(t, repo, audit.Filter{Limit: audit.DefaultLimit}, all, at(39, 0))
}

func checkPaginationWhileWriting(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(22)
	// 50 microseconds of six logs each.
	logs := g.logs(300, "p", func(i int) time.Time { return at(i/6, g.ns()) }, nil)
	repo := k.mustRepo(t)
	all := k.mustCreate(t, repo, logs...)
	k.checkWalkWhileWriting(t, repo, audit.Filter{Limit: 20}, all, at(49, 0))
}

// checkWalkWhileWriting walks f over repo, which holds initial, while
// logs newer than any of initial are being written, and checks that the
// walk returns exactly what f selects from initial, each once, in order.
// Afterwards, a walk must see every log. newest is the CreatedAt of the
// newest log of initial, whose IDs must sort below "w".
func (k *kit) checkWalkWhileWriting(t *testing.T, repo audit.Repository, f audit.Filter, initial []audit.Log, newest time.Time) {
	t.Helper()
	// Writers store logs newer than every existing one, half of them in
	// the newest existing microsecond with IDs ("w…") that sort above the
	// existing ones there. They start once the walk has its first page.
	const writers, perWriter = 4, 25
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written []audit.Log
		start   = make(chan struct{})
	)
	for w := range writers {
		var logs []audit.Log
		for i := range perWriter {
			createdAt := newest.Add(time.Duration(1+i) * time.Microsecond)
			if i%2 == 0 {
				createdAt = newest.Add(999)
			}
			logs = append(logs, newLog(fmt.Sprintf("w%d-%03d", w, i), createdAt))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for _, l := range logs {
				if err := repo.Create(bg, &l); err != nil {
					t.Errorf("concurrent Create(%s): got error %v, want nil: %s", fmtLog(l), err, k.rule)
					return
				}
				mu.Lock()
				written = append(written, stored(l))
				mu.Unlock()
			}
		}()
	}
	release := sync.OnceFunc(func() { close(start) })
	defer func() {
		release()
		wg.Wait()
	}()

	// Besides the free-running writers, one newer log is stored between
	// any two pages, so that every page after the first is asked for
	// after the listing changed.
	want := matching(initial, f)
	limit := f.PageSize()
	what := "walking List(" + fmtFilter(f) + ") while newer logs are written"
	var got, between []audit.Log
	for n := 1; ; n++ {
		if n > len(want)/limit+2 {
			t.Errorf("%s: got %d pages and more, want %d: %s", what, n-1, len(want)/limit+1, k.rule)
			break
		}
		page, err := repo.List(bg, f)
		if err != nil {
			t.Errorf("%s: page %d: got error %v, want nil: %s", what, n, err, k.rule)
			break
		}
		got = append(got, page...)
		if len(page) < limit {
			break
		}
		release()
		l := newLog(fmt.Sprintf("x-%03d", n), newest.Add(time.Duration(100+n)*time.Microsecond))
		between = append(between, k.mustCreate(t, repo, l)...)
		f.Cursor = audit.NextCursor(page)
	}
	release()
	wg.Wait()
	if !k.checkLogs(t, what, got, want) {
		return
	}

	// Afterwards, a walk sees everything: the existing logs and all that
	// was written meanwhile.
	all := slices.Concat(initial, between, written)
	k.checkWalk(t, repo, audit.Filter{Limit: audit.MaxLimit}, all)
}

// malformedCursors returns strings that are not cursors, and variants of
// the valid cursor c: cut, extended, or with one character replaced.
// Those that Filter.Validate accepts are left out, since they decode to a
// position after all.
func malformedCursors(c string) []string {
	candidates := []string{
		"x", "not a cursor", "not-a-cursor", "!!!!", "====", "AAAA", "AAAAAAAAAAAAAAAAAAAA",
		base64.RawURLEncoding.EncodeToString([]byte("hello, this is no cursor")),
		base64.StdEncoding.EncodeToString([]byte("hello, this is no cursor")),
		strings.Repeat("A", 10000),
		c[:len(c)-1], c[:len(c)-4], c[:len(c)/2], c[1:],
		c + "A", c + "AAAA", c + "=", c + ".", " " + c, c + "\n",
		strings.ToUpper(c), strings.ToLower(c), c + c,
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, i := range []int{0, 1, 2, len(c) / 3, len(c) / 2, 2 * len(c) / 3, len(c) - 3, len(c) - 2, len(c) - 1} {
		j := strings.IndexByte(alphabet, c[i])
		for _, r := range []byte{alphabet[(j+1)%len(alphabet)], alphabet[(j+32)%len(alphabet)], '*', '+'} {
			candidates = append(candidates, c[:i]+string(r)+c[i+1:])
		}
	}
	var out []string
	for _, m := range candidates {
		if m != c && errors.Is(audit.Filter{Cursor: m}.Validate(), audit.ErrInvalidFilter) {
			out = append(out, m)
		}
	}
	return out
}

func checkMalformedCursor(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(23)
	repo := k.mustRepo(t)
	k.mustCreate(t, repo, g.logs(10, "cursor-", func(i int) time.Time { return at(i, g.ns()) }, func(i int, l *audit.Log) {
		l.OrgID = []string{"org-a", "org-b"}[i%2]
	})...)
	c := audit.NextCursor(k.mustList(t, repo, audit.Filter{Limit: 3}))
	k.mustList(t, repo, audit.Filter{Cursor: c, Limit: 3})

	malformed := malformedCursors(c)
	if len(malformed) < 30 {
		t.Fatalf("audittest: only %d malformed cursors made from %q; the case is wrong", len(malformed), c)
	}
	for _, m := range malformed {
		for _, f := range []audit.Filter{{Cursor: m}, {Cursor: m, OrgID: "org-a", Limit: 5}} {
			page, err := repo.List(bg, f)
			if !k.checkErrorIs(t, fmt.Sprintf("List(Filter{Cursor:%s})", fmtString(m)), err, audit.ErrInvalidFilter) && len(page) > 0 {
				t.Logf("\tList returned %d logs %s", len(page), fmtIDs(page))
			}
		}
	}
}
