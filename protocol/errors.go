package protocol

import (
	"errors"
	"fmt"
	"time"

	"github.com/mfn/mfn/protocol/internal/wire"
)

// Code classifies a protocol error. Codes travel in Error frames, so their
// values are part of the wire format. Code implements error, which makes each
// code a sentinel: errors.Is(err, protocol.CodeNotLeader) is true for any
// *ProtocolError carrying that code.
type Code uint16

// Error codes. Values are never reused.
const (
	// CodeUnknown is an unspecified failure; also what a zero Code means.
	CodeUnknown Code = 0
	// CodeBadRequest: the request is malformed or not allowed in this state
	// (for example any request before Hello). Do not retry unchanged.
	CodeBadRequest Code = 1
	// CodeUnauthorized: the peer's key is not allowed to do this (unknown,
	// revoked, or the node id does not match the key).
	CodeUnauthorized Code = 2
	// CodeNotLeader: this coordinator is not the leader. LeaderAddr holds the
	// leader's QUIC address if known; redial there.
	CodeNotLeader Code = 3
	// CodeRoundClosed: the round is closed or not the current one.
	CodeRoundClosed Code = 4
	// CodeDuplicate: an update from this node for this round already exists.
	// A retry of an acknowledged submission may see this; it is not a loss.
	CodeDuplicate Code = 5
	// CodeRateLimited: too many requests; retry after RetryAfter.
	CodeRateLimited Code = 6
	// CodeVersionMismatch: no common protocol version, or a frame carried a
	// version other than the negotiated one.
	CodeVersionMismatch Code = 7
	// CodeInternal: the server failed; the request may be retried.
	CodeInternal Code = 8
	// CodeNotFound: the requested job or model version does not exist.
	CodeNotFound Code = 9
	// CodeUnavailable: the server cannot serve now (no quorum, shutting
	// down); retry after RetryAfter, possibly elsewhere.
	CodeUnavailable Code = 10
	// CodeNotReady: this member cannot judge the request yet — it has
	// just restarted and has not caught up with the cluster's state, so it
	// may not know the peer's key. Unlike CodeUnauthorized it says nothing
	// about the key: retry soon, preferably at another member.
	CodeNotReady Code = 11
)

var codeNames = [...]string{
	CodeUnknown:         "unknown error",
	CodeBadRequest:      "bad request",
	CodeUnauthorized:    "unauthorized",
	CodeNotLeader:       "not leader",
	CodeRoundClosed:     "round closed",
	CodeDuplicate:       "duplicate",
	CodeRateLimited:     "rate limited",
	CodeVersionMismatch: "version mismatch",
	CodeInternal:        "internal error",
	CodeNotFound:        "not found",
	CodeUnavailable:     "unavailable",
	CodeNotReady:        "not ready",
}

// String returns the code's name, or "code(N)" for codes unknown to this
// version (they are kept, not rejected, so newer servers can add codes).
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

// Error makes a Code usable as a sentinel error.
func (c Code) Error() string { return "protocol: " + c.String() }

// ErrVersionMismatch is CodeVersionMismatch; both *VersionMismatchError and a
// *ProtocolError with that code match it.
var ErrVersionMismatch error = CodeVersionMismatch

// ProtocolError is an error reported by the peer in an Error frame (or built
// by a Handler to be sent as one). It is also the Error message itself.
//
// errors.Is(err, c) is true for the Code c equal to Code, and for a
// *ProtocolError target with the same Code.
type ProtocolError struct {
	Code       Code
	Message    string        // human-readable detail, at most 1024 bytes
	LeaderAddr string        // CodeNotLeader: the leader's QUIC address, "" if unknown
	RetryAfter time.Duration // CodeRateLimited/CodeUnavailable/CodeNotReady: wait at least this long; ≥ 0
}

