package protocol

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/mfn/mfn/protocol/internal/wire"
)

// The conformance suite: every test runs over real QUIC on 127.0.0.1 and
// over the in-memory transport.

func testModel(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestRoundTripAllMessages(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		cfg.ChunkSize = 1000
		model := testModel(2500) // three chunks: 1000, 1000, 500
		h := newTestHandler(model)
		fx := newFixture(t, tr, h, cfg)
		c := fx.dial(t)

		if !c.PeerKey().Equal(fx.srvID.PublicKey()) {
			t.Fatalf("client sees server key %x, want %x", c.PeerKey(), fx.srvID.PublicKey())
		}
		if _, err := c.Submit(ctxT(t), []byte("x")); !errors.Is(err, ErrHelloRequired) {
			t.Fatalf("Submit before Hello: %v, want ErrHelloRequired", err)
		}

		ack := fx.hello(t, c)
		want := HelloAck{Version: Version4, Supported: []uint8{Version1, Version2, Version3, Version4}, ClusterOrigin: "mfn-test", LeaderHint: "127.0.0.1:7443",
			Instance: fx.srv.Instance(), Term: 7}
		if len(want.Instance) != 32 {
			t.Fatalf("server instance %q, want 32 hex digits", want.Instance)
		}
		if !equalMsg(t, ack, &want) {
			t.Fatalf("HelloAck = %+v, want %+v", ack, want)
		}
		if c.Version() != Version4 {
			t.Fatalf("Version() = %d", c.Version())
		}

		// Subscribe, then push an announcement.
		ctx, cancel := context.WithCancel(ctxT(t))
		defer cancel()
		sub, err := c.Subscribe(ctx)
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		waitFor(t, "one subscriber", func() bool { return fx.srv.Subscribers() == 1 })
		ann := &RoundAnnouncement{
			JobID: "job-1", Round: 4, BaseVersion: 3, BaseHash: h.hash,
			Deadline:  time.Unix(1_900_000_000, 5).UTC(),
			ModelSize: uint64(len(model)), MinUpdates: 3, MaxUpdates: 10,
			Metadata: map[string]string{"task": "mfn-regime", "model": "softmax-18x4", "epochs": "2"},
		}
		if err := fx.srv.Broadcast(ann); err != nil {
			t.Fatal(err)
		}
		select {
		case got, ok := <-sub:
			if !ok {
				t.Fatal("subscription closed")
			}
			if !equalMsg(t, got, ann) {
				t.Fatalf("announcement = %+v, want %+v", got, ann)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no announcement")
		}

		// A second subscriber gets the open round at once.
		ctx2, cancel2 := context.WithCancel(ctxT(t))
		sub2, err := c.Subscribe(ctx2)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-sub2:
			if !equalMsg(t, got, ann) {
				t.Fatalf("late subscriber got %+v", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("late subscriber got nothing")
		}
		cancel2()
		for range sub2 {
		}
		waitFor(t, "cancelled subscription to end", func() bool { return fx.srv.Subscribers() == 1 })

		// Chunked model fetch.
		got, err := c.FetchModel(ctxT(t), "job-1", 3, h.hash)
		if err != nil {
			t.Fatalf("FetchModel: %v", err)
		}
		if !bytes.Equal(got, model) {
			t.Fatal("fetched model differs")
		}
		if _, err := c.FetchModel(ctxT(t), "job-9", 3, h.hash); !errors.Is(err, CodeNotFound) {
			t.Fatalf("FetchModel unknown job: %v, want CodeNotFound", err)
		}

		// Submit and Ack.
		sealed := testModel(40_000)
		a, err := c.Submit(ctxT(t), sealed)
		if err != nil {
			t.Fatalf("Submit: %v", err)
		}
		if *a != (Ack{LogIndex: 101, LeafIndex: 0}) {
			t.Fatalf("Ack = %+v", a)
		}
		h.mu.Lock()
		if len(h.submitted) != 1 || !bytes.Equal(h.submitted[0], sealed) {
			t.Fatal("handler did not receive the sealed bytes")
		}
		for _, p := range h.peers {
			if !p.Key.Equal(fx.cliID.PublicKey()) {
				t.Fatalf("handler saw peer key %x, want the client's", p.Key)
			}
		}
		if p := h.peers[len(h.peers)-1]; p.Version != Version4 {
			t.Fatalf("peer version in Submit = %d", p.Version)
		}
		h.mu.Unlock()

		// Closing the server ends the subscription.
		fx.srv.Close()
		select {
		case _, ok := <-sub:
			if ok {
				t.Fatal("unexpected announcement")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("subscription not closed after server Close")
		}
	})
}

// equalMsg compares messages by their canonical encoding.
func equalMsg(t *testing.T, a, b Message) bool {
	t.Helper()
	x, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

func TestErrorsEndToEnd(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		h := newTestHandler(nil)
		fx := newFixture(t, tr, h, testConfig(t))
		c := fx.dial(t)
		fx.hello(t, c)
		cases := []struct {
			name    string
			err     error
			want    ProtocolError
			notWant Code
		}{
			{"not leader", &ProtocolError{Code: CodeNotLeader, LeaderAddr: "10.0.0.2:7443"},
				ProtocolError{Code: CodeNotLeader, LeaderAddr: "10.0.0.2:7443"}, CodeInternal},
			{"rate limited", &ProtocolError{Code: CodeRateLimited, RetryAfter: 1500 * time.Millisecond, Message: "slow down"},
				ProtocolError{Code: CodeRateLimited, RetryAfter: 1500 * time.Millisecond, Message: "slow down"}, CodeNotLeader},
			{"round closed wrapped", errorsJoin(&ProtocolError{Code: CodeRoundClosed, Message: "round 4 closed"}),
				ProtocolError{Code: CodeRoundClosed, Message: "round 4 closed"}, CodeDuplicate},
			{"bare code", CodeDuplicate, ProtocolError{Code: CodeDuplicate}, CodeRoundClosed},
			{"internal hides text", errors.New("disk /var/secret full"),
				ProtocolError{Code: CodeInternal, Message: "internal error"}, CodeUnknown},
			{"unknown code kept", &ProtocolError{Code: 999, Message: "future"},
				ProtocolError{Code: 999, Message: "future"}, CodeUnknown},
		}
		for _, tc := range cases {
			h.mu.Lock()
			h.submitErr = tc.err
			h.mu.Unlock()
			_, err := c.Submit(ctxT(t), []byte("sealed"))
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("%s: error %v is not a *ProtocolError", tc.name, err)
			}
			if *pe != tc.want {
				t.Errorf("%s: got %+v, want %+v", tc.name, *pe, tc.want)
			}
			if !errors.Is(err, tc.want.Code) || errors.Is(err, tc.notWant) {
				t.Errorf("%s: errors.Is mismatch for %v", tc.name, err)
			}
		}
	})
}

