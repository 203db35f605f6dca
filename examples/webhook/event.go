package webhook

import (
	"time"

	"github.com/raystack/salt/audit"
)

// The Standard Webhooks headers. HTTP header names are case-insensitive;
// http.Header.Get finds them in any case.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Event is the body of every webhook a Publisher sends: the Standard
// Webhooks payload, with the audit log as its data.
type Event struct {
	// ID is the webhook-id header: the log's ID, the same for every
	// delivery attempt of one log. It is not part of the body.
	ID string `json:"-"`
	// Type is the log's Action, e.g. "app.user.created".
	Type string `json:"type"`
	// Timestamp is when the action happened: the log's CreatedAt, written
	// in RFC 3339 with fractional seconds.
	Timestamp time.Time `json:"timestamp"`
	// Data is the log, in its JSON wire format.
	Data audit.Log `json:"data"`
}
