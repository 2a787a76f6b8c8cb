package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
)

// newRealCoordinator starts a single-member cluster on raft's in-memory
// transport and waits until it leads.
func newRealCoordinator(t *testing.T, reg *prometheus.Registry) *coordinator.Coordinator {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	skey, vkey, err := audit.GenerateLogKey("mfn.test/api", rng)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewLogSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewLogVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	addr, trans := raft.NewInmemTransport("raft-0")
	rc := raft.DefaultConfig()
	rc.HeartbeatTimeout = 100 * time.Millisecond
	rc.ElectionTimeout = 100 * time.Millisecond
	rc.LeaderLeaseTimeout = 50 * time.Millisecond
	rc.CommitTimeout = 5 * time.Millisecond
	c, err := coordinator.New(coordinator.Config{
		ID: "c0", Origin: "mfn.test/api", RaftAddr: string(addr), HTTPAddr: "127.0.0.1:0",
		Storage: coordinator.InmemStorage(), Transport: trans, Raft: rc,
		LogVerifier: verifier, LogSigner: signer, Registry: reg, Tick: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	if err := c.Bootstrap([]raft.Server{{ID: "c0", Address: addr}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !c.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("no leader within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// TestRealCoordinator drives a real single-member coordinator through the
// client: status, enrolment, a job, its rounds and initial model, the
// event stream, and the audit errors before any checkpoint.
func TestRealCoordinator(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := newRealCoordinator(t, reg)
	h, err := New(Config{Coordinator: c, Keys: testKeys(t), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	op, _ := NewClient(srv.URL, keyOperator, srv.Client())
	rd, _ := NewClient(srv.URL, keyReader, srv.Client())
	aud, _ := NewClient(srv.URL, keyAuditor, srv.Client())

	if r, err := rd.Ready(ctx); err != nil || !r.Ready || r.Leader != "c0" {
		t.Fatalf("ready %+v %v", r, err)
	}
	st, err := rd.Cluster(ctx)
	if err != nil || st.State != "Leader" || len(st.Members) != 1 || st.LeaderID != "c0" {
		t.Fatalf("cluster %+v %v", st, err)
	}
	events, err := rd.Events(ctx, []string{string(coordinator.EventJobStopped)}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)
	n, err := op.EnrollNode(ctx, "n1", PublicKey(pub))
	if err != nil || n.ID != "n1" || !bytes.Equal(n.PublicKey, pub) {
		t.Fatalf("enroll %+v %v", n, err)
	}
	// Enrolling the same id with another key conflicts.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)).Public().(ed25519.PublicKey)
	var apiErr *Error
	if _, err := op.EnrollNode(ctx, "n1", PublicKey(other)); !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Errorf("re-enrol with another key: %v, want 409", err)
	}

	spec := coordinator.JobSpec{ID: "j1", Task: "mfn-regime", Dim: 4, Rule: coordinator.RuleSpec{Name: "fedavg"},
		Rounds: 2, MinUpdates: 1, MaxUpdates: 2, RoundDeadline: coordinator.Duration(time.Minute)}
	j, err := op.CreateJob(ctx, spec)
	if err != nil || j.Spec.ID != "j1" || j.State != coordinator.JobRunning {
		t.Fatalf("create %+v %v", j, err)
	}
	if _, err := op.CreateJob(ctx, coordinator.JobSpec{ID: "bad", Dim: 4}); !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != CodeInvalid {
		t.Errorf("invalid spec: %v, want 400 invalid", err)
	}
	// The leader opens round 1 on its next tick.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs, err := rd.Rounds(ctx, "j1")
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 1 && rs[0].State == coordinator.RoundOpen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("round 1 not open within 10 s: %+v", rs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r, err := rd.Round(ctx, "j1", 1); err != nil || r.Number != 1 || r.BaseVersion != 0 {
		t.Errorf("round 1: %+v %v", r, err)
	}
	m, err := rd.Model(ctx, "j1", "latest")
	if err != nil || m.Version != 0 || m.Dim != 4 || m.Hash != coordinator.ModelHash(make(coordinator.Params, 4)) {
		t.Errorf("model %+v %v", m, err)
	}
	var buf bytes.Buffer
	hash, size, err := rd.ModelParams(ctx, "j1", "0", FormatFloat64, &buf)
	if err != nil || size != 32 || !bytes.Equal(buf.Bytes(), make([]byte, 32)) || hash != m.Hash.String() {
		t.Errorf("params %x (%d) hash %s: %v", buf.Bytes(), size, hash, err)
	}
	j, err = op.StopJob(ctx, "j1", "test over")
	if err != nil || j.State != coordinator.JobStopped || j.Reason != "test over" {
		t.Errorf("stop %+v %v", j, err)
	}
	ev, err := events.Next(ctx)
	if err != nil || ev.Kind != coordinator.EventJobStopped || ev.Job != "j1" {
		t.Errorf("event %+v %v, want job_stopped of j1", ev, err)
	}
	// No update, so no audit leaf and no checkpoint yet.
	if _, err := aud.CheckpointNote(ctx); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("checkpoint before any leaf: %v, want 404", err)
	}
	if _, err := aud.BundleJSON(ctx, 0); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("bundle of leaf 0: %v, want 404", err)
	}
	// The coordinator's metrics are on the same registry as the API's.
	resp := request(t, srv, "GET", "/metrics", "", "")
	body := new(bytes.Buffer)
	_, _ = body.ReadFrom(resp.Body)
	for _, want := range []string{"mfn_coordinator_raft_state 2", "mfn_http_requests_total"} {
		if !bytes.Contains(body.Bytes(), []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// lateHandler lets a test server exist before the API it serves, so a
// member can be configured with its own HTTP address.
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

// TestRealFollowerForwards runs two real members on raft's in-memory
// transport, each behind its own API server: writes and current reads
// sent to the follower are served by the leader, whose HTTP address the
// follower learns from the replicated member list.
func TestRealFollowerForwards(t *testing.T) {
	t.Parallel()
	rng := rand.NewChaCha8([32]byte{5})
	skey, vkey, err := audit.GenerateLogKey("mfn.test/api2", rng)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := audit.NewLogSigner(skey)
	verifier, _ := audit.NewLogVerifier(vkey)
	var trans []*raft.InmemTransport
	var servers []raft.Server
	for i := range 2 {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("raft-%d", i)))
		trans = append(trans, tr)
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprintf("c%d", i)), Address: addr})
	}
	trans[0].Connect(trans[1].LocalAddr(), trans[1])
	trans[1].Connect(trans[0].LocalAddr(), trans[0])
	var members []*coordinator.Coordinator
	var srvs []*httptest.Server
	for i := range 2 {
		lh := &lateHandler{}
		srv := httptest.NewServer(lh)
		t.Cleanup(srv.Close)
		rc := raft.DefaultConfig()
		// Generous timeouts: a loaded CI machine must not flap leadership.
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
		reg := prometheus.NewRegistry()
		c, err := coordinator.New(coordinator.Config{
			ID: fmt.Sprintf("c%d", i), Origin: "mfn.test/api2", RaftAddr: string(trans[i].LocalAddr()),
			HTTPAddr: strings.TrimPrefix(srv.URL, "http://"),
			Storage:  coordinator.InmemStorage(), Transport: trans[i], Raft: rc,
			LogVerifier: verifier, LogSigner: signer, Registry: reg, Tick: 10 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.Close(ctx)
		})
		h, err := New(Config{Coordinator: c, Keys: testKeys(t), Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		lh.mu.Lock()
		lh.h = h
		lh.mu.Unlock()
		members, srvs = append(members, c), append(srvs, srv)
	}
	if err := members[0].Bootstrap(servers); err != nil {
		t.Fatal(err)
	}
	// Wait for a leader whose HTTP address the follower knows.
	var leader, follower int
	deadline := time.Now().Add(15 * time.Second)
	for {
		if members[0].IsLeader() || members[1].IsLeader() {
			leader = 0
			if members[1].IsLeader() {
				leader = 1
			}
			follower = 1 - leader
			if m, ok := members[follower].Leader(); ok && m.HTTPAddr != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no leader known to the follower within 15 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	leaderID := fmt.Sprintf("c%d", leader)

	resp := request(t, srvs[follower], "POST", "/v1/jobs", keyOperator,
		`{"id":"fj","task":"t","dim":2,"rule":{"name":"fedavg"},"rounds":1,"min_updates":1,"max_updates":1,"round_deadline":"1m"}`,
		HeaderRequestID, "real-fwd")
	j := decodeResp[coordinator.Job](t, resp, 201)
	if j.Spec.ID != "fj" || resp.Header.Get(HeaderServedBy) != leaderID || resp.Header.Get(HeaderRequestID) != "real-fwd" {
		t.Errorf("forwarded create: %+v served by %q id %q", j.Spec, resp.Header.Get(HeaderServedBy), resp.Header.Get(HeaderRequestID))
	}
	// The leader has it at once; the follower's own replica soon after.
	if _, err := members[leader].GetJob("fj"); err != nil {
		t.Errorf("leader lacks the job: %v", err)
	}
	fc, _ := NewClient(srvs[follower].URL, keyReader, srvs[follower].Client())
	got, err := fc.Job(ctx, "fj")
	if err != nil || got.Spec.ID != "fj" {
		t.Errorf("current read through the follower: %+v %v", got, err)
	}
	st, err := fc.Cluster(ctx)
	if err != nil || st.ID != fmt.Sprintf("c%d", follower) || st.LeaderID != leaderID || len(st.Members) != 2 {
		t.Errorf("follower's cluster view: %+v %v", st, err)
	}
}
