package server

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/raystack/salt/audit"
)

// DemoTokens returns the fixed bearer tokens of the demo: two orgs, acme
// and globex; in acme an admin, a member and a service account; in globex
// an admin. They are for trying the server out, never for a deployment.
// examples/connect serves the same tokens.
func DemoTokens() map[string]Principal {
	return map[string]Principal{
		"demo-alice": {Actor: audit.Actor{ID: "user-alice", Type: audit.ActorTypeUser, Name: "Alice"}, OrgID: "acme", Role: RoleAdmin},
		"demo-bob":   {Actor: audit.Actor{ID: "user-bob", Type: audit.ActorTypeUser, Name: "Bob"}, OrgID: "acme", Role: RoleMember},
		"demo-ci":    {Actor: audit.Actor{ID: "sa-deployer", Type: audit.ActorTypeService, Name: "deployer"}, OrgID: "acme", Role: RoleMember},
		"demo-carol": {Actor: audit.Actor{ID: "user-carol", Type: audit.ActorTypeUser, Name: "Carol"}, OrgID: "globex", Role: RoleAdmin},
	}
}

// WriteDemoTokens writes the table of the demo tokens to w, by org and
// token, under a heading.
func WriteDemoTokens(w io.Writer) {
	tokens := DemoTokens()
	names := make([]string, 0, len(tokens))
	for tok := range tokens {
		names = append(names, tok)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(strings.Compare(tokens[a].OrgID, tokens[b].OrgID), strings.Compare(a, b))
	})
	var b strings.Builder
	b.WriteString("Demo bearer tokens:\n")
	for _, tok := range names {
		p := tokens[tok]
		fmt.Fprintf(&b, "  %-11s %-8s %-12s org %-7s %s\n", tok, p.Actor.Type, p.Actor.ID, p.OrgID, p.Role)
	}
	_, _ = io.WriteString(w, b.String())
}

// PrintDemoUsage writes the demo tokens and curl commands that try the
// server at baseURL, e.g. "http://127.0.0.1:8080", to w.
func PrintDemoUsage(w io.Writer, baseURL string) {
	WriteDemoTokens(w)
	_, _ = fmt.Fprintf(w, `
Try:
  # create a project as alice (admin of acme)
  curl -s -X POST -H 'Authorization: Bearer demo-alice' -d '{"name":"apollo"}' %[1]s/projects
  # bob (member) may not delete it: recorded as denied
  curl -s -X DELETE -H 'Authorization: Bearer demo-bob' %[1]s/projects/<id>
  # no token: recorded as app.auth.failed by the anonymous actor
  curl -s -X POST -d '{"name":"x"}' %[1]s/projects
  # read acme's audit trail (admins only): the denials
  curl -s -H 'Authorization: Bearer demo-alice' '%[1]s/audit-logs?outcome=denied&limit=10'
`, baseURL)
}
