package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/raystack/salt/audit"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/server"
)

// requestFields are the names of the fields of ListAuditLogsRequest that
// an InvalidArgument error may name.
var requestFields = []string{"action", "source", "actor_id", "actor_type", "target_id", "target_type",
	"outcome", "request_id", "since", "until", "page_size", "page_token"}

// FuzzFilterFromRequest checks that any ListAuditLogsRequest either gives
// a Filter that is valid and lists without error, or an InvalidArgument
// error whose readable message begins with the name of a field.
func FuzzFilterFromRequest(f *testing.F) {
	cursor := audit.NextCursor([]audit.Log{{ID: "01", CreatedAt: timestamppb.Now().AsTime()}})
	f.Add("app.project.created", "success", "req-1", cursor, int32(10), int64(0), int32(0), int64(0), int32(0))
	f.Add("", "maybe", "a b", "garbage", int32(-1), int64(100), int32(0), int64(50), int32(0))
	f.Add("\x00", "", "", "", int32(1001), int64(1), int32(2e9), int64(1<<62), int32(0))
	f.Add(strings.Repeat("a", 300), "denied", strings.Repeat("r", 200), "", int32(0), int64(-62135596800), int32(0), int64(253402300799), int32(999999999))
	repo := audit.NewMemoryRepository()
	f.Fuzz(func(t *testing.T, action, outcome, requestID, token string, pageSize int32, sinceS int64, sinceN int32, untilS int64, untilN int32) {
		req := &projectsv1.ListAuditLogsRequest{
			Action: action, ActorId: action, Outcome: outcome, RequestId: requestID, PageToken: token, PageSize: pageSize,
		}
		if sinceS != 0 || sinceN != 0 {
			req.Since = &timestamppb.Timestamp{Seconds: sinceS, Nanos: sinceN}
		}
		if untilS != 0 || untilN != 0 {
			req.Until = &timestamppb.Timestamp{Seconds: untilS, Nanos: untilN}
		}
		flt, err := server.FilterFromRequest(req)
		if err != nil {
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || !utf8.ValidString(ce.Message()) {
				t.Fatalf("got %v, want a readable InvalidArgument", err)
			}
			for _, name := range requestFields {
				if strings.HasPrefix(ce.Message(), name+" ") {
					return
				}
			}
			t.Fatalf("got message %q, naming no field", ce.Message())
		}
		flt.OrgID = "acme"
		if err := flt.Validate(); err != nil {
			t.Fatalf("got an invalid filter %+v: %v", flt, err)
		}
		if _, err := repo.List(context.Background(), flt); err != nil {
			t.Fatalf("List(%+v): %v", flt, err)
		}
	})
}
