package protocol

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testKey returns a fixed Ed25519 key for seed byte n.
func testKey(n byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = n
	}
	return ed25519.NewKeyFromSeed(seed)
}

func testIdentity(t testing.TB, n byte) Identity {
	t.Helper()
	id, err := NewIdentity(testKey(n))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tWriter writes log lines to t.Log while the test runs and drops them
// afterwards (goroutines may still be winding down).
type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func testConfig(t testing.TB) Config {
	w := &tWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return Config{
		RequestTimeout:   2 * time.Second,
		HandshakeTimeout: 2 * time.Second,
		IdleTimeout:      5 * time.Second,
		Heartbeat:        200 * time.Millisecond,
		Logger:           slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// transport builds listeners and dialers of one kind; every conformance
// test runs against each.
type transport interface {
	listen(t testing.TB, id Identity, verify func(ed25519.PublicKey) error, cfg Config) Listener
	dialer(id Identity, pinned []ed25519.PublicKey, cfg Config) Dialer
}

type quicTransport struct{}

func (quicTransport) listen(t testing.TB, id Identity, verify func(ed25519.PublicKey) error, cfg Config) Listener {
	t.Helper()
	ln, err := ListenQUIC("127.0.0.1:0", ServerConfig(id, verify), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func (quicTransport) dialer(id Identity, pinned []ed25519.PublicKey, cfg Config) Dialer {
	return &QUICDialer{TLS: ClientConfig(id, pinned), Config: cfg}
}

type memTransport struct{ net *MemNetwork }

func (m memTransport) listen(t testing.TB, id Identity, verify func(ed25519.PublicKey) error, cfg Config) Listener {
	t.Helper()
	ln, err := m.net.Listen("coordinator-1", id, verify, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func (m memTransport) dialer(id Identity, pinned []ed25519.PublicKey, cfg Config) Dialer {
	return m.net.Dialer(id, pinned, cfg)
}

// forEachTransport runs f as a subtest per transport.
func forEachTransport(t *testing.T, f func(t *testing.T, tr transport)) {
	t.Run("quic", func(t *testing.T) { t.Parallel(); f(t, quicTransport{}) })
	t.Run("mem", func(t *testing.T) { t.Parallel(); f(t, memTransport{NewMemNetwork()}) })
}

// testHandler is a scriptable Handler.
type testHandler struct {
	origin string
	model  []byte
	hash   [32]byte
	// corrupt, if set, flips a byte of the served data at this offset.
	corrupt int64

	mu        sync.Mutex
	submitted [][]byte
	traces    []string // TraceParentFrom of each Submit's ctx
	peers     []Peer
	hellos    int
	submitErr error
	helloErr  error
	block     chan struct{} // if non-nil, Submit waits for it
	inflight  atomic.Int32
	maxSeen   atomic.Int32
}

func newTestHandler(model []byte) *testHandler {
	return &testHandler{origin: "mfn-test", model: model, hash: sha256.Sum256(model), corrupt: -1}
}

func (h *testHandler) HandleHello(ctx context.Context, p Peer, m *Hello) (*HelloAck, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hellos++
	h.peers = append(h.peers, p)
	if h.helloErr != nil {
		return nil, h.helloErr
	}
	return &HelloAck{ClusterOrigin: h.origin, LeaderHint: "127.0.0.1:7443", Term: 7}, nil
}

func (h *testHandler) FetchModel(ctx context.Context, p Peer, req *ModelFetch) (*ModelChunk, error) {
	if req.JobID != "job-1" || req.Version != 3 {
		return nil, &ProtocolError{Code: CodeNotFound, Message: "no such model"}
	}
	c, err := ModelChunkOf(h.model, h.hash, req)
	if err != nil {
		return nil, err
	}
	if h.corrupt >= int64(c.Offset) && h.corrupt < int64(c.Offset)+int64(len(c.Data)) {
		d := append([]byte(nil), c.Data...)
		d[h.corrupt-int64(c.Offset)] ^= 1
		c.Data = d
	}
	return c, nil
}

func (h *testHandler) Submit(ctx context.Context, p Peer, sealed []byte) (*Ack, error) {
	n := h.inflight.Add(1)
	defer h.inflight.Add(-1)
	for {
		m := h.maxSeen.Load()
		if n <= m || h.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	h.mu.Lock()
	block, serr := h.block, h.submitErr
	h.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if serr != nil {
		return nil, serr
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.submitted = append(h.submitted, append([]byte(nil), sealed...))
	h.traces = append(h.traces, TraceParentFrom(ctx))
	h.peers = append(h.peers, p)
	n64 := uint64(len(h.submitted))
	return &Ack{LogIndex: 100 + n64, LeafIndex: n64 - 1}, nil
}

// fixture is a running server and the keys around it.
type fixture struct {
	tr      transport
	srv     *Server
	h       *testHandler
	addr    string
	srvID   Identity
	cliID   Identity
	cfg     Config
	verify  func(ed25519.PublicKey) error
	checked atomic.Int32 // verify calls
}

func newFixture(t testing.TB, tr transport, h Handler, cfg Config) *fixture {
	t.Helper()
	fx := &fixture{tr: tr, srvID: testIdentity(t, 1), cliID: testIdentity(t, 2), cfg: cfg}
	if th, ok := h.(*testHandler); ok {
		fx.h = th
	}
	enrolled := fx.cliID.PublicKey()
	fx.verify = func(pub ed25519.PublicKey) error {
		fx.checked.Add(1)
		if !pub.Equal(enrolled) {
			return errors.New("not enrolled")
		}
		return nil
	}
	ln := tr.listen(t, fx.srvID, fx.verify, cfg)
	fx.addr = ln.Addr().String()
	srv, err := NewServer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	fx.srv = srv
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-done:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return fx
}

// dial connects the enrolled client, pinning the server key.
func (fx *fixture) dial(t testing.TB) *Client {
	t.Helper()
	return fx.dialAs(t, fx.cliID, []ed25519.PublicKey{fx.srvID.PublicKey()})
}

func (fx *fixture) dialAs(t testing.TB, id Identity, pinned []ed25519.PublicKey) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, fx.tr.dialer(id, pinned, fx.cfg), fx.addr, fx.cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (fx *fixture) hello(t testing.TB, c *Client) *HelloAck {
	t.Helper()
	ack, err := c.Hello(ctxT(t), &Hello{NodeID: "node-2", ClientInfo: "mfn test"})
	if err != nil {
		t.Fatalf("Hello: %v", err)
	}
	return ack
}

// ctxT returns a context bounded by 10 s and the test's life.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawConn dials without a Client, for tests that speak bytes directly.
func (fx *fixture) rawConn(t *testing.T) Conn {
	t.Helper()
	c, err := fx.tr.dialer(fx.cliID, []ed25519.PublicKey{fx.srvID.PublicKey()}, fx.cfg).Dial(ctxT(t), fx.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
