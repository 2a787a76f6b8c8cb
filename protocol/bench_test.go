package protocol

import (
	"context"
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
