package audit_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/raystack/salt/audit"
)

// onlyLog returns the single log in repo.
func onlyLog(t *testing.T, repo audit.Repository) audit.Log {
	t.Helper()
	logs, err := repo.List(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 1 {
		t.Fatalf("got %d logs, want 1: %+v", len(logs), logs)
	}
	return logs[0]
}

func TestLoggerLogFillsTheLog(t *testing.T) {
	repo := audit.NewMemoryRepository()
	now := time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	lg := audit.NewLogger(repo, audit.WithSource("frontier"), audit.WithClock(func() time.Time { return now }))

	actor := audit.Actor{ID: "u-1", Type: audit.ActorTypeUser, Name: "Ada"}
	ctx := audit.SetActor(context.Background(), actor)
	ctx = audit.SetOrgID(ctx, "org-1")
	ctx = audit.SetMetadata(ctx, map[string]string{audit.MetadataRequestID: "r-1", audit.MetadataIP: "203.0.113.9"})
	target := audit.Target{ID: "p-1", Type: "project", Name: "apollo"}
	if err := lg.Log(ctx, "app.project.created", target); err != nil {
		t.Fatal(err)
	}

	got := onlyLog(t, repo)
	id, err := uuid.Parse(got.ID)
	if err != nil || id.Version() != 7 {
		t.Errorf("got ID %q, want a UUIDv7 (%v)", got.ID, err)
	}
	// IDs carry the time they were made, which orders them even when a
	// clock or a caller gives logs other times.
	if sec, _ := id.Time().UnixTime(); sec < time.Now().Add(-time.Hour).Unix() || sec > time.Now().Add(time.Hour).Unix() {
		t.Errorf("got ID time %v, want about now", time.Unix(sec, 0))
	}
	want := audit.Log{
		ID: got.ID, OrgID: "org-1", Source: "frontier", Action: "app.project.created",
		Actor: actor, Target: target,
		Metadata:  map[string]string{audit.MetadataRequestID: "r-1", audit.MetadataIP: "203.0.113.9"},
		CreatedAt: time.Date(2026, 11, 26, 9, 0, 0, 123456000, time.UTC),
	}
	checkSameLog(t, got, want)
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("got created_at in %v, want UTC", got.CreatedAt.Location())
	}
}

func TestLoggerRecord(t *testing.T) {
	repo := audit.NewMemoryRepository()
	lg := audit.NewLogger(repo, audit.WithSource("frontier"))
	ctx := audit.SetActor(context.Background(), audit.Actor{ID: "u-1", Type: audit.ActorTypeUser})
	ctx = audit.SetOrgID(ctx, "org-ctx")
	ctx = audit.SetMetadata(ctx, map[string]string{"a": "ctx", "b": "ctx"})

	own := map[string]string{"b": "own", "c": "own"}
	at := time.Date(2026, 1, 1, 0, 0, 0, 999, time.UTC)
	l := audit.Log{
		OrgID: "org-own", Source: "billing", Action: "app.invoice.paid",
		Actor: audit.Actor{ID: "svc", Type: audit.ActorTypeService}, Metadata: own, CreatedAt: at,
	}
	if err := lg.Record(ctx, &l); err != nil {
		t.Fatal(err)
	}
	if l.ID == "" || !l.CreatedAt.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("Record did not report what it filled: %+v", l)
	}
	if !maps.Equal(own, map[string]string{"b": "own", "c": "own"}) || !maps.Equal(l.Metadata, own) {
		t.Errorf("Record changed the caller's metadata: %v", own)
	}
	got := onlyLog(t, repo)
	if got.OrgID != "org-own" || got.Source != "billing" || got.Actor.ID != "svc" {
		t.Errorf("Record replaced fields that were set: %+v", got)
	}
	if want := map[string]string{"a": "ctx", "b": "own", "c": "own"}; !maps.Equal(got.Metadata, want) {
		t.Errorf("got metadata %v, want %v: the log's keys win over the context's", got.Metadata, want)
	}
	if got.ID != l.ID {
		t.Errorf("stored ID %q, reported %q", got.ID, l.ID)
	}
}

