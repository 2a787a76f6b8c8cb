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

// runRound waits for a job's round to open, submits one update per node
// through the redirect-following client, waits for the round to close and
// checks it. It returns the updates.
func runRound(ctx context.Context, t *testing.T, c *clustertest.Cluster, nodes []*clustertest.Node, spec coordinator.JobSpec, round uint64, seed uint64) []update {
	t.Helper()
	r, err := c.WaitRound(ctx, spec.ID, round, "open", func(r coordinator.Round) bool { return r.State == coordinator.RoundOpen })
	if err != nil {
		t.Fatal(err)
	}
	ups := makeUpdates(t, nodes, spec.ID, round, r.BaseHash, spec.Dim, rand.New(rand.NewPCG(seed, round)))
	acks := map[string]protocol.Ack{}
	for i, rc := range submitAll(ctx, t, ups) {
		acks[ups[i].node.ID] = rc.Ack
	}
	r, err = c.WaitRound(ctx, spec.ID, round, "ended", func(r coordinator.Round) bool {
		return r.State == coordinator.RoundClosed || r.State == coordinator.RoundFailed
	})
	if err != nil {
		t.Fatal(err)
	}
	checkRound(t, r, ups, acks)
	return ups
}

// TestFollowerRestartCatchesUp kills a follower with SIGKILL, lets the
// others run a round and enroll nodes without it, and starts it again with
// the same flags: it rejoins from its data directory (not bootstrapping
// anew), applies everything the leader committed, and serves the same
// signed checkpoint and the same rounds.
func TestFollowerRestartCatchesUp(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	c, leader := readyCluster(t, ctx, bin)
	const n, dim = 4, 1000
	nodes, err := c.NewNodes(n+2, 2)
	if err != nil {
		t.Fatal(err)
	}
	closeNodes(t, nodes)
	if err := c.Enroll(ctx, nodes[:n]); err != nil {
		t.Fatal(err)
	}
	spec := testSpec("restart", dim, n, 2)
	if _, err := c.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	first := runRound(ctx, t, c, nodes[:n], spec, 1, 20)
	follower := c.Others(leader)[0]
	// The follower has applied round 1 before it dies, so its data
	// directory holds it.
	cp1 := waitCheckpoint(ctx, t, c, leader, n)
	if _, err := c.WaitCaughtUp(ctx, follower, 0, cp1); err != nil {
		t.Fatal(err)
	}
	if err := follower.Kill(); err != nil {
		t.Fatal(err)
	}

	// Without it: round 2, two more nodes.
	second := runRound(ctx, t, c, nodes[:n], spec, 2, 20)
	if err := c.Enroll(ctx, nodes[n:]); err != nil {
		t.Fatal(err)
	}
	cp2 := waitCheckpoint(ctx, t, c, leader, 2*n)
	st, err := c.Status(ctx, leader)
	if err != nil {
		t.Fatal(err)
	}

	restarted := time.Now()
	if err := follower.Start(); err != nil {
		t.Fatal(err)
	}
	fst, err := c.WaitCaughtUp(ctx, follower, st.CommitIndex, cp2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s restarted and caught up to index %d (leader committed %d) in %v",
		follower.ID, fst.AppliedIndex, st.CommitIndex, time.Since(restarted).Round(time.Millisecond))
	if ok, err := follower.LogContains(2, "rejoining from existing raft state"); err != nil || !ok {
		t.Errorf("restarted %s did not log that it rejoins from its Raft state (%v)", follower.ID, err)
	}
	if ok, _ := follower.LogContains(2, "bootstrapped a new cluster"); ok {
		t.Errorf("restarted %s bootstrapped a new cluster instead of rejoining", follower.ID)
	}
	if fst.LeaderID != leader.ID || len(fst.Members) != 3 {
		t.Errorf("restarted %s sees leader %q and %d members, want %s and 3", follower.ID, fst.LeaderID, len(fst.Members), leader.ID)
	}
	if fst.AuditSize != 2*n {
		t.Errorf("restarted %s has %d audit leaves, want %d", follower.ID, fst.AuditSize, 2*n)
	}
	// Its own audit log (served locally) verifies and holds every update
	// once, round 2's included.
	rep, count := exportAndVerify(ctx, t, c, follower, nodes)
	if rep.Leaves != 2*n || rep.Root != cp2.Root {
		t.Errorf("restarted %s exports %d leaves with root %x, leader's checkpoint has %d and %s", follower.ID, rep.Leaves, rep.Root, cp2.Size, cp2.Root)
	}
	checkLeaves(t, count, spec.ID, 1, first)
	checkLeaves(t, count, spec.ID, 2, second)
	checkConsistent(ctx, t, c, follower, cp1, cp2)
}