func errorsJoin(err error) error { return errors.Join(errors.New("context"), err) }

func TestVersionMismatch(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		h := newTestHandler(nil)
		fx := newFixture(t, tr, h, testConfig(t))
		c := fx.dial(t)
		_, err := c.Hello(ctxT(t), &Hello{Versions: []uint8{7, 9}, NodeID: "node-2"})
		var vm *VersionMismatchError
		if !errors.As(err, &vm) {
			t.Fatalf("Hello: %v, want *VersionMismatchError", err)
		}
		if !bytes.Equal(vm.Client, []uint8{7, 9}) || !bytes.Equal(vm.Server, []uint8{1, 2, 3, 4}) {
			t.Fatalf("lists = %v / %v", vm.Client, vm.Server)
		}
		if !errors.Is(err, ErrVersionMismatch) || !errors.Is(err, CodeVersionMismatch) {
			t.Fatal("errors.Is(ErrVersionMismatch) false")
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.hellos != 0 {
			t.Fatal("handler consulted despite no common version")
		}
	})
}

func TestWrongKeys(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		h := newTestHandler(nil)
		fx := newFixture(t, tr, h, testConfig(t))
		ctx := ctxT(t)

		// The server's key is not pinned: the client refuses it.
		other := testIdentity(t, 9)
		_, err := Dial(ctx, tr.dialer(fx.cliID, []ed25519.PublicKey{other.PublicKey()}, fx.cfg), fx.addr, fx.cfg)
		if err == nil {
			t.Fatal("dial with the wrong pin succeeded")
		}
		if !errors.Is(err, ErrKeyNotPinned) {
			t.Fatalf("wrong pin: %v", err)
		}
		// No pins at all: refused too.
		if _, err := Dial(ctx, tr.dialer(fx.cliID, nil, fx.cfg), fx.addr, fx.cfg); err == nil {
			t.Fatal("dial with no pins succeeded")
		}

		// A client key the server's callback rejects: the handshake fails
		// (on the client either at Dial or at its first request), and the
		// handler never sees it.
		before := fx.checked.Load()
		stranger := testIdentity(t, 7)
		c, err := Dial(ctx, tr.dialer(stranger, []ed25519.PublicKey{fx.srvID.PublicKey()}, fx.cfg), fx.addr, fx.cfg)
		if err == nil {
			defer c.Close()
			_, err = c.Hello(ctx, &Hello{NodeID: "stranger"})
		}
		if err == nil {
			t.Fatal("rejected client completed Hello")
		}
		if fx.checked.Load() == before {
			t.Fatal("verify callback not consulted")
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.hellos != 0 {
			t.Fatalf("handler saw %d hellos from a rejected key", h.hellos)
		}
	})
}

