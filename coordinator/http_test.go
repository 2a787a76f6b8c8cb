package coordinator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// lateHandler lets test servers exist before the members they serve.
type lateHandler struct {
	mu sync.Mutex
	h  http.Handler
}

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	h := l.h
	l.mu.Unlock()
	if h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

// TestJoinOverHTTP: a fourth member joins a 3-member cluster by posting a
// signed request to a follower, which redirects it to the leader.
func TestJoinOverHTTP(t *testing.T) {
	t.Parallel()
	var servers []*httptest.Server
	var handlers []*lateHandler
	for range 4 {
		h := &lateHandler{}
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		servers, handlers = append(servers, s), append(handlers, h)
	}
	tc := newTestCluster(t, 4, clusterOpts{voters: 3, httpAddr: func(i int) string {
		return strings.TrimPrefix(servers[i].URL, "http://")
	}})
	trusted := NewPeerKeys(tc.coordinatorKeys()...)
	for i, m := range tc.members {
		handlers[i].mu.Lock()
		handlers[i].h = NewBasicHTTPHandler(m, m.cfg.Registry.(prometheus.Gatherer), trusted)
		handlers[i].mu.Unlock()
	}
	li := tc.leader()
	// Wait for the leader to have registered its addresses.
	eventually(t, 5*time.Second, "leader registered", func() bool {
		_, ok := tc.members[li].fsm.member(tc.members[li].cfg.ID)
		return ok
	})
	fi := (li + 1) % 3
	joiner := tc.members[3]
	req := JoinRequest{ID: "c3", RaftAddr: joiner.cfg.RaftAddr, QUICAddr: joiner.cfg.QUICAddr, HTTPAddr: joiner.cfg.HTTPAddr}

	t.Run("unsigned request refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		bad := req
		bad.PublicKey = tc.keys.coords[3].PublicKey()
		bad.Time = time.Now()
		if err := Join(ctx, servers[li].URL, bad, ""); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("got %v, want 401", err)
		}
	})
	t.Run("untrusted key refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		bad := req
		bad.Sign(testKey(t, 99))
		if err := Join(ctx, servers[li].URL, bad, ""); err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("got %v, want 403", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req.Sign(tc.keys.coords[3].SigningKey)
	if err := Join(ctx, servers[fi].URL, req, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "four voters seen by the joiner", func() bool {
		st := joiner.Status()
		n := 0
		for _, m := range st.Members {
			if m.Suffrage == raft.Voter.String() {
				n++
			}
		}
		return n == 4 && st.LeaderID != ""
	})
	if m, ok := joiner.fsm.member("c3"); !ok || m.HTTPAddr != joiner.cfg.HTTPAddr {
		t.Fatalf("joined member record %+v %v", m, ok)
	}
	// Removal through the Go API.
	l := tc.members[tc.leader()]
	if err := l.RemoveServer(ctx, "c3"); err != nil {
		t.Fatal(err)
	}
	if st := l.Status(); len(st.Members) != 3 {
		t.Fatalf("members after removal: %+v", st.Members)
	}

	t.Run("health endpoints", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			resp, err := http.Get(servers[li].URL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
			}
			if path == "/readyz" {
				var v struct{ Ready bool }
				if json.Unmarshal(body, &v) != nil || !v.Ready {
					t.Fatalf("readyz: %s", body)
				}
			}
			if path == "/metrics" && !strings.Contains(string(body), "mfn_coordinator_raft_term") {
				t.Fatalf("metrics lack raft gauges")
			}
		}
	})
}
