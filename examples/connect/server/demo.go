package server

import (
	"fmt"
	"io"

	httpserver "github.com/raystack/salt/examples/httpserver/server"
)

// PrintDemoUsage writes the demo tokens, those of examples/httpserver
// (httpserver.DemoTokens), and curl commands that call the server at
// baseURL, e.g. "http://127.0.0.1:8080", to w.
func PrintDemoUsage(w io.Writer, baseURL string) {
	httpserver.WriteDemoTokens(w)
	_, _ = fmt.Fprintf(w, `
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
}
