package protocol

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"
)

// ackHandler acknowledges every submission at once, so the benchmarks
// measure the protocol and transport alone.
type ackHandler struct{ testHandler }

func (*ackHandler) Submit(ctx context.Context, p Peer, sealed []byte) (*Ack, error) {
	return &Ack{LogIndex: uint64(len(sealed))}, nil
}

// BenchmarkRoundTrip measures request/response round trips over QUIC on
// 127.0.0.1: "small" reports messages/s for a 64-byte submission; the
// submit-* cases report MB/s of sealed update bytes for a d=10,000 float32
// update (40 KB) and a d=1,000,000 one (4 MB).
func BenchmarkRoundTrip(b *testing.B) { benchRoundTrip(b, quicTransport{}) }

// BenchmarkRoundTripMem is the same over the in-memory transport, to
// separate protocol cost from QUIC cost.
func BenchmarkRoundTripMem(b *testing.B) { benchRoundTrip(b, memTransport{NewMemNetwork()}) }

func benchRoundTrip(b *testing.B, tr transport) {
	cfg := Config{RequestTimeout: 30 * time.Second, HandshakeTimeout: 5 * time.Second}
	fx := newFixture(b, tr, &ackHandler{*newTestHandler(nil)}, cfg)
	c := fx.dial(b)
	fx.hello(b, c)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		size int
	}{{"small", 64}, {"submit-40KB", 40_000}, {"submit-4MB", 4_000_000}} {
		payload := testModel(bc.size)
		b.Run(bc.name, func(b *testing.B) {
			if bc.name != "small" {
				b.SetBytes(int64(bc.size))
			}
			b.ReportAllocs()
			for b.Loop() {
				a, err := c.Submit(ctx, payload)
				if err != nil {
					b.Fatal(err)
				}
				if a.LogIndex != uint64(bc.size) {
					b.Fatalf("ack %d", a.LogIndex)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// discardStreams reads and drops streamed submissions.
type discardStreams struct{ ackHandler }

func (*discardStreams) SubmitStream(ctx context.Context, p Peer, req *SubmitStream, body io.Reader) (*Ack, error) {
	n, err := io.Copy(io.Discard, body)
	if err != nil {
		return nil, err
	}
	return &Ack{LogIndex: uint64(n)}, nil
}

// BenchmarkSubmitStream measures streamed submission of a 4 MB and a
// 100 MB envelope (MB/s of envelope bytes) over QUIC on 127.0.0.1 and
// over the in-memory transport, with a handler that discards the body:
// the protocol and transport alone.
func BenchmarkSubmitStream(b *testing.B) {
	for _, tr := range []struct {
		name string
		tr   transport
	}{{"quic", quicTransport{}}, {"mem", memTransport{NewMemNetwork()}}} {
		cfg := Config{RequestTimeout: 60 * time.Second, HandshakeTimeout: 5 * time.Second}
		fx := newFixture(b, tr.tr, &discardStreams{ackHandler{*newTestHandler(nil)}}, cfg)
		c := fx.dial(b)
		fx.hello(b, c)
		for _, size := range []int{4_000_000, 100_000_000} {
			payload := make([]byte, size)
			b.Run(fmt.Sprintf("%s/%dMB", tr.name, size/1_000_000), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					a, err := c.SubmitStream(context.Background(), "j", 1, int64(size), func(w io.Writer) error {
						_, err := w.Write(payload)
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
					if a.LogIndex != uint64(size) {
						b.Fatalf("ack %d", a.LogIndex)
					}
				}
			})
		}
	}
}
