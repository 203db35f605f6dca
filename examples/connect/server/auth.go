package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/connect/auditconnect"
)

// Role is what a caller may do within its org.
type Role string

// Roles. Both may create, update, read and export projects; only an admin
// may delete projects and read the audit trail.
const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Principal is who a bearer token stands for: an actor, acting in one org
// with one role.
type Principal struct {
	// Actor is recorded as the actor of the caller's audit logs. Its Type
	// is audit.ActorTypeUser or audit.ActorTypeService.
	Actor audit.Actor
	// OrgID is the only org the caller sees: its projects and its audit
	// trail. It is required: a principal without one would list the logs
	// of every org.
	OrgID string
	Role  Role
}

// errUnknownToken is the Authenticator's answer to a token it does not
// know; the identity interceptor then goes on with the anonymous actor.
var errUnknownToken = errors.New("unknown token")

// tokenTable finds the principal of a bearer token. It is keyed by the
// tokens' SHA-256 digests, so that the time a lookup takes says nothing
// useful about the tokens it holds, and the tokens are not kept.
type tokenTable map[[sha256.Size]byte]Principal

func newTokenTable(tokens map[string]Principal) (tokenTable, error) {
	t := make(tokenTable, len(tokens))
	for tok, p := range tokens {
		if !validToken(tok) {
			return nil, errors.New("a token is empty or holds white space or control characters")
		}
		if err := checkPrincipal(p); err != nil {
			return nil, fmt.Errorf("principal of actor %q: %w", p.Actor.ID, err)
		}
		t[sha256.Sum256([]byte(tok))] = p
	}
	return t, nil
}

// validToken reports whether tok can be sent as a bearer token: printable
// ASCII without spaces.
func validToken(tok string) bool {
	if tok == "" {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// checkPrincipal reports whether p can act and be audited.
func checkPrincipal(p Principal) error {
	switch p.Actor.Type {
	case audit.ActorTypeUser, audit.ActorTypeService:
	default:
		return fmt.Errorf("actor type %q is not %q or %q", p.Actor.Type, audit.ActorTypeUser, audit.ActorTypeService)
	}
	if p.Actor.ID == "" {
		return errors.New("actor id is empty")
	}
	if p.OrgID == "" {
		return errors.New("org id is empty")
	}
	if p.Role != RoleAdmin && p.Role != RoleMember {
		return fmt.Errorf("role %q is not %q or %q", p.Role, RoleAdmin, RoleMember)
	}
	// The actor and org go into every log of the caller: check them once.
	probe := audit.Log{ID: "probe", Source: "probe", Action: "probe", Actor: p.Actor, OrgID: p.OrgID, CreatedAt: time.Unix(0, 0)}
	return probe.Validate()
}

type roleKey struct{}

// authenticate is the Authenticator of the identity interceptor: the
// principal's actor and org go into the audit logs, its role into the
// context for the handlers.
func (t tokenTable) authenticate(ctx context.Context, token string) (context.Context, auditconnect.Identity, error) {
	p, ok := t[sha256.Sum256([]byte(token))]
	if !ok {
		return nil, auditconnect.Identity{}, errUnknownToken
	}
	return context.WithValue(ctx, roleKey{}, p.Role), auditconnect.Identity{Actor: p.Actor, OrgID: p.OrgID}, nil
}

// caller is who called, as a handler needs to know it.
type caller struct {
	actor audit.Actor
	org   string
	role  Role
}

// callerOf returns the authenticated caller of ctx, or an error with
// connect.CodeUnauthenticated.
func callerOf(ctx context.Context) (caller, error) {
	a, err := auditconnect.RequireActor(ctx)
	if err != nil {
		return caller{}, err
	}
	org, _ := audit.OrgIDFromContext(ctx)
	role, _ := ctx.Value(roleKey{}).(Role)
	if org == "" || role == "" {
		// New accepts no such principal; never act outside an org.
		return caller{}, connect.NewError(connect.CodeUnauthenticated, errors.New("the token has no org or role"))
	}
	return caller{actor: a, org: org, role: role}, nil
}

// requireAdmin returns an error with connect.CodePermissionDenied unless c
// is an admin.
func (c caller) requireAdmin() error {
	if c.role != RoleAdmin {
		return connect.NewError(connect.CodePermissionDenied, errors.New("this requires the admin role"))
	}
	return nil
}
