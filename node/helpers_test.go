package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/raft"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// testLogger writes to t.Log and stops when the test ends.
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

func newTestLogger(t testing.TB, lvl slog.Level) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

func seedReader(seed uint64) io.Reader {
	var b [32]byte
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(b)
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countingHandler wraps a protocol handler and counts submissions per
// peer key; hook, when set, runs after the inner Submit.
type countingHandler struct {
	protocol.Handler
	mu     sync.Mutex
	counts map[string]int
	sealed map[string][][]byte
	hook   func(peer protocol.Peer, ack *protocol.Ack, err error) (*protocol.Ack, error)
}

func (h *countingHandler) Submit(ctx context.Context, peer protocol.Peer, sealed []byte) (*protocol.Ack, error) {
	h.mu.Lock()
	h.counts[string(peer.Key)]++
	h.sealed[string(peer.Key)] = append(h.sealed[string(peer.Key)], append([]byte(nil), sealed...))
	hook := h.hook
	h.mu.Unlock()
	ack, err := h.Handler.Submit(ctx, peer, sealed)
	if hook != nil {
		return hook(peer, ack, err)
	}
	return ack, err
}

// SubmitEval passes cross-site evaluation reports through.
func (h *countingHandler) SubmitEval(ctx context.Context, peer protocol.Peer, report, sig []byte) (*protocol.Ack, error) {
	return h.Handler.(protocol.EvalHandler).SubmitEval(ctx, peer, report, sig)
}

func (h *countingHandler) count(key ed25519.PublicKey) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[string(key)]
}

// memCluster is n coordinators on raft's in-memory transport, serving
// the node protocol on a protocol.MemNetwork at "c<i>:4431".
type memCluster struct {
	t        testing.TB
	net      *protocol.MemNetwork
	members  []*coordinator.Coordinator
	servers  []*protocol.Server
	handlers []*countingHandler
	trans    []*raft.InmemTransport
	ids      []*crypto.Identity
	down     []bool
	cluster  *Cluster
	origin   string
}

func fastRaft() *raft.Config {
	rc := raft.DefaultConfig()
	rc.HeartbeatTimeout = 300 * time.Millisecond
	rc.ElectionTimeout = 300 * time.Millisecond
	rc.LeaderLeaseTimeout = 150 * time.Millisecond
	rc.CommitTimeout = 5 * time.Millisecond
	return rc
}

func newMemCluster(t testing.TB, n int) *memCluster {
	t.Helper()
	rng := seedReader(42)
	mc := &memCluster{t: t, net: protocol.NewMemNetwork(), origin: "mfn.test/node", down: make([]bool, n), cluster: &Cluster{Origin: "mfn.test/node"}}
	skey, vkey, err := audit.GenerateLogKey(mc.origin, rng)
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
	logger := newTestLogger(t, slog.LevelWarn)
	var servers []raft.Server
	for i := range n {
		id, err := crypto.GenerateIdentity(crypto.RoleCoordinator, rng)
		if err != nil {
			t.Fatal(err)
		}
		mc.ids = append(mc.ids, id)
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("raft-%d", i)))
		mc.trans = append(mc.trans, tr)
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprintf("c%d", i)), Address: addr})
		mc.cluster.Members = append(mc.cluster.Members, Member{ID: fmt.Sprintf("c%d", i), QUICAddr: fmt.Sprintf("c%d:4431", i),
			PublicKey: id.PublicKey(), Recipient: id.Recipient()})
	}
	for i := range n {
		for j := range n {
			if i != j {
				mc.trans[i].Connect(mc.trans[j].LocalAddr(), mc.trans[j])
			}
		}
	}
	for i := range n {
		c, err := coordinator.New(coordinator.Config{
			ID: fmt.Sprintf("c%d", i), Origin: mc.origin, RaftAddr: string(mc.trans[i].LocalAddr()),
			QUICAddr: fmt.Sprintf("c%d:4431", i), PublicKey: mc.ids[i].PublicKey(),
			Storage: coordinator.InmemStorage(), Transport: mc.trans[i], Raft: fastRaft(),
			Opener:      &coordinator.CryptoOpener{Identities: []age.Identity{mc.ids[i].Age}},
			LogVerifier: verifier, LogSigner: signer, Logger: logger,
			Tick: 20 * time.Millisecond, CheckpointInterval: 50 * time.Millisecond, NodeRate: 1000, NodeBurst: 1000,
		})
		if err != nil {
			t.Fatal(err)
		}
		pid, err := protocol.NewIdentity(mc.ids[i].SigningKey)
		if err != nil {
			t.Fatal(err)
		}
		h := &countingHandler{Handler: coordinator.NewQUICHandler(c), counts: map[string]int{}, sealed: map[string][][]byte{}}
		srv, err := protocol.NewServer(protocol.Config{Heartbeat: 200 * time.Millisecond}, h)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := mc.net.Listen(fmt.Sprintf("c%d:4431", i), pid, c.VerifyNodeKey, protocol.Config{})
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(context.Background(), ln)
		c.SetAnnouncer(coordinator.ProtocolAnnouncer{Server: srv})
		c.SetDisconnect(srv.Disconnect)
		mc.members = append(mc.members, c)
		mc.servers = append(mc.servers, srv)
		mc.handlers = append(mc.handlers, h)
	}
	t.Cleanup(mc.close)
	if err := mc.members[0].Bootstrap(servers); err != nil {
		t.Fatal(err)
	}
	mc.leader()
	return mc
}

