package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/privacy"
)

// skewedRule is the test hook in a member's rule registry: it runs the
// real rule and then moves the aggregate's first value, so that member's
// re-derivation differs from the others'. Never used outside tests.
type skewedRule struct{ aggregate.Rule }

func (r skewedRule) Aggregate(vecs [][]float64, w []float64) ([]float64, aggregate.Report, error) {
	out, rep, err := r.Rule.Aggregate(vecs, w)
	if err == nil && len(out) > 0 {
		out[0] += 1e-3
	}
	return out, rep, err
}

// registerAll records every member (with its key) in the replicated
// member list, as learnMembers does in a real cluster.
func (tc *testCluster) registerAll() {
	tc.t.Helper()
	l := tc.members[tc.leader()]
	for i, c := range tc.members {
		m := Member{ID: c.cfg.ID, RaftAddr: c.cfg.RaftAddr, PublicKey: tc.keys.coords[i].PublicKey()}
		if _, err := l.propose(context.Background(), cmdRegisterMember, &registerMemberCmd{Member: m}); err != nil {
			tc.t.Fatal(err)
		}
	}
}

func TestRoundAttestation(t *testing.T) {
	t.Parallel()
	var skewed atomic.Value // the id of the member whose rule is skewed
	skewed.Store("")
	tc := newTestCluster(t, 3, clusterOpts{attest: true, rules: func(i int) RuleFactory {
		id := fmt.Sprintf("c%d", i)
		return func(spec RuleSpec) (aggregate.Rule, error) {
			r, err := DefaultRules(spec)
			if err == nil && skewed.Load() == id {
				return skewedRule{r}, nil
			}
			return r, err
		}
	}})
	tc.registerAll()
	nodes := newTestNodes(t, 4, 3)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	const dim = 5
	spec := testSpec("job1", dim, 4, 4)
	spec.Rule = RuleSpec{Name: "trimmed-mean", F: 1}
	spec.Rounds = 4
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	runRound := func(n uint64) Round {
		t.Helper()
		r := tc.waitRound(li, "job1", n, RoundOpen)
		for i, nd := range nodes {
			if _, err := l.Submit(ctx, nd.pub(), nd.seal(t, tc.keys, "job1", n, r.BaseHash, testUpdate(i+int(n), dim), 10)); err != nil {
				t.Fatalf("round %d node %s: %v", n, nd.id, err)
			}
		}
		got := tc.waitRound(li, "job1", n, RoundClosed, RoundFailed)
		if got.State != RoundClosed {
			t.Fatalf("round %d %s: %s", n, got.State, got.FailReason)
		}
		return got
	}
	members := l.MemberKeys()
	if len(members) != 3 {
		t.Fatalf("member keys %v, want 3", members)
	}

	// Round 1: every member derives the same result and cosigns it.
	r1 := runRound(1)
	if r1.Result.ResultLeaf == nil {
		t.Fatal("round 1 closed without a result leaf")
	}
	idx := *r1.Result.ResultLeaf
	eventually(t, 20*time.Second, "3 attestations of round 1 on every member", func() bool {
		for _, c := range tc.members {
			r, err := c.GetRound("job1", 1)
			if err != nil || len(r.Attested) != 3 {
				return false
			}
		}
		return true
	})
	tc.waitApplied()
	leaf0, err := tc.members[0].Leaf(idx)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range tc.members {
		b, err := c.Leaf(idx)
		if err != nil || string(b) != string(leaf0) {
			t.Fatalf("member %d: result leaf differs (%v)", i, err)
		}
	}
	res, err := audit.ParseResultLeaf(leaf0)
	if err != nil {
		t.Fatal(err)
	}
	// The leaf says what the round record says.
	if res.JobID != "job1" || res.Round != 1 || res.Rule != r1.Result.Rule || Hash(res.NewHash) != r1.Result.ModelHash ||
		Hash(res.BaseHash) != r1.BaseHash || res.Params != "f=1" || res.Weighting != audit.WeightSamples || len(res.Entries) != len(r1.Updates) {
		t.Fatalf("result leaf %+v does not match round %+v", res, r1.Result)
	}
	used := 0
	for i, e := range res.Entries {
		u := r1.Updates[i]
		if e.LeafIndex != u.LeafIndex || e.Used != u.Used || !e.Input || (!e.Used && e.Reason != u.Reason) {
			t.Fatalf("entry %d %+v, update %+v", i, e, u)
		}
		if e.Used {
			used++
		}
	}
	if used != r1.Result.Used {
		t.Fatalf("leaf uses %d updates, round record %d", used, r1.Result.Used)
	}
	cp, err := l.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := audit.VerifyQuorum(cp.Note, members)
	if err != nil || len(cs) != 3 {
		t.Fatalf("newest checkpoint: %d cosignatures (%v), want 3", len(cs), err)
	}
	if got := metricValue(t, l, "mfn_round_attestation_mismatch_total"); got != 0 {
		t.Fatalf("mismatches %v after an agreed round", got)
	}

	// Round 2: one follower's rule is skewed: it records a signed dissent
	// and raises its mismatch counter; the others still cosign.
	bad := (li + 1) % 3
	badID := tc.members[bad].cfg.ID
	skewed.Store(badID)
	r2 := runRound(2)
	var got Round
	eventually(t, 20*time.Second, "round 2: 2 attestations and 1 dissent", func() bool {
		got, err = l.GetRound("job1", 2)
		return err == nil && len(got.Attested) == 2 && len(got.Dissents) == 1
	})
	d := got.Dissents[0]
	if d.Member != badID || slices.Contains(got.Attested, badID) || d.Recorded != r2.Result.ModelHash || d.Derived == d.Recorded || d.ResultLeaf != *r2.Result.ResultLeaf {
		t.Fatalf("dissent %+v (attested %v)", d, got.Attested)
	}
	if !ed25519.Verify(tc.keys.coords[bad].PublicKey(), DissentMessage(tc.keys.origin, "job1", 2, &d), d.Signature) {
		t.Fatal("dissent signature does not verify")
	}
	if v := metricValue(t, tc.members[bad], "mfn_round_attestation_mismatch_total"); v != 1 {
		t.Fatalf("dissenting member's mismatch counter %v, want 1", v)
	}

	// The export verifies offline with the members' keys: both results
	// have a quorum of cosignatures.
	tc.waitApplied()
	dir := t.TempDir()
	if err := l.ExportAudit(dir); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyLogDir(dir, tc.keys.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Results != 2 {
		t.Fatalf("verify-log checked %d results, want 2", rep.Results)
	}

	// Round 3: the leader's own rule is skewed (a faulty or compromised
	// leader). The model is committed (weak form), but both followers
	// dissent: the job fails naming the round instead of training on,
	// and the result lacks a quorum, so verify-log names it.
	skewed.Store(l.cfg.ID)
	r3 := runRound(3)
	eventually(t, 20*time.Second, "round 3: 1 attestation and 2 dissents", func() bool {
		got, err = l.GetRound("job1", 3)
		return err == nil && len(got.Attested) == 1 && len(got.Dissents) == 2
	})
	if got.Attested[0] != l.cfg.ID || r3.Result.ResultLeaf == nil {
		t.Fatalf("round 3 attested by %v, want only the leader %s", got.Attested, l.cfg.ID)
	}
	var job Job
	eventually(t, 20*time.Second, "the job fails after the disputed round", func() bool {
		job, err = l.GetJob("job1")
		return err == nil && job.State == JobFailed
	})
	if job.Completed != 3 || !strings.Contains(job.Reason, "round 3 disputed") {
		t.Fatalf("job %s after %d rounds: %q", job.State, job.Completed, job.Reason)
	}
	if r4, err := l.GetRound("job1", 4); err == nil && r4.State == RoundClosed {
		t.Fatal("round 4 closed on a disputed model")
	}
	tc.waitApplied()
	dir3 := t.TempDir()
	if err := l.ExportAudit(dir3); err != nil {
		t.Fatal(err)
	}
	_, err = audit.VerifyLogDir(dir3, tc.keys.verifier, nil)
	var re *audit.RoundError
	if !errors.Is(err, audit.ErrQuorum) || !errors.As(err, &re) || re.Round != 3 || re.Index != *r3.Result.ResultLeaf {
		t.Fatalf("verify-log with a disputed round 3: %v, want ErrQuorum naming round 3", err)
	}
}

func TestAttestationRejected(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 1, clusterOpts{attest: true})
	tc.registerAll()
	nodes := newTestNodes(t, 2, 5)
	tc.enroll(nodes)
	l := tc.members[0]
	ctx := context.Background()
	if _, err := l.CreateJob(ctx, testSpec("job1", 3, 2, 2)); err != nil {
		t.Fatal(err)
	}
	r := tc.waitRound(0, "job1", 1, RoundOpen)
	for i, nd := range nodes {
		if _, err := l.Submit(ctx, nd.pub(), nd.seal(t, tc.keys, "job1", 1, r.BaseHash, testUpdate(i, 3), 1)); err != nil {
			t.Fatal(err)
		}
	}
	tc.waitRound(0, "job1", 1, RoundClosed)
	eventually(t, 10*time.Second, "the member attests round 1", func() bool {
		r, err := l.GetRound("job1", 1)
		return err == nil && len(r.Attested) == 1
	})
	cp, err := l.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	line, err := audit.CosignCheckpoint(cp.Note, tc.keys.verifier, "c0", tc.keys.coords[0].SigningKey, time.Unix(1e9, 0))
	if err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		a    Attestation
		want error
	}{
		"twice":          {Attestation{Job: "job1", Round: 1, Member: "c0", Checkpoint: cp.Size, Cosignature: line}, ErrStale},
		"unknown member": {Attestation{Job: "job1", Round: 1, Member: "c9", Checkpoint: cp.Size, Cosignature: line}, ErrNotFound},
		"open round":     {Attestation{Job: "job1", Round: 2, Member: "c0", Checkpoint: cp.Size, Cosignature: line}, ErrStale},
		"long line":      {Attestation{Job: "job1", Round: 1, Member: "c0", Checkpoint: cp.Size, Cosignature: make([]byte, maxCosignatureLine+1)}, ErrInvalid},
		"long reason": {Attestation{Job: "job1", Round: 1, Member: "c0", Dissent: &Dissent{Member: "c0", Reason: strings.Repeat("x", maxDissentReason+1),
			Signature: make([]byte, ed25519.SignatureSize)}}, ErrInvalid},
	} {
		err := l.SubmitAttestation(ctx, &tt.a)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", name, err, tt.want)
		}
	}
}

