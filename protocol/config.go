package protocol

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Protocol versions. Version2 extends HelloAck with the answering
// server's Instance and the leader's Term; Version3 lets SubmitUpdate carry
// a TraceParent.
const (
	Version1 uint8 = 1
	Version2 uint8 = 2
	Version3 uint8 = 3
)

// SupportedVersions lists the protocol versions this package speaks,
// strictly increasing.
func SupportedVersions() []uint8 { return []uint8{Version1, Version2, Version3, Version4} }

// Defaults used for zero Config fields.
const (
	DefaultMaxFrameSize      = 4 << 20 // 4 MiB: a d=1,000,000 float32 update plus envelope
	DefaultRequestTimeout    = 30 * time.Second
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxStreamsPerConn = 16
	DefaultMaxInflight       = 256
	DefaultChunkSize         = 1 << 20 // 1 MiB
	DefaultMaxModelSize      = 1 << 30 // 1 GiB
	DefaultHeartbeat         = 10 * time.Second
	DefaultMaxConns          = 16384
	DefaultMaxConnsPerKey    = 8
)

// chunkOverhead is the encoded size of a ModelChunk without its data:
// offset, total, hash, data length. A chunk of MaxFrameSize-chunkOverhead
// bytes fills a frame payload exactly.
const chunkOverhead = 8 + 8 + 32 + 4

// Config tunes both ends of the protocol. The zero value is valid: every
// zero field means its default. Server-only and client-only fields say so.
type Config struct {
	// MaxFrameSize bounds a frame's payload in bytes; a larger declared
	// size is rejected before allocation. Zero means DefaultMaxFrameSize.
	MaxFrameSize int
	// RequestTimeout bounds every read and write of one request/response
	// exchange, and a Handler call. Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// HandshakeTimeout bounds the QUIC/TLS handshake, and on the server the
	// time from connection to a successful Hello. Zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection without any traffic for this long
	// (both ends send keep-alives at a third of it). Zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxStreamsPerConn bounds the concurrent requests (streams) a peer may
	// have open on one connection, subscriptions included. Zero means
	// DefaultMaxStreamsPerConn.
	MaxStreamsPerConn int
	// MaxInflight (server) bounds concurrent Handler calls over all
	// connections; requests beyond it get CodeRateLimited at once. Zero
	// means DefaultMaxInflight.
	MaxInflight int
	// Heartbeat (server) is the interval of keep-alive frames on
	// subscription streams; a client declares a subscription dead after
	// three silent intervals. Zero means DefaultHeartbeat.
	Heartbeat time.Duration
	// ChunkSize (client) is the model bytes asked for per ModelFetch. It
	// must leave room for the chunk header within MaxFrameSize. Zero means
	// min(DefaultChunkSize, MaxFrameSize minus that header).
	ChunkSize int
	// MaxModelSize (client) bounds the size of a model FetchModel accepts.
	// Zero means DefaultMaxModelSize.
	MaxModelSize int64
	// MaxConns (server) bounds the connections a Server holds at once over
	// all its listeners; a connection beyond it is closed right after its
	// handshake (RefusedTooManyConns). Zero means DefaultMaxConns.
	MaxConns int
	// MaxConnsPerKey (server) bounds the connections one peer key may hold
	// at once; a node needs one, plus one per leader check or reconnection
	// in flight. Beyond it: RefusedTooManyForKey. Zero means
	// DefaultMaxConnsPerKey.
	MaxConnsPerKey int
	// OnRefuse (server), when set, is called for every connection the
	// Server closes without serving it, with the reason; it must be fast
	// and safe for concurrent use (the coordinator counts them).
	OnRefuse func(reason RefuseReason, peer ed25519.PublicKey)
	// Instance (server) identifies this server process to clients
	// (HelloAck.Instance, at most MaxInstanceLen bytes); empty means 16
	// random bytes in hex, drawn from crypto/rand by NewServer.
	Instance string
	// Versions are the protocol versions offered or accepted, strictly
	// increasing, each one of SupportedVersions. Nil means all supported.
	Versions []uint8
	// ChunkTimeout (server) bounds the wait for each StreamChunk of a
	// streamed submission; a sender silent for longer gets
	// ErrStreamStalled. Zero means DefaultChunkTimeout.
	ChunkTimeout time.Duration
	// StreamMinRate (server), in bytes per second, sets a streamed
	// submission's overall deadline: RequestTimeout + Size/StreamMinRate
	// (the handler's work included). Zero means DefaultStreamMinRate.
	StreamMinRate int64
	// MaxStreamSize (server) bounds a streamed submission's declared size
	// before the handler sees it (the handler applies the job's own
	// bound). Zero means DefaultMaxStreamSize.
	MaxStreamSize int64
	// StreamChunk (client) is the data per StreamChunk frame; it must fit
	// MaxFrameSize with the chunk's 4-byte length. Zero means
	// min(DefaultStreamChunk, MaxFrameSize-4).
	StreamChunk int
	// Logger receives connection-level events. Nil discards them.
	Logger *slog.Logger
}

