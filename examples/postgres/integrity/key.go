package integrity

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key is one signing key of a trail: what signs its checkpoints, and the
// verifier of those signatures, with which the Sealer checks, before it
// signs anything, that the tree in the database is the one it signed
// before. The verifier must be the signer's public key: same name, same
// key hash.
type Key struct {
	Signer   note.Signer
	Verifier note.Verifier
}

// NewKey returns the Key of skey, a private key as note.GenerateKey makes
// it ("PRIVATE+KEY+name+hash+base64"), with its verifier derived from it.
// For a key held elsewhere (a KMS), build the Key from its note.Signer and
// its verifier key (note.NewVerifier) instead.
func NewKey(skey string) (Key, error) {
	skey = strings.TrimSpace(skey)
	s, err := note.NewSigner(skey)
	if err != nil {
		return Key{}, fmt.Errorf("integrity: signing key: %w", err)
	}
	// PRIVATE+KEY+name+hash+base64(algorithm || seed): names hold no
	// plus, base64 may. NewSigner has checked the form, and that the
	// algorithm is Ed25519.
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return Key{}, errors.New("integrity: signing key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return Key{}, fmt.Errorf("integrity: signing key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Key{}, fmt.Errorf("integrity: signing key: %w", err)
	}
	return Key{Signer: s, Verifier: v}, nil
}
