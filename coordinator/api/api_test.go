package api

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/sim"
)

// wantError checks an error response: status, the one error shape, the
// code, and a request id equal to the X-Request-ID header.
func wantError(t *testing.T, resp *http.Response, status int, code string) ErrorDetail {
	t.Helper()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body ErrorBody
	if err := decodeStrict(raw, &body); err != nil {
		t.Fatalf("error body %s is not the error shape: %v", raw, err)
	}
	e := body.Error
	if e.Code != code {
		t.Errorf("code %q, want %q (message %q)", e.Code, code, e.Message)
	}
	if e.Message == "" {
		t.Error("empty error message")
	}
	if e.RequestID == "" || e.RequestID != resp.Header.Get(HeaderRequestID) {
		t.Errorf("request_id %q, header %q: want equal and non-empty", e.RequestID, resp.Header.Get(HeaderRequestID))
	}
	return e
}

func decodeResp[T any](t *testing.T, resp *http.Response, status int) T {
	t.Helper()
	var v T
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, raw)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return v
}

const testPubKey = "mfn-ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

func seededFake() *fakeCoord {
	f := newFake("c1", true)
	f.jobs["j1"] = coordinator.Job{Spec: coordinator.JobSpec{ID: "j1", Task: "mfn-regime", Dim: 3}, State: coordinator.JobRunning, Rounds: 1}
	score := 0.5
	f.rounds["j1"] = []coordinator.Round{{Job: "j1", Number: 1, State: coordinator.RoundClosed,
		Updates: []coordinator.Update{{Node: "n1", Used: true, Score: &score, Sealed: []byte("secret")},
			{Node: "n2", Used: false, Reason: "rejected by krum"}}}}
	f.models["j1"] = map[uint64]coordinator.Model{
		0: {Job: "j1", Version: 0, Params: coordinator.Params{0, 0, 0}},
		1: {Job: "j1", Version: 1, Round: 1, Params: coordinator.Params{1.5, -2, math.Pi}},
	}
	f.models["j1"][1] = coordinator.Model{Job: "j1", Version: 1, Round: 1, Params: coordinator.Params{1.5, -2, math.Pi},
		Hash: coordinator.ModelHash(coordinator.Params{1.5, -2, math.Pi})}
	return f
}

