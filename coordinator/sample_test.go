package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/privacy"
	"github.com/mfn/mfn/protocol"
)

// sampledLog is a log with 5 enrolled nodes and a local DP job sampling
// them at rate q with a fixed secret.
func sampledLog(t testing.TB, q float64) (*logBuilder, []byte) {
	b := newLogBuilder(t)
	b.add(cmdRegisterMember, &registerMemberCmd{Member: Member{ID: "c0", RaftAddr: "r0", PublicKey: b.keys.coords[0].PublicKey()}})
	for _, n := range b.nodes {
		b.add(cmdEnrollNode, &enrollNodeCmd{ID: n.id, PublicKey: n.pub(), At: b.at})
	}
	spec := dpSpec("sampled", 3, 1.5, 0)
	spec.DP.SampleRate = q
	secret := bytes.Repeat([]byte{7}, dpSecretLen)
	b.add(cmdCreateJob, &createJobCmd{Spec: spec, At: b.at, DPSecret: secret})
	return b, secret
}

func (b *logBuilder) nodeIDs() []string {
	ids := make([]string, len(b.nodes))
	for i, n := range b.nodes {
		ids[i] = n.id
	}
	return ids
}

// TestSampleApply: the open-round entry's sample must be the one the
// state gives (every replica recomputes it), and only sampled nodes'
// updates apply.
func TestSampleApply(t *testing.T) {
	const q = 0.5
	b, secret := sampledLog(t, q)
	base := ModelHash(Params{0, 0, 0})
	open := func(round uint64) *openRoundCmd {
		return &openRoundCmd{Job: "sampled", Round: round, BaseVersion: 0, BaseHash: base, OpenedAt: b.at,
			Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)}
	}
	// Without a sample, and with a forged one, the entry is refused.
	b.add(cmdOpenRound, open(1))
	f := replay(t, b.keys, b.entries)
	if j, _ := f.job("sampled"); j.Rounds != 0 {
		t.Fatal("a sampled job's round opened without a sample")
	}
	seed := privacy.SampleSeed(secret, "sampled", 1, base)
	sample := privacy.Sample(seed, b.nodeIDs(), q)
	if len(sample) == 0 || len(sample) == len(b.nodes) {
		t.Fatalf("the fixed secret samples %d of %d nodes; pick another for a useful test", len(sample), len(b.nodes))
	}
	forged := open(1)
	h := Hash(seed)
	forged.SampleSeed, forged.Sample, forged.Population = &h, b.nodeIDs(), len(b.nodes)
	b.entries = b.entries[:len(b.entries)-1]
	b.add(cmdOpenRound, forged)
	if f = replay(t, b.keys, b.entries); mustFSMJob(t, f, "sampled").Rounds != 0 {
		t.Fatal("a forged sample (every node) was applied")
	}
	// The leader's own computation is the state's.
	b.entries = b.entries[:len(b.entries)-1]
	good := open(1)
	f.sampleFor(good)
	if good.SampleSeed == nil || *good.SampleSeed != h || !slices.Equal(good.Sample, sample) || good.Population != len(b.nodes) {
		t.Fatalf("sampleFor gave %x %q %d, want %x %q %d", good.SampleSeed, good.Sample, good.Population, h, sample, len(b.nodes))
	}
	b.add(cmdOpenRound, good)
	var in, out *testNode
	for _, n := range b.nodes {
		if slices.Contains(sample, n.id) {
			in = n
		} else {
			out = n
		}
	}
	b.add(cmdAddUpdate, b.update(out, "sampled", 1, base, []float64{1, 0, 0}))
	b.add(cmdAddUpdate, b.update(in, "sampled", 1, base, []float64{0, 1, 0}))
	f1, f2 := replay(t, b.keys, b.entries), replay(t, b.keys, b.entries)
	r, err := f1.round("sampled", 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Updates) != 1 || r.Updates[0].Node != in.id {
		t.Fatalf("round updates %+v, want only %s's", r.Updates, in.id)
	}
	if *r.SampleSeed != h || !slices.Equal(r.Sample, sample) || r.Population != len(b.nodes) {
		t.Fatalf("round sample %x %q %d", r.SampleSeed, r.Sample, r.Population)
	}
	if !bytes.Equal(snapshotBytes(t, f1), snapshotBytes(t, f2)) {
		t.Fatal("replicas differ")
	}
	err = f1.precheck("sampled", 1, out.id, base)
	if !errors.Is(err, ErrNotSampled) {
		t.Fatalf("unsampled precheck: %v", err)
	}
	if pe := ProtocolError(err); pe.Code != protocol.CodeRoundClosed {
		t.Fatalf("protocol code %v", pe.Code)
	}
	if rejectReason(err) != "not_sampled" {
		t.Fatalf("metric label %q", rejectReason(err))
	}
	// A job without sampling refuses a sample in its entries.
	plain := dpSpec("plain", 3, 1.5, 0)
	b.add(cmdCreateJob, &createJobCmd{Spec: plain, At: b.at})
	po := open(1)
	po.Job, po.SampleSeed, po.Sample, po.Population = "plain", &h, sample, len(b.nodes)
	b.add(cmdOpenRound, po)
	if f = replay(t, b.keys, b.entries); mustFSMJob(t, f, "plain").Rounds != 0 {
		t.Fatal("a job without sampling took a sample")
	}
	// A sampled job needs its secret in the entry.
	ns := dpSpec("nosecret", 3, 1.5, 0)
	ns.DP.SampleRate = 0.5
	b.add(cmdCreateJob, &createJobCmd{Spec: ns, At: b.at})
	if _, ok := replay(t, b.keys, b.entries).job("nosecret"); ok {
		t.Fatal("a sampled job without a secret was created")
	}
}

