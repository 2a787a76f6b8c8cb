package privacy

import (
	"errors"
	"fmt"
	"math"
)

// Mode says where the noise is added.
type Mode string

// The two modes of DP-FedAvg.
const (
	// ModeLocal: each node clips and noises its own update (Local); the node
	// trusts no one.
	ModeLocal Mode = "local"
	// ModeCentral: the leader clips every update and noises the mean
	// (Central); the node trusts the coordinator cluster.
	ModeCentral Mode = "central"
)

// Config is a job's DP settings, in the shape of the job spec's
// `dp: {mode, clip, noise_multiplier | target_epsilon, delta, max_epsilon,
// adaptive_clip?}`. Exactly one of NoiseMultiplier and TargetEpsilon is
// set; Resolve turns a target into a noise multiplier.
type Config struct {
	// Mode is "local" or "central".
	Mode Mode `json:"mode"`
	// Clip is the L2 clipping norm C (the starting value with AdaptiveClip).
	Clip float64 `json:"clip"`
	// NoiseMultiplier is z; zero means "derive it from TargetEpsilon".
	NoiseMultiplier float64 `json:"noise_multiplier,omitempty"`
	// TargetEpsilon is the ε the whole job may spend over its planned
	// rounds; zero means "NoiseMultiplier is given".
	TargetEpsilon float64 `json:"target_epsilon,omitempty"`
	// Delta is δ, in (0, 1); pick it well below 1/number of nodes.
	Delta float64 `json:"delta"`
	// MaxEpsilon stops the job before a round would take ε above it; zero
	// means TargetEpsilon if set, else no limit.
	MaxEpsilon float64 `json:"max_epsilon,omitempty"`
	// AdaptiveClip, if set, adapts Clip each round (central mode only).
	AdaptiveClip *AdaptiveClipConfig `json:"adaptive_clip,omitempty"`
	// SampleRate is q, the probability that each enrolled node is asked
	// to take part in a round (node sampling, see Sampled); zero means 1,
	// every node every round.
	SampleRate float64 `json:"sample_rate,omitempty"`
}

// Rate returns the sample rate q: SampleRate, or 1 when it is zero.
func (c *Config) Rate() float64 {
	if c.SampleRate == 0 {
		return 1
	}
	return c.SampleRate
}

// AdaptiveClipConfig holds AdaptiveClip's settings other than the clip.
type AdaptiveClipConfig struct {
	TargetQuantile float64 `json:"target_quantile"` // in (0, 1), e.g. 0.5
	LearningRate   float64 `json:"learning_rate"`   // > 0, e.g. 0.2
	CountNoise     float64 `json:"count_noise"`     // σ_b in (0, 8192], e.g. expected count / 20
}

// FieldError names the Config field (by its JSON name, under "dp.") that
// is invalid, and why.
type FieldError struct {
	Field  string // e.g. "dp.noise_multiplier"
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("privacy: %s: %s", e.Field, e.Reason) }

// Unwrap returns ErrInvalidParameter.
func (e *FieldError) Unwrap() error { return ErrInvalidParameter }

