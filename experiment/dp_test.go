package experiment

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/privacy"
)

// dpConfig is a small MFN-task configuration for the DP tests.
func dpConfig() Config {
	c := DefaultConfig()
	c.Dataset = "mfn"
	c.MFNPerRegime = 40
	c.Heterogeneity = []string{"iid"}
	c.Honest = 6
	c.Fs = []int{0, 1}
	c.Rules = []string{"fedavg", "trimmed-mean"}
	c.Attacks = []string{"alie", "label-flip"}
	c.Rounds = 5
	c.LocalSteps = 5
	c.Batch = 16
	c.LR = 0.05
	c.Seeds = 1
	return c
}

// testFederation builds the learn.Federation RunCell would run for cell.
func testFederation(t *testing.T, c Config, data *Data, f int, rule, attack string) learn.Federation {
	t.Helper()
	parts, err := learn.PartitionIID(data.Train.Len(), c.Honest, rand.New(rand.NewPCG(1, 0xda7a)))
	if err != nil {
		t.Fatal(err)
	}
	clients := make([]*learn.Dataset, len(parts))
	for i, p := range parts {
		clients[i] = data.Train.Subset(p)
	}
	r, err := c.NewRule(rule, f, 1)
	if err != nil {
		t.Fatal(err)
	}
	arch, err := c.Arch(data.Train.Dim, data.Train.Classes)
	if err != nil {
		t.Fatal(err)
	}
	fed := learn.Federation{
		Config: learn.FederationConfig{Arch: arch, Rounds: c.Rounds, Local: learn.LocalConfig{Steps: c.LocalSteps, Batch: c.Batch},
			LR: c.LR, Momentum: c.Momentum, WeightDecay: c.WeightDecay, Workers: 2, Seed: 3},
		Clients: clients, Test: data.Test, Rule: r, Byzantine: f,
	}
	if f > 0 {
		att, flip, err := NewAttack(attack)
		if err != nil {
			t.Fatal(err)
		}
		fed.Attack, fed.FlipLabels = att, flip
		if flip {
			classes := data.Train.Classes
			fed.FlipLabel = func(y int) int { return aggregate.FlipLabel(y, classes) }
		}
	}
	return fed
}