func mustFSMJob(t testing.TB, f *fsm, id string) Job {
	t.Helper()
	j, ok := f.job(id)
	if !ok {
		t.Fatalf("no job %s", id)
	}
	return j
}

// TestSampledCentralAdaptive runs a central DP job with node sampling and
// adaptive clipping on 3 members that attest every round. It checks that
// every member records the same sample, the one an auditor recomputes
// from the revealed secret; that an unsampled node is refused and is not
// told of the round; that every member re-derives each round bit for bit
// (no dissent); that an auditor with the secret and the updates
// recomputes each model, the clip steps and the recorded commitments; and
// that the accountant composed at q.
func TestSampledCentralAdaptive(t *testing.T) {
	t.Parallel()
	const q, z, countNoise, nNodes, dim = 0.5, 1.0, 2.0, 12, 4
	tc := newTestCluster(t, 3, clusterOpts{attest: true})
	tc.registerAll()
	nodes := newTestNodes(t, nNodes, 21)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	spec := dpSpec("sac", dim, z, 0)
	spec.DP.Mode = privacy.ModeCentral
	spec.DP.SampleRate = q
	spec.DP.Clip = 0.5
	spec.DP.AdaptiveClip = &privacy.AdaptiveClipConfig{TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: countNoise}
	spec.Rounds, spec.MinUpdates, spec.MaxUpdates = 2, 1, nNodes
	spec.RoundDeadline = Duration(500 * time.Millisecond)
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// Node i's update has norm 0.1·(i+1): some within the clip, some not
	// (float32-exact values).
	vec := func(i int) []float64 { return []float64{0.125 * float64(i+1), 0, 0, 0} }
	byID := map[string][]float64{}
	for i, n := range nodes {
		byID[n.id] = vec(i)
	}
	var rounds []Round
	for r := uint64(1); r <= 2; r++ {
		var open Round
		eventually(t, 20*time.Second, "round to open", func() bool {
			got, err := l.GetRound("sac", r)
			if err == nil && got.State == RoundFailed {
				t.Fatalf("round %d failed: %s", r, got.FailReason)
			}
			open = got
			return err == nil && got.State != ""
		})
		if open.SampleSeed == nil || open.Population != nNodes {
			t.Fatalf("round %d: sample %x of %d", r, open.SampleSeed, open.Population)
		}
		// The announcement names exactly the sampled nodes' keys.
		anns := l.OpenRounds()
		if len(anns) != 1 || len(anns[0].Nodes) != len(open.Sample) {
			t.Fatalf("round %d: announcements %+v, sample %q", r, anns, open.Sample)
		}
		for _, n := range nodes {
			told := slices.ContainsFunc(anns[0].Nodes, func(k ed25519.PublicKey) bool { return k.Equal(n.pub()) })
			if told != slices.Contains(open.Sample, n.id) {
				t.Fatalf("round %d: node %s told %v, sampled %v", r, n.id, told, !told)
			}
		}
		for _, n := range nodes {
			_, err := l.Submit(ctx, n.pub(), n.seal(t, tc.keys, "sac", r, open.BaseHash, byID[n.id], 10))
			switch in := slices.Contains(open.Sample, n.id); {
			case !in && !errors.Is(err, ErrNotSampled):
				t.Fatalf("round %d: unsampled %s: %v", r, n.id, err)
			case in && err != nil:
				t.Fatalf("round %d: sampled %s: %v", r, n.id, err)
			}
		}
		tc.clock.Advance(time.Second) // past the soft deadline: the round closes with every sampled update
		got := tc.waitRound(li, "sac", r, RoundClosed, RoundFailed)
		if got.State != RoundClosed {
			t.Fatalf("round %d %s: %s", r, got.State, got.FailReason)
		}
		eventually(t, 20*time.Second, "3 attestations", func() bool {
			a, err := l.GetRound("sac", r)
			if err == nil && len(a.Dissents) > 0 {
				t.Fatalf("round %d dissents: %+v", r, a.Dissents)
			}
			return err == nil && len(a.Attested) == 3
		})
		got, _ = l.GetRound("sac", r)
		rounds = append(rounds, got)
		// Every member holds the same sample.
		for i, m := range tc.members {
			var mr Round
			eventually(t, 10*time.Second, "member caught up", func() bool {
				var err error
				mr, err = m.GetRound("sac", r)
				return err == nil && mr.State == RoundClosed
			})
			if *mr.SampleSeed != *got.SampleSeed || !slices.Equal(mr.Sample, got.Sample) || mr.Population != got.Population {
				t.Fatalf("member %d's sample differs in round %d", i, r)
			}
		}
	}
	var j Job
	eventually(t, 10*time.Second, "the job to complete", func() bool {
		j = mustJob(t, l, "sac")
		return j.State == JobCompleted
	})
	secret := j.Privacy.Secret
	if len(secret) != dpSecretLen {
		t.Fatalf("secret %x", secret)
	}
	// The auditor's recomputation.
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.id
	}
	zd, err := privacy.UpdateNoiseMultiplier(z, countNoise)
	if err != nil {
		t.Fatal(err)
	}
	model := make([]float64, dim)
	clip := spec.DP.Clip
	for _, r := range rounds {
		seed := privacy.SampleSeed(secret, "sac", r.Number, r.BaseHash)
		if Hash(seed) != *r.SampleSeed || !slices.Equal(privacy.Sample(seed, ids, q), r.Sample) {
			t.Fatalf("round %d: the recorded sample is not the secret's", r.Number)
		}
		if r.Clip != clip {
			t.Fatalf("round %d clip %v, want %v", r.Number, r.Clip, clip)
		}
		var vecs [][]float64
		unclipped := 0
		for _, u := range r.Updates {
			if !slices.Contains(r.Sample, u.Node) {
				t.Fatalf("round %d accepted unsampled %s", r.Number, u.Node)
			}
			v := byID[u.Node]
			vecs = append(vecs, v)
			if n, _ := privacy.L2Norm(v); n <= clip {
				unclipped++
			}
		}
		expected := q * nNodes
		ac := privacy.AdaptiveClip{Clip: clip, TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: countNoise}
		frac, err := ac.Update(unclipped, len(vecs), expected,
			privacy.NewSeededSource(privacy.DeriveSeed(secret, "sac\x00adaptive-clip-count", r.Number)))
		if err != nil {
			t.Fatal(err)
		}
		if r.ClipStep == nil || r.ClipStep.Fraction != frac || r.ClipStep.Next != ac.Clip {
			t.Fatalf("round %d clip step %+v, want fraction %v next %v", r.Number, r.ClipStep, frac, ac.Clip)
		}
		mech, err := privacy.NewCentral(clip, zd, expected)
		if err != nil {
			t.Fatal(err)
		}
		mean, _, err := mech.Mean(vecs, privacy.NewSeededSource(privacy.DeriveSeed(secret, "sac", r.Number)))
		if err != nil {
			t.Fatal(err)
		}
		for i := range model {
			model[i] += mean[i]
		}
		if ModelHash(model) != r.Result.ModelHash {
			t.Fatalf("round %d: recomputed model differs from the recorded one", r.Number)
		}
		b, err := l.Leaf(*r.Result.ResultLeaf)
		if err != nil {
			t.Fatal(err)
		}
		res, err := audit.ParseResultLeaf(b)
		if err != nil {
			t.Fatal(err)
		}
		ns := privacy.DeriveSeed(secret, "sac", r.Number)
		h := sha256.Sum256(ns[:])
		want := binary.BigEndian.AppendUint64(h[:], math.Float64bits(frac))
		want = binary.BigEndian.AppendUint64(want, math.Float64bits(ac.Clip))
		if !bytes.Equal(res.NoiseCommitment, want) {
			t.Fatalf("round %d commitment %x, want %x", r.Number, res.NoiseCommitment, want)
		}
		clip = ac.Clip
	}
	if j.Privacy.Clip != clip {
		t.Fatalf("job clip %v, want %v", j.Privacy.Clip, clip)
	}
	eps, _, err := privacy.Epsilon(q, z, 2, spec.DP.Delta)
	if err != nil || j.Privacy.EpsilonSpent != eps || j.Privacy.SampleRate != q {
		t.Fatalf("ε %v at q %v, want %v at %v (%v)", j.Privacy.EpsilonSpent, j.Privacy.SampleRate, eps, q, err)
	}
}

