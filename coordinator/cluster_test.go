package coordinator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/time/rate"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/crypto"
)

// testLogWriter sends log lines to t.Log until the test ends (raft
// goroutines may log during shutdown, after which t.Log would panic).
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// newTestLogger returns a slog logger writing to t.Log at level lvl.
func newTestLogger(t testing.TB, lvl slog.Level) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// fakeClock is the leaders' clock in tests: deadlines are driven by
// Advance, not by waiting.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testKeys is the key material of a test cluster: each member's
// coordinator identity, the log key, and the recipients nodes seal to.
type testKeys struct {
	origin     string
	coords     []*crypto.Identity
	recipients []age.Recipient
	signer     note.Signer
	verifier   note.Verifier
}

func newTestKeys(t testing.TB, n int, seed uint64) *testKeys {
	t.Helper()
	rng := rand.NewChaCha8(seedBytes(seed))
	k := &testKeys{origin: "mfn.test/cluster"}
	for range n {
		id, err := crypto.GenerateIdentity(crypto.RoleCoordinator, rng)
		if err != nil {
			t.Fatal(err)
		}
		k.coords = append(k.coords, id)
		k.recipients = append(k.recipients, id.Recipient())
	}
	skey, vkey, err := audit.GenerateLogKey(k.origin, rng)
	if err != nil {
		t.Fatal(err)
	}
	if k.signer, err = audit.NewLogSigner(skey); err != nil {
		t.Fatal(err)
	}
	if k.verifier, err = audit.NewLogVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	return k
}

func seedBytes(seed uint64) [32]byte {
	var b [32]byte
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	return b
}

// testNode is an edge node in tests.
type testNode struct {
	id  string
	key ed25519.PrivateKey
}

func newTestNodes(t testing.TB, n int, seed uint64) []*testNode {
	t.Helper()
	rng := rand.NewChaCha8(seedBytes(seed ^ 0x6e6f6465))
	out := make([]*testNode, n)
	for i := range out {
		_, priv, err := ed25519.GenerateKey(rng)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = &testNode{id: fmt.Sprintf("n%d", i), key: priv}
	}
	return out
}

func (n *testNode) pub() ed25519.PublicKey { return n.key.Public().(ed25519.PublicKey) }

