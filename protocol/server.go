package protocol

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mfn/mfn/protocol/internal/wire"
)

// Handler serves the requests of authenticated peers. The Server calls it
// concurrently, with a context bounded by Config.RequestTimeout that is also
// cancelled when the connection ends. To send the peer a specific error,
// return a *ProtocolError (or a bare Code); any other error reaches the peer
// as CodeInternal without its text.
type Handler interface {
	// HandleHello admits a peer after version negotiation; it returns the
	// cluster origin and leader hint. Version and Supported in the returned
	// HelloAck are set by the Server.
	HandleHello(ctx context.Context, peer Peer, h *Hello) (*HelloAck, error)
	// FetchModel returns a piece of a model version; req.Length is already
	// capped to what fits a frame. ModelChunkOf does the slicing.
	FetchModel(ctx context.Context, peer Peer, req *ModelFetch) (*ModelChunk, error)
	// Submit stores a sealed update and acknowledges it only once it is
	// durable. sealed is owned by the callee. TraceParentFrom(ctx) is the
	// peer's traceparent, unchecked ("" when none).
	Submit(ctx context.Context, peer Peer, sealed []byte) (*Ack, error)
}

// ModelChunkOf answers req from a whole model held in memory: the bytes
// [req.Offset, req.Offset+req.Length) clipped to the model's end. hash must
// be the SHA-256 of model (callers keep it; it is not recomputed). An offset
// beyond the end is a CodeBadRequest error.
func ModelChunkOf(model []byte, hash [32]byte, req *ModelFetch) (*ModelChunk, error) {
	total := uint64(len(model))
	if req.Offset > total {
		return nil, &ProtocolError{Code: CodeBadRequest, Message: fmt.Sprintf("offset %d beyond model size %d", req.Offset, total)}
	}
	end := min(req.Offset+uint64(req.Length), total)
	return &ModelChunk{Offset: req.Offset, Total: total, Hash: hash, Data: model[req.Offset:end]}, nil
}

// overloadRetryAfter is the RetryAfter sent when MaxInflight is reached.
const overloadRetryAfter = time.Second

// subQueue is the announcements buffered per subscriber; a subscriber that
// falls this far behind is disconnected rather than allowed to hold memory.
const subQueue = 16

// Server serves the protocol on any number of Listeners with one Handler,
// and pushes round announcements to subscribed peers.
type Server struct {
	cfg      Config
	h        Handler
	log      *slog.Logger
	inflight chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	listeners map[Listener]struct{}
	conns     map[Conn]Listener // live connections and where they came from
	perKey    map[string]int    // live connections per peer key
	subs      map[*subscriber]struct{}
	latest    map[string]announcement // by job id

	refusals atomic.Uint64
	sampled  LogSampler
}

type announcement struct {
	payload []byte
	round   uint64
	expires time.Time                    // zero: until replaced or retracted
	to      func(ed25519.PublicKey) bool // nil: every peer (BroadcastTo)
}

type subscriber struct {
	version uint8
	ch      chan []byte       // complete frames
	key     ed25519.PublicKey // the peer's key
}

// NewServer returns a Server for h. It fails if cfg is invalid.
func NewServer(cfg Config, h Handler) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("protocol: NewServer: nil Handler")
	}
	cfg = cfg.withDefaults()
	if cfg.Instance == "" {
		cfg.Instance = newInstance()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, h: h, log: cfg.Logger,
		inflight: make(chan struct{}, cfg.MaxInflight),
		ctx:      ctx, cancel: cancel,
		listeners: make(map[Listener]struct{}),
		conns:     make(map[Conn]Listener),
		perKey:    make(map[string]int),
		subs:      make(map[*subscriber]struct{}),
		latest:    make(map[string]announcement),
	}, nil
}

