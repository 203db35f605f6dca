package webhook

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Tolerance is how far the webhook-timestamp of a request may be from the
// receiver's clock, either way. A request outside it is rejected, so that
// a captured request cannot be replayed later; within it, receivers
// deduplicate by webhook-id.
const Tolerance = 5 * time.Minute

// Errors of Verify. Test for them with errors.Is.
var (
	// ErrMissingHeaders is returned when the webhook-id, webhook-timestamp
	// or webhook-signature header is missing or empty.
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	// ErrInvalidTimestamp is returned when webhook-timestamp is not a
	// number of seconds since the Unix epoch.
	ErrInvalidTimestamp = errors.New("webhook: malformed webhook-timestamp header")
	// ErrTimestampOutOfTolerance is returned when webhook-timestamp is more
	// than Tolerance before or after the receiver's clock.
	ErrTimestampOutOfTolerance = errors.New("webhook: webhook-timestamp outside the tolerance window")
	// ErrInvalidSignature is returned when no "v1," signature in
	// webhook-signature matches the secret, the headers and the body.
	ErrInvalidSignature = errors.New("webhook: no matching signature")
)

// Verify reports whether a webhook request is authentic and fresh: header
// carries webhook-id, webhook-timestamp within Tolerance of time.Now, and a
// webhook-signature with a "v1," signature of body made with secret.
// body must be the request body exactly as received, not re-encoded.
//
// It returns nil, or an error wrapping ErrMissingHeaders,
// ErrInvalidTimestamp, ErrTimestampOutOfTolerance, ErrInvalidSignature or
// ErrInvalidSecret. Signatures are compared in constant time; signatures
// of other versions (such as "v1a,") and malformed ones are skipped.
//
// A valid request may still be a duplicate: deduplicate by webhook-id.
func Verify(secret string, header http.Header, body []byte) error {
	return VerifyAt(secret, header, body, time.Now())
}

// VerifyAt is Verify with now as the receiver's clock.
func VerifyAt(secret string, header http.Header, body []byte, now time.Time) error {
	key, err := parseSecret(secret)
	if err != nil {
		return err
	}
	return verify([][]byte{key}, header, body, now)
}

// verify is Verify with any of keys.
func verify(keys [][]byte, header http.Header, body []byte, now time.Time) error {
	id := header.Get(HeaderID)
	ts := header.Get(HeaderTimestamp)
	sigs := header.Values(HeaderSignature)
	if id == "" || ts == "" || len(sigs) == 0 || sigs[0] == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || unix < 0 {
		return fmt.Errorf("%w: %q", ErrInvalidTimestamp, truncate(ts))
	}
	if d := now.Sub(time.Unix(unix, 0)); d > Tolerance || d < -Tolerance {
		return fmt.Errorf("%w: %s is %s from now", ErrTimestampOutOfTolerance, ts, d.Round(time.Second))
	}
	for _, key := range keys {
		want := signature(key, id, unix, body)
		for _, v := range sigs {
			for _, sig := range strings.Fields(v) {
				got, ok := strings.CutPrefix(sig, "v1,")
				if ok && hmac.Equal([]byte(got), want) {
					return nil
				}
			}
		}
	}
	return ErrInvalidSignature
}

// truncate keeps a hostile header from making an error message huge.
func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
