package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
)

// ErrInvalidQuery is returned by FilterFromQuery when a query parameter
// is unknown, repeated or not valid. The error says which.
var ErrInvalidQuery = errors.New("invalid query")

// Query parameters of GET /audit-logs, and their longest accepted value in
// bytes: a longer one could match no stored log.
var queryParams = map[string]int{
	"action":      audit.MaxActionLen,        // Filter.Action
	"source":      audit.MaxSourceLen,        // Filter.Source
	"actor":       audit.MaxEntityIDLen,      // Filter.ActorID
	"actor_type":  audit.MaxEntityTypeLen,    // Filter.ActorType
	"target":      audit.MaxEntityIDLen,      // Filter.TargetID
	"target_type": audit.MaxEntityTypeLen,    // Filter.TargetType
	"outcome":     len(audit.OutcomeSuccess), // metadata outcome
	"request_id":  auditmeta.MaxRequestIDLen, // metadata request_id
	"since":       64,                        // Filter.Since, RFC 3339
	"until":       64,                        // Filter.Until, RFC 3339
	"limit":       8,                         // Filter.Limit, 1 to audit.MaxLimit
	"cursor":      1024,                      // Filter.Cursor, a next_cursor
}

// FilterFromQuery returns the audit.Filter that the query parameters q of
// GET /audit-logs ask for, or an error wrapping ErrInvalidQuery that names
// the parameter at fault. A Filter it returns without error is valid.
//
// The parameters are action, source, actor (an actor id), actor_type,
// target (a target id), target_type, outcome (success, failure or
// denied), request_id, since and until (RFC 3339 times; since <= created_at
// < until), limit (1 to audit.MaxLimit; audit.DefaultLimit when absent)
// and cursor (the next_cursor of the previous page). Each may be given
// once; an empty value is as good as absent. Any other parameter is an
// error rather than ignored, so that a misspelled one does not silently
// widen the result.
//
// The org is not a parameter: the caller must set Filter.OrgID from the
// identity of whoever asks.
func FilterFromQuery(q url.Values) (audit.Filter, error) {
	var f audit.Filter
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report the same error for the same query
	for _, k := range keys {
		vs := q[k]
		maxLen, known := queryParams[k]
		switch {
		case k == "org_id" || k == "org":
			return f, fmt.Errorf("%w: parameter %q is not accepted: the logs listed are always those of your own org", ErrInvalidQuery, auditmeta.CleanText(k, 64))
		case !known:
			return f, fmt.Errorf("%w: unknown parameter %q", ErrInvalidQuery, auditmeta.CleanText(k, 64))
		case len(vs) > 1:
			return f, fmt.Errorf("%w: parameter %q is given more than once", ErrInvalidQuery, k)
		}
		v := vs[0]
		if v == "" {
			continue
		}
		if len(v) > maxLen {
			return f, fmt.Errorf("%w: parameter %q is longer than %d bytes", ErrInvalidQuery, k, maxLen)
		}
		if auditmeta.CleanText(v, maxLen) != v {
			return f, fmt.Errorf("%w: parameter %q is not printable UTF-8 text", ErrInvalidQuery, k)
		}
		if err := setParam(&f, k, v); err != nil {
			return f, fmt.Errorf("%w: parameter %q %s", ErrInvalidQuery, k, err.Error())
		}
	}
	if err := f.Validate(); err != nil {
		var ve *audit.ValidationError
		if errors.As(err, &ve) {
			return f, fmt.Errorf("%w: %s %s", ErrInvalidQuery, paramOf(ve.Field), ve.Reason)
		}
		return f, fmt.Errorf("%w: %s", ErrInvalidQuery, err.Error())
	}
	return f, nil
}

