package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// MaxTraceParentLen bounds a traceparent value accepted from a peer. A
// version 00 value is 55 bytes; the room above allows future versions.
const MaxTraceParentLen = 128

var traceContext propagation.TraceContext

// TraceParent returns the W3C traceparent of the span in ctx, or "" when
// ctx holds no valid span context.
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	traceContext.Inject(ctx, c)
	return c["traceparent"]
}

// Extract returns ctx carrying the remote span context of a traceparent
// value. An empty, oversized or malformed value returns ctx unchanged:
// bytes from a peer never fail a request.
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" || len(traceparent) > MaxTraceParentLen {
		return ctx
	}
	return traceContext.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// Tracer names (instrumentation scopes).
const (
	TracerNode        = "github.com/mfn/mfn/node"
	TracerCoordinator = "github.com/mfn/mfn/coordinator"
)
