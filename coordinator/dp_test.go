package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mfn/mfn/privacy"
)

func dpSpec(id string, dim int, z, maxEps float64) JobSpec {
	s := testSpec(id, dim, 1, 1)
	s.DP = &privacy.Config{Mode: privacy.ModeLocal, Clip: 1, NoiseMultiplier: z, Delta: 1e-5, MaxEpsilon: maxEps}
	return s
}

func TestDPSpecValidate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		edit  func(*privacy.Config)
		field string
	}{
		{"clip", func(c *privacy.Config) { c.Clip = -1 }, "dp.clip"},
		{"delta", func(c *privacy.Config) { c.Delta = 1 }, "dp.delta"},
		{"mode", func(c *privacy.Config) { c.Mode = "global" }, "dp.mode"},
		{"noise", func(c *privacy.Config) { c.NoiseMultiplier = 0 }, "dp.noise_multiplier"},

		{"adaptive local", func(c *privacy.Config) {
			c.AdaptiveClip = &privacy.AdaptiveClipConfig{TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: 1}
		}, "dp.adaptive_clip"},
		{"adaptive count noise", func(c *privacy.Config) {
			c.Mode = privacy.ModeCentral
			c.AdaptiveClip = &privacy.AdaptiveClipConfig{TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: 0.5}
		}, "dp.adaptive_clip.count_noise"},
		{"sample rate", func(c *privacy.Config) { c.SampleRate = 2 }, "dp.sample_rate"},
	} {
		s := dpSpec("j", 3, 1, 0)
		tt.edit(s.DP)
		err := s.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: error %v, want ErrInvalid naming %s", tt.name, err, tt.field)
		}
	}
	if err := dpSpec("j", 3, 1, 0).Validate(); err != nil {
		t.Fatalf("valid dp spec: %v", err)
	}
	// Central mode covers the mean only.
	c := dpSpec("j", 3, 1, 0)
	c.DP.Mode = privacy.ModeCentral
	if err := c.Validate(); err != nil {
		t.Fatalf("central fedavg: %v", err)
	}
	c.Rule.Name = "krum"
	if err := c.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "dp.mode") || !strings.Contains(err.Error(), "fedavg") {
		t.Fatalf("central krum: %v", err)
	}
	// A target ε at or below the conversion's floor cannot be reached.
	s := dpSpec("j", 3, 0, 0)
	s.DP.TargetEpsilon = 0.01
	if _, _, err := resolveDP(s); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "dp.target_epsilon") {
		t.Fatalf("unreachable target: %v", err)
	}
	// A reachable target is solved for the job's rounds at q = 1 and
	// spends at most the target over them.
	s.DP.TargetEpsilon = 4
	z, _, err := resolveDP(s)
	if err != nil {
		t.Fatal(err)
	}
	eps, _, err := privacy.Epsilon(1, z, s.Rounds, s.DP.Delta)
	if err != nil || eps > 4 || eps < 3.9 {
		t.Fatalf("z = %v spends ε = %v over %d rounds (%v), want just under 4", z, eps, s.Rounds, err)
	}
}

