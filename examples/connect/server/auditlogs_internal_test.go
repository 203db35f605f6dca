package server

import (
	"errors"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

// TestRequestField checks that each field Filter.Validate can name is
// mapped to the request field it came from, as Validate names it, even
// where FilterFromRequest's own checks leave Validate nothing to find.
func TestRequestField(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		f    audit.Filter
		want string
	}{
		{audit.Filter{Metadata: map[string]string{audit.MetadataOutcome: "a\x00"}}, "outcome"},
		{audit.Filter{Metadata: map[string]string{audit.MetadataRequestID: "a\x00"}}, "request_id"},
		{audit.Filter{Limit: -1}, "page_size"},
		{audit.Filter{Cursor: "garbage"}, "page_token"},
		{audit.Filter{Since: now, Until: now.Add(-time.Hour)}, "since"},
		{audit.Filter{ActorID: "a\x00"}, "actor_id"},
	} {
		var ve *audit.ValidationError
		if err := tt.f.Validate(); !errors.As(err, &ve) {
			t.Fatalf("%+v: got %v, want a ValidationError", tt.f, err)
		}
		if got := requestField(ve.Field); got != tt.want {
			t.Errorf("requestField(%q) = %q, want %q", ve.Field, got, tt.want)
		}
	}
}
