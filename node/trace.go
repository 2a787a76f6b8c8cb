package node

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// startSpan starts a span named name under ctx's span, or does nothing
// (returning ctx and a no-op span) when tracing is off.
func (a *Agent) startSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if a.tracer == nil {
		return ctx, noop.Span{}
	}
	kind := trace.SpanKindInternal
	if name == spanSubmit {
		kind = trace.SpanKindClient // the one span that calls another process
	}
	return a.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...),
		trace.WithAttributes(attribute.String("mfn.node", a.nodeID)))
}

// spanSubmit names the span whose context travels with the update.
const spanSubmit = "node.submit"

// endSpan records err (if any) on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
