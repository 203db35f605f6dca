package audittest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

func checkContextDone(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(30)
	repo := k.mustRepo(t)
	existing := k.mustCreate(t, repo, g.logs(3, "ctx-", func(i int) time.Time { return at(i, 0) }, nil)...)

	canceled, cancel := context.WithCancel(bg)
	cancel()
	expired, cancelExpired := context.WithDeadline(bg, time.Unix(0, 0))
	defer cancelExpired()
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{
		{"canceled", canceled},
		{"past its deadline", expired},
	} {
		l := newLog(g.id("ctx-new-"), at(10, 0))
		if err := c.ctx.Err(); err == nil {
			t.Fatalf("audittest: the %s context is not done; the case is wrong", c.name)
		}
		if err := repo.Create(c.ctx, &l); err == nil {
			t.Errorf("Create(%s) with a %s ctx: got nil error, want an error: %s", fmtLog(l), c.name, k.rule)
		} else {
			k.checkDefinite(t, fmt.Sprintf("Create(%s) with a %s ctx", fmtLog(l), c.name), err)
			if _, err := repo.GetByID(bg, l.ID); !errors.Is(err, audit.ErrNotFound) {
				t.Errorf("GetByID(%q) after Create failed with a %s ctx: got %v, want ErrNotFound: a Create given a done ctx stores nothing: %s", l.ID, c.name, err, k.rule)
			}
		}
		if page, err := repo.List(c.ctx, audit.Filter{}); err == nil {
			t.Errorf("List(Filter{}) with a %s ctx: got %d logs and nil error, want an error: %s", c.name, len(page), k.rule)
		}
		if _, err := repo.GetByID(c.ctx, existing[0].ID); err == nil {
			t.Errorf("GetByID(%q) with a %s ctx: got the log and nil error, want an error: %s", existing[0].ID, c.name, k.rule)
		}
	}
}

func checkCreateOutcome(t *testing.T, k *kit) {
	t.Helper()
	g := newGen(31)
	repo := k.mustRepo(t)
	// Contexts that end after 0 to 2ms, by their deadline or canceled from
	// another goroutine, so that some end while Create is under way.
	const attempts = 64
	var kept, notStored []audit.Log
	unknown := 0
	for i := range attempts {
		l := newLog(g.id("outcome-"), at(i, g.ns()))
		want := stored(l)
		after := time.Duration(g.rng.IntN(2000)) * time.Microsecond
		// A deadline, or a cancel from another goroutine: stores may watch
		// either way.
		var ctx context.Context
		var cancel context.CancelFunc
		if i%2 == 1 {
			ctx, cancel = context.WithCancel(bg)
			time.AfterFunc(after, cancel)
		} else {
			ctx, cancel = context.WithTimeout(bg, after)
		}
		what := fmt.Sprintf("Create(%s) with a ctx that ends after %v", fmtLog(want), after)
		err := repo.Create(ctx, &l)
		cancel()
		switch {
		case err == nil:
			kept = append(kept, want)
		case errors.Is(err, audit.ErrMaybeStored):
			// The safe retry: the same log, under the same ID.
			unknown++
			l := want.Clone()
			if err := repo.Create(bg, &l); err != nil && !errors.Is(err, audit.ErrAlreadyExists) {
				t.Errorf("%s: got an error wrapping audit.ErrMaybeStored; then Create of the same log again: got error %v, want nil or an error wrapping audit.ErrAlreadyExists: %s", what, err, k.rule)
				continue
			}
			kept = append(kept, want)
		default:
			notStored = append(notStored, want)
			if got, gerr := repo.GetByID(bg, want.ID); !errors.Is(gerr, audit.ErrNotFound) {
				t.Errorf("%s: got error %q, which does not wrap audit.ErrMaybeStored; then GetByID: got %s and error %v, want audit.ErrNotFound: %s",
					what, err, fmtLog(got), gerr, k.rule)
			}
		}
	}
	// Once every attempt is over, a store that went on after it answered
	// has had time to finish: what it said holds still.
	for _, want := range notStored {
		if got, err := repo.GetByID(bg, want.ID); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("GetByID(%q), whose Create failed with an error that does not wrap audit.ErrMaybeStored, after the other Creates: got %s and error %v, want audit.ErrNotFound: %s",
				want.ID, fmtLog(got), err, k.rule)
		}
	}
	for _, want := range kept {
		if got, err := repo.GetByID(bg, want.ID); err != nil {
			t.Errorf("GetByID(%q), which Create stored: got error %v, want the log: %s", want.ID, err, k.rule)
		} else {
			k.checkLog(t, fmt.Sprintf("GetByID(%q), which Create stored", want.ID), got, want)
		}
	}
	k.checkList(t, repo, audit.Filter{Limit: audit.MaxLimit}, kept)
	t.Logf("%d Creates: %d stored, %d not stored, %d of unknown outcome, then retried", attempts, len(kept)-unknown, len(notStored), unknown)
}