// setParam sets the field of f that query parameter k, with a non-empty
// value v, stands for; the error says what is wrong with v.
func setParam(f *audit.Filter, k, v string) error {
	switch k {
	case "action":
		f.Action = v
	case "source":
		f.Source = v
	case "actor":
		f.ActorID = v
	case "actor_type":
		f.ActorType = v
	case "target":
		f.TargetID = v
	case "target_type":
		f.TargetType = v
	case "outcome":
		switch v {
		case audit.OutcomeSuccess, audit.OutcomeFailure, audit.OutcomeDenied:
		default:
			return fmt.Errorf("must be %s, %s or %s", audit.OutcomeSuccess, audit.OutcomeFailure, audit.OutcomeDenied)
		}
		setMetadata(f, audit.MetadataOutcome, v)
	case "request_id":
		setMetadata(f, audit.MetadataRequestID, v)
	case "since", "until":
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return errors.New("must be an RFC 3339 time, such as 2024-05-01T12:00:00Z")
		}
		if k == "since" {
			f.Since = t
		} else {
			f.Until = t
		}
	case "limit":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxLimit {
			return fmt.Errorf("must be a whole number from 1 to %d", audit.MaxLimit)
		}
		f.Limit = n
	case "cursor":
		if _, _, err := audit.ParseCursor(v); err != nil {
			return errors.New("is not a cursor: pass the next_cursor of the previous page")
		}
		f.Cursor = v
	}
	return nil
}

func setMetadata(f *audit.Filter, k, v string) {
	if f.Metadata == nil {
		f.Metadata = make(map[string]string, 2)
	}
	f.Metadata[k] = v
}

// paramOf names the query parameter of a field of audit.Filter, as a
// ValidationError names it.
func paramOf(field string) string {
	switch field {
	case "actor_id":
		return "parameter \"actor\""
	case "target_id":
		return "parameter \"target\""
	case "since":
		return "parameter \"since\"" // "is after until"
	}
	return "parameter " + strconv.Quote(field)
}

// auditLogsResponse is the body of a GET /audit-logs response.
type auditLogsResponse struct {
	Logs []audit.Log `json:"logs"`
	// NextCursor continues the listing after this page; "" when this page
	// is the last.
	NextCursor string `json:"next_cursor"`
}

// listAuditLogs handles GET /audit-logs: admins only, and only the logs
// of their own org. Every listing is itself audited, as
// ActionAuditLogListed; when that log cannot be stored, nothing is
// returned.
func (s *Server) listAuditLogs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	target := audit.Target{Type: "audit_log"}
	if !s.requireAdmin(w, r, ActionAuditLogListed, target) {
		return
	}
	org, ok := audit.OrgIDFromContext(ctx)
	if !ok || org == "" {
		// New rejects such principals; never list every org's logs.
		_ = s.record(ctx, ActionAuditLogListed, target, audit.OutcomeDenied, "reason", reasonAdminRequired)
		writeError(w, http.StatusForbidden, "this requires an org")
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	var f audit.Filter
	if err != nil {
		err = fmt.Errorf("%w: the query string is malformed", ErrInvalidQuery)
	} else {
		f, err = FilterFromQuery(q)
	}
	if err != nil {
		_ = s.record(ctx, ActionAuditLogListed, target, audit.OutcomeFailure, "reason", reasonInvalidRequest)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f.OrgID = org // from the caller's identity, never from the query

	logs, err := s.repo.List(ctx, f)
	if err != nil {
		if errors.Is(err, audit.ErrInvalidFilter) {
			_ = s.record(ctx, ActionAuditLogListed, target, audit.OutcomeFailure, "reason", reasonInvalidRequest)
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.errorLog.ErrorContext(ctx, "listing audit logs", "err", err)
		_ = s.record(ctx, ActionAuditLogListed, target, audit.OutcomeFailure, "reason", reasonStorageError)
		writeError(w, http.StatusInternalServerError, "the audit logs could not be read; try again later")
		return
	}
	resp := auditLogsResponse{Logs: logs}
	if resp.Logs == nil {
		resp.Logs = []audit.Log{}
	}
	if len(logs) == f.PageSize() {
		resp.NextCursor = audit.NextCursor(logs)
	}
	if err := s.record(ctx, ActionAuditLogListed, target, audit.OutcomeSuccess,
		"query", auditmeta.CleanText(q.Encode(), audit.MaxMetadataValueLen), "count", strconv.Itoa(len(logs))); err != nil {
		writeAuditUnavailable(w)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}
