package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"ratio 1", Config{SampleRatio: 1, TraceFile: "x"}, true},
		{"ratio negative", Config{SampleRatio: -0.1}, false},
		{"ratio above 1", Config{SampleRatio: 1.5}, false},
		{"ratio NaN", Config{SampleRatio: nan()}, false},
		{"endpoint ok", Config{OTLPEndpoint: "http://127.0.0.1:4318"}, true},
		{"endpoint no scheme", Config{OTLPEndpoint: "127.0.0.1:4318"}, false},
		{"endpoint ftp", Config{OTLPEndpoint: "ftp://h"}, false},
		{"negative bound", Config{MaxFileBytes: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
		})
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestDisabledProviderIsNil(t *testing.T) {
	t.Parallel()
	p, err := New(Config{SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p.TracerProvider() != nil {
		t.Fatal("disabled provider returned a TracerProvider")
	}
	if NewRoundSpans(p.TracerProvider()) != nil {
		t.Fatal("RoundSpans of a nil provider is not nil")
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTracesURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":           "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":          "http://127.0.0.1:4318/v1/traces",
		"https://c.example/custom/traces": "https://c.example/custom/traces",
	} {
		if got := tracesURL(in); got != want {
			t.Errorf("tracesURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// readLines parses every line of path as a SpanJSON.
func readLines(t *testing.T, path string) []SpanJSON {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []SpanJSON
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s SpanJSON
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("line %d is not JSON: %v: %q", len(out)+1, err, sc.Text())
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFileProviderWritesJSONLines(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	p, err := New(Config{TraceFile: path, SampleRatio: 1, Service: ServiceNode, InstanceID: "node-7"})
	if err != nil {
		t.Fatal(err)
	}
	tr := p.TracerProvider().Tracer("test")
	ctx, parent := tr.Start(context.Background(), "parent")
	_, child := tr.Start(ctx, "child", trace.WithAttributes())
	child.End()
	parent.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	byName := map[string]SpanJSON{}
	for _, l := range lines {
		byName[l.Name] = l
		if l.Resource["service.name"] != ServiceNode || l.Resource["service.instance.id"] != "node-7" {
			t.Errorf("span %s resource %v", l.Name, l.Resource)
		}
		if l.End.Before(l.Start) || l.DurationNS < 0 {
			t.Errorf("span %s ends before it starts", l.Name)
		}
	}
	if byName["child"].TraceID != byName["parent"].TraceID || byName["child"].ParentSpanID != byName["parent"].SpanID {
		t.Fatalf("child %+v is not under parent %+v", byName["child"], byName["parent"])
	}
	if byName["parent"].ParentSpanID != "" {
		t.Fatalf("root has parent %s", byName["parent"].ParentSpanID)
	}
}

// TestFileExporterBound: a file never grows past its bound; spans beyond
// it are dropped whole and counted.
func TestFileExporterBound(t *testing.T) {
	t.Parallel()
	const bound = 2000
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	exp, err := CreateFileExporter(path, bound)
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := tp.Tracer("test")
	const n = 100
	for i := 0; i < n; i++ {
		_, s := tr.Start(context.Background(), "span-with-a-longish-name")
		s.End()
	}
	if err := exp.ExportSpans(context.Background(), rec.Ended()); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > bound {
		t.Fatalf("file is %d bytes, bound %d", fi.Size(), bound)
	}
	lines := readLines(t, path)
	if len(lines) == 0 || len(lines) == n {
		t.Fatalf("%d lines written of %d: the bound should cut some but not all", len(lines), n)
	}
	if got := exp.Dropped(); got != uint64(n-len(lines)) {
		t.Fatalf("Dropped = %d, want %d", got, n-len(lines))
	}
	// After Shutdown, exports are ignored without error.
	if err := exp.ExportSpans(context.Background(), rec.Ended()); err != nil {
		t.Fatal(err)
	}
}

func TestTraceParentRoundTrip(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	tpv := TraceParent(ctx)
	if len(tpv) != 55 || !strings.HasPrefix(tpv, "00-"+span.SpanContext().TraceID().String()+"-"+span.SpanContext().SpanID().String()) {
		t.Fatalf("traceparent %q does not name span %v", tpv, span.SpanContext())
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), tpv))
	if !got.IsRemote() || got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsSampled() {
		t.Fatalf("extracted %+v, want remote %v", got, span.SpanContext())
	}
	if TraceParent(context.Background()) != "" {
		t.Fatal("traceparent without a span")
	}
}

// TestExtractIgnoresMalformed: hostile values leave the context without a
// span context, and never panic.
func TestExtractIgnoresMalformed(t *testing.T) {
	t.Parallel()
	for _, v := range []string{
		"", "garbage", "00-", "00-00000000000000000000000000000000-0000000000000000-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" + strings.Repeat("x", MaxTraceParentLen),
		"\x00\xff\xfe",
	} {
		if sc := trace.SpanContextFromContext(Extract(context.Background(), v)); sc.IsValid() {
			t.Errorf("Extract(%q) gave a valid span context %v", v, sc)
		}
	}
}

func TestRoundSpansLinksUpdates(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	rs := NewRoundSpans(tp)
	_, u1 := tp.Tracer("t").Start(context.Background(), "ingest-a")
	_, u2 := tp.Tracer("t").Start(context.Background(), "ingest-b")
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	rs.Update("job", 1, "early", u1.SpanContext()) // before open: ignored
	rs.Opened("job", 1, t0)
	rs.Update("job", 1, "a", u1.SpanContext())
	rs.Update("job", 1, "b", u2.SpanContext())
	rs.Update("job", 2, "x", u2.SpanContext()) // another round: ignored
	rs.Sealed("job", 1, t0.Add(time.Second))
	rs.Closed("job", 1, t0.Add(3*time.Second), OutcomeClosed, "")
	if rs.Open() != 0 {
		t.Fatalf("%d rounds still open", rs.Open())
	}
	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = s
	}
	round := spans["round"]
	if round == nil {
		t.Fatalf("no round span among %v", spans)
	}
	links := round.Links()
	if len(links) != 2 || links[0].SpanContext.SpanID() != u1.SpanContext().SpanID() || links[1].SpanContext.SpanID() != u2.SpanContext().SpanID() {
		t.Fatalf("round links %+v, want the two ingest spans", links)
	}
	if d := round.EndTime().Sub(round.StartTime()); d != 3*time.Second {
		t.Fatalf("round lasted %v, want 3s", d)
	}
	for name, want := range map[string]time.Duration{"round.open": time.Second, "round.seal": 0, "round.aggregate": 2 * time.Second, "round.close": 0} {
		s := spans[name]
		if s == nil {
			t.Fatalf("no %s span", name)
		}
		if s.Parent().SpanID() != round.SpanContext().SpanID() {
			t.Errorf("%s is not a child of round", name)
		}
		if d := s.EndTime().Sub(s.StartTime()); d != want {
			t.Errorf("%s lasted %v, want %v", name, d, want)
		}
	}
}

func TestRoundSpansBound(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	rs := NewRoundSpans(tp)
	for i := range MaxOpenRounds + 10 {
		rs.Opened(fmt.Sprintf("job-%d", i), 1, time.Now())
	}
	if rs.Open() != MaxOpenRounds {
		t.Fatalf("following %d rounds, bound %d", rs.Open(), MaxOpenRounds)
	}
	var nilRS *RoundSpans
	nilRS.Opened("j", 1, time.Now()) // must not panic
	nilRS.Closed("j", 1, time.Now(), OutcomeFailed, "x")
}

// TestRoundSpansAbandon: a round whose closing event was lost is ended
// when its job's next round opens, so it never holds a slot for good.
func TestRoundSpansAbandon(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	rs := NewRoundSpans(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	rs.Opened("job", 1, t0)
	rs.Opened("other", 1, t0)
	rs.Opened("job", 2, t0.Add(time.Second))
	if rs.Open() != 2 {
		t.Fatalf("following %d rounds, want 2 (job round 2, other round 1)", rs.Open())
	}
	var found bool
	for _, s := range rec.Ended() {
		if s.Name() == "round" {
			found = true
			if s.Status().Description != "closing event not seen" || s.EndTime() != t0.Add(time.Second) {
				t.Fatalf("abandoned round status %+v end %v", s.Status(), s.EndTime())
			}
		}
	}
	if !found {
		t.Fatal("the abandoned round was not ended")
	}
}

// TestProviderForSharesFile: components of one process (the demo) write to
// one trace file, each under its own service name and instance.
func TestProviderForSharesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	p, err := New(Config{TraceFile: path, SampleRatio: 1, Service: ServiceCoordinator, InstanceID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []trace.TracerProvider{p.TracerProvider(), p.For(ServiceNode, "n1"), p.For(ServiceNode, "n2")} {
		_, s := tp.Tracer("t").Start(context.Background(), "work")
		s.End()
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, l := range readLines(t, path) {
		got[l.Resource["service.name"]+"/"+l.Resource["service.instance.id"]] = true
	}
	if len(got) != 3 || !got["mfn-coordinator/c1"] || !got["mfn-node/n1"] || !got["mfn-node/n2"] {
		t.Fatalf("components in the file: %v", got)
	}
}
