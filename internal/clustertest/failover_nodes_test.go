package clustertest_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/internal/clustertest"
	"github.com/mfn/mfn/node"
)

// ackLog records the acknowledgements real node agents receive.
type ackLog struct {
	mu   sync.Mutex
	acks []nodeAck
}

type nodeAck struct {
	node  string
	addr  string
	round uint64
	at    time.Time
}

func (l *ackLog) add(id string, e node.Event) {
	if e.Kind != node.EventSubmitted || (e.Result != node.ResultAcked && e.Result != node.ResultDuplicate) {
		return
	}
	l.mu.Lock()
	l.acks = append(l.acks, nodeAck{node: id, addr: e.Addr, round: e.Round, at: time.Now()})
	l.mu.Unlock()
}

// firstAfter returns the first acknowledgement from addr after t.
func (l *ackLog) firstAfter(addr string, t time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.acks {
		if a.addr == addr && a.at.After(t) {
			return a.at, true
		}
	}
	return time.Time{}, false
}

// maxSilence returns, over nodes, the longest time between two
// acknowledgements of one node from start to end, and that node.
func (l *ackLog) maxSilence(nodes []string, start, end time.Time) (time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var worst time.Duration
	who := ""
	for _, n := range nodes {
		last := start
		for _, a := range l.acks {
			if a.node != n || a.at.Before(start) || a.at.After(end) {
				continue
			}
			if d := a.at.Sub(last); d > worst {
				worst, who = d, n
			}
			last = a.at
		}
		if d := end.Sub(last); d > worst {
			worst, who = d, n
		}
	}
	return worst, who
}

// startAgents runs one real node agent (package node, over QUIC) per test
// node, against the cluster's members.
func startAgents(t *testing.T, ctx context.Context, c *clustertest.Cluster, nodes []*clustertest.Node, log *ackLog) {
	t.Helper()
	cl := &node.Cluster{Origin: c.Origin}
	for i, m := range c.Members {
		cl.Members = append(cl.Members, node.Member{ID: m.ID, QUICAddr: m.QUICAddr, PublicKey: c.CoordKeys[i],
			Recipient: c.Recipients[i].(*age.X25519Recipient)})
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	actx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i, n := range nodes {
		f, err := os.Create(filepath.Join(dir, n.ID+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				b, _ := os.ReadFile(f.Name())
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("node %s log (end):\n%s", n.ID, b)
			}
			f.Close()
		})
		cfg := node.DefaultConfig()
		cfg.NodeID, cfg.Identity, cfg.Cluster = n.ID, n.Identity, cl
		cfg.StateDir = filepath.Join(dir, n.ID)
		cfg.Data = node.DataConfig{Task: node.TaskMFNRegime, Samples: 32, GridSize: 16, Steps: 8, Seed: uint64(i + 1), Workers: 1}
		cfg.Train.Epochs = 1
		cfg.Seed = uint64(i + 1)
		cfg.Logger = slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
		cfg.OnEvent = func(e node.Event) { log.add(n.ID, e) }
		a, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(actx); err != nil {
				t.Errorf("node %s: %v", n.ID, err)
			}
		}()
	}
}

