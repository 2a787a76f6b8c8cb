package protocol

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfn/mfn/protocol/internal/wire"
)

// streamHandler is a testHandler that also takes streams: it reads the
// body (unless refuse is set) and records what it got.
type streamHandler struct {
	*testHandler
	refuse error // returned at once, without reading

	smu     sync.Mutex
	got     [][]byte
	reqs    []SubmitStream
	errs    []error
	traces  []string
	entered chan struct{} // if non-nil, gets a value per call
}

func (h *streamHandler) SubmitStream(ctx context.Context, p Peer, req *SubmitStream, body io.Reader) (*Ack, error) {
	if h.entered != nil {
		h.entered <- struct{}{}
	}
	if h.refuse != nil {
		return nil, h.refuse
	}
	b, err := io.ReadAll(body)
	h.smu.Lock()
	defer h.smu.Unlock()
	h.reqs = append(h.reqs, *req)
	h.traces = append(h.traces, TraceParentFrom(ctx))
	if err != nil {
		h.errs = append(h.errs, err)
		return nil, err
	}
	h.got = append(h.got, b)
	return &Ack{LogIndex: 500 + uint64(len(h.got)), LeafIndex: uint64(len(h.got))}, nil
}

func (h *streamHandler) lastErr() error {
	h.smu.Lock()
	defer h.smu.Unlock()
	if len(h.errs) == 0 {
		return nil
	}
	return h.errs[len(h.errs)-1]
}

func streamConfig(t testing.TB) Config {
	cfg := testConfig(t)
	cfg.MaxFrameSize = 64 << 10
	cfg.StreamChunk = 20_000
	cfg.ChunkTimeout = 300 * time.Millisecond
	cfg.MaxStreamSize = 8 << 20
	return cfg
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestSubmitStreamRoundTrip: an envelope far larger than a frame arrives
// intact in chunks, with the job and round hints and the traceparent, and
// the Ack comes back.
func TestSubmitStreamRoundTrip(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		h := &streamHandler{testHandler: newTestHandler(nil)}
		fx := newFixture(t, tr, h, streamConfig(t))
		c := fx.dial(t)
		fx.hello(t, c)
		if !c.CanStream() {
			t.Fatal("CanStream false on a Version4 session")
		}
		for _, n := range []int{1, 19_999, 20_000, 20_001, 3 << 20} {
			data := randomBytes(n, uint64(n))
			ack, err := c.SubmitStream(WithTraceParent(ctxT(t), testTraceParent), "job-9", 12, int64(n), func(w io.Writer) error {
				// Odd write sizes, as an encrypting writer makes.
				for rest := data; len(rest) > 0; {
					k := min(len(rest), 7777)
					if _, err := w.Write(rest[:k]); err != nil {
						return err
					}
					rest = rest[k:]
				}
				return nil
			})
			if err != nil {
				t.Fatalf("n=%d: %v", n, err)
			}
			h.smu.Lock()
			got, req, tp, calls := h.got[len(h.got)-1], h.reqs[len(h.reqs)-1], h.traces[len(h.traces)-1], len(h.got)
			h.smu.Unlock()
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("n=%d: body differs", n)
			}
			if req.JobID != "job-9" || req.Round != 12 || req.Size != uint64(n) || tp != testTraceParent {
				t.Fatalf("n=%d: request %+v, traceparent %q", n, req, tp)
			}
			if ack.LogIndex != 500+uint64(calls) {
				t.Fatalf("n=%d: ack %+v", n, ack)
			}
		}
	})
}

// rawStream opens a stream after Hello and sends a SubmitStream header.
func rawStream(t *testing.T, fx *fixture, size uint64) (*framer, Stream) {
	t.Helper()
	c := fx.rawConn(t)
	hs, err := c.OpenStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	hf := &framer{s: hs, maxFrame: DefaultMaxFrameSize, timeout: 5 * time.Second}
	if _, err := (&Client{}).exchangeHello(hf); err != nil {
		t.Fatal(err)
	}
	st, err := c.OpenStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	f := &framer{s: st, maxFrame: DefaultMaxFrameSize, timeout: 5 * time.Second}
	if err := f.write(Version4, &SubmitStream{JobID: "job-1", Round: 1, Size: size}); err != nil {
		t.Fatal(err)
	}
	return f, st
}