// TestAttestQueueBound: the queue of rounds to re-derive never holds
// more than attestQueue; one more is dropped, not blocking Apply.
func TestAttestQueueBound(t *testing.T) {
	c := &Coordinator{attestQ: make(chan *attestTask, attestQueue), logger: newTestLogger(t, slog.LevelError), fsm: &fsm{blobs: newBlobStore("")}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range attestQueue + 1 {
			c.enqueueAttest(&attestTask{job: Job{Spec: JobSpec{ID: "j"}}, round: Round{Number: uint64(i + 1)}})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("enqueueAttest blocked on a full queue")
	}
	if n := len(c.attestQ); n != attestQueue {
		t.Fatalf("queue holds %d, want %d", n, attestQueue)
	}
	if first := <-c.attestQ; first.round.Number != 1 {
		t.Fatalf("first queued round %d, want 1 (the overflow is the one dropped)", first.round.Number)
	}
}

// TestAttestationCentralDP: members re-derive a central DP round's noise
// from the job's secret and cosign it; the leaf commits to the seed.
func TestAttestationCentralDP(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{attest: true})
	tc.registerAll()
	nodes := newTestNodes(t, 3, 9)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	spec := dpSpec("central", 4, 0.5, 0)
	spec.DP.Mode = privacy.ModeCentral
	spec.Rounds, spec.MinUpdates, spec.MaxUpdates = 1, 3, 3
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	open := tc.waitRound(li, "central", 1, RoundOpen)
	ups := [][]float64{{3, 4, 0, 0}, {0.25, 0, 0.5, 0}, {-0.5, 0.5, 0, 0.25}}
	for i, n := range nodes {
		if _, err := l.Submit(ctx, n.pub(), n.seal(t, tc.keys, "central", 1, open.BaseHash, ups[i], uint64(10*(i+1)))); err != nil {
			t.Fatal(err)
		}
	}
	r := tc.waitRound(li, "central", 1, RoundClosed, RoundFailed)
	if r.State != RoundClosed || r.Result.ResultLeaf == nil {
		t.Fatalf("round %s %q: %+v", r.State, r.FailReason, r.Result)
	}
	eventually(t, 20*time.Second, "3 attestations of the central DP round", func() bool {
		got, err := l.GetRound("central", 1)
		return err == nil && len(got.Attested) == 3 && len(got.Dissents) == 0
	})
	b, err := l.Leaf(*r.Result.ResultLeaf)
	if err != nil {
		t.Fatal(err)
	}
	res, err := audit.ParseResultLeaf(b)
	if err != nil {
		t.Fatal(err)
	}
	j := mustJob(t, l, "central") // ended: the secret is shown
	seed := privacy.DeriveSeed(j.Privacy.Secret, "central", 1)
	if want := sha256.Sum256(seed[:]); !bytes.Equal(res.NoiseCommitment, want[:]) || res.Rule != centralRule || res.Weighting != audit.WeightEqual {
		t.Fatalf("leaf rule %q weighting %d noise %x, want %s, equal, %x", res.Rule, res.Weighting, res.NoiseCommitment, centralRule, want)
	}
}