// Serve accepts connections on ln until ctx is done, ln fails, or Close is
// called, and closes ln when it returns, which also ends the connections
// accepted from it. It returns ErrServerClosed after Close, ctx.Err() after
// cancellation, or the listener's error.
func (s *Server) Serve(ctx context.Context, ln Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		// Close the connections first: a QUIC listener that closes its
		// socket first could not tell the peers.
		s.mu.Lock()
		delete(s.listeners, ln)
		var mine []Conn
		for c, from := range s.conns {
			if from == ln {
				mine = append(mine, c)
			}
		}
		s.mu.Unlock()
		for _, c := range mine {
			c.Close()
		}
		ln.Close()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrServerClosed
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		if reason, ok := s.admitLocked(c); !ok {
			s.mu.Unlock()
			s.refuse(c, reason)
			continue
		}
		s.conns[c] = ln
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// Close stops all listeners, closes every connection and waits for all
// handlers and subscriptions to return. Serve calls then return
// ErrServerClosed.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	conns := make([]Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	lns := make([]Listener, 0, len(s.listeners))
	for ln := range s.listeners {
		lns = append(lns, ln)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	for _, ln := range lns {
		ln.Close()
	}
	s.wg.Wait()
	return nil
}

// Broadcast pushes ann to every subscribed peer and remembers it as the
// current announcement of its job until ann.Deadline: it is
// BroadcastUntil(ann, ann.Deadline). A round that stays open past its
// announced Deadline (a soft deadline) should use BroadcastUntil with the
// time the round really ends, or peers that subscribe after the Deadline
// never hear of it.
func (s *Server) Broadcast(ann *RoundAnnouncement) error {
	return s.BroadcastUntil(ann, ann.Deadline)
}

// BroadcastUntil pushes ann to every subscribed peer and remembers it as the
// current announcement of its job: peers that subscribe later receive it
// first, until expires passes (the zero Time: never), Retract removes it,
// or a newer announcement of the same job replaces it. Delivery is best
// effort: a subscriber that is too far behind is disconnected (its client
// sees the channel close and resubscribes). It fails only if ann cannot be
// encoded.
func (s *Server) BroadcastUntil(ann *RoundAnnouncement, expires time.Time) error {
	return s.BroadcastTo(ann, expires, nil)
}

// BroadcastTo is BroadcastUntil for the peers whose key to accepts, now
// and when they subscribe later (nil to: every peer). Other peers are not
// told of the round (a round announced to a sample of the nodes).
func (s *Server) BroadcastTo(ann *RoundAnnouncement, expires time.Time, to func(ed25519.PublicKey) bool) error {
	payload, err := ann.AppendBinary(nil)
	if err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for job, a := range s.latest {
		if !a.expires.IsZero() && a.expires.Before(now) {
			delete(s.latest, job)
		}
	}
	s.latest[ann.JobID] = announcement{payload: payload, round: ann.Round, expires: expires, to: to}
	frames := map[uint8][]byte{}
	for sub := range s.subs {
		if to != nil && !to(sub.key) {
			continue
		}
		fr, ok := frames[sub.version]
		if !ok {
			fr = frameBytes(sub.version, wire.TypeRoundAnnouncement, payload)
			frames[sub.version] = fr
		}
		select {
		case sub.ch <- fr:
		default:
			delete(s.subs, sub)
			close(sub.ch)
			s.log.Warn("protocol: subscriber too slow, disconnected")
		}
	}
	return nil
}

// Retract forgets the remembered announcement of round of job, so that
// peers subscribing from now on no longer receive it; call it when the
// round closes or fails. Subscribers that already received it are not
// told (the round's end answers their submissions). It reports whether an
// announcement was forgotten; a newer round of the job is left alone.
func (s *Server) Retract(jobID string, round uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.latest[jobID]; ok && a.round == round {
		delete(s.latest, jobID)
		return true
	}
	return false
}

// Disconnect closes every connection authenticated with pub, for example
// when its node is revoked (new handshakes are refused by the ServerConfig
// callback, existing connections are ended here). It returns how many
// connections it closed.
func (s *Server) Disconnect(pub ed25519.PublicKey) int {
	s.mu.Lock()
	var victims []Conn
	for c := range s.conns {
		if c.PeerKey().Equal(pub) {
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		c.Close()
	}
	return len(victims)
}

// Subscribers returns the number of live subscriptions.
func (s *Server) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

func frameBytes(version uint8, t wire.Type, payload []byte) []byte {
	b := make([]byte, 0, wire.HeaderSize+len(payload))
	b = wire.AppendHeader(b, version, t, len(payload))
	return append(b, payload...)
}

type serverConn struct {
	s       *Server
	c       Conn
	version atomic.Uint32 // negotiated; 0 before Hello
	log     *slog.Logger
}

func (sc *serverConn) peer() Peer {
	return Peer{Key: sc.c.PeerKey(), Addr: sc.c.RemoteAddr(), Version: uint8(sc.version.Load())}
}

func (s *Server) serveConn(c Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.releaseLocked(c)
		s.mu.Unlock()
		c.Close()
	}()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	sc := &serverConn{s: s, c: c, log: s.log.With("peer", fmt.Sprintf("%x", c.PeerKey()[:8]), "addr", c.RemoteAddr().String())}
	sc.log.Debug("protocol: connection accepted")

	// A peer that connects but never completes Hello is dropped.
	helloTimer := time.AfterFunc(s.cfg.HandshakeTimeout, func() {
		if sc.version.Load() == 0 {
			sc.log.Info("protocol: no Hello in time, closing", "timeout", s.cfg.HandshakeTimeout)
			c.Close()
		}
	})
	defer helloTimer.Stop()

	sem := make(chan struct{}, s.cfg.MaxStreamsPerConn)
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		case <-c.Done():
			return
		}
		st, err := c.AcceptStream(ctx)
		if err != nil {
			sc.log.Debug("protocol: connection ended", "err", err)
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-sem }()
			sc.serveStream(ctx, st)
		}()
	}
}