func (e *ProtocolError) Error() string {
	s := "protocol: " + e.Code.String()
	if e.LeaderAddr != "" {
		s += " (leader " + e.LeaderAddr + ")"
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is matches a Code or a *ProtocolError with the same code.
func (e *ProtocolError) Is(target error) bool {
	switch t := target.(type) {
	case Code:
		return e.Code == t
	case *ProtocolError:
		return t != nil && e.Code == t.Code
	}
	return false
}

// VersionMismatchError reports that client and server share no protocol
// version. It matches ErrVersionMismatch and CodeVersionMismatch.
type VersionMismatchError struct {
	Client, Server []uint8
}

func (e *VersionMismatchError) Error() string {
	return fmt.Sprintf("protocol: no common protocol version: client speaks %v, server speaks %v", e.Client, e.Server)
}

// Is matches CodeVersionMismatch (and so ErrVersionMismatch).
func (e *VersionMismatchError) Is(target error) bool { return target == CodeVersionMismatch }

// Decoding and framing errors (test with errors.Is). Decoders wrap them in a
// *DecodeError naming the message and field.
var (
	// ErrFrameTooLarge: a frame declares a payload above the size limit.
	// Reported before the payload is read or allocated.
	ErrFrameTooLarge = wire.ErrFrameTooLarge
	// ErrUnknownType: a frame's type byte is not an assigned message type.
	ErrUnknownType = wire.ErrUnknownType
	// ErrTruncated: the input ended inside a frame or field; a stream that
	// closes mid-frame reports this.
	ErrTruncated = wire.ErrTruncated
	// ErrFieldTooLong: a field's length or count exceeds its limit.
	ErrFieldTooLong = wire.ErrFieldTooLong
	// ErrTrailingBytes: bytes remain after the last field of a message, or
	// after the last frame of a stream.
	ErrTrailingBytes = wire.ErrTrailingBytes
	// ErrNonCanonical: a field is not in its single canonical form
	// (unsorted versions or map keys, invalid UTF-8, bad boolean, negative
	// duration, time out of range).
	ErrNonCanonical = wire.ErrNonCanonical
	// ErrUnexpectedMessage: the peer sent a valid message of the wrong type
	// for this point of the exchange.
	ErrUnexpectedMessage = errors.New("protocol: unexpected message")
	// ErrHelloRequired: a request was made on a Client before Hello
	// succeeded.
	ErrHelloRequired = errors.New("protocol: Hello has not completed")
	// ErrHashMismatch: a fetched model does not hash to the expected value.
	ErrHashMismatch = errors.New("protocol: model hash mismatch")
	// ErrModelTooLarge: a model's announced size exceeds Config.MaxModelSize.
	ErrModelTooLarge = errors.New("protocol: model too large")
	// ErrServerClosed: Serve was called on, or interrupted by, Server.Close.
	ErrServerClosed = errors.New("protocol: server closed")
	// ErrClosed: the connection or listener is closed.
	ErrClosed = errors.New("protocol: closed")
)

// DecodeError reports a message that could not be decoded. It unwraps to the
// field error and from there to one of the sentinels above.
type DecodeError struct {
	Message string // message type name
	Err     error
}

func (e *DecodeError) Error() string { return "protocol: decoding " + e.Message + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// HashMismatchError reports a fetched model whose SHA-256 is not the wanted
// one. It matches ErrHashMismatch.
type HashMismatchError struct {
	Job     string
	Version uint64
	Want    [32]byte
	Got     [32]byte
}

func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("protocol: model %s version %d: hash mismatch: want %x, got %x", e.Job, e.Version, e.Want[:8], e.Got[:8])
}

// Unwrap returns ErrHashMismatch.
func (e *HashMismatchError) Unwrap() error { return ErrHashMismatch }

// toProtocolError converts a handler's error into what is sent to the peer.
// A *ProtocolError (anywhere in the chain) or a bare Code is sent as is;
// anything else becomes CodeInternal without detail, so internal error text
// does not leak to untrusted peers.
func toProtocolError(err error) *ProtocolError {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe
	}
	var c Code
	if errors.As(err, &c) {
		return &ProtocolError{Code: c}
	}
	return &ProtocolError{Code: CodeInternal, Message: "internal error"}
}
