package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// These tests run a node over real QUIC on loopback against scripted
// coordinators (protocol servers with a fake handler), some behind a UDP
// relay that can make a server vanish like a SIGKILLed or SIGSTOPped
// process, or put a restarted process behind the same address.

const fakeOrigin = "mfn.test/failover"

// fakeWorld is what the scripted coordinators agree on: who leads, in which
// term, and the model of round 1.
type fakeWorld struct {
	mu     sync.Mutex
	leader string
	term   uint64
	model  []byte
	hash   [32]byte
}

func (w *fakeWorld) set(leader string, term uint64) {
	w.mu.Lock()
	w.leader, w.term = leader, term
	w.mu.Unlock()
}

// fakeMember is one scripted coordinator.
type fakeMember struct {
	w    *fakeWorld
	id   *crypto.Identity
	srv  *protocol.Server
	addr string // where the server listens
	// hang makes Submit block until its request ends, as a leader that
	// dies before it commits.
	hang bool
	// notReady makes Hello answer CodeNotReady while it holds, as a
	// member that restarted and has not caught up.
	notReady func() bool

	mu      sync.Mutex
	started chan struct{} // closed at the first Submit
	sealed  [][]byte
	acked   []time.Time
}

func (m *fakeMember) HandleHello(ctx context.Context, p protocol.Peer, h *protocol.Hello) (*protocol.HelloAck, error) {
	if m.notReady != nil && m.notReady() {
		return nil, &protocol.ProtocolError{Code: protocol.CodeNotReady, RetryAfter: 500 * time.Millisecond, Message: "catching up"}
	}
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	return &protocol.HelloAck{ClusterOrigin: fakeOrigin, LeaderHint: m.w.leader, Term: m.w.term}, nil
}

func (m *fakeMember) FetchModel(ctx context.Context, p protocol.Peer, req *protocol.ModelFetch) (*protocol.ModelChunk, error) {
	return protocol.ModelChunkOf(m.w.model, m.w.hash, req)
}

func (m *fakeMember) Submit(ctx context.Context, p protocol.Peer, sealed []byte) (*protocol.Ack, error) {
	m.mu.Lock()
	m.sealed = append(m.sealed, bytes.Clone(sealed))
	select {
	case <-m.started:
	default:
		close(m.started)
	}
	n := len(m.sealed)
	m.mu.Unlock()
	if m.hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	m.mu.Lock()
	m.acked = append(m.acked, time.Now())
	m.mu.Unlock()
	return &protocol.Ack{LogIndex: uint64(100 + n), LeafIndex: uint64(n)}, nil
}

func (m *fakeMember) firstAck() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.acked) == 0 {
		return time.Time{}, false
	}
	return m.acked[0], true
}

func (m *fakeMember) submissions() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices2(m.sealed)
}

func slices2(b [][]byte) [][]byte { return append([][]byte(nil), b...) }

func newFakeWorld(t testing.TB) *fakeWorld {
	model := coordinator.ModelBytes(make(coordinator.Params, 76))
	return &fakeWorld{model: model, hash: sha256.Sum256(model), term: 1}
}

