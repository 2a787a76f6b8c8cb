package clustertest_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/internal/clustertest"
	"github.com/mfn/mfn/protocol"
)

// startCluster starts a 3-member cluster, waits for it, enrolls n nodes
// and creates spec; it returns the cluster, its leader and the nodes.
func startCluster(ctx context.Context, t *testing.T, n int, seed uint64, spec coordinator.JobSpec) (*clustertest.Cluster, *clustertest.Member, []*clustertest.Node) {
	t.Helper()
	c, leader := readyCluster(t, ctx, processTest(t))
	nodes := enrolledNodes(t, ctx, c, n, seed)
	if _, err := c.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	return c, leader, nodes
}

func roundEnded(r coordinator.Round) bool {
	return r.State == coordinator.RoundClosed || r.State == coordinator.RoundFailed
}

// TestLeaderKilledWhileClosing kills the leader the moment the update
// that fills a round is acknowledged, while it seals and aggregates. The
// new leader has none of the decoded updates in memory: it must re-open
// the sealed envelopes from the replicated state with its own age key and
// finish the round over exactly the acknowledged updates.
func TestLeaderKilledWhileClosing(t *testing.T) {
	processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	const n, dim = 4, 10_000
	spec := testSpec("closing", dim, n, 1)
	c, old, nodes := startCluster(ctx, t, n, 5, spec)
	r := waitOpen(t, ctx, c, spec.ID, 1)
	ups := makeUpdates(t, nodes, spec.ID, 1, r.BaseHash, dim, rand.New(rand.NewPCG(7, 7)))
	acks := map[string]protocol.Ack{}
	for i, rc := range submitAll(ctx, t, ups[:n-1]) {
		acks[ups[i].node.ID] = rc.Ack
	}
	last, err := ups[n-1].node.Submit(ctx, ups[n-1].sealed)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	acks[ups[n-1].node.ID] = last.Ack
	closedByOld, _ := old.LogContains(1, "round closed")
	fctx, cancel := context.WithTimeout(ctx, maxFailover)
	leader, took, err := c.WaitLeader(fctx, time.Now(), old)
	cancel()
	if err != nil {
		t.Fatalf("no new leader within %v: %v", maxFailover, err)
	}
	r, err = c.WaitRound(ctx, spec.ID, 1, "ended", roundEnded)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s killed after the last ack (its log shows the close: %v); %s leads after %v and the round is %s",
		old.ID, closedByOld, leader.ID, took.Round(time.Millisecond), r.State)
	checkRound(t, r, ups, acks)
	if r.Result != nil {
		checkModel(ctx, t, c.API(leader, c.ReaderKey), spec.ID, r.Result.ModelVersion, mean(ups))
	}
	waitCheckpoint(ctx, t, c, leader, n)
	_, count := exportAndVerify(ctx, t, c, leader, nodes)
	checkLeaves(t, count, spec.ID, 1, ups)
}

// TestWholeClusterRestart kills all three members with SIGKILL while a
// round holds acknowledged updates and starts them again with the same
// flags: nothing acknowledged is lost (the round keeps exactly its
// updates with their acknowledgements), the round then completes, and the
// audit log after the restart extends the checkpoint signed before it.
func TestWholeClusterRestart(t *testing.T) {
	processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	const n, dim = 4, 1000
	spec := testSpec("restart-all", dim, n, 1)
	c, _, nodes := startCluster(ctx, t, n, 6, spec)
	r := waitOpen(t, ctx, c, spec.ID, 1)
	ups := makeUpdates(t, nodes, spec.ID, 1, r.BaseHash, dim, rand.New(rand.NewPCG(8, 8)))
	acks := map[string]protocol.Ack{}
	for i, rc := range submitAll(ctx, t, ups[:n/2]) {
		acks[ups[i].node.ID] = rc.Ack
	}
	leader, _, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := waitCheckpoint(ctx, t, c, leader, n/2)
	for _, m := range c.Members {
		if err := m.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range c.Members {
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	r, err = c.WaitRound(ctx, spec.ID, 1, "back", func(r coordinator.Round) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if r.State != coordinator.RoundOpen || len(r.Updates) != n/2 {
		t.Fatalf("after restarting every member the round is %s with %d updates, want open with the %d acknowledged", r.State, len(r.Updates), n/2)
	}
	for _, ru := range r.Updates {
		if a, ok := acks[ru.Node]; !ok || a.LogIndex != ru.LogIndex || a.LeafIndex != ru.LeafIndex {
			t.Errorf("after the restart %s is at (log %d, leaf %d), acknowledged as %+v (%v)", ru.Node, ru.LogIndex, ru.LeafIndex, a, ok)
		}
	}
	for i, rc := range submitAll(ctx, t, ups[n/2:]) {
		acks[ups[n/2+i].node.ID] = rc.Ack
	}
	r, err = c.WaitRound(ctx, spec.ID, 1, "ended", roundEnded)
	if err != nil {
		t.Fatal(err)
	}
	checkRound(t, r, ups, acks)
	leader, _, err = c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Result != nil {
		checkModel(ctx, t, c.API(leader, c.ReaderKey), spec.ID, r.Result.ModelVersion, mean(ups))
	}
	after := waitCheckpoint(ctx, t, c, leader, n)
	checkConsistent(ctx, t, c, leader, before, after)
	_, count := exportAndVerify(ctx, t, c, leader, nodes)
	checkLeaves(t, count, spec.ID, 1, ups)
}

// TestDeadlineSurvivesLeaderChange runs a round that closes on its
// deadline (min 2, max 10 updates, 4 s): the leader that opened it is
// killed before the deadline, and the new leader closes it after the same
// absolute deadline — not earlier, not a fresh 4 s later than needed, and
// with the updates acknowledged before the kill.
func TestDeadlineSurvivesLeaderChange(t *testing.T) {
	processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	const n, dim = 3, 1000
	spec := testSpec("deadline", dim, 2, 1)
	spec.MaxUpdates = 10
	spec.RoundDeadline = coordinator.Duration(4 * time.Second)
	spec.HardDeadline = coordinator.Duration(60 * time.Second)
	c, old, nodes := startCluster(ctx, t, n, 7, spec)
	r := waitOpen(t, ctx, c, spec.ID, 1)
	deadline := r.Deadline
	ups := makeUpdates(t, nodes, spec.ID, 1, r.BaseHash, dim, rand.New(rand.NewPCG(9, 9)))
	acks := map[string]protocol.Ack{}
	for i, rc := range submitAll(ctx, t, ups) {
		acks[ups[i].node.ID] = rc.Ack
	}
	if left := time.Until(deadline); left < 500*time.Millisecond {
		t.Skipf("the machine is too slow for this test: %v left before the deadline when the updates were in", left)
	}
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	r, err := c.WaitRound(ctx, spec.ID, 1, "ended", roundEnded)
	if err != nil {
		t.Fatal(err)
	}
	checkRound(t, r, ups, acks)
	if !r.Deadline.Equal(deadline) {
		t.Errorf("the round's deadline moved from %v to %v across the leader change", deadline, r.Deadline)
	}
	if r.EndedAt.Before(deadline) {
		t.Errorf("round closed at %v, before its deadline %v", r.EndedAt, deadline)
	}
	// A new leader within 10 s, then one engine tick: closing later than
	// that means the deadline was restarted.
	if late := r.EndedAt.Sub(deadline); late > maxFailover+time.Second {
		t.Errorf("round closed %v after its deadline", late)
	}
	t.Logf("round closed %v after its deadline by a new leader", r.EndedAt.Sub(deadline).Round(time.Millisecond))
}
