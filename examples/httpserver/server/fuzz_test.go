package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/raystack/salt/audit"
)

// discardRepository stores nothing and lists from a fixed repository, so
// that fuzzing the list endpoint does not fill memory.
type discardRepository struct{ audit.Repository }

func (discardRepository) Create(_ context.Context, l *audit.Log) error { return l.Validate() }

// FuzzFilterFromQuery checks that any query string either gives a valid
// Filter that lists without error, or an ErrInvalidQuery with a readable
// message; and that GET /audit-logs answers it 200 or 400, never 500.
func FuzzFilterFromQuery(f *testing.F) {
	cursor := audit.NextCursor([]audit.Log{{ID: "01", CreatedAt: time.Unix(100, 0)}})
	f.Add("action=app.project.created&limit=10")
	f.Add("since=2024-05-01T12:00:00Z&until=2024-05-01T11:00:00Z")
	f.Add("cursor=" + cursor + "&outcome=denied&request_id=r")
	f.Add("org_id=acme&limit=0")
	f.Add("actor=%00&target=%FF")
	f.Add("limit=1000&since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59.999999999Z")
	f.Add("%zz")

	mem := audit.NewMemoryRepository()
	lg := audit.NewLogger(mem, audit.WithSource("seed"))
	ctx := audit.SetOrgID(audit.SetActor(context.Background(), anonymous), "acme")
	for range 3 {
		if err := lg.Log(ctx, ActionProjectCreated, audit.Target{ID: "p", Type: "project"}); err != nil {
			f.Fatal(err)
		}
	}
	srv, err := New(Config{Repository: discardRepository{mem}, Tokens: DemoTokens()})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		wantStatus := http.StatusBadRequest
		if q, err := url.ParseQuery(raw); err == nil {
			flt, err := FilterFromQuery(q)
			if err != nil {
				if !errors.Is(err, ErrInvalidQuery) || !utf8.ValidString(err.Error()) {
					t.Fatalf("got error %q, want a readable ErrInvalidQuery", err)
				}
			} else {
				flt.OrgID = "acme"
				if err := flt.Validate(); err != nil {
					t.Fatalf("got an invalid filter %+v from %q: %v", flt, raw, err)
				}
				if _, err := mem.List(context.Background(), flt); err != nil {
					t.Fatalf("List(%+v): %v", flt, err)
				}
				wantStatus = http.StatusOK
			}
		}
		r := httptest.NewRequest(http.MethodGet, "/audit-logs", nil)
		r.URL.RawQuery = raw
		r.Header.Set("Authorization", "Bearer demo-alice")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != wantStatus {
			t.Fatalf("got status %d (%s) for %q, want %d", w.Code, w.Body, raw, wantStatus)
		}
	})
}
