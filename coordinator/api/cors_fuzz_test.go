package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzCORS: any Origin, preflight method, request headers and path
// never panic; only the listed origin is ever echoed, never "*", and
// credentials are never allowed.
func FuzzCORS(f *testing.F) {
	for _, s := range [][4]string{
		{"https://app.example.org", "POST", "content-type,x-api-key", "/v1/jobs"},
		{"https://APP.example.org", "DELETE", "", "/v1/jobs/j1"},
		{"null", "GET", "", "/v1/jobs"},
		{"https://evil.example.org", "GET", "authorization", "/v1/nodes"},
		{"%zz", "", ",,, ,", "/v1/../v1/jobs"},
		{"", "PUT", "x-api-key", "/"},
	} {
		f.Add(s[0], s[1], s[2], s[3], true)
	}
	h, err := New(Config{Coordinator: seededFake(), Keys: testKeys(f), RateLimit: RateLimit{Rate: -1},
		CORSOrigins: []string{"https://app.example.org"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, origin, method, headers, path string, pre bool) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#?") {
			path = "/v1/jobs"
		}
		req, err := http.NewRequest(http.MethodGet, "http://member.test"+path, nil)
		if err != nil {
			return
		}
		if pre {
			req.Method = http.MethodOptions
			req.Header.Set("Access-Control-Request-Method", method)
			req.Header.Set("Access-Control-Request-Headers", headers)
		}
		req.Header.Set("Origin", origin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		acao := rec.Header().Get("Access-Control-Allow-Origin")
		if acao != "" && !strings.EqualFold(acao, "https://app.example.org") {
			t.Fatalf("origin %q: Access-Control-Allow-Origin %q", origin, acao)
		}
		if rec.Header().Get("Access-Control-Allow-Credentials") != "" {
			t.Fatal("credentials allowed")
		}
		if pre && origin != "" && method != "" && rec.Code == http.StatusNoContent && acao == "" {
			t.Fatal("204 preflight without an allowed origin")
		}
	})
}