func (mc *memCluster) close() {
	var wg sync.WaitGroup
	for i := range mc.members {
		if mc.down[i] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			mc.servers[i].Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			mc.members[i].Close(ctx)
		}()
	}
	wg.Wait()
}

// leader waits for a leader that has taken office and returns its index.
func (mc *memCluster) leader() int {
	mc.t.Helper()
	idx := -1
	eventually(mc.t, 10*time.Second, "a leader", func() bool {
		for i, c := range mc.members {
			if !mc.down[i] && c.IsLeader() {
				if l, ok := c.Leader(); ok && l.QUICAddr != "" {
					idx = i
					return true
				}
			}
		}
		return false
	})
	return idx
}

// kill stops member i abruptly: QUIC server and Raft transport cut, no
// leadership transfer.
func (mc *memCluster) kill(i int) {
	mc.servers[i].Close()
	for j, tr := range mc.trans {
		if j != i {
			tr.Disconnect(mc.trans[i].LocalAddr())
		}
	}
	mc.trans[i].DisconnectAll()
	mc.down[i] = true
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	mc.members[i].Close(ctx)
}

func (mc *memCluster) enroll(id *crypto.Identity) {
	mc.t.Helper()
	mc.onLeader(func(l *coordinator.Coordinator) error {
		return l.EnrollNode(context.Background(), id.NodeID(), id.PublicKey())
	})
}

func (mc *memCluster) createJob(spec coordinator.JobSpec) {
	mc.t.Helper()
	mc.onLeader(func(l *coordinator.Coordinator) error {
		_, err := l.CreateJob(context.Background(), spec)
		if errors.Is(err, coordinator.ErrExists) {
			return nil // an earlier try committed although it was reported lost
		}
		return err
	})
}

// onLeader runs write on the current leader, again on the next one while
// leadership moves (a fresh in-memory cluster may hold a second election
// on a loaded machine), for at most 10 s.
func (mc *memCluster) onLeader(write func(*coordinator.Coordinator) error) {
	mc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := write(mc.members[mc.leader()])
		if err == nil {
			return
		}
		if !errors.Is(err, coordinator.ErrNotLeader) || time.Now().After(deadline) {
			mc.t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// totalSubmits sums the Submit calls of a key over all members.
func (mc *memCluster) totalSubmits(key ed25519.PublicKey) int {
	n := 0
	for _, h := range mc.handlers {
		n += h.count(key)
	}
	return n
}

// testData is a small, fast regime-task configuration.
func testData(seed uint64) DataConfig {
	return DataConfig{Task: TaskMFNRegime, Samples: 32, GridSize: 16, Steps: 8, Seed: seed, Workers: 2}
}

func newNodeIdentity(t testing.TB, seed uint64) *crypto.Identity {
	t.Helper()
	id, err := crypto.GenerateIdentity(crypto.RoleNode, seedReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// nodeConfig is a node of mc with its own state dir.
func (mc *memCluster) nodeConfig(t testing.TB, id *crypto.Identity, dir string, seed uint64) Config {
	cfg := DefaultConfig()
	cfg.Identity = id
	cfg.Cluster = mc.cluster
	cfg.StateDir = dir
	cfg.Data = testData(seed)
	cfg.Seed = seed
	cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	cfg.LeaderCheck = 500 * time.Millisecond
	pid, err := protocol.NewIdentity(id.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dialer = mc.net.Dialer(pid, mc.cluster.PinnedKeys(), protocol.Config{})
	cfg.Logger = newTestLogger(t, slog.LevelInfo).With("seed", seed)
	return cfg
}

func regimeJob(id string, rounds, minU, maxU int) coordinator.JobSpec {
	return coordinator.JobSpec{
		ID: id, Task: TaskMFNRegime, Dim: 76, Rule: coordinator.RuleSpec{Name: "fedavg"},
		Rounds: rounds, MinUpdates: minU, MaxUpdates: maxU,
		// Rounds close at MaxUpdates; the soft deadline only bounds how long
		// a new leader's announcement of an open round is kept for nodes
		// that subscribe late (protocol.Server drops it at the deadline).
		RoundDeadline: coordinator.Duration(20 * time.Second), HardDeadline: coordinator.Duration(60 * time.Second),
	}
}

// events collects an agent's events.
type events struct {
	mu  sync.Mutex
	evs []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

func (e *events) count(kind EventKind, result string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.evs {
		if ev.Kind == kind && (result == "" || ev.Result == result) {
			n++
		}
	}
	return n
}

// runAgent starts an agent and returns a stop function that waits for it.
func runAgent(t testing.TB, cfg Config) (*Agent, func() error) {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(15 * time.Second):
				runErr = fmt.Errorf("agent did not stop within 15 s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return a, stop
}