func TestLoggerRedaction(t *testing.T) {
	secretKeys := []string{"password", "X-Api-Key", "Authorization", "session_token", "Cookie", "client-secret", "PRIVATE-KEY",
		"apiKey_token", "apiKey", "passwd_hint_len", "pa\u017f\u017fword", "userPin", "session_id"}
	plainKeys := []string{"ip", "user_agent", "api", "route", "author", "passenger", "shipping"}
	md := map[string]string{}
	for _, k := range append(secretKeys, plainKeys...) {
		md[k] = "value of " + k
	}
	for _, tt := range []struct {
		name     string
		opts     []audit.Option
		redacted []string
	}{
		{"default", nil, secretKeys},
		{"replaced", []audit.Option{audit.WithRedactedKeys("ROUTE", "user-agent")}, []string{"route", "user_agent"}},
		{"disabled", []audit.Option{audit.WithRedactedKeys()}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, via := range []string{"context", "record", "record-without-context"} {
				repo := audit.NewMemoryRepository()
				lg := audit.NewLogger(repo, append(tt.opts, audit.WithSource("s"))...)
				var err error
				switch via {
				case "context":
					ctx := audit.SetActor(audit.SetMetadata(context.Background(), md), audit.Actor{Type: audit.ActorTypeUser})
					err = lg.Log(ctx, "app.login", audit.Target{})
				case "record":
					ctx := audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeUser})
					err = lg.Record(ctx, &audit.Log{Action: "app.login", Metadata: md})
				default:
					err = lg.Record(context.Background(), &audit.Log{Action: "app.login", Actor: audit.Actor{Type: audit.ActorTypeUser}, Metadata: md})
				}
				if err != nil {
					t.Fatal(err)
				}
				got := onlyLog(t, repo).Metadata
				for k, v := range md {
					want := v
					if slices.Contains(tt.redacted, k) {
						want = audit.Redacted
					}
					if got[k] != want {
						t.Errorf("%s: got %s=%q, want %q", via, k, got[k], want)
					}
				}
				if md["password"] != "value of password" {
					t.Fatalf("%s: redaction changed the caller's map", via)
				}
			}
		})
	}
}

func TestLoggerRedactionMakesASecretValid(t *testing.T) {
	// A secret is never stored, so an invalid secret value must not cost
	// the log.
	repo := audit.NewMemoryRepository()
	lg := audit.NewLogger(repo, audit.WithSource("s"))
	ctx := audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeUser})
	ctx = audit.SetMetadata(ctx, map[string]string{"token": "bad\x00value"})
	if err := lg.Log(ctx, "app.login", audit.Target{}); err != nil {
		t.Fatal(err)
	}
	if got := onlyLog(t, repo).Metadata["token"]; got != audit.Redacted {
		t.Errorf("got %q, want %q", got, audit.Redacted)
	}
}

