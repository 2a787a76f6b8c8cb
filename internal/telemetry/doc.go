// Package telemetry sets up OpenTelemetry tracing for MFN's processes and
// carries trace context across the node protocol.
//
// # Turning it on
//
// Tracing is off unless Config names a destination: an OTLP/HTTP collector
// (Config.OTLPEndpoint) or a file of JSON lines (Config.TraceFile), or
// both. New builds a *Provider from a Config; its TracerProvider is handed
// to the components (node.Config.TracerProvider, coordinator
// QUICHandler.SetTracerProvider). With tracing off New returns a Provider
// whose TracerProvider is nil: components then skip every span call, so
// the cost is one nil check per update.
//
// Every span carries the process's resource: service.name (mfn-coordinator
// or mfn-node) and service.instance.id (member id or node id).
//
// # Sampling
//
// Root spans (a node's round) are sampled with Config.SampleRatio; every
// other span follows its parent's decision, so a sampled update is traced
// end to end across node and coordinator, and an unsampled one not at all.
//
// # Across processes
//
// TraceParent renders the current span as a W3C traceparent header value;
// the node sends it beside (never inside) its sealed envelope and the
// coordinator continues the trace with Extract. A malformed value is
// ignored: the coordinator then starts a new trace.
//
// # The file exporter
//
// FileExporter writes one JSON object per span and line (see SpanJSON),
// and stops writing once the file would exceed its byte bound; spans past
// the bound are counted in Dropped, never written partially.
//
// # Rounds
//
// RoundSpans turns a round's life (opened, updates accepted, sealed,
// closed or failed) into a "round" span with children "round.open",
// "round.seal", "round.aggregate" and "round.close", linking the ingest
// span of every update the round accepted.
package telemetry
