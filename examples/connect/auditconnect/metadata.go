package auditconnect

import (
	"context"
	"slices"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
)

// NewMetadataInterceptor returns an interceptor that puts the well-known
// request metadata of each call — request_id, user_agent, trace_id and
// ip — into its context with audit.SetMetadata, and sends the request id
// back in the auditmeta.HeaderRequestID response header, on success and
// error alike. Put it first in the chain, so that every log of the call,
// denials included, carries the metadata.
//
// cfg says which proxies are trusted to name the client's address, and
// how request ids are made; the interceptor keeps its own copy of
// cfg.TrustedProxies, so the caller may reuse the slice; auditmeta.Config.Metadata says what is read
// and how hostile header values are cleaned, so that no client can make
// the audit log of its call invalid. The peer is the connection's remote
// address, connect.Peer.Addr.
//
// It acts on handlers only, unary and streaming; on clients it does
// nothing. It panics if cfg is not valid (see auditmeta.Config.Validate).
func NewMetadataInterceptor(cfg auditmeta.Config) connect.Interceptor {
	if err := cfg.Validate(); err != nil {
		panic("auditconnect: NewMetadataInterceptor: " + err.Error())
	}
	cfg.TrustedProxies = slices.Clone(cfg.TrustedProxies)
	return &metadataInterceptor{cfg: cfg}
}

type metadataInterceptor struct {
	cfg auditmeta.Config
}

func (m *metadataInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		md := m.cfg.Metadata(req.Header(), req.Peer().Addr)
		id := md[audit.MetadataRequestID]
		// The call's CallInfo holds the response headers of a unary
		// handler, which are sent with an error as with a response.
		info, ok := connect.CallInfoForHandlerContext(ctx)
		if ok {
			info.ResponseHeader().Set(auditmeta.HeaderRequestID, id)
		}
		res, err := next(audit.SetMetadata(ctx, md), req)
		if !ok && res != nil {
			res.Header().Set(auditmeta.HeaderRequestID, id)
		}
		return res, err
	}
}

func (m *metadataInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (m *metadataInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		md := m.cfg.Metadata(conn.RequestHeader(), conn.Peer().Addr)
		conn.ResponseHeader().Set(auditmeta.HeaderRequestID, md[audit.MetadataRequestID])
		return next(audit.SetMetadata(ctx, md), conn)
	}
}