func TestLoggerRejectsInvalidLogs(t *testing.T) {
	repo := audit.NewMemoryRepository()
	lg := audit.NewLogger(repo, audit.WithSource("s"))
	actorCtx := audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeUser})
	for _, tt := range []struct {
		name  string
		ctx   context.Context
		log   func() error
		field string
	}{
		{"no actor", context.Background(), func() error { return lg.Log(context.Background(), "a", audit.Target{}) }, "actor.type"},
		{"no action", actorCtx, func() error { return lg.Log(actorCtx, "", audit.Target{}) }, "action"},
		{"long target name", actorCtx, func() error {
			return lg.Log(actorCtx, "a", audit.Target{Name: strings.Repeat("n", audit.MaxEntityNameLen+1)})
		}, "target.name"},
		{"bad context metadata", nil, func() error {
			return lg.Log(audit.SetMetadata(actorCtx, map[string]string{"k": "\xff"}), "a", audit.Target{})
		}, `metadata["k"]`},
		{"bad record metadata", nil, func() error {
			return lg.Record(actorCtx, &audit.Log{Action: "a", Metadata: map[string]string{"": "v"}})
		}, "metadata"},
		{"too much metadata", nil, func() error {
			md := map[string]string{}
			for i := range audit.MaxMetadataKeys + 1 {
				md[fmt.Sprint(i)] = "v"
			}
			return lg.Record(context.Background(), &audit.Log{Action: "a", Actor: audit.Actor{Type: "user"}, Metadata: md})
		}, "metadata"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.log()
			var ve *audit.ValidationError
			if !errors.Is(err, audit.ErrInvalidLog) || !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("got %v, want ErrInvalidLog naming %s", err, tt.field)
			}
		})
	}
	if repo.Len() != 0 {
		t.Errorf("invalid logs were stored: %d", repo.Len())
	}

	// The Logger validates by itself, whatever the repository does: these
	// must not reach a repository that would store anything.
	var reached int
	lax := repoFunc(func(context.Context, *audit.Log) error { reached++; return nil })
	laxLogger := audit.NewLogger(lax, audit.WithSource("s"))
	badActor := audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeUser, Name: "x\x00"})
	badOrg := audit.SetOrgID(actorCtx, strings.Repeat("o", audit.MaxOrgIDLen+1))
	for range 2 { // the context's identity is checked once and remembered
		if err := laxLogger.Log(badActor, "a", audit.Target{}); !errors.Is(err, audit.ErrInvalidLog) {
			t.Errorf("got %v, want ErrInvalidLog for an actor name with NUL", err)
		}
		if err := laxLogger.Log(badOrg, "a", audit.Target{}); !errors.Is(err, audit.ErrInvalidLog) {
			t.Errorf("got %v, want ErrInvalidLog for a long org", err)
		}
		if err := laxLogger.Log(actorCtx, "a\x00", audit.Target{}); !errors.Is(err, audit.ErrInvalidLog) {
			t.Errorf("got %v, want ErrInvalidLog for an action with NUL", err)
		}
	}
	for name, lg := range map[string]*audit.Logger{
		"source not UTF-8": audit.NewLogger(lax, audit.WithSource("s\xff")),
		"clock in 12000":   audit.NewLogger(lax, audit.WithSource("s"), audit.WithClock(func() time.Time { return time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC) })),
		"empty ID":         audit.NewLogger(lax, audit.WithSource("s"), audit.WithIDFunc(func() string { return "" })),
	} {
		if err := lg.Log(actorCtx, "a", audit.Target{}); !errors.Is(err, audit.ErrInvalidLog) {
			t.Errorf("%s: got %v, want ErrInvalidLog", name, err)
		}
	}
	if reached != 0 {
		t.Errorf("%d invalid logs reached the repository", reached)
	}
	if err := laxLogger.Log(actorCtx, "a", audit.Target{}); err != nil || reached != 1 {
		t.Errorf("a valid log: got %v and %d calls, want it stored", err, reached)
	}

	noSource := audit.NewLogger(repo)
	if err := noSource.Log(actorCtx, "a", audit.Target{}); !errors.Is(err, audit.ErrInvalidLog) {
		t.Errorf("got %v, want ErrInvalidLog for a Logger without a source", err)
	}
}

// repoFunc is a Repository whose Create is a function; List and GetByID
// are not used.
type repoFunc func(ctx context.Context, l *audit.Log) error

func (f repoFunc) Create(ctx context.Context, l *audit.Log) error { return f(ctx, l) }
func (repoFunc) List(context.Context, audit.Filter) ([]audit.Log, error) {
	return nil, errors.New("not implemented")
}

func (repoFunc) GetByID(context.Context, string) (audit.Log, error) {
	return audit.Log{}, errors.New("not implemented")
}

func TestLoggerReturnsTheStoreError(t *testing.T) {
	boom := errors.New("disk full")
	lg := audit.NewLogger(repoFunc(func(context.Context, *audit.Log) error { return boom }), audit.WithSource("s"))
	ctx := audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeUser})
	err := lg.Log(ctx, "app.x", audit.Target{})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "app.x") {
		t.Errorf("got %v, want the repository's error, wrapped with the action", err)
	}

	dup := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"), audit.WithIDFunc(func() string { return "same" }))
	if err := dup.Log(ctx, "a", audit.Target{}); err != nil {
		t.Fatal(err)
	}
	if err := dup.Log(ctx, "a", audit.Target{}); !errors.Is(err, audit.ErrAlreadyExists) {
		t.Errorf("got %v, want ErrAlreadyExists", err)
	}
}

