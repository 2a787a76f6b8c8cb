package node

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"filippo.io/age"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mfn/mfn/coordinator"
)

// spansByName indexes ended spans by name (the last of each name wins,
// and counts tell how many there were).
func spansByName(rec *tracetest.SpanRecorder) (map[string]sdktrace.ReadOnlySpan, map[string]int) {
	by, n := map[string]sdktrace.ReadOnlySpan{}, map[string]int{}
	for _, s := range rec.Ended() {
		by[s.Name()] = s
		n[s.Name()]++
	}
	return by, n
}

// TestTraceAcrossNodeAndCoordinator: with separate tracer providers (as in
// two processes), the coordinator's ingest span for a node's update is a
// child of the node's submit span in the same trace, the node's phases
// hang under its round span, the coordinator's phases under its ingest
// span, and the round span links the ingest span. The envelope the
// coordinator received is the node's signed statement, untouched.
func TestTraceAcrossNodeAndCoordinator(t *testing.T) {
	mc := newMemCluster(t, 1)
	coordRec, nodeRec := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	coordTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(coordRec))
	nodeTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(nodeRec))
	stop := mc.handlers[0].Handler.(*coordinator.QUICHandler).SetTracerProvider(coordTP)
	t.Cleanup(stop)

	id := newNodeIdentity(t, 300)
	mc.enroll(id)
	cfg := mc.nodeConfig(t, id, t.TempDir(), 7)
	cfg.TracerProvider = nodeTP
	a, stopAgent := runAgent(t, cfg)
	mc.createJob(regimeJob("traced", 1, 1, 1))
	recs := waitRecords(t, a, "traced", 1)
	eventually(t, 30*time.Second, "the round span", func() bool {
		_, n := spansByName(coordRec)
		return n["round"] == 1
	})
	if err := stopAgent(); err != nil {
		t.Fatal(err)
	}

	node, nn := spansByName(nodeRec)
	coord, cn := spansByName(coordRec)
	for _, name := range []string{"node.round", "node.train", "node.seal", "node.submit"} {
		if nn[name] != 1 {
			t.Fatalf("node recorded %d %s spans, want 1 (all: %v)", nn[name], name, nn)
		}
	}
	for _, name := range []string{"coordinator.ingest", "ingest.open", "ingest.checks", "ingest.raft_apply", "ingest.ack",
		"round", "round.open", "round.seal", "round.aggregate", "round.close"} {
		if cn[name] != 1 {
			t.Fatalf("coordinator recorded %d %s spans, want 1 (all: %v)", cn[name], name, cn)
		}
	}
	root, submit, ingest := node["node.round"], node["node.submit"], coord["coordinator.ingest"]
	for _, name := range []string{"node.train", "node.seal", "node.submit"} {
		if p := node[name].Parent(); p.SpanID() != root.SpanContext().SpanID() || node[name].SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("%s parent %v, want node.round %v", name, p, root.SpanContext())
		}
	}
	if ingest.SpanContext().TraceID() != submit.SpanContext().TraceID() {
		t.Fatalf("ingest trace %v, submit trace %v: not one trace", ingest.SpanContext().TraceID(), submit.SpanContext().TraceID())
	}
	if p := ingest.Parent(); p.SpanID() != submit.SpanContext().SpanID() || !p.IsRemote() {
		t.Fatalf("ingest parent %v, want the node's submit span %v (remote)", p, submit.SpanContext())
	}
	for _, name := range []string{"ingest.open", "ingest.checks", "ingest.raft_apply", "ingest.ack"} {
		if p := coord[name].Parent(); p.SpanID() != ingest.SpanContext().SpanID() {
			t.Errorf("%s parent %v, want coordinator.ingest", name, p)
		}
	}
	attrs := map[string]string{}
	for _, kv := range ingest.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["mfn.job"] != "traced" || attrs["mfn.round"] != "1" || attrs["mfn.node"] != a.NodeID() || attrs["mfn.result"] != "accepted" {
		t.Errorf("ingest attributes %v", attrs)
	}
	round := coord["round"]
	if links := round.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != ingest.SpanContext().SpanID() {
		t.Fatalf("round links %+v, want the ingest span %v", links, ingest.SpanContext())
	}
	if round.SpanContext().TraceID() == ingest.SpanContext().TraceID() {
		t.Error("the round span should be its own trace, linked to the updates")
	}

	// The traceparent travels beside the envelope: the bytes the
	// coordinator got open to the node's signed statement, which names
	// the acknowledged update and holds no trace context.
	mc.handlers[0].mu.Lock()
	got := mc.handlers[0].sealed[string(id.PublicKey())]
	mc.handlers[0].mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("coordinator received %d envelopes, want 1", len(got))
	}
	env, err := (&coordinator.CryptoOpener{Identities: []age.Identity{mc.ids[0].Age}}).Open(got[0],
		func(string) (ed25519.PublicKey, error) { return id.PublicKey(), nil })
	if err != nil {
		t.Fatalf("envelope does not open and verify: %v", err)
	}
	if env.UpdateHash.String() != recs[0].UpdateHash {
		t.Fatalf("statement update hash %s, record %s", env.UpdateHash, recs[0].UpdateHash)
	}
	tid := submit.SpanContext().TraceID().String()
	if bytes.Contains(env.Statement, []byte(tid)) || bytes.Contains(got[0], []byte(tid)) {
		t.Fatal("trace id found inside the signed statement or envelope")
	}
}

// signedStatement runs one round of a fresh cluster with a node traced by
// tp (nil: tracing off) and returns the signed statement the coordinator
// received, as it would enter the audit log.
func signedStatement(t *testing.T, tp trace.TracerProvider) []byte {
	t.Helper()
	mc := newMemCluster(t, 1)
	id := newNodeIdentity(t, 301)
	mc.enroll(id)
	cfg := mc.nodeConfig(t, id, t.TempDir(), 9)
	cfg.TracerProvider = tp
	at := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	cfg.Clock = func() time.Time { return at }
	a, stop := runAgent(t, cfg)
	mc.createJob(regimeJob("same", 1, 1, 1))
	waitRecords(t, a, "same", 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mc.handlers[0].mu.Lock()
	got := mc.handlers[0].sealed[string(id.PublicKey())]
	mc.handlers[0].mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("coordinator received %d envelopes, want 1", len(got))
	}
	env, err := (&coordinator.CryptoOpener{Identities: []age.Identity{mc.ids[0].Age}}).Open(got[0],
		func(string) (ed25519.PublicKey, error) { return id.PublicKey(), nil })
	if err != nil {
		t.Fatal(err)
	}
	return env.Statement
}

// TestTracingLeavesStatementUnchanged: the same node, data, seed and clock
// sign byte-identical statements (hence the same audit leaf and update
// hash) with tracing on and off.
func TestTracingLeavesStatementUnchanged(t *testing.T) {
	off := signedStatement(t, nil)
	rec := tracetest.NewSpanRecorder()
	on := signedStatement(t, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	if len(rec.Ended()) == 0 {
		t.Fatal("the traced run recorded no spans")
	}
	if !bytes.Equal(on, off) {
		t.Fatalf("statement with tracing %x\ndiffers from without %x", on, off)
	}
}