// Validate checks every field and returns a *FieldError naming the first
// bad one: mode not local/central; clip not finite and > 0; neither or both
// of noise_multiplier and target_epsilon; either out of range; delta not in
// (0, 1); max_epsilon negative or not finite; adaptive_clip in local mode
// or with a bad field, or with count_noise ≤ noise_multiplier/2; sample_rate
// not 0 and not in (0, 1].
func (c *Config) Validate() error {
	if c.Mode != ModeLocal && c.Mode != ModeCentral {
		return &FieldError{"dp.mode", fmt.Sprintf("%q: must be local or central", c.Mode)}
	}
	if err := checkClip(c.Clip); err != nil {
		return &FieldError{"dp.clip", fmt.Sprintf("%v: must be finite and > 0", c.Clip)}
	}
	switch {
	case c.NoiseMultiplier == 0 && c.TargetEpsilon == 0:
		return &FieldError{"dp.noise_multiplier", "set noise_multiplier or target_epsilon"}
	case c.NoiseMultiplier != 0 && c.TargetEpsilon != 0:
		return &FieldError{"dp.target_epsilon", "set noise_multiplier or target_epsilon, not both"}
	case c.NoiseMultiplier != 0 && checkNoise(c.NoiseMultiplier) != nil:
		return &FieldError{"dp.noise_multiplier", fmt.Sprintf("%v: must be finite and > 0", c.NoiseMultiplier)}
	case c.TargetEpsilon != 0 && (!(c.TargetEpsilon > 0) || math.IsInf(c.TargetEpsilon, 1)):
		return &FieldError{"dp.target_epsilon", fmt.Sprintf("%v: must be finite and > 0", c.TargetEpsilon)}
	}
	if checkDelta(c.Delta) != nil {
		return &FieldError{"dp.delta", fmt.Sprintf("%v: must be in (0, 1)", c.Delta)}
	}
	if c.SampleRate != 0 && !(c.SampleRate > 0 && c.SampleRate <= 1) {
		return &FieldError{"dp.sample_rate", fmt.Sprintf("%v: must be in (0, 1] (0: every node every round)", c.SampleRate)}
	}
	if !(c.MaxEpsilon >= 0) || math.IsInf(c.MaxEpsilon, 1) {
		return &FieldError{"dp.max_epsilon", fmt.Sprintf("%v: must be finite and ≥ 0 (0: no limit beyond target_epsilon)", c.MaxEpsilon)}
	}
	if a := c.AdaptiveClip; a != nil {
		if c.Mode != ModeCentral {
			return &FieldError{"dp.adaptive_clip", "only in central mode (in local mode each node's clipping bit would reach the coordinator unprotected)"}
		}
		ac := AdaptiveClip{Clip: c.Clip, TargetQuantile: a.TargetQuantile, LearningRate: a.LearningRate, CountNoise: a.CountNoise}
		if err := ac.Validate(); err != nil {
			var pe *ParamError
			if errors.As(err, &pe) {
				return &FieldError{"dp.adaptive_clip." + pe.Param, fmt.Sprintf("%v: must be %s", pe.Value, pe.Want)}
			}
			return err
		}
		if c.NoiseMultiplier != 0 {
			if _, err := UpdateNoiseMultiplier(c.NoiseMultiplier, a.CountNoise); err != nil {
				return &FieldError{"dp.adaptive_clip.count_noise", fmt.Sprintf("%v: must be above noise_multiplier/2 = %v (the count would take the whole budget)", a.CountNoise, c.NoiseMultiplier/2)}
			}
		}
	}
	return nil
}

// Limit returns the ε the job must not exceed: MaxEpsilon, else
// TargetEpsilon, else +Inf.
func (c *Config) Limit() float64 {
	switch {
	case c.MaxEpsilon > 0:
		return c.MaxEpsilon
	case c.TargetEpsilon > 0:
		return c.TargetEpsilon
	}
	return math.Inf(1)
}

// Resolve returns the noise multiplier to use for the whole job, with
// sample rate q and the planned number of rounds: NoiseMultiplier if set,
// else NoiseMultiplier(TargetEpsilon, q, rounds, Delta). Errors: from
// Validate; a *FieldError naming dp.target_epsilon when the target is
// unreachable; a *ParamError naming sample_rate or steps.
func (c *Config) Resolve(q float64, rounds int) (float64, error) {
	if err := c.Validate(); err != nil {
		return 0, err
	}
	if c.NoiseMultiplier != 0 {
		return c.NoiseMultiplier, nil
	}
	z, err := NoiseMultiplier(c.TargetEpsilon, q, rounds, c.Delta)
	if errors.Is(err, ErrUnreachable) {
		return 0, &FieldError{"dp.target_epsilon", err.Error()}
	}
	return z, err
}

// ErrBudgetExhausted is wrapped by *BudgetError.
var ErrBudgetExhausted = errors.New("privacy: privacy budget exhausted")

// BudgetError says that the next round would take ε past the limit.
type BudgetError struct {
	Spent  float64 // ε spent so far
	Next   float64 // ε after the next round
	Limit  float64 // the job's limit
	Delta  float64
	Rounds int64 // rounds (steps) composed so far
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("privacy: the next round would spend ε = %.4g, over the limit %.4g (spent %.4g in %d rounds, δ = %g)",
		e.Next, e.Limit, e.Spent, e.Rounds, e.Delta)
}

// Unwrap returns ErrBudgetExhausted.
func (e *BudgetError) Unwrap() error { return ErrBudgetExhausted }

// CheckNext returns the ε the accountant would reach after one more round
// with sample rate q and noise multiplier z, and a *BudgetError
// (ErrBudgetExhausted) if that exceeds limit: the check a leader makes
// before opening a round, so that a job stops before it overspends rather
// than after. Errors: a *ParamError for invalid q, z or delta.
func (a *Accountant) CheckNext(q, z, delta, limit float64) (next float64, err error) {
	next, _, err = a.EpsilonAfter(delta, []Event{{SampleRate: q, NoiseMultiplier: z, Steps: 1}})
	if err != nil {
		return 0, err
	}
	if next > limit {
		spent, _, _ := a.Epsilon(delta)
		return next, &BudgetError{Spent: spent, Next: next, Limit: limit, Delta: delta, Rounds: a.Steps()}
	}
	return next, nil
}