// rawRequest writes raw bytes on a new stream, closes the sending side and
// returns what the server answered (nil error for a decoded frame).
func rawRequest(t *testing.T, c Conn, raw []byte) (Message, error) {
	t.Helper()
	st, err := c.OpenStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Abort()
	f := &framer{s: st, maxFrame: DefaultMaxFrameSize, timeout: 5 * time.Second}
	if err := f.writeFrame(raw); err != nil {
		return nil, err
	}
	st.CloseWrite()
	_, m, err := f.read()
	return m, err
}

func TestServerRejectsBadFrames(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		cfg.MaxFrameSize = 64 << 10
		h := newTestHandler(nil)
		fx := newFixture(t, tr, h, cfg)
		c := fx.rawConn(t)
		hello, _ := frameOf(0, &Hello{Versions: []uint8{1}, NodeID: "n"})

		// Requests before Hello are refused.
		sub, _ := frameOf(1, &SubmitUpdate{Sealed: []byte("x")})
		m, err := rawRequest(t, c, sub)
		if pe, ok := m.(*ProtocolError); err != nil || !ok || pe.Code != CodeBadRequest {
			t.Fatalf("submit before Hello: %v %v", m, err)
		}
		if m, err := rawRequest(t, c, hello); err != nil || m.wireType() != wire.TypeHelloAck {
			t.Fatalf("Hello: %v %v", m, err)
		}

		over := wire.AppendHeader(nil, 1, wire.TypeSubmitUpdate, cfg.MaxFrameSize+1)
		bad := map[string][]byte{
			// Only the header: the server must refuse without waiting
			// for (or allocating) the declared payload.
			"oversize":       over,
			"unknown type":   wire.AppendHeader(nil, 1, 200, 0),
			"trailing bytes": append(append([]byte(nil), sub...), 0),
			"bad field":      append(wire.AppendHeader(nil, 1, wire.TypeSubmitUpdate, 4), 0, 0, 0, 9),
			"wrong version":  func() []byte { b, _ := frameOf(2, &SubmitUpdate{}); return b }(),
			"not a request":  func() []byte { b, _ := frameOf(1, &Ack{}); return b }(),
		}
		wantCode := map[string]Code{"wrong version": CodeVersionMismatch}
		for name, raw := range bad {
			m, err := rawRequest(t, c, raw)
			pe, ok := m.(*ProtocolError)
			if err != nil || !ok {
				t.Fatalf("%s: got %v, %v; want an Error frame", name, m, err)
			}
			want := wantCode[name]
			if want == 0 {
				want = CodeBadRequest
			}
			if pe.Code != want {
				t.Errorf("%s: code %v, want %v (%s)", name, pe.Code, want, pe.Message)
			}
		}

		// A truncated request: the server gives up on the stream, the
		// connection stays usable, the handler sees nothing.
		for _, cut := range []int{1, wire.HeaderSize, len(sub) - 1} {
			if m, err := rawRequest(t, c, sub[:cut]); err == nil {
				t.Fatalf("truncated at %d: server answered %v", cut, m)
			}
		}
		good, _ := frameOf(1, &SubmitUpdate{Sealed: []byte("ok")})
		if m, err := rawRequest(t, c, good); err != nil || m.wireType() != wire.TypeAck {
			t.Fatalf("after bad frames: %v %v", m, err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.submitted) != 1 {
			t.Fatalf("handler saw %d submissions, want 1", len(h.submitted))
		}
	})
}

