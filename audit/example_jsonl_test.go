package audit_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/raystack/salt/audit"
)

// A JSONLinesPublisher writes each log as one line of JSON, the wire format
// of Log, ready for a log pipeline to collect.
func ExampleJSONLinesPublisher() {
	p := audit.NewJSONLinesPublisher(os.Stdout)

	l := audit.Log{
		ID:        "01956a2e-4c00-7000-8000-000000000001",
		OrgID:     "acme",
		Source:    "frontier",
		Action:    "app.user.created",
		Actor:     audit.Actor{ID: "u-42", Type: audit.ActorTypeUser, Name: "ada@example.com"},
		Target:    audit.Target{ID: "u-43", Type: "user", Name: "grace@example.com"},
		Metadata:  map[string]string{audit.MetadataRequestID: "req-7"},
		CreatedAt: time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC),
	}
	if err := p.Publish(context.Background(), l); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"id":"01956a2e-4c00-7000-8000-000000000001","org_id":"acme","source":"frontier","action":"app.user.created","actor":{"id":"u-42","type":"user","name":"ada@example.com"},"target":{"id":"u-43","type":"user","name":"grace@example.com"},"metadata":{"request_id":"req-7"},"created_at":"2025-03-01T12:00:00.123456Z"}
}

// A Logger with a JSONLinesPublisher ships every stored log to the log
// pipeline; Close writes out what is still queued.
func ExampleJSONLinesPublisher_logger() {
	lg := audit.NewLogger(audit.NewMemoryRepository(),
		audit.WithSource("frontier"),
		audit.WithClock(func() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }),
		audit.WithIDFunc(func() string { return "01956a2e-4c00-7000-8000-000000000002" }),
		audit.WithPublisher(audit.NewJSONLinesPublisher(os.Stdout), audit.OnlyActions("app.user.*")),
	)

	ctx := audit.SetActor(context.Background(), audit.Actor{ID: "u-42", Type: audit.ActorTypeUser})
	if err := lg.Log(ctx, "app.user.deleted", audit.Target{ID: "u-43", Type: "user"}); err != nil {
		fmt.Println(err)
	}
	if err := lg.Close(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"id":"01956a2e-4c00-7000-8000-000000000002","org_id":"","source":"frontier","action":"app.user.deleted","actor":{"id":"u-42","type":"user","name":""},"target":{"id":"u-43","type":"user","name":""},"created_at":"2025-03-01T12:00:00Z"}
}
