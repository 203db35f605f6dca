package audittest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/textproto"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/raystack/salt/audit"
)

// A fault is one way to get the Repository contract wrong, each a mistake
// a real implementation could make: on SQL with another collation or
// another time type, on a key-value store, a document store, a stream.
type fault string

const (
	noFault fault = ""

	// Create.
	skipsValidation      fault = "skips-validation"                 // stores invalid logs
	duplicateFirst       fault = "checks-id-before-validating"      // an invalid log with a stored ID is ErrAlreadyExists
	contextFirst         fault = "checks-context-before-validating" // an invalid log with a done ctx is the ctx's error
	countsCharacters     fault = "counts-characters"                // bounds in characters, like VARCHAR(n), not bytes
	allowsNUL            fault = "allows-nul-bytes"                 // a key-value store takes any bytes
	truncatesNames       fault = "truncates-names"                  // VARCHAR(1000) names, cut silently
	acceptsDuplicates    fault = "accepts-duplicates"               // stores a second log with a stored ID
	overwritesDuplicates fault = "overwrites-duplicates"            // a key-value put, then ErrAlreadyExists
	idsFoldCase          fault = "ids-fold-case"                    // a case-insensitive collation on the ID
	idsPadSpace          fault = "ids-ignore-trailing-spaces"       // a PAD SPACE collation on the ID
	keepsCallerMap       fault = "keeps-caller-map"                 // stores the caller's Metadata map
	normalizesCallerLog  fault = "normalizes-callers-log"           // sets the caller's CreatedAt to the stored one
	idsPerOrg            fault = "ids-unique-per-org"               // PRIMARY KEY (org_id, id)
	plainDuplicate       fault = "plain-duplicate-error"            // the driver's unique violation, not ErrAlreadyExists
	truncatesIDs         fault = "truncates-ids"                    // VARCHAR(255) IDs
	trimsSpaces          fault = "trims-spaces"                     // TRIM on the way in
	stripsControl        fault = "strips-control-characters"        // a sanitizer that drops control characters
	normalizesUnicode    fault = "normalizes-unicode"               // NFC on the way in

	// What is stored.
	keepsNanoseconds  fault = "keeps-nanoseconds"      // stores CreatedAt untruncated
	milliseconds      fault = "millisecond-precision"  // a DATETIME(3), a JavaScript Date, a BSON date
	roundsMicros      fault = "rounds-to-microseconds" // rounds where the contract truncates
	returnsLocalTime  fault = "returns-local-time"     // reads a timestamp back in the connection's time zone
	dropsZone         fault = "drops-time-zone"        // a timestamp without time zone, given local wall clocks
	floatSeconds      fault = "float-seconds"          // Unix seconds in a float64
	dropsEmptyValues  fault = "drops-empty-values"     // omitempty in a document store
	canonicalKeys     fault = "canonicalizes-keys"     // metadata keys as HTTP header names
	escapesDottedKeys fault = "escapes-dotted-keys"    // a document store that forbids '.' in keys

	// GetByID.
	nilErrorUnknownID fault = "nil-error-unknown-id" // GetByID of an unknown ID returns a zero Log
	getByPrefix       fault = "get-by-prefix"        // a prefix scan of a key-value store
	getFailsOnBadID   fault = "get-fails-on-bad-id"  // an ID PostgreSQL cannot receive is an encoding error
	sharesResultMaps  fault = "shares-result-maps"   // returns the stored Metadata maps

	// Order and pages.
	wrongOrder        fault = "wrong-order"             // oldest first
	noTieBreak        fault = "no-tie-break"            // equal CreatedAt in the order stored
	tieAscending      fault = "tie-break-ascending"     // equal CreatedAt by ID ascending
	tieByCollation    fault = "tie-break-by-collation"  // equal CreatedAt by ID in a linguistic collation
	idsInUTF16        fault = "ids-in-utf16-order"      // IDs compared by UTF-16 code units, as _BIN2 collations, Java and JavaScript do
	timeAsText        fault = "orders-time-as-text"     // RFC 3339 strings, which drop trailing zeros
	microsAsText      fault = "orders-micros-as-text"   // Unix microseconds in a key, not zero-padded
	limitsFirst       fault = "limits-before-ordering"  // takes Limit logs in the order stored, then sorts them
	reusesPage        fault = "reuses-page-buffer"      // every List returns the same slice
	ordersByNanos     fault = "orders-by-nanoseconds"   // orders by the time given, not the time stored
	ignoresLimit      fault = "ignores-limit"           // returns every match
	limitPlusOne      fault = "returns-limit-plus-one"  // fetches one more to see if there is a next page
	zeroLimitAll      fault = "zero-limit-returns-all"  // Limit 0 as no limit
	clampsLimit       fault = "clamps-large-limit"      // Limit above MaxLimit as MaxLimit
	filtersAfterLimit fault = "filters-after-limit"     // metadata matched in code, after LIMIT
	offsetCursor      fault = "offset-cursor"           // a cursor stands for an offset
	cursorInclusive   fault = "cursor-inclusive"        // (created_at, id) <= cursor
	cursorTimeOnly    fault = "cursor-compares-time"    // created_at < cursor's time
	cursorFieldsApart fault = "cursor-compares-apart"   // created_at <= t AND id < cursor's id
	cursorDropsFields fault = "cursor-drops-fields"     // a second query for later pages, without the exact-match fields
	cursorDropsUntil  fault = "cursor-supersedes-until" // a cursor replaces Until
	untilDropsCursor  fault = "until-supersedes-cursor" // Until replaces a cursor
	cursorDropsSince  fault = "cursor-drops-since"      // a cursor replaces Since
	cursorDropsMeta   fault = "cursor-drops-metadata"   // later pages without the metadata filter
	cursorInMillis    fault = "cursor-in-milliseconds"  // the cursor's time cut to milliseconds
	acceptsBadCursor  fault = "accepts-bad-cursor"      // a malformed cursor starts at the newest log

	// Filters.
	ignoresOrgID       fault = "ignores-org-id"                      // lists every tenant
	emptyOrgIsNone     fault = "empty-org-means-no-org"              // OrgID "" lists only logs without an org
	orgPrefix          fault = "org-as-key-prefix"                   // a key-value scan of the org's prefix
	prefixMatch        fault = "exact-fields-match-prefixes"         // LIKE 'value%'
	padSpace           fault = "exact-fields-ignore-trailing-spaces" // a PAD SPACE collation
	foldsCase          fault = "folds-case"                          // exact matches ignore case, like some collations
	swappedColumns     fault = "actor-id-matches-target-id"          // a column mixed up
	untilInclusive     fault = "until-inclusive"                     // CreatedAt <= Until
	sinceExclusive     fault = "since-exclusive"                     // CreatedAt > Since
	sinceTruncated     fault = "since-truncated"                     // Since cut to microseconds, not rounded up
	untilTruncated     fault = "until-truncated"                     // Until cut to microseconds, not rounded up
	boundsInMillis     fault = "bounds-in-milliseconds"              // Since and Until cut to milliseconds
	boundsRounded      fault = "bounds-rounded"                      // Since and Until rounded to microseconds
	boundsLoseZone     fault = "bounds-lose-time-zone"               // Since and Until's wall clocks read as UTC
	openSinceIs1970    fault = "open-since-is-1970"                  // a zero Since as Unix time 0
	openUntilIsNow     fault = "open-until-is-now"                   // a zero Until as now
	metadataMatchesAny fault = "metadata-matches-any"                // one matching pair is enough
	metadataKeysOnly   fault = "metadata-matches-keys"               // a key's presence is enough
	metadataPrefix     fault = "metadata-matches-prefixes"           // values matched with LIKE 'value%'
	absentIsEmpty      fault = "absent-key-is-empty"                 // a key-value store reads a missing key as ""
	emptyMetaNone      fault = "empty-metadata-matches-nothing"      // a non-nil empty Metadata filter
	metadataPaths      fault = "metadata-keys-as-paths"              // a JSON path built from the key: "a.b" is b in a, a quote breaks the query
	plainFilterError   fault = "plain-filter-error"                  // its own error for a bad filter, not ErrInvalidFilter

	// Context, outcomes, concurrency.
	ignoresContext     fault = "ignores-context"             // works on with a done ctx
	storesDespiteCtx   fault = "stores-despite-context"      // checks ctx after the write
	maybeOnDoneContext fault = "says-maybe-stored-when-done" // ErrMaybeStored for a ctx done before the call
	maybeEverything    fault = "says-maybe-stored-always"    // every error of Create wraps ErrMaybeStored
	storesAfterError   fault = "stores-after-error"          // an abandoned write goes on, after a plain error
	remembersUnstored  fault = "remembers-unstored-ids"      // a deduplication window that keeps IDs it did not store
	racyDuplicates     fault = "checks-duplicates-apart"     // the duplicate check and the write under separate locks
	storesAsync        fault = "visible-after-create"        // Create returns before reads see the log
	forgetsOldIDs      fault = "forgets-old-ids"             // a deduplication window of the last 100 IDs, as streams have
	tornWrites         fault = "writes-metadata-apart"       // the log, then its metadata, in two writes
)

