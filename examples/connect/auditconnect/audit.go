package auditconnect

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
)

// Metadata keys the interceptors write, besides the well-known ones of
// package audit.
const (
	// MetadataProcedure is the procedure called, such as
	// "/projects.v1.ProjectService/CreateProject".
	MetadataProcedure = "procedure"
	// MetadataCode is the call's Connect code, as connect.Code.String
	// writes it ("permission_denied"), or CodeOK for a call that succeeded.
	MetadataCode = "code"
	// MetadataMessagesSent is the number of messages a streaming call sent
	// its client, in decimal.
	MetadataMessagesSent = "messages_sent"
	// MetadataAuthError is why the caller is anonymous: AuthMissingToken or
	// AuthInvalidToken. Callers with a valid token have none.
	MetadataAuthError = "auth_error"
)

// CodeOK is the MetadataCode of a call that succeeded; Connect has no
// code for it.
const CodeOK = "ok"

// ErrNotAudited is the cause of the connect.CodeUnavailable error of a
// call whose audit log could not be stored, under FailCall.
var ErrNotAudited = errors.New("auditconnect: the call's audit log could not be stored")

var errUnauthenticated = errors.New("a valid bearer token is required")

// Procedure says how the audit interceptor records the calls of one
// procedure.
type Procedure struct {
	// Action is the audit action of every call, such as
	// "app.project.created". "" means the procedure's path, with the
	// slashes made dots: "projects.v1.ProjectService.CreateProject".
	Action string
	// Target names the entity a call acted on, from req, the request
	// message (of a streaming call, the message its first Receive filled;
	// nil when none was), and res, the response message of a unary call that succeeded
	// (nil otherwise). Nil means no target. Values too long for a log are
	// cut and text that is not valid is made so, since a request's fields
	// are the client's to choose. Target must be safe for concurrent use.
	Target func(req, res any) audit.Target
	// OnStoreFailure overrides the interceptor's StoreFailure for this
	// procedure; 0 keeps it.
	OnStoreFailure StoreFailure
	// Unaudited makes the interceptor write no log for the procedure, for
	// one whose handler writes all of its logs itself.
	Unaudited bool
}

// Procedures maps each procedure, such as
// projectsv1connect.ProjectServiceCreateProjectProcedure, to how its calls
// are recorded. See NewAuditInterceptor for the procedures not listed.
type Procedures map[string]Procedure

// Rule returns the Procedure that records action, with a target named by
// target from the typed request and response messages of the procedure.
// A message that is absent, or of another type, is passed as nil;
// protobuf getters read nil messages as empty, so target can read
// res.GetProject().GetId() without checks. A nil target means no target.
func Rule[Req, Res any](action string, target func(req *Req, res *Res) audit.Target) Procedure {
	p := Procedure{Action: action}
	if target != nil {
		p.Target = func(req, res any) audit.Target {
			q, _ := req.(*Req)
			s, _ := res.(*Res)
			return target(q, s)
		}
	}
	return p
}

// StoreFailure says what becomes of a call whose audit log could not be
// stored. Whichever is chosen, the error and the log are handed to the
// error handler (see WithErrorHandler), so that the event is never lost
// silently; and a call that failed keeps its own error, since it changed
// nothing.
//
// The audit log is written once the handler has returned: whatever the
// call did has been done. So the choice is what its caller is told.
type StoreFailure int

const (
	// FailCall turns a call that succeeded into a connect.CodeUnavailable
	// error wrapping ErrNotAudited; its response is not sent (a streaming
	// call's messages already are). It is the default, and right when no
	// unaudited success may be reported — reads of sensitive data, such as
	// the audit trail itself, whose data is then not returned — and for
	// procedures a client may safely retry (setting a name, deleting).
	FailCall StoreFailure = iota + 1
	// KeepResult lets the call's result stand and only reports the error.
	// It is right when telling the client that the call failed would be
	// false and a retry would repeat the action, as for a create that is
	// not idempotent; the error handler must then keep the event, say by
	// writing the log where operators collect what must be re-stored.
	KeepResult
)

// AuditInterceptor writes one audit log per call of an audited procedure
// of a Connect handler. Make one with NewAuditInterceptor. It is safe for
// concurrent use.
type AuditInterceptor struct {
	logger      *audit.Logger
	procedures  Procedures
	onFailure   StoreFailure
	handleError func(ctx context.Context, log audit.Log, err error)
}

// AuditOption configures an AuditInterceptor.
type AuditOption func(*AuditInterceptor)

// WithStoreFailure sets what becomes of a call whose log could not be
// stored; the default is FailCall. It panics on any other value than
// FailCall or KeepResult.
func WithStoreFailure(f StoreFailure) AuditOption {
	if f != FailCall && f != KeepResult {
		panic("auditconnect: WithStoreFailure(" + strconv.Itoa(int(f)) + "): want FailCall or KeepResult")
	}
	return func(i *AuditInterceptor) { i.onFailure = f }
}

