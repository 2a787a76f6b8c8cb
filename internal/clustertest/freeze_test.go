package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mfn/mfn/internal/clustertest"
	"github.com/mfn/mfn/protocol"
)

// TestFrozenFollower freezes a follower with SIGSTOP: the two others keep
// the cluster available (a round completes with 2 of 3, the leader stays
// ready). After SIGCONT the frozen member catches up: it applies what was
// committed without it and serves the same checkpoint.
func TestFrozenFollower(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	c, leader := readyCluster(t, ctx, bin)
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
	nodes := enrolledNodes(t, ctx, c, n, 3)
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

// TestFrozenLeader freezes the leader with SIGSTOP long enough for the
// others to elect a new one, then resumes it: the stale leader must not
// acknowledge anything it cannot commit. A submission sent to it right
// after SIGCONT either fails (it has stepped down: not leader, naming the
// new leader or none) or, if acknowledged, is in the round; every
// acknowledged update ends up in the round exactly once.
func TestFrozenLeader(t *testing.T) {
	processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	const n, dim = 4, 1000
	spec := testSpec("frozen-leader", dim, n, 1)
	c, old, nodes := startCluster(ctx, t, n, 11, spec)
	r := waitOpen(t, ctx, c, spec.ID, 1)
	ups := makeUpdates(t, nodes, spec.ID, 1, r.BaseHash, dim, rand.New(rand.NewPCG(12, 12)))
	acks := map[string]protocol.Ack{}
	rc := submitAll(ctx, t, ups[:1])
	acks[ups[0].node.ID] = rc[0].Ack
	// Connect the node that will talk to the stale leader while it still
	// leads, so that its first request after SIGCONT may need no
	// handshake.
	if err := ups[3].node.Connect(ctx, old.QUICAddr); err != nil {
		t.Fatal(err)
	}
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	fctx, cancel := context.WithTimeout(ctx, maxFailover)
	leader, took, err := c.WaitLeader(fctx, stopped, old)
	cancel()
	if err != nil {
		t.Fatalf("no new leader within %v of freezing %s: %v", maxFailover, old.ID, err)
	}
	t.Logf("%s frozen; %s leads after %v", old.ID, leader.ID, took.Round(time.Millisecond))
	for i, rc := range submitAll(ctx, t, ups[1:3]) {
		acks[ups[1+i].node.ID] = rc.Ack
	}
	if err := old.Cont(); err != nil {
		t.Fatal(err)
	}
	// The connection made before the freeze may have died of its idle
	// timeout meanwhile; a transport failure is retried (a new handshake
	// with the resumed member) until it answers.
	sctx, cancel := context.WithTimeout(ctx, refuseBound)
	var ack *protocol.Ack
	err = clustertest.Poll(sctx, "an answer from the resumed "+old.ID, func() (bool, error) {
		var err error
		ack, err = ups[3].node.SubmitTo(sctx, old.QUICAddr, ups[3].sealed)
		var pe *protocol.ProtocolError
		if err != nil && !errors.As(err, &pe) {
			return false, err
		}
		return true, err
	})
	cancel()
	if err == nil {
		t.Logf("the resumed %s acknowledged %+v", old.ID, *ack)
		acks[ups[3].node.ID] = *ack
	} else {
		var pe *protocol.ProtocolError
		if !errors.As(err, &pe) || (pe.Code != protocol.CodeNotLeader && pe.Code != protocol.CodeUnavailable) {
			t.Errorf("resumed stale leader %s answered %v; want not-leader or unavailable", old.ID, err)
		} else if pe.LeaderAddr != "" && pe.LeaderAddr != leader.QUICAddr {
			t.Errorf("resumed %s names %s as leader, the leader is %s at %s", old.ID, pe.LeaderAddr, leader.ID, leader.QUICAddr)
		}
		t.Logf("the resumed %s answered %v", old.ID, err)
		rc, err := ups[3].node.Submit(ctx, ups[3].sealed)
		if err != nil {
			t.Fatal(err)
		}
		acks[ups[3].node.ID] = rc.Ack
	}
	r, err = c.WaitRound(ctx, spec.ID, 1, "ended", roundEnded)
	if err != nil {
		t.Fatal(err)
	}
	checkRound(t, r, ups, acks)
	l, _, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp := waitCheckpoint(ctx, t, c, l, n)
	if _, err := c.WaitCaughtUp(ctx, old, 0, cp); err != nil {
		t.Fatal(err)
	}
	_, count := exportAndVerify(ctx, t, c, old, nodes)
	checkLeaves(t, count, spec.ID, 1, ups)
}
