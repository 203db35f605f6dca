// Command projector applies an audit trail's JetStream streams to its
// PostgreSQL projection until it is told to stop (SIGINT or SIGTERM). Run
// as many as you like: they share the trail's partitions, and take over
// those of one that dies.
//
//	NATS_URL=nats://n1:4222,nats://n2:4222,nats://n3:4222 \
//	DATABASE_URL=postgres://... \
//	projector -migrate -create-streams
//
// On exit it prints what it did as one line of JSON on standard output.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/raystack/salt/examples/jetstream"
)

func main() {
	var (
		trail         jetstream.Trail
		batch         = flag.Int("batch", jetstream.DefaultBatchSize, "most logs applied in one statement")
		rebalance     = flag.Duration("rebalance", jetstream.DefaultRebalanceInterval, "how often projectors share out the partitions")
		migrate       = flag.Bool("migrate", false, "run Migrate on the schema first")
		createStreams = flag.Bool("create-streams", false, "run CreateStreams first")
	)
	flag.StringVar(&trail.Name, "name", jetstream.DefaultName, "the trail's stream name prefix")
	flag.StringVar(&trail.Prefix, "prefix", jetstream.DefaultPrefix, "the trail's subject prefix")
	flag.IntVar(&trail.Partitions, "partitions", jetstream.DefaultPartitions, "the trail's partitions")
	flag.IntVar(&trail.Replicas, "replicas", jetstream.DefaultReplicas, "the trail's replicas")
	flag.StringVar(&trail.Schema, "schema", "", "the projection's PostgreSQL schema (default: the search_path's)")
	flag.Parse()
	if err := run(trail, *batch, *rebalance, *migrate, *createStreams); err != nil {
		fmt.Fprintln(os.Stderr, "projector:", err)
		os.Exit(1)
	}
}

func run(trail jetstream.Trail, batch int, rebalance time.Duration, migrate, createStreams bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	url, dsn := os.Getenv("NATS_URL"), os.Getenv("DATABASE_URL")
	if url == "" || dsn == "" {
		return fmt.Errorf("NATS_URL and DATABASE_URL must be set")
	}
	// Pings every second, two unanswered: a server that stopped (its
	// sockets still open) is left within about 3 s, not minutes.
	nc, err := nats.Connect(url, nats.Name("audit-projector"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	if migrate {
		if err := jetstream.Migrate(ctx, pool, trail.Schema); err != nil {
			return err
		}
	}
	if createStreams {
		if err := jetstream.CreateStreams(ctx, js, trail); err != nil {
			return err
		}
	}
	p, err := jetstream.NewProjector(js, pool, trail,
		jetstream.WithBatchSize(batch),
		jetstream.WithRebalanceInterval(rebalance))
	if err != nil {
		return err
	}
	slog.Info("projector running", "trail", trail.Name, "pid", os.Getpid())
	err = p.Run(ctx)
	b, _ := json.Marshal(p.Stats())
	fmt.Println(string(b))
	return err
}