// TestRoleMatrix checks every route against every role: a key below the
// route's role gets 403, at or above it anything but 401/403, and no key
// or an unknown key 401.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	f := seededFake()
	srv, _ := newTestAPI(t, f, nil)
	keys := map[Role]string{RoleReader: keyReader, RoleAuditor: keyAuditor, RoleOperator: keyOperator, RoleAdmin: keyAdmin}
	type rt struct {
		method, path, body string
		role               Role
	}
	routes := []rt{
		{"GET", "/v1/cluster", "", RoleReader},
		{"GET", "/v1/nodes", "", RoleReader},
		{"GET", "/v1/jobs", "", RoleReader},
		{"GET", "/v1/jobs/j1", "", RoleReader},
		{"GET", "/v1/jobs/j1/rounds", "", RoleReader},
		{"GET", "/v1/jobs/j1/rounds/1", "", RoleReader},
		{"GET", "/v1/jobs/j1/metrics", "", RoleReader},
		{"GET", "/v1/jobs/j1/models/1", "", RoleReader},
		{"GET", "/v1/jobs/j1/models/1/params", "", RoleReader},
		{"POST", "/v1/nernst", `{"z":1,"c_out":0.005,"c_in":0.14}`, RoleReader},
		{"GET", "/v1/audit/checkpoint", "", RoleAuditor},
		{"GET", "/v1/audit/checkpoints", "", RoleAuditor},
		{"GET", "/v1/audit/bundles/0", "", RoleAuditor},
		{"GET", "/v1/audit/consistency?from=0&to=0", "", RoleAuditor},
		{"GET", "/v1/audit/leaves", "", RoleAuditor},
		{"POST", "/v1/nodes", `{"id":"n9","public_key":"` + testPubKey + `"}`, RoleOperator},
		{"POST", "/v1/nodes/n9/revoke", "", RoleOperator},
		{"POST", "/v1/jobs", `{"id":"jx","dim":2}`, RoleOperator},
		{"POST", "/v1/jobs/j1/stop", "", RoleOperator},
		{"POST", "/v1/jobs/j1/archive", "", RoleOperator},
		{"DELETE", "/v1/jobs/j1", "", RoleOperator},
		{"POST", "/v1/cluster/join", `{"id":"c9","raft_addr":"127.0.0.1:1","public_key":"` + testPubKey + `"}`, RoleAdmin},
		{"DELETE", "/v1/cluster/members/c9", "", RoleAdmin},
		{"GET", "/v1/nodes/n9", "", RoleReader},
		{"DELETE", "/v1/nodes/n9", "", RoleOperator},
		{"GET", "/v1/audit/leaves/0", "", RoleAuditor},
		{"GET", "/v1/events", "", RoleReader},
		{"POST", "/v1/simulate", `{"grid_size":8,"steps":2}`, RoleReader},
	}
	// The matrix covers every keyed route of the table, with its role.
	h, err := New(Config{Coordinator: f, Keys: testKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := h.(*server)
	covered := map[string]Role{}
	for _, r := range routes {
		_, pattern := s.mux.Handler(httptest.NewRequest(r.method, r.path, nil))
		covered[pattern] = r.role
	}
	for _, rt := range s.routes(nil) {
		if rt.role == 0 {
			continue
		}
		if role, ok := covered[rt.pattern]; !ok || role != rt.role {
			t.Errorf("route %s (role %s) not in the matrix with its role (matrix says %v)", rt.pattern, rt.role, role)
		}
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			wantError(t, request(t, srv, r.method, r.path, "", r.body), http.StatusUnauthorized, CodeUnauthorized)
			wantError(t, request(t, srv, r.method, r.path, "not-a-key-but-long-enough", r.body), http.StatusUnauthorized, CodeUnauthorized)
			for role := RoleReader; role <= RoleAdmin; role++ {
				resp := request(t, srv, r.method, r.path, keys[role], r.body)
				if role < r.role {
					e := wantError(t, resp, http.StatusForbidden, CodeForbidden)
					if !strings.Contains(e.Message, r.role.String()) {
						t.Errorf("403 message %q does not name the needed role %s", e.Message, r.role)
					}
					continue
				}
				if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
					b, _ := io.ReadAll(resp.Body)
					t.Errorf("role %s: status %d, want access; body %s", role, resp.StatusCode, b)
				}
			}
		})
	}
	// Public routes need no key.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp := request(t, srv, "GET", p, "", ""); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without key: %d, want 200", p, resp.StatusCode)
		}
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	srv, _ := newTestAPI(t, seededFake(), func(c *Config) {
		c.RateLimit = RateLimit{Rate: 0.5, Burst: 2}
		c.Clock = clock
	})
	check := func(resp *http.Response, limit, remaining, reset string) {
		t.Helper()
		for h, want := range map[string]string{"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
	}
	r1 := request(t, srv, "GET", "/v1/jobs", keyReader, "")
	check(r1, "2", "1", "2") // one token spent, refilled in 2 s at 0.5/s
	r2 := request(t, srv, "GET", "/v1/jobs", keyReader, "")
	check(r2, "2", "0", "4")
	r3 := request(t, srv, "GET", "/v1/jobs", keyReader, "")
	wantError(t, r3, http.StatusTooManyRequests, CodeRateLimited)
	check(r3, "2", "0", "4")
	if ra := r3.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2 (one token at 0.5/s)", ra)
	}
	// Another route and another key have their own buckets.
	if r := request(t, srv, "GET", "/v1/nodes", keyReader, ""); r.StatusCode != 200 {
		t.Errorf("other route: %d", r.StatusCode)
	}
	if r := request(t, srv, "GET", "/v1/jobs", keyAdmin, ""); r.StatusCode != 200 {
		t.Errorf("other key: %d", r.StatusCode)
	}
	advance(2 * time.Second)
	r4 := request(t, srv, "GET", "/v1/jobs", keyReader, "")
	if r4.StatusCode != 200 {
		t.Fatalf("after refill: %d", r4.StatusCode)
	}
	check(r4, "2", "0", "4")
	// Public routes carry no rate limit headers.
	if h := request(t, srv, "GET", "/healthz", "", "").Header.Get("X-RateLimit-Limit"); h != "" {
		t.Errorf("/healthz has X-RateLimit-Limit %q", h)
	}
}