// reply writes one response frame and closes the stream's sending side.
func (sc *serverConn) reply(f *framer, version uint8, m Message) {
	if err := f.write(version, m); err != nil {
		sc.log.Debug("protocol: writing response", "type", m.wireType(), "err", err)
		f.s.Abort()
		return
	}
	f.s.CloseWrite()
}

func (sc *serverConn) replyError(f *framer, pe *ProtocolError) {
	if len(pe.Message) > MaxErrorMsgLen {
		pe = &ProtocolError{Code: pe.Code, Message: pe.Message[:MaxErrorMsgLen], LeaderAddr: pe.LeaderAddr, RetryAfter: pe.RetryAfter}
	}
	sc.reply(f, 0, pe)
}

func (sc *serverConn) serveStream(ctx context.Context, st Stream) {
	s := sc.s
	f := &framer{s: st, maxFrame: s.cfg.MaxFrameSize, timeout: s.cfg.RequestTimeout}
	ver, m, err := f.read()
	if _, streamed := m.(*SubmitStream); err == nil && !streamed {
		err = f.expectEOF() // a SubmitStream's chunks follow it
	}
	if err != nil {
		sc.log.Debug("protocol: bad request", "err", err)
		var de *DecodeError
		if errors.As(err, &de) || errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrUnknownType) || errors.Is(err, ErrTrailingBytes) {
			// Best effort: tell the peer, and read nothing more.
			st.CancelRead()
			sc.replyError(f, &ProtocolError{Code: CodeBadRequest, Message: err.Error()})
			return
		}
		st.Abort()
		return
	}

	if h, ok := m.(*Hello); ok {
		if ver != 0 {
			sc.replyError(f, &ProtocolError{Code: CodeVersionMismatch, Message: fmt.Sprintf("Hello frame with version byte %d, want 0", ver)})
			return
		}
		sc.hello(ctx, f, h)
		return
	}
	negotiated := uint8(sc.version.Load())
	if negotiated == 0 {
		sc.replyError(f, &ProtocolError{Code: CodeBadRequest, Message: "Hello required before " + m.wireType().String()})
		return
	}
	if ver != negotiated {
		sc.replyError(f, &ProtocolError{Code: CodeVersionMismatch, Message: fmt.Sprintf("frame version %d, negotiated %d", ver, negotiated)})
		return
	}
	switch m := m.(type) {
	case *subscribe:
		sc.subscription(ctx, f, negotiated)
	case *ModelFetch:
		sc.call(ctx, f, negotiated, func(ctx context.Context) (Message, error) {
			req := *m
			req.Length = uint32(min(uint64(req.Length), uint64(s.cfg.MaxFrameSize-chunkOverhead)))
			c, err := s.h.FetchModel(ctx, sc.peer(), &req)
			if err == nil && c == nil {
				err = errors.New("nil ModelChunk")
			}
			return c, err
		})
	case *SubmitUpdate:
		sc.call(ctx, f, negotiated, func(ctx context.Context) (Message, error) {
			if m.TraceParent != "" && negotiated >= Version3 {
				ctx = WithTraceParent(ctx, m.TraceParent)
			}
			a, err := s.h.Submit(ctx, sc.peer(), m.Sealed)
			if err == nil && a == nil {
				err = errors.New("nil Ack")
			}
			return a, err
		})
	case *SubmitEval:
		sc.submitEval(ctx, f, negotiated, m) // eval.go
	case *SubmitStream:
		sc.submitStream(ctx, f, negotiated, m)
	default:
		f.s.CancelRead()
		sc.replyError(f, &ProtocolError{Code: CodeBadRequest, Message: m.wireType().String() + " is not a request"})
	}
}

