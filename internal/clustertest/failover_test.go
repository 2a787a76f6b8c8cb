package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/protocol"
)

// maxFailover is the promise: a new leader within 10 s of the leader's
// death.
const maxFailover = 10 * time.Second

// TestLeaderKilledMidRound kills the leader (SIGKILL) while a round holds
// acknowledged updates, and checks the promises: a new leader within 10 s,
// the round completes on it, every acknowledged update is in the round and
// the audit log exactly once (a retried update gets its original
// acknowledgement, a second different update is refused), the model is
// the mean of exactly those updates, and the audit log after the change
// is provably consistent with the checkpoint signed before it.
func TestLeaderKilledMidRound(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	c, old := readyCluster(t, ctx, bin)
	const n, dim = 6, 1000
	nodes := enrolledNodes(t, ctx, c, n, 1)
	spec := testSpec("failover", dim, n, 1)
	if _, err := c.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r := waitOpen(t, ctx, c, spec.ID, 1)
	ups := makeUpdates(t, nodes, spec.ID, 1, r.BaseHash, dim, rand.New(rand.NewPCG(1, 2)))

	// Half the round is acknowledged by the first leader and covered by a
	// signed checkpoint.
	acks := map[string]protocol.Ack{}
	for i, rc := range submitAll(ctx, t, ups[:n/2]) {
		if rc.Addr != old.QUICAddr {
			t.Errorf("%s acknowledged by %s, the leader is %s at %s", ups[i].node.ID, rc.Addr, old.ID, old.QUICAddr)
		}
		acks[ups[i].node.ID] = rc.Ack
	}
	before := waitCheckpoint(ctx, t, c, old, n/2)

	killed := time.Now()
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, maxFailover)
	leader, took, err := c.WaitLeader(fctx, killed, old)
	cancel()
	if err != nil {
		t.Fatalf("no new leader within %v of SIGKILL to %s: %v", maxFailover, old.ID, err)
	}
	t.Logf("leader %s killed; %s leads after %v", old.ID, leader.ID, took.Round(time.Millisecond))
	if took > maxFailover {
		t.Fatalf("new leader after %v, promised within %v", took, maxFailover)
	}

	// A node that never saw its acknowledgement retries with the same
	// bytes: it gets the original acknowledgement back.
	retryStart := time.Now()
	retry, err := ups[0].node.Submit(ctx, ups[0].sealed)
	if err != nil {
		t.Fatalf("retry of an acknowledged update: %v", err)
	}
	t.Logf("retry acknowledged after %d attempts, %d redirects, %v", retry.Attempts, retry.Redirects, time.Since(retryStart).Round(time.Millisecond))
	if a := acks[ups[0].node.ID]; retry.Ack != a {
		t.Errorf("retry acknowledged as %+v, first acknowledgement was %+v", retry.Ack, a)
	}
	if retry.Addr != leader.QUICAddr {
		t.Errorf("retry acknowledged by %s, the new leader is at %s", retry.Addr, leader.QUICAddr)
	}
	// A different update from a node already counted is refused.
	other := makeUpdates(t, nodes[1:2], spec.ID, 1, r.BaseHash, dim, rand.New(rand.NewPCG(3, 4)))
	if _, err := other[0].node.Submit(ctx, other[0].sealed); !errors.Is(err, protocol.CodeDuplicate) {
		t.Errorf("second update of %s in the round: got %v, want %v", other[0].node.ID, err, protocol.CodeDuplicate)
	}

	// The rest of the round goes to the new leader and closes it.
	for i, rc := range submitAll(ctx, t, ups[n/2:]) {
		if rc.Addr != leader.QUICAddr {
			t.Errorf("%s acknowledged by %s, the new leader is at %s", ups[n/2+i].node.ID, rc.Addr, leader.QUICAddr)
		}
		acks[ups[n/2+i].node.ID] = rc.Ack
	}
	r, err = c.WaitRound(ctx, spec.ID, 1, "closed", func(r coordinator.Round) bool {
		return r.State != coordinator.RoundOpen && r.State != coordinator.RoundClosing
	})
	if err != nil {
		t.Fatal(err)
	}
	checkRound(t, r, ups, acks)
	if r.Result != nil {
		checkModel(ctx, t, c.API(leader, c.ReaderKey), spec.ID, r.Result.ModelVersion, mean(ups))
	}

	// The audit log: the new leader's checkpoints extend the old leader's,
	// and the whole log verifies offline with each update once.
	after := waitCheckpoint(ctx, t, c, leader, n)
	checkConsistent(ctx, t, c, leader, before, after)
	list, err := c.API(leader, c.AuditorKey).Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, cp := range list.Checkpoints {
		found = found || cp.Note == before.Note
	}
	if !found {
		t.Errorf("the new leader no longer serves the checkpoint of size %d signed before the failover", before.Size)
	}
	rep, count := exportAndVerify(ctx, t, c, leader, nodes)
	if rep.Leaves != n {
		t.Errorf("exported log has %d leaves, %d updates were acknowledged", rep.Leaves, n)
	}
	checkLeaves(t, count, spec.ID, 1, ups)
	for _, m := range c.Others(old) {
		if _, err := c.WaitCaughtUp(ctx, m, 0, after); err != nil {
			t.Error(err)
		}
	}

	// An auditor with only the command line and the verifier key: export
	// from the surviving follower, verify offline, and check the proof
	// bundle of an update acknowledged by the dead leader.
	follower := c.Others(old, leader)[0]
	ctl := []string{"ctl", "--server", "http://" + follower.HTTPAddr, "--api-key", c.AuditorKey}
	dir := t.TempDir()
	if _, stderr, err := c.MFN(ctx, append(ctl, "audit", "export", "--out", dir+"/log")...); err != nil {
		t.Fatalf("mfn ctl audit export: %v\n%s", err, stderr)
	}
	wantLog := fmt.Sprintf("OK: log %s: %d leaves,", c.Origin, n)
	if stdout, stderr, err := c.MFN(ctx, "audit", "verify-log", dir+"/log", "--log-key", "@"+c.LogVerifierFile); err != nil || !strings.Contains(string(stdout), wantLog) {
		t.Errorf("mfn audit verify-log: %v, want %q in\n%s%s", err, wantLog, stdout, stderr)
	}
	leaf := fmt.Sprint(acks[ups[0].node.ID].LeafIndex)
	if _, stderr, err := c.MFN(ctx, append(ctl, "audit", "bundle", leaf, "--out", dir+"/bundle.json")...); err != nil {
		t.Fatalf("mfn ctl audit bundle %s: %v\n%s", leaf, err, stderr)
	}
	wantLeaf := fmt.Sprintf("OK: leaf %s (node %s, job %s, round 1,", leaf, ups[0].node.ID, spec.ID)
	if stdout, stderr, err := c.MFN(ctx, "audit", "verify", "--bundle", dir+"/bundle.json", "--log-key", "@"+c.LogVerifierFile); err != nil || !strings.Contains(string(stdout), wantLeaf) {
		t.Errorf("mfn audit verify --bundle: %v, want %q in\n%s%s", err, wantLeaf, stdout, stderr)
	}
}

