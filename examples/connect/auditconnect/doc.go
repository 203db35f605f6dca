// Package auditconnect audits the procedures of a Connect-RPC service
// (connectrpc.com/connect) with three interceptors, for a service to copy
// (it needs only connect-go, protobuf and the salt packages audit and
// audit/auditmeta). Importing it from another module needs this module,
// github.com/raystack/salt/examples/connect, and the salt module to be
// resolvable there: the replace directives of this module's go.mod do not
// apply to other modules. The interceptors:
//
//   - NewMetadataInterceptor puts request_id, user_agent, trace_id and ip
//     into each call's context (audit.SetMetadata), reading headers and
//     the peer's address with package auditmeta, and sends the request id
//     back;
//   - NewIdentityInterceptor turns a bearer token into the call's actor
//     and org (audit.SetActor, audit.SetOrgID), or the anonymous actor;
//   - NewAuditInterceptor writes one audit log per call of an audited
//     procedure, from a declarative table of Procedures, with an outcome
//     that follows from the call's Connect code.
//
// They are chained in that order, so that every log, denials included,
// has the caller and the request's metadata:
//
//	interceptors := connect.WithInterceptors(
//		auditconnect.NewMetadataInterceptor(auditmeta.Config{TrustedProxies: proxies}),
//		auditconnect.NewIdentityInterceptor(authenticate),
//		auditconnect.NewAuditInterceptor(logger, auditconnect.Procedures{
//			projectsv1connect.ProjectServiceCreateProjectProcedure: auditconnect.Rule("app.project.created",
//				func(req *projectsv1.CreateProjectRequest, res *projectsv1.CreateProjectResponse) audit.Target {
//					return audit.Target{ID: res.GetProject().GetId(), Type: "project", Name: req.GetName()}
//				}),
//		}),
//	)
//	mux.Handle(projectsv1connect.NewProjectServiceHandler(svc, interceptors))
//
// The interceptors see every protocol a Connect handler serves — Connect,
// gRPC and gRPC-Web — so existing gRPC clients are audited as well.
//
// # Which calls are audited
//
// Every procedure listed in the table, and every procedure that is not
// but may have side effects. A procedure whose proto declares
// idempotency_level = NO_SIDE_EFFECTS is a read, and is audited only when
// the table lists it (reading the audit trail itself should be). So a new
// procedure that changes something is audited from the start, under its
// path as action, until the table names it properly.
//
// # What a handler adds
//
// A handler that knows more about its call than the table can name adds
// it to the interceptor's log with AddMetadata (the number of items a
// listing returned). One that writes the log of the call's own action
// itself stores it with Record and then calls MarkLogged, and the
// interceptor writes none: one log per call either way.
//
// # When the log cannot be stored
//
// The log is written when the handler has returned, so whatever the call
// did has been done. A store whose outcome the repository cannot know
// (audit.ErrMaybeStored) is tried again with the same log, and counts as
// stored when a retry finds it there (Record). A log that still cannot be
// stored is never silent: it goes to an error handler
// (WithErrorHandler), and the StoreFailure option decides whether a call
// that succeeded fails with connect.CodeUnavailable (FailCall, the
// default) or keeps its result (KeepResult). A unary call's response waits
// for its log; a streaming call's messages do not, unless its Procedure is
// LogBeforeSend, whose log is written before the first message is sent. A
// service that must never make a change it could not audit writes the
// change and its log in one transaction instead, in the handler, and marks
// the call with MarkLogged.
//
// # Panics
//
// A handler that panics leaves a log too — a failure, with code internal
// and MetadataPanicked — and the panic goes on, to connect.WithRecover's
// interceptor when that is put before the audit interceptor, else to
// net/http.
package auditconnect