func checkConcurrentUse(t *testing.T, k *kit) {
	t.Helper()
	const (
		writers   = 8  // each stores perWriter logs in an org of its own
		perWriter = 40 //
		racers    = 6  // each tries to store every one of dupIDs IDs, all at once
		dupIDs    = 16
		readers   = 2 // each walks every log, at least walks times and until the others are done
		walks     = 10
	)
	repo := k.mustRepo(t)
	var (
		wg      sync.WaitGroup
		writing sync.WaitGroup // the writers and racers
		start   = make(chan struct{})
		mu      sync.Mutex
		all     []audit.Log
		wins    [dupIDs]atomic.Int32
		winners [dupIDs]audit.Log
		// All racers try each ID at once: each waits for the others.
		ready [dupIDs]sync.WaitGroup
	)
	for i := range ready {
		ready[i].Add(racers)
	}
	// What each log a reader may see must read back as: every log the
	// writers store, and every racer's version of a contested ID.
	expected := make(map[string]audit.Log)
	racedLog := func(r, i int) audit.Log {
		return audit.Log{
			ID:        fmt.Sprintf("dup-%02d", i),
			Source:    "audittest",
			Action:    "audittest.log.raced",
			Actor:     audit.Actor{ID: fmt.Sprintf("racer-%d", r), Type: audit.ActorTypeService},
			CreatedAt: at(3, i),
		}
	}
	for r := range racers {
		for i := range dupIDs {
			l := racedLog(r, i)
			expected[l.ID+"/"+l.Actor.ID] = stored(l)
		}
	}
	var firsts []audit.Log // the first log of each writer

	// Writers read back what they store, by ID right after Create returns
	// and, now and then, by listing their org, which holds exactly their
	// logs.
	for w := range writers {
		g := newGen(uint64(100 + w))
		org := fmt.Sprintf("org-%d", w)
		logs := g.logs(perWriter, fmt.Sprintf("c%d-", w), func(i int) time.Time { return at(i%7, g.ns()) }, func(_ int, l *audit.Log) {
			l.OrgID = org
		})
		for _, l := range logs {
			expected[l.ID+"/"+l.Actor.ID] = stored(l)
		}
		wg.Add(1)
		writing.Add(1)
		go func() {
			defer wg.Done()
			defer writing.Done()
			<-start
			var mine []audit.Log
			defer func() {
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			}()
			for i, l := range logs {
				want := stored(l)
				if err := repo.Create(bg, &l); err != nil {
					t.Errorf("concurrent Create(%s): got error %v, want nil: %s", fmtLog(want), err, k.rule)
					return
				}
				mine = append(mine, want)
				if i == 0 {
					mu.Lock()
					firsts = append(firsts, want)
					mu.Unlock()
				}
				got, err := repo.GetByID(bg, want.ID)
				if err != nil {
					t.Errorf("GetByID(%q) right after its Create returned, among concurrent calls: got error %v, want the log: %s", want.ID, err, k.rule)
					return
				}
				if !k.checkLog(t, fmt.Sprintf("GetByID(%q) among concurrent calls", want.ID), got, want) {
					return
				}
				if i%8 == 7 && !k.checkList(t, repo, audit.Filter{OrgID: org, Limit: audit.MaxLimit}, mine) {
					return
				}
			}
		}()
	}

	// Racers store logs with the same IDs at the same time: one Create of
	// each ID succeeds, the others get ErrAlreadyExists.
	for r := range racers {
		wg.Add(1)
		writing.Add(1)
		go func() {
			defer wg.Done()
			defer writing.Done()
			<-start
			for i := range dupIDs {
				ready[i].Done()
				ready[i].Wait()
				l := racedLog(r, i)
				switch err := repo.Create(bg, &l); {
				case err == nil:
					if wins[i].Add(1) == 1 {
						mu.Lock()
						winners[i] = stored(l)
						mu.Unlock()
					}
				case !errors.Is(err, audit.ErrAlreadyExists):
					t.Errorf("concurrent Create(%s) of a contested ID: got error %v, want nil or an error wrapping audit.ErrAlreadyExists: %s", fmtLog(l), err, k.rule)
				}
			}
		}()
	}

	// Readers walk every log for as long as the others write. Logs
	// written meanwhile may or may not show up, but a walk never goes
	// back: each log comes strictly after the previous one, newest first.
	written := make(chan struct{})
	go func() {
		writing.Wait()
		close(written)
	}()
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for walk := 0; ; walk++ {
				if walk >= walks {
					select {
					case <-written:
						return
					default:
					}
				}
				f := audit.Filter{Limit: 50}
				var prev audit.Log
				for n := 0; n < writers*perWriter+dupIDs; n++ {
					page, err := repo.List(bg, f)
					if err != nil {
						t.Errorf("List(%s) among concurrent calls: got error %v, want nil: %s", fmtFilter(f), err, k.rule)
						return
					}
					for _, l := range page {
						// A log is seen whole or not at all, however far its
						// Create has got.
						if want, ok := expected[l.ID+"/"+l.Actor.ID]; !ok {
							t.Errorf("walking List(%s) among concurrent calls: got %s, which no Create was given: %s", fmtFilter(f), fmtLog(l), k.rule)
							return
						} else if !k.checkLog(t, fmt.Sprintf("walking List(%s) among concurrent calls", fmtFilter(f)), l, want) {
							return
						}
						if prev.ID != "" && newestFirst(prev, l) >= 0 {
							t.Errorf("walking List(%s) among concurrent calls: got %s after %s, want only logs strictly older in (CreatedAt, ID): %s",
								fmtFilter(f), fmtLog(l), fmtLog(prev), k.rule)
							return
						}
						prev = l
					}
					if len(page) < f.PageSize() {
						break
					}
					f.Cursor = audit.NextCursor(page)
				}
			}
		}()
	}

	close(start)
	wg.Wait()
	for i := range dupIDs {
		if n := wins[i].Load(); n != 1 {
			t.Errorf("%d concurrent Creates of ID %q: got %d successes, want exactly 1: %s", racers, fmt.Sprintf("dup-%02d", i), n, k.rule)
			continue
		}
		all = append(all, winners[i])
	}
	// An ID stays taken for ever, however many logs were stored since.
	for _, l := range firsts {
		what := fmt.Sprintf("Create(%s) again, after %d more logs", fmtLog(l), len(all))
		if err := repo.Create(bg, &l); k.checkErrorIs(t, what, err, audit.ErrAlreadyExists) {
			k.checkDefinite(t, what, err)
		}
	}
	if t.Failed() {
		return // what was stored is not known
	}
	k.checkWalk(t, repo, audit.Filter{Limit: audit.MaxLimit}, all)
}
