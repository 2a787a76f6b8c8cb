package api

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRateClassesIndependent: each class has its own rate and capacity.
// With writes at burst 1, reads at burst 3, compute off and events left
// to the default, a key exhausts its writes while its reads still pass,
// then exhausts its reads at exactly 3, and compute is never limited.
func TestRateClassesIndependent(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv, _ := newTestAPI(t, seededFake(), func(c *Config) {
		c.RateLimit = RateLimit{Rate: 1, Burst: 2, Classes: map[string]ClassRate{
			ClassWrites:  {Rate: 0.1, Burst: 1},
			ClassReads:   {Rate: 0.1, Burst: 3},
			ClassCompute: {Rate: -1},
		}}
		c.Clock = clock
	})
	status := func(method, path, body string) (int, string) {
		t.Helper()
		resp := request(t, srv, method, path, keyOperator, body)
		return resp.StatusCode, resp.Header.Get("X-RateLimit-Limit")
	}
	if code, lim := status("POST", "/v1/jobs/j1/stop", ""); code == http.StatusTooManyRequests || lim != "1" {
		t.Fatalf("first write: %d, limit %q (want the writes class's 1)", code, lim)
	}
	if code, _ := status("POST", "/v1/jobs/j1/stop", ""); code != http.StatusTooManyRequests {
		t.Fatalf("second write at burst 1: %d, want 429", code)
	}
	for i := range 3 {
		if code, lim := status("GET", "/v1/jobs", ""); code != http.StatusOK || lim != "3" {
			t.Fatalf("read %d with writes exhausted: %d, limit %q", i+1, code, lim)
		}
	}
	resp := request(t, srv, "GET", "/v1/jobs", keyOperator, "")
	e := wantError(t, resp, http.StatusTooManyRequests, CodeRateLimited)
	if !strings.Contains(e.Message, "class reads") {
		t.Errorf("429 message %q does not name the class", e.Message)
	}
	for i := range 10 {
		code, lim := status("POST", "/v1/nernst", `{"z":1,"c_out":0.005,"c_in":0.14}`)
		if code != http.StatusOK || lim != "" {
			t.Fatalf("compute (off) request %d: %d, limit header %q", i+1, code, lim)
		}
	}
	// events takes the default (burst 2) and the limit applies before
	// the upgrade check: 426, 426, then 429.
	for i, want := range []int{http.StatusUpgradeRequired, http.StatusUpgradeRequired, http.StatusTooManyRequests} {
		if code, lim := status("GET", "/v1/events", ""); code != want || lim != "2" {
			t.Errorf("events request %d: %d limit %q, want %d limit 2", i+1, code, lim, want)
		}
	}
}

func TestParseRateClasses(t *testing.T) {
	t.Parallel()
	got, err := ParseRateClasses(" reads=20:40, writes=5:10,compute=0,events=0.5")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ClassRate{"reads": {20, 40}, "writes": {5, 10}, "compute": {-1, 0}, "events": {0.5, 0}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %+v, want %+v", k, got[k], v)
		}
	}
	if s := FormatRateClasses(got); s != "compute=0:0,events=0.5:0,reads=20:40,writes=5:10" {
		t.Errorf("format %q", s)
	}
	if m, err := ParseRateClasses(""); err != nil || len(m) != 0 {
		t.Errorf("empty: %v %v", m, err)
	}
	for _, bad := range []string{"reads", "bogus=1:2", "reads=1:2,reads=3", "reads=-1", "reads=x", "reads=1:0", "reads=1:x", "reads=NaN", "reads=2e6", "writes=1:2000000"} {
		if _, err := ParseRateClasses(bad); !errors.Is(err, ErrBadRates) {
			t.Errorf("%q: err %v, want ErrBadRates", bad, err)
		}
	}
	for _, bad := range []RateLimit{
		{Classes: map[string]ClassRate{"bogus": {Rate: 1}}},
		{Classes: map[string]ClassRate{"reads": {Rate: 0}}},
		{Classes: map[string]ClassRate{"reads": {Rate: 1, Burst: -1}}},
	} {
		cfg := Config{Coordinator: seededFake(), Keys: testKeys(t), RateLimit: bad}
		if _, err := New(cfg); err == nil {
			t.Errorf("New accepted %+v", bad)
		}
	}
}

// TestOpenAPIRateClasses: the document names each keyed route's class,
// the one the limiter applies.
func TestOpenAPIRateClasses(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	ops := specOps(t, fetchSpec(t, srv))
	want := map[string]string{
		"GET /v1/jobs": ClassReads, "POST /v1/jobs": ClassWrites, "DELETE /v1/cluster/members/{id}": ClassWrites,
		"POST /v1/simulate": ClassCompute, "POST /v1/nernst": ClassCompute, "GET /v1/events": ClassEvents,
		"GET /v1/audit/leaves": ClassReads,
	}
	for k, c := range want {
		if got := ops[k][ExtRateClass]; got != c {
			t.Errorf("%s: %s %v, want %s", k, ExtRateClass, got, c)
		}
	}
	if _, ok := ops["GET /healthz"][ExtRateClass]; ok {
		t.Error("public route has a rate class")
	}
}