// sliceRepo is a Repository kept in a slice, newest first, that filters
// with Filter.Match: simple enough to be obviously right without a fault,
// and to go wrong in exactly one way with one.
type sliceRepo struct {
	fault fault

	mu      sync.Mutex
	logs    []audit.Log // newest first
	offsets map[string]int
	seen    map[string]bool // remembersUnstored: IDs it was given
	arrival []audit.Log     // limitsFirst, forgetsOldIDs: the logs in the order stored
	page    []audit.Log     // reusesPage: what every List returns
}

func newSliceRepo(f fault) *sliceRepo {
	return &sliceRepo{fault: f, offsets: make(map[string]int), seen: make(map[string]bool)}
}

var _ audit.Repository = (*sliceRepo)(nil)

func (r *sliceRepo) ctxErr(ctx context.Context) error {
	if r.fault == ignoresContext {
		return nil
	}
	return ctx.Err()
}

func (r *sliceRepo) Create(ctx context.Context, l *audit.Log) error {
	err := r.create(ctx, l)
	if err != nil && r.fault == maybeEverything {
		return fmt.Errorf("%w: %w", audit.ErrMaybeStored, err)
	}
	return err
}

func (r *sliceRepo) create(ctx context.Context, l *audit.Log) error {
	if r.fault == duplicateFirst && r.has(l.ID) {
		return fmt.Errorf("%w: %q", audit.ErrAlreadyExists, l.ID)
	}
	if err := ctx.Err(); err != nil && r.fault == contextFirst {
		return err
	}
	if err := r.validate(*l); err != nil {
		return err
	}
	if err := r.ctxErr(ctx); err != nil {
		if r.fault == maybeOnDoneContext {
			return fmt.Errorf("%w: %w", audit.ErrMaybeStored, err)
		}
		if r.fault == storesDespiteCtx {
			r.mu.Lock()
			r.insert(r.stored(l))
			r.mu.Unlock()
		}
		return err
	}
	s := r.stored(l)
	if r.fault == normalizesCallerLog {
		l.CreatedAt = s.CreatedAt
	}
	switch r.fault {
	case storesAsync:
		// A write that readers see a little after Create returned.
		time.AfterFunc(2*time.Millisecond, func() { _ = r.put(s) })
		return nil
	case storesAfterError, remembersUnstored:
		return r.writeOrAbandon(ctx, s)
	case tornWrites:
		md := s.Metadata
		s.Metadata = nil
		if err := r.put(s); err != nil {
			return err
		}
		time.Sleep(100 * time.Microsecond) // the second statement's round trip
		r.mu.Lock()
		defer r.mu.Unlock()
		for i := range r.logs {
			if r.logs[i].ID == s.ID {
				r.logs[i].Metadata = md
			}
		}
		return nil
	case racyDuplicates:
		if r.has(s.ID) {
			return fmt.Errorf("%w: %q", audit.ErrAlreadyExists, s.ID)
		}
		runtime.Gosched()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.insert(s)
		return nil
	}
	return r.put(s)
}

