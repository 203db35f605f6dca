package audit_test

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/raystack/salt/audit"
)

// The straightforward design the benchmarks compare against, as the
// per-service audit code this package replaces wrote it: one mutable
// metadata map stored in the context (SetMetadata keeps the caller's map
// the first time and merges into it later, each time returning a new
// context), uuid.NewString, time.Now().UTC(), a new Log whose map is
// filled from the context, appended by value to a mutex-guarded slice.
// Merging into a map that other contexts share is the data race this
// package exists to remove; the benchmarks never share it.

type (
	naiveActorKey    struct{}
	naiveMetadataKey struct{}
)

func naiveSetActor(ctx context.Context, a audit.Actor) context.Context {
	return context.WithValue(ctx, naiveActorKey{}, a)
}

func naiveSetMetadata(ctx context.Context, md map[string]string) context.Context {
	if m, ok := ctx.Value(naiveMetadataKey{}).(map[string]string); ok {
		for k, v := range md {
			m[k] = v
		}
		return context.WithValue(ctx, naiveMetadataKey{}, m)
	}
	return context.WithValue(ctx, naiveMetadataKey{}, md)
}

type naiveLogger struct {
	source string
	mu     sync.Mutex
	logs   []audit.Log
}

func (n *naiveLogger) Log(ctx context.Context, action string, target audit.Target) error {
	actor, _ := ctx.Value(naiveActorKey{}).(audit.Actor)
	md, _ := ctx.Value(naiveMetadataKey{}).(map[string]string)
	l := audit.Log{
		ID:        uuid.NewString(),
		Source:    n.source,
		Action:    action,
		Actor:     actor,
		Target:    target,
		Metadata:  make(map[string]string, len(md)),
		CreatedAt: time.Now().UTC(),
	}
	for k, v := range md {
		l.Metadata[k] = v
	}
	n.mu.Lock()
	n.logs = append(n.logs, l)
	n.mu.Unlock()
	return nil
}
