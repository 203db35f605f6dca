package server

import (
	"net/http"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
)

// withRequestMetadata returns a handler that puts the request's audit
// metadata into its context, with audit.SetMetadata, before calling next;
// it also sends the request id back in the response, in
// auditmeta.HeaderRequestID. It runs before authentication, so that
// denials carry the metadata too. auditmeta.Config.Metadata says what it
// reads and how hostile headers are cleaned.
func (s *Server) withRequestMetadata(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		md := s.meta.Metadata(r.Header, r.RemoteAddr)
		w.Header().Set(auditmeta.HeaderRequestID, md[audit.MetadataRequestID])
		next.ServeHTTP(w, r.WithContext(audit.SetMetadata(r.Context(), md)))
	})
}
