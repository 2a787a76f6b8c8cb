package protocol

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// ErrBadChunk: the server answered a ModelFetch with a chunk that does not
// fit the request or the earlier chunks (wrong offset, changed total, no
// progress, too long).
var ErrBadChunk = errors.New("protocol: inconsistent model chunk")

// Client is one node's connection to a coordinator. Call Hello first; the
// other requests fail with ErrHelloRequired until it succeeds. Methods are
// safe for concurrent use; each request uses its own stream.
type Client struct {
	conn    Conn
	cfg     Config
	log     *slog.Logger
	version atomic.Uint32
}

// Dial connects to addr through d and returns a Client. It fails if cfg is
// invalid or the connection cannot be established and authenticated.
func Dial(ctx context.Context, d Dialer, addr string, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := d.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Client{conn: c, cfg: cfg, log: cfg.Logger}, nil
}

// PeerKey returns the server's verified Ed25519 key.
func (c *Client) PeerKey() ed25519.PublicKey { return c.conn.PeerKey() }

// Version returns the negotiated protocol version, 0 before Hello.
func (c *Client) Version() uint8 { return uint8(c.version.Load()) }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.conn.Done() }

// Close ends the connection; pending requests fail and subscriptions close.
func (c *Client) Close() error { return c.conn.Close() }

// Hello negotiates the protocol version and introduces the node. Empty
// h.Versions means Config.Versions. With no common version it fails with a
// *VersionMismatchError (matching ErrVersionMismatch) holding both lists.
// Errors sent by the server come back as *ProtocolError.
func (c *Client) Hello(ctx context.Context, h *Hello) (*HelloAck, error) {
	req := *h
	if len(req.Versions) == 0 {
		req.Versions = c.cfg.Versions
	}
	m, err := c.roundTrip(ctx, 0, &req)
	if err != nil {
		return nil, err
	}
	ack, ok := m.(*HelloAck)
	if !ok {
		return nil, fmt.Errorf("%w: %v in answer to Hello", ErrUnexpectedMessage, m.wireType())
	}
	if ack.Version == 0 {
		return nil, &VersionMismatchError{Client: slices.Clone(req.Versions), Server: ack.Supported}
	}
	if !slices.Contains(req.Versions, ack.Version) || !slices.Contains(SupportedVersions(), ack.Version) {
		return nil, fmt.Errorf("protocol: server chose version %d, not offered (%v): %w", ack.Version, req.Versions, ErrVersionMismatch)
	}
	c.version.Store(uint32(ack.Version))
	return ack, nil
}

// Submit sends a sealed envelope and returns the server's acknowledgement:
// the update is then durable. A traceparent stored in ctx by
// WithTraceParent goes with it when the session speaks Version3. Rejections come back as *ProtocolError
// (errors.Is against CodeNotLeader, CodeRoundClosed, CodeDuplicate, ...).
func (c *Client) Submit(ctx context.Context, sealed []byte) (*Ack, error) {
	v, err := c.negotiated()
	if err != nil {
		return nil, err
	}
	req := &SubmitUpdate{Sealed: sealed}
	if v >= Version3 {
		// A value the encoder would refuse is dropped, never a failed Submit.
		if tp := TraceParentFrom(ctx); len(tp) <= MaxTraceParentLen && utf8.ValidString(tp) {
			req.TraceParent = tp
		}
	}
	m, err := c.roundTrip(ctx, v, req)
	if err != nil {
		return nil, err
	}
	ack, ok := m.(*Ack)
	if !ok {
		return nil, fmt.Errorf("%w: %v in answer to SubmitUpdate", ErrUnexpectedMessage, m.wireType())
	}
	return ack, nil
}