// WithErrorHandler sets the function that is handed every audit log that
// could not be stored, with the error, under either StoreFailure; it is
// called on the call's goroutine, before the call returns, and must be
// safe for concurrent use. log is as Logger.Record left it: its ID, time,
// source, org and actor filled in, its metadata the interceptor's own
// (outcome, procedure, code); the request's metadata is in ctx
// (audit.FromContext). So a handler may retry with
// logger.Record(ctx, &log), the safe retry when the error wraps
// audit.ErrMaybeStored, or keep both elsewhere. Nil, and the default,
// writes the error, the log and the request's metadata to slog.Default at
// level Error.
func WithErrorHandler(h func(ctx context.Context, log audit.Log, err error)) AuditOption {
	return func(i *AuditInterceptor) {
		if h != nil {
			i.handleError = h
		}
	}
}

// NewAuditInterceptor returns an interceptor that writes, with logger, one
// audit log for each call of an audited procedure, once its handler has
// returned. Put it last in the chain, after NewMetadataInterceptor and
// NewIdentityInterceptor, whose actor, org and metadata the log takes from
// the call's context.
//
// A procedure is audited when procedures lists it, unless its entry is
// Unaudited; and when procedures does not list it, unless its proto
// declares it free of side effects (idempotency_level = NO_SIDE_EFFECTS,
// read from the handler's Spec and its method descriptor). So reads are
// not audited unless listed, and a procedure with side effects that
// nobody listed is still audited, under its path as action.
//
// The log's outcome (audit.MetadataOutcome) follows from the handler's
// error: nil is audit.OutcomeSuccess; connect.CodePermissionDenied and
// connect.CodeUnauthenticated are audit.OutcomeDenied; any other error is
// audit.OutcomeFailure. Its metadata also holds MetadataProcedure and
// MetadataCode, and for a streaming call MetadataMessagesSent.
//
// A handler may write logs of its own with the same Logger, and they
// combine without duplicates: logs of other actions (an operation on N
// entities writes N logs) share the call's request_id with the
// interceptor's; a handler that writes the log of the call's own action
// itself, with details the table cannot name, calls MarkLogged once that
// log is stored, and the interceptor writes none for that call; and a
// procedure whose handler writes every log itself is listed as Unaudited.
//
// It acts on handlers only; on clients it does nothing. It panics if
// logger is nil or a Procedure's OnStoreFailure is not valid.
func NewAuditInterceptor(logger *audit.Logger, procedures Procedures, opts ...AuditOption) *AuditInterceptor {
	if logger == nil {
		panic("auditconnect: NewAuditInterceptor with a nil Logger")
	}
	i := &AuditInterceptor{logger: logger, procedures: make(Procedures, len(procedures)), onFailure: FailCall}
	for k, p := range procedures {
		if p.OnStoreFailure != 0 && p.OnStoreFailure != FailCall && p.OnStoreFailure != KeepResult {
			panic("auditconnect: procedure " + k + ": OnStoreFailure is not 0, FailCall or KeepResult")
		}
		i.procedures[k] = p
	}
	for _, o := range opts {
		o(i)
	}
	if i.handleError == nil {
		i.handleError = logStoreError
	}
	return i
}

func logStoreError(ctx context.Context, l audit.Log, err error) {
	slog.Default().ErrorContext(ctx, "audit log not stored", "err", err, "audit", l, "request", audit.FromContext(ctx).Metadata)
}

// procedure returns how calls of spec's procedure are recorded, and
// whether they are.
func (i *AuditInterceptor) procedure(spec connect.Spec) (Procedure, bool) {
	if p, ok := i.procedures[spec.Procedure]; ok {
		return p, !p.Unaudited
	}
	return Procedure{}, !noSideEffects(spec)
}

// noSideEffects reports whether the proto of spec's procedure declares
// idempotency_level = NO_SIDE_EFFECTS: in the Spec, as generated handlers
// set it, or in the method descriptor of its Schema, for handlers built
// without that option.
func noSideEffects(spec connect.Spec) bool {
	if spec.IdempotencyLevel == connect.IdempotencyNoSideEffects {
		return true
	}
	md, ok := spec.Schema.(protoreflect.MethodDescriptor)
	if !ok {
		return false
	}
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	return ok && opts.GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS
}

// call is the state of one audited call that its handler can reach
// through the context.
type call struct {
	logged atomic.Bool
}

type callKey struct{}

