package clustertest_test

import (
	"bytes"
	"crypto/ed25519"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/protocol"
)

// TestRecoverFromSurvivor loses two of three real members for good (killed,
// never restarted) after a round was acknowledged and checkpointed. The
// survivor, a follower, is recovered offline with "mfn coordinator
// recover" into a one-member cluster and restarted with its usual flags:
// it leads alone, serves the round with every acknowledged update, an
// audit log whose leaves all verify, and accepts new writes.
func TestRecoverFromSurvivor(t *testing.T) {
	processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	const n, dim = 3, 100
	spec := testSpec("recover", dim, n, 2)
	c, leader, nodes := startCluster(ctx, t, n, 61, spec)
	r := waitOpen(t, ctx, c, spec.ID, 1)
	ups := makeUpdates(t, nodes, spec.ID, 1, r.BaseHash, dim, rand.New(rand.NewPCG(61, 61)))
	acks := map[string]protocol.Ack{}
	for i, rc := range submitAll(ctx, t, ups) {
		acks[ups[i].node.ID] = rc.Ack
	}
	if _, err := c.WaitRound(ctx, spec.ID, 1, "closed", roundEnded); err != nil {
		t.Fatal(err)
	}
	cp := waitCheckpoint(ctx, t, c, leader, n)
	survivor := c.Others(leader)[0]
	if _, err := c.WaitCaughtUp(ctx, survivor, 0, cp); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		if err := m.Kill(); err != nil {
			t.Fatal(err)
		}
	}

	out, errOut, err := c.MFN(ctx, "coordinator", "recover", "--data-dir", survivor.DataDir, "--dry-run")
	if err != nil || !strings.Contains(string(out), "last index") {
		t.Fatalf("dry run: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = c.MFN(ctx, "coordinator", "recover", "--data-dir", survivor.DataDir,
		"--log-verifier", c.LogVerifierFile, "--members", survivor.ID+"="+survivor.RaftAddr)
	if err != nil || !strings.Contains(string(out), "3 audit leaves, 1 jobs, 3 nodes; voters now: "+survivor.ID+"=") {
		t.Fatalf("recover: %v\n%s%s", err, out, errOut)
	}
	if err := survivor.Start(); err != nil {
		t.Fatal(err)
	}
	l, st, err := c.Leader(ctx, survivor)
	if err != nil || l != survivor {
		t.Fatalf("the recovered member does not lead: %v", err)
	}
	if len(st.Members) != 1 || st.Members[0].ID != survivor.ID {
		t.Fatalf("members after recovery: %+v", st.Members)
	}
	r1, err := c.API(survivor, c.ReaderKey).Round(ctx, spec.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkRound(t, r1, ups, acks)
	_, count := exportAndVerify(ctx, t, c, survivor, nodes)
	checkLeaves(t, count, spec.ID, 1, ups)
	// It commits alone: round 2 opens and a new node can be enrolled.
	waitOpen(t, ctx, c, spec.ID, 2)
	late := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{62}, 32)).Public().(ed25519.PublicKey)
	if _, err := c.API(survivor, c.OperatorKeys[0]).EnrollNode(ctx, "late", api.PublicKey(late)); err != nil {
		t.Fatal(err)
	}
}
