package audittest_test

import (
	"testing"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/audittest"
)

// A service proves its Repository from its own test, with a constructor
// that gives every subtest a fresh, empty repository. The example is not
// run: it needs the *testing.T of a test function, as in
// TestMemoryRepository, which runs exactly this against the memory
// repository.
func ExampleTestRepository() {
	var t *testing.T // in the service: func TestRepository(t *testing.T) {

	audittest.TestRepository(t, func(*testing.T) audit.Repository {
		// A service opens its own store here, empty, and registers
		// with t.Cleanup what drops it when the subtest ends.
		return audit.NewMemoryRepository()
	})
}

// Against a store with network round trips, Parallel runs the cases side
// by side; each must then get a store that shares nothing with the
// others, such as a schema of its own. SkipLarge leaves out the cases
// that store thousands of logs, for quick runs on a laptop.
func ExampleParallel() {
	var t *testing.T // in the service: func TestRepository(t *testing.T) {

	newRepo := func(*testing.T) audit.Repository {
		return audit.NewMemoryRepository() // a schema of its own per call
	}
	audittest.TestRepository(t, newRepo, audittest.Parallel(), audittest.SkipLarge())
}
