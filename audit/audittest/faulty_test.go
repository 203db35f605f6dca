package audittest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raystack/salt/audit"
)

// A fault is one way to get the Repository contract wrong, each a mistake
// a real implementation could make.
type fault string

const (
	noFault            fault = ""
	ignoresLimit       fault = "ignores-limit"        // returns every match
	wrongOrder         fault = "wrong-order"          // oldest first
	noTieBreak         fault = "no-tie-break"         // equal CreatedAt in the order stored
	ignoresOrgID       fault = "ignores-org-id"       // lists every tenant
	keepsCallerMap     fault = "keeps-caller-map"     // stores the caller's Metadata map
	offsetCursor       fault = "offset-cursor"        // a cursor stands for an offset
	acceptsDuplicates  fault = "accepts-duplicates"   // stores a second log with a stored ID
	nilErrorUnknownID  fault = "nil-error-unknown-id" // GetByID of an unknown ID returns a zero Log
	keepsNanoseconds   fault = "keeps-nanoseconds"    // stores CreatedAt untruncated
	untilInclusive     fault = "until-inclusive"      // CreatedAt <= Until
	ignoresContext     fault = "ignores-context"      // works on with a done ctx
	sharesResultMaps   fault = "shares-result-maps"   // returns the stored Metadata maps
	skipsValidation    fault = "skips-validation"     // stores invalid logs
	acceptsBadCursor   fault = "accepts-bad-cursor"   // a malformed cursor starts at the newest log
	metadataMatchesAny fault = "metadata-matches-any" // one matching pair is enough
	foldsCase          fault = "folds-case"           // exact matches ignore case, like some collations
)

// sliceRepo is a Repository kept in a slice, newest first, that filters
// with Filter.Match: simple enough to be obviously right without a fault,
// and to go wrong in exactly one way with one.
type sliceRepo struct {
	fault fault

	mu      sync.Mutex
	logs    []audit.Log // newest first
	offsets map[string]int
}

func newSliceRepo(f fault) *sliceRepo {
	return &sliceRepo{fault: f, offsets: make(map[string]int)}
}

var _ audit.Repository = (*sliceRepo)(nil)

func (r *sliceRepo) ctxErr(ctx context.Context) error {
	if r.fault == ignoresContext {
		return nil
	}
	return ctx.Err()
}

func (r *sliceRepo) Create(ctx context.Context, l *audit.Log) error {
	if r.fault != skipsValidation {
		if err := l.Validate(); err != nil {
			return err
		}
	}
	if err := r.ctxErr(ctx); err != nil {
		return err
	}
	s := *l
	if r.fault != keepsCallerMap {
		s.Metadata = maps.Clone(l.Metadata)
	}
	s.CreatedAt = l.CreatedAt.UTC()
	if r.fault != keepsNanoseconds {
		s.CreatedAt = s.CreatedAt.Truncate(time.Microsecond)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fault != acceptsDuplicates && r.has(s.ID) {
		return fmt.Errorf("%w: %q", audit.ErrAlreadyExists, s.ID)
	}
	r.insert(s)
	return nil
}

func (r *sliceRepo) has(id string) bool {
	return slices.ContainsFunc(r.logs, func(l audit.Log) bool { return l.ID == id })
}

// insert puts l in its place, newest first, after the logs it ties with
// when the fault is noTieBreak.
func (r *sliceRepo) insert(l audit.Log) {
	i := len(r.logs)
	for j, m := range r.logs {
		c := m.CreatedAt.Compare(l.CreatedAt)
		if c < 0 || c == 0 && r.fault != noTieBreak && m.ID < l.ID {
			i = j
			break
		}
	}
	r.logs = slices.Insert(r.logs, i, l)
}

func (r *sliceRepo) List(ctx context.Context, f audit.Filter) ([]audit.Log, error) {
	err := f.Validate()
	var verr *audit.ValidationError
	if r.fault == acceptsBadCursor && errors.As(err, &verr) && verr.Field == "cursor" {
		f.Cursor = ""
		err = f.Validate()
	}
	if err != nil {
		return nil, err
	}
	if err := r.ctxErr(ctx); err != nil {
		return nil, err
	}
	limit := f.PageSize()
	match := f
	switch r.fault {
	case ignoresLimit:
		limit = math.MaxInt
	case ignoresOrgID:
		match.OrgID = ""
	case untilInclusive:
		if !f.Until.IsZero() {
			match.Until = f.Until.Add(time.Nanosecond)
		}
	case metadataMatchesAny, foldsCase:
		match = audit.Filter{Since: f.Since, Until: f.Until, Cursor: f.Cursor}
	case offsetCursor:
		match.Cursor = ""
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	skip := 0
	if r.fault == offsetCursor && f.Cursor != "" {
		skip = r.offsets[f.Cursor]
	}
	start := skip
	out := []audit.Log{}
	for _, l := range r.logs {
		if len(out) == limit {
			break
		}
		if !match.Match(l) || !r.matchExtra(f, l) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if r.fault != sharesResultMaps {
			l = l.Clone()
		}
		out = append(out, l)
	}
	if r.fault == offsetCursor && len(out) > 0 {
		r.offsets[audit.NextCursor(out)] = start + len(out)
	}
	if r.fault == wrongOrder {
		slices.Reverse(out)
	}
	return out, nil
}

// matchExtra applies the fields that a fault takes out of Match.
func (r *sliceRepo) matchExtra(f audit.Filter, l audit.Log) bool {
	switch r.fault {
	case metadataMatchesAny:
		g := f
		g.Metadata, g.Since, g.Until, g.Cursor = nil, time.Time{}, time.Time{}, ""
		if !g.Match(l) {
			return false
		}
		for k, v := range f.Metadata {
			if l.Metadata[k] == v {
				return true
			}
		}
		return len(f.Metadata) == 0
	case foldsCase:
		eq := func(want, got string) bool { return want == "" || strings.EqualFold(want, got) }
		if !eq(f.OrgID, l.OrgID) || !eq(f.Source, l.Source) || !eq(f.Action, l.Action) ||
			!eq(f.ActorID, l.Actor.ID) || !eq(f.ActorType, l.Actor.Type) ||
			!eq(f.TargetID, l.Target.ID) || !eq(f.TargetType, l.Target.Type) {
			return false
		}
		for k, v := range f.Metadata {
			if got, ok := l.Metadata[k]; !ok || !strings.EqualFold(got, v) {
				return false
			}
		}
	}
	return true
}

func (r *sliceRepo) GetByID(ctx context.Context, id string) (audit.Log, error) {
	if err := r.ctxErr(ctx); err != nil {
		return audit.Log{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.logs {
		if l.ID == id {
			if r.fault != sharesResultMaps {
				l = l.Clone()
			}
			return l, nil
		}
	}
	if r.fault == nilErrorUnknownID {
		return audit.Log{}, nil
	}
	return audit.Log{}, fmt.Errorf("%w: id %q", audit.ErrNotFound, id)
}
