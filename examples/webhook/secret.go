package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every secret as it is written down, so that a
// secret is recognized for what it is wherever it turns up.
const SecretPrefix = "whsec_"

// Bounds of a secret's length, in bytes after base64 decoding.
const (
	MinSecretLen = 24
	MaxSecretLen = 64
)

// ErrInvalidSecret is returned when a secret is not SecretPrefix followed
// by the standard base64 encoding of MinSecretLen to MaxSecretLen bytes.
var ErrInvalidSecret = errors.New("webhook: invalid secret")

// NewSecret returns a new random secret of 32 bytes, written as
// SecretPrefix followed by their base64 encoding. Give it to the receiver
// over a channel you trust, and to the Publisher in Endpoint.Secrets.
func NewSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never returns an error
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// parseSecret returns the key that secret encodes. The prefix may be left
// out, as other Standard Webhooks implementations allow.
func parseSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 after %q", ErrInvalidSecret, SecretPrefix)
	}
	if len(key) < MinSecretLen || len(key) > MaxSecretLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrInvalidSecret, len(key), MinSecretLen, MaxSecretLen)
	}
	return key, nil
}

func parseSecrets(secrets []string) ([][]byte, error) {
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		key, err := parseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// Sign returns the webhook-signature header of a message with the given
// webhook-id, timestamp and body: one "v1," signature for each secret, in
// order, separated by spaces. Publishers sign for you; Sign is for tests
// and for other senders.
func Sign(secrets []string, id string, timestamp time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", fmt.Errorf("%w: no secret", ErrInvalidSecret)
	}
	keys, err := parseSecrets(secrets)
	if err != nil {
		return "", err
	}
	return signatureHeader(keys, id, timestamp.Unix(), body), nil
}

// signatureHeader signs with every key.
func signatureHeader(keys [][]byte, id string, unix int64, body []byte) string {
	var b strings.Builder
	for i, key := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.Write(signature(key, id, unix, body))
	}
	return b.String()
}

// signature returns base64(HMAC-SHA256(key, id + "." + unix + "." + body)).
func signature(key []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	var ts [20]byte
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(ts[:0], unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	var sum [sha256.Size]byte
	out := make([]byte, base64.StdEncoding.EncodedLen(sha256.Size))
	base64.StdEncoding.Encode(out, h.Sum(sum[:0]))
	return out
}