// writeOrAbandon writes s in the background, as a store that waits for an
// acknowledgement does, and stops waiting when ctx ends.
func (r *sliceRepo) writeOrAbandon(ctx context.Context, s audit.Log) error {
	r.mu.Lock()
	dup := r.seen[s.ID] || r.hasLocked(s.ID)
	r.seen[s.ID] = true
	r.mu.Unlock()
	if dup {
		return fmt.Errorf("%w: %q", audit.ErrAlreadyExists, s.ID)
	}
	done := make(chan error, 1)
	go func() {
		time.Sleep(500 * time.Microsecond)
		if r.fault == remembersUnstored && ctx.Err() != nil {
			done <- ctx.Err() // abandoned, but the ID stays seen
			return
		}
		done <- r.put(s)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if r.fault == remembersUnstored {
			return fmt.Errorf("%w: %w", audit.ErrMaybeStored, ctx.Err())
		}
		return ctx.Err() // while the write goes on
	}
}

// put stores s unless its ID is stored.
func (r *sliceRepo) put(s audit.Log) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	dup := r.hasLocked(s.ID)
	if r.fault == idsPerOrg {
		dup = slices.ContainsFunc(r.logs, func(l audit.Log) bool { return l.ID == s.ID && l.OrgID == s.OrgID })
	}
	if dup {
		switch r.fault {
		case plainDuplicate:
			return errors.New(`ERROR: duplicate key value violates unique constraint "audit_logs_pkey" (SQLSTATE 23505)`)
		case acceptsDuplicates:
		case overwritesDuplicates:
			r.logs = slices.DeleteFunc(r.logs, func(l audit.Log) bool { return l.ID == s.ID })
			r.insert(s)
			return fmt.Errorf("%w: %q", audit.ErrAlreadyExists, s.ID)
		default:
			return fmt.Errorf("%w: %q", audit.ErrAlreadyExists, s.ID)
		}
	}
	r.insert(s)
	return nil
}