// TestAdaptiveClipJobConverges drives a central job's round derivation
// (centralRound, the function leader and members run) for 300 rounds of
// about 50 sampled updates whose norms are log-normal with median 2,
// feeding each round's clip step into the next round as Apply does: the
// clip starts at 0.1 and must end near the median (the target quantile
// 0.5), and each step must move towards it.
func TestAdaptiveClipJobConverges(t *testing.T) {
	const median, pop, q, dim = 2.0, 1000, 0.05, 8
	spec := dpSpec("ac", dim, 1, 0)
	spec.DP.Mode = privacy.ModeCentral
	spec.DP.Clip = 0.1
	spec.DP.SampleRate = q
	spec.DP.AdaptiveClip = &privacy.AdaptiveClipConfig{TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: 2.5}
	j := Job{Spec: spec, Privacy: &JobPrivacy{Mode: privacy.ModeCentral, NoiseMultiplier: 1, Clip: 0.1, SampleRate: q, Delta: 1e-5}}
	secret := bytes.Repeat([]byte{3}, dpSecretLen)
	rng := rand.New(rand.NewPCG(1, 2))
	clip := spec.DP.Clip
	for r := uint64(1); r <= 300; r++ {
		n := 40 + rng.IntN(21)
		vecs := make([][]float64, n)
		below := 0
		for i := range vecs {
			norm := median * math.Exp(0.5*rng.NormFloat64())
			v := make([]float64, dim)
			v[rng.IntN(dim)] = norm
			vecs[i] = v
			if norm <= clip {
				below++
			}
		}
		seed := Hash{}
		cr, err := centralRound(j, Round{Number: r, Clip: clip, SampleSeed: &seed, Population: pop}, secret, vecs)
		if err != nil {
			t.Fatal(err)
		}
		next := cr.step.Next
		// The step goes the way of the noisy fraction against the target.
		if (cr.step.Fraction > 0.5) != (next < clip) {
			t.Fatalf("round %d: fraction %v moved the clip from %v to %v", r, cr.step.Fraction, clip, next)
		}
		clip = next
	}
	if clip < median/1.3 || clip > median*1.3 {
		t.Fatalf("clip %v after 300 rounds, want near the median norm %v", clip, median)
	}
}