// TestNodesFollowLeaderKills runs real node agents against three
// coordinator processes with a 2 s round deadline, and SIGKILLs the leader
// three times (restarting it each time), then freezes the leader with
// SIGSTOP once. After each, the agents must have an update acknowledged by
// the new leader soon after the kill (the goal: within 2 s of the
// election, 5 s of the kill), no agent may stay silent much longer than a
// round deadline plus that, and no round may fail.
func TestNodesFollowLeaderKills(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 240*time.Second)
	c, _ := readyCluster(t, ctx, bin)
	const n = 4
	nodes := enrolledNodes(t, ctx, c, n, 7)
	ids := make([]string, n)
	for i, nd := range nodes {
		ids[i] = nd.ID
		nd.Close()
	}
	spec := coordinator.JobSpec{
		ID: "follow", Task: node.TaskMFNRegime, Dim: 76, Rule: coordinator.RuleSpec{Name: "fedavg"},
		Rounds: 1000, MinUpdates: n - 1, MaxUpdates: n,
		RoundDeadline: coordinator.Duration(2 * time.Second), // hard deadline: the default, 3 × 2 s
	}
	if _, err := c.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	var acks ackLog
	startAgents(t, ctx, c, nodes, &acks)
	if _, err := c.WaitRound(ctx, spec.ID, 3, "closed", func(r coordinator.Round) bool { return r.State == coordinator.RoundClosed }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()

	type outcome struct {
		how                string
		election, firstAck time.Duration // from the kill
		ackAfterElection   time.Duration
	}
	var outs []outcome
	for i, how := range []string{"SIGKILL", "SIGKILL", "SIGKILL", "SIGSTOP"} {
		leader, _, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Kill while rounds flow: right after some agent got an ack.
		mark := time.Now()
		if err := clustertest.Poll(ctx, "an acknowledgement before the kill", func() (bool, error) {
			_, ok := acks.firstAfter(leader.QUICAddr, mark)
			return ok, nil
		}); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		if how == "SIGKILL" {
			err = leader.Kill()
		} else {
			err = leader.Stop()
		}
		if err != nil {
			t.Fatal(err)
		}
		fctx, cancel := context.WithTimeout(ctx, maxFailover)
		next, took, err := c.WaitLeader(fctx, killed, leader)
		cancel()
		if err != nil {
			t.Fatalf("kill %d: no new leader: %v", i+1, err)
		}
		var acked time.Time
		if err := clustertest.Poll(ctx, "an acknowledgement from the new leader", func() (bool, error) {
			var ok bool
			acked, ok = acks.firstAfter(next.QUICAddr, killed)
			return ok, nil
		}); err != nil {
			t.Fatal(err)
		}
		o := outcome{how: how, election: took, firstAck: acked.Sub(killed), ackAfterElection: acked.Sub(killed) - took}
		outs = append(outs, o)
		t.Logf("%s %d of %s: %s elected after %v; first node update acknowledged by it %v after the kill (%v after the election)",
			how, i+1, leader.ID, next.ID, took.Round(time.Millisecond), o.firstAck.Round(time.Millisecond), o.ackAfterElection.Round(time.Millisecond))
		if how == "SIGKILL" {
			if err := leader.Start(); err != nil {
				t.Fatal(err)
			}
		} else if err := leader.Cont(); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	end := time.Now()
	silence, who := acks.maxSilence(ids, start, end)
	t.Logf("longest silence of a node: %v (%s)", silence.Round(time.Millisecond), who)

	firsts := make([]time.Duration, len(outs))
	afters := make([]time.Duration, len(outs))
	for i, o := range outs {
		firsts[i], afters[i] = o.firstAck, o.ackAfterElection
	}
	slices.Sort(firsts)
	slices.Sort(afters)
	t.Logf("kill → first ack: median %v, max %v; election → first ack: median %v, max %v",
		median(firsts).Round(time.Millisecond), firsts[len(firsts)-1].Round(time.Millisecond),
		median(afters).Round(time.Millisecond), afters[len(afters)-1].Round(time.Millisecond))

	// Bounds with room for a loaded two-core machine; the goal (≤ 5 s
	// from the kill, ≤ 2 s from the election) is what the medians show.
	for i, o := range outs {
		if o.firstAck > 8*time.Second || o.ackAfterElection > 4*time.Second {
			t.Errorf("%s %d: first acknowledgement by the new leader %v after the kill, %v after the election; want ≤ 8 s and ≤ 4 s",
				o.how, i+1, o.firstAck, o.ackAfterElection)
		}
	}
	// The goal is one round deadline (2 s) plus 5 s; the figure is
	// logged above and recorded in docs/BENCHMARKS.md. The assertion allows
	// twice the goal's 5 s because CI shares two cores between test
	// packages (a loaded run measured 7.3 s); it still fails on the 35 s
	// silences nodes had before they noticed dead leaders.
	if limit := 2*time.Second + 10*time.Second; silence > limit {
		t.Errorf("node %s was silent for %v, longer than a round deadline plus 10 s (%v)", who, silence, limit)
	}
	// No round failed.
	var rounds []coordinator.Round
	if err := clustertest.Poll(ctx, "the job's rounds", func() (bool, error) {
		for _, m := range c.Live() {
			var err error
			if rounds, err = c.API(m, c.ReaderKey).Rounds(ctx, spec.ID); err == nil {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, r := range rounds {
		if r.State == coordinator.RoundFailed {
			failed++
			t.Errorf("round %d failed: %s", r.Number, r.FailReason)
		}
	}
	t.Logf("%d rounds, %d failed", len(rounds), failed)
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	if len(d)%2 == 1 {
		return d[len(d)/2]
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2
}