// seal builds a sealed envelope of update for (job, round) on base.
func (n *testNode) seal(t testing.TB, k *testKeys, job string, round uint64, base Hash, update []float64, samples uint64) []byte {
	t.Helper()
	stmt := &crypto.Statement{
		Origin: k.origin, JobID: job, Round: round, NodeID: n.id, BaseModelHash: base,
		SampleCount: samples, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	sealed, err := crypto.Seal(stmt, crypto.EncodeUpdate(update, crypto.Float64), n.key, k.recipients)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// testCluster is n members on raft's in-memory transport.
type testCluster struct {
	t       testing.TB
	keys    *testKeys
	clock   *fakeClock
	members []*Coordinator
	trans   []*raft.InmemTransport
	down    []bool
}

type clusterOpts struct {
	evaluator Evaluator
	announcer func(i int) Announcer
	tick      time.Duration
	logLevel  slog.Level
	nodeRate  float64
	// voters is how many members are bootstrapped (0: all); the others
	// start without state, to be added later.
	voters   int
	httpAddr func(i int) string
	// raft adjusts each member's raft configuration.
	raft func(*raft.Config)
	// prober, if set, gives member i its Prober.
	prober func(i int) Prober
	// storage, if set, gives member i its storage (default in memory).
	storage func(i int) *Storage
	// peerKeys gives every member a PeerKeys holding every member's key
	// (the static --peer-keys list).
	peerKeys bool
	// attest gives every member its MemberKey and a SendAttestation that
	// hands a follower's attestation to the current leader in process.
	attest bool
	// strong (with attest) turns on the strong form (AttestQuorum).
	strong bool
	// archiveKeep > 0 (with attest) gives every member an ArchiveDir
	// keeping that many round archives.
	archiveKeep int
	// send, if set (with attest), gives member i its SendAttestation.
	send func(i int, tc *testCluster) func(context.Context, *Attestation) error
	// rules, if set, gives member i its rule factory.
	rules func(i int) RuleFactory
}

func fastRaftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	// raft's defaults (1 s heartbeat and election timeouts, 500 ms lease):
	// on a loaded 2-core CI machine shorter ones make a starved leader
	// step down in the middle of a test.
	rc.HeartbeatTimeout = time.Second
	rc.ElectionTimeout = time.Second
	rc.LeaderLeaseTimeout = 500 * time.Millisecond
	rc.CommitTimeout = 5 * time.Millisecond
	rc.SnapshotThreshold = 1 << 30
	rc.SnapshotInterval = time.Hour
	return rc
}

// newTestCluster starts n members, bootstraps them and waits for a leader.
func newTestCluster(t testing.TB, n int, o clusterOpts) *testCluster {
	t.Helper()
	if o.tick == 0 {
		o.tick = 10 * time.Millisecond
	}
	if o.logLevel == 0 {
		o.logLevel = slog.LevelWarn
	}
	tc := &testCluster{t: t, keys: newTestKeys(t, n, 1), clock: newFakeClock(), down: make([]bool, n)}
	logger := newTestLogger(t, o.logLevel)
	if o.voters == 0 {
		o.voters = n
	}
	var servers []raft.Server
	for i := range n {
		// The default 500 ms RPC timeout fails appends of large batches on
		// a loaded machine; a generous one keeps the test about the system.
		addr, tr := raft.NewInmemTransportWithTimeout(raft.ServerAddress(fmt.Sprintf("raft-%d", i)), 5*time.Second)
		tc.trans = append(tc.trans, tr)
		if i < o.voters {
			servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprintf("c%d", i)), Address: addr})
		}
	}
	for i := range n {
		for j := range n {
			if i != j {
				tc.trans[i].Connect(tc.trans[j].LocalAddr(), tc.trans[j])
			}
		}
	}
	for i := range n {
		rc := fastRaftConfig()
		if o.raft != nil {
			o.raft(rc)
		}
		cfg := Config{
			ID: fmt.Sprintf("c%d", i), Origin: tc.keys.origin,
			RaftAddr: string(tc.trans[i].LocalAddr()), QUICAddr: fmt.Sprintf("quic-%d:4433", i), HTTPAddr: fmt.Sprintf("http-%d:8080", i),
			PublicKey: tc.keys.coords[i].PublicKey(),
			Storage:   InmemStorage(), Transport: tc.trans[i], Raft: rc,
			Opener:      &CryptoOpener{Identities: []age.Identity{tc.keys.coords[i].Age}},
			Evaluator:   o.evaluator,
			LogVerifier: tc.keys.verifier, LogSigner: tc.keys.signer,
			Logger: logger, Clock: tc.clock.Now, Tick: o.tick, CheckpointInterval: 20 * time.Millisecond,
			NodeRate: 1000, NodeBurst: 1000, Registry: prometheus.NewRegistry(),
			MinRoundDeadline: time.Millisecond, // tests run short rounds; TestNewJobLimits checks the default
		}
		if o.nodeRate > 0 {
			cfg.NodeRate, cfg.NodeBurst = rate.Limit(o.nodeRate), 1
		}
		if o.announcer != nil {
			cfg.Announcer = o.announcer(i)
		}
		if o.httpAddr != nil {
			cfg.HTTPAddr = o.httpAddr(i)
		}
		if o.storage != nil {
			cfg.Storage = o.storage(i)
		}
		if o.prober != nil {
			cfg.Prober = o.prober(i)
		}
		if o.attest {
			cfg.MemberKey = tc.keys.coords[i].SigningKey
			cfg.SendAttestation = func(ctx context.Context, a *Attestation) error {
				for j, m := range tc.members {
					if !tc.down[j] && m.IsLeader() {
						return m.SubmitAttestation(ctx, a)
					}
				}
				return ErrNotLeader
			}
		}
		if o.strong {
			cfg.AttestQuorum, cfg.AttestTimeout = true, 20*time.Second
		}
		if o.send != nil {
			cfg.SendAttestation = o.send(i, tc)
		}
		if o.archiveKeep > 0 {
			cfg.ArchiveDir, cfg.ArchiveKeep = t.TempDir(), o.archiveKeep
		}
		if o.rules != nil {
			cfg.Rules = o.rules(i)
		}
		if o.peerKeys {
			cfg.PeerKeys = NewPeerKeys()
			for _, k := range tc.keys.coords {
				cfg.PeerKeys.Add(k.PublicKey())
			}
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tc.members = append(tc.members, c)
	}
	t.Cleanup(tc.close)
	if err := tc.members[0].Bootstrap(servers); err != nil {
		t.Fatal(err)
	}
	tc.leader()
	return tc
}