// FuzzSampleApply: any entry applied to a state with a sampled local job
// (round 1 open) and a sampled central job with adaptive clipping (round 1
// sealed) either applies or leaves the state unchanged, and never panics.
func FuzzSampleApply(f *testing.F) {
	b, secret := sampledLog(f, 0.5)
	base := ModelHash(Params{0, 0, 0})
	cs := dpSpec("adaptive", 3, 1, 0)
	cs.DP.Mode = privacy.ModeCentral
	cs.DP.SampleRate = 0.5
	cs.DP.AdaptiveClip = &privacy.AdaptiveClipConfig{TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: 2}
	b.add(cmdCreateJob, &createJobCmd{Spec: cs, At: b.at, DPSecret: secret})
	f0 := replay(f, b.keys, b.entries)

	for _, job := range []string{"sampled", "adaptive"} {
		o := &openRoundCmd{Job: job, Round: 1, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)}
		f0.sampleFor(o)
		b.add(cmdOpenRound, o)
		for _, n := range b.nodes {
			if slices.Contains(o.Sample, n.id) {

				b.add(cmdAddUpdate, b.update(n, job, 1, base, []float64{0.5, 0, 0}))
				break
			}
		}
	}
	b.add(cmdSealRound, &sealRoundCmd{Job: "adaptive", Round: 1, At: b.at})
	seeds := [][]byte{}
	enc := func(t commandType, body any) {
		e, err := encodeCommand(t, body)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, e)
	}
	model := Params{0.25, 0, 0}
	res := RoundResult{ModelVersion: 1, ModelHash: ModelHash(model), Rule: centralRule, Used: 1}
	enc(cmdCloseRound, &closeRoundCmd{Job: "adaptive", Round: 1, Updates: 1, Outcomes: []updateOutcome{{Used: true}}, Model: model, Result: res, At: b.at,
		ClipStep: &ClipStep{Fraction: 0.7, Next: 0.96}})
	enc(cmdCloseRound, &closeRoundCmd{Job: "adaptive", Round: 1, Updates: 1, Outcomes: []updateOutcome{{Used: true}}, Model: model, Result: res, At: b.at})
	enc(cmdCloseRound, &closeRoundCmd{Job: "adaptive", Round: 1, Updates: 1, Outcomes: []updateOutcome{{Used: true}}, Model: model, Result: res, At: b.at,
		ClipStep: &ClipStep{Fraction: 0.7, Next: -1}})
	h := Hash{1}
	enc(cmdOpenRound, &openRoundCmd{Job: "sampled", Round: 2, BaseHash: base, SampleSeed: &h, Sample: []string{"n0"}, Population: 5})
	for _, n := range b.nodes {
		enc(cmdAddUpdate, b.update(n, "sampled", 1, base, []float64{0, 1, 0}))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := replay(t, b.keys, b.entries)
		before := snapshotBytes(t, m)
		res := m.Apply(&raft.Log{Index: uint64(len(b.entries)), Type: raft.LogCommand, Data: data}).(*applyResult)
		if res.err != nil && !bytes.Equal(before, snapshotBytes(t, m)) {
			t.Fatalf("rejected entry (%v) changed the state", res.err)
		}
	})
}

