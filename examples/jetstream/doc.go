// Package jetstream is an audit.Repository whose writes go to a replicated
// NATS JetStream trail and whose reads come from a PostgreSQL projection of
// it. Choose it over examples/postgres alone when one database is not
// enough: many services with many replicas each writing more than one
// server commits, writes that must go on while the database is down or
// being maintained, or a trail that other systems consume as a stream.
// It costs a cluster of NATS servers and a Projector process to run, and
// reads that wait for the projection.
//
// # Wiring
//
// Make the streams and the schema once (both idempotent), then open the
// Repository in each service, and run Projectors, in the services or as
// processes of their own (cmd/projector):
//
//	nc, err := nats.Connect(os.Getenv("NATS_URL"), nats.MaxReconnects(-1),
//		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
//	js, err := jetstream.New(nc) // github.com/nats-io/nats.go/jetstream
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//
//	trail := natsaudit.Trail{} // AUDIT_0..2, 3 replicas, subjects audit.>
//	err = natsaudit.CreateStreams(ctx, js, trail)
//	err = natsaudit.Migrate(ctx, pool, trail.Schema)
//
//	repo, err := natsaudit.Open(ctx, js, pool, trail)
//	logger := audit.NewLogger(repo, audit.WithSource("frontier"))
//
//	proj, err := natsaudit.NewProjector(js, pool, trail)
//	go proj.Run(ctx)
//
// (natsaudit is this package, imported under another name than nats.go's
// jetstream.) A stopped server keeps its sockets open; the pings above
// let the client leave it within about 3 s instead of minutes.
//
// # Subjects and partitions
//
// A log is stored in one of Trail.Partitions streams, Name_0 …, chosen by
// an FNV-1a hash of its ID, on the subject
//
//	<prefix>.<partition>.<id>.<org>.<source>
//
// where ID, OrgID and Source are escaped with Token (letters, digits, '-'
// and '_' as they are, other bytes %XX, the empty string as %), so that
// any valid log has a valid subject, at most about 2.4 KB long: within
// the 4 KB that a protocol line may take by default.
// Consumers select one org's logs with Trail.OrgFilter
// (<prefix>.*.*.<org>.*) and one source's with Trail.SourceFilter. Each
// partition stream has a Raft group and a leader of its own, and
// JetStream spreads the leaders over the servers, so more partitions and
// servers take more writes.
//
// # Duplicates, for ever
//
// Create publishes with the headers Nats-Expected-Last-Subject-Sequence: 0
// and Nats-Expected-Last-Subject-Sequence-Subject: <prefix>.<partition>.<id>.>,
// so the stream's leader stores the log only if no message of that ID, on
// any org or source, is stored or on its way. For a stored one it answers
// with an error that Create returns wrapping audit.ErrAlreadyExists; for
// one on its way, which may yet fail, Create asks again shortly. The check
// uses the stream's index of subjects, not the dedup window of
// Nats-Msg-Id, so it holds for as long as the stream keeps the first log:
// the streams keep every log (no age, count or size limit) and refuse to
// delete or purge. The ID comes before the org and the source in the
// subject so that the leader finds it by prefix in that index, without a
// scan. The cost: the servers keep the index in memory, one entry per log
// (see the README for what it measured), and the check makes each write
// a little slower.
//
// # What an acknowledged Create means
//
// Create returns nil once the log is committed by the Raft group of its
// partition's stream: it is in the Raft log of a majority of the stream's
// replicas (2 of 3), each of which wrote it to its log file before it
// answered the leader, and the leader has applied it to its stream. With
// more than one replica a server writes its stream's own message store
// asynchronously, moments after applying; a server that restarts replays
// its Raft log into it. The log then survives the loss of any minority of the servers (a kill -9, a machine
// that dies), and is in the projection shortly after (milliseconds, when
// the Projector keeps up). It is not yet on disk everywhere: JetStream
// writes to the operating system at once and forces its files to disk
// every sync_interval, 2 minutes by default. If every server loses power
// at once, the logs acknowledged since their last sync can be lost. The
// NATS documentation keeps that default for clusters whose servers are in
// separate failure domains (availability zones), which this package
// recommends too; sync_interval: always closes the window at the cost of
// write rate (see the README for the figures).
//
// An error wrapping audit.ErrMaybeStored means that no attempt of the
// Create was answered in time (see WithAttemptTimeout and
// WithPublishTimeout): the log may be stored, now or soon. The retry with
// the same log (Logger.Record with the same ID) is safe, since a stored
// ID is rejected for ever; ErrAlreadyExists then means that the first
// attempt stored it. Any other error means the log is not stored.
//
// # Order
//
// Each partition stream orders its logs by sequence, as its leader
// received them, and the Projector applies each partition in that order.
// There is no order across partitions. List orders by CreatedAt and ID,
// as the audit.Repository contract says, whatever the order of storing.
//
// # Reads
//
// List asks every partition stream's leader for its last sequence, and
// GetByID of a log not yet projected asks its partition's stream for the
// log's sequence; then they wait until the projection's positions, which
// the Projector commits with the rows, reach them, and read the table
// through examples/postgres. So a reader sees every log acknowledged to
// anyone before its call. List takes only the leader's answer: while a
// stream's group elects a leader, a member answers with its own state,
// which may lack acknowledged logs, and List asks again until a leader
// answers or ctx ends. (A leader that was paused while another was
// elected may, once it runs again and until it hears of the new one,
// still answer with its older state; this package does not close that
// window.) While the projection lags (PostgreSQL or every
// Projector down), reads wait until ctx ends and return an error wrapping
// ctx's error that says how far behind each partition is. A reader that
// would rather see the projection as it is, without waiting, uses
// postgres.NewRepository on the same schema.
//
// # The projection
//
// A Projector reads each partition through its durable consumer
// (ProjectorConsumer) and applies it in batches: one statement inserts the
// batch's rows into audit_logs and advances the partition's position in
// audit_jetstream_positions from the value it read (a compare-and-set),
// and only after it commits is the batch acknowledged. It is idempotent
// both ways: a redelivered message at or below the position is skipped,
// and IDs are the table's primary key, so a second log with a stored ID
// commits nothing and goes to the dead letters. Several Projectors share
// a trail's partitions through PostgreSQL advisory locks, each taking its
// fair share and the partitions of one that stops; a new owner sets the
// consumer back to the position it reads. A message the projection
// rejects (not a log, not on its own subject, refused by PostgreSQL, or a
// second log with a stored ID) is stored in the trail's dead-letter stream
// with the reason before the position passes it, reported, and stays in
// its own stream: it is never lost, and holds up its partition only while
// the dead-letter stream cannot store it (the Projector tries again every
// 100 ms, telling the error handler of each failure, and applies nothing
// after it meanwhile, so that no rejected message is passed unrecorded).
//
// # In production
//
// Run 3 servers for Replicas 3, which survive the loss of one, or 5 for
// Replicas 5, which survive two and write more slowly; each server on a
// machine and disk of its own, in separate availability zones. Take at
// least as many partitions as servers, so that every server leads some;
// the number is fixed for the life of the trail (CreateStreams records
// it, and Open and the Projector refuse another). Run two or more
// Projectors; each needs a PostgreSQL connection per partition it holds
// plus one.
//
// # The same design on Kafka
//
// A topic with Partitions partitions, replication factor 3,
// min.insync.replicas 2 and a producer with acks=all is the partition
// streams with a majority acknowledgement; the producer's key is the ID,
// so a hash of it picks the partition. Kafka's idempotent producer removes
// the duplicates of its own retries within a producer session only, and
// Kafka has no per-key "store if absent", so a second log with a stored
// ID cannot be refused when it is written: the projection refuses it by
// the primary key instead, and Create could only return
// audit.ErrAlreadyExists by reading the projection first, which does not
// close the race. The Projectors are a consumer group whose offsets are
// committed in the projection's transaction (the positions table) rather
// than to Kafka, and that seek to them when a partition is assigned. The
// compare-and-set on the positions row stays: the group's generation
// fences a former owner's offset commits to Kafka, not its writes to
// PostgreSQL, so a stalled consumer that wakes after a rebalance could
// otherwise apply a batch its successor applies too. Reads wait for the
// projection to reach the partitions' end offsets taken when they are
// called.
package jetstream