// exchangeHello sends a Hello offering every version on f's stream.
func (*Client) exchangeHello(f *framer) (Message, error) {
	if err := f.write(0, &Hello{Versions: SupportedVersions(), NodeID: "node-2"}); err != nil {
		return nil, err
	}
	if err := f.s.CloseWrite(); err != nil {
		return nil, err
	}
	_, m, err := f.read()
	return m, err
}

// answer reads the server's answer on a raw stream.
func answer(t *testing.T, f *framer) *ProtocolError {
	t.Helper()
	_, m, err := f.read()
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	pe, ok := m.(*ProtocolError)
	if !ok {
		t.Fatalf("answer %T, want an Error", m)
	}
	return pe
}

// TestSubmitStreamBadStreams: a truncated stream, one longer than
// declared, a stalled sender and a declared size over the limit each get
// their typed error in the handler's body and a CodeBadRequest naming it.
func TestSubmitStreamBadStreams(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		h := &streamHandler{testHandler: newTestHandler(nil)}
		fx := newFixture(t, tr, h, streamConfig(t))
		chunk := func(f *framer, n int) {
			if err := f.write(Version4, &StreamChunk{Data: bytes.Repeat([]byte{1}, n)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name string
			size uint64
			send func(f *framer, st Stream)
			want error
		}{
			{"truncated", 100, func(f *framer, st Stream) { chunk(f, 50); st.CloseWrite() }, ErrStreamTruncated},
			{"longer chunk", 100, func(f *framer, st Stream) { chunk(f, 60); chunk(f, 60) }, ErrStreamTooLarge},
			{"bytes after the last", 100, func(f *framer, st Stream) { chunk(f, 100); chunk(f, 1) }, ErrStreamTooLarge},
			{"stalled", 100, func(f *framer, st Stream) { chunk(f, 50) }, ErrStreamStalled},
			{"stalled before end", 100, func(f *framer, st Stream) { chunk(f, 100) }, ErrStreamStalled},
			{"other message", 100, func(f *framer, st Stream) { f.write(Version4, &Ack{}) }, ErrStreamTruncated},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f, st := rawStream(t, fx, tc.size)
				tc.send(f, st)
				pe := answer(t, f)
				if pe.Code != CodeBadRequest || !strings.Contains(pe.Message, tc.want.Error()) {
					t.Fatalf("answer %v, want bad request naming %v", pe, tc.want)
				}
				if err := h.lastErr(); !errors.Is(err, tc.want) {
					t.Fatalf("handler's body error %v, want %v", err, tc.want)
				}
			})
		}
		t.Run("declared over the limit", func(t *testing.T) {
			h.smu.Lock()
			calls := len(h.reqs)
			h.smu.Unlock()
			f, _ := rawStream(t, fx, uint64(streamConfig(t).MaxStreamSize)+1)
			pe := answer(t, f)
			if pe.Code != CodeBadRequest || !strings.Contains(pe.Message, ErrStreamTooLarge.Error()) {
				t.Fatalf("answer %v", pe)
			}
			h.smu.Lock()
			defer h.smu.Unlock()
			if len(h.reqs) != calls {
				t.Fatal("the handler saw a stream over the limit")
			}
		})
	})
}

// TestSubmitStreamEarlyRefusal: a handler that refuses before reading
// (round closed, say) stops the sender at once, and the client reports
// the handler's error rather than its failed writes.
func TestSubmitStreamEarlyRefusal(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		h := &streamHandler{testHandler: newTestHandler(nil), refuse: &ProtocolError{Code: CodeRoundClosed, Message: "round 3 is closed"}}
		fx := newFixture(t, tr, h, streamConfig(t))
		c := fx.dial(t)
		fx.hello(t, c)
		size := int64(6 << 20)
		_, err := c.SubmitStream(ctxT(t), "job-1", 3, size, func(w io.Writer) error {
			buf := make([]byte, 1<<16)
			for n := int64(0); n < size; n += int64(len(buf)) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
			}
			return nil
		})
		if !errors.Is(err, CodeRoundClosed) {
			t.Fatalf("SubmitStream: %v, want CodeRoundClosed", err)
		}
	})
}