func TestFetchModelHashMismatch(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		cfg.ChunkSize = 4096
		model := testModel(10_000)
		h := newTestHandler(model)
		h.corrupt = 9_000 // in the last chunk
		fx := newFixture(t, tr, h, cfg)
		c := fx.dial(t)
		fx.hello(t, c)

		_, err := c.FetchModel(ctxT(t), "job-1", 3, h.hash)
		var hm *HashMismatchError
		if !errors.As(err, &hm) || !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("corrupted model: %v, want HashMismatchError", err)
		}
		if hm.Want != h.hash || hm.Got == h.hash {
			t.Fatalf("mismatch detail %+v", hm)
		}

		// A server holding another model is caught by the announced hash.
		other := sha256.Sum256([]byte("another model"))
		if _, err := c.FetchModel(ctxT(t), "job-1", 3, other); !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("other model: %v", err)
		}

		// Too large for the client's limit.
		small := cfg
		small.MaxModelSize = 5000
		c2, err := Dial(ctxT(t), tr.dialer(fx.cliID, []ed25519.PublicKey{fx.srvID.PublicKey()}, small), fx.addr, small)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if _, err := c2.Hello(ctxT(t), &Hello{NodeID: "n"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c2.FetchModel(ctxT(t), "job-1", 3, h.hash); !errors.Is(err, ErrModelTooLarge) {
			t.Fatalf("oversize model: %v", err)
		}
	})
}

func TestEmptyModel(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		h := newTestHandler([]byte{})
		fx := newFixture(t, tr, h, testConfig(t))
		c := fx.dial(t)
		fx.hello(t, c)
		got, err := c.FetchModel(ctxT(t), "job-1", 3, h.hash)
		if err != nil || len(got) != 0 {
			t.Fatalf("empty model: %d bytes, %v", len(got), err)
		}
	})
}

func TestSilentPeers(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		cfg.RequestTimeout = 300 * time.Millisecond
		cfg.HandshakeTimeout = 400 * time.Millisecond
		h := newTestHandler(nil)
		fx := newFixture(t, tr, h, cfg)

		// A client that connects and never says Hello is dropped.
		c := fx.rawConn(t)
		start := time.Now()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("connection without Hello not closed")
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("closed after %v, before the Hello timeout", d)
		}

		// A client that opens a stream and sends nothing: the server's
		// read deadline ends the stream; the connection survives.
		cl := fx.dial(t)
		fx.hello(t, cl)
		st, err := cl.conn.OpenStream(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte{1}) // make the stream known to the peer; never finish the frame
		st.SetReadDeadline(time.Now().Add(5 * time.Second))
		start = time.Now()
		_, err = st.Read(make([]byte, 1))
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("silent stream: read %v, want the server to abort", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("server held a silent stream for %v", d)
		}
		if _, err := cl.Submit(ctxT(t), []byte("after")); err != nil {
			t.Fatalf("connection unusable after a silent stream: %v", err)
		}
	})
}

