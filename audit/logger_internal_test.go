package audit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// captureRepo stores nothing and remembers the last log it was given.
type captureRepo struct {
	last  Log
	calls int
}

func (r *captureRepo) Create(_ context.Context, l *Log) error {
	r.last = l.Clone()
	r.calls++
	return nil
}

func (*captureRepo) List(context.Context, Filter) ([]Log, error) { return nil, nil }
func (*captureRepo) GetByID(context.Context, string) (Log, error) {
	return Log{}, ErrNotFound
}

// faultyCase is a log with any number of faults, spread over the
// Logger's options, the context and the log itself.
type faultyCase struct {
	opts   []Option
	ctx    context.Context
	log    Log  // given to Record
	viaLog bool // stored with Log(ctx, log.Action, log.Target) instead
	ids    *[]string
	clock  func() time.Time
}

// pick returns one of the values at random.
func pick[T any](rng *rand.Rand, values ...T) T { return values[rng.IntN(len(values))] }

// badStrings are values that fail Validate in any string field.
var badStrings = []string{"bad\xffutf8", "nul\x00byte", strings.Repeat("x", MaxEntityNameLen+1)}

// faults decides, at a rate of its own, whether a field gets a fault.
type faults struct {
	rng  *rand.Rand
	rate float64
}

func (f faults) now() bool { return f.rng.Float64() < f.rate }

func randomMetadata(rng *rand.Rand, f faults, prefix string) map[string]string {
	md := map[string]string{}
	for i := range rng.IntN(5) {
		k, v := fmt.Sprintf("%s%d", prefix, i), "v"
		switch {
		case f.now():
			k = pick(rng, "", "k\xff", "k\x00", strings.Repeat("k", MaxMetadataKeyLen+1))
		case f.now():
			v = pick(rng, "v\xff", "\x00", strings.Repeat("v", MaxMetadataValueLen+1))
		case rng.IntN(4) == 0:
			// A secret whose bad value is valid once redacted.
			k, v = prefix+"_token", pick(rng, "t\x00", "t")
		case rng.IntN(4) == 0:
			k = "shared" // also set by another layer or by the log
		}
		md[k] = v
	}
	if f.now() {
		for i := range 40 { // with another layer's 40, more than MaxMetadataKeys
			md[fmt.Sprintf("%s-many-%02d", prefix, i)] = "v"
		}
	}
	return md
}

func randomFaultyCase(rng *rand.Rand) faultyCase {
	f := faults{rng, pick(rng, 0, 0.05, 0.15, 0.4)}
	// bad returns one of badStrings when a fault is due, else good.
	bad := func(good string) string {
		if f.now() {
			return pick(rng, badStrings...)
		}
		return good
	}
	var c faultyCase
	switch {
	case f.now():
		c.opts = append(c.opts, WithSource(pick(rng, badStrings...)))
	case f.now(): // no source
	default:
		c.opts = append(c.opts, WithSource("svc"))
	}
	if rng.IntN(3) == 0 {
		at := time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC)
		if f.now() {
			at = pick(rng, time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{})
		}
		c.clock = func() time.Time { return at }
		c.opts = append(c.opts, WithClock(c.clock))
	}
	if rng.IntN(3) == 0 {
		ids := []string{}
		c.ids = &ids
		id := "ok"
		if f.now() {
			id = pick(rng, "", "id\xff")
		}
		c.opts = append(c.opts, WithIDFunc(func() string {
			next := id
			if next == "ok" {
				next = fmt.Sprintf("id-%d", len(ids))
			}
			ids = append(ids, next)
			return next
		}))
	}

	ctx := context.Background()
	if rng.IntN(4) > 0 {
		a := Actor{ID: "u", Type: ActorTypeUser, Name: bad("Ada")}
		if f.now() {
			a.Type = ""
		}
		ctx = SetActor(ctx, a)
	}
	if rng.IntN(2) == 0 {
		ctx = SetOrgID(ctx, bad("org"))
	}
	for range rng.IntN(3) {
		ctx = SetMetadata(ctx, randomMetadata(rng, f, "ctx"))
	}
	c.ctx = ctx

	l := Log{Action: "app.x", Target: Target{ID: bad("t"), Type: bad("thing"), Name: bad("")}}
	if f.now() {
		l.Action = pick(rng, "", "a\x00")
	}
	c.viaLog = rng.IntN(4) == 0
	if c.viaLog {
		c.log = l
		return c
	}
	if rng.IntN(3) == 0 {
		l.ID = bad("own-id")
	}
	if rng.IntN(4) == 0 {
		l.OrgID = bad("own-org")
	}
	if rng.IntN(4) == 0 {
		l.Source = bad("own-source")
	}
	if rng.IntN(3) == 0 {
		l.Actor = Actor{Type: bad(ActorTypeService), Name: bad("")}
	}
	if rng.IntN(3) == 0 {
		l.CreatedAt = time.Date(2025, 5, 6, 7, 8, 9, 1, time.UTC)
		if f.now() {
			l.CreatedAt = pick(rng, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}.Add(time.Nanosecond))
		}
	}
	if rng.IntN(2) == 0 {
		l.Metadata = randomMetadata(rng, f, "own")
	}
	c.log = l
	return c
}