// validate is Log.Validate, as the fault reads it.
func (r *sliceRepo) validate(l audit.Log) error {
	switch r.fault {
	case skipsValidation:
		return nil
	case countsCharacters, allowsNUL:
		// Validate a copy in which every valid string is replaced by one of
		// as many bytes as it has characters, or with NUL bytes removed.
		shadow := func(s string) string {
			if r.fault == allowsNUL {
				return strings.ReplaceAll(s, "\x00", "0")
			}
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				return s
			}
			return strings.Repeat("x", utf8.RuneCountInString(s))
		}
		l.ID, l.OrgID, l.Source, l.Action = shadow(l.ID), shadow(l.OrgID), shadow(l.Source), shadow(l.Action)
		l.Actor = audit.Actor{ID: shadow(l.Actor.ID), Type: shadow(l.Actor.Type), Name: shadow(l.Actor.Name)}
		l.Target = audit.Target{ID: shadow(l.Target.ID), Type: shadow(l.Target.Type), Name: shadow(l.Target.Name)}
		md := make(map[string]string, len(l.Metadata))
		for k, v := range l.Metadata {
			md[shadow(k)] = shadow(v)
		}
		if l.Metadata != nil {
			l.Metadata = md
		}
	}
	return l.Validate()
}

// stored returns l as the fault stores it.
func (r *sliceRepo) stored(l *audit.Log) audit.Log {
	s := *l
	if r.fault != keepsCallerMap {
		s.Metadata = maps.Clone(l.Metadata)
	}
	t := l.CreatedAt
	switch r.fault {
	case keepsNanoseconds:
		t = t.UTC()
	case milliseconds:
		t = t.UTC().Truncate(time.Millisecond)
	case roundsMicros:
		t = t.UTC().Round(time.Microsecond)
	case dropsZone:
		t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC).Truncate(time.Microsecond)
	case floatSeconds:
		secs := float64(t.UnixNano()) / 1e9
		t = time.Unix(0, int64(secs*1e9)).UTC().Truncate(time.Microsecond)
	default:
		t = t.UTC().Truncate(time.Microsecond)
	}
	s.CreatedAt = t
	if r.fault == ordersByNanos {
		s.CreatedAt = l.CreatedAt.UTC() // ordered by this; returned truncated
	}
	switch r.fault {
	case truncatesNames:
		s.Actor.Name, s.Target.Name = cut(s.Actor.Name, 1000), cut(s.Target.Name, 1000)
	case truncatesIDs:
		s.ID = cut(s.ID, 255)
	case trimsSpaces, stripsControl, normalizesUnicode:
		f := map[fault]func(string) string{
			trimsSpaces: strings.TrimSpace,
			stripsControl: func(v string) string {
				return strings.Map(func(r rune) rune {
					if r < ' ' || r == 0x7f {
						return -1
					}
					return r
				}, v)
			},
			normalizesUnicode: strings.NewReplacer("e\u0301", "\u00e9", "I\u0307", "\u0130").Replace,
		}[r.fault]
		s.ID, s.OrgID, s.Source, s.Action = f(s.ID), f(s.OrgID), f(s.Source), f(s.Action)
		s.Actor = audit.Actor{ID: f(s.Actor.ID), Type: f(s.Actor.Type), Name: f(s.Actor.Name)}
		s.Target = audit.Target{ID: f(s.Target.ID), Type: f(s.Target.Type), Name: f(s.Target.Name)}
		if s.Metadata != nil {
			md := make(map[string]string, len(s.Metadata))
			for k, v := range s.Metadata {
				md[f(k)] = f(v)
			}
			s.Metadata = md
		}
	}
	if s.Metadata != nil && (r.fault == dropsEmptyValues || r.fault == canonicalKeys || r.fault == escapesDottedKeys) {
		md := make(map[string]string, len(s.Metadata))
		for k, v := range s.Metadata {
			switch r.fault {
			case dropsEmptyValues:
				if v == "" {
					continue
				}
			case canonicalKeys:
				k = textproto.CanonicalMIMEHeaderKey(k)
			case escapesDottedKeys:
				k = strings.ReplaceAll(k, ".", "_")
			}
			md[k] = v
		}
		s.Metadata = md
	}
	return s
}

