// Package wire holds the byte-level formats of the MFN protocol: the frame
// layout and the canonical field codec the messages are built from. It knows
// nothing about connections, streams or message semantics.
package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderSize is the size of a frame header:
//
//	offset 0  1 byte   protocol version the payload is encoded with
//	offset 1  1 byte   message type
//	offset 2  4 bytes  payload length, big-endian uint32
const HeaderSize = 6

// Type identifies the message carried by a frame.
type Type uint8

// Message types. Values are part of the wire format and never reused.
const (
	TypeHello             Type = 1
	TypeHelloAck          Type = 2
	TypeSubscribe         Type = 3
	TypeRoundAnnouncement Type = 4
	TypeHeartbeat         Type = 5
	TypeModelFetch        Type = 6
	TypeModelChunk        Type = 7
	TypeSubmitUpdate      Type = 8
	TypeAck               Type = 9
	TypeError             Type = 10
	TypeSubmitEval        Type = 11 // a node's cross-site evaluation report (protocol/eval.go)
	// Streamed submission (Version4). 12 to 15 are left for other
	// request types.
	TypeSubmitStream Type = 16
	TypeStreamChunk  Type = 17
)

var typeNames = [...]string{
	TypeHello:             "Hello",
	TypeHelloAck:          "HelloAck",
	TypeSubscribe:         "Subscribe",
	TypeRoundAnnouncement: "RoundAnnouncement",
	TypeHeartbeat:         "Heartbeat",
	TypeModelFetch:        "ModelFetch",
	TypeModelChunk:        "ModelChunk",
	TypeSubmitUpdate:      "SubmitUpdate",
	TypeAck:               "Ack",
	TypeError:             "Error",
	TypeSubmitEval:        "SubmitEval",
	TypeSubmitStream:      "SubmitStream",
	TypeStreamChunk:       "StreamChunk",
}

// Known reports whether t is an assigned message type.
func (t Type) Known() bool { return int(t) < len(typeNames) && typeNames[t] != "" }

func (t Type) String() string {
	if t.Known() {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Frame errors. ReadFrame wraps them with detail; test with errors.Is.
var (
	// ErrFrameTooLarge: the declared payload length exceeds the limit.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrUnknownType: the type byte is not an assigned message type.
	ErrUnknownType = errors.New("unknown message type")
	// ErrTruncated: the input ended inside a frame or a field.
	ErrTruncated = errors.New("truncated")
)

// FrameSizeError reports a frame whose payload length exceeds the limit.
// It matches ErrFrameTooLarge with errors.Is.
type FrameSizeError struct {
	Size, Max uint64
}

func (e *FrameSizeError) Error() string {
	return fmt.Sprintf("frame too large: %d bytes payload, limit %d", e.Size, e.Max)
}

// Unwrap returns ErrFrameTooLarge.
func (e *FrameSizeError) Unwrap() error { return ErrFrameTooLarge }

// Frame is one decoded frame. Payload is owned by the caller.
type Frame struct {
	Version uint8
	Type    Type
	Payload []byte
}

// AppendHeader appends a frame header for a payload of n bytes.
func AppendHeader(b []byte, version uint8, t Type, n int) []byte {
	b = append(b, version, byte(t))
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// PutHeader writes a frame header into the first HeaderSize bytes of b.
func PutHeader(b []byte, version uint8, t Type, n int) {
	b[0], b[1] = version, byte(t)
	binary.BigEndian.PutUint32(b[2:HeaderSize], uint32(n))
}

// ParseHeader decodes a frame header and checks the type and the size limit.
func ParseHeader(h []byte, maxPayload int) (version uint8, t Type, n int, err error) {
	if len(h) < HeaderSize {
		return 0, 0, 0, fmt.Errorf("frame header: %w", ErrTruncated)
	}
	version, t = h[0], Type(h[1])
	size := binary.BigEndian.Uint32(h[2:HeaderSize])
	if !t.Known() {
		return 0, 0, 0, fmt.Errorf("frame header: %w %d", ErrUnknownType, h[1])
	}
	if uint64(size) > uint64(maxPayload) {
		return 0, 0, 0, &FrameSizeError{Size: uint64(size), Max: uint64(maxPayload)}
	}
	return version, t, int(size), nil
}

// directAlloc is the payload size up to which ReadFrame allocates the whole
// declared length at once. Larger payloads grow with the bytes that actually
// arrive, so a peer that declares 4 MiB and then stalls costs 64 KiB, not 4 MiB.
const directAlloc = 64 << 10

// ReadFrame reads one frame from r. It returns io.EOF only if r ended cleanly
// before the first header byte; an input that ends inside the frame gives an
// error matching ErrTruncated. The size limit is checked before any payload
// allocation.
func ReadFrame(r io.Reader, maxPayload int) (Frame, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return Frame{}, fmt.Errorf("frame header: %w", ErrTruncated)
		}
		return Frame{}, err
	}
	version, t, n, err := ParseHeader(h[:], maxPayload)
	if err != nil {
		return Frame{}, err
	}
	var payload []byte
	if n <= directAlloc {
		payload = make([]byte, n)
		_, err = io.ReadFull(r, payload)
	} else {
		var buf bytes.Buffer
		buf.Grow(directAlloc)
		var m int64
		m, err = io.CopyN(&buf, r, int64(n))
		if err == nil && m == int64(n) {
			payload = buf.Bytes()
		}
	}
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return Frame{}, fmt.Errorf("%v frame payload (%d bytes declared): %w", t, n, ErrTruncated)
		}
		return Frame{}, err
	}
	return Frame{Version: version, Type: t, Payload: payload}, nil
}
