// Command auditverify checks the integrity of an audit trail that package
// integrity seals in PostgreSQL, and reports every log that was modified,
// deleted, inserted, backdated or reordered, by leaf index and log ID,
// every checkpoint that does not verify, and a tail shorter than a
// checkpoint kept outside the database.
//
//	auditverify -db "$READONLY_URL" -schema audit -key "$(cat trail.vkey)" -kept kept.ckpt
//
// It needs a role that may SELECT audit_logs and audit_seals, nothing
// more, and reads them in one read-only, repeatable-read transaction, so
// that what it compares is one moment of the trail. It prints the findings
// on standard output, a progress line on standard error about once a
// second, and exits 0 only when everything verifies (logs removed by
// retention, as sealed purge logs count them, are reported and are no
// failure), 1 when something does not, 2 when it could not check. A row or
// a seal it cannot decode is a finding, not a reason to stop.
//
// Without -origin, the origin is the name of the verifier keys, which
// must then all have the same name (a trail's keys are named as its
// origin); the summary line says which origin was checked.
//
// Offline, with no database, it checks one log against a checkpoint, from
// the JSON that integrity.Tree.InclusionProof returns:
//
//	auditverify -key "$(cat trail.vkey)" -proof proof.json
//
// Flags:
//
//	-db URL            the database (default $DATABASE_URL)
//	-schema NAME       the schema of the tables (default: the search_path's)
//	-key VKEY          a verifier key, name+hash+base64 (repeat for rotated keys)
//	-keys FILE         a file of verifier keys, one a line
//	-origin ORIGIN     the trail's origin (default: the name of the keys)
//	-kept FILE         a checkpoint kept outside the database (repeatable)
//	-max-lateness D    how long after its time a log may be stored (default 1h; 0: no check)
//	-max-age D         how old the newest checkpoint and the oldest unsealed
//	                   log may be (default 1h; 0: no check)
//	-min-retention D   the least age of a purge's cutoff at the purge's time, the
//	                   database's minimum purge age (default 720h, the 30 days
//	                   that Migrate sets; 0: none)
//	-proof FILE        verify one inclusion proof, offline
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/raystack/salt/examples/postgres/integrity"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK       = 0
	exitFindings = 1
	exitError    = 2
)

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("auditverify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var keys, kept list
	db := fs.String("db", getenv("DATABASE_URL"), "the database URL")
	schema := fs.String("schema", "", "the schema of audit_logs and audit_seals")
	fs.Var(&keys, "key", "a verifier key (repeatable)")
	keyFile := fs.String("keys", "", "a file of verifier keys, one a line")
	origin := fs.String("origin", "", "the trail's origin (default: the name of the verifier keys)")
	fs.Var(&kept, "kept", "a checkpoint kept outside the database (repeatable)")
	lateness := fs.Duration("max-lateness", integrity.DefaultMaxLateness, "how long after its time a log may be stored; 0: no check")
	maxAge := fs.Duration("max-age", integrity.DefaultMaxAge, "how old the newest checkpoint and the oldest unsealed log may be; 0: no check")
	minRetention := fs.Duration("min-retention", integrity.DefaultMinRetention, "the least age of a purge's cutoff at the time of its purge log; 0: none")
	proof := fs.String("proof", "", "an inclusion proof to verify offline, as JSON")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "auditverify: "+format+"\n", a...)
		return exitError
	}
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return fail("%v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, line)
			}
		}
	}
	if len(keys) == 0 {
		return fail("no verifier key: give -key or -keys")
	}
	verifiers, err := integrity.Verifiers(keys...)
	if err != nil {
		return fail("%v", err)
	}
	if *origin == "" {
		names := map[string]bool{}
		for _, k := range keys {
			names[strings.SplitN(strings.TrimSpace(k), "+", 2)[0]] = true
		}
		if len(names) != 1 {
			return fail("the verifier keys have %d names: give the trail's origin with -origin", len(names))
		}
		for n := range names {
			*origin = n
		}
	}

	if *proof != "" {
		b, err := os.ReadFile(*proof)
		if err != nil {
			return fail("%v", err)
		}
		p, err := integrity.ParseInclusionProof(b)
		if err != nil {
			return fail("%s: %v", *proof, err)
		}
		cp, err := p.Verify(*origin, verifiers)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL log %q as leaf %d: %v\n", p.Log.ID, p.LeafIndex, err)
			return exitFindings
		}
		fmt.Fprintf(stdout, "ok: log %q is leaf %d of %q's tree of %d (checkpoint of %s), with %d proof hashes\n",
			p.Log.ID, p.LeafIndex, cp.Origin, cp.Size, cp.Time.Format(time.RFC3339), len(p.Proof))
		return exitOK
	}

	// A flag of 0 turns its check off, as a negative value does in Options.
	off := func(d time.Duration) time.Duration {
		if d <= 0 {
			return -1
		}
		return d
	}
	opts := integrity.Options{Origin: *origin, Verifiers: verifiers, MaxLateness: off(*lateness), MaxAge: off(*maxAge),
		MinRetention: off(*minRetention), Progress: stderr}
	for _, f := range kept {
		b, err := os.ReadFile(f)
		if err != nil {
			return fail("%v", err)
		}
		opts.Kept = append(opts.Kept, b)
	}
	if *db == "" {
		return fail("no database: give -db or set DATABASE_URL")
	}
	conn, err := pgx.Connect(ctx, *db)
	if err != nil {
		return fail("connecting: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fail("%v", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	start := time.Now()
	rep, err := integrity.Verify(ctx, tx, *schema, opts)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fail("interrupted")
		}
		return fail("%v", err)
	}
	for _, f := range rep.Findings {
		fmt.Fprintln(stdout, f)
	}
	status := "ok"
	code := exitOK
	if !rep.OK() {
		status, code = "FAIL", exitFindings
	}
	latest := "no valid checkpoint"
	if rep.Checkpoints > 0 {
		latest = fmt.Sprintf("the newest of a tree of %d, %s", rep.Latest.Size, rep.Latest.Time.Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "%s: %q: %d logs, %d leaves, %d not sealed yet, %d removed by retention; %d checkpoints verified (%s); %d findings; %s\n",
		status, rep.Origin, rep.Logs, rep.Leaves, rep.Pending, rep.Purged, rep.Checkpoints, latest, len(rep.Findings), time.Since(start).Round(time.Millisecond))
	return code
}
