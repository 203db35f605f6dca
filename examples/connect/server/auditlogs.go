package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
)

// invalidArgument returns an error with connect.CodeInvalidArgument whose
// message names field, the proto name of a request field, and says what is
// wrong with it; a google.rpc.BadRequest detail says the same for
// programs.
func invalidArgument(field, reason string) error {
	err := connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s %s", field, reason))
	if d, derr := connect.NewErrorDetail(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: reason}},
	}); derr == nil {
		err.AddDetail(d)
	}
	return err
}

// filterField is a string field of ListAuditLogsRequest and its longest
// accepted value in bytes: a longer one could match no stored log.
type filterField struct {
	name   string
	value  string
	maxLen int
	set    func(*audit.Filter, string)
}

func metadataSetter(key string) func(*audit.Filter, string) {
	return func(f *audit.Filter, v string) {
		if f.Metadata == nil {
			f.Metadata = make(map[string]string, 2)
		}
		f.Metadata[key] = v
	}
}

// FilterFromRequest returns the audit.Filter that req asks for, without its
// org, or an error with connect.CodeInvalidArgument that names the field
// at fault. A Filter it returns is valid once its OrgID is set. The caller
// must set OrgID from the identity of whoever asks; req.OrgId is not read.
func FilterFromRequest(req *projectsv1.ListAuditLogsRequest) (audit.Filter, error) {
	var f audit.Filter
	for _, fl := range []filterField{
		{"action", req.GetAction(), audit.MaxActionLen, func(f *audit.Filter, v string) { f.Action = v }},
		{"source", req.GetSource(), audit.MaxSourceLen, func(f *audit.Filter, v string) { f.Source = v }},
		{"actor_id", req.GetActorId(), audit.MaxEntityIDLen, func(f *audit.Filter, v string) { f.ActorID = v }},
		{"actor_type", req.GetActorType(), audit.MaxEntityTypeLen, func(f *audit.Filter, v string) { f.ActorType = v }},
		{"target_id", req.GetTargetId(), audit.MaxEntityIDLen, func(f *audit.Filter, v string) { f.TargetID = v }},
		{"target_type", req.GetTargetType(), audit.MaxEntityTypeLen, func(f *audit.Filter, v string) { f.TargetType = v }},
		{"outcome", req.GetOutcome(), len(audit.OutcomeSuccess), metadataSetter(audit.MetadataOutcome)},
		{"request_id", req.GetRequestId(), auditmeta.MaxRequestIDLen, metadataSetter(audit.MetadataRequestID)},
	} {
		if fl.value == "" {
			continue
		}
		if len(fl.value) > fl.maxLen {
			return f, invalidArgument(fl.name, fmt.Sprintf("is longer than %d bytes", fl.maxLen))
		}
		if auditmeta.CleanText(fl.value, fl.maxLen) != fl.value {
			return f, invalidArgument(fl.name, "is not printable text")
		}
		fl.set(&f, fl.value)
	}
	switch o := req.GetOutcome(); o {
	case "", audit.OutcomeSuccess, audit.OutcomeFailure, audit.OutcomeDenied:
	default:
		return f, invalidArgument("outcome", fmt.Sprintf("must be %s, %s or %s", audit.OutcomeSuccess, audit.OutcomeFailure, audit.OutcomeDenied))
	}
	var err error
	if f.Since, err = timeField("since", req.GetSince()); err != nil {
		return f, err
	}
	if f.Until, err = timeField("until", req.GetUntil()); err != nil {
		return f, err
	}
	if n := req.GetPageSize(); n < 0 || n > audit.MaxLimit {
		return f, invalidArgument("page_size", fmt.Sprintf("must be from 0 to %d", audit.MaxLimit))
	}
	f.Limit = int(req.GetPageSize())
	if tok := req.GetPageToken(); tok != "" {
		if _, _, err := audit.ParseCursor(tok); err != nil {
			return f, invalidArgument("page_token", "is not a page token: pass the next_page_token of the previous page")
		}
		f.Cursor = tok
	}
	if err := f.Validate(); err != nil {
		var ve *audit.ValidationError
		if errors.As(err, &ve) {
			return f, invalidArgument(requestField(ve.Field), ve.Reason)
		}
		return f, invalidArgument("request", err.Error())
	}
	return f, nil
}

