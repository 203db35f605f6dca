package audit_test

import (
	"fmt"

	"github.com/raystack/salt/audit"
)

// Keys that name credentials are redacted however they are written; a
// service that must not keep some personal data adds its names to the
// defaults.
func ExampleWithRedactedKeys() {
	repo := audit.NewMemoryRepository()
	logger := audit.NewLogger(repo,
		audit.WithSource("billing"),
		audit.WithIDFunc(fixedIDs()),
		audit.WithRedactedKeys(append(audit.DefaultRedactedKeys(), "ssn")...),
	)
	ctx := audit.SetActor(ctxBackground, audit.Actor{ID: "u-1", Type: audit.ActorTypeUser})
	ctx = audit.SetMetadata(ctx, map[string]string{
		"apiKey":               "k-123",
		"X-Amz-Security-Token": "t-456",
		"userPin":              "1234",
		"DATABASE_URL":         "postgres://billing:hunter2@db/billing",
		"customer.ssn":         "078-05-1120",
		"shipping":             "express",
		"author":               "ada",
	})
	if err := logger.Log(ctx, "app.invoice.paid", audit.Target{ID: "i-9", Type: "invoice"}); err != nil {
		fmt.Println("not audited:", err)
		return
	}
	l, _ := repo.GetByID(ctxBackground, "log-1")
	fmt.Println(l.Metadata)
	// Output:
	// map[DATABASE_URL:[REDACTED] X-Amz-Security-Token:[REDACTED] apiKey:[REDACTED] author:ada customer.ssn:[REDACTED] shipping:express userPin:[REDACTED]]
}
