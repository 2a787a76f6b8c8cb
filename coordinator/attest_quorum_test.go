package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/raft"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/audit"
)

// skewableRules gives member i the default rules, skewed (skewedRule)
// while skewed holds its id.
func skewableRules(skewed *atomic.Value) func(i int) RuleFactory {
	return func(i int) RuleFactory {
		id := fmt.Sprintf("c%d", i)
		return func(spec RuleSpec) (aggregate.Rule, error) {
			r, err := DefaultRules(spec)
			if err == nil && skewed.Load() == id {
				return skewedRule{r}, nil
			}
			return r, err
		}
	}
}

// TestAttestQuorum: the strong form. A skewed follower cannot stop a
// round a quorum agrees on (it dissents after the close); a skewed leader
// cannot commit its model: the round fails naming the attestation, the
// job's model stays, and the job goes on to a round everyone agrees on.
func TestAttestQuorum(t *testing.T) {
	t.Parallel()
	var skewed atomic.Value
	skewed.Store("")
	tc := newTestCluster(t, 3, clusterOpts{attest: true, strong: true, rules: skewableRules(&skewed)})
	tc.registerAll()
	nodes := newTestNodes(t, 4, 3)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	const dim = 5
	spec := testSpec("job1", dim, 4, 4)
	spec.Rule = RuleSpec{Name: "trimmed-mean", F: 1}
	spec.Rounds = 3
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
		return tc.waitRound(li, "job1", n, RoundClosed, RoundFailed)
	}

	// Round 1: all agree; the close needed a quorum of derivations.
	r1 := runRound(1)
	if r1.State != RoundClosed || !r1.Attest || r1.Result.ResultLeaf == nil {
		t.Fatalf("round 1 %s %q attest %v", r1.State, r1.FailReason, r1.Attest)
	}
	leaf, err := l.Leaf(*r1.Result.ResultLeaf)
	if err != nil {
		t.Fatal(err)
	}
	h := Hash(sha256.Sum256(leaf))
	match := 0
	for _, d := range r1.Derivations {
		if !d.matches(h) || d.ModelHash != r1.Result.ModelHash {
			t.Fatalf("derivation %+v does not match the committed leaf", d)
		}
		match++
	}
	if match < 2 || !slices.ContainsFunc(r1.Derivations, func(d Derivation) bool { return d.Member == l.cfg.ID }) {
		t.Fatalf("round 1 closed with derivations %+v: want ≥ 2 including the leader's", r1.Derivations)
	}
	eventually(t, 20*time.Second, "3 cosignatures of round 1", func() bool {
		r, err := l.GetRound("job1", 1)
		return err == nil && len(r.Attested) == 3
	})

	// Round 2: a skewed follower. The quorum (leader + the other) closes
	// the round; the skewed member dissents, signed, and counts it.
	bad := (li + 1) % 3
	badID := tc.members[bad].cfg.ID
	skewed.Store(badID)
	r2 := runRound(2)
	if r2.State != RoundClosed {
		t.Fatalf("round 2 %s %q, want closed by the quorum", r2.State, r2.FailReason)
	}
	var got Round
	eventually(t, 20*time.Second, "round 2: 2 cosignatures and 1 dissent", func() bool {
		got, err = l.GetRound("job1", 2)
		return err == nil && len(got.Attested) == 2 && len(got.Dissents) == 1
	})
	if d := got.Dissents[0]; d.Member != badID || d.Recorded != r2.Result.ModelHash || d.Derived == d.Recorded ||
		!ed25519.Verify(tc.keys.coords[bad].PublicKey(), DissentMessage(tc.keys.origin, "job1", 2, &d), d.Signature) {
		t.Fatalf("dissent %+v", d)
	}
	if v := metricValue(t, tc.members[bad], "mfn_round_attestation_mismatch_total"); v != 1 {
		t.Fatalf("skewed member's mismatch counter %v, want 1", v)
	}

	// Round 3: the leader is skewed. Both followers' derivations differ
	// from its own: the round fails, no model or result leaf is committed.
	skewed.Store(l.cfg.ID)
	before := mustJob(t, l, "job1")
	r3 := runRound(3)
	if r3.State != RoundFailed || !strings.HasPrefix(r3.FailReason, "attestation: ") || r3.Result != nil {
		t.Fatalf("round 3 %s %q %+v, want failed by attestation", r3.State, r3.FailReason, r3.Result)
	}
	after := mustJob(t, l, "job1")
	if after.ModelVersion != before.ModelVersion || after.ModelHash != before.ModelHash || after.Completed != 2 {
		t.Fatalf("model moved on a failed round: %d %s → %d %s", before.ModelVersion, before.ModelHash, after.ModelVersion, after.ModelHash)
	}
	if v := metricValue(t, l, "mfn_round_attestation_mismatch_total"); v != 1 {
		t.Fatalf("leader's mismatch counter %v, want 1", v)
	}
	// Every replica recorded the followers' signed derivations.
	tc.waitApplied()
	for i, c := range tc.members {
		r, err := c.GetRound("job1", 3)
		if err != nil || len(r.Derivations) != 3 {
			st := c.Status()
			t.Fatalf("member %d (%s, leader %s, applied %d): round 3 %s %q, derivations %+v (%v); leader was %s",
				i, c.cfg.ID, st.LeaderID, st.AppliedIndex, r.State, r.FailReason, r.Derivations, err, l.cfg.ID)
		}
		for _, d := range r.Derivations {
			k := tc.keys.coords[slices.IndexFunc(tc.members, func(m *Coordinator) bool { return m.cfg.ID == d.Member })].PublicKey()
			if !ed25519.Verify(k, DerivationMessage(tc.keys.origin, "job1", 3, &d), d.Signature) {
				t.Fatalf("derivation by %s does not verify", d.Member)
			}
		}
	}

	// The job goes on (on_failure continue): round 4 closes unskewed.
	skewed.Store("")
	if r4 := runRound(4); r4.State != RoundClosed || r4.BaseHash != after.ModelHash {
		t.Fatalf("round 4 %s %q", r4.State, r4.FailReason)
	}
	eventually(t, 20*time.Second, "3 cosignatures of round 4", func() bool {
		r, err := l.GetRound("job1", 4)
		return err == nil && len(r.Attested) == 3
	})
	tc.waitApplied()
	dir := t.TempDir()
	if err := l.ExportAudit(dir); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyLogDir(dir, tc.keys.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Results != 3 {
		t.Fatalf("verify-log checked %d results, want 3 (rounds 1, 2, 4)", rep.Results)
	}
}

