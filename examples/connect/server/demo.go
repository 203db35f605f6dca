package server

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/raystack/salt/audit"
)

// DemoTokens returns the fixed bearer tokens of the demo, the same as
// those of examples/httpserver: two orgs, acme and globex; in acme an
// admin, a member and a service account; in globex an admin. They are
// for trying the server out, never for a deployment.
func DemoTokens() map[string]Principal {
	return map[string]Principal{
		"demo-alice": {Actor: audit.Actor{ID: "user-alice", Type: audit.ActorTypeUser, Name: "Alice"}, OrgID: "acme", Role: RoleAdmin},
		"demo-bob":   {Actor: audit.Actor{ID: "user-bob", Type: audit.ActorTypeUser, Name: "Bob"}, OrgID: "acme", Role: RoleMember},
		"demo-ci":    {Actor: audit.Actor{ID: "sa-deployer", Type: audit.ActorTypeService, Name: "deployer"}, OrgID: "acme", Role: RoleMember},
		"demo-carol": {Actor: audit.Actor{ID: "user-carol", Type: audit.ActorTypeUser, Name: "Carol"}, OrgID: "globex", Role: RoleAdmin},
	}
}

// PrintDemoUsage writes the demo tokens, and curl commands that call the
// server at baseURL, e.g. "http://127.0.0.1:8080", to w.
func PrintDemoUsage(w io.Writer, baseURL string) {
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
	fmt.Fprintf(&b, `
Try (Connect protocol, JSON):
  # create a project as alice (admin of acme)
  curl -s -H 'Authorization: Bearer demo-alice' -H 'Content-Type: application/json' \
    -d '{"name":"apollo"}' %[1]s/projects.v1.ProjectService/CreateProject
  # bob (member) may not delete it: recorded as denied
  curl -s -H 'Authorization: Bearer demo-bob' -H 'Content-Type: application/json' \
    -d '{"id":"<id>"}' %[1]s/projects.v1.ProjectService/DeleteProject
  # read acme's audit trail (admins only): the denials
  curl -s -H 'Authorization: Bearer demo-alice' -H 'Content-Type: application/json' \
    -d '{"outcome":"denied","pageSize":10}' %[1]s/projects.v1.ProjectService/ListAuditLogs
`, baseURL)
	_, _ = io.WriteString(w, b.String())
}
