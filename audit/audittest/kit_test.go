package audittest_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/audittest"
)

// faultEnv names the fault TestFaultyRepository gives its repository.
const faultEnv = "AUDITTEST_FAULT"

// repoLog records which subtests asked newRepo for a repository.
type repoLog struct {
	mu    sync.Mutex
	names []string
}

func (r *repoLog) newRepo(f fault) func(t *testing.T) audit.Repository {
	return func(t *testing.T) audit.Repository {
		t.Helper()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.names = append(r.names, t.Name())
		return newSliceRepo(f)
	}
}

func (r *repoLog) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, name := range r.names {
		if strings.Contains(name, substr) {
			n++
		}
	}
	return n
}

// TestSliceRepository runs the kit against a second correct
// implementation, so that the kit is not tuned to the memory repository;
// it is also the control of TestKitCatchesFaults. It runs with Parallel:
// the cases wait until TestRepository has returned, and then all run.
func TestSliceRepository(t *testing.T) {
	var log repoLog
	t.Cleanup(func() {
		if n := log.count("/"); n == 0 {
			t.Errorf("with Parallel, after the cases finished: got no repositories made, want one per case at least")
		}
	})
	audittest.TestRepository(t, log.newRepo(noFault), audittest.Parallel())
	if n := log.count("/"); n != 0 {
		t.Errorf("with Parallel, when TestRepository returned: got %d repositories made, want 0: the cases run in parallel, after it returns", n)
	}
}

// TestFaultyRepository runs the kit against the slice repository with the
// fault named by $AUDITTEST_FAULT. TestKitCatchesFaults runs it in a child
// process and expects it to fail; run by go test, it is skipped. Every
// fault shows in the small cases, so SkipLarge saves the time of the
// large ones, which must then make no repository.
func TestFaultyRepository(t *testing.T) {
	f := os.Getenv(faultEnv)
	if f == "" {
		t.Skip("run by TestKitCatchesFaults, with " + faultEnv + " set")
	}
	var log repoLog
	audittest.TestRepository(t, log.newRepo(fault(f)), audittest.SkipLarge())
	if n := log.count("/PaginationLarge"); n != 0 {
		t.Errorf("with SkipLarge: got %d repositories made for PaginationLarge, want 0", n)
	}
}

// failedCase matches the line go test prints for a failed case of the kit.
var failedCase = regexp.MustCompile(`(?m)^    --- FAIL: TestFaultyRepository/(\w+) `)