// MarkLogged tells the audit interceptor that the handler of the call
// whose context is ctx has stored the log of the call's action itself,
// so that the interceptor writes none. Call it once that log is stored:
// if it could not be, leave the interceptor to record the call. It reports
// whether ctx is that of a call the interceptor audits; it is safe to call
// from any goroutine.
func MarkLogged(ctx context.Context) bool {
	c, ok := ctx.Value(callKey{}).(*call)
	if ok {
		c.logged.Store(true)
	}
	return ok
}

// WrapUnary implements connect.Interceptor.
func (i *AuditInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		spec := req.Spec()
		if spec.IsClient {
			return next(ctx, req)
		}
		p, audited := i.procedure(spec)
		if !audited {
			return next(ctx, req)
		}
		c := &call{}
		res, err := next(context.WithValue(ctx, callKey{}, c), req)
		if c.logged.Load() {
			return res, err
		}
		var resMsg any
		if err == nil {
			resMsg = res.Any()
		}
		if i.record(ctx, spec, p, req.Any(), resMsg, err, -1) && err == nil {
			return nil, connect.NewError(connect.CodeUnavailable, ErrNotAudited)
		}
		return res, err
	}
}

// WrapStreamingClient implements connect.Interceptor: clients are not
// audited.
func (i *AuditInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (i *AuditInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		spec := conn.Spec()
		p, audited := i.procedure(spec)
		if !audited {
			return next(ctx, conn)
		}
		c := &call{}
		sc := &countingConn{StreamingHandlerConn: conn}
		err := next(context.WithValue(ctx, callKey{}, c), sc)
		if c.logged.Load() {
			return err
		}
		if i.record(ctx, spec, p, sc.first.Load(), nil, err, sc.sent.Load()) && err == nil {
			return connect.NewError(connect.CodeUnavailable, ErrNotAudited)
		}
		return err
	}
}

// countingConn is a StreamingHandlerConn that keeps the first message
// received, for the target, and counts the messages sent.
type countingConn struct {
	connect.StreamingHandlerConn
	first atomic.Value // any: the first message received
	sent  atomic.Int64
}

func (c *countingConn) Receive(msg any) error {
	err := c.StreamingHandlerConn.Receive(msg)
	if err == nil && c.first.Load() == nil {
		c.first.CompareAndSwap(nil, msg)
	}
	return err
}

func (c *countingConn) Send(msg any) error {
	err := c.StreamingHandlerConn.Send(msg)
	if err == nil {
		c.sent.Add(1)
	}
	return err
}

// record writes the log of a call of spec's procedure that ended with
// err, sent messages for a streaming call (-1 for a unary one). It
// reports whether the call must fail because the log could not be stored.
func (i *AuditInterceptor) record(ctx context.Context, spec connect.Spec, p Procedure, req, res any, err error, sent int64) bool {
	action := p.Action
	if action == "" {
		action = strings.ReplaceAll(strings.TrimPrefix(spec.Procedure, "/"), "/", ".")
	}
	var target audit.Target
	if p.Target != nil {
		target = cleanTarget(p.Target(req, res))
	}
	n := 3
	if sent >= 0 {
		n++
	}
	md := make(map[string]string, n)
	md[audit.MetadataOutcome] = Outcome(err)
	md[MetadataProcedure] = spec.Procedure
	if err == nil {
		md[MetadataCode] = CodeOK
	} else {
		md[MetadataCode] = connect.CodeOf(err).String()
	}
	if sent >= 0 {
		md[MetadataMessagesSent] = strconv.FormatInt(sent, 10)
	}
	l := audit.Log{Action: action, Target: target, Metadata: md}
	serr := i.logger.Record(ctx, &l)
	if serr == nil {
		return false
	}
	i.handleError(ctx, l, serr)
	f := p.OnStoreFailure
	if f == 0 {
		f = i.onFailure
	}
	return f == FailCall
}

// Outcome returns the audit.MetadataOutcome of a call that ended with
// err: audit.OutcomeSuccess for nil; audit.OutcomeDenied for
// connect.CodePermissionDenied and connect.CodeUnauthenticated;
// audit.OutcomeFailure for any other error.
func Outcome(err error) string {
	if err == nil {
		return audit.OutcomeSuccess
	}
	switch connect.CodeOf(err) {
	case connect.CodePermissionDenied, connect.CodeUnauthenticated:
		return audit.OutcomeDenied
	}
	return audit.OutcomeFailure
}

// cleanTarget makes t fit for a log, whatever the client put in the
// request fields it was named from.
func cleanTarget(t audit.Target) audit.Target {
	t.ID = auditmeta.CleanText(t.ID, audit.MaxEntityIDLen)
	t.Type = auditmeta.CleanText(t.Type, audit.MaxEntityTypeLen)
	t.Name = auditmeta.CleanText(t.Name, audit.MaxEntityNameLen)
	return t
}