func TestSilentServer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		cfg.RequestTimeout = 300 * time.Millisecond
		srvID, cliID := testIdentity(t, 1), testIdentity(t, 2)
		ln := tr.listen(t, srvID, func(ed25519.PublicKey) error { return nil }, cfg)
		// A "server" that accepts streams and never answers.
		go func() {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			for {
				if _, err := c.AcceptStream(context.Background()); err != nil {
					return
				}
			}
		}()
		c, err := Dial(ctxT(t), tr.dialer(cliID, []ed25519.PublicKey{srvID.PublicKey()}, cfg), ln.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		_, err = c.Hello(ctxT(t), &Hello{NodeID: "n"})
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Hello to a silent server: %v, want a deadline error", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("gave up after %v", d)
		}
	})
}

func TestClientRejectsBadResponses(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		srvID, cliID := testIdentity(t, 1), testIdentity(t, 2)
		ln := tr.listen(t, srvID, func(ed25519.PublicKey) error { return nil }, cfg)
		ack, _ := frameOf(0, &HelloAck{Version: 1, Supported: []uint8{1}})
		ackFrame, _ := frameOf(1, &Ack{LogIndex: 1})
		responses := make(chan []byte, 8)
		go func() {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			for {
				st, err := c.AcceptStream(context.Background())
				if err != nil {
					return
				}
				go func() {
					f := &framer{s: st, maxFrame: DefaultMaxFrameSize, timeout: 5 * time.Second}
					if _, _, err := f.read(); err != nil {
						st.Abort()
						return
					}
					f.writeFrame(<-responses)
					st.CloseWrite()
				}()
			}
		}()
		c, err := Dial(ctxT(t), tr.dialer(cliID, []ed25519.PublicKey{srvID.PublicKey()}, cfg), ln.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		responses <- ack
		if _, err := c.Hello(ctxT(t), &Hello{NodeID: "n"}); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			raw  []byte
			want error
		}{
			{"truncated header", ackFrame[:3], ErrTruncated},
			{"truncated payload", ackFrame[:len(ackFrame)-1], ErrTruncated},
			{"empty", nil, ErrTruncated},
			{"trailing frame", append(append([]byte(nil), ackFrame...), ackFrame...), ErrTrailingBytes},
			{"wrong type", ack, ErrUnexpectedMessage},
			{"wrong version", func() []byte { b, _ := frameOf(2, &Ack{}); return b }(), ErrVersionMismatch},
			{"oversize", wire.AppendHeader(nil, 1, wire.TypeAck, DefaultMaxFrameSize+1), ErrFrameTooLarge},
		}
		for _, tc := range cases {
			responses <- tc.raw
			_, err := c.Submit(ctxT(t), []byte("u"))
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
	})
}

func TestConcurrencyLimits(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		cfg.MaxStreamsPerConn = 2
		h := newTestHandler(nil)
		h.block = make(chan struct{})
		fx := newFixture(t, tr, h, cfg)
		c := fx.dial(t)
		fx.hello(t, c)

		const n = 5
		errs := make(chan error, n)
		for range n {
			go func() { _, err := c.Submit(ctxT(t), []byte("u")); errs <- err }()
		}
		waitFor(t, "two handlers in flight", func() bool { return h.inflight.Load() == 2 })
		close(h.block)
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("Submit: %v", err)
			}
		}
		if m := h.maxSeen.Load(); m != 2 {
			t.Fatalf("max concurrent handlers per connection = %d, want 2", m)
		}
	})
}

