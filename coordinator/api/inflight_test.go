package api

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfn/mfn/sim"
)

// inFlightMetric reads mfn_http_in_flight_requests from /metrics (the
// scrape itself is in flight while it is served, so it counts one).
func inFlightMetric(t *testing.T, url string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "mfn_http_in_flight_requests "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatal("mfn_http_in_flight_requests not on /metrics")
	return 0
}

// TestInFlightGauge: requests held inside a handler are counted while
// they run and no longer once they finish.
func TestInFlightGauge(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), func(c *Config) { c.Compute.Concurrency = 4; c.Compute.PerKey = 4 })
	s := srv.Config.Handler.(*server)
	release := make(chan struct{})
	entered := make(chan struct{}, 3)
	s.simulate = func(ctx context.Context, c sim.Config) (*sim.Result, error) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &sim.Result{N: c.GridSize, Steps: c.Steps}, nil
	}
	if got := inFlightMetric(t, srv.URL); got != 1 {
		t.Fatalf("idle server: in flight %v, want 1 (the scrape)", got)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := request(t, srv, "POST", "/v1/simulate", keyReader, `{"grid_size":8,"steps":2}`)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	for range 3 {
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("simulations did not start")
		}
	}
	if got := inFlightMetric(t, srv.URL); got != 4 {
		t.Errorf("3 requests held: in flight %v, want 4", got)
	}
	close(release)
	wg.Wait()
	pollUntil(t, 5*time.Second, "gauge back to the scrape alone", func() bool { return inFlightMetric(t, srv.URL) == 1 })
}
