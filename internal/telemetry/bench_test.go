package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// BenchmarkUpdateSpans is the span work of one traced update: the node's
// four spans and the coordinator's five, with their attributes, through a
// batch processor to an in-memory exporter; the traceparent is rendered
// and parsed once, as between the two processes.
func BenchmarkUpdateSpans(b *testing.B) {
	exp := tracetest.NewNoopExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(Resource(ServiceNode, "n1")))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer(TracerNode)
	attrs := trace.WithAttributes(attribute.String("mfn.job", "job"), attribute.Int64("mfn.round", 7), attribute.String("mfn.node", "site-01"))
	b.ReportAllocs()
	for b.Loop() {
		ctx, round := tr.Start(context.Background(), "node.round", attrs)
		_, s := tr.Start(ctx, "node.train")
		s.End()
		_, s = tr.Start(ctx, "node.seal")
		s.End()
		sctx, submit := tr.Start(ctx, "node.submit", attrs, trace.WithSpanKind(trace.SpanKindClient))
		cctx := Extract(context.Background(), TraceParent(sctx))
		cctx, ingest := tr.Start(cctx, "coordinator.ingest", attrs, trace.WithSpanKind(trace.SpanKindServer))
		for _, name := range []string{"ingest.open", "ingest.checks", "ingest.raft_apply", "ingest.ack"} {
			_, s := tr.Start(cctx, name)
			s.End()
		}
		ingest.End()
		submit.End()
		round.End()
	}
}
