package postgres

import (
	"testing"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/audittest"
)

// TestConformance runs the audit package's conformance kit: every promise
// of the audit.Repository contract, each against a Repository on a schema
// of its own.
func TestConformance(t *testing.T) {
	audittest.TestRepository(t, func(t *testing.T) audit.Repository {
		t.Helper()
		r, _ := newRepo(t)
		return r
	}, audittest.Parallel())
}
