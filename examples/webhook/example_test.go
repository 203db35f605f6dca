package webhook_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/webhook"
)

// A service attaches a Publisher to its Logger; the receiving service
// mounts a Receiver with the same secret.
func Example() {
	secret := webhook.NewSecret() // shared with the receiver out of band

	// The receiving service.
	received := make(chan webhook.Event, 10)
	rc, err := webhook.NewReceiver([]string{secret}, func(_ context.Context, e webhook.Event) error {
		received <- e // hand over, answer fast
		return nil
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(rc)
	defer srv.Close()

	// The service that audits.
	pub, err := webhook.NewPublisher([]webhook.Endpoint{{URL: srv.URL, Secrets: []string{secret}}})
	if err != nil {
		panic(err)
	}
	defer pub.CloseIdleConnections()
	lg := audit.NewLogger(audit.NewMemoryRepository(),
		audit.WithSource("frontier"),
		audit.WithPublisher(pub, audit.PublishName("webhook"), audit.OnlyActions("app.user.*")),
	)

	ctx := audit.SetActor(context.Background(), audit.Actor{ID: "u-42", Type: audit.ActorTypeUser})
	_ = lg.Log(ctx, "app.user.created", audit.Target{ID: "u-43", Type: "user"})
	_ = lg.Log(ctx, "app.project.created", audit.Target{ID: "p-7", Type: "project"}) // not published

	// At shutdown, Close delivers what is queued, within a deadline.
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := lg.Close(closeCtx); err != nil {
		fmt.Println(err)
	}

	e := <-received
	fmt.Println(e.Type, e.Data.Actor.ID, e.Data.Target.ID, e.ID == e.Data.ID)
	fmt.Printf("%+v\n", lg.Stats())
	// Output:
	// app.user.created u-42 u-43 true
	// {Enqueued:1 Delivered:1 Failed:0 Dropped:0 Queued:0}
}
