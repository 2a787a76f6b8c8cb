package coordinator

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
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
		if err := Join(ctx, servers[li].URL, bad, JoinConfig{}); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("got %v, want 401", err)
		}
	})
	t.Run("untrusted key refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		bad := req
		bad.Sign(testKey(t, 99))
		if err := Join(ctx, servers[li].URL, bad, JoinConfig{}); err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("got %v, want 403", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req.Sign(tc.keys.coords[3].SigningKey)
	if err := Join(ctx, servers[fi].URL, req, JoinConfig{}); err != nil {
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
	// The configuration change and the member record are separate entries:
	// the joiner may count four voters before it has applied the record.
	eventually(t, 10*time.Second, "joined member record applied on the joiner", func() bool {
		m, ok := joiner.fsm.member("c3")
		return ok && m.HTTPAddr == joiner.cfg.HTTPAddr
	})
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

// countingTransport counts requests and calls after once, when the
// count reaches n.
type countingTransport struct {
	mu    sync.Mutex
	n     int
	at    int
	after func()
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n++
	if c.n == c.at && c.after != nil {
		c.after()
	}
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestJoinRetries(t *testing.T) {
	t.Parallel()
	req := JoinRequest{ID: "c9", RaftAddr: "127.0.0.1:1"}
	req.Sign(testKey(t, 9))
	// fast returns a config with short waits and its own jitter source
	// (a *rand.Rand is not safe for concurrent use).
	fast := func(seed uint64) JoinConfig {
		return JoinConfig{MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Rand: rand.New(rand.NewPCG(seed, 2))}
	}

	t.Run("502 503 504 429 then success", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		answers := []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests, http.StatusNoContent}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			code := answers[0]
			answers = answers[1:]
			mu.Unlock()
			w.WriteHeader(code)
		}))
		t.Cleanup(srv.Close)
		ct := &countingTransport{}
		cfg := fast(1)
		cfg.Client = &http.Client{Transport: ct}
		if err := Join(context.Background(), srv.URL, req, cfg); err != nil {
			t.Fatal(err)
		}
		if ct.count() != 5 {
			t.Fatalf("%d requests, want 5", ct.count())
		}
	})

	t.Run("connection refused until the member listens", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		var srv *http.Server
		ct := &countingTransport{at: 3, after: func() {
			// The third attempt was refused (or races the listener); the
			// member comes up now.
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })}
			go srv.Serve(l)
		}}
		cfg := fast(2)
		cfg.Client = &http.Client{Transport: ct}
		cfg.Timeout = 20 * time.Second
		err = Join(context.Background(), addr, req, cfg)
		if srv != nil {
			srv.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		if n := ct.count(); n < 3 {
			t.Fatalf("%d requests, want ≥ 3", n)
		}
	})

	t.Run("deadline gives a clear error", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cfg := fast(3)
		cfg.Timeout = 200 * time.Millisecond
		err = Join(context.Background(), addr, req, cfg)
		var je *JoinError
		if !errors.As(err, &je) || je.Attempts < 2 || je.Status != 0 {
			t.Fatalf("got %#v, want a JoinError after several attempts", err)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v: want connection refused and deadline exceeded inside", err)
		}
		if !strings.Contains(err.Error(), "gave up after") || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("message %q", err)
		}
	})

	t.Run("final answers are not retried", func(t *testing.T) {
		t.Parallel()
		for _, code := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusInternalServerError} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "no", code)
			}))
			ct := &countingTransport{}
			cfg := fast(4)
			cfg.Client = &http.Client{Transport: ct}
			err := Join(context.Background(), srv.URL, req, cfg)
			srv.Close()
			var je *JoinError
			if !errors.As(err, &je) || je.Status != code || ct.count() != 1 {
				t.Fatalf("%d: got %v after %d requests, want one request", code, err, ct.count())
			}
		}
	})

	t.Run("untrusted certificate is not retried", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		t.Cleanup(srv.Close)
		err := Join(context.Background(), srv.URL, req, fast(5))
		var je *JoinError
		if !errors.As(err, &je) || je.Attempts != 1 || je.Ended != nil {
			t.Fatalf("got %v, want one failed attempt", err)
		}
	})
}

// TestJoinOverHTTPS: the signed join works over HTTPS, and a follower's
// redirect to the leader keeps the https scheme.
func TestJoinOverHTTPS(t *testing.T) {
	t.Parallel()
	var servers []*httptest.Server
	var handlers []*lateHandler
	certKeys := NewPeerKeys()
	for i := range 4 {
		h := &lateHandler{}
		s := httptest.NewUnstartedServer(h)
		key := testKey(t, uint64(100+i))
		cert, err := SelfSignedHTTPCert(key, nil)
		if err != nil {
			t.Fatal(err)
		}
		certKeys.Add(key.Public().(ed25519.PublicKey))
		s.TLS = HTTPServerTLS(cert)
		s.StartTLS()
		t.Cleanup(s.Close)
		servers, handlers = append(servers, s), append(handlers, h)
	}
	tc := newTestCluster(t, 4, clusterOpts{voters: 3, httpAddr: func(i int) string {
		return strings.TrimPrefix(servers[i].URL, "https://")
	}})
	trusted := NewPeerKeys(tc.coordinatorKeys()...)
	for i, m := range tc.members {
		handlers[i].mu.Lock()
		handlers[i].h = NewBasicHTTPHandler(m, m.cfg.Registry.(prometheus.Gatherer), trusted)
		handlers[i].mu.Unlock()
	}
	li := tc.leader()
	eventually(t, 5*time.Second, "leader registered", func() bool {
		_, ok := tc.members[li].fsm.member(tc.members[li].cfg.ID)
		return ok
	})
	fi := (li + 1) % 3
	joiner := tc.members[3]
	req := JoinRequest{ID: "c3", RaftAddr: joiner.cfg.RaftAddr, QUICAddr: joiner.cfg.QUICAddr, HTTPAddr: joiner.cfg.HTTPAddr}
	req.Sign(tc.keys.coords[3].SigningKey)

	var schemes []string
	var mu sync.Mutex
	client := &http.Client{Transport: HTTPTransport(certKeys, nil), Timeout: 10 * time.Second,
		CheckRedirect: func(r *http.Request, _ []*http.Request) error {
			mu.Lock()
			schemes = append(schemes, r.URL.Scheme)
			mu.Unlock()
			return nil
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Join(ctx, servers[fi].URL, req, JoinConfig{Client: client}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(schemes) == 0 || slices.ContainsFunc(schemes, func(s string) bool { return s != "https" }) {
		t.Errorf("redirects went to schemes %v, want https", schemes)
	}
	mu.Unlock()
	eventually(t, 10*time.Second, "the joiner registered", func() bool {
		_, ok := tc.members[li].fsm.member("c3")
		return ok
	})
	// A client that does not trust the certificates gets nowhere, at once.
	err := Join(ctx, servers[fi].URL, req, JoinConfig{Client: &http.Client{Transport: HTTPTransport(NewPeerKeys(), nil)}})
	var je *JoinError
	if !errors.As(err, &je) || je.Attempts != 1 || !errors.Is(err, ErrUntrustedServer) {
		t.Fatalf("untrusted: %v", err)
	}
}
