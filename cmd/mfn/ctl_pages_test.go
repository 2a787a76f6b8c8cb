package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
)

// TestCtlRoundsFollowsPages: "mfn ctl rounds list" asks for the next page
// while the server says more rounds follow, and prints them all.
func TestCtlRoundsFollowsPages(t *testing.T) {
	t.Parallel()
	const total = 2*api.MaxRoundsPage + 5
	var mu sync.Mutex
	var afters []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/jobs/j1/rounds" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		afters = append(afters, r.URL.Query().Get("after"))
		mu.Unlock()
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		var l api.RoundList
		for n := after + 1; n <= total && len(l.Rounds) < limit; n++ {
			l.Rounds = append(l.Rounds, coordinator.Round{Job: "j1", Number: uint64(n), State: coordinator.RoundClosed})
		}
		if last := after + len(l.Rounds); last < total {
			next := uint64(last)
			l.NextAfter = &next
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(l)
	}))
	defer srv.Close()
	code, out, errOut := runCtl(t, "--server", srv.URL, "--api-key", ctlReader, "rounds", "list", "j1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var l api.RoundList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Rounds) != total || l.Rounds[total-1].Number != total {
		t.Fatalf("printed %d rounds, want %d", len(l.Rounds), total)
	}
	if got := strings.Join(afters, ","); got != ",1000,2000" {
		t.Errorf("pages asked after %q, want \",1000,2000\"", got)
	}
}