func TestServerOverload(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		cfg.MaxInflight = 1
		h := newTestHandler(nil)
		h.block = make(chan struct{})
		fx := newFixture(t, tr, h, cfg)
		c := fx.dial(t)
		fx.hello(t, c)

		first := make(chan error, 1)
		go func() { _, err := c.Submit(ctxT(t), []byte("a")); first <- err }()
		waitFor(t, "first handler running", func() bool { return h.inflight.Load() == 1 })
		_, err := c.Submit(ctxT(t), []byte("b"))
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != CodeRateLimited || pe.RetryAfter != overloadRetryAfter {
			t.Fatalf("second Submit: %v, want rate limited with retry-after", err)
		}
		close(h.block)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
	})
}

func TestContextCancelAbortsRequest(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		h := newTestHandler(nil)
		h.block = make(chan struct{})
		defer close(h.block)
		fx := newFixture(t, tr, h, testConfig(t))
		c := fx.dial(t)
		fx.hello(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := c.Submit(ctx, []byte("u"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Submit with expiring ctx: %v", err)
		}
	})
}

func TestServeStopsWithContext(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		srvID, cliID := testIdentity(t, 1), testIdentity(t, 2)
		ln := tr.listen(t, srvID, func(ed25519.PublicKey) error { return nil }, cfg)
		srv, err := NewServer(cfg, newTestHandler(nil))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, ln) }()
		c, err := Dial(ctxT(t), tr.dialer(cliID, []ed25519.PublicKey{srvID.PublicKey()}, cfg), ln.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Hello(ctxT(t), &Hello{NodeID: "n"}); err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Serve: %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return")
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("client connection survived the closed listener")
		}
		srv.Close()
		if err := srv.Serve(context.Background(), tr.listen(t, srvID, func(ed25519.PublicKey) error { return nil }, cfg)); !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve after Close: %v", err)
		}
	})
}

func TestDisconnectRevokedKey(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		fx := newFixture(t, tr, newTestHandler(nil), testConfig(t))
		c := fx.dial(t)
		fx.hello(t, c)
		if n := fx.srv.Disconnect(testIdentity(t, 9).PublicKey()); n != 0 {
			t.Fatalf("Disconnect of an unknown key closed %d", n)
		}
		if n := fx.srv.Disconnect(fx.cliID.PublicKey()); n != 1 {
			t.Fatalf("Disconnect closed %d connections, want 1", n)
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("client still connected")
		}
		if _, err := c.Submit(ctxT(t), []byte("u")); err == nil {
			t.Fatal("Submit on a disconnected client succeeded")
		}
	})
}

func TestSubscriptionHeartbeats(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		// Generous against scheduling stalls on a loaded machine: the
		// client gives up after 3 intervals = 450 ms without a frame.
		cfg.Heartbeat = 150 * time.Millisecond
		fx := newFixture(t, tr, newTestHandler(nil), cfg)
		c := fx.dial(t)
		fx.hello(t, c)
		sub, err := c.Subscribe(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		// Quiet for 8 heartbeat intervals (well beyond the client's
		// 3-interval read deadline): heartbeats keep it alive.
		select {
		case m, ok := <-sub:
			t.Fatalf("unexpected %v, %v", m, ok)
		case <-time.After(1200 * time.Millisecond):
		}
		if err := fx.srv.Broadcast(&RoundAnnouncement{JobID: "j", Round: 1}); err != nil {
			t.Fatal(err)
		}
		select {
		case m, ok := <-sub:
			if !ok || m.Round != 1 {
				t.Fatalf("got %v, %v", m, ok)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no announcement after a quiet period")
		}
	})
}