// Validate reports the first invalid field by name.
func (c Config) Validate() error {
	switch {
	case c.MaxFrameSize < 0:
		return fmt.Errorf("protocol: Config.MaxFrameSize %d is negative", c.MaxFrameSize)
	case c.MaxFrameSize > 0 && c.MaxFrameSize < 1024:
		return fmt.Errorf("protocol: Config.MaxFrameSize %d is below the minimum 1024", c.MaxFrameSize)
	case c.RequestTimeout < 0:
		return fmt.Errorf("protocol: Config.RequestTimeout %v is negative", c.RequestTimeout)
	case c.HandshakeTimeout < 0:
		return fmt.Errorf("protocol: Config.HandshakeTimeout %v is negative", c.HandshakeTimeout)
	case c.IdleTimeout < 0:
		return fmt.Errorf("protocol: Config.IdleTimeout %v is negative", c.IdleTimeout)
	case c.MaxStreamsPerConn < 0:
		return fmt.Errorf("protocol: Config.MaxStreamsPerConn %d is negative", c.MaxStreamsPerConn)
	case c.MaxInflight < 0:
		return fmt.Errorf("protocol: Config.MaxInflight %d is negative", c.MaxInflight)
	case c.Heartbeat < 0:
		return fmt.Errorf("protocol: Config.Heartbeat %v is negative", c.Heartbeat)
	case c.ChunkSize < 0:
		return fmt.Errorf("protocol: Config.ChunkSize %d is negative", c.ChunkSize)
	case c.MaxModelSize < 0:
		return fmt.Errorf("protocol: Config.MaxModelSize %d is negative", c.MaxModelSize)
	case c.MaxConns < 0:
		return fmt.Errorf("protocol: Config.MaxConns %d is negative", c.MaxConns)
	case c.MaxConnsPerKey < 0:
		return fmt.Errorf("protocol: Config.MaxConnsPerKey %d is negative", c.MaxConnsPerKey)
	case c.ChunkTimeout < 0 || c.StreamMinRate < 0 || c.MaxStreamSize < 0 || c.StreamChunk < 0:
		return fmt.Errorf("protocol: Config.ChunkTimeout, StreamMinRate, MaxStreamSize and StreamChunk must not be negative")
	case len(c.Instance) > MaxInstanceLen:
		return fmt.Errorf("protocol: Config.Instance is %d bytes, at most %d", len(c.Instance), MaxInstanceLen)
	}
	frame := c.MaxFrameSize
	if frame == 0 {
		frame = DefaultMaxFrameSize
	}
	if c.ChunkSize > frame-chunkOverhead {
		return fmt.Errorf("protocol: Config.ChunkSize %d does not fit MaxFrameSize %d (at most %d)", c.ChunkSize, frame, frame-chunkOverhead)
	}
	if c.StreamChunk > frame-4 {
		return fmt.Errorf("protocol: Config.StreamChunk %d does not fit MaxFrameSize %d (at most %d)", c.StreamChunk, frame, frame-4)
	}
	if len(c.Versions) > 0 {
		if !slices.IsSorted(c.Versions) || len(slices.Compact(slices.Clone(c.Versions))) != len(c.Versions) {
			return errors.New("protocol: Config.Versions must be strictly increasing")
		}
		for _, v := range c.Versions {
			if !slices.Contains(SupportedVersions(), v) {
				return fmt.Errorf("protocol: Config.Versions: version %d is not supported (supported: %v)", v, SupportedVersions())
			}
		}
	}
	return nil
}

// withDefaults returns c with zero fields replaced by defaults.
func (c Config) withDefaults() Config {
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxStreamsPerConn == 0 {
		c.MaxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = min(DefaultChunkSize, c.MaxFrameSize-chunkOverhead)
	}
	if c.MaxModelSize == 0 {
		c.MaxModelSize = DefaultMaxModelSize
	}
	if c.ChunkTimeout == 0 {
		c.ChunkTimeout = DefaultChunkTimeout
	}
	if c.StreamMinRate == 0 {
		c.StreamMinRate = DefaultStreamMinRate
	}
	if c.MaxStreamSize == 0 {
		c.MaxStreamSize = DefaultMaxStreamSize
	}
	if c.StreamChunk == 0 {
		c.StreamChunk = min(DefaultStreamChunk, c.MaxFrameSize-4)
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerKey == 0 {
		c.MaxConnsPerKey = DefaultMaxConnsPerKey
	}
	if len(c.Versions) == 0 {
		c.Versions = SupportedVersions()
	} else {
		c.Versions = slices.Clone(c.Versions)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// highestCommon returns the highest version in both strictly increasing
// lists, or 0.
func highestCommon(a, b []uint8) uint8 {
	for i := len(a) - 1; i >= 0; i-- {
		if slices.Contains(b, a[i]) {
			return a[i]
		}
	}
	return 0
}
