package audit

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestIDGenerator(t *testing.T) {
	var g idGenerator
	at := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	prev := ""
	for i := range 10000 { // more IDs than one millisecond's counter holds
		id := g.next(at)
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("%q is not a UUIDv7: %v", id, err)
		}
		if id <= prev {
			t.Fatalf("ID %d %s does not sort after %s", i, id, prev)
		}
		prev = id
	}
	u := uuid.MustParse(g.next(at.Add(time.Hour)))
	if sec, _ := u.Time().UnixTime(); sec != at.Add(time.Hour).Unix() {
		t.Errorf("got time %d, want %d", sec, at.Add(time.Hour).Unix())
	}
	// A clock that goes back does not break the order.
	if id := g.next(at); id <= u.String() {
		t.Errorf("ID %s after the clock went back does not sort after %s", id, u)
	}
}

func TestIDGeneratorConcurrent(t *testing.T) {
	var g idGenerator
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := ""
			for range 2000 {
				id := g.next(time.Now())
				if id <= prev {
					t.Errorf("%s does not sort after %s made before it", id, prev)
				}
				prev = id
				mu.Lock()
				if seen[id] {
					t.Errorf("duplicate ID %s", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
