package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/internal/clustertest"
	"github.com/mfn/mfn/protocol"
)

// refuseBound is how long an isolated member may take to refuse a
// submission: a leader cut off from its quorum steps down after its lease
// (0.5 s by default) and fails the pending entry; a follower refuses at
// once. It is well below the 10 s apply timeout, which is the coordinator's
// own bound.
const refuseBound = 12 * time.Second

// isolate freezes every member but m, so that m is alone: the loopback
// equivalent of a minority partition.
func isolate(t *testing.T, c *clustertest.Cluster, m *clustertest.Member) []*clustertest.Member {
	t.Helper()
	others := c.Others(m)
	for _, o := range others {
		if err := o.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	return others
}

// heal resumes the frozen members (deferred, so it also runs when the
// test fails).
func heal(t *testing.T, frozen []*clustertest.Member) {
	t.Helper()
	for _, o := range frozen {
		if err := o.Cont(); err != nil {
			t.Error(err)
		}
	}
}

// refused submits to m alone until a member that knows no leader refuses
// the update (or refuseBound passes, which fails the test); it fails the
// test if m ever acknowledges. It returns the answers in order.
func refused(ctx context.Context, t *testing.T, m *clustertest.Member, u update) []error {
	t.Helper()
	var answers []error
	deadline := time.Now().Add(refuseBound)
	for {
		actx, cancel := context.WithTimeout(ctx, refuseBound)
		start := time.Now()
		ack, err := u.node.SubmitTo(actx, m.QUICAddr, u.sealed)
		cancel()
		if err == nil {
			t.Fatalf("isolated %s acknowledged %s's update: %+v", m.ID, u.node.ID, ack)
		}
		if took := time.Since(start); took > refuseBound {
			t.Fatalf("isolated %s took %v to answer, bound %v: %v", m.ID, took, refuseBound, err)
		}
		answers = append(answers, err)
		var pe *protocol.ProtocolError
		if errors.As(err, &pe) && (pe.Code == protocol.CodeNotLeader || pe.Code == protocol.CodeUnavailable) && pe.LeaderAddr == "" {
			return answers
		}
		if time.Now().After(deadline) {
			t.Fatalf("isolated %s still answers %v after %v; want not-leader with no leader known", m.ID, err, refuseBound)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(clustertest.PollInterval):
		}
	}
}

// checkSaysNoLeader asserts that the last answer of an isolated member,
// a not-leader error without a leader address, says in words that no
// leader is known rather than naming an empty one.
func checkSaysNoLeader(t *testing.T, m *clustertest.Member, answers []error) {
	t.Helper()
	t.Run("says-no-leader-known", func(t *testing.T) {
		var pe *protocol.ProtocolError
		if !errors.As(answers[len(answers)-1], &pe) {
			t.Fatalf("last answer %v is not a protocol error", answers[len(answers)-1])
		}
		if msg := strings.TrimSpace(pe.Message); msg == "" || strings.HasSuffix(msg, "leader is") {
			t.Errorf("isolated %s answers %q (%v): it names an empty leader; want a message saying that no leader is known", m.ID, pe.Message, pe)
		}
	})
}

// checkNotReady asserts that m's API says it has no leader: /readyz 503,
// /v1/cluster without a leader, and a write refused with 503.
func checkNotReady(ctx context.Context, t *testing.T, c *clustertest.Cluster, m *clustertest.Member, n *clustertest.Node) {
	t.Helper()
	err := clustertest.Poll(ctx, m.ID+" not ready", func() (bool, error) {
		_, err := c.Ready(ctx, m)
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable {
			return true, nil
		}
		return false, fmt.Errorf("/readyz answered %v", err)
	})
	if err != nil {
		t.Fatalf("isolated %s: %v", m.ID, err)
	}
	st, err := c.Status(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if st.LeaderID != "" || st.State == "Leader" {
		t.Errorf("isolated %s reports state %s, leader %q; want no leader", m.ID, st.State, st.LeaderID)
	}
	_, err = c.API(m, c.OperatorKeys[0]).EnrollNode(ctx, n.ID+"x", api.PublicKey(n.Identity.PublicKey()))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != api.CodeNotLeader || ae.Leader != nil {
		t.Errorf("isolated %s: enroll answered %v, want 503 %s without a leader hint", m.ID, err, api.CodeNotLeader)
	}
}

// TestIsolatedMember cuts one member off from the two others (they are
// frozen), first a follower, then the leader. A healthy follower names the
// leader; an isolated one refuses submissions, says it knows no leader
// (over QUIC and the API) and acknowledges nothing; an isolated leader
// steps down and does the same. After healing, the refused updates are
// delivered and each is counted exactly once.
func TestIsolatedMember(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	c, leader := readyCluster(t, ctx, bin)
	const n, dim = 3, 1000
	nodes := enrolledNodes(t, ctx, c, n, 4)
	spec := testSpec("isolated", dim, n, 1)
	if _, err := c.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r := waitOpen(t, ctx, c, spec.ID, 1)
	ups := makeUpdates(t, nodes, spec.ID, 1, r.BaseHash, dim, rand.New(rand.NewPCG(5, 6)))

	// A healthy follower refuses and names the leader's QUIC address. It
	// admits the node's TLS key only once it has applied the enrollment.
	follower := c.Others(leader)[0]
	st, err := c.Status(ctx, leader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitCaughtUp(ctx, follower, st.CommitIndex, api.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	_, err = ups[0].node.SubmitTo(ctx, follower.QUICAddr, ups[0].sealed)
	var pe *protocol.ProtocolError
	if !errors.As(err, &pe) || pe.Code != protocol.CodeNotLeader || pe.LeaderAddr != leader.QUICAddr {
		t.Fatalf("follower %s answered %v; want not-leader naming %s at %s", follower.ID, err, leader.ID, leader.QUICAddr)
	}

	t.Run("follower", func(t *testing.T) {
		frozen := isolate(t, c, follower)
		defer heal(t, frozen)
		start := time.Now()
		answers := refused(ctx, t, follower, ups[0])
		t.Logf("isolated follower %s: %d answers in %v, first %v, last %v", follower.ID, len(answers),
			time.Since(start).Round(time.Millisecond), answers[0], answers[len(answers)-1])
		if errors.As(answers[0], &pe) && pe.Code == protocol.CodeNotLeader && pe.LeaderAddr != "" && pe.LeaderAddr != leader.QUICAddr {
			t.Errorf("isolated follower named %s as leader; the last leader it knew is at %s", pe.LeaderAddr, leader.QUICAddr)
		}
		checkSaysNoLeader(t, follower, answers)
		checkNotReady(ctx, t, c, follower, nodes[0])
	})
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	leader, _, err = c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("leader", func(t *testing.T) {
		frozen := isolate(t, c, leader)
		defer heal(t, frozen)
		start := time.Now()
		answers := refused(ctx, t, leader, ups[1])
		t.Logf("isolated leader %s: %d answers in %v, first %v, last %v", leader.ID, len(answers),
			time.Since(start).Round(time.Millisecond), answers[0], answers[len(answers)-1])
		checkSaysNoLeader(t, leader, answers)
		checkNotReady(ctx, t, c, leader, nodes[1])
	})
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	// Healed: every update goes through, each once. An update the isolated
	// leader appended to its log may commit after all; a retry then gets
	// its original acknowledgement.
	acks := map[string]protocol.Ack{}
	for i, rc := range submitAll(ctx, t, ups) {
		acks[ups[i].node.ID] = rc.Ack
	}
	r, err = c.WaitRound(ctx, spec.ID, 1, "ended", func(r coordinator.Round) bool {
		return r.State == coordinator.RoundClosed || r.State == coordinator.RoundFailed
	})
	if err != nil {
		t.Fatal(err)
	}
	checkRound(t, r, ups, acks)
	l, _, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(ctx, t, c, l, n)
	_, count := exportAndVerify(ctx, t, c, l, nodes)
	checkLeaves(t, count, spec.ID, 1, ups)
}
