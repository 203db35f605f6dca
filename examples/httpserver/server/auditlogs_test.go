package server

import (
	"errors"
	"maps"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

func TestFilterFromQuery(t *testing.T) {
	cursor := audit.NextCursor([]audit.Log{{ID: "01", CreatedAt: time.Unix(100, 0)}})
	q := url.Values{
		"action": {"app.project.created"}, "source": {"projects-api"},
		"actor": {"user-alice"}, "actor_type": {"user"},
		"target": {"p1"}, "target_type": {"project"},
		"outcome": {"denied"}, "request_id": {"r-1"},
		"since": {"2024-05-01T12:00:00Z"}, "until": {"2024-05-02T00:00:00.5+02:00"},
		"limit": {"25"}, "cursor": {cursor},
	}
	got, err := FilterFromQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	want := audit.Filter{
		Action: "app.project.created", Source: "projects-api",
		ActorID: "user-alice", ActorType: "user",
		TargetID: "p1", TargetType: "project",
		Metadata: map[string]string{"outcome": "denied", "request_id": "r-1"},
		Since:    time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
		Until:    time.Date(2024, 5, 1, 22, 0, 0, 5e8, time.UTC),
		Limit:    25, Cursor: cursor,
	}
	if !maps.Equal(got.Metadata, want.Metadata) || !got.Since.Equal(want.Since) || !got.Until.Equal(want.Until) ||
		got.Action != want.Action || got.Source != want.Source ||
		got.ActorID != want.ActorID || got.ActorType != want.ActorType ||
		got.TargetID != want.TargetID || got.TargetType != want.TargetType ||
		got.Limit != want.Limit || got.Cursor != want.Cursor || got.OrgID != "" {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	if got, err := FilterFromQuery(url.Values{"action": {""}, "limit": {""}}); err != nil || got.Action != "" || got.Limit != 0 {
		t.Fatalf("got %+v, %v for empty values, want them ignored", got, err)
	}
}

func TestFilterFromQueryErrors(t *testing.T) {
	for _, tt := range []struct {
		query string
		want  string // in the message
	}{
		{"org_id=globex", `"org_id" is not accepted`},
		{"acton=x", `unknown parameter "acton"`},
		{"action=a&action=b", `"action" is given more than once`},
		{"limit=0", `"limit" must be a whole number from 1 to 1000`},
		{"limit=-1", `"limit" must be`},
		{"limit=1001", `"limit" must be`},
		{"limit=ten", `"limit" must be`},
		{"since=yesterday", `"since" must be an RFC 3339 time`},
		{"until=2024-05-01", `"until" must be an RFC 3339 time`},
		{"since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z", `"since" is after until`},
		{"cursor=abc", `"cursor" is not a cursor`},
		{"outcome=maybe", `"outcome" must be success, failure or denied`},
		{"actor=%00", `"actor" is not printable UTF-8 text`},
		{"target=%FF", `"target" is not printable UTF-8 text`},
		{"action=" + strings.Repeat("a", 257), `"action" is longer than 256 bytes`},
		{"%FF=1", "unknown parameter \"\uFFFD\""},
	} {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = FilterFromQuery(q)
			if !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("got %v, want an error wrapping ErrInvalidQuery", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, want it to say %q", err, tt.want)
			}
		})
	}
}