func (sc *serverConn) hello(ctx context.Context, f *framer, h *Hello) {
	s := sc.s
	v := highestCommon(s.cfg.Versions, h.Versions)
	if v == 0 {
		sc.log.Info("protocol: no common version", "client", h.Versions, "server", s.cfg.Versions)
		sc.reply(f, 0, &HelloAck{Supported: s.cfg.Versions})
		return
	}
	var ack *HelloAck
	err := sc.withInflight(ctx, func(ctx context.Context) error {
		var err error
		ack, err = s.h.HandleHello(ctx, Peer{Key: sc.c.PeerKey(), Addr: sc.c.RemoteAddr()}, h)
		if err == nil && ack == nil {
			err = errors.New("nil HelloAck")
		}
		return err
	})
	if err != nil {
		sc.replyError(f, toProtocolError(err))
		return
	}
	out := *ack
	out.Version, out.Supported = v, s.cfg.Versions
	out.Instance = s.cfg.Instance
	if v < Version2 {
		out.Instance, out.Term = "", 0
	}
	// Set before answering: the peer may send its next request on another
	// stream as soon as it reads the answer.
	sc.version.Store(uint32(v))
	sc.reply(f, 0, &out)
}

// call runs a handler under the inflight limit and answers with its result.
func (sc *serverConn) call(ctx context.Context, f *framer, version uint8, fn func(context.Context) (Message, error)) {
	var resp Message
	err := sc.withInflight(ctx, func(ctx context.Context) error {
		var err error
		resp, err = fn(ctx)
		return err
	})
	if err != nil {
		sc.replyError(f, toProtocolError(err))
		return
	}
	sc.reply(f, version, resp)
}

var errOverloaded = &ProtocolError{Code: CodeRateLimited, Message: "server busy", RetryAfter: overloadRetryAfter}

func (sc *serverConn) withInflight(ctx context.Context, fn func(context.Context) error) error {
	select {
	case sc.s.inflight <- struct{}{}:
	default:
		return errOverloaded
	}
	defer func() { <-sc.s.inflight }()
	ctx, cancel := context.WithTimeout(ctx, sc.s.cfg.RequestTimeout)
	defer cancel()
	return fn(ctx)
}

// subscription streams announcements to one peer until the stream, the
// connection or the server ends.
func (sc *serverConn) subscription(ctx context.Context, f *framer, version uint8) {
	s := sc.s
	sub := &subscriber{version: version, ch: make(chan []byte, subQueue), key: sc.c.PeerKey()}
	now := time.Now()
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	var pending [][]byte
	for _, a := range s.latest {
		if a.to != nil && !a.to(sub.key) {
			continue
		}
		if a.expires.IsZero() || a.expires.After(now) {
			pending = append(pending, frameBytes(version, wire.TypeRoundAnnouncement, a.payload))
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if _, ok := s.subs[sub]; ok {
			delete(s.subs, sub)
			close(sub.ch)
		}
		s.mu.Unlock()
	}()

	hb, err := frameOf(version, &heartbeat{Interval: s.cfg.Heartbeat})
	if err != nil {
		panic(err) // Heartbeat is validated positive by Config.
	}
	// The first heartbeat accepts the subscription.
	if err := f.writeFrame(hb); err != nil {
		f.s.Abort()
		return
	}
	for _, fr := range pending {
		if err := f.writeFrame(fr); err != nil {
			f.s.Abort()
			return
		}
	}
	sc.log.Debug("protocol: subscribed")
	tick := time.NewTicker(s.cfg.Heartbeat)
	defer tick.Stop()
	for {
		var fr []byte
		select {
		case b, ok := <-sub.ch:
			if !ok {
				f.s.Abort()
				return
			}
			fr = b
		case <-tick.C:
			fr = hb
		case <-ctx.Done():
			f.s.CloseWrite()
			return
		}
		if err := f.writeFrame(fr); err != nil {
			sc.log.Debug("protocol: subscription ended", "err", err)
			f.s.Abort()
			return
		}
	}
}

func frameOf(version uint8, m Message) ([]byte, error) {
	buf, err := m.AppendBinary(make([]byte, wire.HeaderSize))
	if err != nil {
		return nil, err
	}
	wire.PutHeader(buf, version, m.wireType(), len(buf)-wire.HeaderSize)
	return buf, nil
}
