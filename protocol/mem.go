package protocol

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// MemNetwork is an in-memory network for tests: the same Listener, Dialer,
// Conn and Stream contracts as QUIC, including key pinning and client-key
// verification, per-connection stream limits, deadlines and flow control,
// but no sockets and no encryption. Connections never go idle, so
// Config.IdleTimeout does not apply; Config.HandshakeTimeout bounds Dial
// waiting for the listener to accept. It is safe for concurrent use.
type MemNetwork struct {
	mu        sync.Mutex
	listeners map[string]*memListener
}

// NewMemNetwork returns an empty in-memory network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{listeners: make(map[string]*memListener)}
}

// memWindow is the bytes a stream direction buffers before Write blocks,
// standing in for QUIC flow control.
const memWindow = 256 << 10

var errStreamAborted = errors.New("protocol: stream aborted")

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

// Listen registers a listener at addr (any string). verifyClient decides,
// like in ServerConfig, which client keys are accepted. It fails if addr is
// taken or cfg is invalid.
func (n *MemNetwork) Listen(addr string, id Identity, verifyClient func(ed25519.PublicKey) error, cfg Config) (Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if verifyClient == nil {
		panic("protocol: MemNetwork.Listen: nil verifyClient")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.listeners[addr]; ok {
		return nil, fmt.Errorf("protocol: listen mem %s: address in use", addr)
	}
	l := &memListener{
		net: n, addr: memAddr(addr), key: id.PublicKey(), verify: verifyClient,
		cfg: cfg.withDefaults(), accept: make(chan *memConn), done: make(chan struct{}),
	}
	n.listeners[addr] = l
	return l, nil
}

// Dialer returns a Dialer presenting id and accepting only servers whose key
// is in pinned, like ClientConfig.
func (n *MemNetwork) Dialer(id Identity, pinned []ed25519.PublicKey, cfg Config) Dialer {
	return &memDialer{net: n, key: id.PublicKey(), pinned: append([]ed25519.PublicKey(nil), pinned...), cfg: cfg}
}

type memListener struct {
	net    *MemNetwork
	addr   memAddr
	key    ed25519.PublicKey
	verify func(ed25519.PublicKey) error
	cfg    Config
	accept chan *memConn
	done   chan struct{}
	once   sync.Once

	mu    sync.Mutex
	conns map[*memConn]struct{} // accepted, for Close
}

func (l *memListener) Accept(ctx context.Context) (Conn, error) {
	select {
	case c := <-l.accept:
		l.mu.Lock()
		if l.conns == nil {
			l.conns = make(map[*memConn]struct{})
		}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		go func() {
			<-c.done
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("protocol: accept mem %s: %w", l.addr, ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *memListener) Addr() net.Addr { return l.addr }

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.net.mu.Lock()
		if l.net.listeners[string(l.addr)] == l {
			delete(l.net.listeners, string(l.addr))
		}
		l.net.mu.Unlock()
		l.mu.Lock()
		conns := l.conns
		l.conns = nil
		l.mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	return nil
}

type memDialer struct {
	net    *MemNetwork
	key    ed25519.PublicKey
	pinned []ed25519.PublicKey
	cfg    Config
}

var memClientPort struct {
	sync.Mutex
	n int
}

func (d *memDialer) Dial(ctx context.Context, addr string) (Conn, error) {
	if err := d.cfg.Validate(); err != nil {
		return nil, err
	}
	d.net.mu.Lock()
	l := d.net.listeners[addr]
	d.net.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("protocol: dial mem %s: no listener: %w", addr, ErrClosed)
	}
	// The same two checks as the TLS handshake: the client pins the
	// server, the server verifies the client.
	if err := checkPinned(l.key, d.pinned); err != nil {
		return nil, fmt.Errorf("protocol: dial mem %s: %w", addr, err)
	}
	if err := l.verify(d.key); err != nil {
		return nil, fmt.Errorf("protocol: dial mem %s: server rejected client key: %w", addr, err)
	}
	memClientPort.Lock()
	memClientPort.n++
	local := memAddr(fmt.Sprintf("mem-client-%d", memClientPort.n))
	memClientPort.Unlock()

	cl := newMemConn(local, l.addr, l.key, 0)
	sv := newMemConn(l.addr, local, d.key, l.cfg.MaxStreamsPerConn)
	cl.peer, sv.peer = sv, cl
	hs := d.cfg.withDefaults().HandshakeTimeout
	timer := time.NewTimer(hs)
	defer timer.Stop()
	select {
	case l.accept <- sv:
		return cl, nil
	case <-l.done:
		return nil, fmt.Errorf("protocol: dial mem %s: %w", addr, ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("protocol: dial mem %s: %w", addr, ctx.Err())
	case <-timer.C:
		return nil, fmt.Errorf("protocol: dial mem %s: handshake timeout after %v", addr, hs)
	}
}

type memConn struct {
	local, remote memAddr
	peerKey       ed25519.PublicKey
	peer          *memConn
	// slots bounds the streams the peer may have open towards this side;
	// nil means the peer may open none.
	slots  chan struct{}
	accept chan *memStream
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	streams map[*memPipe]struct{}
}

func newMemConn(local, remote memAddr, peerKey ed25519.PublicKey, maxIncoming int) *memConn {
	c := &memConn{
		local: local, remote: remote, peerKey: peerKey,
		accept: make(chan *memStream), done: make(chan struct{}),
		streams: make(map[*memPipe]struct{}),
	}
	if maxIncoming > 0 {
		c.slots = make(chan struct{}, maxIncoming)
	}
	return c
}

func (c *memConn) OpenStream(ctx context.Context) (Stream, error) {
	p := c.peer
	if p.slots == nil {
		return nil, errors.New("protocol: peer accepts no streams")
	}
	select {
	case p.slots <- struct{}{}:
	case <-c.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ab, ba := newMemPipe(), newMemPipe()
	// As in QUIC, the stream's slot is freed once both directions have
	// finished (read to EOF, or aborted).
	var left atomic.Int32
	left.Store(2)
	finish := func(pp *memPipe) {
		c.untrack(pp)
		p.untrack(pp)
		if left.Add(-1) == 0 {
			<-p.slots
		}
	}
	ab.onDone = func() { finish(ab) }
	ba.onDone = func() { finish(ba) }
	local := &memStream{in: ba, out: ab}
	remote := &memStream{in: ab, out: ba}
	if !c.track(ab, ba) || !p.track(ab, ba) {
		ab.abort(ErrClosed)
		ba.abort(ErrClosed)
		return nil, ErrClosed
	}
	// Like QUIC, the peer learns of the stream asynchronously.
	go func() {
		select {
		case p.accept <- remote:
		case <-p.done:
		}
	}()
	return local, nil
}

func (c *memConn) track(ps ...*memPipe) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams == nil {
		return false
	}
	for _, p := range ps {
		c.streams[p] = struct{}{}
	}
	return true
}

func (c *memConn) untrack(p *memPipe) {
	c.mu.Lock()
	if c.streams != nil {
		delete(c.streams, p)
	}
	c.mu.Unlock()
}

func (c *memConn) AcceptStream(ctx context.Context) (Stream, error) {
	select {
	case s := <-c.accept:
		return s, nil
	case <-c.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *memConn) PeerKey() ed25519.PublicKey { return c.peerKey }
func (c *memConn) RemoteAddr() net.Addr       { return c.remote }
func (c *memConn) Done() <-chan struct{}      { return c.done }

// Close ends both ends of the connection and fails every stream.
func (c *memConn) Close() error {
	c.closeLocal()
	c.peer.closeLocal()
	return nil
}

func (c *memConn) closeLocal() {
	c.once.Do(func() {
		close(c.done)
		c.mu.Lock()
		ps := c.streams
		c.streams = nil
		c.mu.Unlock()
		for p := range ps {
			p.abort(ErrClosed)
		}
	})
}

// memPipe is one direction of a stream: a bounded buffer with EOF, abort
// and wake-ups for one reader and one writer.
type memPipe struct {
	mu     sync.Mutex
	buf    []byte
	eof    bool
	err    error
	rdl    time.Time
	wdl    time.Time
	rwake  chan struct{}
	wwake  chan struct{}
	onDone func()
	done   bool
}

func newMemPipe() *memPipe {
	return &memPipe{rwake: make(chan struct{}, 1), wwake: make(chan struct{}, 1)}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (p *memPipe) finishLocked() {
	if !p.done && p.onDone != nil {
		p.done = true
		go p.onDone()
	}
}

func (p *memPipe) abort(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.finishLocked()
	p.mu.Unlock()
	poke(p.rwake)
	poke(p.wwake)
}

// wait blocks until woken or the deadline passes; it reports false on
// deadline.
func wait(ch chan struct{}, deadline time.Time) bool {
	if deadline.IsZero() {
		<-ch
		return true
	}
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

func (p *memPipe) read(b []byte) (int, error) {
	for {
		p.mu.Lock()
		if p.err != nil {
			err := p.err
			p.mu.Unlock()
			return 0, err
		}
		if len(p.buf) > 0 {
			n := copy(b, p.buf)
			p.buf = p.buf[n:]
			if len(p.buf) == 0 {
				p.buf = nil
			}
			p.mu.Unlock()
			poke(p.wwake)
			return n, nil
		}
		if p.eof {
			p.finishLocked()
			p.mu.Unlock()
			return 0, io.EOF
		}
		dl := p.rdl
		p.mu.Unlock()
		if !dl.IsZero() && !time.Now().Before(dl) {
			return 0, os.ErrDeadlineExceeded
		}
		if !wait(p.rwake, dl) {
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (p *memPipe) write(b []byte) (int, error) {
	written := 0
	for {
		p.mu.Lock()
		if p.err != nil {
			err := p.err
			p.mu.Unlock()
			return written, err
		}
		if p.eof {
			p.mu.Unlock()
			return written, fmt.Errorf("protocol: write after CloseWrite: %w", ErrClosed)
		}
		if space := memWindow - len(p.buf); space > 0 {
			n := min(space, len(b)-written)
			p.buf = append(p.buf, b[written:written+n]...)
			written += n
		}
		dl := p.wdl
		p.mu.Unlock()
		poke(p.rwake)
		if written == len(b) {
			return written, nil
		}
		if !dl.IsZero() && !time.Now().Before(dl) {
			return written, os.ErrDeadlineExceeded
		}
		if !wait(p.wwake, dl) {
			return written, os.ErrDeadlineExceeded
		}
	}
}

type memStream struct {
	in, out *memPipe
}

func (s *memStream) Read(b []byte) (int, error)  { return s.in.read(b) }
func (s *memStream) Write(b []byte) (int, error) { return s.out.write(b) }

func (s *memStream) CloseWrite() error {
	s.out.mu.Lock()
	s.out.eof = true
	s.out.mu.Unlock()
	poke(s.out.rwake)
	return nil
}

func (s *memStream) CancelRead() { s.in.abort(errStreamAborted) }

func (s *memStream) Abort() {
	s.in.abort(errStreamAborted)
	s.out.abort(errStreamAborted)
}

func (s *memStream) SetReadDeadline(t time.Time) error {
	s.in.mu.Lock()
	s.in.rdl = t
	s.in.mu.Unlock()
	poke(s.in.rwake)
	return nil
}

func (s *memStream) SetWriteDeadline(t time.Time) error {
	s.out.mu.Lock()
	s.out.wdl = t
	s.out.mu.Unlock()
	poke(s.out.wwake)
	return nil
}
