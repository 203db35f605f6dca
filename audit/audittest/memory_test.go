package audittest_test

import (
	"testing"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/audittest"
)

func TestMemoryRepository(t *testing.T) {
	audittest.TestRepository(t, func(*testing.T) audit.Repository {
		return audit.NewMemoryRepository()
	})
}