// FetchModel downloads a whole model version in chunks of Config.ChunkSize
// bytes and checks that its SHA-256 is want. Each chunk must carry want as
// the whole-model hash, so a server holding another model is caught at the
// first chunk. It fails with a *HashMismatchError (ErrHashMismatch),
// ErrModelTooLarge beyond Config.MaxModelSize, ErrBadChunk for inconsistent
// chunks, or the server's *ProtocolError.
func (c *Client) FetchModel(ctx context.Context, job string, version uint64, want [32]byte) ([]byte, error) {
	v, err := c.negotiated()
	if err != nil {
		return nil, err
	}
	var (
		model  []byte
		total  uint64
		offset uint64
	)
	for first := true; first || offset < total; first = false {
		req := &ModelFetch{JobID: job, Version: version, Offset: offset, Length: uint32(c.cfg.ChunkSize)}
		if !first {
			req.Length = uint32(min(uint64(req.Length), total-offset))
		}
		m, err := c.roundTrip(ctx, v, req)
		if err != nil {
			return nil, err
		}
		ch, ok := m.(*ModelChunk)
		if !ok {
			return nil, fmt.Errorf("%w: %v in answer to ModelFetch", ErrUnexpectedMessage, m.wireType())
		}
		if ch.Hash != want {
			return nil, &HashMismatchError{Job: job, Version: version, Want: want, Got: ch.Hash}
		}
		if first {
			total = ch.Total
			if total > uint64(c.cfg.MaxModelSize) {
				return nil, fmt.Errorf("%w: model %s version %d has %d bytes, limit %d", ErrModelTooLarge, job, version, total, c.cfg.MaxModelSize)
			}
			// Grow with the data rather than trusting Total for one big
			// allocation.
			model = make([]byte, 0, min(total, 16<<20))
		}
		switch {
		case ch.Total != total:
			return nil, fmt.Errorf("%w: total changed from %d to %d", ErrBadChunk, total, ch.Total)
		case ch.Offset != offset:
			return nil, fmt.Errorf("%w: offset %d, asked for %d", ErrBadChunk, ch.Offset, offset)
		case uint64(len(ch.Data)) > uint64(req.Length):
			return nil, fmt.Errorf("%w: %d bytes, asked for %d", ErrBadChunk, len(ch.Data), req.Length)
		case len(ch.Data) == 0 && offset < total:
			return nil, fmt.Errorf("%w: empty chunk at offset %d of %d", ErrBadChunk, offset, total)
		}
		model = append(model, ch.Data...)
		offset += uint64(len(ch.Data))
	}
	if got := sha256.Sum256(model); got != want {
		return nil, &HashMismatchError{Job: job, Version: version, Want: want, Got: got}
	}
	return model, nil
}

// Subscribe asks the server to push round announcements. It returns once
// the server has accepted; the channel then delivers announcements (first
// the currently open rounds) and is closed when ctx is done, the
// connection ends, or the server goes silent for three heartbeat intervals.
// The caller should drain the channel; it is not closed before ctx is done
// if the caller stops reading, which also stalls the server's pushes
// until the server disconnects the subscription. After a close with
// ctx still live, reconnect and subscribe again.
func (c *Client) Subscribe(ctx context.Context) (<-chan *RoundAnnouncement, error) {
	v, err := c.negotiated()
	if err != nil {
		return nil, err
	}
	st, err := c.conn.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, st.Abort)
	f := &framer{s: st, maxFrame: c.cfg.MaxFrameSize, timeout: c.cfg.RequestTimeout}
	fail := func(err error) (<-chan *RoundAnnouncement, error) {
		stop()
		st.Abort()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := f.write(v, &subscribe{}); err != nil {
		return fail(err)
	}
	if err := st.CloseWrite(); err != nil {
		return fail(err)
	}
	hv, m, err := f.read()
	if err != nil {
		return fail(err)
	}
	switch m := m.(type) {
	case *ProtocolError:
		return fail(m)
	case *heartbeat:
		if hv != v {
			return fail(fmt.Errorf("protocol: subscription frame version %d, negotiated %d: %w", hv, v, ErrVersionMismatch))
		}
		f.timeout = heartbeatTimeout(m.Interval)
	default:
		return fail(fmt.Errorf("%w: %v in answer to Subscribe", ErrUnexpectedMessage, m.wireType()))
	}
	ch := make(chan *RoundAnnouncement, subQueue)
	go func() {
		defer close(ch)
		defer stop()
		defer st.Abort()
		for {
			fv, m, err := f.read()
			if err != nil {
				c.log.Debug("protocol: subscription ended", "err", err)
				return
			}
			if fv != v {
				c.log.Debug("protocol: subscription frame with wrong version", "version", fv)
				return
			}
			switch m := m.(type) {
			case *heartbeat:
				f.timeout = heartbeatTimeout(m.Interval)
			case *RoundAnnouncement:
				select {
				case ch <- m:
				case <-ctx.Done():
					return
				}
			default:
				c.log.Debug("protocol: unexpected message on subscription", "type", m.wireType())
				return
			}
		}
	}()
	return ch, nil
}

