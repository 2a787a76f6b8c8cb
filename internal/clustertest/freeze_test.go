package clustertest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/mfn/mfn/internal/clustertest"
)

// TestFrozenFollower freezes a follower with SIGSTOP: the two others keep
// the cluster available (a round completes with 2 of 3, the leader stays
// ready). After SIGCONT the frozen member catches up: it applies what was
// committed without it and serves the same checkpoint.
func TestFrozenFollower(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	c := clustertest.Start(t, clustertest.Config{Binary: bin})
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	leader, _, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Every member's /readyz names the leader and its own role.
	for _, m := range c.Members {
		want := "Follower"
		if m == leader {
			want = "Leader"
		}
		err := clustertest.Poll(ctx, m.ID+" readiness", func() (bool, error) {
			rd, err := c.Ready(ctx, m)
			if err != nil {
				return false, err
			}
			if rd.Leader != leader.ID || rd.State != want {
				return false, fmt.Errorf("%s /readyz: %+v", m.ID, rd)
			}
			return true, nil
		})
		if err != nil {
			t.Errorf("want leader %s, state %s: %v", leader.ID, want, err)
		}
	}
	const n, dim = 4, 1000
	nodes, err := c.NewNodes(n, 3)
	if err != nil {
		t.Fatal(err)
	}
	closeNodes(t, nodes)
	if err := c.Enroll(ctx, nodes); err != nil {
		t.Fatal(err)
	}
	spec := testSpec("frozen", dim, n, 2)
	if _, err := c.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	first := runRound(ctx, t, c, nodes, spec, 1, 30)
	frozen := c.Others(leader)[0]
	if err := frozen.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()

	second := runRound(ctx, t, c, nodes, spec, 2, 30)
	t.Logf("round 2 completed with %s frozen in %v", frozen.ID, time.Since(stopped).Round(time.Millisecond))
	if _, err := c.Ready(ctx, leader); err != nil {
		t.Errorf("leader %s not ready with one follower frozen: %v", leader.ID, err)
	}
	if l, _, err := c.Leader(ctx, c.Others(frozen)...); err != nil || l != leader {
		t.Errorf("leadership moved while a follower was frozen: %v, %v", l, err)
	}
	cp := waitCheckpoint(ctx, t, c, leader, 2*n)
	st, err := c.Status(ctx, leader)
	if err != nil {
		t.Fatal(err)
	}
	if err := frozen.Cont(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	fst, err := c.WaitCaughtUp(ctx, frozen, st.CommitIndex, cp)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s resumed and caught up to index %d (leader committed %d) in %v",
		frozen.ID, fst.AppliedIndex, st.CommitIndex, time.Since(resumed).Round(time.Millisecond))
	if err := c.WaitReady(ctx, frozen); err != nil {
		t.Fatal(err)
	}
	rep, count := exportAndVerify(ctx, t, c, frozen, nodes)
	if rep.Leaves != 2*n || rep.Root != cp.Root {
		t.Errorf("resumed %s exports %d leaves with root %x, leader's checkpoint has %d and %s", frozen.ID, rep.Leaves, rep.Root, cp.Size, cp.Root)
	}
	checkLeaves(t, count, spec.ID, 1, first)
	checkLeaves(t, count, spec.ID, 2, second)
}
