package api

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfn/mfn/sim"
)

// TestSimulateFairShare: one key keeps every simulation slot it can get
// busy (its simulations block) while hammering the endpoint; another key
// is still served on every request, and the hammering key never holds
// more than its share.
func TestSimulateFairShare(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var running, maxHammer atomic.Int32
	srv, _ := newTestAPI(t, seededFake(), func(c *Config) { c.Compute.Concurrency = 2 })
	s := srv.Config.Handler.(*server)
	s.simulate = func(ctx context.Context, c sim.Config) (*sim.Result, error) {
		if c.Seed == 1 { // the hammering key's requests hold their slot
			n := running.Add(1)
			for {
				m := maxHammer.Load()
				if n <= m || maxHammer.CompareAndSwap(m, n) {
					break
				}
			}
			defer running.Add(-1)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return &sim.Result{N: c.GridSize, Steps: c.Steps}, nil
	}
	var wg sync.WaitGroup
	var refusedHammer atomic.Int32
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp := request(t, srv, "POST", "/v1/simulate", keyReader, `{"grid_size":8,"steps":2,"seed":1}`)
				if resp.StatusCode == http.StatusServiceUnavailable {
					refusedHammer.Add(1)
				}
				resp.Body.Close()
			}
		}()
	}
	pollUntil(t, 5*time.Second, "the hammering key holds a slot", func() bool { return running.Load() >= 1 && refusedHammer.Load() > 10 })
	const n = 20
	served := 0
	for range n {
		resp := request(t, srv, "POST", "/v1/simulate", keyAuditor, `{"grid_size":8,"steps":2,"seed":2}`)
		if resp.StatusCode == http.StatusOK {
			served++
		} else if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d", resp.StatusCode)
		}
		resp.Body.Close()
	}
	close(stop)
	close(release)
	wg.Wait()
	if served != n {
		t.Errorf("the other key was served %d of %d times while one key hammered", served, n)
	}
	if m := maxHammer.Load(); m != 1 {
		t.Errorf("the hammering key held %d slots at once, its share is 1", m)
	}
}
