// Quickstart writes a handful of audit logs the way a service does — a
// user and a service account, two tenants, request metadata — into the
// in-memory repository, then lists them back filtered and paginated.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/raystack/salt/audit"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	repo := audit.NewMemoryRepository()
	logger := audit.NewLogger(repo, audit.WithSource("projects-api"))

	ada := audit.Actor{ID: "u-1", Type: audit.ActorTypeUser, Name: "ada@acme.example"}
	grace := audit.Actor{ID: "u-2", Type: audit.ActorTypeUser, Name: "grace@globex.example"}
	billing := audit.Actor{ID: "svc-billing", Type: audit.ActorTypeService, Name: "billing-worker"}

	// What authentication and request middleware put in each request's
	// context, then what the handler did.
	events := []struct {
		actor    audit.Actor
		org      string
		request  string
		action   string
		target   audit.Target
		outcome  string
		metadata map[string]string
	}{
		{ada, "acme", "req-1", "app.project.created", audit.Target{ID: "p-1", Type: "project", Name: "apollo"}, audit.OutcomeSuccess, nil},
		{ada, "acme", "req-2", "app.member.added", audit.Target{ID: "u-3", Type: "user", Name: "linus@acme.example"}, audit.OutcomeSuccess, map[string]string{"role": "viewer"}},
		{grace, "globex", "req-3", "app.project.created", audit.Target{ID: "p-2", Type: "project", Name: "gemini"}, audit.OutcomeSuccess, nil},
		{grace, "globex", "req-4", "app.project.deleted", audit.Target{ID: "p-1", Type: "project", Name: "apollo"}, audit.OutcomeDenied, map[string]string{"reason": "project belongs to another org"}},
		{billing, "acme", "req-5", "app.invoice.issued", audit.Target{ID: "inv-9", Type: "invoice"}, audit.OutcomeSuccess, map[string]string{"api_key": "sk_live_123"}},
		{ada, "acme", "req-6", "app.project.updated", audit.Target{ID: "p-1", Type: "project", Name: "apollo"}, audit.OutcomeFailure, map[string]string{"error": "name already taken"}},
		{ada, "acme", "req-7", "app.project.updated", audit.Target{ID: "p-1", Type: "project", Name: "apollo-2"}, audit.OutcomeSuccess, nil},
	}
	for _, e := range events {
		rctx := audit.SetActor(ctx, e.actor)
		rctx = audit.SetOrgID(rctx, e.org)
		rctx = audit.SetMetadata(rctx, map[string]string{
			audit.MetadataRequestID: e.request,
			audit.MetadataIP:        "203.0.113.7",
			audit.MetadataUserAgent: "quickstart/1.0",
			audit.MetadataOutcome:   e.outcome,
		})
		rctx = audit.SetMetadata(rctx, e.metadata)
		if err := logger.Log(rctx, e.action, e.target); err != nil {
			return fmt.Errorf("audit log of %s was not stored: %w", e.action, err)
		}
	}

	// Acme's trail, two logs a page, the way a list endpoint pages.
	filter := audit.Filter{OrgID: "acme", Limit: 2}
	fmt.Fprintln(out, "Audit trail of org acme, newest first, 2 per page:")
	for page := 1; ; page++ {
		logs, err := repo.List(ctx, filter)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\npage %d\n", page)
		printTable(out, logs)
		if len(logs) < filter.PageSize() {
			break
		}
		filter.Cursor = audit.NextCursor(logs)
		if filter.Cursor == "" {
			break
		}
	}

	// Denials and failures across all orgs: usually the events an audit
	// trail is kept for.
	fmt.Fprintln(out, "\nDenied, all orgs:")
	denied, err := repo.List(ctx, audit.Filter{Metadata: map[string]string{audit.MetadataOutcome: audit.OutcomeDenied}})
	if err != nil {
		return err
	}
	printTable(out, denied)

	// A service account's actions, and a bad filter.
	logs, err := repo.List(ctx, audit.Filter{ActorType: audit.ActorTypeService})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nBy service accounts (secret-looking metadata is redacted):")
	printTable(out, logs)
	_, err = repo.List(ctx, audit.Filter{Limit: audit.MaxLimit + 1})
	if !errors.Is(err, audit.ErrInvalidFilter) {
		return fmt.Errorf("a too large limit was not rejected: %w", err)
	}
	fmt.Fprintf(out, "\nA bad filter is rejected: %v\n", err)
	return nil
}

func printTable(out io.Writer, logs []audit.Log) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tORG\tACTOR\tACTION\tTARGET\tOUTCOME\tREQUEST\tOTHER")
	for _, l := range logs {
		var other []string
		for k, v := range l.Metadata {
			switch k {
			case audit.MetadataOutcome, audit.MetadataRequestID, audit.MetadataIP, audit.MetadataUserAgent:
			default:
				other = append(other, k+"="+v)
			}
		}
		slices.Sort(other)
		fmt.Fprintf(w, "%s\t%s\t%s:%s\t%s\t%s:%s\t%s\t%s\t%s\n",
			l.CreatedAt.Format("15:04:05.000"), l.OrgID, l.Actor.Type, l.Actor.Name, l.Action,
			l.Target.Type, l.Target.ID, l.Metadata[audit.MetadataOutcome], l.Metadata[audit.MetadataRequestID], strings.Join(other, " "))
	}
	_ = w.Flush() // out is a terminal or a buffer; nothing to do about a failed write
}
