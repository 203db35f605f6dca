package server_test

import (
	"testing"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/httpserver/server"
)

// TestTokenTable checks the one rule for bearer tokens that both example
// servers share: printable ASCII without spaces, since an Authorization
// header carries a token unchanged; and that Lookup finds exactly the
// tokens given.
func TestTokenTable(t *testing.T) {
	p := server.Principal{Actor: audit.Actor{ID: "u", Type: audit.ActorTypeUser}, OrgID: "o", Role: server.RoleMember}
	for _, tok := range []string{"", "a b", "a\tb", "a\x00b", "a\x1fb", "a\x7fb", "tökén", "a\nb"} {
		if _, err := server.NewTokenTable(map[string]server.Principal{tok: p}); err == nil {
			t.Errorf("token %q: got no error, want it rejected", tok)
		}
		if server.ValidToken(tok) {
			t.Errorf("ValidToken(%q) = true, want false", tok)
		}
	}
	tt, err := server.NewTokenTable(map[string]server.Principal{"demo-1.A_b~!": p})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := tt.Lookup("demo-1.A_b~!"); !ok || got != p {
		t.Errorf("got %v, %v; want the principal", got, ok)
	}
	for _, tok := range []string{"demo-1.A_b~", "demo-1.A_b~! ", "", "DEMO-1.A_B~!"} {
		if got, ok := tt.Lookup(tok); ok {
			t.Errorf("Lookup(%q) = %v, want no principal", tok, got)
		}
	}
	if _, ok := (server.TokenTable{}).Lookup("x"); ok {
		t.Error("the zero TokenTable knows a token")
	}
}
