package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/raystack/salt/audit"
)

// Role is what a caller may do within its org.
type Role string

// Roles. Both may create, update and list projects; only an admin may
// delete projects, manage members and read the audit trail.
const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Principal is who a bearer token stands for: an actor, acting in one org
// with one role.
type Principal struct {
	// Actor is recorded as the actor of the caller's audit logs. Its Type is
	// audit.ActorTypeUser or audit.ActorTypeService.
	Actor audit.Actor
	// OrgID is the only org the caller sees: its projects and its audit
	// trail. It is required: a principal without one would list the logs
	// of every org.
	OrgID string
	Role  Role
}

// TokenTable finds the principal of a bearer token. It is keyed by the
// tokens' SHA-256 digests, so that the time a lookup takes says nothing
// useful about the tokens it holds, and the tokens are not kept. The zero
// TokenTable knows no token. A TokenTable is never modified once made and
// is safe for concurrent use.
//
// examples/connect authenticates its callers with it too, so that both
// examples accept the same tokens by the same rules.
type TokenTable struct {
	byDigest map[[sha256.Size]byte]Principal
}

// NewTokenTable returns the table of tokens, each token mapped to its
// principal. It returns an error when a token is not ValidToken or a
// principal could not act or be audited: an actor type other than user
// or service, an empty actor id or org, an unknown role, or an actor or
// org that audit.Log.Validate rejects.
func NewTokenTable(tokens map[string]Principal) (TokenTable, error) {
	t := TokenTable{byDigest: make(map[[sha256.Size]byte]Principal, len(tokens))}
	for tok, p := range tokens {
		if !ValidToken(tok) {
			return TokenTable{}, errors.New("a token is empty or holds white space, control characters or non-ASCII bytes")
		}
		if err := checkPrincipal(p); err != nil {
			return TokenTable{}, fmt.Errorf("principal of actor %q: %w", p.Actor.ID, err)
		}
		t.byDigest[sha256.Sum256([]byte(tok))] = p
	}
	return t, nil
}

// Lookup returns the principal of token, a bearer token without its
// scheme, and reports whether the table holds it.
func (t TokenTable) Lookup(token string) (Principal, bool) {
	p, ok := t.byDigest[sha256.Sum256([]byte(token))]
	return p, ok
}

// ValidToken reports whether tok can be a bearer token: printable ASCII
// without spaces, as an Authorization header carries it unchanged.
func ValidToken(tok string) bool {
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

// Reasons for denials and failures, in the "reason" metadata key.
const (
	reasonMissingToken   = "missing_token"
	reasonInvalidToken   = "invalid_token"
	reasonAdminRequired  = "admin_required"
	reasonInvalidRequest = "invalid_request"
	reasonNotFound       = "not_found"
	reasonConflict       = "conflict"
	reasonStorageError   = "storage_error" // the repository failed to list logs
)

// lookup returns the principal of r's bearer token, or why there is none.
func (t TokenTable) lookup(r *http.Request) (Principal, string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Principal{}, reasonMissingToken
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, reasonInvalidToken
	}
	p, ok := t.Lookup(strings.TrimSpace(token))
	if !ok {
		return Principal{}, reasonInvalidToken
	}
	return p, ""
}

type roleKey struct{}

// roleFromContext returns the role of the authenticated caller.
func roleFromContext(ctx context.Context) Role {
	r, _ := ctx.Value(roleKey{}).(Role)
	return r
}

// anonymous is the actor of a request without a valid token.
var anonymous = audit.Actor{Type: audit.ActorTypeAnonymous}

// authenticate returns a handler that lets only requests with a valid
// bearer token through to next, with their actor and org in the context
// (audit.SetActor, audit.SetOrgID) and their role. When the route is
// audited, a request that is turned away writes an ActionAuthFailed log
// with the anonymous actor, naming the route it tried.
func (s *Server) authenticate(audited bool, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, reason := s.tokens.lookup(r)
		if reason != "" {
			if audited {
				ctx := audit.SetActor(r.Context(), anonymous)
				_ = s.record(ctx, ActionAuthFailed, audit.Target{}, audit.OutcomeDenied,
					"reason", reason, "route", r.Pattern)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="projects"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		ctx := audit.SetActor(r.Context(), p.Actor)
		ctx = audit.SetOrgID(ctx, p.OrgID)
		ctx = context.WithValue(ctx, roleKey{}, p.Role)
		next(w, r.WithContext(ctx))
	})
}

// requireAdmin reports whether the caller is an admin. When it is not, it
// records that action on target was denied and answers 403.
func (s *Server) requireAdmin(w http.ResponseWriter, r *http.Request, action string, target audit.Target) bool {
	if roleFromContext(r.Context()) == RoleAdmin {
		return true
	}
	_ = s.record(r.Context(), action, target, audit.OutcomeDenied, "reason", reasonAdminRequired)
	writeError(w, http.StatusForbidden, "this requires the admin role")
	return false
}
