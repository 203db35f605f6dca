package auditconnect

import (
	"context"
	"strings"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
)

// Identity is who a caller is, as the audit trail records it.
type Identity struct {
	// Actor becomes the actor of the caller's audit logs (audit.SetActor).
	// Its Type is required, and every field must pass audit.Log.Validate:
	// the Authenticator's values are trusted as they are.
	Actor audit.Actor
	// OrgID becomes the org of the caller's audit logs (audit.SetOrgID);
	// "" leaves the caller outside any org.
	OrgID string
}

// An Authenticator finds who presented a bearer token. It returns the
// context the call goes on with, which is ctx or one derived from it
// carrying what else the service's handlers need to know of the caller,
// such as a role, and the Identity its audit logs record. Any error means
// that the token is not valid. It must be safe for concurrent use.
type Authenticator func(ctx context.Context, token string) (context.Context, Identity, error)

// Values of MetadataAuthError, the reason a call goes on as the anonymous
// actor.
const (
	AuthMissingToken = "missing_token" // no Authorization header
	AuthInvalidToken = "invalid_token" // not one Bearer token that the Authenticator accepts
)

// Anonymous is the actor of a call without a valid bearer token.
var Anonymous = audit.Actor{Type: audit.ActorTypeAnonymous}

// NewIdentityInterceptor returns an interceptor that says who the caller
// of each call is, for its audit logs and its handler. It reads the
// request's Authorization header, "Bearer <token>", and hands the token to
// authenticate; the Identity it returns is put into the call's context
// with audit.SetActor and audit.SetOrgID.
//
// A call without a valid token is not turned away: it goes on with the
// Anonymous actor and no org, and with the MetadataAuthError metadata
// key saying why (AuthMissingToken or AuthInvalidToken), so that the
// procedure decides whether that is an error. Most answer
// connect.CodeUnauthenticated (see RequireActor), which the audit
// interceptor records as a denial by the anonymous actor.
//
// It acts on handlers only, unary and streaming; on clients it does
// nothing. It panics if authenticate is nil.
func NewIdentityInterceptor(authenticate Authenticator) connect.Interceptor {
	if authenticate == nil {
		panic("auditconnect: NewIdentityInterceptor with a nil Authenticator")
	}
	return &identityInterceptor{authenticate: authenticate}
}

type identityInterceptor struct {
	authenticate Authenticator
}

// identify returns ctx with the identity of the caller whose request
// headers hold authorization, the values of the Authorization header.
func (i *identityInterceptor) identify(ctx context.Context, authorization []string) context.Context {
	if len(authorization) == 0 {
		return anonymous(ctx, AuthMissingToken)
	}
	token, ok := bearerToken(authorization)
	if !ok {
		return anonymous(ctx, AuthInvalidToken)
	}
	actx, id, err := i.authenticate(ctx, token)
	if err != nil || actx == nil {
		return anonymous(ctx, AuthInvalidToken)
	}
	actx = audit.SetActor(actx, id.Actor)
	if id.OrgID != "" {
		actx = audit.SetOrgID(actx, id.OrgID)
	}
	return actx
}

// bearerToken returns the token of a single "Bearer <token>" header
// value; the scheme is case-insensitive.
func bearerToken(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

func anonymous(ctx context.Context, reason string) context.Context {
	ctx = audit.SetActor(ctx, Anonymous)
	return audit.SetMetadata(ctx, map[string]string{MetadataAuthError: reason})
}

func (i *identityInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		return next(i.identify(ctx, req.Header().Values("Authorization")), req)
	}
}

func (i *identityInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *identityInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return next(i.identify(ctx, conn.RequestHeader().Values("Authorization")), conn)
	}
}

// RequireActor returns the actor of ctx, or an error with
// connect.CodeUnauthenticated when the caller is anonymous or unknown:
// what a procedure that needs a caller returns.
func RequireActor(ctx context.Context) (audit.Actor, error) {
	a, ok := audit.ActorFromContext(ctx)
	if !ok || a.Type == audit.ActorTypeAnonymous || a.Type == "" {
		return audit.Actor{}, connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
	}
	return a, nil
}
