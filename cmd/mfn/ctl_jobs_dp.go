package main

import (
	"errors"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mfn/mfn/privacy"
)

// dpFlags are the flags of "jobs create" that give the job a dp block
// (privacy.Config). --dp names the mode; without it no other --dp-* flag
// may be set.
type dpFlags struct {
	mode                                  string
	clip, noise, target, delta, maxEps, q float64
	adaptive                              string
	set                                   func(name string) bool
}

// dpFlagOf maps a privacy.FieldError's field to the flag that sets it.
var dpFlagOf = map[string]string{
	"dp.mode":             "--dp",
	"dp.clip":             "--dp-clip",
	"dp.noise_multiplier": "--dp-noise-multiplier",
	"dp.target_epsilon":   "--dp-target-epsilon",
	"dp.delta":            "--dp-delta",
	"dp.max_epsilon":      "--dp-max-epsilon",
	"dp.sample_rate":      "--dp-sample-rate",
	"dp.adaptive_clip":    "--dp-adaptive-clip",
}

func (f *dpFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.mode, "dp", "", "differential privacy: local (each node clips and noises its update) or central (the leader noises the aggregate); default none")
	fl.Float64Var(&f.clip, "dp-clip", 0, "DP: L2 norm C every update is clipped to, > 0 (required with --dp)")
	fl.Float64Var(&f.noise, "dp-noise-multiplier", 0, "DP: noise standard deviation as a multiple z of --dp-clip, > 0 (or --dp-target-epsilon)")
	fl.Float64Var(&f.target, "dp-target-epsilon", 0, "DP: solve z so that the job's --rounds spend this ε, > 0 (or --dp-noise-multiplier)")
	fl.Float64Var(&f.delta, "dp-delta", 0, "DP: δ of the (ε, δ) guarantee, in (0, 1) (required with --dp)")
	fl.Float64Var(&f.maxEps, "dp-max-epsilon", 0, "DP: the job fails before a round would spend more than this ε; 0: no limit beyond --dp-target-epsilon")
	fl.Float64Var(&f.q, "dp-sample-rate", 0, "DP: each round goes to a random fraction q of the enrolled nodes, in (0, 1]; 0: every node every round")
	fl.StringVar(&f.adaptive, "dp-adaptive-clip", "", "DP (central): adaptive clipping, target_quantile=Q,learning_rate=L,count_noise=S (Andrew et al. 2021)")
	f.set = func(name string) bool { return fl.Changed(name) }
}

// config returns the dp block, nil when --dp is not given.
func (f *dpFlags) config() (*privacy.Config, error) {
	if f.mode == "" {
		for _, name := range []string{"dp-clip", "dp-noise-multiplier", "dp-target-epsilon", "dp-delta", "dp-max-epsilon", "dp-sample-rate", "dp-adaptive-clip"} {
			if f.set != nil && f.set(name) {
				return nil, usagef("--%s needs --dp local or --dp central", name)
			}
		}
		return nil, nil
	}
	c := &privacy.Config{Mode: privacy.Mode(f.mode), Clip: f.clip, NoiseMultiplier: f.noise, TargetEpsilon: f.target,
		Delta: f.delta, MaxEpsilon: f.maxEps, SampleRate: f.q}
	if f.adaptive != "" {
		a, err := parseAdaptiveClip(f.adaptive)
		if err != nil {
			return nil, usagef("--dp-adaptive-clip %q: %v", f.adaptive, err)
		}
		c.AdaptiveClip = a
	}
	if err := c.Validate(); err != nil {
		var fe *privacy.FieldError
		if errors.As(err, &fe) {
			name := dpFlagOf[fe.Field]
			if name == "" && strings.HasPrefix(fe.Field, "dp.adaptive_clip.") {
				name = "--dp-adaptive-clip " + strings.TrimPrefix(fe.Field, "dp.adaptive_clip.")
			}
			if name == "" {
				name = fe.Field
			}
			reason := fe.Reason
			for _, w := range []string{"noise_multiplier", "target_epsilon", "max_epsilon", "sample_rate"} {
				reason = strings.ReplaceAll(reason, w, dpFlagOf["dp."+w])
			}
			return nil, usagef("%s: %s", name, reason)
		}
		return nil, usagef("--dp: %v", err)
	}
	return c, nil
}

// parseAdaptiveClip reads "target_quantile=Q,learning_rate=L,count_noise=S";
// every key is required.
func parseAdaptiveClip(s string) (*privacy.AdaptiveClipConfig, error) {
	a := new(privacy.AdaptiveClipConfig)
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, errors.New(`want key=value pairs separated by commas, e.g. target_quantile=0.5,learning_rate=0.2,count_noise=5`)
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, errors.New(k + ": " + strings.TrimSpace(v) + " is not a number")
		}
		switch k {
		case "target_quantile":
			a.TargetQuantile = x
		case "learning_rate":
			a.LearningRate = x
		case "count_noise":
			a.CountNoise = x
		default:
			return nil, errors.New("unknown key " + k + " (target_quantile, learning_rate, count_noise)")
		}
		if seen[k] {
			return nil, errors.New(k + " given twice")
		}
		seen[k] = true
	}
	for _, k := range []string{"target_quantile", "learning_rate", "count_noise"} {
		if !seen[k] {
			return nil, errors.New(k + " is missing")
		}
	}
	return a, nil
}
