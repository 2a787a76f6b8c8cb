package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkGetJob measures the API's own cost on a current read (request
// id, key lookup, rate limit, metrics, access log, JSON), without network,
// against the in-memory fake.
func BenchmarkGetJob(b *testing.B) {
	h, err := New(Config{Coordinator: seededFake(), Keys: testKeys(b), RateLimit: RateLimit{Rate: 1e9, Burst: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/v1/jobs/j1", nil)
		req.Header.Set(HeaderAPIKey, keyReader)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkCreateJobBody measures strict decoding and validation of a job
// spec body on the write path (the fake rejects duplicates, so each
// iteration answers 409 after decoding).
func BenchmarkCreateJobBody(b *testing.B) {
	h, err := New(Config{Coordinator: seededFake(), Keys: testKeys(b), RateLimit: RateLimit{Rate: -1}})
	if err != nil {
		b.Fatal(err)
	}
	body := `{"id":"j1","task":"mfn-regime","dim":3,"rule":{"name":"krum","f":1},"rounds":2,"min_updates":1,"max_updates":3,"round_deadline":"30s"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/jobs", strings.NewReader(body))
		req.Header.Set(HeaderAPIKey, keyOperator)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusConflict {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
}
