package protocol

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"
)

// RefuseReason says why a Server closed a connection without serving it.
type RefuseReason string

// Reasons for refusing a connection. The coordinator adds its own for the
// handshake-time key check (see coordinator.VerifyNodeKey).
const (
	// RefusedTooManyConns: the Server already holds Config.MaxConns
	// connections.
	RefusedTooManyConns RefuseReason = "too_many_conns"
	// RefusedTooManyForKey: the peer's key already holds
	// Config.MaxConnsPerKey connections.
	RefusedTooManyForKey RefuseReason = "too_many_for_key"
)

// quicCodeBusy is the application error code of a connection closed
// because a connection cap is reached; clients see it as a
// *quic.ApplicationError with this code and should retry later.
const quicCodeBusy = 2

// CloseReasonBusy is the text of the close frame of a connection refused by
// a cap.
const CloseReasonBusy = "too many connections"

// admit registers c unless a cap is reached; it reports the reason
// otherwise. Called with s.mu held.
func (s *Server) admitLocked(c Conn) (RefuseReason, bool) {
	if len(s.conns) >= s.cfg.MaxConns {
		return RefusedTooManyConns, false
	}
	k := string(c.PeerKey())
	if s.perKey[k] >= s.cfg.MaxConnsPerKey {
		return RefusedTooManyForKey, false
	}
	s.perKey[k]++
	return "", true
}

// releaseLocked undoes admitLocked. Called with s.mu held.
func (s *Server) releaseLocked(c Conn) {
	k := string(c.PeerKey())
	if s.perKey[k] <= 1 {
		delete(s.perKey, k)
		return
	}
	s.perKey[k]--
}

// refuse closes a connection that exceeded a cap and reports it.
func (s *Server) refuse(c Conn, reason RefuseReason) {
	key := c.PeerKey()
	if bc, ok := c.(interface{ closeBusy() error }); ok {
		bc.closeBusy()
	} else {
		c.Close()
	}
	s.refusals.Add(1)
	if s.cfg.OnRefuse != nil {
		s.cfg.OnRefuse(reason, key)
	}
	s.sampled.Log(s.log, "protocol: connection refused", "reason", string(reason), "peer", hexPrefix(key), "addr", c.RemoteAddr().String())
}

// Conns returns the number of connections the Server holds.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Refused returns how many connections the Server refused over its caps.
func (s *Server) Refused() uint64 { return s.refusals.Load() }

// Instance returns the id this Server sends as HelloAck.Instance.
func (s *Server) Instance() string { return s.cfg.Instance }

func newInstance() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func hexPrefix(k ed25519.PublicKey) string {
	if len(k) > 8 {
		k = k[:8]
	}
	return hex.EncodeToString(k)
}

// LogSampler rate-limits a repeated log line, so that a flood of refused
// connections cannot fill a disk: in each Window at most Burst lines are
// written, the others only counted; the next line written reports how many
// were dropped ("suppressed"). The zero value writes 5 lines per 10 s.
// Safe for concurrent use.
type LogSampler struct {
	Window time.Duration
	Burst  int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed uint64
}

// Log writes msg with args to l at Warn level unless this window's burst
// is spent. It reports whether the line was written.
func (s *LogSampler) Log(l *slog.Logger, msg string, args ...any) bool {
	window, burst, now := s.Window, s.Burst, time.Now
	if window <= 0 {
		window = 10 * time.Second
	}
	if burst <= 0 {
		burst = 5
	}
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	s.mu.Lock()
	if t.Sub(s.start) >= window || t.Before(s.start) {
		s.start, s.n = t, 0
	}
	if s.n >= burst {
		s.suppressed++
		s.mu.Unlock()
		return false
	}
	s.n++
	dropped := s.suppressed
	s.suppressed = 0
	s.mu.Unlock()
	if dropped > 0 {
		args = append(args, "suppressed", dropped)
	}
	l.Warn(msg, args...)
	return true
}
