package coordinator

import (
	"context"
	"net"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mfn/mfn/protocol"
)

// TestIngestTraceParent: the ingest span continues a valid traceparent,
// and a malformed one from a hostile client is ignored: the update is
// accepted all the same and its span starts a new trace.
func TestIngestTraceParent(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 1, clusterOpts{})
	l := tc.members[tc.leader()]
	nodes := newTestNodes(t, 4, 41)
	tc.enroll(nodes)
	spec := testSpec("tp", 3, 4, 4)
	spec.InitialModel = Params{1, 2, 3}
	if _, err := l.CreateJob(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(0, "tp", 1, RoundOpen)
	rec := tracetest.NewSpanRecorder()
	h := NewQUICHandler(l)
	stop := h.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	defer stop()

	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for i, tp := range []string{
		valid,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",          // missing flags
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",       // zero trace id
		"zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\x00\n", // garbage
	} {
		sealed := nodes[i].seal(t, tc.keys, "tp", 1, ModelHash(spec.InitialModel), []float64{1, 1, 1}, 2)
		ctx := protocol.WithTraceParent(context.Background(), tp)
		if _, err := h.Submit(ctx, protocol.Peer{Key: nodes[i].pub(), Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}, sealed); err != nil {
			t.Fatalf("update %d with traceparent %q: %v", i, tp, err)
		}
		var ingest sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == "coordinator.ingest" {
				ingest = s
			}
		}
		if ingest == nil {
			t.Fatalf("update %d: no ingest span", i)
		}
		parent := ingest.Parent()
		if i == 0 {
			if parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || parent.SpanID().String() != "00f067aa0ba902b7" ||
				ingest.SpanContext().TraceID() != parent.TraceID() {
				t.Fatalf("ingest span %v under %v, want the given traceparent", ingest.SpanContext(), parent)
			}
			continue
		}
		if parent.IsValid() || ingest.SpanContext().TraceID().String() == "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Fatalf("update %d: malformed traceparent %q gave parent %v", i, tp, parent)
		}
	}
}