// TestSampleApplyClipStep: a close-round of an adaptive job moves the clip
// to the entry's step and the next round opens with it; without a step, or
// with a bad one, the entry is refused and nothing changes.
func TestSampleApplyClipStep(t *testing.T) {
	b, secret := sampledLog(t, 1)
	base := ModelHash(Params{0, 0, 0})
	cs := dpSpec("adaptive", 3, 1, 0)
	cs.DP.Mode = privacy.ModeCentral
	cs.DP.AdaptiveClip = &privacy.AdaptiveClipConfig{TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: 2}
	b.add(cmdCreateJob, &createJobCmd{Spec: cs, At: b.at, DPSecret: secret})
	b.add(cmdOpenRound, &openRoundCmd{Job: "adaptive", Round: 1, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	b.add(cmdAddUpdate, b.update(b.nodes[0], "adaptive", 1, base, []float64{0.5, 0, 0}))
	b.add(cmdSealRound, &sealRoundCmd{Job: "adaptive", Round: 1, At: b.at})
	model := Params{0.25, 0, 0}
	res := RoundResult{ModelVersion: 1, ModelHash: ModelHash(model), Rule: centralRule, Used: 1}
	closeWith := func(step *ClipStep) *closeRoundCmd {
		return &closeRoundCmd{Job: "adaptive", Round: 1, Updates: 1, Outcomes: []updateOutcome{{Used: true}}, Model: model, Result: res, At: b.at, ClipStep: step}
	}
	for _, bad := range []*ClipStep{nil, {Fraction: 0.5, Next: -1}, {Fraction: 0.5, Next: 0}} {
		b.add(cmdCloseRound, closeWith(bad))
		f := replay(t, b.keys, b.entries)
		if r, _ := f.round("adaptive", 1, false); r.State != RoundClosing {
			t.Fatalf("close with step %+v applied", bad)
		}
		b.entries = b.entries[:len(b.entries)-1]
	}
	// With a result leaf, the step must be the one the leaf commits to
	// (the leaf is what members re-derive and cosign).
	leafWith := func(step ClipStep) []byte {
		r, _ := replay(t, b.keys, b.entries).round("adaptive", 1, false)
		commit := make([]byte, 32)
		commit = binary.BigEndian.AppendUint64(commit, math.Float64bits(step.Fraction))
		commit = binary.BigEndian.AppendUint64(commit, math.Float64bits(step.Next))
		res := audit.ResultLeaf{Origin: b.keys.origin, JobID: "adaptive", Round: 1, Rule: centralRule,
			BaseHash: base, NewHash: ModelHash(model), NoiseCommitment: commit,
			Entries: []audit.ResultEntry{{LeafIndex: r.Updates[0].LeafIndex, Input: true, Used: true}}}
		enc, err := res.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	lied := closeWith(&ClipStep{Fraction: 0.9, Next: 5})
	lied.ResultLeaf = leafWith(ClipStep{Fraction: 0.9, Next: 0.92})
	b.add(cmdCloseRound, lied)
	if r, _ := replay(t, b.keys, b.entries).round("adaptive", 1, false); r.State != RoundClosing {
		t.Fatal("a clip step other than the result leaf's applied")
	}
	b.entries = b.entries[:len(b.entries)-1]
	honest := closeWith(&ClipStep{Fraction: 0.9, Next: 0.92})
	honest.ResultLeaf = leafWith(ClipStep{Fraction: 0.9, Next: 0.92})
	b.add(cmdCloseRound, honest)
	b.add(cmdOpenRound, &openRoundCmd{Job: "adaptive", Round: 2, BaseVersion: 1, BaseHash: ModelHash(model), OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	f := replay(t, b.keys, b.entries)
	j := mustFSMJob(t, f, "adaptive")
	r1, _ := f.round("adaptive", 1, false)
	r2, _ := f.round("adaptive", 2, false)
	if j.Privacy.Clip != 0.92 || r1.Clip != 1 || r1.ClipStep == nil || r1.ClipStep.Next != 0.92 || r2.Clip != 0.92 {
		t.Fatalf("job clip %v, round 1 clip %v step %+v, round 2 clip %v", j.Privacy.Clip, r1.Clip, r1.ClipStep, r2.Clip)
	}
	// A job without adaptive clipping refuses a step.
	b.add(cmdOpenRound, &openRoundCmd{Job: "sampled", Round: 1, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	b.add(cmdAddUpdate, b.update(b.nodes[0], "sampled", 1, base, []float64{0.5, 0, 0}))
	b.add(cmdSealRound, &sealRoundCmd{Job: "sampled", Round: 1, At: b.at})
	c := closeWith(&ClipStep{Fraction: 0.5, Next: 1})
	c.Job = "sampled"
	b.add(cmdCloseRound, c)
	if r, _ := replay(t, b.keys, b.entries).round("sampled", 1, false); r.State != RoundClosing {
		t.Fatal("a job without adaptive clipping took a clip step")
	}
}

// A target ε is solved at the job's sample rate, and a sampled job gets a
// secret even in local mode.
func TestResolveDPSampled(t *testing.T) {
	s := dpSpec("j", 3, 0, 0)
	s.DP.TargetEpsilon, s.DP.SampleRate, s.Rounds = 4, 0.05, 200
	z, secret, err := resolveDP(s)
	if err != nil {
		t.Fatal(err)
	}
	eps, _, err := privacy.Epsilon(0.05, z, s.Rounds, s.DP.Delta)
	if err != nil || eps > 4 || eps < 3.9 {
		t.Fatalf("z = %v spends ε = %v at q = 0.05 over %d rounds (%v), want just under 4", z, eps, s.Rounds, err)
	}
	if z1, _, _ := resolveDP(dpSpecQ(s, 1)); !(z1 > z) {
		t.Fatalf("z at q = 1 (%v) not above z at q = 0.05 (%v)", z1, z)
	}
	if len(secret) != dpSecretLen {
		t.Fatalf("sampled local job's secret %x", secret)
	}
	if _, secret, _ := resolveDP(dpSpecQ(s, 0)); secret != nil {
		t.Fatal("an unsampled local job got a secret")
	}
}

func dpSpecQ(s JobSpec, q float64) JobSpec {
	dp := *s.DP
	dp.SampleRate = q
	s.DP = &dp
	return s
}