func TestSubscriptionToSilentServerCloses(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		srvID, cliID := testIdentity(t, 1), testIdentity(t, 2)
		ln := tr.listen(t, srvID, func(ed25519.PublicKey) error { return nil }, cfg)
		// A server that accepts the subscription with a 50 ms heartbeat
		// interval and then never sends again.
		go func() {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			for {
				st, err := c.AcceptStream(context.Background())
				if err != nil {
					return
				}
				go func() {
					f := &framer{s: st, maxFrame: DefaultMaxFrameSize, timeout: 5 * time.Second}
					_, m, err := f.read()
					if err != nil {
						return
					}
					switch m.(type) {
					case *Hello:
						f.write(0, &HelloAck{Version: 1, Supported: []uint8{1}})
						st.CloseWrite()
					case *subscribe:
						f.write(1, &heartbeat{Interval: 50 * time.Millisecond})
					}
				}()
			}
		}()
		c, err := Dial(ctxT(t), tr.dialer(cliID, []ed25519.PublicKey{srvID.PublicKey()}, cfg), ln.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Hello(ctxT(t), &Hello{NodeID: "n"}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		sub, err := c.Subscribe(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case _, ok := <-sub:
			if ok {
				t.Fatal("announcement from a silent server")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("subscription to a silent server never closed")
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("closed after %v, before 3 heartbeat intervals", d)
		}
	})
}

// A subscriber whose queue is full is dropped rather than buffered without
// bound.
func TestSlowSubscriberDropped(t *testing.T) {
	srv, err := NewServer(Config{}, newTestHandler(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sub := &subscriber{version: 1, ch: make(chan []byte, subQueue)}
	srv.subs[sub] = struct{}{}
	for i := range subQueue {
		if err := srv.Broadcast(&RoundAnnouncement{JobID: "j", Round: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if srv.Subscribers() != 1 {
		t.Fatal("dropped before the queue was full")
	}
	if err := srv.Broadcast(&RoundAnnouncement{JobID: "j", Round: 99}); err != nil {
		t.Fatal(err)
	}
	if srv.Subscribers() != 0 {
		t.Fatal("slow subscriber kept")
	}
	n := 0
	for fr := range sub.ch {
		n++
		m, err := decodeMessage(wire.Type(fr[1]), fr[wire.HeaderSize:])
		if err != nil || m.(*RoundAnnouncement).Round != uint64(n-1) {
			t.Fatalf("queued frame %d: %v %v", n, m, err)
		}
	}
	if n != subQueue {
		t.Fatalf("%d frames queued, want %d", n, subQueue)
	}
	// Only the latest announcement per job is kept for late subscribers.
	if len(srv.latest) != 1 {
		t.Fatalf("%d remembered announcements", len(srv.latest))
	}
}

// An announcement broadcast with a later expiry than its Deadline reaches
// peers that subscribe after the Deadline, until it expires or is
// retracted; Broadcast alone forgets it at the Deadline.
func TestAnnouncementOutlivesDeadline(t *testing.T) {
	fx := newFixture(t, memTransport{NewMemNetwork()}, newTestHandler(nil), testConfig(t))
	c := fx.dial(t)
	fx.hello(t, c)
	past := time.Now().Add(-time.Second)
	// Job "soft": Deadline passed, expiry in the future.
	if err := fx.srv.BroadcastUntil(&RoundAnnouncement{JobID: "soft", Round: 3, Deadline: past}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Job "gone": plain Broadcast with a past Deadline is not remembered.
	if err := fx.srv.Broadcast(&RoundAnnouncement{JobID: "gone", Round: 1, Deadline: past}); err != nil {
		t.Fatal(err)
	}
	first := func() *RoundAnnouncement {
		ctx, cancel := context.WithTimeout(ctxT(t), time.Second)
		defer cancel()
		sub, err := c.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got *RoundAnnouncement
		select {
		case m, ok := <-sub:
			if ok {
				got = m
			}
		case <-time.After(300 * time.Millisecond):
		}
		cancel()
		for range sub {
		}
		return got
	}
	got := first()
	if got == nil || got.JobID != "soft" || got.Round != 3 {
		t.Fatalf("late subscriber got %+v, want job soft round 3", got)
	}
	if fx.srv.Retract("soft", 2) {
		t.Fatal("Retract of another round removed the announcement")
	}
	if !fx.srv.Retract("soft", 3) {
		t.Fatal("Retract found nothing")
	}
	if got := first(); got != nil {
		t.Fatalf("subscriber after Retract got %+v", got)
	}
}
