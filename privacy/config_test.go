package privacy

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := Config{Mode: ModeCentral, Clip: 1, NoiseMultiplier: 1.1, Delta: 1e-5, MaxEpsilon: 8,
		AdaptiveClip: &AdaptiveClipConfig{TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: 2.5}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"dp.mode", func(c *Config) { c.Mode = "global" }},
		{"dp.clip", func(c *Config) { c.Clip = 0 }},
		{"dp.clip", func(c *Config) { c.Clip = math.Inf(1) }},
		{"dp.noise_multiplier", func(c *Config) { c.NoiseMultiplier = 0 }},
		{"dp.noise_multiplier", func(c *Config) { c.NoiseMultiplier = -1 }},
		{"dp.target_epsilon", func(c *Config) { c.TargetEpsilon = 3 }},
		{"dp.target_epsilon", func(c *Config) { c.NoiseMultiplier, c.TargetEpsilon = 0, -3 }},
		{"dp.delta", func(c *Config) { c.Delta = 0 }},
		{"dp.delta", func(c *Config) { c.Delta = 1 }},
		{"dp.max_epsilon", func(c *Config) { c.MaxEpsilon = -1 }},
		{"dp.max_epsilon", func(c *Config) { c.MaxEpsilon = math.NaN() }},
		{"dp.adaptive_clip", func(c *Config) { c.Mode = ModeLocal }},
		{"dp.adaptive_clip.target_quantile", func(c *Config) { c.AdaptiveClip.TargetQuantile = 1 }},
		{"dp.adaptive_clip.learning_rate", func(c *Config) { c.AdaptiveClip.LearningRate = 0 }},
		{"dp.adaptive_clip.count_noise", func(c *Config) { c.AdaptiveClip.CountNoise = 1e5 }},
	}
	for _, tc := range cases {
		c := good
		ac := *good.AdaptiveClip
		c.AdaptiveClip = &ac
		tc.edit(&c)
		err := c.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("want a FieldError for %s, got %v", tc.field, err)
		}
	}
	// The JSON names are the job spec's.
	b, _ := json.Marshal(good)
	for _, k := range []string{`"mode":"central"`, `"clip":1`, `"noise_multiplier":1.1`, `"delta":0.00001`, `"max_epsilon":8`, `"adaptive_clip":{"target_quantile":0.5`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON %s lacks %s", b, k)
		}
	}
}

// TestBudget: a job planned for a target ε runs exactly its planned rounds
// and the next one is refused with a clear reason.
func TestBudget(t *testing.T) {
	t.Parallel()
	const q, rounds = 0.05, 200
	c := Config{Mode: ModeCentral, Clip: 1, TargetEpsilon: 3, Delta: 1e-5}
	z, err := c.Resolve(q, rounds)
	if err != nil {
		t.Fatal(err)
	}
	if c.Limit() != 3 {
		t.Fatalf("limit %v", c.Limit())
	}
	var a Accountant
	for r := 0; r < rounds; r++ {
		if _, err := a.CheckNext(q, z, c.Delta, c.Limit()); err != nil {
			t.Fatalf("round %d refused: %v", r, err)
		}
		if err := a.Compose(q, z, 1); err != nil {
			t.Fatal(err)
		}
	}
	spent, _, _ := a.Epsilon(c.Delta)
	if spent > 3 || spent < 2.99 {
		t.Errorf("spent %v after the planned rounds, want just under 3", spent)
	}
	next, err := a.CheckNext(q, z, c.Delta, c.Limit())
	var be *BudgetError
	if !errors.As(err, &be) || !errors.Is(err, ErrBudgetExhausted) || next <= 3 || be.Rounds != rounds || be.Spent != spent {
		t.Fatalf("round %d: next %v err %v, want a BudgetError", rounds, next, err)
	}
	if !strings.Contains(err.Error(), "over the limit 3") {
		t.Errorf("message %q", err)
	}
	// A target below the floor is a field error on dp.target_epsilon.
	c.TargetEpsilon = 0.01
	var fe *FieldError
	if _, err := c.Resolve(q, rounds); !errors.As(err, &fe) || fe.Field != "dp.target_epsilon" {
		t.Errorf("unreachable target: %v", err)
	}
	// With a noise multiplier and no max_epsilon there is no limit.
	d := Config{Mode: ModeLocal, Clip: 1, NoiseMultiplier: 2, Delta: 1e-5}
	if z, err := d.Resolve(q, rounds); err != nil || z != 2 || !math.IsInf(d.Limit(), 1) {
		t.Errorf("given z: %v %v, limit %v", z, err, d.Limit())
	}
}

// FuzzConfig: any JSON either fails to decode or validate, or gives a
// config whose limit is positive and whose given noise multiplier (if any)
// Resolve returns unchanged; nothing panics.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{"mode":"central","clip":1,"noise_multiplier":1.1,"delta":1e-5,"max_epsilon":8,"adaptive_clip":{"target_quantile":0.5,"learning_rate":0.2,"count_noise":2.5}}`))
	f.Add([]byte(`{"mode":"local","clip":0.5,"target_epsilon":3,"delta":1e-6}`))
	f.Add([]byte(`{"mode":"local","clip":1e308,"noise_multiplier":1e-300,"delta":0.999999}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Config
		if json.Unmarshal(b, &c) != nil || c.Validate() != nil {
			return
		}
		if !(c.Limit() > 0) {
			t.Fatalf("valid config %s has limit %v", b, c.Limit())
		}
		if c.NoiseMultiplier != 0 {
			if z, err := c.Resolve(0.05, 10); err != nil || z != c.NoiseMultiplier {
				t.Fatalf("Resolve of %s: %v %v", b, z, err)
			}
		}
	})
}
