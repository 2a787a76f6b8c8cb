package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestOTLPExport: spans reach an OTLP/HTTP collector at /v1/traces when the
// endpoint is given without a path, flushed by Shutdown.
func TestOTLPExport(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var paths []string
	var bodies int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		if len(b) > 0 {
			bodies++
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	p, err := New(Config{OTLPEndpoint: srv.URL, SampleRatio: 1, Service: ServiceCoordinator, InstanceID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	_, s := p.TracerProvider().Tracer("t").Start(context.Background(), "exported")
	s.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) == 0 || paths[0] != "POST /v1/traces application/x-protobuf" || bodies == 0 {
		t.Fatalf("collector saw %q (%d non-empty bodies), want a protobuf POST to /v1/traces", paths, bodies)
	}
}