func TestLoggerSurvivesCancellation(t *testing.T) {
	type key struct{}
	var gotValue any
	var gotErr error
	repo := repoFunc(func(ctx context.Context, _ *audit.Log) error {
		gotValue, gotErr = ctx.Value(key{}), ctx.Err()
		return ctx.Err()
	})
	lg := audit.NewLogger(repo, audit.WithSource("s"))
	ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), key{}, "v"))
	ctx = audit.SetActor(ctx, audit.Actor{Type: audit.ActorTypeUser})
	cancel(errors.New("client went away"))
	if err := lg.Log(ctx, "app.x", audit.Target{}); err != nil {
		t.Fatalf("got %v: a canceled request lost its audit log", err)
	}
	if gotValue != "v" || gotErr != nil {
		t.Errorf("the store saw value %v and error %v, want the request's values without its cancellation", gotValue, gotErr)
	}
}

func TestLoggerTimeout(t *testing.T) {
	// A store that waits for its context is cut off by the Logger's
	// timeout, not by the request's.
	var deadline time.Time
	stuck := repoFunc(func(ctx context.Context, _ *audit.Log) error {
		deadline, _ = ctx.Deadline()
		<-ctx.Done()
		return context.Cause(ctx)
	})
	lg := audit.NewLogger(stuck, audit.WithSource("s"), audit.WithTimeout(50*time.Millisecond))
	ctx := audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeUser})
	start := time.Now()
	err := lg.Log(ctx, "app.x", audit.Target{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if d := deadline.Sub(start); d <= 0 || d > time.Minute {
		t.Errorf("the store saw deadline %v after the call, want about 50ms", d)
	}

	// A store that only checks Err sees the deadline too.
	polling := repoFunc(func(ctx context.Context, _ *audit.Log) error {
		for ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		return ctx.Err()
	})
	lg = audit.NewLogger(polling, audit.WithSource("s"), audit.WithTimeout(20*time.Millisecond))
	if err := lg.Log(ctx, "app.x", audit.Target{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}

	// Without a timeout the store's context has no deadline.
	lg = audit.NewLogger(repoFunc(func(ctx context.Context, _ *audit.Log) error {
		if _, ok := ctx.Deadline(); ok {
			return errors.New("unexpected deadline")
		}
		return nil
	}), audit.WithSource("s"), audit.WithTimeout(0))
	if err := lg.Log(ctx, "app.x", audit.Target{}); err != nil {
		t.Fatal(err)
	}
}

func TestLoggerConcurrentUse(t *testing.T) {
	repo := audit.NewMemoryRepository()
	lg := audit.NewLogger(repo, audit.WithSource("s"))
	const goroutines, each = 8, 250
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := audit.SetActor(context.Background(), audit.Actor{ID: fmt.Sprint(g), Type: audit.ActorTypeUser})
			ctx = audit.SetMetadata(ctx, map[string]string{"g": fmt.Sprint(g)})
			for i := range each {
				if err := lg.Log(ctx, "app.x", audit.Target{ID: fmt.Sprint(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if repo.Len() != goroutines*each {
		t.Fatalf("got %d logs, want %d", repo.Len(), goroutines*each)
	}
	logs, err := repo.List(context.Background(), audit.Filter{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range logs {
		if l.Metadata["g"] != l.Actor.ID {
			t.Fatalf("log %+v mixes two requests' context", l)
		}
	}
}

func TestLoggerIDsAreOrdered(t *testing.T) {
	// With a clock that stands still, IDs still sort in creation order.
	repo := audit.NewMemoryRepository()
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	lg := audit.NewLogger(repo, audit.WithSource("s"), audit.WithClock(func() time.Time { return now }))
	ctx := audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeUser})
	var ids []string
	for i := range 5000 { // more than one millisecond's counter holds
		l := audit.Log{Action: "a", Target: audit.Target{ID: fmt.Sprint(i)}}
		if err := lg.Record(ctx, &l); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, l.ID)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ID %d %s is not after %s", i, ids[i], ids[i-1])
		}
	}
}

func TestLoggerIDsIgnoreOddTimes(t *testing.T) {
	// A log from 1969 or from a clock far ahead must not push the IDs made
	// after it away from the present.
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"))
	ctx := audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeUser})
	for _, at := range []time.Time{
		time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	} {
		if err := lg.Record(ctx, &audit.Log{Action: "a", CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	far := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithClock(func() time.Time { return time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC) }))
	if err := far.Log(ctx, "a", audit.Target{}); !errors.Is(err, audit.ErrInvalidLog) {
		t.Fatalf("got %v, want a log from year 12000 rejected", err)
	}
	l := audit.Log{Action: "a"}
	if err := lg.Record(ctx, &l); err != nil {
		t.Fatal(err)
	}
	sec, _ := uuid.MustParse(l.ID).Time().UnixTime()
	if d := time.Since(time.Unix(sec, 0)); d < -time.Hour || d > time.Hour {
		t.Errorf("got ID time %v after odd times, want about now", time.Unix(sec, 0))
	}
}

func TestNewLoggerNilRepositoryPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("got no panic for a nil Repository")
		}
	}()
	audit.NewLogger(nil)
}