// TestLeaderSIGTERMHandsOver stops the leader gracefully: it exits with
// status 0 within its --shutdown-timeout (5 s here), having handed the
// leadership to another member, which leads within the failover bound.
// Started again with the same flags, it rejoins as a follower of the new
// leader.
func TestLeaderSIGTERMHandsOver(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 90*time.Second)
	c, old := readyCluster(t, ctx, bin)
	start := time.Now()
	if err := old.Terminate(10 * time.Second); err != nil {
		t.Fatalf("%s after SIGTERM: %v", old.ID, err)
	}
	stopped := time.Since(start)
	fctx, cancel := context.WithTimeout(ctx, maxFailover)
	leader, took, err := c.WaitLeader(fctx, start, old)
	cancel()
	if err != nil {
		t.Fatalf("no new leader within %v of SIGTERM to %s: %v", maxFailover, old.ID, err)
	}
	t.Logf("%s exited %v after SIGTERM; %s leads %v after it", old.ID, stopped.Round(time.Millisecond), leader.ID, took.Round(time.Millisecond))
	if ok, err := old.LogContains(1, "coordinator stopped"); err != nil || !ok {
		t.Errorf("%s did not log a clean stop (%v)", old.ID, err)
	}
	if ok, _ := old.LogContains(1, "leadership transfer"); ok {
		t.Errorf("%s logged a failed or abandoned leadership transfer", old.ID)
	}
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx, old); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "Follower" || st.LeaderID != leader.ID {
		t.Errorf("restarted %s is %s following %q, want Follower of %s", old.ID, st.State, st.LeaderID, leader.ID)
	}
}
