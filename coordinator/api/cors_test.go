package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const allowedOrigin = "https://app.example.org"

func preflight(t *testing.T, srvURL string, c *http.Client, path, origin, method, headers string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodOptions, srvURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", method)
	if headers != "" {
		req.Header.Set("Access-Control-Request-Headers", headers)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestCORSOff: without origins no CORS header is sent and a preflight
// is a plain 405.
func TestCORSOff(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	resp := preflight(t, srv.URL, srv.Client(), "/v1/jobs", allowedOrigin, "POST", "content-type,x-api-key")
	wantError(t, resp, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("CORS off: preflight has Access-Control-Allow-Origin %q", v)
	}
	r := request(t, srv, "GET", "/v1/jobs", keyReader, "", "Origin", allowedOrigin)
	if r.StatusCode != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Vary") != "" {
		t.Errorf("CORS off: GET %d, ACAO %q, Vary %q", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"), r.Header.Get("Vary"))
	}
}

// TestCORSOn: preflights of a listed origin get the path's methods and
// the allowed headers; anything else is refused; real responses name
// the listed origin only, never "*", and never allow credentials.
func TestCORSOn(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), func(c *Config) {
		c.CORSOrigins = []string{"HTTPS://App.Example.org", "http://127.0.0.1:5173"}
	})
	noCredentials := func(resp *http.Response) {
		t.Helper()
		if v := resp.Header.Get("Access-Control-Allow-Credentials"); v != "" {
			t.Errorf("Access-Control-Allow-Credentials %q", v)
		}
		if v := resp.Header.Get("Access-Control-Allow-Origin"); v == "*" {
			t.Error("wildcard Access-Control-Allow-Origin")
		}
		if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("Vary %q lacks Origin", resp.Header.Values("Vary"))
		}
	}

	resp := preflight(t, srv.URL, srv.Client(), "/v1/jobs", allowedOrigin, "POST", "Content-Type, X-API-Key")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("allowed preflight: %d", resp.StatusCode)
	}
	noCredentials(resp)
	for h, want := range map[string]string{
		"Access-Control-Allow-Origin":  allowedOrigin,
		"Access-Control-Allow-Methods": "GET, POST",
		"Access-Control-Allow-Headers": "Content-Type, X-API-Key, X-Request-ID",
		"Access-Control-Max-Age":       "600",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if got := preflight(t, srv.URL, srv.Client(), "/v1/jobs/j1", "http://127.0.0.1:5173", "DELETE", "").Header.Get("Access-Control-Allow-Methods"); got != "GET, DELETE" {
		t.Errorf("/v1/jobs/j1 methods %q", got)
	}

	for name, c := range map[string]struct{ path, origin, method, headers string }{
		"unlisted origin":   {"/v1/jobs", "https://evil.example.org", "POST", ""},
		"scheme differs":    {"/v1/jobs", "http://app.example.org", "GET", ""},
		"method not served": {"/v1/jobs", allowedOrigin, "DELETE", ""},
		"header not listed": {"/v1/jobs", allowedOrigin, "GET", "Authorization"},
		"no such path":      {"/v1/nope", allowedOrigin, "GET", ""},
	} {
		resp := preflight(t, srv.URL, srv.Client(), c.path, c.origin, c.method, c.headers)
		wantError(t, resp, http.StatusForbidden, CodeForbidden)
		if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("%s: refused preflight has Access-Control-Allow-Origin %q", name, v)
		}
	}

	// Real requests: the listed origin may read the answer, errors
	// included; another origin gets no CORS header (the browser hides
	// the answer).
	r := request(t, srv, "GET", "/v1/jobs", keyReader, "", "Origin", allowedOrigin)
	if r.StatusCode != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != allowedOrigin ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "X-RateLimit-Remaining") {
		t.Errorf("listed GET: %d, ACAO %q, expose %q", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"), r.Header.Get("Access-Control-Expose-Headers"))
	}
	noCredentials(r)
	r = request(t, srv, "GET", "/v1/jobs", "", "", "Origin", allowedOrigin)
	wantError(t, r, http.StatusUnauthorized, CodeUnauthorized)
	if r.Header.Get("Access-Control-Allow-Origin") != allowedOrigin {
		t.Error("401 to a listed origin is not readable by its page")
	}
	r = request(t, srv, "GET", "/v1/jobs", keyReader, "", "Origin", "https://evil.example.org")
	if v := r.Header.Get("Access-Control-Allow-Origin"); r.StatusCode != http.StatusOK || v != "" {
		t.Errorf("unlisted GET: %d, ACAO %q", r.StatusCode, v)
	}

	// The event stream accepts a listed origin and still refuses others.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, srv.URL+"/v1/events", &websocket.DialOptions{HTTPClient: srv.Client(),
		HTTPHeader: http.Header{HeaderAPIKey: {keyReader}, "Origin": {allowedOrigin}}})
	if err != nil {
		t.Fatalf("stream from a listed origin refused: %v", err)
	}
	conn.CloseNow()
	_, resp, err = websocket.Dial(ctx, srv.URL+"/v1/events", &websocket.DialOptions{HTTPClient: srv.Client(),
		HTTPHeader: http.Header{HeaderAPIKey: {keyReader}, "Origin": {"https://evil.example.org"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("stream from an unlisted origin: err %v, resp %v", err, resp)
	}
}

func TestCORSOriginsValidated(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"*", "https://*.example.org", "ftp://x.org", "https://x.org/path", "x.org", "https://", "https://u:p@x.org", "https://x.org?q=1"} {
		if _, err := New(Config{Coordinator: seededFake(), Keys: testKeys(t), CORSOrigins: []string{bad}}); err == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
	for in, want := range map[string]string{"HTTPS://X.org": "https://x.org", "http://127.0.0.1:8080/": "http://127.0.0.1:8080"} {
		if got, err := ParseOrigin(in); err != nil || got != want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
