package protocol

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mfn/mfn/protocol/internal/wire"
)

// Stream is one ordered, reliable, bidirectional byte stream of a Conn. The
// protocol carries exactly one request and its response (or one
// subscription) per stream.
type Stream interface {
	io.Reader
	io.Writer
	// CloseWrite ends the sending direction: the peer reads io.EOF after
	// the data written so far.
	CloseWrite() error
	// CancelRead stops receiving: pending and future Reads fail here, and
	// the peer's Writes fail.
	CancelRead()
	// Abort resets both directions at once; pending and future reads and
	// writes on either end fail.
	Abort()
	// SetReadDeadline and SetWriteDeadline bound future Reads and Writes;
	// a zero time removes the bound.
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// Conn is an authenticated connection carrying many streams.
type Conn interface {
	// OpenStream opens a stream to the peer, blocking while the peer's
	// concurrent-stream limit is reached.
	OpenStream(ctx context.Context) (Stream, error)
	// AcceptStream returns the next stream opened by the peer.
	AcceptStream(ctx context.Context) (Stream, error)
	// PeerKey is the peer's Ed25519 key, verified during the handshake.
	PeerKey() ed25519.PublicKey
	// RemoteAddr is the peer's network address.
	RemoteAddr() net.Addr
	// Done is closed when the connection has ended, for any reason.
	Done() <-chan struct{}
	// Close ends the connection and every stream on it.
	Close() error
}

// Listener accepts authenticated connections.
type Listener interface {
	// Accept returns the next connection whose handshake (including peer
	// key verification) has completed.
	Accept(ctx context.Context) (Conn, error)
	Addr() net.Addr
	// Close stops accepting and closes the connections it accepted;
	// Accept then fails.
	Close() error
}

// Dialer opens authenticated connections.
type Dialer interface {
	// Dial connects to addr and completes the handshake, verifying the
	// server's key. A server key that is not pinned fails with an error
	// matching ErrKeyNotPinned. A client key the server rejects may only
	// surface at the first request: in TLS 1.3 the client's certificate is
	// the last handshake message, checked after the client is done.
	Dial(ctx context.Context, addr string) (Conn, error)
}

// Peer describes the authenticated remote end of a connection, as seen by
// a Handler.
type Peer struct {
	Key  ed25519.PublicKey // verified during the TLS handshake
	Addr net.Addr
	// Version is the protocol version negotiated by Hello (0 inside
	// HandleHello).
	Version uint8
}

// framer writes and reads messages on a stream with deadlines.
type framer struct {
	s        Stream
	maxFrame int
	timeout  time.Duration
	deadline time.Time // optional overall bound (from a context)
}

func (f *framer) until() time.Time {
	t := time.Now().Add(f.timeout)
	if !f.deadline.IsZero() && f.deadline.Before(t) {
		return f.deadline
	}
	return t
}

// write sends m as one frame with the given version.
func (f *framer) write(version uint8, m Message) error {
	size := 64
	switch m := m.(type) { // bulk messages: allocate once
	case *SubmitUpdate:
		size += len(m.Sealed)
	case *ModelChunk:
		size += len(m.Data)
	}
	buf, err := m.AppendBinary(make([]byte, wire.HeaderSize, size))
	if err != nil {
		return err
	}
	return f.writeRaw(version, m.wireType(), buf)
}

// writeRaw sends a frame whose payload is buf[wire.HeaderSize:]; the header
// is written into buf's first bytes.
func (f *framer) writeRaw(version uint8, t wire.Type, buf []byte) error {
	n := len(buf) - wire.HeaderSize
	if n > f.maxFrame {
		return &wire.FrameSizeError{Size: uint64(n), Max: uint64(f.maxFrame)}
	}
	wire.PutHeader(buf, version, t, n)
	if err := f.s.SetWriteDeadline(f.until()); err != nil {
		return err
	}
	_, err := f.s.Write(buf)
	return err
}

// read receives one frame and decodes it.
func (f *framer) read() (uint8, Message, error) {
	if err := f.s.SetReadDeadline(f.until()); err != nil {
		return 0, nil, err
	}
	fr, err := wire.ReadFrame(f.s, f.maxFrame)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("protocol: stream ended before a frame: %w", ErrTruncated)
		}
		return 0, nil, err
	}
	m, err := decodeMessage(fr.Type, fr.Payload)
	return fr.Version, m, err
}

// expectEOF checks that the peer closed its sending side after its last
// frame, which also completes the stream for the transport.
func (f *framer) expectEOF() error {
	if err := f.s.SetReadDeadline(f.until()); err != nil {
		return err
	}
	var b [1]byte
	n, err := io.ReadFull(f.s, b[:])
	if n > 0 {
		return fmt.Errorf("protocol: data after the last frame: %w", ErrTrailingBytes)
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// writeFrame sends a complete, already encoded frame.
func (f *framer) writeFrame(b []byte) error {
	if err := f.s.SetWriteDeadline(f.until()); err != nil {
		return err
	}
	_, err := f.s.Write(b)
	return err
}
