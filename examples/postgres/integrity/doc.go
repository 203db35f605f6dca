// Package integrity makes the audit trail that package postgres stores
// tamper-evident: a Sealer keeps an RFC 6962 Merkle tree over the stored
// logs and signs a checkpoint of it every interval, and Verify (and the
// auditverify command) recomputes the tree from the rows and names every
// log that was changed, deleted, inserted or reordered since it was
// sealed, and every tail cut off since a checkpoint was kept.
//
// # Wiring
//
// After postgres.Migrate (migration 4 adds what the sealer needs), run a
// sealer in every replica of the service; they take turns:
//
//	key, err := integrity.NewKey(os.Getenv("AUDIT_SIGNING_KEY")) // never from the database
//	...
//	sealer, err := integrity.NewSealer(pool, "example.com/audit/frontier", []integrity.Key{key},
//		integrity.WithSchema("audit"),
//		integrity.WithInterval(10*time.Second),
//		integrity.WithSinks(integrity.FileSink{Path: "/mnt/elsewhere/frontier-replica-1.ckpt"},
//			integrity.WebhookSink{URL: "https://monitor.example.com/checkpoints"}))
//	go sealer.Run(ctx)
//
// Keys are made with note.GenerateKey, named as the origin: the signer
// key (PRIVATE+KEY+...) goes to the service's secret store, the verifier
// key (name+hash+base64) to whoever verifies. A key held in a KMS is a
// Key of its note.Signer and its verifier.
//
// # What is detected, and what is not
//
// Detected, by anyone with the verifier key and read access:
//
//   - any change to a sealed row, by anyone without the signing key — the
//     table's owner, a superuser, a restored backup: the row no longer
//     hashes to its leaf, whose hash the signed checkpoints cover. The
//     report names the log, its leaf index and the fields that differ;
//   - a sealed log deleted, by ID and leaf index, told apart from logs
//     removed by retention (see Retention);
//   - a log inserted among the sealed ones, and a log stored more than
//     the allowed lateness (Options.MaxLateness, an hour by default) after
//     its CreatedAt, as far as the seals date it: written after the fact,
//     or imported; sealed since or not;
//   - logs reordered: the tree's order is (transaction id, log ID), and a
//     log out of that order is named;
//   - the tree table altered: seals missing, stored hashes that do not
//     follow from the leaves, and a seal's bookkeeping or leaf records
//     other than its checkpoint signed; checkpoints not signed by a known
//     key named as the origin, or whose signature fails;
//   - a tail deleted, logs, seals and checkpoints together, by anyone who
//     kept a checkpoint from before: the tree is then shorter than the
//     kept checkpoint, or does not extend it. Without one, the verifier
//     sees it only when sealing stops (see Freshness).
//   - a row that is not a valid log (only a write around the Repository
//     stores one), sealed or not: it is reported, and sealed as its raw
//     columns so that it is tamper-evident too (see Rows that are not
//     logs).
//
// Not detected:
//
//   - a log changed or deleted before it was sealed: between its commit
//     and the next seal (an interval, or longer while an older transaction
//     stays open, see How logs are sealed), the trail is as the database
//     holds it;
//   - anything done by whoever holds the signing key: they can rewrite
//     the trail and sign it again. Only checkpoints kept elsewhere, or
//     witnessed, show that the new tree does not extend the old one;
//   - a log that was never written: the trail cannot know of events the
//     service did not record;
//   - a forged log inserted with a recent time, as the service would have
//     written it: the database's owner can write logs as the service can;
//   - what the verifier accepts as retention: anyone who may write a log
//     may write a purge log, so the owner of the table could remove the
//     oldest logs early, as far as retention itself could have (see
//     Retention);
//   - a tail deleted while no sealer remembered it and no one kept a
//     checkpoint: every sealer stopped, and restarted with no Keeper sink
//     and no WithTrusted, goes on from the shortened tree, whose seals
//     still verify.
//
// Keep the signing key out of the database and away from its owners: in
// the service's secret store or a KMS, readable by the service's process
// only. A verifier needs the verifier key alone. To rotate a key, sign
// with both keys (NewSealer takes several) until every verifier has the
// new one, then drop the old; give its verifier to the verifiers, and to
// the sealer with WithPreviousKeys if the last seal may be signed by the
// old key alone.
//
// # A sealer never signs an inconsistent history
//
// A log must never sign a checkpoint inconsistent with one it signed
// before (C2SP tlog-checkpoint), and the tree it would extend is in a
// database its owner can rewrite. Before it signs, a Sealer checks that
// the last seal's checkpoint verifies with its keys, signs that seal's
// bookkeeping and leaf records, and that the stored hashes lead to its
// root; and that the tree extends, by a consistency proof, every
// checkpoint it trusts: the last one it committed (held in memory), those
// given with WithTrusted, and, read at its first seal, the latest of each
// sink that is a Keeper (FileSink is one). Otherwise Seal returns
// ErrInconsistent and nothing is signed; Run reports it every interval.
// FileSink, likewise, replaces its checkpoint only with one that extends
// it, so the copy kept outside the database stays the evidence.
//
// ErrInconsistent means the database no longer holds the history that
// was signed: tampering, or a restore from a backup older than the last
// seals. Verify with the kept checkpoints to see what changed; then, to
// seal again on what the database holds, keep the checkpoints that no
// longer match as evidence, move them out of the sinks' paths, and start
// the sealers afresh.
//
// # Freshness
//
// A sealer signs a checkpoint every interval, also when no log arrived,
// each dated by its "time" line. The verifier reports (Stale) a newest
// checkpoint older than Options.MaxAge (an hour by default), and logs
// waiting to be sealed for longer: the sealer has stopped, or been made
// to stop. That is all freshness can tell. A tail deleted with its seals
// while a sealer runs makes that sealer refuse to go on, so its
// checkpoints stop and the trail goes stale; a sealer restarted with its
// Keeper sink refuses too. What freshness cannot tell is a tail deleted
// while every sealer was stopped, with the sealers then restarted without
// what they kept: only a checkpoint kept outside the database (give it to
// the verifier, -kept) shows that.
//
// # Witnessing
//
// To have checkpoints witnessed, send them to witnesses (C2SP
// tlog-witness): independent services that check that each checkpoint is
// consistent with the last one they saw of the same origin, with the
// consistency proof a Sink is handed a Prover for, and add their
// cosignature (C2SP tlog-cosignature) to the note. An Ed25519
// cosignature (cosignature/v1) signs the whole note text, extension lines
// included, but states only that the tree of its first three lines is
// consistent with what the witness saw: nothing about the "time" and
// "seal" lines. A checkpoint that several independent witnesses cosigned
// cannot be replaced by a tree that does not extend it without them all
// noticing, even by the holder of the signing key. WebhookSink posts each
// checkpoint to a URL; a witness speaks its own protocol, which a sink can
// implement.
//
// # How logs are sealed
//
// Migration 4 adds the column xact_id to audit_logs, filled by a DEFAULT
// with pg_current_xact_id(), the 64-bit id of the top-level transaction
// that inserted the row, also when the insert runs in a savepoint (so
// writers need no change), and an index on (xact_id, id). A seal, in one
// transaction:
//
//  1. takes the seal lock, pg_try_advisory_xact_lock on a key made of the
//     audit_seals table's oid, or returns ErrBusy: one sealer at a time
//     across replicas, however they name the table, and never a wait for
//     writers, who take no lock the sealer holds;
//  2. reads the last seal and checks it, as above;
//  3. takes its snapshot: the horizon is its xmin, the oldest transaction
//     still running (every transaction below it has ended, so every row
//     below it that will ever be visible is visible now), and next is its
//     xmax, the latest completed transaction id plus one (a transaction
//     whose id is not below it had not committed when the snapshot was
//     taken); the checkpoint's time is read just before;
//  4. reads the rows after the last sealed (xact_id, id) and below the
//     horizon, in (xact_id, id) order, at most WithMaxLeaves of them: a
//     range scan of the index, with no sort;
//  5. appends their leaf hashes to the tree with
//     tlog.StoredHashesForRecordHash, computes the root with
//     tlog.TreeHash, signs the checkpoint, checks the signature with the
//     keys' verifiers, and inserts one row into audit_seals: the leaves'
//     records, the stored hashes they added, the checkpoint;
//  6. commits.
//
// A transaction that commits late — it began before others that committed
// first — is below no horizon until it ends, so its logs are sealed by a
// later seal, in their place in (xact_id, id) order after the logs already
// sealed, and never skipped. The cost: while any transaction that wrote
// something stays open, in any database of the server, the horizon stays
// behind it and newer logs wait to be sealed (checkpoints go on, with the
// same size). Bound such transactions with idle_in_transaction_session_timeout
// and statement timeouts. A seal that fails, or whose connection or
// process dies, commits nothing and releases the lock; the next seal starts
// from the last committed one, so there is no gap and no leaf twice. The
// seq primary key of audit_seals would refuse a second seal of the same
// place even without the lock.
//
// The lateness check (Backdated) rests on next: a log whose xact_id is not
// below the next of a seal committed after that seal's time, so if that
// time is more than the allowed lateness after the log's CreatedAt, the
// log was stored late (give or take the clock skew between the writer and
// the sealer). A retry of a store whose outcome was unknown
// (audit.ErrMaybeStored) stores the log with its first CreatedAt: a
// service that retries for longer than an hour after an outage needs a
// larger Options.MaxLateness.
//
// Rows written before migration 4 have no xact_id, and are sealed first,
// in ID order.
//
// # Transaction ids
//
// The order, the horizon and the lateness check are in the cluster's
// transaction ids, so the trail is tied to the cluster's xid sequence,
// epoch included. A physical backup restored, or a standby promoted,
// keeps it. A dump restored into another cluster, a logical migration, or
// pg_resetwal moving the counter back does not: new logs get ids below
// the sealed ones, where sealing never looks, and Seal returns
// ErrXactRegressed rather than sign the same tree again and again. To move
// a trail to another cluster: stop the writers, seal until every log is
// sealed, dump and restore, then, before writers start, move the new
// cluster's transaction ids past the old ones: with the cluster stopped,
// pg_resetwal --epoch=E, E above the epoch of the last sealed id
// (SELECT max(last_xact) >> 32 FROM audit_seals). PostgreSQL keeps the
// epoch only in its control file, and a 64-bit id then starts at E·2^32.
//
// # Rows that are not logs
//
// A row that fails audit.Log.Validate, or whose metadata or created_at no
// Log can hold (a value that is not a string, infinity), has no canonical
// encoding. Sealing stops for no row, which would let any role that may
// insert stop it for good: such a row is sealed as its raw columns, its
// leaf hash the SHA-256 of 0x00, RawDomain ("salt-audit-row" and 0x00),
// the version RawVersion (1), the ten text columns in their order in the
// table, and the metadata as PostgreSQL prints the jsonb, each as its
// length (4 bytes, big endian) and bytes, and created_at as PostgreSQL
// keeps it (microseconds since 2000-01-01, 8 bytes, two's complement, big
// endian; the largest and smallest int64 for ±infinity). The domain
// differs from audit.CanonicalDomain, so a raw row never hashes as a log.
// The verifier reports such a row as invalid, at its leaf, and as modified
// if it changes; Tree.InclusionProof refuses it with audit.ErrInvalidLog.
//
// # The tree table
//
// audit_seals holds, for each seal, the stored hashes its leaves added,
// as one bytea (in tlog's stored-hash order, from first_hash on, stored
// uncompressed so that a proof reads one hash with substring), one record
// per leaf, and the seal's bookkeeping: seq, tree size, count, first hash,
// the last (xact_id, id) sealed, the horizon and next of its snapshot,
// and whether it took every row below the horizon. A leaf record holds
// the log's ID and CreatedAt, to name a deleted log and tell one removed
// by retention, a CRC-32C of each other field, to name the fields of a
// changed log, flags, and for a purge log its cutoff and count. The
// checkpoint's "seal" line is the SHA-256 of the bookkeeping and of the
// records (see Checkpoint), so the signature covers them: the verifier
// trusts only seals whose line matches, and so does the sealer its last
// one. A row per seal rather than per hash or per leaf keeps the cost per
// log and the inserts per seal small (the examples/postgres README has
// the figures); a seal with no log still writes a row, every interval.
//
// The table is append-only like audit_logs, with no exception: retention
// removes logs, never leaves.
//
// # Retention
//
// A purge by retention writes, in the transaction of each chunk it
// deletes, an audit log of itself: action ActionPurged, actor type
// "system", metadata "cutoff" (RFC 3339 UTC, six fractional digits) and
// "count". The sealer keeps a sealed purge log's cutoff and count in its
// leaf record, so that it still counts once a later purge removes the
// purge log itself, as retention does every day once its own logs are
// old enough.
//
// Anyone who may write a log can write a purge log, so the verifier
// accepts as removed by retention only what retention could have done.
// A purge log counts if it is in the format, sealed by a valid checkpoint
// or waiting to be sealed, and its cutoff is at least the minimum
// retention (Options.MinRetention, -min-retention: by default 30 days,
// the minimum purge age that Migrate sets) before its time, the earlier of its
// CreatedAt and the time of the checkpoint that sealed it. A missing
// sealed log counts as removed by retention only if
//
//   - a counting purge log after it in the tree has a cutoff after its
//     CreatedAt;
//   - no sealed log older than it in (created_at, id) order is still
//     there: retention deletes the oldest first;
//   - and the counting purge logs count exactly as many logs as are
//     missing so.
//
// Then the report says how many (a Purged finding, not a failure).
// Anything else missing is Deleted; a purge log that does not count, or
// purge logs that count more than is missing (logs purged before they
// were sealed, or a forged count), are reported (BadPurge). Purge logs
// written before migration 4 purged nothing sealed, and count nothing.
// Set the minimum retention to the trail's real retention, less a margin,
// to bound what a forged purge log could pass for.
//
// # Checkpoints and proofs
//
// Checkpoints follow C2SP tlog-checkpoint (see Checkpoint), signed as
// signed notes with golang.org/x/mod/sumdb/note, whose key IDs let several
// keys sign and verifiers pick theirs. Tree.Latest returns the newest,
// Tree.InclusionProof the proof that a log is in the tree of a checkpoint
// (about log2 n hashes), and Tree.ConsistencyProof the proof that a tree
// extends an older one. An InclusionProof's JSON is all that
// InclusionProof.Verify, or auditverify -proof, needs, offline.
package integrity
