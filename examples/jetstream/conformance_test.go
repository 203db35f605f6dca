package jetstream

import (
	"testing"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/audittest"
)

// TestConformance runs the audit package's conformance kit against the
// real cluster and server: every promise of the audit.Repository
// contract, each against a Repository with streams, a schema and a
// Projector of its own.
func TestConformance(t *testing.T) {
	audittest.TestRepository(t, func(t *testing.T) audit.Repository {
		t.Helper()
		r, _ := newRepo(t, DefaultPartitions)
		return r
	}, audittest.Parallel())
}