func (tc *testCluster) close() {
	var wg sync.WaitGroup
	for i, c := range tc.members {
		if tc.down[i] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// No leadership transfer: every member is going away.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			c.Close(ctx)
		}()
	}
	wg.Wait()
}

// leader waits (up to 10 s) until exactly one live member leads and the
// others agree, and returns its index.
func (tc *testCluster) leader() int {
	tc.t.Helper()
	var idx int
	tc.eventually(10*time.Second, "a leader", func() bool {
		idx = -1
		for i, c := range tc.members {
			if tc.down[i] || !c.IsLeader() {
				continue
			}
			if idx >= 0 {
				return false
			}
			idx = i
		}
		return idx >= 0
	})
	return idx
}

// kill stops member i abruptly: its transport is cut off first, then it
// shuts down without handing over leadership.
func (tc *testCluster) kill(i int) {
	tc.t.Helper()
	for j, tr := range tc.trans {
		if j != i {
			tr.Disconnect(tc.trans[i].LocalAddr())
		}
	}
	tc.trans[i].DisconnectAll()
	tc.down[i] = true
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no leadership transfer
	tc.members[i].Close(ctx)
}

// eventually polls cond every 5 ms until it holds or d passes.
func (tc *testCluster) eventually(d time.Duration, what string, cond func() bool) {
	tc.t.Helper()
	eventually(tc.t, d, what, cond)
}

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitApplied waits until every live member applied the leader's last
// index.
func (tc *testCluster) waitApplied() {
	tc.t.Helper()
	l := tc.members[tc.leader()]
	if err := l.raft.Barrier(5 * time.Second).Error(); err != nil {
		tc.t.Fatal(err)
	}
	want := l.raft.AppliedIndex()
	tc.eventually(10*time.Second, "replicas to apply", func() bool {
		for i, c := range tc.members {
			if !tc.down[i] && c.raft.AppliedIndex() < want {
				return false
			}
		}
		return true
	})
}

// waitRound waits until job's round n reaches one of the states on member
// i and returns it.
func (tc *testCluster) waitRound(i int, job string, n uint64, states ...RoundState) Round {
	tc.t.Helper()
	var r Round
	tc.eventually(10*time.Second, fmt.Sprintf("job %s round %d in %v", job, n, states), func() bool {
		var err error
		r, err = tc.members[i].GetRound(job, n)
		if err != nil {
			return false
		}
		for _, s := range states {
			if r.State == s {
				return true
			}
		}
		return false
	})
	return r
}

// enroll enrolls nodes through the leader.
func (tc *testCluster) enroll(nodes []*testNode) {
	tc.t.Helper()
	l := tc.members[tc.leader()]
	for _, n := range nodes {
		if err := l.EnrollNode(context.Background(), n.id, n.pub()); err != nil {
			tc.t.Fatal(err)
		}
	}
}

func testSpec(id string, dim, minU, maxU int) JobSpec {
	return JobSpec{
		ID: id, Task: "test", Dim: dim, Rule: RuleSpec{Name: "fedavg"}, Rounds: 3,
		MinUpdates: minU, MaxUpdates: maxU, RoundDeadline: Duration(time.Minute), HardDeadline: Duration(5 * time.Minute),
	}
}

// isNotLeader reports whether err is a NotLeaderError naming leader.
func isNotLeader(err error, leader string) bool {
	var nl *NotLeaderError
	return errors.As(err, &nl) && nl.LeaderID == leader
}

var _ io.Writer = (*testLogWriter)(nil)

// metricValue returns the value of a metric (summed over its label sets;
// histogram: the sample count) in c's registry.
func metricValue(t testing.TB, c *Coordinator, name string) float64 {
	t.Helper()
	mfs, err := c.cfg.Registry.(*prometheus.Registry).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}
