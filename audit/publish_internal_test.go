package audit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// publishCounts are the counts of one publisher at one moment, with the
// logs it still holds (queued or being published) and the logs its queue
// never took.
type publishCounts struct {
	PublishStats
	Queued, Refused uint64
}

func (p *publisher) counts() publishCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return publishCounts{
		PublishStats: PublishStats{Enqueued: p.enqueued, Delivered: p.delivered, Failed: p.failed, Dropped: p.dropped},
		Queued:       p.held,
		Refused:      p.refused,
	}
}

// checkCounts checks that every log c's publisher was handed is counted
// once: what its queue took is delivered, failed, dropped or still held,
// and what it did not take is dropped.
func checkCounts(c publishCounts, queueSize, workers int) error {
	switch {
	case c.Dropped < c.Refused:
		return fmt.Errorf("%+v: more refused than dropped", c)
	case c.Enqueued != c.Delivered+c.Failed+(c.Dropped-c.Refused)+c.Queued:
		return fmt.Errorf("%+v: Enqueued is not Delivered + Failed + (Dropped - Refused) + Queued", c)
	case c.Queued > uint64(queueSize+workers):
		return fmt.Errorf("%+v: more held than the queue and the workers hold", c)
	}
	return nil
}

// TestPublishCountsAddUp writes logs through publishers that fail,
// panic, call runtime.Goexit, are slow, drop, or make Log wait, while
// Close gives up twice — once from the error handler on a worker — and
// while other goroutines read the counts: every reading must add up, and
// in the end every log handed to a publisher is counted and reported
// exactly once.
func TestPublishCountsAddUp(t *testing.T) {
	var reports sync.Map // publisher name → *atomic.Int64
	report := func(err error) {
		var pe *PublishError
		if !errors.As(err, &pe) {
			t.Errorf("error handler got %v, want a *PublishError", err)
			return
		}
		n, _ := reports.LoadOrStore(pe.Publisher, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	var seq atomic.Uint64
	flaky := PublisherFunc(func(ctx context.Context, _ Log) error {
		// A fixed sequence of behaviors, so that each shows up however
		// the goroutines interleave.
		switch seq.Add(1) % 10 {
		case 0, 1, 2:
			return errors.New("refused")
		case 3:
			panic("publisher bug")
		case 4:
			runtime.Goexit()
		case 5:
			select {
			case <-time.After(200 * time.Microsecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	slow := PublisherFunc(func(ctx context.Context, _ Log) error {
		select {
		case <-time.After(time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	type attached struct {
		name             string
		queueSize, works int
		onlyA            bool
	}
	pubs := []attached{{"flaky", 8, 3, false}, {"slow", 4, 1, false}, {"blocking", 2, 2, false}, {"only-a", 16, 1, true}}

	var closesMu sync.Mutex
	var closes []string // what each Close returned
	closed := func(err error) {
		closesMu.Lock()
		defer closesMu.Unlock()
		closes = append(closes, fmt.Sprint(err))
	}
	var handlerCloses atomic.Int64
	var lg *Logger
	lg = NewLogger(NewMemoryRepository(), WithSource("s"),
		WithPublisher(flaky, PublishName("flaky"), PublishQueueSize(8), PublishWorkers(3)),
		WithPublisher(slow, PublishName("slow"), PublishQueueSize(4)),
		WithPublisher(slow, PublishName("blocking"), PublishQueueSize(2), PublishWorkers(2), BlockWhenFull()),
		WithPublisher(PublisherFunc(func(context.Context, Log) error { return nil }), PublishName("only-a"), PublishQueueSize(16), OnlyActions("app.a.*")),
		WithErrorHandler(func(err error) {
			report(err)
			var pe *PublishError
			// The 150th failure of a Publish call, reported on a worker.
			if errors.As(err, &pe) && pe.Publisher == "flaky" && !errors.Is(err, ErrQueueFull) && !errors.Is(err, ErrClosed) &&
				handlerCloses.Add(1) == 150 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				defer cancel()
				closed(lg.Close(ctx))
			}
		}),
	)

	// Readers check the counts while everything happens.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	var readings atomic.Int64
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				for i, p := range lg.pubs {
					if err := checkCounts(p.counts(), pubs[i].queueSize, pubs[i].works); err != nil {
						t.Errorf("publisher %s, while logs are written: %v", p.name, err)
						return
					}
				}
				readings.Add(1)
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}

	const writers, each = 4, 400
	var handedA atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			base := SetActor(context.Background(), Actor{Type: ActorTypeUser})
			for i := range each {
				// One writer's requests end soon: its Logs give up waiting
				// for room in the blocking publisher's queue.
				ctx, cancel := base, context.CancelFunc(func() {})
				if w == 1 {
					ctx, cancel = context.WithTimeout(base, 500*time.Microsecond)
				}
				action := "app.b.x"
				if rng.IntN(3) == 0 {
					action = "app.a.x"
					handedA.Add(1)
				}
				err := lg.Log(ctx, action, Target{})
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				if w == 0 && i == each*3/4 {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
					closed(lg.Close(ctx))
					cancel()
				}
			}
		}()
	}
	wg.Wait()

	// What Publish calls still run when Close gives up end later.
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range lg.pubs {
		for p.counts().Queued > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("publisher %s: still holds logs 10s after Close: %+v", p.name, p.counts())
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	readers.Wait()

	for _, p := range lg.pubs {
		c := p.counts()
		if err := checkCounts(c, 0, 0); err != nil {
			t.Errorf("publisher %s, in the end: %v", p.name, err)
		}
		handed := uint64(writers * each)
		if p.name == "only-a" {
			handed = uint64(handedA.Load())
		}
		if got := c.Enqueued + c.Refused; got != handed {
			t.Errorf("publisher %s: %+v: got %d logs queued or refused, want the %d it was handed", p.name, c, got, handed)
		}
		var got int64
		if n, ok := reports.Load(p.name); ok {
			got = n.(*atomic.Int64).Load()
		}
		if uint64(got) != c.Failed+c.Dropped {
			t.Errorf("publisher %s: %+v: got %d reports, want Failed + Dropped", p.name, c, got)
		}
	}
	if c := lg.pubs[0].counts(); c.Failed == 0 || c.Delivered == 0 {
		t.Errorf("flaky publisher: %+v: want some failed and some delivered, or the faults were not exercised", c)
	}
	if readings.Load() < 100 {
		t.Errorf("got %d readings of the counts, want many while logs were written", readings.Load())
	}
	if handlerCloses.Load() < 150 {
		t.Errorf("got %d failures of the flaky publisher, want the 150th to close the Logger from its worker", handlerCloses.Load())
	}
	if len(closes) != 2 || closes[0] != closes[1] {
		t.Errorf("Close from a writer and from the error handler: got %q, want two calls with the same outcome", closes)
	}
	t.Logf("%d readings; flaky %+v; slow %+v; blocking %+v; close: %v",
		readings.Load(), lg.pubs[0].counts(), lg.pubs[1].counts(), lg.pubs[2].counts(), closes)
}
