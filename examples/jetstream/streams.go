package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// ProjectorConsumer is the name of the durable consumer of every partition
// stream that the Projector reads.
const ProjectorConsumer = "projector"

// Metadata keys that CreateStreams sets on the streams, so that Open and
// the Projector can tell a trail laid out differently.
const (
	metaPartitions = "salt.audit.partitions"
	metaPartition  = "salt.audit.partition"
	metaPrefix     = "salt.audit.prefix"
)

// maxMsgSize bounds a stored log. Validate bounds a log's fields, the
// largest valid log encodes to about 300 KiB of JSON.
const maxMsgSize = 1 << 20

// CreateStreams creates the streams of trail, or updates them to trail's
// settings, and the Projector's durable consumers: one stream per
// partition, Name_0 … on subjects Prefix.0.> …, and Name_DEAD for dead
// letters on Prefix.dead.>. It is idempotent, and meant for start-up or
// deployment, as Migrate is for PostgreSQL.
//
// The partition streams are file-backed, replicated to trail.Replicas
// servers, keep every log (no age, count or size limit) and deny deleting
// and purging: a log's subject stays taken, so its ID stays rejected, for
// as long as the stream exists. It returns an error wrapping
// ErrTrailMismatch if a stream exists that was made for another number of
// partitions or another prefix.
func CreateStreams(ctx context.Context, js natsjs.JetStream, trail Trail) error {
	t, err := trail.resolve()
	if err != nil {
		return err
	}
	// The streams are independent: make them at once, each its own round
	// trips through the meta leader.
	errs := make([]error, t.Partitions+1)
	var wg sync.WaitGroup
	for p := range t.Partitions {
		wg.Go(func() { errs[p] = createPartition(ctx, js, t, p) })
	}
	dead := natsjs.StreamConfig{
		Name:        t.Name + "_DEAD",
		Description: "audit logs the projection rejected, with the reason",
		Subjects:    []string{t.deadLetterSubjects()},
		Retention:   natsjs.LimitsPolicy,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxMsgSize:  2 * maxMsgSize,
		Storage:     natsjs.FileStorage,
		Replicas:    t.Replicas,
		DenyPurge:   true,
		Metadata:    map[string]string{metaPrefix: t.Prefix},
	}
	wg.Go(func() {
		if _, err := js.CreateOrUpdateStream(ctx, dead); err != nil {
			errs[t.Partitions] = fmt.Errorf("jetstream audit: stream %s: %w", dead.Name, err)
		}
	})
	wg.Wait()
	return errors.Join(errs...)
}

// createPartition creates or updates the stream of partition p and its
// Projector consumer.
func createPartition(ctx context.Context, js natsjs.JetStream, t Trail, p int) error {
	if err := checkStream(ctx, js, t, p, false); err != nil {
		return err
	}
	cfg := natsjs.StreamConfig{
		Name:        t.stream(p),
		Description: fmt.Sprintf("audit logs, partition %d of %d", p, t.Partitions),
		Subjects:    []string{t.partitionSubjects(p)},
		Retention:   natsjs.LimitsPolicy,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      0,
		MaxMsgSize:  maxMsgSize,
		Storage:     natsjs.FileStorage,
		Replicas:    t.Replicas,
		DenyDelete:  true,
		DenyPurge:   true,
		Metadata: map[string]string{
			metaPartitions: strconv.Itoa(t.Partitions),
			metaPartition:  strconv.Itoa(p),
			metaPrefix:     t.Prefix,
		},
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return fmt.Errorf("jetstream audit: stream %s: %w", cfg.Name, err)
	}
	if _, err := s.CreateOrUpdateConsumer(ctx, consumerConfig(p)); err != nil {
		return fmt.Errorf("jetstream audit: consumer %s of stream %s: %w", ProjectorConsumer, cfg.Name, err)
	}
	return nil
}

// consumerConfig is the Projector's durable consumer of partition p. It
// acknowledges cumulatively: the Projector acks the last message of each
// batch once the batch is committed. Nothing is ever given up on
// (MaxDeliver -1): a message stays pending until its batch commits.
func consumerConfig(p int) natsjs.ConsumerConfig {
	return natsjs.ConsumerConfig{
		Durable:       ProjectorConsumer,
		Description:   fmt.Sprintf("projection of partition %d into PostgreSQL", p),
		DeliverPolicy: natsjs.DeliverAllPolicy,
		AckPolicy:     natsjs.AckAllPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 20000,
		ReplayPolicy:  natsjs.ReplayInstantPolicy,
	}
}

// checkStream checks that the stream of partition p, if it exists, was
// made for t; with mustExist, a missing stream is an error too.
func checkStream(ctx context.Context, js natsjs.JetStream, t Trail, p int, mustExist bool) error {
	name := t.stream(p)
	s, err := js.Stream(ctx, name)
	if errors.Is(err, natsjs.ErrStreamNotFound) && !mustExist {
		return nil
	}
	if err != nil {
		return fmt.Errorf("jetstream audit: stream %s: %w", name, err)
	}
	md := s.CachedInfo().Config.Metadata
	if md[metaPartitions] != strconv.Itoa(t.Partitions) || md[metaPartition] != strconv.Itoa(p) || md[metaPrefix] != t.Prefix {
		return fmt.Errorf("%w: stream %s holds partition %q of %q on prefix %q, want partition %d of %d on prefix %q",
			ErrTrailMismatch, name, md[metaPartition], md[metaPartitions], md[metaPrefix], p, t.Partitions, t.Prefix)
	}
	return nil
}
