package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLogFloodBounded sends 1 MB paths as fast as the handler takes
// them, unauthenticated (401) and to no route (404): the log stays small,
// each error body is clipped, another client still gets its lines, and
// the suppressed count is reported when the window ends.
func TestLogFloodBounded(t *testing.T) {
	t.Parallel()
	var now time.Time
	var mu sync.Mutex
	now = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	logs := &syncBuffer{}
	h, err := New(Config{Coordinator: seededFake(), Keys: testKeys(t), RateLimit: RateLimit{Rate: -1}, Clock: clock,
		Logger: newJSONLogger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 1<<20)
	const flood = 30
	for i := range flood {
		path := "/v1/jobs/" + long
		if i%2 == 1 {
			path = "/" + long
		}
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr = "192.0.2.7:4000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized && rec.Code != http.StatusNotFound {
			t.Fatalf("status %d", rec.Code)
		}
		if rec.Body.Len() > 2*maxErrorMessage {
			t.Fatalf("error body of %d bytes for a 1 MB path", rec.Body.Len())
		}
	}
	const perLine = 2048 // a clipped line is about 700 bytes
	if n := len(logs.String()); n > 10*perLine {
		t.Fatalf("%d 1 MB requests wrote %d bytes of log; want at most %d (10 sampled lines)", flood, n, 10*perLine)
	}
	lines := logLines(t, logs.String(), "http request")
	if len(lines) != 10 {
		t.Fatalf("%d access lines from the flooding client, want 10", len(lines))
	}
	if p := lines[0]["path"].(string); !strings.HasSuffix(p, "…[+"+itoa(1<<20+len("/v1/jobs/")-MaxClientString)+" bytes]") {
		t.Errorf("clipped path ends %q", p[len(p)-30:])
	}
	s := h.(*server)
	if got := testutil.ToFloat64(s.metrics.suppressed); got != flood-10 {
		t.Errorf("mfn_http_access_log_suppressed_total %v, want %d", got, flood-10)
	}

	// Another client is not silenced by the first.
	req := httptest.NewRequest("GET", "/nope", nil)
	req.RemoteAddr = "198.51.100.1:5000"
	h.ServeHTTP(httptest.NewRecorder(), req)
	if n := len(logLines(t, logs.String(), "http request")); n != 11 {
		t.Fatalf("another client's 404 not logged (%d lines)", n)
	}

	// The next window starts with the count of what was left out.
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	req = httptest.NewRequest("GET", "/nope", nil)
	req.RemoteAddr = "192.0.2.7:4001"
	h.ServeHTTP(httptest.NewRecorder(), req)
	sum := logLines(t, logs.String(), "access log lines suppressed")
	if len(sum) != 1 || sum[0]["suppressed"] != float64(flood-10) || sum[0]["remote_ip"] != "192.0.2.7" {
		t.Fatalf("summary lines %v, want one counting %d for 192.0.2.7", sum, flood-10)
	}
	if n := len(logLines(t, logs.String(), "http request")); n != 12 {
		t.Fatalf("the first line of the new window was not logged (%d lines)", n)
	}
}

// TestErrorBodiesClipped: client-supplied strings quoted in error bodies
// are clipped with a marker.
func TestErrorBodiesClipped(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	long := strings.Repeat("y", 5000)
	for _, path := range []string{"/v1/nodes/" + long, "/v1/jobs/j1/rounds/" + long, "/" + long} {
		resp := request(t, srv, "GET", path, keyReader, "")
		var body ErrorBody
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if m := body.Error.Message; len(m) > maxErrorMessage+32 || !strings.Contains(m, "…[+") {
			t.Errorf("GET %.20s…: message of %d bytes %.80q, want clipped with a marker", path, len(m), m)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func newJSONLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestServerErrorLogSampled: net/http's own error lines (one per bad TLS
// handshake or malformed request) are clipped and sampled, and the count
// of the rest is logged when the next window starts.
func TestServerErrorLogSampled(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	w := newErrorLogWriter(newJSONLogger(logs), LogSampling{})
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	w.now = func() time.Time { return now }
	for i := range 100 {
		fmt.Fprintf(w, "http: TLS handshake error from 192.0.2.%d:1: %s\n", i, strings.Repeat("z", 5000))
	}
	lines := logLines(t, logs.String(), "http server")
	if len(lines) != 10 {
		t.Fatalf("%d error lines logged of 100, want 10", len(lines))
	}
	if e := lines[0]["error"].(string); len(e) > maxErrorMessage+32 || !strings.Contains(e, "…[+") {
		t.Errorf("error line of %d bytes not clipped", len(e))
	}
	now = now.Add(time.Minute)
	fmt.Fprintf(w, "http: one more\n")
	sum := logLines(t, logs.String(), "http server errors suppressed")
	if len(sum) != 1 || sum[0]["suppressed"] != float64(90) {
		t.Fatalf("summary %v, want one line counting 90", sum)
	}
}