// faults lists every fault with the cases of the kit that must fail on it,
// and words its failure must say.
var faults = []struct {
	fault fault
	fails []string
	says  string
}{
	{skipsValidation, []string{"CreateValidates"}, "want an error wrapping audit.ErrInvalidLog"},
	{duplicateFirst, []string{"CreateValidates"}, "with the ID of a stored log: got error"},
	{contextFirst, []string{"CreateValidates"}, "with a canceled ctx: got error"},
	{countsCharacters, []string{"CreateValidates"}, "too_many_bytes_in_fewer_characters"},
	{allowsNUL, []string{"CreateValidates"}, "NUL_byte"},
	{truncatesNames, []string{"RoundTrip"}, "actor.name: got"},
	{acceptsDuplicates, []string{"CreateRejectsDuplicateID", "ConcurrentUse"}, "want an error wrapping audit.ErrAlreadyExists"},
	{overwritesDuplicates, []string{"CreateRejectsDuplicateID"}, "with a stored ID: got"},
	{idsFoldCase, []string{"CreateRejectsDuplicateID", "GetByIDUnknown"}, `"DUP-ID"`},
	{idsPadSpace, []string{"CreateRejectsDuplicateID", "GetByIDUnknown"}, `"dup-Id "`},
	{keepsCallerMap, []string{"CreateCopiesLog"}, "after the caller changed its log and map"},
	{normalizesCallerLog, []string{"CreateCopiesLog"}, "the caller's log after Create"},
	{idsPerOrg, []string{"CreateRejectsDuplicateID"}, "of another org with a stored ID"},
	{plainDuplicate, []string{"CreateRejectsDuplicateID"}, "want an error wrapping audit.ErrAlreadyExists"},
	{truncatesIDs, []string{"RoundTrip"}, "got error audit: log not found"},
	{trimsSpaces, []string{"CreateRejectsDuplicateID", "RoundTrip"}, "after storing ID"},
	{stripsControl, []string{"RoundTrip"}, "metadata: got"},
	{normalizesUnicode, []string{"CreateRejectsDuplicateID", "FilterFields", "RoundTrip"}, "after storing ID"},
	{tornWrites, []string{"ConcurrentUse"}, "among concurrent calls: got"},
	{forgetsOldIDs, []string{"ConcurrentUse"}, "again, after"},
	{maybeEverything, []string{"CreateValidates", "CreateRejectsDuplicateID", "ContextDone"}, "which wraps audit.ErrMaybeStored"},

	{keepsNanoseconds, []string{"RoundTrip", "ListTieBreak", "FilterTimeRange"}, "truncated to microseconds"},
	{milliseconds, []string{"RoundTrip", "ListTieBreak"}, "created_at: got"},
	{roundsMicros, []string{"RoundTrip"}, "truncated to microseconds"},
	{returnsLocalTime, []string{"RoundTrip"}, "want UTC"},
	{dropsZone, []string{"RoundTrip", "ListOrder"}, "created_at: got"},
	{floatSeconds, []string{"RoundTrip"}, "created_at: got"},
	{dropsEmptyValues, []string{"RoundTrip", "FilterMetadata"}, "metadata: got"},
	{canonicalKeys, []string{"RoundTrip"}, "metadata: got"},
	{escapesDottedKeys, []string{"RoundTrip"}, "metadata: got"},
	{storesAsync, []string{"ConcurrentUse"}, "right after its Create returned"},

	{nilErrorUnknownID, []string{"GetByIDUnknown"}, "got nil error, want an error wrapping audit.ErrNotFound"},
	{getByPrefix, []string{"GetByIDUnknown"}, `GetByID("log-")`},
	{getFailsOnBadID, []string{"GetByIDUnknown"}, "invalid byte sequence"},
	{sharesResultMaps, []string{"ResultsBelongToCaller"}, "after the caller changed what List and GetByID returned"},

	{wrongOrder, []string{"ListOrder"}, "first out of order"},
	{noTieBreak, []string{"ListTieBreak"}, "by ID descending"},
	{tieAscending, []string{"ListTieBreak"}, "by ID descending"},
	{tieByCollation, []string{"ListTieBreak"}, "comparing bytes"},
	{idsInUTF16, []string{"ListTieBreak"}, "comparing bytes"},
	{timeAsText, []string{"ListOrder"}, "first out of order"},
	{ordersByNanos, []string{"ListTieBreak"}, "by ID descending"},
	{microsAsText, []string{"FilterTimeRange"}, "first out of order"},
	{limitsFirst, []string{"ListLimit", "ListOrder"}, "not selected by the filter"},
	{reusesPage, []string{"ResultsBelongToCaller"}, "a page List returned, after more calls"},
	{ignoresLimit, []string{"ListLimit", "Pagination"}, "want at most the limit"},
	{limitPlusOne, []string{"ListLimit"}, "exactly that many when more match"},
	{zeroLimitAll, []string{"ListLimit"}, "audit.DefaultLimit when Limit is 0"},
	{clampsLimit, []string{"ListLimit", "FilterInvalid"}, "want an error wrapping audit.ErrInvalidFilter"},
	{filtersAfterLimit, []string{"Pagination"}, "selected by the filter, but not returned"},
	{offsetCursor, []string{"PaginationWhileWriting", "Pagination"}, "returned more than once"},
	{cursorInclusive, []string{"Pagination"}, "returned more than once"},
	{cursorTimeOnly, []string{"Pagination", "ListTieBreak"}, "selected by the filter, but not returned"},
	{cursorFieldsApart, []string{"Pagination"}, "selected by the filter, but not returned"},
	{cursorDropsFields, []string{"Pagination"}, "not selected by the filter"},
	{cursorDropsUntil, []string{"Pagination"}, "not selected by the filter"},
	{untilDropsCursor, []string{"Pagination"}, "returned more than once"},
	{cursorDropsSince, []string{"Pagination"}, "not selected by the filter"},
	{cursorDropsMeta, []string{"Pagination"}, "not selected by the filter"},
	{cursorInMillis, []string{"Pagination", "ListTieBreak"}, "selected by the filter, but not returned"},
	{plainFilterError, []string{"FilterInvalid", "ListLimit", "MalformedCursor"}, "want an error wrapping audit.ErrInvalidFilter"},
	{acceptsBadCursor, []string{"MalformedCursor"}, "want an error wrapping audit.ErrInvalidFilter"},

	{ignoresOrgID, []string{"TenantIsolation", "FilterFields"}, `want only org "org-a"`},
	{emptyOrgIsNone, []string{"TenantIsolation"}, "selected by the filter, but not returned"},
	{orgPrefix, []string{"TenantIsolation"}, `want only org "org"`},
	{prefixMatch, []string{"FilterFields", "TenantIsolation"}, "byte-for-byte"},
	{padSpace, []string{"FilterFields", "TenantIsolation"}, "byte-for-byte"},
	{foldsCase, []string{"FilterFields", "FilterMetadata", "TenantIsolation"}, "byte-for-byte"},
	{swappedColumns, []string{"FilterFields"}, "byte-for-byte"},
	{untilInclusive, []string{"FilterTimeRange"}, "Until exclusive"},
	{sinceExclusive, []string{"FilterTimeRange"}, "Since is inclusive"},
	{sinceTruncated, []string{"FilterTimeRange"}, "Since_a_nanosecond_after_a_stored_time"},
	{untilTruncated, []string{"FilterTimeRange"}, "Until_a_nanosecond_after_a_stored_time"},
	{boundsInMillis, []string{"FilterTimeRange"}, "compared with the stored CreatedAt"},
	{boundsRounded, []string{"FilterTimeRange"}, "compared with the stored CreatedAt"},
	{boundsLoseZone, []string{"FilterTimeRange"}, "window_in_other_zones"},
	{openSinceIs1970, []string{"FilterTimeRange"}, `"far-1"`},
	{openUntilIsNow, []string{"FilterTimeRange"}, `"far-5"`},
	{metadataMatchesAny, []string{"FilterMetadata"}, "every one of its pairs"},
	{metadataKeysOnly, []string{"FilterMetadata"}, "every one of its pairs"},
	{metadataPrefix, []string{"FilterMetadata"}, "every one of its pairs"},
	{absentIsEmpty, []string{"FilterMetadata"}, "empty_value_of_an_absent_key"},
	{emptyMetaNone, []string{"FilterMetadata"}, "empty_map"},
	{metadataPaths, []string{"FilterMetadata"}, "dotted_key"},

	{ignoresContext, []string{"ContextDone"}, "got nil error, want an error"},
	{storesDespiteCtx, []string{"ContextDone"}, "a Create given a done ctx stores nothing"},
	{maybeOnDoneContext, []string{"ContextDone"}, "which wraps audit.ErrMaybeStored"},
	{storesAfterError, []string{"CreateOutcome"}, "after any other error it is not stored, then or later"},
	{remembersUnstored, []string{"CreateOutcome"}, "after which it is stored"},
	{racyDuplicates, []string{"ConcurrentUse"}, "want exactly 1"},
}

