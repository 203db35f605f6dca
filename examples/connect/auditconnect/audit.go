package auditconnect

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

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
	// Its key says "authn", not "auth": "auth" is a word that the Logger's
	// default redaction takes for a credential.
	MetadataAuthError = "authn_error"
	// MetadataPanicked is "true" in the log of a call whose handler
	// panicked; its code is then connect.CodeInternal.
	MetadataPanicked = "panicked"
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
	// LogBeforeSend makes the interceptor write the log of a streaming
	// call when its handler first sends a message, rather than when it
	// returns, so that under FailCall no message leaves unless the log is
	// stored: the Send fails with connect.CodeUnavailable, and so does the
	// call. It is for streaming reads whose data must not leave unaudited,
	// such as exports. The log then records that the data began to leave:
	// its outcome is success and its code CodeOK whatever becomes of the
	// rest of the stream, and it has no MetadataMessagesSent. A call that
	// ends before its first Send is recorded when it returns, as usual.
	// Unary procedures ignore it: their response is held until the log is
	// stored anyway.
	LogBeforeSend bool
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
// The audit log is written once the handler has returned (or, for a
// LogBeforeSend procedure, sent its first message): whatever the call did
// has been done. So the choice is what its caller is told. A store whose
// outcome is unknown is retried first, as Record does: a log that a retry
// finds stored is no failure.
type StoreFailure int