// returned is a stored time as List and GetByID return it.
func (r *sliceRepo) returned(t time.Time) time.Time {
	switch r.fault {
	case ordersByNanos:
		return t.Truncate(time.Microsecond)
	case returnsLocalTime:
		return t.In(time.FixedZone("CET", 3600))
	}
	return t
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// sameID reports whether the store takes a and b for one ID.
func (r *sliceRepo) sameID(a, b string) bool {
	switch r.fault {
	case idsFoldCase:
		return strings.EqualFold(a, b)
	case idsPadSpace:
		return strings.TrimRight(a, " ") == strings.TrimRight(b, " ")
	}
	return a == b
}

func (r *sliceRepo) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hasLocked(id)
}

func (r *sliceRepo) hasLocked(id string) bool {
	if r.fault == forgetsOldIDs {
		return slices.ContainsFunc(r.arrival[max(0, len(r.arrival)-100):], func(l audit.Log) bool { return l.ID == id })
	}
	return slices.ContainsFunc(r.logs, func(l audit.Log) bool { return r.sameID(l.ID, id) })
}

// insert puts l in its place, newest first, as the fault orders logs.
func (r *sliceRepo) insert(l audit.Log) {
	i, _ := slices.BinarySearchFunc(r.logs, l, r.order)
	r.logs = slices.Insert(r.logs, i, l)
	r.arrival = append(r.arrival, l)
}

// order compares a stored log a with a new one b, newest first, as the
// fault orders logs; for noTieBreak, b goes after the logs it ties with.
func (r *sliceRepo) order(a, b audit.Log) int {
	c := b.CreatedAt.Compare(a.CreatedAt)
	switch r.fault {
	case timeAsText:
		c = strings.Compare(b.CreatedAt.Format(time.RFC3339Nano), a.CreatedAt.Format(time.RFC3339Nano))
	case microsAsText:
		c = strings.Compare(strconv.FormatInt(b.CreatedAt.UnixMicro(), 10), strconv.FormatInt(a.CreatedAt.UnixMicro(), 10))
	}
	if c != 0 {
		return c
	}
	switch r.fault {
	case noTieBreak:
		return -1
	case tieAscending:
		return strings.Compare(a.ID, b.ID)
	case tieByCollation:
		if c := strings.Compare(strings.ToLower(b.ID), strings.ToLower(a.ID)); c != 0 {
			return c
		}
	case idsInUTF16:
		return compareUTF16(b.ID, a.ID)
	}
	return strings.Compare(b.ID, a.ID)
}