func TestLimiterBounded(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	l := newLimiter(RateLimit{Rate: 1, Burst: 1, MaxBuckets: 3}, func() time.Time { return now })
	for i := range 10 {
		l.take(fmt.Sprint("k", i), "r", ClassRate{Rate: 1, Burst: 1})
		if n := l.size(); n > 3 {
			t.Fatalf("after %d keys: %d buckets, want ≤ 3", i+1, n)
		}
	}
	// A refilled (idle) bucket is evicted before a busy one: k9 is the
	// newest; after 1 s every bucket is full and evictable.
	now = now.Add(time.Second)
	l.take("fresh", "r", ClassRate{Rate: 1, Burst: 1})
	if n := l.size(); n != 1 {
		t.Errorf("idle buckets not evicted: %d buckets, want 1", n)
	}
	// The most recent bucket survives eviction by LRU and still limits.
	if d := l.take("fresh", "r", ClassRate{Rate: 1, Burst: 1}); d.ok {
		t.Error("fresh key's second request in the same instant was allowed with burst 1")
	}
}

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), func(c *Config) { c.MaxBodyBytes = 256 })
	cases := []struct {
		name, body, ctype string
		status            int
		code, mention     string
	}{
		{"unknown field", `{"id":"j2","dim":2,"bogus":1}`, "application/json", 400, CodeBadRequest, `"bogus"`},
		{"nested unknown field", `{"id":"j2","dim":2,"rule":{"name":"krum","k":1}}`, "application/json", 400, CodeBadRequest, `"k"`},
		{"trailing data", `{"id":"j2","dim":2} {}`, "application/json", 400, CodeBadRequest, "after the JSON value"},
		{"trailing garbage", `{"id":"j2","dim":2}x`, "application/json", 400, CodeBadRequest, ""},
		{"syntax", `{"id":`, "application/json", 400, CodeBadRequest, "truncated"},
		{"wrong type", `{"id":"j2","dim":"two"}`, "application/json", 400, CodeBadRequest, `"dim"`},
		{"empty", ``, "application/json", 400, CodeBadRequest, "empty body"},
		{"too large", `{"id":"` + strings.Repeat("a", 300) + `"}`, "application/json", 413, CodeTooLarge, "256"},
		{"text/plain", `{"id":"j2","dim":2}`, "text/plain", 415, CodeUnsupportedMedia, "application/json"},
		{"no content type", `{"id":"j2","dim":2}`, "", 415, CodeUnsupportedMedia, ""},
		{"json with charset ok", `{"id":"j2","dim":2}`, "application/json; charset=utf-8", 201, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := request(t, srv, "POST", "/v1/jobs", keyOperator, c.body, "Content-Type", c.ctype)
			if c.code == "" {
				if resp.StatusCode != c.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
				}
				return
			}
			e := wantError(t, resp, c.status, c.code)
			if !strings.Contains(e.Message, c.mention) {
				t.Errorf("message %q does not mention %q", e.Message, c.mention)
			}
		})
	}
	// Domain validation is a 400 "invalid", distinct from malformed JSON.
	wantError(t, request(t, srv, "POST", "/v1/jobs", keyOperator, `{"id":"j3","dim":0}`), 400, CodeInvalid)
	wantError(t, request(t, srv, "POST", "/v1/nodes", keyOperator, `{"id":"n1","public_key":"mfn-ed25519:AAAA"}`), 400, CodeBadRequest)
	// A duplicate is a 409.
	wantError(t, request(t, srv, "POST", "/v1/jobs", keyOperator, `{"id":"j1","dim":3}`), 409, CodeConflict)
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	wantError(t, request(t, srv, "GET", "/nope", "", ""), 404, CodeNotFound)
	wantError(t, request(t, srv, "GET", "/v1/jobz", keyReader, ""), 404, CodeNotFound)
	wantError(t, request(t, srv, "GET", "/v1/jobs/j1/rounds/1/extra", keyReader, ""), 404, CodeNotFound)
	resp := request(t, srv, "PUT", "/v1/jobs", keyOperator, `{}`)
	wantError(t, resp, 405, CodeMethodNotAllowed)
	if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow %q, want GET and POST", allow)
	}
	resp = request(t, srv, "DELETE", "/healthz", "", "")
	wantError(t, resp, 405, CodeMethodNotAllowed)
	// Resources that do not exist are 404 too, with the same shape.
	wantError(t, request(t, srv, "GET", "/v1/jobs/zz", keyReader, ""), 404, CodeNotFound)
	wantError(t, request(t, srv, "GET", "/v1/jobs/j1/rounds/9", keyReader, ""), 404, CodeNotFound)
	wantError(t, request(t, srv, "GET", "/v1/jobs/j1/rounds/x", keyReader, ""), 400, CodeBadRequest)
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	srv, logs := newTestAPI(t, seededFake(), nil)
	resp := request(t, srv, "GET", "/v1/jobs/missing", keyReader, "", HeaderRequestID, "trace-42.a")
	if got := resp.Header.Get(HeaderRequestID); got != "trace-42.a" {
		t.Fatalf("echoed %q, want trace-42.a", got)
	}
	if e := wantError(t, resp, 404, CodeNotFound); e.RequestID != "trace-42.a" {
		t.Errorf("body request_id %q", e.RequestID)
	}
	// Absent or unusable ids are replaced by generated ones.
	ids := map[string]bool{}
	for _, in := range []string{"", "bad id with spaces", strings.Repeat("x", 200)} {
		r := request(t, srv, "GET", "/healthz", "", "", HeaderRequestID, in)
		id := r.Header.Get(HeaderRequestID)
		if len(id) != 32 || ids[id] || id == in {
			t.Errorf("for %q: generated id %q, want 32 fresh hex digits", in, id)
		}
		ids[id] = true
	}
	// The access log line of the request carries the id, key and route.
	found := false
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if _, ok := m["request_id"]; !ok {
			t.Errorf("log line without request_id: %s", line)
		}
		if m["request_id"] == "trace-42.a" && m["msg"] == "http request" {
			found = true
			if m["route"] != "GET /v1/jobs/{id}" || m["status"] != float64(404) || m["key"] != "reader" {
				t.Errorf("access log line %s", line)
			}
		}
	}
	if !found {
		t.Errorf("no access log line with request_id trace-42.a in\n%s", logs)
	}
}

