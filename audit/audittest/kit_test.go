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

// TestKitCatchesFaults runs the kit against repositories that each break
// the contract in one way, and checks that the kit fails, and fails the
// case of the promise that was broken, with a message that says what was
// wanted. The kit takes a *testing.T, whose failure cannot be observed
// from the same test, so each runs in a child process.
func TestKitCatchesFaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the kit once per fault, in child processes")
	}
	for _, tt := range []struct {
		fault fault
		fails []string // cases that must fail, at least
		says  string   // in the output
	}{
		{ignoresLimit, []string{"ListLimit", "Pagination"}, "want at most the limit"},
		{wrongOrder, []string{"ListOrder"}, "first out of order"},
		{noTieBreak, []string{"ListTieBreak"}, "by ID descending"},
		{ignoresOrgID, []string{"TenantIsolation", "FilterFields"}, `want only org "org-a"`},
		{keepsCallerMap, []string{"CreateCopiesLog"}, "after the caller changed its log and map"},
		{offsetCursor, []string{"PaginationWhileWriting", "Pagination"}, "returned more than once"},
		{acceptsDuplicates, []string{"CreateRejectsDuplicateID", "ConcurrentUse"}, "want an error wrapping audit.ErrAlreadyExists"},
		{nilErrorUnknownID, []string{"GetByIDUnknown"}, "got nil error, want an error wrapping audit.ErrNotFound"},
		{keepsNanoseconds, []string{"RoundTrip", "ListTieBreak", "FilterTimeRange"}, "truncated to microseconds"},
		{untilInclusive, []string{"FilterTimeRange"}, "Until exclusive"},
		{ignoresContext, []string{"ContextDone"}, "got nil error, want an error"},
		{sharesResultMaps, []string{"ResultsBelongToCaller"}, "after the caller changed what List and GetByID returned"},
		{skipsValidation, []string{"CreateValidates"}, "want an error wrapping audit.ErrInvalidLog"},
		{acceptsBadCursor, []string{"MalformedCursor"}, "want an error wrapping audit.ErrInvalidFilter"},
		{metadataMatchesAny, []string{"FilterMetadata"}, "every one of its pairs"},
		{foldsCase, []string{"FilterFields", "FilterMetadata", "TenantIsolation"}, "byte-for-byte"},
	} {
		t.Run(string(tt.fault), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestFaultyRepository$", "-test.count=1")
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
			t.Logf("fault %s fails %s", tt.fault, strings.Join(failed, ", "))
		})
	}
}
