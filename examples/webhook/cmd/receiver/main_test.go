package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/webhook"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// TestReceiverPrintsEachLogOnce sends logs to the command's handler with a
// Publisher, one of them twice, and reads them back from its output.
func TestReceiverPrintsEachLogOnce(t *testing.T) {
	secret := webhook.NewSecret()
	var out syncBuffer
	h, err := newHandler([]string{secret}, &out)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	pub, err := webhook.NewPublisher([]webhook.Endpoint{{URL: srv.URL + "/webhooks/audit", Secrets: []string{secret}}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.CloseIdleConnections()

	logs := []audit.Log{
		{ID: "01956a2e-4c00-7000-8000-000000000001", Source: "frontier", Action: "app.user.created",
			Actor: audit.Actor{Type: audit.ActorTypeUser, ID: "u-1"}, CreatedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)},
		{ID: "01956a2e-4c00-7000-8000-000000000002", Source: "frontier", Action: "app.user.deleted",
			Actor: audit.Actor{Type: audit.ActorTypeUser, ID: "u-1"}, CreatedAt: time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC)},
	}
	for _, l := range append(logs, logs[0]) {
		if err := pub.Publish(context.Background(), l); err != nil {
			t.Fatalf("Publish %s: %v", l.ID, err)
		}
	}

	dec := json.NewDecoder(bytes.NewReader(out.Bytes()))
	var got []string
	for dec.More() {
		var l audit.Log
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		got = append(got, l.ID)
	}
	if len(got) != 2 || got[0] != logs[0].ID || got[1] != logs[1].ID {
		t.Errorf("got logs %v printed, want %s and %s once each", got, logs[0].ID, logs[1].ID)
	}
}