// TestSubmitStreamUnsupported: a Version3 session, or a handler without
// streams, is ErrStreamUnsupported.
func TestSubmitStreamUnsupported(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := streamConfig(t)
		cfg.Versions = []uint8{Version1, Version2, Version3}
		fx := newFixture(t, tr, &streamHandler{testHandler: newTestHandler(nil)}, cfg)
		c := fx.dial(t)
		fx.hello(t, c)
		if c.CanStream() {
			t.Fatal("CanStream on a Version3 session")
		}
		if _, err := c.SubmitStream(ctxT(t), "j", 1, 10, func(io.Writer) error { return nil }); !errors.Is(err, ErrStreamUnsupported) {
			t.Fatalf("v3: %v", err)
		}
		if _, ok := tr.(memTransport); ok {
			tr = memTransport{NewMemNetwork()}
		}
		fx2 := newFixture(t, tr, newTestHandler(nil), streamConfig(t))
		c2 := fx2.dial(t)
		fx2.hello(t, c2)
		_, err := c2.SubmitStream(ctxT(t), "j", 1, 10, func(w io.Writer) error { _, err := w.Write(make([]byte, 10)); return err })
		if !errors.Is(err, CodeBadRequest) || !strings.Contains(err.Error(), ErrStreamUnsupported.Error()) {
			t.Fatalf("plain handler: %v", err)
		}
	})
}

// TestSubmitStreamWriteError: the writer's error aborts the stream and is
// returned; the server's handler sees a truncated stream.
func TestSubmitStreamWriteError(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		h := &streamHandler{testHandler: newTestHandler(nil), entered: make(chan struct{}, 4)}
		fx := newFixture(t, tr, h, streamConfig(t))
		c := fx.dial(t)
		fx.hello(t, c)
		boom := errors.New("sealer failed")
		_, err := c.SubmitStream(ctxT(t), "j", 1, 100_000, func(w io.Writer) error {
			w.Write(make([]byte, 30_000)) // one chunk goes out
			<-h.entered
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("SubmitStream: %v, want the writer's error", err)
		}
		_, err = c.SubmitStream(ctxT(t), "j", 1, 1000, func(w io.Writer) error {
			_, err := w.Write(make([]byte, 999))
			<-h.entered
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "declared 1000") {
			t.Fatalf("short write: %v", err)
		}
		waitFor(t, "handler errors", func() bool {
			h.smu.Lock()
			defer h.smu.Unlock()
			return len(h.errs) >= 1
		})
		if err := h.lastErr(); !errors.Is(err, ErrStreamTruncated) {
			t.Fatalf("handler saw %v", err)
		}
	})
}

var _ = wire.TypeStreamChunk

// TestSubmitSealedChoosesThePath: an envelope that fits a frame goes as
// SubmitUpdate, a larger one as a stream.
func TestSubmitSealedChoosesThePath(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		h := &streamHandler{testHandler: newTestHandler(nil)}
		cfg := streamConfig(t)
		fx := newFixture(t, tr, h, cfg)
		c := fx.dial(t)
		fx.hello(t, c)
		small, big := randomBytes(1000, 1), randomBytes(cfg.MaxFrameSize+1, 2)
		for _, b := range [][]byte{small, big} {
			if _, err := c.SubmitSealed(ctxT(t), "job-1", 2, b); err != nil {
				t.Fatal(err)
			}
		}
		h.mu.Lock()
		framed := len(h.submitted)
		h.mu.Unlock()
		h.smu.Lock()
		defer h.smu.Unlock()
		if framed != 1 || len(h.got) != 1 || !bytes.Equal(h.got[0], big) || h.reqs[0].JobID != "job-1" || h.reqs[0].Round != 2 {
			t.Fatalf("framed %d, streamed %d", framed, len(h.got))
		}
	})
}