// TestForwarding runs a leader and a follower on two loopback servers:
// writes and current reads on the follower reach the leader, with the
// API key and request id, at most one hop.
func TestForwarding(t *testing.T) {
	t.Parallel()
	lead := seededFake()
	leadSrv, leadLogs := newTestAPI(t, lead, nil)
	fol := newFake("c2", false)
	fol.leaderM = &coordinator.Member{ID: "c1", HTTPAddr: strings.TrimPrefix(leadSrv.URL, "http://")}
	folSrv, _ := newTestAPI(t, fol, nil)

	resp := request(t, folSrv, "POST", "/v1/jobs", keyOperator, `{"id":"fw","dim":4}`, HeaderRequestID, "fwd-1")
	job := decodeResp[coordinator.Job](t, resp, http.StatusCreated)
	if job.Spec.ID != "fw" || resp.Header.Get(HeaderServedBy) != "c1" || resp.Header.Get(HeaderRequestID) != "fwd-1" {
		t.Errorf("forwarded create: job %+v, served by %q, id %q", job.Spec, resp.Header.Get(HeaderServedBy), resp.Header.Get(HeaderRequestID))
	}
	if _, err := lead.GetJob("fw"); err != nil {
		t.Errorf("job not created on the leader: %v", err)
	}
	if n := fol.count(&fol.writes); n != 0 {
		t.Errorf("follower attempted %d writes", n)
	}
	if !strings.Contains(leadLogs.String(), `"request_id":"fwd-1"`) || !strings.Contains(leadLogs.String(), `"key":"operator"`) {
		t.Error("leader's log does not show the forwarded request id and key")
	}
	// A current read goes to the leader, which linearizes.
	before := lead.count(&lead.linearize)
	resp = request(t, folSrv, "GET", "/v1/jobs/fw", keyReader, "")
	decodeResp[coordinator.Job](t, resp, 200)
	if after := lead.count(&lead.linearize); after != before+1 {
		t.Errorf("leader Linearize calls %d → %d, want one more", before, after)
	}
	// Bad keys are refused by the follower before forwarding.
	wantError(t, request(t, folSrv, "POST", "/v1/jobs", keyReader, `{"id":"x","dim":1}`), 403, CodeForbidden)
	// Local reads stay local.
	st := decodeResp[coordinator.Status](t, request(t, folSrv, "GET", "/v1/cluster", keyReader, ""), 200)
	if st.ID != "c2" || st.LeaderID != "c1" {
		t.Errorf("cluster status %+v", st)
	}

	// One hop at most: a follower that believes another follower leads.
	fol2 := newFake("c3", false)
	fol2.leaderM = &coordinator.Member{ID: "c3x", HTTPAddr: strings.TrimPrefix(folSrv.URL, "http://")}
	fol.leaderM = &coordinator.Member{ID: "c3", HTTPAddr: "placeholder"}
	fol2Srv, _ := newTestAPI(t, fol2, nil)
	fol.mu.Lock()
	fol.leaderM = &coordinator.Member{ID: "c3", HTTPAddr: strings.TrimPrefix(fol2Srv.URL, "http://")}
	fol.mu.Unlock()
	e := wantError(t, request(t, folSrv, "POST", "/v1/jobs", keyOperator, `{"id":"loop","dim":1}`), 503, CodeNotLeader)
	if !strings.Contains(e.Message, "already forwarded") {
		t.Errorf("loop message %q", e.Message)
	}

	// No leader known: 503 with Retry-After.
	fol.mu.Lock()
	fol.leaderM = nil
	fol.mu.Unlock()
	resp = request(t, folSrv, "POST", "/v1/jobs", keyOperator, `{"id":"x","dim":1}`)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After without a leader")
	}
	wantError(t, resp, 503, CodeNotLeader)

	// A leader advertising a bind address cannot be forwarded to.
	for _, addr := range []string{":8080", "0.0.0.0:8080", "[::]:8080"} {
		fol.mu.Lock()
		fol.leaderM = &coordinator.Member{ID: "c1", HTTPAddr: addr}
		fol.mu.Unlock()
		e := wantError(t, request(t, folSrv, "POST", "/v1/jobs", keyOperator, `{"id":"x","dim":1}`), 503, CodeNotLeader)
		if !strings.Contains(e.Message, "cannot reach") || e.Leader == nil || e.Leader.ID != "c1" {
			t.Errorf("leader at %s: %+v", addr, e)
		}
	}

	// An unreachable leader: 502 naming it.
	fol.mu.Lock()
	fol.leaderM = &coordinator.Member{ID: "gone", HTTPAddr: "127.0.0.1:1"}
	fol.mu.Unlock()
	e = wantError(t, request(t, folSrv, "POST", "/v1/jobs", keyOperator, `{"id":"x","dim":1}`), 502, CodeLeaderUnreachable)
	if e.Leader == nil || e.Leader.ID != "gone" {
		t.Errorf("leader hint %+v, want gone", e.Leader)
	}
}

