package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/raystack/salt/audit"
	natsaudit "github.com/raystack/salt/examples/jetstream"
)

// A log's subject names its partition, ID, org and source; consumers
// select an org's or a source's logs with filters made the same way.
func ExampleTrail_Subject() {
	trail := natsaudit.Trail{} // the default: AUDIT_0..2 on audit.>
	id := "0198c0de-8d1c-7c4e-a3f4-5b8f5c1d2e3f"
	fmt.Println(trail.Stream(trail.Partition(id)))
	fmt.Println(trail.Subject(id, "org-42", "frontier"))
	fmt.Println(trail.Subject("log 7", "", "billing.eu"))
	fmt.Println(trail.OrgFilter("org-42"))
	fmt.Println(trail.SourceFilter("billing.eu"))
	// Output:
	// AUDIT_1
	// audit.1.0198c0de-8d1c-7c4e-a3f4-5b8f5c1d2e3f.org-42.frontier
	// audit.2.log%207.%.billing%2Eeu
	// audit.*.*.org-42.*
	// audit.*.*.*.billing%2Eeu
}

// Token escapes what a subject token cannot hold, one to one.
func ExampleToken() {
	for _, s := range []string{"org-42", "a.b c", "", "é"} {
		tok := natsaudit.Token(s)
		back, err := natsaudit.ParseToken(tok)
		fmt.Printf("%q -> %s -> %q %v\n", s, tok, back, err)
	}
	// Output:
	// "org-42" -> org-42 -> "org-42" <nil>
	// "a.b c" -> a%2Eb%20c -> "a.b c" <nil>
	// "" -> % -> "" <nil>
	// "é" -> %C3%A9 -> "é" <nil>
}

// Wiring a service: the streams and the schema made once, the Repository
// behind the Logger, and a Projector. It needs a cluster and a server, so
// it is compiled, not run.
func Example() {
	ctx := context.Background()
	nc, err := nats.Connect(os.Getenv("NATS_URL"), nats.MaxReconnects(-1),
		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		panic(err)
	}
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	trail := natsaudit.Trail{}
	if err := natsaudit.CreateStreams(ctx, js, trail); err != nil {
		panic(err)
	}
	if err := natsaudit.Migrate(ctx, pool, trail.Schema); err != nil {
		panic(err)
	}
	proj, err := natsaudit.NewProjector(js, pool, trail)
	if err != nil {
		panic(err)
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = proj.Run(pctx) }()

	repo, err := natsaudit.Open(ctx, js, pool, trail)
	if err != nil {
		panic(err)
	}
	defer repo.Close()
	logger := audit.NewLogger(repo, audit.WithSource("frontier"))
	defer logger.Close(ctx)

	ctx = audit.SetActor(ctx, audit.Actor{ID: "u-1", Type: audit.ActorTypeUser})
	if err := logger.Log(ctx, "app.project.deleted", audit.Target{ID: "p-9", Type: "project"}); err != nil {
		panic(err)
	}
	logs, err := repo.List(ctx, audit.Filter{Limit: 10}) // sees the log just written
	if err != nil {
		panic(err)
	}
	fmt.Println(len(logs))
}
