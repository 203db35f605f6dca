// Package webhook delivers audit logs to HTTP endpoints as Standard
// Webhooks, and verifies them on the receiving side.
//
// # Sending
//
// A Publisher is an audit.Publisher: attach it to a Logger with
// audit.WithPublisher, and every stored log is POSTed to each of its
// endpoints with the body
//
//	{"type": <log.Action>, "timestamp": <log.CreatedAt, RFC 3339>, "data": <the log>}
//
// and the headers
//
//	webhook-id:        the log's ID; the same on every attempt, so receivers can deduplicate
//	webhook-timestamp: the Unix time of the attempt, in seconds
//	webhook-signature: "v1," + base64(HMAC-SHA256(secret, id + "." + timestamp + "." + body)),
//	                   one per secret of the endpoint, separated by spaces
//
// Secrets are written "whsec_" + base64 of 24 to 64 random bytes (see
// NewSecret). An endpoint with two secrets signs with both, so that its
// receiver can move from the old secret to the new one without missing a
// delivery.
//
// Delivery is attempted until it succeeds (any 2xx status), for a bounded
// number of attempts (see RetryPolicy). Network errors, 429 and 5xx are
// retried after an exponential backoff with full jitter, waiting at least
// what a Retry-After header asks, up to the policy's longest delay. Other
// statuses are not retried: redirects are not followed, and 410 Gone
// disables the endpoint for the life of the Publisher. Each attempt has
// its own timeout, and the number of requests in flight is bounded. When
// delivery to an endpoint fails for good, Publish returns a *DeliveryError
// for it, which the Logger passes to its error handler.
//
// Retries happen inside Publish, in memory: a log whose retries are not
// over when the process stops is reported as not published, not kept. A
// service that must deliver every log across restarts should read its
// audit Repository (whose logs are never lost) instead of relying on
// retries alone. Logs can become visible there slightly out of CreatedAt
// order (writes in flight, clock skew between replicas), so successive
// catch-up windows should overlap by a margin, with duplicates dropped by
// ID, which is also the webhook-id.
//
// # Receiving
//
// Verify checks a request the way every receiver must: the three headers
// are present, the timestamp is within Tolerance of the receiver's clock
// (so a captured request cannot be replayed later), and one of the
// signatures matches, compared in constant time. A Receiver is an
// http.Handler that does that, drops deliveries whose webhook-id it has
// already accepted, and hands each new Event to a function.
package webhook