const (
	// FailCall turns a call that succeeded into a connect.CodeUnavailable
	// error wrapping ErrNotAudited. A unary call's response is then not
	// sent. A streaming call's messages are sent as the handler sends
	// them, before the log is written, so they have left by then; only the
	// call's end says Unavailable, unless the procedure is LogBeforeSend.
	// It is the default, and right when no unaudited success may be
	// reported — unary reads of sensitive data, such as the audit trail
	// itself, whose data is then not returned, and streaming ones with
	// LogBeforeSend — and for procedures a client may safely retry
	// (setting a name, deleting).
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
// could not be stored, with the error, under either StoreFailure, once
// Record's retries are spent; it is called on the call's goroutine,
// before the call returns, and must be safe for concurrent use. log is as
// Logger.Record left it: its ID, time, source, org and actor filled in,
// its metadata the interceptor's own (outcome, procedure, code, and what
// the handler added with AddMetadata); the request's metadata is in ctx
// (audit.FromContext). So a handler may store it later with
// logger.Record(ctx, &log), under the same ID — safe also when the error
// wraps audit.ErrMaybeStored, as the log may be stored already — or keep
// both elsewhere. Nil, and the default, writes the error, the log and the
// request's metadata to slog.Default at level Error.
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
// MetadataCode, the code the client is sent (see CodeOf), and for a
// streaming call MetadataMessagesSent. A handler that panics is recorded
// as a failure with connect.CodeInternal and MetadataPanicked, and the
// panic goes on; put connect.WithRecover's interceptor before this one,
// if at all, for that log (after it, this interceptor sees the error
// WithRecover's function returns, not the panic).
//
// The log is stored with Record, which retries a store whose outcome is
// unknown. A handler may write logs of its own with the same Logger, and
// they combine without duplicates: logs of other actions (an operation on
// N entities writes N logs) share the call's request_id with the
// interceptor's; a handler that only knows more about the call adds it
// with AddMetadata; a handler that writes the log of the call's own action
// itself, with details the table cannot name, stores it with Record and
// calls MarkLogged once it is stored, and the interceptor writes none for
// that call; and a procedure whose handler writes every log itself is
// listed as Unaudited.
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

// maybeStoredRetries is how many times Record stores a log again when the
// outcome of its store is unknown.
const maybeStoredRetries = 2

// Record stores l with logger.Record, and stores the same log again, under
// the same ID, when the outcome is unknown (an error wrapping
// audit.ErrMaybeStored), up to twice: an error wrapping
// audit.ErrAlreadyExists on such a retry means an earlier attempt stored
// it, and Record returns nil. Otherwise it returns Logger.Record's last
// error, which still wraps audit.ErrMaybeStored when no attempt could
// tell; treat that log as not stored, since a second log of the event is
// better than none. The retries follow at once: a repository that lost
// its connection gets a fresh one, and one whose commit still waits makes
// the retry wait for it.
//
// The audit interceptor stores its logs with Record; handlers should
// store the log of a call's own action with it too, before they decide
// on MarkLogged.
func Record(ctx context.Context, logger *audit.Logger, l *audit.Log) error {
	err := logger.Record(ctx, l)
	for range maybeStoredRetries {
		if !errors.Is(err, audit.ErrMaybeStored) {
			break
		}
		err = logger.Record(ctx, l)
		if errors.Is(err, audit.ErrAlreadyExists) {
			return nil
		}
	}
	return err
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
	mu     sync.Mutex
	md     map[string]string // from AddMetadata
}

type callKey struct{}

// MarkLogged tells the audit interceptor that the handler of the call
// whose context is ctx has stored the log of the call's action itself,
// so that the interceptor writes none. Call it once that log is stored,
// by Record: if it could not be, leave the interceptor to record the
// call. It reports whether ctx is that of a call the interceptor audits;
// it is safe to call from any goroutine.
func MarkLogged(ctx context.Context) bool {
	c, ok := ctx.Value(callKey{}).(*call)
	if ok {
		c.logged.Store(true)
	}
	return ok
}

// AddMetadata adds md to the metadata of the log that the audit
// interceptor writes for the call whose context is ctx: what its handler
// knows of the call and the table cannot name, such as how many items a
// listing returned. Values are made fit for a log as target fields are
// (see auditmeta.CleanText), cut to audit.MaxMetadataValueLen bytes; the
// keys are the handler's, and must be valid metadata keys. A later call
// wins for the same key, and the interceptor's own keys (outcome,
// procedure, code, messages_sent, panicked) win over md's. md is copied.
//
// Metadata added after the log was written, as after the first Send of a
// LogBeforeSend procedure, is not recorded. It reports whether ctx is
// that of a call the interceptor audits; it is safe to call from any
// goroutine.
func AddMetadata(ctx context.Context, md map[string]string) bool {
	c, ok := ctx.Value(callKey{}).(*call)
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.md == nil {
		c.md = make(map[string]string, len(md))
	}
	for k, v := range md {
		c.md[k] = auditmeta.CleanText(v, audit.MaxMetadataValueLen)
	}
	return true
}

// metadata returns a copy of what AddMetadata added to c.
func (c *call) metadata() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.md)
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
		returned := false
		defer func() {
			if !returned && !c.logged.Load() {
				// next panicked: record the call, and let the panic go on.
				i.record(ctx, spec, p, c, result{req: req.Any(), sent: -1, panicked: true})
			}
		}()
		res, err := next(context.WithValue(ctx, callKey{}, c), req)
		returned = true
		if c.logged.Load() {
			return res, err
		}
		var resMsg any
		if err == nil {
			resMsg = res.Any()
		}
		if i.record(ctx, spec, p, c, result{req: req.Any(), res: resMsg, err: err, sent: -1}) && err == nil {
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
		if p.LogBeforeSend {
			sc.beforeSend = func() bool {
				return i.record(ctx, spec, p, c, result{req: sc.first.Load(), sent: -1})
			}
		}
		returned := false
		defer func() {
			if !returned && !c.logged.Load() && !sc.logged() {
				i.record(ctx, spec, p, c, result{req: sc.first.Load(), sent: sc.sent.Load(), panicked: true})
			}
		}()
		err := next(context.WithValue(ctx, callKey{}, c), sc)
		returned = true
		if c.logged.Load() {
			return err
		}
		var mustFail bool
		if sc.logged() {
			mustFail = sc.failed()
		} else {
			mustFail = i.record(ctx, spec, p, c, result{req: sc.first.Load(), err: err, sent: sc.sent.Load()})
		}
		if mustFail && err == nil {
			return connect.NewError(connect.CodeUnavailable, ErrNotAudited)
		}
		return err
	}
}

// countingConn is a StreamingHandlerConn that keeps the first message
// received, for the target, and counts the messages sent. With
// beforeSend, it calls it before the first Send, and fails every Send
// when it reports that the call must fail.
type countingConn struct {
	connect.StreamingHandlerConn
	first atomic.Value // any: the first message received
	sent  atomic.Int64

	beforeSend func() (fail bool)
	once       sync.Once
	wrote      atomic.Bool // beforeSend was called
	fail       atomic.Bool // and said the call must fail
}