func loadDP(t *testing.T, c Config) *Data {
	t.Helper()
	data, err := LoadData(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDPNoneMatchesRunFederation: the DP runner with no noise and q = 1
// trains exactly as learn.RunFederation (same final parameters, bit for
// bit), with and without Byzantine clients.
func TestDPNoneMatchesRunFederation(t *testing.T) {
	c := dpConfig()
	data := loadDP(t, c)
	for _, tc := range []struct {
		f            int
		rule, attack string
	}{{0, "fedavg", ""}, {1, "trimmed-mean", "alie"}, {1, "fedavg", "label-flip"}} {
		fed := testFederation(t, c, data, tc.f, tc.rule, tc.attack)
		want, err := learn.RunFederation(context.Background(), fed)
		if err != nil {
			t.Fatal(err)
		}
		got, err := runDPFederation(context.Background(), fed, DPSpec{Mode: "none", Epsilon: math.Inf(1)}, 1, 1, 1e-5, dpHooks{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.params, want.Params) || got.accuracy != want.Accuracy {
			t.Errorf("f=%d %s %s: DP runner (none, q=1) differs from RunFederation: accuracy %v vs %v", tc.f, tc.rule, tc.attack, got.accuracy, want.Accuracy)
		}
		if got.byzUsed != want.ByzantineUsed {
			t.Errorf("f=%d %s %s: byzantine used %v, want %v", tc.f, tc.rule, tc.attack, got.byzUsed, want.ByzantineUsed)
		}
	}
}

// TestDPCentralClipsEveryUpdate: in central mode every update the rule
// sees has norm ≤ C, Byzantine ones included, and with a small C some
// are actually clipped (norm ≈ C), so the check is not vacuous.
func TestDPCentralClipsEveryUpdate(t *testing.T) {
	c := dpConfig()
	data := loadDP(t, c)
	const clip = 0.05
	for _, rule := range []string{"fedavg", "trimmed-mean"} {
		fed := testFederation(t, c, data, 1, rule, "alie")
		seen, atClip := 0, 0
		hooks := dpHooks{sent: func(round int, ups [][]float64) {
			for i, u := range ups {
				n, err := privacy.L2Norm(u)
				if err != nil {
					t.Fatal(err)
				}
				seen++
				if n > clip {
					t.Errorf("%s round %d update %d: norm %v > C %v", rule, round, i, n, clip)
				}
				if n > 0.99*clip {
					atClip++
				}
			}
		}}
		res, err := runDPFederation(context.Background(), fed, DPSpec{Mode: "central", Epsilon: 8}, 1, clip, 1e-5, hooks)
		if err != nil {
			t.Fatal(err)
		}
		if seen != c.Rounds*(c.Honest+1) || atClip == 0 {
			t.Errorf("%s: saw %d updates (want %d), %d at the clip", rule, seen, c.Rounds*(c.Honest+1), atClip)
		}
		if res.clipped == 0 {
			t.Errorf("%s: clipped fraction 0 with C = %v", rule, clip)
		}
	}
}

// TestDPLocalNoise: in local mode each honest update carries noise of
// standard deviation z·C per coordinate (its norm is at most C before
// the noise, so the mean square coordinate is (z·C)² within a few %).
func TestDPLocalNoise(t *testing.T) {
	c := dpConfig()
	data := loadDP(t, c)
	fed := testFederation(t, c, data, 0, "fedavg", "")
	const clip = 0.5
	var sq float64
	var count int
	hooks := dpHooks{sent: func(_ int, ups [][]float64) {
		for _, u := range ups {
			for _, x := range u {
				sq += x * x
				count++
			}
		}
	}}
	res, err := runDPFederation(context.Background(), fed, DPSpec{Mode: "local", Epsilon: 3}, 1, clip, 1e-5, hooks)
	if err != nil {
		t.Fatal(err)
	}
	z := res.info.NoiseMultiplier
	want := z * z * clip * clip
	// Signal: at most C² per update over d coordinates.
	d := float64(count) / float64(c.Rounds*c.Honest)
	got := sq / float64(count)
	if got < want*0.95 || got > want*1.05+clip*clip/d {
		t.Errorf("mean square coordinate %v, want (z·C)² = %v (z %v)", got, want, z)
	}
}

// TestDPEpsilonReported: every DP record's ε equals privacy.Epsilon for
// its (q, z, rounds, δ) — and its ε at q = 1 the same at q = 1 — with z
// the solution of privacy.NoiseMultiplier for the target, so ε ≤ target.
func TestDPEpsilonReported(t *testing.T) {
	c := dpConfig()
	c.Honest = 10
	c.Fs = []int{0}
	c.Rules = []string{"fedavg"}
	c.DP = []string{"central:3", "local:8", "none"}
	c.SampleRate = 0.5
	c.DPDelta = 1e-6
	out, err := Run(context.Background(), c, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 3 {
		t.Fatalf("%d records, want 3", len(out.Records))
	}
	for _, r := range out.Records {
		d := r.DP
		if d == nil || d.SampleRate != 0.5 || d.Delta != 1e-6 || d.Clip != 1 {
			t.Fatalf("record %+v: DP %+v", r, d)
		}
		if d.Spec == "none" {
			if d.NoiseMultiplier != 0 || d.Epsilon != 0 {
				t.Errorf("none: %+v", d)
			}
			continue
		}
		spec, _ := ParseDP(d.Spec)
		z, err := privacy.NoiseMultiplier(spec.Epsilon, 0.5, c.Rounds, 1e-6)
		if err != nil {
			t.Fatal(err)
		}
		eps, _, _ := privacy.Epsilon(0.5, z, c.Rounds, 1e-6)
		eps1, _, _ := privacy.Epsilon(1, z, c.Rounds, 1e-6)
		if d.NoiseMultiplier != z || d.Epsilon != eps || d.EpsilonQ1 != eps1 {
			t.Errorf("%s: z %v ε %v ε(q=1) %v, want %v %v %v", d.Spec, d.NoiseMultiplier, d.Epsilon, d.EpsilonQ1, z, eps, eps1)
		}
		if !(d.Epsilon <= spec.Epsilon) || !(d.EpsilonQ1 > d.Epsilon) {
			t.Errorf("%s: ε %v over target or not below ε(q=1) %v", d.Spec, d.Epsilon, d.EpsilonQ1)
		}
		if !(d.MeanParticipants > 2 && d.MeanParticipants < 8) {
			t.Errorf("%s: %v nodes per round, want about q·n = 5", d.Spec, d.MeanParticipants)
		}
	}
}

// TestDPDeterministic: the same Config gives the same table and JSON for
// 1 and 2 workers, sampling and noise included, and a different seed a
// different result.
func TestDPDeterministic(t *testing.T) {
	c := dpConfig()
	c.DP = []string{"central:8", "local:8"}
	c.SampleRate = 0.7
	var first []byte
	for _, w := range []int{1, 2, 2} {
		c.Workers = w
		out, err := Run(context.Background(), c, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := WriteTable(&b, c, out.Records); err != nil {
			t.Fatal(err)
		}
		if err := WriteJSON(&b, out.Records); err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b.Bytes()
			if !bytes.Contains(first, []byte("fedavg @central:8")) || !bytes.Contains(first, []byte("privacy per DP setting")) {
				t.Fatalf("table lacks the DP rows or summary:\n%s", first)
			}
			continue
		}
		if !bytes.Equal(first, b.Bytes()) {
			t.Errorf("workers %d: output differs", w)
		}
	}
	c.Seed = 2
	out, err := Run(context.Background(), c, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_ = WriteTable(&b, c, out.Records)
	if bytes.Equal(b.Bytes(), first[:b.Len()]) {
		t.Error("seed 2 gives the same table as seed 1")
	}
}

func TestDPValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"dp", func(c *Config) { c.DP = []string{"central"} }},
		{"dp", func(c *Config) { c.DP = []string{"local:0"} }},
		{"dp", func(c *Config) { c.DP = []string{"global:1"} }},
		{"dp", func(c *Config) { c.DP = []string{"central:8", "central:8.0"} }},
		{"dp", func(c *Config) { c.DP = []string{"central:0.001"} }},
		{"sample-rate", func(c *Config) { c.SampleRate = 0.5 }},
		{"sample-rate", func(c *Config) { c.DP = []string{"none"}; c.SampleRate = 1.5 }},
		{"sample-rate", func(c *Config) { c.DP = []string{"central:8"}; c.SampleRate = 0.01 }},
		{"dp-clip", func(c *Config) { c.DP = []string{"none"}; c.DPClip = 0 }},
		{"dp-delta", func(c *Config) { c.DP = []string{"none"}; c.DPDelta = 1 }},
	} {
		c := dpConfig()
		tc.edit(&c)
		var ce *ConfigError
		if err := c.Validate(); !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%+v: got %v, want a ConfigError for %s", c.DP, err, tc.field)
		}
	}
	c := dpConfig()
	c.DP = []string{"none", "central:1", "local:8"}
	c.SampleRate = 0.5
	if err := c.Validate(); err != nil {
		t.Errorf("valid DP config: %v", err)
	}
}

// TestRuleFUnderSampling: with sampling the rule is built for a high
// quantile of the sampled Byzantine count, never more than f and never
// below its mean; without DP or at q = 1 it is f.
func TestRuleFUnderSampling(t *testing.T) {
	c := dpConfig()
	if got := c.ruleF(Cell{F: 166}); got != 166 {
		t.Errorf("no DP: %d, want 166", got)
	}
	c.SampleRate = 1
	if got := c.ruleF(Cell{F: 5, DP: "central:8"}); got != 5 {
		t.Errorf("q=1: %d, want 5", got)
	}
	c.SampleRate = 0.05
	got := c.ruleF(Cell{F: 166, DP: "central:8"})
	if got < 9 || got > 20 {
		t.Errorf("q=0.05, f=166: %d, want a bound a little above the mean 8.3", got)
	}
	// Simulated: the bound covers the sampled count in most rounds.
	r := rand.New(rand.NewPCG(5, 5))
	over := 0
	for k := 0; k < 2000; k++ {
		n := 0
		for i := 0; i < 166; i++ {
			if r.Float64() < 0.05 {
				n++
			}
		}
		if n > got {
			over++
		}
	}
	if over > 100 {
		t.Errorf("bound %d exceeded in %d of 2000 rounds", got, over)
	}
	if got := c.ruleF(Cell{F: 2, DP: "local:8"}); got < 1 || got > 2 {
		t.Errorf("q=0.05, f=2: %d, want 1 or 2", got)
	}
}