// blockingRule holds Aggregate until release is closed.
type blockingRule struct {
	aggregate.Rule
	release <-chan struct{}
}

func (r blockingRule) Aggregate(vecs [][]float64, w []float64) ([]float64, aggregate.Report, error) {
	<-r.release
	return r.Rule.Aggregate(vecs, w)
}

// TestAttestQuorumLeaderChange: the leader seals a round but cannot
// derive it (its rule blocks); leadership moves, and the new leader
// closes the round with the derivations already recorded.
func TestAttestQuorumLeaderChange(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	var blocked atomic.Value
	blocked.Store("")
	tc := newTestCluster(t, 3, clusterOpts{attest: true, strong: true, rules: func(i int) RuleFactory {
		id := fmt.Sprintf("c%d", i)
		return func(spec RuleSpec) (aggregate.Rule, error) {
			r, err := DefaultRules(spec)
			if err == nil && blocked.Load() == id {
				return blockingRule{r, release}, nil
			}
			return r, err
		}
	}})
	tc.registerAll()
	nodes := newTestNodes(t, 3, 4)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	blocked.Store(l.cfg.ID)
	ctx := context.Background()
	spec := testSpec("job1", 3, 3, 3)
	spec.Rounds = 1
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r := tc.waitRound(li, "job1", 1, RoundOpen)
	for i, nd := range nodes {
		if _, err := l.Submit(ctx, nd.pub(), nd.seal(t, tc.keys, "job1", 1, r.BaseHash, testUpdate(i, 3), 5)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "both followers' derivations of the sealed round", func() bool {
		r, err := l.GetRound("job1", 1)
		return err == nil && r.State == RoundClosing && len(r.Derivations) == 2
	})
	if err := l.raft.LeadershipTransfer().Error(); err != nil {
		t.Fatal(err)
	}
	ni := -1
	eventually(t, 20*time.Second, "a new leader", func() bool {
		for i, c := range tc.members {
			if i != li && c.IsLeader() {
				ni = i
				return true
			}
		}
		return false
	})
	closed := tc.waitRound(ni, "job1", 1, RoundClosed, RoundFailed)
	if closed.State != RoundClosed || closed.Result.ResultLeaf == nil {
		t.Fatalf("round %s %q after the leader change", closed.State, closed.FailReason)
	}
	if slices.ContainsFunc(closed.Derivations, func(d Derivation) bool { return d.Member == l.cfg.ID }) {
		t.Fatal("the blocked old leader's derivation is recorded")
	}
	unblock() // the old leader derives the same and cosigns
	eventually(t, 20*time.Second, "3 cosignatures after the leader change", func() bool {
		r, err := tc.members[ni].GetRound("job1", 1)
		return err == nil && len(r.Attested) == 3 && len(r.Dissents) == 0
	})
}

// TestFSMAttestQuorum: every replica refuses to close a strong-form round
// without a quorum of matching, signed derivations, and records them
// deterministically.
func TestFSMAttestQuorum(t *testing.T) {
	b := newLogBuilder(t)
	b.keys = newTestKeys(t, 3, 7)
	for i, k := range b.keys.coords {
		b.add(cmdRegisterMember, &registerMemberCmd{Member: Member{ID: fmt.Sprintf("c%d", i), RaftAddr: fmt.Sprintf("r%d", i), PublicKey: k.PublicKey()}})
	}
	for _, n := range b.nodes[:3] {
		b.add(cmdEnrollNode, &enrollNodeCmd{ID: n.id, PublicKey: n.pub(), At: b.at})
	}
	spec := testSpec("alpha", 3, 3, 3)
	b.add(cmdCreateJob, &createJobCmd{Spec: spec, At: b.at})
	base := ModelHash(make(Params, 3))
	b.add(cmdOpenRound, &openRoundCmd{Job: "alpha", Round: 1, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	vals := map[string][]float64{}
	for i, n := range b.nodes[:3] {
		vals[n.id] = []float64{float64(i), 1, 2}
		b.add(cmdAddUpdate, b.update(n, "alpha", 1, base, vals[n.id]))
	}
	b.add(cmdSealRound, &sealRoundCmd{Job: "alpha", Round: 1, At: b.at, Attest: true})
	f := replay(t, b.keys, b.entries)
	r, err := f.round("alpha", 1, true)
	if err != nil || !r.Attest || r.State != RoundClosing {
		t.Fatalf("sealed round %+v %v", r, err)
	}
	j, _ := f.job("alpha")
	d := deriveRound(b.keys.origin, j, r, make(Params, 3), DefaultRules, nil, func(u Update) ([]float64, error) { return vals[u.Node], nil })
	if d.fail != "" {
		t.Fatal(d.fail)
	}
	d.result.ModelVersion = 1
	closeCmd := func(leaf []byte) *closeRoundCmd {
		return &closeRoundCmd{Job: "alpha", Round: 1, Updates: 3, Outcomes: d.outcomes, Model: d.model, Result: d.result, ResultLeaf: leaf, At: b.at}
	}
	sign := func(i int, x Derivation) *Attestation {
		x.Member = fmt.Sprintf("c%d", i)
		x.Signature = ed25519.Sign(b.keys.coords[i].SigningKey, DerivationMessage(b.keys.origin, "alpha", 1, &x))
		return &Attestation{Job: "alpha", Round: 1, Member: x.Member, Derived: &x}
	}
	good := Derivation{LeafHash: Hash(sha256.Sum256(d.leaf)), ModelHash: d.result.ModelHash}
	other := Derivation{LeafHash: Hash{1}, ModelHash: Hash{2}}
	forged := sign(2, good)
	forged.Derived.Signature[0] ^= 1
	steps := []struct {
		name string
		t    commandType
		body any
		want error
	}{
		{"close without derivations", cmdCloseRound, closeCmd(d.leaf), ErrInvalid},
		{"c0 derives", cmdAttest, sign(0, good), nil},
		{"close with 1 of 3", cmdCloseRound, closeCmd(d.leaf), ErrInvalid},
		{"c1 derives otherwise", cmdAttest, sign(1, other), nil},
		{"c1 again", cmdAttest, sign(1, good), ErrStale},
		{"forged c2", cmdAttest, forged, ErrInvalid},
		{"c2 derives", cmdAttest, sign(2, good), nil},
		{"close without a leaf", cmdCloseRound, closeCmd(nil), ErrInvalid},
		{"close with 2 of 3", cmdCloseRound, closeCmd(d.leaf), nil},
		{"derivation after the close", cmdAttest, sign(1, good), ErrStale},
	}
	for _, s := range steps {
		e, err := encodeCommand(s.t, s.body)
		if err != nil {
			t.Fatal(err)
		}
		b.entries = append(b.entries, e)
		res := f.Apply(&raft.Log{Index: uint64(len(b.entries)), Type: raft.LogCommand, Data: e}).(*applyResult)
		if (s.want == nil) != (res.err == nil) || (s.want != nil && !errors.Is(res.err, s.want)) {
			t.Fatalf("%s: %v, want %v", s.name, res.err, s.want)
		}
	}
	r, _ = f.round("alpha", 1, false)
	if r.State != RoundClosed || len(r.Derivations) != 3 || r.Derivations[1].LeafHash != other.LeafHash {
		t.Fatalf("closed round %+v", r)
	}
	if !bytes.Equal(snapshotBytes(t, f), snapshotBytes(t, replay(t, b.keys, b.entries))) {
		t.Fatal("replaying the log gives another state")
	}
}

// TestRoundArchives: every member writes the same archive of each closed
// round; it replays (audit.Replay with a coordinator key) to the
// committed model, and only the newest ArchiveKeep stay on disk.
func TestRoundArchives(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{attest: true, strong: true, archiveKeep: 2})
	tc.registerAll()
	nodes := newTestNodes(t, 3, 6)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	spec := testSpec("arch", 4, 3, 3)
	spec.Rule = RuleSpec{Name: "krum", F: 0}
	spec.Rounds = 3
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	var closed []Round
	for n := uint64(1); n <= 3; n++ {
		r := tc.waitRound(li, "arch", n, RoundOpen)
		for i, nd := range nodes {
			if _, err := l.Submit(ctx, nd.pub(), nd.seal(t, tc.keys, "arch", n, r.BaseHash, testUpdate(i+int(n), 4), 7)); err != nil {
				t.Fatal(err)
			}
		}
		r = tc.waitRound(li, "arch", n, RoundClosed, RoundFailed)
		if r.State != RoundClosed {
			t.Fatalf("round %d %s %q", n, r.State, r.FailReason)
		}
		closed = append(closed, r)
		eventually(t, 20*time.Second, fmt.Sprintf("every member archived round %d", n), func() bool {
			for _, c := range tc.members {
				p, _ := c.ArchivePath("arch", n)
				if _, err := os.Stat(p); err != nil {
					return false
				}
			}
			return true
		})
	}
	var first []byte
	for i, c := range tc.members {
		p1, _ := c.ArchivePath("arch", 1)
		if _, err := os.Stat(p1); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("member %d kept round 1's archive beyond ArchiveKeep 2 (%v)", i, err)
		}
		p, _ := c.ArchivePath("arch", 3)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatalf("member %d's archive of round 3 differs from member 0's", i)
		}
	}
	a, err := audit.ReadRoundArchiveTar(bytes.NewReader(first), audit.ArchiveLimits{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Replay(a, []age.Identity{tc.keys.coords[1].Age}, audit.ArchiveLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if Hash(rep.NewHash) != closed[2].Result.ModelHash || rep.Inputs != 3 {
		t.Fatalf("replay: model %x over %d inputs, round 3 committed %s", rep.NewHash, rep.Inputs, closed[2].Result.ModelHash)
	}
}