func (c *countingConn) Receive(msg any) error {
	err := c.StreamingHandlerConn.Receive(msg)
	if err == nil && c.first.Load() == nil {
		c.first.CompareAndSwap(nil, msg)
	}
	return err
}

func (c *countingConn) Send(msg any) error {
	if c.beforeSend != nil {
		c.once.Do(func() {
			c.fail.Store(c.beforeSend())
			c.wrote.Store(true)
		})
		if c.fail.Load() {
			return connect.NewError(connect.CodeUnavailable, ErrNotAudited)
		}
	}
	err := c.StreamingHandlerConn.Send(msg)
	if err == nil {
		c.sent.Add(1)
	}
	return err
}

// logged reports whether the call's log was written before its first
// Send.
func (c *countingConn) logged() bool { return c.wrote.Load() }

// failed reports whether the log written before the first Send could not
// be stored, under FailCall.
func (c *countingConn) failed() bool { return c.fail.Load() }

// result is how a call ended, for its log.
type result struct {
	req, res any   // the request message (a stream's first) and the response of a unary call that succeeded
	err      error // the handler's
	sent     int64 // messages a streaming call sent; -1 for a unary call or a log before the first Send
	panicked bool  // the handler panicked
}

// record writes the log of a call of spec's procedure that ended as r,
// with what its handler added to c. It reports whether the call must fail
// because the log could not be stored.
func (i *AuditInterceptor) record(ctx context.Context, spec connect.Spec, p Procedure, c *call, r result) bool {
	action := p.Action
	if action == "" {
		action = strings.ReplaceAll(strings.TrimPrefix(spec.Procedure, "/"), "/", ".")
	}
	var target audit.Target
	if p.Target != nil {
		target = cleanTarget(p.Target(r.req, r.res))
	}
	md := c.metadata()
	if md == nil {
		md = make(map[string]string, 4)
	}
	err := r.err
	if r.panicked {
		err = connect.NewError(connect.CodeInternal, errPanicked)
		md[MetadataPanicked] = "true"
	}
	md[audit.MetadataOutcome] = Outcome(err)
	md[MetadataProcedure] = spec.Procedure
	if err == nil {
		md[MetadataCode] = CodeOK
	} else {
		md[MetadataCode] = CodeOf(err).String()
	}
	if r.sent >= 0 {
		md[MetadataMessagesSent] = strconv.FormatInt(r.sent, 10)
	}
	l := audit.Log{Action: action, Target: target, Metadata: md}
	serr := Record(ctx, i.logger, &l)
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

var errPanicked = errors.New("the handler panicked")

// CodeOf returns the Connect code that the client of a call whose handler
// returned err is sent: that of a *connect.Error err wraps, else the one
// connect-go gives Go's own errors when it writes them —
// connect.CodeCanceled for context.Canceled and for a client that went
// away (a broken pipe, a reset connection), connect.CodeDeadlineExceeded
// for context.DeadlineExceeded and os.ErrDeadlineExceeded — else
// connect.CodeUnknown, as for nil, which connect.CodeOf says too.
// connect.CodeOf alone would say CodeUnknown for the context errors, which
// the client is not told. The errors and messages taken for a client gone
// are those of connect-go v1.21's isClientDisconnected.
func CodeOf(err error) connect.Code {
	if err == nil {
		return connect.CodeUnknown
	}
	var ce *connect.Error
	if errors.As(err, &ce) && ce != nil {
		return ce.Code()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return connect.CodeDeadlineExceeded
	case errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return connect.CodeCanceled
	}
	switch err.Error() {
	case "client disconnected", "http2: stream closed": // the messages connect-go reads as a client gone
		return connect.CodeCanceled
	}
	return connect.CodeUnknown
}

// Outcome returns the audit.MetadataOutcome of a call that ended with
// err: audit.OutcomeSuccess for nil; audit.OutcomeDenied when CodeOf(err)
// is connect.CodePermissionDenied or connect.CodeUnauthenticated;
// audit.OutcomeFailure for any other error.
func Outcome(err error) string {
	if err == nil {
		return audit.OutcomeSuccess
	}
	switch CodeOf(err) {
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
