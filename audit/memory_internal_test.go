package audit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// A log that does not fit in the last block goes to a spare block, which
// the repository keeps only with the log: rejected logs, however large,
// leave no blocks behind.
func TestMemoryRepositoryRejectedLogsKeepNoBlocks(t *testing.T) {
	ctx := context.Background()
	r := NewMemoryRepository()
	big := Log{
		ID: "big", Source: "s", Action: "a", Actor: Actor{Type: ActorTypeUser},
		Metadata:  map[string]string{},
		CreatedAt: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC),
	}
	for i := range MaxMetadataKeys {
		big.Metadata[strings.Repeat("k", 3)+string(rune('A'+i%26))+string(rune('a'+i/26))] = strings.Repeat("v", MaxMetadataValueLen)
	}
	if err := r.Create(ctx, &big); err != nil {
		t.Fatal(err)
	}
	invalid := big
	invalid.ID = "invalid"
	invalid.Actor.Name = "nul\x00"
	for i := range 200 {
		small := Log{ID: "small-" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Source: "s", Action: "a", Actor: Actor{Type: ActorTypeUser}, CreatedAt: big.CreatedAt}
		if err := r.Create(ctx, &small); err != nil {
			t.Fatal(err)
		}
		if err := r.Create(ctx, &big); !errors.Is(err, ErrAlreadyExists) {
			t.Fatalf("Create of a stored ID: %v, want ErrAlreadyExists", err)
		}
		if err := r.Create(ctx, &invalid); !errors.Is(err, ErrInvalidLog) {
			t.Fatalf("Create of an invalid log: %v, want ErrInvalidLog", err)
		}
	}
	// The big log takes a block of its own; the 200 small ones one more.
	if len(r.blocks) > 2 {
		t.Errorf("got %d blocks for 1 big and 200 small logs, want at most 2", len(r.blocks))
	}
}