// requestMetadata returns the two layers of metadata of request n, as
// middleware and a handler set them, and the merged, redacted metadata a
// log of the request must hold. Each request has keys of its own, and a
// number of them that crosses the pairs a Logger merges on the stack.
func requestMetadata(n int) (first, second, want map[string]string) {
	first = map[string]string{audit.MetadataRequestID: fmt.Sprint("req-", n), "route": "/first"}
	second = map[string]string{"route": "/second"}
	for k := range n % 24 {
		first[fmt.Sprintf("r%d.k%d", n, k)] = fmt.Sprint(k)
	}
	if n%3 == 0 {
		second["access_token"] = fmt.Sprint("secret-", n)
	}
	want = maps.Clone(first)
	maps.Copy(want, second)
	if n%3 == 0 {
		want["access_token"] = audit.Redacted
	}
	return first, second, want
}

func TestLoggerLogsEachRequestsOwnMetadata(t *testing.T) {
	// Each request's context is new and logged a few times, on several
	// goroutines at once: every log holds its own request's metadata,
	// nothing of the requests logged before it.
	repo := audit.NewMemoryRepository()
	lg := audit.NewLogger(repo, audit.WithSource("s"))
	const goroutines, each, logsPerRequest = 4, 80, 3
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := g*each + i
				first, second, want := requestMetadata(n)
				ctx := audit.SetMetadata(audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeUser}), first)
				ctx = audit.SetMetadata(ctx, second)
				for range logsPerRequest {
					if err := lg.Log(ctx, "app.x", audit.Target{ID: fmt.Sprint(n)}); err != nil {
						t.Error(err)
						return
					}
				}
				maps.Copy(want, second)
				if got := audit.FromContext(ctx).Metadata; !maps.Equal(got, want) {
					t.Errorf("request %d: FromContext got %v, want %v: it does not redact", n, got, want)
				}
			}
		}()
	}
	wg.Wait()
	logs, err := repo.List(context.Background(), audit.Filter{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != goroutines*each*logsPerRequest {
		t.Fatalf("got %d logs, want %d", len(logs), goroutines*each*logsPerRequest)
	}
	for _, l := range logs {
		checkRequestMetadata(t, "stored", l)
	}
}

// checkRequestMetadata checks that l, whose Target.ID is the number of a
// request of requestMetadata, holds that request's metadata.
func checkRequestMetadata(t *testing.T, what string, l audit.Log) {
	t.Helper()
	n, err := strconv.Atoi(l.Target.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, want := requestMetadata(n); !maps.Equal(l.Metadata, want) {
		t.Errorf("%s log of request %d has metadata %v, want %v", what, n, l.Metadata, want)
	}
}
