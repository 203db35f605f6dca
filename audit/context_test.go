package audit_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

func TestFromContextEmpty(t *testing.T) {
	l := audit.FromContext(context.Background())
	if l.OrgID != "" || l.Actor != (audit.Actor{}) || l.Metadata != nil {
		t.Errorf("got %+v, want a zero Log", l)
	}
	if _, ok := audit.ActorFromContext(context.Background()); ok {
		t.Error("got an actor from an empty context")
	}
	if _, ok := audit.OrgIDFromContext(context.Background()); ok {
		t.Error("got an org from an empty context")
	}
}

func TestSetters(t *testing.T) {
	actor := audit.Actor{ID: "u-1", Type: audit.ActorTypeUser, Name: "Ada"}
	ctx := audit.SetActor(context.Background(), actor)
	ctx = audit.SetOrgID(ctx, "org-1")
	ctx = audit.SetMetadata(ctx, map[string]string{"a": "1", "b": "1"})
	ctx = audit.SetMetadata(ctx, map[string]string{"b": "2", "c": "2"})
	ctx = audit.SetActor(ctx, audit.Actor{ID: "u-2", Type: audit.ActorTypeUser})

	l := audit.FromContext(ctx)
	if want := (audit.Actor{ID: "u-2", Type: audit.ActorTypeUser}); l.Actor != want {
		t.Errorf("got actor %+v, want the later %+v", l.Actor, want)
	}
	if l.OrgID != "org-1" {
		t.Errorf("got org %q, want org-1", l.OrgID)
	}
	if want := map[string]string{"a": "1", "b": "2", "c": "2"}; !maps.Equal(l.Metadata, want) {
		t.Errorf("got metadata %v, want %v (later values win)", l.Metadata, want)
	}
	if a, ok := audit.ActorFromContext(ctx); !ok || a.ID != "u-2" {
		t.Errorf("ActorFromContext = %+v, %v; want u-2, true", a, ok)
	}
	if org, ok := audit.OrgIDFromContext(ctx); !ok || org != "org-1" {
		t.Errorf("OrgIDFromContext = %q, %v; want org-1, true", org, ok)
	}
	if org, ok := audit.OrgIDFromContext(audit.SetOrgID(context.Background(), "")); !ok || org != "" {
		t.Errorf(`OrgIDFromContext after SetOrgID("") = %q, %v; want "", true`, org, ok)
	}
}

func TestSetMetadataManyLayers(t *testing.T) {
	ctx := context.Background()
	want := map[string]string{}
	for i := range 40 {
		md := map[string]string{fmt.Sprintf("k%d", i%7): fmt.Sprint(i), fmt.Sprintf("x%d", i): "x"}
		if i%5 == 0 {
			md = map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": fmt.Sprint(i), "f": "6"} // more than fit inline
		}
		maps.Copy(want, md)
		ctx = audit.SetMetadata(ctx, md)
		if i%3 == 0 {
			ctx = audit.SetActor(ctx, audit.Actor{Type: audit.ActorTypeSystem})
		}
		// Checked at every layer: merging works differently for few pairs
		// and for many.
		if got := audit.FromContext(ctx).Metadata; !maps.Equal(got, want) {
			t.Fatalf("layer %d: got %v, want %v", i, got, want)
		}
	}
}

func TestContextsDoNotShareState(t *testing.T) {
	parent := audit.SetMetadata(context.Background(), map[string]string{"shared": "parent"})
	parent = audit.SetActor(parent, audit.Actor{ID: "parent", Type: audit.ActorTypeService})

	// Siblings derived concurrently from one parent never see each other.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := parent
			for j := range 200 {
				ctx = audit.SetMetadata(ctx, map[string]string{"shared": fmt.Sprint(i), fmt.Sprint("k", i): fmt.Sprint(j)})
				ctx = audit.SetActor(ctx, audit.Actor{ID: fmt.Sprint(i), Type: audit.ActorTypeUser})
				l := audit.FromContext(ctx)
				if l.Metadata["shared"] != fmt.Sprint(i) || l.Actor.ID != fmt.Sprint(i) {
					t.Errorf("goroutine %d got %+v: a sibling's values leaked in", i, l)
					return
				}
				if len(l.Metadata) != 2 {
					t.Errorf("goroutine %d got metadata %v, want its own two keys", i, l.Metadata)
					return
				}
			}
		}()
	}
	wg.Wait()

	l := audit.FromContext(parent)
	if want := map[string]string{"shared": "parent"}; !maps.Equal(l.Metadata, want) {
		t.Errorf("parent metadata changed: got %v, want %v", l.Metadata, want)
	}
	if l.Actor.ID != "parent" {
		t.Errorf("parent actor changed: got %+v", l.Actor)
	}
}

func TestMetadataMapsAreCopied(t *testing.T) {
	in := map[string]string{"k": "v"}
	ctx := audit.SetMetadata(context.Background(), in)
	in["k"] = "changed after Set"
	in["new"] = "x"

	out := audit.FromContext(ctx).Metadata
	if want := map[string]string{"k": "v"}; !maps.Equal(out, want) {
		t.Fatalf("changing the map passed to SetMetadata changed the context: got %v, want %v", out, want)
	}
	out["k"] = "changed the result"
	delete(out, "k")
	if got := audit.FromContext(ctx).Metadata; !maps.Equal(got, map[string]string{"k": "v"}) {
		t.Errorf("changing the map FromContext returned changed the context: got %v", got)
	}
}

func TestSetMetadataEmpty(t *testing.T) {
	ctx := audit.SetOrgID(context.Background(), "org")
	if got := audit.SetMetadata(ctx, nil); got != ctx {
		t.Error("SetMetadata with no pairs made a new context")
	}
	if md := audit.FromContext(ctx).Metadata; md != nil {
		t.Errorf("got %v, want nil metadata", md)
	}
}

func TestSettersKeepParentContext(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "value"))
	ctx := audit.SetMetadata(audit.SetActor(parent, audit.Actor{Type: audit.ActorTypeUser}), map[string]string{"k": "v"})
	if ctx.Value(key{}) != "value" {
		t.Error("the parent's values are lost")
	}
	cancel()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the parent's cancellation did not reach the derived context")
	}
	if fmt.Sprint(ctx) == "" {
		t.Error("the context has no name")
	}
}

func TestSetNilParentPanics(t *testing.T) {
	for name, set := range map[string]func(){
		"SetActor":    func() { audit.SetActor(nil, audit.Actor{}) },                 //nolint:staticcheck // the nil is the test
		"SetOrgID":    func() { audit.SetOrgID(nil, "o") },                           //nolint:staticcheck // the nil is the test
		"SetMetadata": func() { audit.SetMetadata(nil, map[string]string{"k": ""}) }, //nolint:staticcheck // the nil is the test
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("got no panic, want one for a nil parent, as context.WithValue does")
				}
			}()
			set()
		})
	}
}

func TestReadsDoNotAllocate(t *testing.T) {
	ctx := audit.SetMetadata(audit.SetOrgID(audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeUser}), "o"), map[string]string{"k": "v"})
	if n := testing.AllocsPerRun(100, func() { audit.ActorFromContext(ctx) }); n != 0 {
		t.Errorf("ActorFromContext: got %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { audit.OrgIDFromContext(ctx) }); n != 0 {
		t.Errorf("OrgIDFromContext: got %v allocs, want 0", n)
	}
}