func (c *Client) negotiated() (uint8, error) {
	v := uint8(c.version.Load())
	if v == 0 {
		return 0, ErrHelloRequired
	}
	return v, nil
}

// roundTrip sends one request on a new stream and reads one response. A
// *ProtocolError response is returned as the error.
func (c *Client) roundTrip(ctx context.Context, version uint8, req Message) (Message, error) {
	st, err := c.conn.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, st.Abort)
	defer stop()
	dl, _ := ctx.Deadline()
	f := &framer{s: st, maxFrame: c.cfg.MaxFrameSize, timeout: c.cfg.RequestTimeout, deadline: dl}
	m, err := c.exchange(f, version, req)
	if err != nil {
		st.Abort()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("protocol: %v: %w", req.wireType(), ctx.Err())
		}
		if !dl.IsZero() && !time.Now().Before(dl) {
			// The stream deadline taken from ctx fired first.
			return nil, fmt.Errorf("protocol: %v: %w", req.wireType(), context.DeadlineExceeded)
		}
		return nil, err
	}
	return m, nil
}

func (c *Client) exchange(f *framer, version uint8, req Message) (Message, error) {
	if err := f.write(version, req); err != nil {
		return nil, err
	}
	if err := f.s.CloseWrite(); err != nil {
		return nil, err
	}
	// The server may spend up to RequestTimeout in its handler after
	// reading the request; wait a little longer so that its answer (or
	// error) arrives before this side gives up.
	f.timeout = c.cfg.RequestTimeout + c.cfg.RequestTimeout/2
	v, m, err := f.read()
	if err != nil {
		return nil, err
	}
	if err := f.expectEOF(); err != nil {
		return nil, err
	}
	switch m.(type) {
	case *ProtocolError, *HelloAck:
		if v != 0 {
			return nil, fmt.Errorf("protocol: %v frame with version byte %d, want 0: %w", m.wireType(), v, ErrVersionMismatch)
		}
	default:
		if v != version {
			return nil, fmt.Errorf("protocol: %v frame version %d, negotiated %d: %w", m.wireType(), v, version, ErrVersionMismatch)
		}
	}
	if pe, ok := m.(*ProtocolError); ok {
		return nil, pe
	}
	return m, nil
}

// maxHeartbeatTimeout bounds how long a subscriber waits for a frame, so a
// server announcing an absurd heartbeat interval cannot overflow the
// deadline arithmetic or hold the subscription without a deadline.
const maxHeartbeatTimeout = time.Hour

// heartbeatTimeout is the silence after which a subscription is taken as
// dead: three missed heartbeats, within (0, maxHeartbeatTimeout].
func heartbeatTimeout(interval time.Duration) time.Duration {
	if interval <= 0 || interval > maxHeartbeatTimeout/3 {
		return maxHeartbeatTimeout
	}
	return 3 * interval
}
