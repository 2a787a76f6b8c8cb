package protocol

import "context"

type traceParentKey struct{}

// WithTraceParent returns ctx carrying a W3C traceparent value: Client.Submit
// sends it with the update, and the Server hands the peer's value to
// Handler.Submit the same way. The protocol neither parses nor checks it
// beyond its length (MaxTraceParentLen); see package internal/telemetry.
func WithTraceParent(ctx context.Context, traceparent string) context.Context {
	return context.WithValue(ctx, traceParentKey{}, traceparent)
}

// TraceParentFrom returns the traceparent stored in ctx by WithTraceParent,
// or "".
func TraceParentFrom(ctx context.Context) string {
	s, _ := ctx.Value(traceParentKey{}).(string)
	return s
}
