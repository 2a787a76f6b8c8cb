package protocol

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// Application error codes used when closing QUIC connections and streams.
const (
	quicCodeOK      quic.ApplicationErrorCode = 0
	quicCodeRefused quic.ApplicationErrorCode = 1
	quicStreamAbort quic.StreamErrorCode      = 0
)

// quicConfig maps Config onto quic-go. Incoming stream limits are the
// per-connection limit; unidirectional streams are not used and refused.
func quicConfig(c Config, server bool) *quic.Config {
	qc := &quic.Config{
		HandshakeIdleTimeout:  c.HandshakeTimeout,
		MaxIdleTimeout:        c.IdleTimeout,
		KeepAlivePeriod:       c.IdleTimeout / 3,
		MaxIncomingStreams:    int64(c.MaxStreamsPerConn),
		MaxIncomingUniStreams: -1,
	}
	if !server {
		// The server never opens streams towards a client.
		qc.MaxIncomingStreams = -1
	}
	return qc
}

// ListenQUIC listens for QUIC connections on a UDP address such as
// "127.0.0.1:7443". tlsConf must come from ServerConfig. Accept returns only
// connections whose client key the ServerConfig callback accepted.
func ListenQUIC(addr string, tlsConf *tls.Config, cfg Config) (Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ln, err := quic.ListenAddr(addr, tlsConf, quicConfig(cfg, true))
	if err != nil {
		return nil, fmt.Errorf("protocol: listen %s: %w", addr, err)
	}
	return &quicListener{ln: ln}, nil
}

type quicListener struct{ ln *quic.Listener }

func (l *quicListener) Accept(ctx context.Context) (Conn, error) {
	for {
		c, err := l.ln.Accept(ctx)
		if err != nil {
			return nil, err
		}
		key, err := peerKeyFromState(c.ConnectionState().TLS)
		if err != nil {
			// Unreachable with ServerConfig, which requires the certificate.
			c.CloseWithError(quicCodeRefused, "no peer key")
			continue
		}
		return &quicConn{c: c, key: key}, nil
	}
}

func (l *quicListener) Addr() net.Addr { return l.ln.Addr() }
func (l *quicListener) Close() error   { return l.ln.Close() }

// QUICDialer dials QUIC connections. TLS must come from ClientConfig.
type QUICDialer struct {
	TLS    *tls.Config
	Config Config
}

// Dial connects to a UDP address and completes the handshake. A server key
// that is not pinned fails with an error matching ErrKeyNotPinned; a silent
// address fails after Config.HandshakeTimeout.
func (d *QUICDialer) Dial(ctx context.Context, addr string) (Conn, error) {
	if err := d.Config.Validate(); err != nil {
		return nil, err
	}
	cfg := d.Config.withDefaults()
	// quic-go aborts a handshake that makes no progress for
	// HandshakeIdleTimeout; this bounds a slow one too.
	ctx, cancel := context.WithTimeout(ctx, 2*cfg.HandshakeTimeout)
	defer cancel()
	c, err := quic.DialAddr(ctx, addr, d.TLS, quicConfig(cfg, false))
	if err != nil {
		return nil, fmt.Errorf("protocol: dial %s: %w", addr, err)
	}
	key, err := peerKeyFromState(c.ConnectionState().TLS)
	if err != nil {
		c.CloseWithError(quicCodeRefused, "no peer key")
		return nil, fmt.Errorf("protocol: dial %s: %w", addr, err)
	}
	return &quicConn{c: c, key: key}, nil
}

type quicConn struct {
	c   *quic.Conn
	key ed25519.PublicKey
}

func (c *quicConn) OpenStream(ctx context.Context) (Stream, error) {
	s, err := c.c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return quicStream{s}, nil
}

func (c *quicConn) AcceptStream(ctx context.Context) (Stream, error) {
	s, err := c.c.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return quicStream{s}, nil
}

func (c *quicConn) PeerKey() ed25519.PublicKey { return c.key }
func (c *quicConn) RemoteAddr() net.Addr       { return c.c.RemoteAddr() }
func (c *quicConn) Done() <-chan struct{}      { return c.c.Context().Done() }
func (c *quicConn) Close() error               { return c.c.CloseWithError(quicCodeOK, "") }
func (c *quicConn) closeBusy() error           { return c.c.CloseWithError(quicCodeBusy, CloseReasonBusy) }

type quicStream struct{ s *quic.Stream }

func (s quicStream) Read(p []byte) (int, error)         { return s.s.Read(p) }
func (s quicStream) Write(p []byte) (int, error)        { return s.s.Write(p) }
func (s quicStream) CloseWrite() error                  { return s.s.Close() }
func (s quicStream) SetReadDeadline(t time.Time) error  { return s.s.SetReadDeadline(t) }
func (s quicStream) SetWriteDeadline(t time.Time) error { return s.s.SetWriteDeadline(t) }
func (s quicStream) CancelRead()                        { s.s.CancelRead(quicStreamAbort) }
func (s quicStream) Abort() {
	s.s.CancelRead(quicStreamAbort)
	s.s.CancelWrite(quicStreamAbort)
}