// TestKitCatchesFaults runs the kit against repositories that each break
// the contract in one way, and checks that the kit fails the case of the
// promise that was broken, with a message that says what was wanted. The
// kit takes a *testing.T, whose failure cannot be observed from the same
// test, so each fault runs in a child process, which runs only the cases
// that must fail: TestSliceRepository runs them all without a fault.
func TestKitCatchesFaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the kit once per fault, in child processes")
	}
	seen := map[fault]bool{}
	for _, tt := range faults {
		if seen[tt.fault] {
			t.Fatalf("fault %s is listed twice", tt.fault)
		}
		seen[tt.fault] = true
		t.Run(string(tt.fault), func(t *testing.T) {
			t.Parallel()
			run := "^TestFaultyRepository$/^(" + strings.Join(tt.fails, "|") + ")$"
			cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.count=1", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), faultEnv+"="+string(tt.fault))
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("kit against a repository with fault %s: got error %v, want a failing test run:\n%s", tt.fault, err, out)
			}
			for _, crash := range []string{"panic:", "WARNING: DATA RACE", "test timed out"} {
				if bytes.Contains(out, []byte(crash)) {
					t.Errorf("kit against a repository with fault %s: got %q in the output, want failed cases only:\n%s", tt.fault, crash, out)
				}
			}
			var failed []string
			for _, m := range failedCase.FindAllSubmatch(out, -1) {
				failed = append(failed, string(m[1]))
			}
			for _, name := range tt.fails {
				if !slices.Contains(failed, name) {
					t.Errorf("kit against a repository with fault %s: got failed cases %v, want %s among them:\n%s", tt.fault, failed, name, out)
				}
			}
			if !bytes.Contains(out, []byte(tt.says)) {
				t.Errorf("kit against a repository with fault %s: got output without %q:\n%s", tt.fault, tt.says, out)
			}
		})
	}
}