// dpLog is a log with a DP job whose first two rounds close.
func dpLog(t testing.TB) (*logBuilder, JobSpec) {
	b := newLogBuilder(t)
	b.add(cmdRegisterMember, &registerMemberCmd{Member: Member{ID: "c0", RaftAddr: "r0", PublicKey: b.keys.coords[0].PublicKey()}})
	for _, n := range b.nodes {
		b.add(cmdEnrollNode, &enrollNodeCmd{ID: n.id, PublicKey: n.pub(), At: b.at})
	}
	spec := dpSpec("private", 3, 0, 0)
	spec.DP.TargetEpsilon = 5
	spec.Rounds = 4
	b.add(cmdCreateJob, &createJobCmd{Spec: spec, At: b.at, NoiseMultiplier: 1.75})
	model := Params{0, 0, 0}
	for r := uint64(1); r <= 2; r++ {
		base := ModelHash(model)
		b.add(cmdOpenRound, &openRoundCmd{Job: "private", Round: r, BaseVersion: r - 1, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
		b.add(cmdAddUpdate, b.update(b.nodes[0], "private", r, base, []float64{1, 1, 1}))
		b.add(cmdSealRound, &sealRoundCmd{Job: "private", Round: r, At: b.at})
		model = Params{float64(r), 0, 0}
		b.add(cmdCloseRound, &closeRoundCmd{Job: "private", Round: r, Updates: 1, Outcomes: []updateOutcome{{Used: true}},
			Model: model, Result: RoundResult{ModelVersion: r, ModelHash: ModelHash(model), Rule: "fedavg", Used: 1}, At: b.at})
	}
	return b, spec
}

// In local mode a failed round whose nodes sent updates spends budget (the
// updates reached the coordinators); one without updates does not.
func TestDPFailedRoundsLocal(t *testing.T) {
	b, _ := dpLog(t)
	base := ModelHash(Params{2, 0, 0})
	b.add(cmdOpenRound, &openRoundCmd{Job: "private", Round: 3, BaseVersion: 2, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	b.add(cmdFailRound, &failRoundCmd{Job: "private", Round: 3, Reason: "empty", At: b.at})
	f := replay(t, b.keys, b.entries)
	if j, _ := f.job("private"); j.Privacy.Accountant.Steps() != 2 {
		t.Fatalf("after an empty failed round: %d steps, want 2", j.Privacy.Accountant.Steps())
	}
	b.add(cmdOpenRound, &openRoundCmd{Job: "private", Round: 4, BaseVersion: 2, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	b.add(cmdAddUpdate, b.update(b.nodes[1], "private", 4, base, []float64{1, 1, 1}))
	b.add(cmdFailRound, &failRoundCmd{Job: "private", Round: 4, Reason: "too few", At: b.at})
	f = replay(t, b.keys, b.entries)
	if j, _ := f.job("private"); j.Privacy.Accountant.Steps() != 3 {
		t.Fatalf("after a failed round with an update: %d steps, want 3", j.Privacy.Accountant.Steps())
	}
}

func TestDPAccountantReplicated(t *testing.T) {
	b, spec := dpLog(t)
	f1 := replay(t, b.keys, b.entries)
	f2 := replay(t, b.keys, b.entries)
	j, ok := f1.job("private")
	if !ok || j.Privacy == nil {
		t.Fatalf("job %+v: no privacy state", j)
	}
	p := j.Privacy
	if p.NoiseMultiplier != 1.75 || p.SampleRate != 1 || p.Delta != spec.DP.Delta || p.MaxEpsilon != 5 || p.Clip != 1 {
		t.Fatalf("privacy state %+v", p)
	}
	if p.Accountant.Steps() != 2 {
		t.Fatalf("accountant has %d steps, want 2 (two closed rounds)", p.Accountant.Steps())
	}
	want, _, err := privacy.Epsilon(1, 1.75, 2, spec.DP.Delta)
	if err != nil || p.EpsilonSpent != want {
		t.Fatalf("epsilon spent %v, want %v (%v)", p.EpsilonSpent, want, err)
	}
	// A copy's accountant is independent of the state.
	if err := p.Accountant.Compose(1, 1.75, 5); err != nil {
		t.Fatal(err)
	}
	if j2, _ := f1.job("private"); j2.Privacy.Accountant.Steps() != 2 {
		t.Fatal("a read copy shares the accountant with the state")
	}
	// Replicas hold identical bytes; a snapshot restores the accountant.
	s1, s2 := snapshotBytes(t, f1), snapshotBytes(t, f2)
	if string(s1) != string(s2) {
		t.Fatal("replicas' snapshots differ")
	}
	if strings.Contains(string(s1), "epsilon_spent") {
		t.Fatal("the derived ε is in the replicated state")
	}
	f3, err := newFSM(b.keys.origin, b.keys.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f3.Restore(nopCloser(s1)); err != nil {
		t.Fatal(err)
	}
	if j3, _ := f3.job("private"); j3.Privacy == nil || j3.Privacy.Accountant.Steps() != 2 || j3.Privacy.EpsilonSpent != want {
		t.Fatalf("restored privacy %+v", j3.Privacy)
	}
	if string(snapshotBytes(t, f3)) != string(s1) {
		t.Fatal("restored state re-encodes differently")
	}
	// Without the leader's z (and no noise_multiplier) the job is refused.
	bad := spec
	bad.ID = "noz"
	b.add(cmdCreateJob, &createJobCmd{Spec: bad, At: b.at})
	f4 := replay(t, b.keys, b.entries)
	if _, ok := f4.job("noz"); ok {
		t.Fatal("a target-ε job without a resolved z was created")
	}
	// A central job's entry must carry its noise secret.
	cs := spec
	cs.ID = "nosecret"
	cs.DP = &privacy.Config{Mode: privacy.ModeCentral, Clip: 1, NoiseMultiplier: 1, Delta: 1e-5}
	b.add(cmdCreateJob, &createJobCmd{Spec: cs, At: b.at})
	cs2 := cs
	cs2.ID = "withsecret"
	b.add(cmdCreateJob, &createJobCmd{Spec: cs2, At: b.at, DPSecret: make([]byte, dpSecretLen)})
	f5 := replay(t, b.keys, b.entries)
	if _, ok := f5.job("nosecret"); ok {
		t.Fatal("a central job without a secret was created")
	}
	if j, ok := f5.job("withsecret"); !ok || j.Privacy.Secret != nil || len(f5.dpSecret("withsecret")) != dpSecretLen {
		t.Fatalf("central job: %v, secret shown %x", ok, j.Privacy.Secret)
	}
	// A privacy state without an accountant is refused on restore.
	broken := strings.Replace(string(s1), `"accountant":{"version":1,"events":[{"sample_rate":1,"noise_multiplier":1.75,"steps":2}]}`, `"accountant":null`, 1)
	if broken == string(s1) {
		t.Fatal("snapshot does not hold the accountant in the expected form")
	}
	if err := f3.Restore(nopCloser([]byte(broken))); err == nil {
		t.Fatal("restored a privacy state without an accountant")
	}
}

// TestDPBudgetStopsJob runs a DP job whose max_epsilon allows fewer rounds
// than it plans: it must close exactly the rounds the accountant allows and
// then fail, naming the budget, without opening another round.
func TestDPBudgetStopsJob(t *testing.T) {
	t.Parallel()
	const z, delta = 2.0, 1e-5
	// max_epsilon halfway between ε after 3 and after 4 rounds; the allowed
	// count is whatever the accountant's formula gives for it.
	e3, _, err := privacy.Epsilon(1, z, 3, delta)
	if err != nil {
		t.Fatal(err)
	}
	e4, _, err := privacy.Epsilon(1, z, 4, delta)
	if err != nil {
		t.Fatal(err)
	}
	maxEps := (e3 + e4) / 2
	allowed := 0
	for T := 1; T < 100; T++ {
		e, _, err := privacy.Epsilon(1, z, T, delta)
		if err != nil {
			t.Fatal(err)
		}
		if e > maxEps {
			break
		}
		allowed = T
	}
	if allowed < 1 {
		t.Fatalf("budget %v allows no round", maxEps)
	}
	tc := newTestCluster(t, 1, clusterOpts{})
	nodes := newTestNodes(t, 1, 3)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	spec := dpSpec("budget", 3, z, maxEps)
	spec.Rounds = allowed + 5
	spec.DP.Delta = delta
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	for r := uint64(1); r <= uint64(allowed); r++ {
		open := tc.waitRound(li, "budget", r, RoundOpen)
		if r == 1 {
			// Nodes learn the job's DP parameters from the announcement.
			anns := l.OpenRounds()
			if len(anns) != 1 {
				t.Fatalf("announcements %+v", anns)
			}
			md := AnnouncementMetadata(anns[0])
			a, err := privacy.ParseAnnounced(md["dp"])
			if err != nil || a != (privacy.Announced{Mode: privacy.ModeLocal, Clip: 1, NoiseMultiplier: z}) {
				t.Fatalf("dp metadata %q: %+v %v", md["dp"], a, err)
			}
		}
		if _, err := l.Submit(ctx, nodes[0].pub(), nodes[0].seal(t, tc.keys, "budget", r, open.BaseHash, []float64{0.1, 0.2, 0.3}, 7)); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		if got := tc.waitRound(li, "budget", r, RoundClosed, RoundFailed); got.State != RoundClosed {
			t.Fatalf("round %d %s: %s", r, got.State, got.FailReason)
		}
	}
	var j Job
	eventually(t, 10*time.Second, "the job to end", func() bool {
		j, err = l.GetJob("budget")
		return err == nil && j.State != JobRunning
	})
	if j.State != JobFailed || !strings.Contains(j.Reason, "privacy budget") {
		t.Fatalf("job %s: %q, want failed by the privacy budget", j.State, j.Reason)
	}
	if j.Completed != uint64(allowed) || j.Rounds != uint64(allowed) {
		t.Fatalf("job closed %d rounds and opened %d, want %d and %d", j.Completed, j.Rounds, allowed, allowed)
	}
	want, _, _ := privacy.Epsilon(1, z, allowed, delta)
	if j.Privacy.EpsilonSpent != want || j.Privacy.EpsilonSpent > maxEps {
		t.Fatalf("spent %v, want %v ≤ %v", j.Privacy.EpsilonSpent, want, maxEps)
	}
	if got := metricValue(t, l, "mfn_job_privacy_epsilon_spent"); got != want {
		t.Fatalf("mfn_job_privacy_epsilon_spent %v, want %v", got, want)
	}
	// The job's JSON (the API's) carries the budget.
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Privacy struct {
			EpsilonSpent float64 `json:"epsilon_spent"`
			MaxEpsilon   float64 `json:"max_epsilon"`
			Delta        float64 `json:"delta"`
		} `json:"privacy"`
	}
	if err := json.Unmarshal(b, &back); err != nil || back.Privacy.EpsilonSpent != want || back.Privacy.MaxEpsilon != maxEps || back.Privacy.Delta != delta {
		t.Fatalf("job JSON privacy %+v (%v) from %s", back.Privacy, err, b)
	}
}

func nopCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// TestDPCentral runs a central DP job: the leader's aggregate is the
// clipped mean plus noise re-derivable from the job's secret, which is
// hidden while the job runs and shown once it has ended.
func TestDPCentral(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 1, clusterOpts{})
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
	if j, _ := l.GetJob("central"); j.Privacy == nil || j.Privacy.Secret != nil {
		t.Fatalf("running job shows privacy %+v, want no secret", j.Privacy)
	}
	if s := announcedDP(mustJob(t, l, "central")); !strings.HasPrefix(s, "central;") {
		t.Fatalf("announced dp %q", s)
	}
	ups := [][]float64{{3, 4, 0, 0}, {0.25, 0, 0.5, 0}, {-0.5, 0.5, 0, 0.25}} // float32-exact; the first is clipped
	for i, n := range nodes {
		if _, err := l.Submit(ctx, n.pub(), n.seal(t, tc.keys, "central", 1, open.BaseHash, ups[i], uint64(10*(i+1)))); err != nil {
			t.Fatal(err)
		}
	}
	r := tc.waitRound(li, "central", 1, RoundClosed, RoundFailed)
	if r.State != RoundClosed || r.Result.Rule != centralRule || r.Result.Used != 3 {
		t.Fatalf("round %s %q: %+v", r.State, r.FailReason, r.Result)
	}
	var j Job
	eventually(t, 5*time.Second, "the job to complete", func() bool {
		j = mustJob(t, l, "central")
		return j.State == JobCompleted
	})
	if len(j.Privacy.Secret) != dpSecretLen {
		t.Fatalf("ended job's secret %x, want %d bytes", j.Privacy.Secret, dpSecretLen)
	}
	// An auditor with the revealed secret recomputes the model bit for bit.
	mech, err := privacy.NewCentral(1, 0.5, 3)
	if err != nil {
		t.Fatal(err)
	}
	want, clipped, err := mech.Mean(ups, privacy.NewSeededSource(privacy.DeriveSeed(j.Privacy.Secret, "central", 1)))
	if err != nil || clipped != 1 {
		t.Fatalf("recompute: %v (%d clipped, want 1)", err, clipped)
	}
	m, err := l.Model("central", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal([]float64(m.Params), want) {
		t.Fatalf("model %v, recomputed %v", m.Params, want)
	}
	// The noise is there: the model is not the plain clipped mean, and the
	// difference is of the order of z·C/n.
	plain := []float64{(0.6 + 0.25 - 0.5) / 3, (0.8 + 0.5) / 3, 0.5 / 3, 0.25 / 3}
	var dev float64
	for i := range plain {
		dev += (m.Params[i] - plain[i]) * (m.Params[i] - plain[i])
	}
	if dev == 0 || math.Sqrt(dev/4) > 6*0.5/3 {
		t.Fatalf("noise rms %v, want > 0 and about %v", math.Sqrt(dev/4), 0.5/3)
	}
	if j.Privacy.Accountant.Steps() != 1 {
		t.Fatalf("accountant steps %d", j.Privacy.Accountant.Steps())
	}
}

func mustJob(t testing.TB, c *Coordinator, id string) Job {
	t.Helper()
	j, err := c.GetJob(id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// FuzzDPApply: any entry applied after a DP job's rounds either applies or
// leaves the state (the accountant included) unchanged, and never panics.
func FuzzDPApply(f *testing.F) {
	b, spec := dpLog(f)
	for _, e := range b.entries {
		f.Add(e)
	}
	c := spec
	c.ID = "central"
	c.DP = &privacy.Config{Mode: privacy.ModeCentral, Clip: 1, NoiseMultiplier: 1, Delta: 1e-5}
	for _, cmd := range []*createJobCmd{{Spec: c, DPSecret: make([]byte, dpSecretLen)}, {Spec: c}} {
		e, err := encodeCommand(cmdCreateJob, cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e)
	}
	for _, cmd := range []*stopJobCmd{{ID: "private", Fail: true, Reason: "privacy budget"}} {
		e, err := encodeCommand(cmdStopJob, cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e)
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

// BenchmarkDPJobRead: reading a DP job computes ε from its accountant (the
// round engine reads every job each tick).
func BenchmarkDPJobRead(b *testing.B) {
	lb, _ := dpLog(b)
	f := replay(b, lb.keys, lb.entries)
	for b.Loop() {
		if j, ok := f.job("private"); !ok || j.Privacy.EpsilonSpent == 0 {
			b.Fatal("no ε")
		}
	}
}
