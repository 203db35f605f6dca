package audit_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/raystack/salt/audit"
)

// Authentication middleware sets the actor and org once; every audit log
// written while serving the request carries them.
func ExampleSetActor() {
	users := map[string]audit.Actor{"token-ada": {ID: "u-1", Type: audit.ActorTypeUser, Name: "ada@example.com"}}

	authenticate := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			actor, ok := users[r.Header.Get("Authorization")]
			if !ok {
				actor = audit.Actor{Type: audit.ActorTypeAnonymous}
			}
			ctx := audit.SetActor(r.Context(), actor)
			ctx = audit.SetOrgID(ctx, "org-1")
			ctx = audit.SetMetadata(ctx, map[string]string{audit.MetadataRequestID: r.Header.Get("X-Request-Id")})
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	handler := authenticate(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		actor, _ := audit.ActorFromContext(r.Context())
		l := audit.FromContext(r.Context())
		fmt.Println(actor.Name, l.OrgID, l.Metadata[audit.MetadataRequestID])
	}))

	req := httptest.NewRequest(http.MethodPost, "/projects", nil)
	req.Header.Set("Authorization", "token-ada")
	req.Header.Set("X-Request-Id", "req-42")
	handler.ServeHTTP(httptest.NewRecorder(), req)
	// Output: ada@example.com org-1 req-42
}

// Later SetMetadata calls add to what the context carries; for a key set
// twice, the later value wins. The parent context is not changed.
func ExampleSetMetadata() {
	ctx := audit.SetMetadata(ctxBackground, map[string]string{audit.MetadataIP: "203.0.113.9", "route": "/a"})
	child := audit.SetMetadata(ctx, map[string]string{"route": "/b"})
	fmt.Println(audit.FromContext(ctx).Metadata)
	fmt.Println(audit.FromContext(child).Metadata)
	// Output:
	// map[ip:203.0.113.9 route:/a]
	// map[ip:203.0.113.9 route:/b]
}
