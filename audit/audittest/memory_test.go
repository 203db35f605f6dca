package audittest_test

import (
	"testing"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/audittest"
)

// TestMemoryRepository holds the reference implementation to the kit, and
// is what the test of any other implementation looks like.
func TestMemoryRepository(t *testing.T) {
	audittest.TestRepository(t, func(*testing.T) audit.Repository {
		return audit.NewMemoryRepository()
	})
}