// expected returns the log the Logger would store for c: l as Record left
// it (or, for Log, as the Logger fills it), with the metadata of the
// context merged under the log's own and secrets redacted.
func (c *faultyCase) expected(lg *Logger, l Log) Log {
	if c.viaLog {
		l.Source = lg.source
		if c.ids != nil {
			l.ID = (*c.ids)[len(*c.ids)-1]
		} else {
			l.ID = "generated"
		}
		if c.clock != nil {
			l.CreatedAt = normalizeTime(c.clock())
		} else {
			l.CreatedAt = normalizeTime(time.Now())
		}
		from := FromContext(c.ctx)
		l.OrgID, l.Actor = from.OrgID, from.Actor
	}
	md := FromContext(c.ctx).Metadata
	if md == nil && len(c.log.Metadata) > 0 {
		md = map[string]string{}
	}
	maps.Copy(md, c.log.Metadata)
	for k, v := range md {
		if v != Redacted && lg.redact.secret(k) {
			md[k] = Redacted
		}
	}
	l.Metadata = md
	return l
}

// TestLoggerNamesValidatesFirstError checks, over many logs with several
// faults each, that the Logger rejects exactly the logs whose completed
// form fails Validate, with the same first offending field and reason,
// and stores the others as Validate would accept them.
func TestLoggerNamesValidatesFirstError(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 6))
	var invalid, several int
	for i := range 3000 {
		c := randomFaultyCase(rng)
		repo := &captureRepo{}
		lg := NewLogger(repo, c.opts...)
		l := c.log
		var got error
		if c.viaLog {
			got = lg.Log(c.ctx, l.Action, l.Target)
		} else {
			got = lg.Record(c.ctx, &l)
		}
		want := c.expected(lg, l)
		wantErr := want.Validate()
		var gv, wv *ValidationError
		switch {
		case wantErr == nil && got == nil:
			stored := repo.last
			if c.viaLog {
				stored.ID, stored.CreatedAt = want.ID, want.CreatedAt
				if c.ids != nil && repo.last.ID != want.ID {
					t.Fatalf("case %d: stored ID %q, want %q", i, repo.last.ID, want.ID)
				}
			}
			if !sameLog(stored, want) {
				t.Fatalf("case %d: stored %+v, want %+v", i, repo.last, want)
			}
		case !errors.As(got, &gv) || !errors.As(wantErr, &wv):
			t.Fatalf("case %d: Logger: %v; Validate of %+v: %v", i, got, want, wantErr)
		case gv.Field != wv.Field || gv.Reason != wv.Reason || !errors.Is(got, ErrInvalidLog):
			t.Fatalf("case %d: Logger: %v; Validate of %+v: %v: want the same first offending field", i, got, want, wantErr)
		default:
			invalid++
			if countFaults(want) > 1 {
				several++
			}
			if repo.calls != 0 {
				t.Fatalf("case %d: an invalid log reached the repository", i)
			}
		}
	}
	// The cases must be valid and invalid, many with several faults, for
	// the comparison to mean something.
	if invalid < 1000 || several < 500 || invalid > 2500 {
		t.Errorf("got %d invalid logs, %d with several faults, of 3000: the cases are too tame", invalid, several)
	}
	t.Logf("%d invalid logs, %d with several faults, of 3000", invalid, several)
}

// countFaults returns how many fields of l fail Validate on their own.
func countFaults(l Log) int {
	n := 0
	for i := range fieldNames {
		if checkField(fieldNames[i], l.field(i), fieldMax[i], fieldRequired[i]) != nil {
			n++
		}
	}
	if !validTime(l.CreatedAt) {
		n++
	}
	if len(l.Metadata) > MaxMetadataKeys {
		return n + 1
	}
	for k, v := range l.Metadata {
		if validatePairs([]kv{{k, v}}) != nil {
			n++
		}
	}
	return n
}

func sameLog(a, b Log) bool {
	return a.ID == b.ID && a.OrgID == b.OrgID && a.Source == b.Source && a.Action == b.Action &&
		a.Actor == b.Actor && a.Target == b.Target && maps.Equal(a.Metadata, b.Metadata) &&
		a.CreatedAt.Equal(b.CreatedAt)
}
