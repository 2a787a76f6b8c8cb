package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkCreateJobLargeBody measures the strict decoding of a job spec
// carrying a 1 MiB initial model (131,072 float64s in base64): the body
// read, the duplicate-key scan and the decode (the fake answers 409).
func BenchmarkCreateJobLargeBody(b *testing.B) {
	h, err := New(Config{Coordinator: seededFake(), Keys: testKeys(b), RateLimit: RateLimit{Rate: -1}})
	if err != nil {
		b.Fatal(err)
	}
	model := base64.StdEncoding.EncodeToString(make([]byte, 1<<20))
	body := fmt.Sprintf(`{"id":"j1","task":"mfn-regime","dim":131072,"rule":{"name":"krum","f":1},"rounds":2,"min_updates":1,"max_updates":3,"round_deadline":"30s","initial_model":%q}`, model)
	b.SetBytes(int64(len(body)))
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