// TestForwardAfterLostLeadership: a leader whose write fails with
// NotLeaderError forwards the already read body to the new leader.
func TestForwardAfterLostLeadership(t *testing.T) {
	t.Parallel()
	newLead := newFake("c2", true)
	newSrv, _ := newTestAPI(t, newLead, nil)
	old := newFake("c1", true)
	old.writeErr = &coordinator.NotLeaderError{LeaderID: "c2", HTTPAddr: strings.TrimPrefix(newSrv.URL, "http://")}
	oldSrv, _ := newTestAPI(t, old, nil)
	resp := request(t, oldSrv, "POST", "/v1/nodes", keyOperator, `{"id":"n1","public_key":"`+testPubKey+`"}`)
	n := decodeResp[Node](t, resp, http.StatusCreated)
	if n.ID != "n1" || resp.Header.Get(HeaderServedBy) != "c2" {
		t.Errorf("node %+v served by %q", n, resp.Header.Get(HeaderServedBy))
	}
	if len(newLead.ListNodes()) != 1 || len(old.ListNodes()) != 0 {
		t.Errorf("nodes: new leader %d, old %d; want 1, 0", len(newLead.ListNodes()), len(old.ListNodes()))
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	f := seededFake()
	srv, _ := newTestAPI(t, f, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := NewClient(srv.URL, keyReader, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := cl.Events(ctx, []string{"round_closed"}, "j1")
	if err != nil {
		t.Fatal(err)
	}
	f.publish(coordinator.Event{Kind: coordinator.EventRoundOpened, Job: "j1", Round: 2})
	f.publish(coordinator.Event{Kind: coordinator.EventRoundClosed, Job: "other", Round: 7})
	f.publish(coordinator.Event{Kind: coordinator.EventRoundClosed, Job: "j1", Round: 2, Index: 99})
	ev, err := stream.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != coordinator.EventRoundClosed || ev.Job != "j1" || ev.Round != 2 || ev.Index != 99 {
		t.Errorf("event %+v, want the filtered round_closed of j1 round 2", ev)
	}
	if err := stream.Close(); err != nil {
		t.Error(err)
	}
	// The server ends its subscription when the client goes.
	deadline := time.Now().Add(5 * time.Second)
	for f.subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("subscription still open 5 s after the client closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A plain GET is told to upgrade, in the error shape.
	resp := request(t, srv, "GET", "/v1/events", keyReader, "")
	wantError(t, resp, http.StatusUpgradeRequired, CodeUpgradeRequired)
	if resp.Header.Get("Upgrade") != "websocket" {
		t.Errorf("426 without Upgrade: websocket")
	}
	// Without a key the upgrade is refused with the error shape.
	bad, _ := NewClient(srv.URL, "", srv.Client())
	_, err = bad.Events(ctx, nil, "")
	if e, ok := err.(*Error); !ok || e.Status != 401 || e.Code != CodeUnauthorized {
		t.Errorf("events without key: %v, want 401 unauthorized", err)
	}
}

// TestEventsPing: a client that stops reading (so never answers pings)
// is disconnected and its subscription ended.
func TestEventsPing(t *testing.T) {
	t.Parallel()
	f := seededFake()
	srv, logs := newTestAPI(t, f, func(c *Config) {
		c.EventPing = 20 * time.Millisecond
		c.EventWriteTimeout = 100 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, srv.URL+"/v1/events", &websocket.DialOptions{
		HTTPClient: srv.Client(), HTTPHeader: http.Header{HeaderAPIKey: {keyReader}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if _, msg, err := conn.Read(ctx); err != nil || !strings.Contains(string(msg), `"subscribed"`) {
		t.Fatalf("first message %s, %v", msg, err)
	}
	// Not reading from here on: pongs are never sent.
	deadline := time.Now().Add(5 * time.Second)
	for f.subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("silent client still subscribed after 5 s; log:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "ping failed") {
		t.Errorf("no ping failure logged:\n%s", logs)
	}
}

func TestEventsMemberClosing(t *testing.T) {
	t.Parallel()
	f := seededFake()
	srv, _ := newTestAPI(t, f, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, _ := NewClient(srv.URL, keyReader, srv.Client())
	stream, err := cl.Events(ctx, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	for _, ch := range f.subs {
		close(ch)
	}
	f.subs = nil
	f.mu.Unlock()
	_, err = stream.Next(ctx)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("after the member closed: %v, want close status 1001 (going away)", err)
	}
}

// TestNernstGolden checks /v1/nernst against the reference values.
func TestNernstGolden(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	resp := request(t, srv, "POST", "/v1/nernst", keyReader, `{"z":1,"c_out":0.005,"c_in":0.14,"temperature":310}`)
	got := decodeResp[NernstResponse](t, resp, 200)
	if math.Abs(got.PotentialMV-(-89.0)) > 0.05 {
		t.Errorf("K+ potential %.4f mV, want ≈ −89.0", got.PotentialMV)
	}
	path := filepath.Join("..", "..", "..", "shared", "golden", "features", "nernst.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("golden data not available: %v", err)
	}
	var cases []struct {
		Ion    string  `json:"ion"`
		Z      int     `json:"z"`
		COut   float64 `json:"c_out"`
		CIn    float64 `json:"c_in"`
		T      float64 `json:"T"`
		EVolts float64 `json:"E_volts"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		body := fmt.Sprintf(`{"z":%d,"c_out":%v,"c_in":%v,"temperature":%v}`, c.Z, c.COut, c.CIn, c.T)
		got := decodeResp[NernstResponse](t, request(t, srv, "POST", "/v1/nernst", keyReader, body), 200)
		if math.Abs(got.PotentialV-c.EVolts) > 1e-9 {
			t.Errorf("%s: %.12f V, want %.12f", c.Ion, got.PotentialV, c.EVolts)
		}
	}
	e := wantError(t, request(t, srv, "POST", "/v1/nernst", keyReader, `{"z":3,"c_out":0.005,"c_in":0.14}`), 400, CodeInvalid)
	if !strings.HasPrefix(e.Message, "z") {
		t.Errorf("message %q does not start with the field z", e.Message)
	}
	wantError(t, request(t, srv, "POST", "/v1/nernst", keyReader, `{"c_out":0.005,"c_in":0.14}`), 400, CodeInvalid)
}

func TestSimulate(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), func(c *Config) { c.Compute.MaxCellSteps = 16 * 16 * 8 })
	for field, body := range map[string]string{
		"alpha":     `{"alpha":0.3}`,
		"grid_size": `{"grid_size":2}`,
		"boundary":  `{"boundary":"torus"}`,
		"steps":     `{"steps":0}`,
	} {
		e := wantError(t, request(t, srv, "POST", "/v1/simulate", keyReader, body), 400, CodeInvalid)
		if !strings.HasPrefix(e.Message, field) {
			t.Errorf("%s: message %q does not start with the field name", body, e.Message)
		}
	}
	e := wantError(t, request(t, srv, "POST", "/v1/simulate", keyReader, `{"grid_size":32,"steps":8}`), 400, CodeInvalid)
	if !strings.Contains(e.Message, "grid_size² × steps") {
		t.Errorf("limit message %q", e.Message)
	}
	resp := request(t, srv, "POST", "/v1/simulate", keyReader, `{"grid_size":16,"steps":8,"seed":7,"boundary":"neumann"}`)
	got := decodeResp[SimulateResponse](t, resp, 200)
	cfg := sim.DefaultConfig()
	cfg.GridSize, cfg.Steps, cfg.Seed, cfg.Boundary = 16, 8, 7, sim.Neumann
	want, err := sim.Simulate(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range sim.FeatureNames {
		if got.FeatureVector[i] != want.Features[i] && !(math.IsNaN(want.Features[i])) {
			t.Errorf("feature %s: %v, want %v", name, got.FeatureVector[i], want.Features[i])
		}
		if got.Features[name] != got.FeatureVector[i] {
			t.Errorf("feature %s: map %v, vector %v", name, got.Features[name], got.FeatureVector[i])
		}
	}
	if got.Lyapunov != want.Lyapunov || got.Metrics.GrowthEvents != want.Metrics.GrowthEvents || got.GridSize != 16 || got.Steps != 8 {
		t.Errorf("response %+v, want lyapunov %v metrics %+v", got, want.Lyapunov, want.Metrics)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	request(t, srv, "GET", "/v1/jobs/j1", keyReader, "")
	request(t, srv, "GET", "/v1/jobs/j1", "", "")
	resp := request(t, srv, "GET", "/metrics", "", "")
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`mfn_http_request_duration_seconds_bucket{code="200",route="GET /v1/jobs/{id}",le=`,
		`mfn_http_requests_total{code="401",route="GET /v1/jobs/{id}"} 1`,
		`mfn_http_requests_total{code="200",route="GET /v1/jobs/{id}"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	f := seededFake()
	srv, _ := newTestAPI(t, f, nil)
	rd := decodeResp[Readiness](t, request(t, srv, "GET", "/readyz", "", ""), 200)
	if !rd.Ready || rd.Leader != "c1" || rd.State != "Leader" {
		t.Errorf("readiness %+v", rd)
	}
	f.mu.Lock()
	f.ready = false
	f.mu.Unlock()
	wantError(t, request(t, srv, "GET", "/readyz", "", ""), 503, CodeUnavailable)
	if r := request(t, srv, "GET", "/healthz", "", ""); r.StatusCode != 200 {
		t.Errorf("/healthz %d while not ready, want 200", r.StatusCode)
	}
}

func TestNodesJobsModels(t *testing.T) {
	t.Parallel()
	f := seededFake()
	srv, _ := newTestAPI(t, f, nil)
	n := decodeResp[Node](t, request(t, srv, "POST", "/v1/nodes", keyOperator, `{"id":"n1","public_key":"`+testPubKey+`"}`), 201)
	if txt, _ := n.PublicKey.MarshalText(); string(txt) != testPubKey {
		t.Errorf("public key %s, want %s", txt, testPubKey)
	}
	pub, _ := crypto.ParsePublicKey(testPubKey)
	if !ed25519.PublicKey(f.nodes["n1"].PublicKey).Equal(pub) {
		t.Error("enrolled key differs")
	}
	// Revoking by DELETE or POST …/revoke.
	n = decodeResp[Node](t, request(t, srv, "DELETE", "/v1/nodes/n1", keyOperator, ""), 200)
	if !n.Revoked {
		t.Error("not revoked")
	}
	wantError(t, request(t, srv, "POST", "/v1/nodes/zz/revoke", keyOperator, ""), 404, CodeNotFound)

	rd := decodeResp[coordinator.Round](t, request(t, srv, "GET", "/v1/jobs/j1/rounds/1", keyReader, ""), 200)
	if len(rd.Updates) != 2 || rd.Updates[1].Reason != "rejected by krum" || *rd.Updates[0].Score != 0.5 || rd.Updates[0].Sealed != nil {
		t.Errorf("round %+v", rd)
	}
	j := decodeResp[coordinator.Job](t, request(t, srv, "POST", "/v1/jobs/j1/stop", keyOperator, `{"reason":"enough"}`), 200)
	if j.State != coordinator.JobStopped || j.Reason != "enough" {
		t.Errorf("stopped job %+v", j)
	}

	mi := decodeResp[ModelInfo](t, request(t, srv, "GET", "/v1/jobs/j1/models/latest", keyReader, ""), 200)
	if mi.Version != 1 || mi.Dim != 3 || mi.Hash != coordinator.ModelHash(coordinator.Params{1.5, -2, math.Pi}) {
		t.Errorf("model info %+v", mi)
	}
	resp := request(t, srv, "GET", "/v1/jobs/j1/models/1/params", keyReader, "")
	raw, _ := io.ReadAll(resp.Body)
	if want := (coordinator.Params{1.5, -2, math.Pi}).Bytes(); string(raw) != string(want) || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("params %x (%s), want %x", raw, resp.Header.Get("Content-Type"), want)
	}
	resp = request(t, srv, "GET", "/v1/jobs/j1/models/1/params?format=update", keyReader, "")
	raw, _ = io.ReadAll(resp.Body)
	upd, err := crypto.DecodeUpdate(raw, 0)
	if err != nil || len(upd) != 3 || upd[2] != math.Pi || resp.Header.Get("X-MFN-Model-Hash") != mi.Hash.String() {
		t.Errorf("update format: %v %v hash %s", upd, err, resp.Header.Get("X-MFN-Model-Hash"))
	}
	wantError(t, request(t, srv, "GET", "/v1/jobs/j1/models/1/params?format=csv", keyReader, ""), 400, CodeBadRequest)
	wantError(t, request(t, srv, "GET", "/v1/jobs/j1/models/7", keyReader, ""), 404, CodeNotFound)
	f.mu.Lock()
	f.models["j1"][0] = coordinator.Model{Job: "j1", Version: 0}
	f.mu.Unlock()
	wantError(t, request(t, srv, "GET", "/v1/jobs/j1/models/0/params", keyReader, ""), 410, CodeGone)
	mi = decodeResp[ModelInfo](t, request(t, srv, "GET", "/v1/jobs/j1/models/0", keyReader, ""), 200)
	if !mi.Pruned || mi.Dim != 3 {
		t.Errorf("pruned model info %+v", mi)
	}
}

func TestKeyStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	js := write("keys.json", `[{"name":"ops","role":"operator","key":"`+keyOperator+`"}]`, 0o600)
	tm := write("keys.toml", "[[keys]]\nname = \"aud\"\nrole = \"auditor\"\nkey = \""+keyAuditor+"\"\n", 0o600)
	for _, p := range []string{js, tm} {
		ks, err := LoadKeys(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if ks.Len() != 1 {
			t.Errorf("%s: %d keys", p, ks.Len())
		}
	}
	ks, _ := LoadKeys(js)
	if id, ok := ks.Lookup(keyOperator); !ok || id.Name != "ops" || id.Role != RoleOperator {
		t.Errorf("lookup %+v %v", id, ok)
	}
	if _, ok := ks.Lookup(keyOperator + "x"); ok {
		t.Error("a longer key matched")
	}
	if _, ok := ks.Lookup(""); ok {
		t.Error("an empty key matched")
	}
	// Digests instead of secrets, and the inline list.
	h := sha256Hex(keyReader)
	ks, err := ParseKeyFile([]byte(`{"keys":[{"name":"r","role":"reader","key_sha256":"` + h + `"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := ks.Lookup(keyReader); !ok || id.Role != RoleReader {
		t.Errorf("digest lookup %+v %v", id, ok)
	}
	ks, err = LoadKeys("admin:" + keyAdmin + ", reader:" + keyReader)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := ks.Lookup(keyReader); !ok || id.Role != RoleReader || id.Name != "reader-2" {
		t.Errorf("list lookup %+v %v", id, ok)
	}
	bad := map[string]string{
		"short key":     `[{"role":"reader","key":"short"}]`,
		"bad role":      `[{"role":"root","key":"` + keyReader + `"}]`,
		"no role":       `[{"key":"` + keyReader + `"}]`,
		"both":          `[{"role":"reader","key":"` + keyReader + `","key_sha256":"` + h + `"}]`,
		"neither":       `[{"role":"reader"}]`,
		"bad digest":    `[{"role":"reader","key_sha256":"zz"}]`,
		"dup secret":    `[{"role":"reader","key":"` + keyReader + `"},{"role":"admin","key":"` + keyReader + `"}]`,
		"dup name":      `[{"name":"a","role":"reader","key":"` + keyReader + `"},{"name":"a","role":"admin","key":"` + keyAdmin + `"}]`,
		"unknown field": `[{"role":"reader","key":"` + keyReader + `","extra":1}]`,
		"empty":         `[]`,
		"toml unknown":  "[[keys]]\nrole = \"reader\"\nkey = \"" + keyReader + "\"\nfoo = 1\n",
	}
	for name, content := range bad {
		if _, err := ParseKeyFile([]byte(content)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), keyReader) {
			t.Errorf("%s: error %q repeats a secret", name, err)
		}
	}
	// A world-readable file with secrets is refused; with digests it is fine.
	open := write("open.json", `[{"role":"reader","key":"`+keyReader+`"}]`, 0o644)
	if _, err := LoadKeys(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable secrets: %v", err)
	}
	openDigest := write("open-digest.json", `[{"role":"reader","key_sha256":"`+h+`"}]`, 0o644)
	if _, err := LoadKeys(openDigest); err != nil {
		t.Errorf("world-readable digests: %v", err)
	}
	if _, err := LoadKeys("reader:short"); err == nil {
		t.Error("short inline key accepted")
	}
}

func TestCurrentReadLinearizes(t *testing.T) {
	t.Parallel()
	f := seededFake()
	srv, _ := newTestAPI(t, f, nil)
	request(t, srv, "GET", "/v1/jobs/j1", keyReader, "")
	request(t, srv, "GET", "/v1/cluster", keyReader, "")
	request(t, srv, "GET", "/v1/audit/leaves", keyAuditor, "")
	if n := f.count(&f.linearize); n != 1 {
		t.Errorf("Linearize called %d times, want 1 (only the job read is current)", n)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	cases := map[string]Config{
		"no coordinator": {Keys: &KeyStore{}},
		"no keys":        {Coordinator: newFake("c", true)},
		"bad scheme":     {Coordinator: newFake("c", true), Keys: &KeyStore{}, ForwardScheme: "ftp"},
		"negative body":  {Coordinator: newFake("c", true), Keys: &KeyStore{}, MaxBodyBytes: -1},
	}
	for name, cfg := range cases {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Registering twice on one registry fails rather than panics.
	cfg := Config{Coordinator: newFake("c", true), Keys: &KeyStore{}, Registry: prometheus.NewRegistry()}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil {
		t.Error("second New on the same registry accepted")
	}
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	cl, _ := NewClient(strings.TrimPrefix(srv.URL, "http://"), keyReader, srv.Client())
	_, err := cl.Job(context.Background(), "nope")
	e, ok := err.(*Error)
	if !ok || e.Status != 404 || e.Code != CodeNotFound || e.RequestID == "" {
		t.Fatalf("error %#v", err)
	}
	if !strings.Contains(e.Error(), "404 not_found") || !strings.Contains(e.Error(), "request id") {
		t.Errorf("message %q", e.Error())
	}
	down, _ := NewClient("127.0.0.1:1", keyReader, &http.Client{Timeout: 2 * time.Second})
	if _, err := down.Jobs(context.Background()); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("unreachable server: %v", err)
	}
	for _, bad := range []string{"", "ftp://x", "http://"} {
		if _, err := NewClient(bad, "", nil); err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
		}
	}
}

func TestPanicIsJSON500(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, panicky{seededFake()}, nil)
	wantError(t, request(t, srv, "GET", "/v1/nodes", keyReader, ""), 500, CodeInternal)
}

type panicky struct{ *fakeCoord }

func (panicky) ListNodes() []coordinator.Node { panic("boom") }
