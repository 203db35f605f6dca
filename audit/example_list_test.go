package audit_test

import (
	"fmt"
	"time"

	"github.com/raystack/salt/audit"
)

// List returns logs newest first; NextCursor continues after a page. A
// page shorter than the limit is the last one.
func ExampleRepository_list() {
	repo := audit.NewMemoryRepository()
	start := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	tick := 0
	logger := audit.NewLogger(repo,
		audit.WithSource("projects-api"),
		audit.WithClock(func() time.Time { tick++; return start.Add(time.Duration(tick) * time.Minute) }),
		audit.WithIDFunc(fixedIDs()),
	)
	for i, org := range []string{"org-1", "org-2", "org-1", "org-1", "org-2", "org-1"} {
		ctx := audit.SetOrgID(audit.SetActor(ctxBackground, audit.Actor{ID: "u-1", Type: audit.ActorTypeUser}), org)
		if err := logger.Log(ctx, "app.project.updated", audit.Target{ID: fmt.Sprint("p-", i), Type: "project"}); err != nil {
			fmt.Println(err)
			return
		}
	}

	filter := audit.Filter{OrgID: "org-1", Limit: 3}
	for page := 1; ; page++ {
		logs, err := repo.List(ctxBackground, filter)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, l := range logs {
			fmt.Println(page, l.ID, l.CreatedAt.Format("15:04"), l.Target.ID)
		}
		if len(logs) < filter.PageSize() {
			break
		}
		filter.Cursor = audit.NextCursor(logs)
	}
	// Output:
	// 1 log-6 09:06 p-5
	// 1 log-4 09:04 p-3
	// 1 log-3 09:03 p-2
	// 2 log-1 09:01 p-0
}
