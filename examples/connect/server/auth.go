package server

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/connect/auditconnect"
	httpserver "github.com/raystack/salt/examples/httpserver/server"
)

// Who a caller is, and what it may do, are those of examples/httpserver:
// its httpserver.Principal (an actor, its org and its role) and its
// httpserver.TokenTable, keyed by SHA-256, with its rule for tokens. Both
// roles may create, update, read and export projects; only an admin may
// delete projects and read the audit trail.

// errUnknownToken is the Authenticator's answer to a token it does not
// know; the identity interceptor then goes on with the anonymous actor.
var errUnknownToken = errors.New("unknown token")

type roleKey struct{}

// authenticator returns the Authenticator of the identity interceptor:
// the principal's actor and org go into the audit logs, its role into the
// context for the handlers.
func authenticator(tokens httpserver.TokenTable) auditconnect.Authenticator {
	return func(ctx context.Context, token string) (context.Context, auditconnect.Identity, error) {
		p, ok := tokens.Lookup(token)
		if !ok {
			return nil, auditconnect.Identity{}, errUnknownToken
		}
		return context.WithValue(ctx, roleKey{}, p.Role), auditconnect.Identity{Actor: p.Actor, OrgID: p.OrgID}, nil
	}
}

// caller is who called, as a handler needs to know it.
type caller struct {
	actor audit.Actor
	org   string
	role  httpserver.Role
}

// callerOf returns the authenticated caller of ctx, or an error with
// connect.CodeUnauthenticated.
func callerOf(ctx context.Context) (caller, error) {
	a, err := auditconnect.RequireActor(ctx)
	if err != nil {
		return caller{}, err
	}
	org, _ := audit.OrgIDFromContext(ctx)
	role, _ := ctx.Value(roleKey{}).(httpserver.Role)
	if org == "" || role == "" {
		// New accepts no such principal; never act outside an org.
		return caller{}, connect.NewError(connect.CodeUnauthenticated, errors.New("the token has no org or role"))
	}
	return caller{actor: a, org: org, role: role}, nil
}

// requireAdmin returns an error with connect.CodePermissionDenied unless c
// is an admin.
func (c caller) requireAdmin() error {
	if c.role != httpserver.RoleAdmin {
		return connect.NewError(connect.CodePermissionDenied, errors.New("this requires the admin role"))
	}
	return nil
}