// compareUTF16 compares a and b by their UTF-16 code units, which order a
// character above U+FFFF, a surrogate pair, below one in U+E000 to U+FFFF,
// where comparing bytes orders it above.
func compareUTF16(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func (r *sliceRepo) List(ctx context.Context, f audit.Filter) ([]audit.Log, error) {
	if r.fault == clampsLimit && f.Limit > audit.MaxLimit {
		f.Limit = audit.MaxLimit
	}
	err := f.Validate()
	var verr *audit.ValidationError
	errors.As(err, &verr)
	if r.fault == acceptsBadCursor && errors.As(err, &verr) && verr.Field == "cursor" {
		f.Cursor = ""
		err = f.Validate()
	}
	if r.fault == metadataPaths {
		for k := range f.Metadata {
			if strings.ContainsAny(k, `'"\`) {
				return nil, fmt.Errorf("ERROR: syntax error at or near %q (SQLSTATE 42601)", k)
			}
		}
	}
	if err != nil {
		if r.fault == plainFilterError {
			return nil, errors.New("bad filter: " + verr.Field)
		}
		return nil, err
	}
	if err := r.ctxErr(ctx); err != nil {
		return nil, err
	}
	limit := f.PageSize()
	switch r.fault {
	case ignoresLimit:
		limit = math.MaxInt
	case limitPlusOne:
		limit++
	case zeroLimitAll:
		if f.Limit == 0 {
			limit = math.MaxInt
		}
	}
	match := r.matchFilter(f)

	r.mu.Lock()
	defer r.mu.Unlock()
	skip := 0
	if r.fault == offsetCursor && f.Cursor != "" {
		skip = r.offsets[f.Cursor]
	}
	start := skip
	out := []audit.Log{}
	if r.fault == reusesPage {
		out = r.page[:0]
	}
	from := r.logs
	if r.fault == limitsFirst {
		from = r.arrival
	}
	for _, l := range from {
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
		l.CreatedAt = r.returned(l.CreatedAt)
		out = append(out, l)
	}
	if r.fault == filtersAfterLimit {
		out = slices.DeleteFunc(out, func(l audit.Log) bool { return !f.Match(l) })
	}
	if r.fault == offsetCursor && len(out) > 0 {
		r.offsets[audit.NextCursor(out)] = start + len(out)
	}
	switch r.fault {
	case wrongOrder:
		slices.Reverse(out)
	case limitsFirst:
		slices.SortFunc(out, r.order)
	case reusesPage:
		r.page = out
	}
	return out, nil
}

// matchFilter returns the filter that List matches with, as the fault
// reads f; matchExtra applies what the fault takes out of it.
func (r *sliceRepo) matchFilter(f audit.Filter) audit.Filter {
	m := f
	exact := func() { m.Source, m.Action, m.ActorID, m.ActorType, m.TargetID, m.TargetType = "", "", "", "", "", "" }
	switch r.fault {
	case ignoresOrgID, emptyOrgIsNone, orgPrefix:
		m.OrgID = ""
	case prefixMatch, padSpace, swappedColumns:
		m.OrgID = ""
		exact()
	case foldsCase:
		m.OrgID, m.Metadata = "", nil
		exact()
	case metadataMatchesAny, metadataKeysOnly, metadataPrefix, absentIsEmpty, emptyMetaNone, filtersAfterLimit, metadataPaths:
		m.Metadata = nil
	case untilInclusive:
		if !f.Until.IsZero() {
			m.Until = f.Until.Add(time.Nanosecond)
		}
	case sinceExclusive:
		if !f.Since.IsZero() {
			m.Since = f.Since.Add(time.Nanosecond)
		}
	case sinceTruncated:
		m.Since = f.Since.Truncate(time.Microsecond)
	case untilTruncated:
		m.Until = f.Until.Truncate(time.Microsecond)
	case boundsInMillis:
		m.Since, m.Until = f.Since.Truncate(time.Millisecond), f.Until.Truncate(time.Millisecond)
	case boundsRounded:
		m.Since, m.Until = f.Since.Round(time.Microsecond), f.Until.Round(time.Microsecond)
	case boundsLoseZone:
		wall := func(t time.Time) time.Time {
			if t.IsZero() {
				return t
			}
			return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
		}
		m.Since, m.Until = wall(f.Since), wall(f.Until)
	case cursorInMillis:
		if f.Cursor != "" {
			t, id, _ := audit.ParseCursor(f.Cursor)
			m.Cursor = audit.NextCursor([]audit.Log{{ID: id, CreatedAt: t.Truncate(time.Millisecond)}})
		}
	case openSinceIs1970:
		if f.Since.IsZero() {
			m.Since = time.Unix(0, 0)
		}
	case openUntilIsNow:
		if f.Until.IsZero() {
			m.Until = time.Now()
		}
	case offsetCursor, cursorInclusive, cursorTimeOnly, cursorFieldsApart, idsInUTF16:
		m.Cursor = ""
	case cursorDropsFields:
		if f.Cursor != "" {
			exact()
		}
	case cursorDropsUntil:
		if f.Cursor != "" {
			m.Until = time.Time{}
		}
	case untilDropsCursor:
		if !f.Until.IsZero() {
			m.Cursor = ""
		}
	case cursorDropsSince:
		if f.Cursor != "" {
			m.Since = time.Time{}
		}
	case cursorDropsMeta:
		if f.Cursor != "" {
			m.Metadata = nil
		}
	}
	return m
}

func (r *sliceRepo) matchExtra(f audit.Filter, l audit.Log) bool {
	eq := func(want, got string) bool {
		switch r.fault {
		case prefixMatch:
			return strings.HasPrefix(got, want)
		case padSpace:
			return strings.TrimRight(got, " ") == strings.TrimRight(want, " ")
		case foldsCase:
			return strings.EqualFold(want, got)
		}
		return want == got
	}
	exact := func(want, got string) bool { return want == "" || eq(want, got) }
	switch r.fault {
	case emptyOrgIsNone:
		return l.OrgID == f.OrgID
	case orgPrefix:
		return strings.HasPrefix(l.OrgID, f.OrgID)
	case prefixMatch, padSpace, foldsCase, swappedColumns:
		actorID := l.Actor.ID
		if r.fault == swappedColumns {
			actorID = l.Target.ID
		}
		if !exact(f.OrgID, l.OrgID) || !exact(f.Source, l.Source) || !exact(f.Action, l.Action) ||
			!exact(f.ActorID, actorID) || !exact(f.ActorType, l.Actor.Type) ||
			!exact(f.TargetID, l.Target.ID) || !exact(f.TargetType, l.Target.Type) {
			return false
		}
		if r.fault != foldsCase {
			return true
		}
		for k, v := range f.Metadata {
			if got, ok := l.Metadata[k]; !ok || !strings.EqualFold(got, v) {
				return false
			}
		}
	case metadataMatchesAny:
		for k, v := range f.Metadata {
			if l.Metadata[k] == v {
				return true
			}
		}
		return len(f.Metadata) == 0
	case metadataKeysOnly, metadataPrefix, absentIsEmpty:
		for k, v := range f.Metadata {
			got, ok := l.Metadata[k]
			switch {
			case r.fault == metadataKeysOnly && !ok,
				r.fault == metadataPrefix && (!ok || !strings.HasPrefix(got, v)),
				r.fault == absentIsEmpty && got != v:
				return false
			}
		}
	case metadataPaths:
		for k, v := range f.Metadata {
			parent, _, nested := strings.Cut(k, ".")
			if got, ok := l.Metadata[parent]; nested || !ok || got != v {
				return false // a flat map has no value at a nested path
			}
		}
	case emptyMetaNone:
		if f.Metadata != nil && len(f.Metadata) == 0 {
			return false
		}
		for k, v := range f.Metadata {
			if got, ok := l.Metadata[k]; !ok || got != v {
				return false
			}
		}
	case cursorInclusive, cursorTimeOnly, cursorFieldsApart, idsInUTF16:
		if f.Cursor == "" {
			return true
		}
		t, id, _ := audit.ParseCursor(f.Cursor)
		switch r.fault {
		case cursorInclusive:
			return l.CreatedAt.Before(t) || l.CreatedAt.Equal(t) && l.ID <= id
		case cursorTimeOnly:
			return l.CreatedAt.Before(t)
		case idsInUTF16:
			return l.CreatedAt.Before(t) || l.CreatedAt.Equal(t) && compareUTF16(l.ID, id) < 0
		default:
			return !l.CreatedAt.After(t) && l.ID < id
		}
	}
	return true
}

func (r *sliceRepo) GetByID(ctx context.Context, id string) (audit.Log, error) {
	if err := r.ctxErr(ctx); err != nil {
		return audit.Log{}, err
	}
	if r.fault == getFailsOnBadID && (!utf8.ValidString(id) || strings.ContainsRune(id, 0)) {
		return audit.Log{}, errors.New("ERROR: invalid byte sequence for encoding \"UTF8\" (SQLSTATE 22021)")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.logs {
		if r.sameID(l.ID, id) || r.fault == getByPrefix && strings.HasPrefix(l.ID, id) {
			if r.fault != sharesResultMaps {
				l = l.Clone()
			}
			l.CreatedAt = r.returned(l.CreatedAt)
			return l, nil
		}
	}
	if r.fault == nilErrorUnknownID {
		return audit.Log{}, nil
	}
	return audit.Log{}, fmt.Errorf("%w: id %q", audit.ErrNotFound, id)
}
