package crypto

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them (with detail added through %w), so callers branch with errors.Is.
var (
	// ErrBadSignature means an Ed25519 signature did not verify under the
	// expected public key, or an update's bytes do not match the hash the
	// signed statement commits to.
	ErrBadSignature = errors.New("crypto: bad signature")
	// ErrUnknownNode means the node named by a statement has no enrolled
	// public key. NodeKeyLookup implementations return it (wrapped or not).
	ErrUnknownNode = errors.New("crypto: unknown node")
	// ErrNotRecipient means none of the supplied age identities can decrypt
	// an envelope: it was sealed to other coordinators.
	ErrNotRecipient = errors.New("crypto: not a recipient")
	// ErrMalformed means bytes do not follow the expected encoding
	// (truncated, trailing data, bad lengths, invalid UTF-8, non-finite
	// numbers, a damaged age ciphertext, ...).
	ErrMalformed = errors.New("crypto: malformed input")
	// ErrTooLarge means an input or one of its fields exceeds a configured or
	// built-in size limit. It is reported before the oversized data is
	// allocated.
	ErrTooLarge = errors.New("crypto: too large")
	// ErrVersion means a version byte names an encoding this package does
	// not implement.
	ErrVersion = errors.New("crypto: unsupported version")
)

// FormatError locates a decoding failure: what was being decoded, the
// field, and the byte offset where decoding stopped. Err is one of the
// sentinels above (possibly wrapped), so errors.Is works through Unwrap.
type FormatError struct {
	What   string // the encoding: "statement", "update", "envelope"
	Field  string // the field being decoded, e.g. "origin"
	Offset int    // byte offset of the field within the input
	Err    error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%s: field %s at offset %d: %v", e.What, e.Field, e.Offset, e.Err)
}

// Unwrap returns the underlying sentinel-wrapping error.
func (e *FormatError) Unwrap() error { return e.Err }
