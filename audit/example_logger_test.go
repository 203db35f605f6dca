package audit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/raystack/salt/audit"
)

var ctxBackground = context.Background()

// fixedIDs returns IDs log-1, log-2, … so that example output does not
// change between runs; services keep the default UUIDv7 IDs.
func fixedIDs() func() string {
	n := 0
	return func() string {
		n++
		return fmt.Sprintf("log-%d", n)
	}
}

func ExampleLogger_Log() {
	repo := audit.NewMemoryRepository()
	logger := audit.NewLogger(repo,
		audit.WithSource("projects-api"),
		audit.WithClock(func() time.Time { return time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC) }),
		audit.WithIDFunc(fixedIDs()),
	)

	ctx := audit.SetActor(ctxBackground, audit.Actor{ID: "u-1", Type: audit.ActorTypeUser, Name: "ada@example.com"})
	ctx = audit.SetOrgID(ctx, "org-1")
	ctx = audit.SetMetadata(ctx, map[string]string{
		audit.MetadataRequestID: "req-42",
		audit.MetadataOutcome:   audit.OutcomeSuccess,
		"Authorization":         "Bearer secret",
	})
	if err := logger.Log(ctx, "app.project.created", audit.Target{ID: "p-7", Type: "project", Name: "apollo"}); err != nil {
		fmt.Println("not audited:", err)
		return
	}

	l, _ := repo.GetByID(ctx, "log-1")
	fmt.Println(l.CreatedAt.Format(time.RFC3339), l.Source, l.OrgID, l.Actor.Name, l.Action, l.Target.Name)
	fmt.Println(l.Metadata)
	// Output:
	// 2026-11-26T09:30:00Z projects-api org-1 ada@example.com app.project.created apollo
	// map[Authorization:[REDACTED] outcome:success request_id:req-42]
}

// A log that cannot be stored is never dropped silently: Log returns why.
func ExampleLogger_Log_invalid() {
	logger := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("projects-api"))
	err := logger.Log(ctxBackground, "app.project.created", audit.Target{ID: "p-7", Type: "project"})
	fmt.Println(err)
	// Output: audit: invalid log: actor.type is required
}
