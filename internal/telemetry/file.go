package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// SpanJSON is one line of a trace file.
type SpanJSON struct {
	TraceID      string            `json:"trace_id"`
	SpanID       string            `json:"span_id"`
	ParentSpanID string            `json:"parent_span_id,omitempty"`
	Name         string            `json:"name"`
	Kind         string            `json:"kind"`
	Start        time.Time         `json:"start"`
	End          time.Time         `json:"end"`
	DurationNS   int64             `json:"duration_ns"`
	Status       string            `json:"status,omitempty"`
	StatusMsg    string            `json:"status_message,omitempty"`
	Attributes   map[string]any    `json:"attributes,omitempty"`
	Events       []EventJSON       `json:"events,omitempty"`
	Links        []LinkJSON        `json:"links,omitempty"`
	Resource     map[string]string `json:"resource"`
}

// EventJSON is a span event in SpanJSON.
type EventJSON struct {
	Name       string         `json:"name"`
	Time       time.Time      `json:"time"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// LinkJSON is a span link in SpanJSON.
type LinkJSON struct {
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
}

// FileExporter is a SpanExporter writing one JSON span per line to a file,
// never more than a byte bound: a span whose line would cross it is
// dropped and counted. Lines are whole: a reader never sees a partial one
// after Shutdown.
type FileExporter struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	written int64
	max     int64
	dropped atomic.Uint64
}

var _ sdktrace.SpanExporter = (*FileExporter)(nil)

// CreateFileExporter creates (or truncates) path, mode 0600. maxBytes
// bounds the file; zero means DefaultMaxFileBytes.
func CreateFileExporter(path string, maxBytes int64) (*FileExporter, error) {
	if maxBytes < 0 {
		return nil, fmt.Errorf("%w: MaxFileBytes %d is negative", ErrConfig, maxBytes)
	}
	if maxBytes == 0 {
		maxBytes = DefaultMaxFileBytes
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("telemetry: trace file: %w", err)
	}
	return &FileExporter{f: f, w: bufio.NewWriter(f), max: maxBytes}, nil
}

// Dropped is the number of spans not written because of the bound.
func (e *FileExporter) Dropped() uint64 { return e.dropped.Load() }

// ExportSpans writes spans, one line each, until the bound.
func (e *FileExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f == nil {
		return nil
	}
	for _, s := range spans {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := json.Marshal(ToJSON(s))
		if err != nil {
			e.dropped.Add(1)
			continue
		}
		line = append(line, '\n')
		if e.written+int64(len(line)) > e.max {
			e.dropped.Add(1)
			continue
		}
		if _, err := e.w.Write(line); err != nil {
			return fmt.Errorf("telemetry: trace file: %w", err)
		}
		e.written += int64(len(line))
	}
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("telemetry: trace file: %w", err)
	}
	return nil
}

// Shutdown flushes and closes the file; later exports are ignored.
func (e *FileExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f == nil {
		return nil
	}
	err := e.w.Flush()
	if cerr := e.f.Close(); err == nil {
		err = cerr
	}
	e.f = nil
	return err
}

// ToJSON converts a finished span into its line form.
func ToJSON(s sdktrace.ReadOnlySpan) SpanJSON {
	sc := s.SpanContext()
	j := SpanJSON{
		TraceID:    sc.TraceID().String(),
		SpanID:     sc.SpanID().String(),
		Name:       s.Name(),
		Kind:       s.SpanKind().String(),
		Start:      s.StartTime().UTC(),
		End:        s.EndTime().UTC(),
		DurationNS: s.EndTime().Sub(s.StartTime()).Nanoseconds(),
		Resource:   map[string]string{},
	}
	if p := s.Parent(); p.IsValid() {
		j.ParentSpanID = p.SpanID().String()
	}
	if st := s.Status(); st.Code != 0 {
		j.Status, j.StatusMsg = st.Code.String(), st.Description
	}
	if attrs := s.Attributes(); len(attrs) > 0 {
		j.Attributes = make(map[string]any, len(attrs))
		for _, kv := range attrs {
			j.Attributes[string(kv.Key)] = kv.Value.AsInterface()
		}
	}
	for _, ev := range s.Events() {
		ej := EventJSON{Name: ev.Name, Time: ev.Time.UTC()}
		if len(ev.Attributes) > 0 {
			ej.Attributes = make(map[string]any, len(ev.Attributes))
			for _, kv := range ev.Attributes {
				ej.Attributes[string(kv.Key)] = kv.Value.AsInterface()
			}
		}
		j.Events = append(j.Events, ej)
	}
	for _, l := range s.Links() {
		j.Links = append(j.Links, LinkJSON{TraceID: l.SpanContext.TraceID().String(), SpanID: l.SpanContext.SpanID().String()})
	}
	if r := s.Resource(); r != nil {
		for _, kv := range r.Attributes() {
			j.Resource[string(kv.Key)] = kv.Value.String()
		}
	}
	return j
}
