package audittest

import (
	"testing"

	"github.com/raystack/salt/audit"
)

// TestRepository checks that the Repository made by newRepo keeps every
// promise of the audit.Repository contract. It runs one named subtest per
// promise (see the package documentation for the list), and each subtest
// calls newRepo for a repository of its own, so newRepo must return a
// fresh, empty repository every time; it may register clean-up with
// t.Cleanup and should fail t itself if it cannot make one.
//
// A failure names the promise that was broken and shows the logs and the
// filter involved. Results are judged by audit.Filter.Match, the reference
// semantics of List, not by lists written by hand.
//
// By default every case runs, one after the other; opts change that.
func TestRepository(t *testing.T, newRepo func(t *testing.T) audit.Repository, opts ...Option) {
	if newRepo == nil {
		t.Fatal("audittest: TestRepository with a nil newRepo")
	}
	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if cfg.parallel {
				t.Parallel()
			}
			if c.large && cfg.skipLarge {
				t.Skip("audittest: skipped by SkipLarge")
			}
			c.check(t, &kit{newRepo: newRepo, rule: c.rule})
		})
	}
}

// Option changes how TestRepository runs.
type Option func(*config)

type config struct {
	skipLarge bool
	parallel  bool
}

// SkipLarge skips the cases that store more than audit.MaxLimit logs in
// one repository (their subtests report SKIP). It is meant for quick local
// runs against a slow store; run the full kit at least in CI, because only
// the large cases page through full audit.MaxLimit pages.
func SkipLarge() Option {
	return func(c *config) { c.skipLarge = true }
}

// Parallel runs the cases in parallel with each other (t.Parallel), which
// shortens the run against a store with network round trips. newRepo must
// then return repositories that share nothing, for example one database
// schema per subtest. TestRepository returns before the cases have run;
// they finish before t does.
func Parallel() Option {
	return func(c *config) { c.parallel = true }
}

// testCase is one promise of the Repository contract and the check that
// holds a repository to it.
type testCase struct {
	name  string
	rule  string // the promise, quoted in every failure of check
	large bool   // stores more than audit.MaxLimit logs; see SkipLarge
	// check is a test helper: a failure is reported at the subtest, with
	// a message that names the call, the filter and the logs involved.
	check func(t *testing.T, k *kit)
}

// cases lists every promise the kit checks, in the order of the contract.
var cases = []testCase{
	{
		name:  "CreateValidates",
		rule:  "Create validates first: it rejects a log that fails Validate with an error wrapping audit.ErrInvalidLog (not audit.ErrMaybeStored), whatever its ID and ctx, and stores nothing",
		check: checkCreateValidates,
	},
	{
		name:  "CreateRejectsDuplicateID",
		rule:  "Create rejects a log whose ID is already stored (compared byte for byte) with an error wrapping audit.ErrAlreadyExists (not audit.ErrMaybeStored), and keeps the stored log",
		check: checkCreateRejectsDuplicateID,
	},
	{
		name:  "CreateCopiesLog",
		rule:  "Create neither modifies nor retains the caller's Log and Metadata map: changing them afterwards changes nothing stored",
		check: checkCreateCopiesLog,
	},
	{
		name:  "ResultsBelongToCaller",
		rule:  "the logs and Metadata maps returned by List and GetByID belong to the caller: changing them changes nothing stored",
		check: checkResultsBelongToCaller,
	},
	{
		name:  "GetByIDUnknown",
		rule:  "GetByID of an ID that is not stored returns an error wrapping audit.ErrNotFound",
		check: checkGetByIDUnknown,
	},
	{
		name:  "RoundTrip",
		rule:  "a stored log reads back with every field as created, byte for byte; nil or empty Metadata reads back with len 0; CreatedAt reads back in UTC, truncated to microseconds",
		check: checkRoundTrip,
	},
	{
		name:  "ListOrder",
		rule:  "List returns logs newest first: CreatedAt descending",
		check: checkListOrder,
	},
	{
		name:  "ListTieBreak",
		rule:  "List orders logs with equal CreatedAt (at microsecond precision) by ID descending, comparing bytes",
		check: checkListTieBreak,
	},
	{
		name:  "FilterFields",
		rule:  "each Filter field restricts List as Filter.Match says (exact, byte-for-byte match), and fields are ANDed",
		check: checkFilterFields,
	},
	{
		name:  "FilterTimeRange",
		rule:  "Since is inclusive and Until exclusive, compared with the stored CreatedAt: Since <= CreatedAt < Until",
		check: checkFilterTimeRange,
	},
	{
		name:  "FilterMetadata",
		rule:  "Filter.Metadata matches the logs whose metadata holds every one of its pairs",
		check: checkFilterMetadata,
	},
	{
		name:  "FilterInvalid",
		rule:  "List rejects a filter that fails Filter.Validate with an error wrapping audit.ErrInvalidFilter",
		check: checkFilterInvalid,
	},
	{
		name:  "ListLimit",
		rule:  "List returns at most Limit logs (audit.DefaultLimit when Limit is 0), and exactly that many when more match",
		check: checkListLimit,
	},
	{
		name:  "Pagination",
		rule:  "List with Cursor set to NextCursor(page) continues right after page's last log: a walk returns every match exactly once, in order, and a page shorter than its limit is the last",
		check: checkPagination,
	},
	{
		name:  "PaginationLarge",
		rule:  "a keyset walk returns every match exactly once, in order, also over more than audit.MaxLimit logs with many equal CreatedAt, and while newer logs are written",
		large: true,
		check: checkPaginationLarge,
	},
	{
		name:  "PaginationWhileWriting",
		rule:  "a keyset walk neither repeats nor skips a log while newer logs are being written",
		check: checkPaginationWhileWriting,
	},
	{
		name:  "MalformedCursor",
		rule:  "List rejects a malformed Cursor with an error wrapping audit.ErrInvalidFilter",
		check: checkMalformedCursor,
	},
	{
		name:  "TenantIsolation",
		rule:  "List with Filter.OrgID returns only that org's logs, never another org's, whatever the other fields and the cursor",
		check: checkTenantIsolation,
	},
	{
		name:  "ContextDone",
		rule:  "Create, List and GetByID return an error when ctx is already canceled or past its deadline; Create then stores nothing, and its error does not wrap audit.ErrMaybeStored",
		check: checkContextDone,
	},
	{
		name: "CreateOutcome",
		rule: "Create's error tells what was stored: after nil the log is stored; after an error wrapping audit.ErrMaybeStored it may be, " +
			"and Create of the same log again returns nil or an error wrapping audit.ErrAlreadyExists, after which it is stored; after any other error it is not stored, then or later",
		check: checkCreateOutcome,
	},
	{
		name: "ConcurrentUse",
		rule: "Create, List and GetByID are safe for concurrent use: a log can be read as soon as Create returns, and only whole; " +
			"of concurrent Creates of one ID exactly one succeeds, and the ID stays taken",
		check: checkConcurrentUse,
	},
}