// timeField returns the time of ts, the request field name, or the zero
// time when ts is not set.
func timeField(name string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, invalidArgument(name, "is not a valid timestamp")
	}
	return ts.AsTime(), nil
}

// requestField names the field of ListAuditLogsRequest that a field of
// audit.Filter, as a ValidationError names it, comes from. Most cannot
// reach Filter.Validate unchecked; since after until does.
func requestField(field string) string {
	switch field {
	case "limit":
		return "page_size"
	case "cursor":
		return "page_token"
	case "metadata[" + strconv.Quote(audit.MetadataOutcome) + "]":
		return "outcome"
	case "metadata[" + strconv.Quote(audit.MetadataRequestID) + "]":
		return "request_id"
	}
	return field
}

// Metadata keys of the log of a ListAuditLogs call, besides the
// interceptor's.
const (
	// MetadataFilter is what the call asked for: the request's fields
	// that were set, as a URL query sorted by name ("outcome=denied&
	// page_size=10"), with times in RFC 3339; cleaned and cut to
	// audit.MaxMetadataValueLen bytes. A request naming another org shows
	// it here, in the log of its denial.
	MetadataFilter = "filter"
	// MetadataCount is the number of logs a listing returned, in decimal.
	MetadataCount = "count"
)

// filterText returns the MetadataFilter of req.
func filterText(req *projectsv1.ListAuditLogsRequest) string {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("org_id", req.GetOrgId())
	set("action", req.GetAction())
	set("source", req.GetSource())
	set("actor_id", req.GetActorId())
	set("actor_type", req.GetActorType())
	set("target_id", req.GetTargetId())
	set("target_type", req.GetTargetType())
	set("outcome", req.GetOutcome())
	set("request_id", req.GetRequestId())
	for k, ts := range map[string]*timestamppb.Timestamp{"since": req.GetSince(), "until": req.GetUntil()} {
		if ts != nil {
			set(k, ts.AsTime().Format(time.RFC3339Nano))
		}
	}
	if n := req.GetPageSize(); n != 0 {
		set("page_size", strconv.Itoa(int(n)))
	}
	set("page_token", req.GetPageToken())
	return q.Encode()
}

// ListAuditLogs implements projectsv1connect.ProjectServiceHandler: the
// logs of the caller's org, to admins only.
func (s *Server) ListAuditLogs(ctx context.Context, req *connect.Request[projectsv1.ListAuditLogsRequest]) (*connect.Response[projectsv1.ListAuditLogsResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	// What was asked goes into the call's log, denials and bad filters
	// included.
	auditconnect.AddMetadata(ctx, map[string]string{MetadataFilter: filterText(req.Msg)})
	if err := c.requireAdmin(); err != nil {
		return nil, err
	}
	if org := req.Msg.GetOrgId(); org != "" && org != c.org {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("org_id must be your own org: the logs of another org are not yours to read"))
	}
	f, err := FilterFromRequest(req.Msg)
	if err != nil {
		return nil, err
	}
	f.OrgID = c.org // from the caller's identity, never from the request
	logs, err := s.repo.List(ctx, f)
	if err != nil {
		if errors.Is(err, audit.ErrInvalidFilter) {
			return nil, invalidArgument("request", err.Error())
		}
		s.errorLog.ErrorContext(ctx, "listing audit logs", "err", err)
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("the audit logs could not be read; try again later"))
	}
	res := &projectsv1.ListAuditLogsResponse{AuditLogs: make([]*projectsv1.AuditLog, len(logs))}
	for i, l := range logs {
		res.AuditLogs[i] = logProto(l)
	}
	if len(logs) == f.PageSize() {
		res.NextPageToken = audit.NextCursor(logs)
	}
	auditconnect.AddMetadata(ctx, map[string]string{MetadataCount: strconv.Itoa(len(logs))})
	return connect.NewResponse(res), nil
}

// logProto returns l as a message.
func logProto(l audit.Log) *projectsv1.AuditLog {
	return &projectsv1.AuditLog{
		Id: l.ID, OrgId: l.OrgID, Source: l.Source, Action: l.Action,
		Actor:      &projectsv1.Actor{Id: l.Actor.ID, Type: l.Actor.Type, Name: l.Actor.Name},
		Target:     &projectsv1.Target{Id: l.Target.ID, Type: l.Target.Type, Name: l.Target.Name},
		Metadata:   l.Metadata,
		CreateTime: timestamppb.New(l.CreatedAt),
	}
}