// startFake starts a scripted coordinator with key seed on loopback.
func startFake(t testing.TB, w *fakeWorld, seed uint64, instance string) *fakeMember {
	t.Helper()
	id, err := crypto.GenerateIdentity(crypto.RoleCoordinator, seedReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	return startFakeAs(t, w, id, instance)
}

func startFakeAs(t testing.TB, w *fakeWorld, id *crypto.Identity, instance string) *fakeMember {
	t.Helper()
	pid, err := protocol.NewIdentity(id.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	// The default heartbeat (10 s, so a 30 s silence limit): only QUIC
	// keep-alives and the leader check can notice a dead peer sooner.
	cfg := protocol.Config{Instance: instance}
	ln, err := protocol.ListenQUIC("127.0.0.1:0", protocol.ServerConfig(pid, func(ed25519.PublicKey) error { return nil }), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMember{w: w, id: id, addr: ln.Addr().String(), started: make(chan struct{})}
	if m.srv, err = protocol.NewServer(cfg, m); err != nil {
		t.Fatal(err)
	}
	go m.srv.Serve(context.Background(), ln)
	t.Cleanup(func() { m.srv.Close() })
	return m
}

func (m *fakeMember) announce(t testing.TB, round uint64) {
	t.Helper()
	ann := &protocol.RoundAnnouncement{JobID: "j", Round: round, BaseVersion: round - 1, BaseHash: m.w.hash,
		Deadline: time.Now().Add(time.Minute), ModelSize: uint64(len(m.w.model)), MinUpdates: 1, MaxUpdates: 1,
		Metadata: map[string]string{"task": TaskMFNRegime, "dim": "76"}}
	if err := m.srv.Broadcast(ann); err != nil {
		t.Fatal(err)
	}
}

// fakeNodeConfig is a node of the scripted cluster whose members are
// reached at addrs (relay addresses where a test needs one).
func fakeNodeConfig(t testing.TB, members []*fakeMember, addrs []string, logs *syncBuffer) Config {
	cl := &Cluster{Origin: fakeOrigin}
	for i, m := range members {
		cl.Members = append(cl.Members, Member{ID: fmt.Sprintf("c%d", i), QUICAddr: addrs[i], PublicKey: m.id.PublicKey(), Recipient: m.id.Recipient()})
	}
	cfg := DefaultConfig()
	cfg.Identity = newNodeIdentity(t, 9)
	cfg.Cluster = cl
	cfg.StateDir = t.TempDir()
	cfg.Data = testData(9)
	cfg.Seed = 9
	cfg.BackoffMin, cfg.BackoffMax = 50*time.Millisecond, time.Second
	var h slog.Handler = newTestLogger(t, slog.LevelInfo).Handler()
	if logs != nil {
		h = slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})
	}
	cfg.Logger = slog.New(h)
	return cfg
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitChan(t testing.TB, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// TestInFlightSubmitLeaderKilled: the leader vanishes (its packets stop,
// as when it is SIGKILLed or SIGSTOPped) while the node's update is in
// flight. The node must notice within the QUIC idle timeout (keep-alives
// every second, 3 s idle) rather than wait out the request timeout (45 s),
// and resubmit the very same sealed update to the new leader.
func TestInFlightSubmitLeaderKilled(t *testing.T) {
	w := newFakeWorld(t)
	a, b := startFake(t, w, 101, "a"), startFake(t, w, 102, "b")
	a.hang = true
	relay := newUDPRelay(t, a.addr)
	w.set(relay.addr(), 1)
	a.announce(t, 1)
	var logs syncBuffer
	cfg := fakeNodeConfig(t, []*fakeMember{a, b}, []string{relay.addr(), b.addr}, &logs)
	runAgent(t, cfg)
	waitChan(t, a.started, 60*time.Second, "the submission to the first leader")

	killed := time.Now()
	relay.kill()
	// Raft elects a successor in 1–3 s; the test gives it 1 s.
	time.Sleep(time.Second)
	w.set(b.addr, 2)
	b.announce(t, 1)
	elected := time.Now()

	var acked time.Time
	eventually(t, 20*time.Second, "the update acknowledged by the new leader", func() bool {
		var ok bool
		acked, ok = b.firstAck()
		return ok
	})
	t.Logf("kill → ack %v, election → ack %v", acked.Sub(killed).Round(time.Millisecond), acked.Sub(elected).Round(time.Millisecond))
	if d := acked.Sub(killed); d > 8*time.Second {
		t.Errorf("the node resumed %v after the kill; want within the 3 s idle timeout plus a reconnection (≤ 8 s)", d)
	}
	if got, want := b.submissions(), a.submissions(); len(got) != 1 || !bytes.Equal(got[0], want[0]) {
		t.Errorf("the new leader got %d submissions, equal to the in-flight one: %v", len(got), len(got) == 1 && bytes.Equal(got[0], want[0]))
	}
	out := logs.String()
	for _, want := range []string{`"msg":"looking for the leader"`, `"msg":"backing off"`, `"until":`, `"reason":"`, `"msg":"connected to the leader; waiting for round announcements"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the node's log lacks %s", want)
		}
	}
}

// TestLeaderRestartedAtSameAddress: the leader is killed, restarts at the
// same address and wins the election again before the node's connection
// has timed out (here the QUIC idle timeout is long, as a node may
// configure it). The leader check, which compares the server instance and
// not only the address, must move the node to the new process within a
// few leader checks, not after the 30 s subscription silence limit.
func TestLeaderRestartedAtSameAddress(t *testing.T) {
	w := newFakeWorld(t)
	id, err := crypto.GenerateIdentity(crypto.RoleCoordinator, seedReader(201))
	if err != nil {
		t.Fatal(err)
	}
	a1 := startFakeAs(t, w, id, "a-first")
	b := startFake(t, w, 202, "b")
	relay := newUDPRelay(t, a1.addr)
	w.set(relay.addr(), 3)
	var ev events
	cfg := fakeNodeConfig(t, []*fakeMember{a1, b}, []string{relay.addr(), b.addr}, nil)
	cfg.Protocol.IdleTimeout = time.Minute
	cfg.LeaderCheck = 300 * time.Millisecond
	cfg.OnEvent = ev.add
	runAgent(t, cfg)
	eventually(t, 60*time.Second, "the node to connect", func() bool { return ev.count(EventConnected, "") == 1 })

	a2 := startFakeAs(t, w, id, "a-second") // same key, new process
	relay.retarget(a2.addr)
	w.set(relay.addr(), 4)
	a2.announce(t, 1)
	restarted := time.Now()
	var acked time.Time
	eventually(t, 40*time.Second, "the restarted leader to get the update", func() bool {
		var ok bool
		acked, ok = a2.firstAck()
		return ok
	})
	t.Logf("restart → ack %v", acked.Sub(restarted).Round(time.Millisecond))
	if d := acked.Sub(restarted); d > 5*time.Second {
		t.Errorf("the node reached the restarted leader %v after its restart; want a few leader checks (≤ 5 s)", d)
	}
	if n := len(a1.submissions()); n != 0 {
		t.Errorf("the dead process got %d submissions", n)
	}
}

// TestNotReadyIsRetriedSoon: every member answers "not ready" (they are
// catching up after a restart) for a while. The node must not take that
// for a refusal of its key — no EventRefused, no long back-off — and must
// connect within LeaderWait of the leader being ready.
func TestNotReadyIsRetriedSoon(t *testing.T) {
	w := newFakeWorld(t)
	a, b := startFake(t, w, 301, "a"), startFake(t, w, 302, "b")
	start := time.Now()
	const catchUp = 4 * time.Second
	notReady := func() bool { return time.Since(start) < catchUp }
	a.notReady, b.notReady = notReady, notReady
	w.set(a.addr, 1)
	a.announce(t, 1)
	var ev events
	var logs syncBuffer
	cfg := fakeNodeConfig(t, []*fakeMember{a, b}, []string{a.addr, b.addr}, &logs)
	cfg.BackoffMin, cfg.BackoffMax = time.Second, 30*time.Second
	cfg.OnEvent = ev.add
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	runAgent(t, cfg)
	var acked time.Time
	eventually(t, 60*time.Second, "the update acknowledged once the members caught up", func() bool {
		var ok bool
		acked, ok = a.firstAck()
		return ok
	})
	if n := ev.count(EventRefused, ""); n != 0 {
		t.Errorf("%d refusal events for members that were only catching up", n)
	}
	if !strings.Contains(logs.String(), "catching up") {
		t.Error("the node's log does not say that a member is catching up")
	}
	// Data preparation may end after the catch-up; what counts is the
	// time from whichever came last.
	ready := start.Add(catchUp)
	var connected time.Time
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "local data ready") {
			var err error
			i := strings.Index(line, `"time":"`)
			if connected, err = time.Parse(time.RFC3339Nano, line[i+8:i+8+strings.Index(line[i+8:], `"`)]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if connected.After(ready) {
		ready = connected
	}
	t.Logf("ready → ack %v", acked.Sub(ready).Round(time.Millisecond))
	if d := acked.Sub(ready); d > 2*time.Second {
		t.Errorf("acknowledged %v after the members were ready; want within LeaderWait (1 s) plus a round trip and training", d)
	}
}

// TestQuietLeaderKilled: the leader vanishes while the node waits for a
// round (no request in flight). A leader check already dialling the dead
// leader must not hold the node past the end of its own connection (the
// idle timeout), even with a long DialTimeout.
func TestQuietLeaderKilled(t *testing.T) {
	w := newFakeWorld(t)
	a, b := startFake(t, w, 401, "a"), startFake(t, w, 402, "b")
	relay := newUDPRelay(t, a.addr)
	w.set(relay.addr(), 1)
	var ev events
	cfg := fakeNodeConfig(t, []*fakeMember{a, b}, []string{relay.addr(), b.addr}, nil)
	cfg.DialTimeout = 15 * time.Second
	cfg.LeaderCheck = 500 * time.Millisecond
	cfg.OnEvent = ev.add
	runAgent(t, cfg)
	eventually(t, 60*time.Second, "the node to connect", func() bool { return ev.count(EventConnected, "") == 1 })
	time.Sleep(600 * time.Millisecond) // let a leader check find the leader quiet
	killed := time.Now()
	relay.kill()
	w.set(b.addr, 2)
	b.announce(t, 1)
	var acked time.Time
	eventually(t, 40*time.Second, "the update acknowledged by the new leader", func() bool {
		var ok bool
		acked, ok = b.firstAck()
		return ok
	})
	t.Logf("kill → ack %v", acked.Sub(killed).Round(time.Millisecond))
	if d := acked.Sub(killed); d > 7*time.Second {
		t.Errorf("the node resumed %v after the kill; want within the idle timeout (3 s, 4 s with the keep-alive) plus a reconnection", d)
	}
}
