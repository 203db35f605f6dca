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
//	signer, err := note.NewSigner(os.Getenv("AUDIT_SIGNING_KEY")) // never from the database
//	...
//	sealer, err := integrity.NewSealer(pool, "example.com/audit/frontier", []note.Signer{signer},
//		integrity.WithSchema("audit"),
//		integrity.WithInterval(10*time.Second),
//		integrity.WithSinks(integrity.FileSink{Path: "/mnt/elsewhere/frontier.ckpt"},
//			integrity.WebhookSink{URL: "https://witness.example.com/add-checkpoint"}))
//	go sealer.Run(ctx)
//
// Keys are made with note.GenerateKey: the signer key (PRIVATE+KEY+...)
// goes to the service's secret store, the verifier key (name+hash+base64)
// to whoever verifies. Its name should be the origin.
//
// # What is detected, and what is not
//
// Detected, by anyone with the verifier key and read access:
//
//   - any change to a sealed log, by anyone without the signing key — the
//     table's owner, a superuser, a restored backup: the log no longer
//     hashes to its leaf, whose hash the signed checkpoints cover. The
//     report names the log, its leaf index and the fields that differ;
//   - a sealed log deleted, by ID and leaf index, told apart from logs
//     removed by retention (see below);
//   - a log inserted among the sealed ones, or written after the fact with
//     an old CreatedAt (its transaction began after a seal signed more
//     than the allowed lateness after its time), whether sealed since or
//     not;
//   - logs reordered: the tree's order is (transaction id, log ID), and a
//     log out of that order is named;
//   - the tree table altered, and checkpoints not signed by a known key or
//     whose signature fails;
//   - a tail deleted, logs, seals and checkpoints together, by anyone who
//     kept a checkpoint from before: the tree is then shorter than the kept
//     checkpoint, or does not extend it. Without a kept checkpoint, the
//     verifier can only tell that the newest checkpoint is older than it
//     should be (Options.MaxAge): checkpoints come every interval, also
//     when no log arrived. Have the sinks keep copies where the database's
//     owner cannot write.
//
// Not detected:
//
//   - a log changed before it was sealed: between its commit and the next
//     seal (an interval, or longer while an older transaction stays open,
//     see below), the trail is as the database holds it;
//   - anything done by whoever holds the signing key: they can rewrite
//     the trail and sign it again. Only checkpoints kept elsewhere, or
//     witnessed, show that the new tree does not extend the old one;
//   - a log that was never written: the trail cannot know of events the
//     service did not record;
//   - a forged log inserted with a recent time, as the service would have
//     written it: the database's owner can write logs as the service can.
//
// Keep the signing key out of the database and away from its owners: in
// the service's secret store or a KMS, readable by the service's process
// only. A verifier needs the verifier key alone. To rotate a key, sign
// with both keys (NewSealer takes several signers) until every verifier
// has the new one, then drop the old signer; keep the old verifier key to
// verify the old checkpoints.
//
// To have checkpoints witnessed, send them to witnesses (C2SP
// tlog-witness): independent services that check that each checkpoint is
// consistent with the last one they saw of the same origin, with the
// consistency proof Tree.ConsistencyProof gives, and add their own
// cosignature (C2SP tlog-cosignature) to the note. A checkpoint that
// several independent witnesses cosigned cannot have been replaced by a
// tree that does not extend it without them all noticing, even by the
// holder of the signing key. WebhookSink posts each checkpoint to a URL; a
// witness speaks its own protocol, which a sink can implement.
//
// # How logs are sealed
//
// Migration 4 adds the column xact_id to audit_logs, filled by a DEFAULT
// with the id of the transaction that inserted the row (so writers need no
// change), and an index on (xact_id, id). A seal, in one transaction:
//
//  1. takes the seal lock, pg_try_advisory_xact_lock, or returns ErrBusy:
//     one sealer at a time across replicas, and never a wait for writers,
//     who take no lock the sealer holds;
//  2. reads the horizon, the xmin of its snapshot: every transaction
//     below it has ended, so every row below it that will ever be visible
//     is visible now;
//  3. reads the rows after the last sealed (xact_id, id) and below the
//     horizon, in (xact_id, id) order, at most WithMaxLeaves of them: a
//     range scan of the index, with no sort;
//  4. appends them to the tree with tlog.StoredHashesForRecordHash, their
//     leaf hashes being audit.Log.LeafHash, computes the root with
//     tlog.TreeHash, signs the checkpoint, and inserts one row into
//     audit_seals: the leaves' records, the stored hashes they added, the
//     checkpoint;
//  5. commits.
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
// Rows written before migration 4 have no xact_id, and are sealed first,
// in ID order.
//
// # The tree table
//
// audit_seals holds, for each seal, the stored hashes its leaves added,
// as one bytea (in tlog's stored-hash order, from first_hash on, stored
// uncompressed so that a proof reads one hash with substring), and one
// record per leaf: the log's ID and CreatedAt, to name a deleted log and
// tell one removed by retention, and a CRC-32C of each other field, to
// name the fields of a changed log. The digests are not what proves a
// change (the leaf hash is) and are as trustworthy as the table. A row per
// seal rather than per hash or per leaf keeps the cost to about 115 bytes
// a log, against about 880 bytes for the log's row and indexes (both
// measured by BenchmarkSeal) and about 360 for a row per stored hash and a
// row per leaf record (the examples/postgres README shows how), and to one
// insert per seal.
//
// The table is append-only like audit_logs, with no exception: retention
// removes logs, never leaves.
//
// # Retention
//
// A purge (postgres.Purge) writes, in the transaction of each chunk it
// deletes, an audit log of itself: action "audit.logs.purged", actor type
// "system", metadata "cutoff" (RFC 3339 UTC, six fractional digits) and
// "count". Sealed like any log, such purge logs let the verifier report
// the sealed logs that are gone and were created before a cutoff, when
// the purge logs after them count at least as many, as removed by
// retention (a Purged finding, not a failure); anything else missing is
// Deleted.
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
