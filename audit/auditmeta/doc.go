// Package auditmeta reads the well-known metadata of an audit log from the
// request it records: request_id, user_agent, trace_id and ip (see the
// audit.Metadata constants). What a client sends cannot be trusted, so
// every value it returns is one that audit.Log.Validate accepts, whatever
// the headers held: malformed ones are dropped or replaced, long ones are
// cut.
//
// It works from an http.Header and the address of the connection's peer,
// so that net/http middleware (r.Header, r.RemoteAddr) and RPC
// interceptors that see no *http.Request (a Connect interceptor has
// req.Header() and req.Peer().Addr) read requests the same way:
//
//	md := cfg.Metadata(r.Header, r.RemoteAddr)
//	ctx := audit.SetMetadata(r.Context(), md)
//	w.Header().Set(auditmeta.HeaderRequestID, md[audit.MetadataRequestID])
//
// # The client's address
//
// The recorded ip is the connection's peer unless the peer is one of the
// trusted proxies of the Config; only then is X-Forwarded-For or Forwarded
// read, from the right, and the first hop that is not a trusted proxy is
// the client. See Config.ClientIP.
//
// It serves net/http middleware and Connect interceptors alike, since it
// reads only an http.Header and a peer address. The package uses only
// the standard library, package audit and github.com/google/uuid, the root
// module's dependency.
package auditmeta
