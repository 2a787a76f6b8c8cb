package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mfn/mfn/sim"
)

// simFlags holds the simulation flags shared by the commands that run a
// single simulation configuration.
type simFlags struct {
	gridSize, steps         int
	alpha, spikeProbability float64
	turing                  bool
	turingThreshold         float64
	jitter                  bool
	jitterVar               float64
	da, di, ra, ri          float64
	boundary                string
	seed                    int64
}

// addSimFlags defines the simulation flags on fs, with sim.DefaultConfig's
// values as defaults and each parameter's valid range in its help.
func addSimFlags(fs *pflag.FlagSet) *simFlags {
	d := sim.DefaultConfig()
	f := &simFlags{}
	fs.IntVar(&f.gridSize, "grid-size", d.GridSize, "grid side N (N×N cells), in [4, 1024]")
	fs.IntVar(&f.steps, "steps", d.Steps, "simulation steps, ≥ 1")
	fs.Float64Var(&f.alpha, "alpha", d.Alpha, "field diffusion coefficient, in [0.05, 0.24] (CFL: < 0.25)")
	fs.Float64Var(&f.spikeProbability, "spike-probability", d.SpikeProbability, "per-step probability of a growth event, in [0, 1]")
	fs.BoolVar(&f.turing, "turing", d.TuringEnabled, "run the Turing activator-inhibitor step (--turing=false to disable)")
	fs.Float64Var(&f.turingThreshold, "turing-threshold", d.TuringThreshold, "activator threshold θ, in [0.5, 0.95]")
	fs.BoolVar(&f.jitter, "jitter", d.QuantumJitter, "add Gaussian jitter to the field every step")
	fs.Float64Var(&f.jitterVar, "jitter-var", d.JitterVar, "jitter variance σ² in V², in [0, 0.01]")
	fs.Float64Var(&f.da, "da", d.Da, "activator diffusion D_a, in [0.01, 0.25)")
	fs.Float64Var(&f.di, "di", d.Di, "inhibitor diffusion D_i, in [0.01, 0.25)")
	fs.Float64Var(&f.ra, "ra", d.Ra, "activator reaction rate r_a, in [0.001, 0.1]")
	fs.Float64Var(&f.ri, "ri", d.Ri, "inhibitor reaction rate r_i, in [0.001, 0.1]")
	fs.StringVar(&f.boundary, "boundary", d.Boundary.String(), "boundary rule: periodic, neumann or dirichlet")
	fs.Int64Var(&f.seed, "seed", d.Seed, "random seed; the same seed gives a bit-identical run")
	return f
}

// config builds and validates the simulation config. An invalid value is a
// usage error naming the flag and its valid range.
func (f *simFlags) config() (sim.Config, error) {
	b, err := sim.ParseBoundary(f.boundary)
	if err != nil {
		return sim.Config{}, simFlagError(err)
	}
	cfg := sim.Config{
		GridSize: f.gridSize, Steps: f.steps, Alpha: f.alpha,
		SpikeProbability: f.spikeProbability, TuringEnabled: f.turing,
		TuringThreshold: f.turingThreshold, QuantumJitter: f.jitter,
		JitterVar: f.jitterVar, Da: f.da, Di: f.di, Ra: f.ra, Ri: f.ri,
		Boundary: b, Seed: f.seed,
	}
	if err := cfg.Validate(); err != nil {
		return sim.Config{}, simFlagError(err)
	}
	return cfg, nil
}

// simFlagError turns a *sim.ConfigError into a usage error that names the
// flag (the parameter's snake_case name with dashes) instead of the field.
func simFlagError(err error) error {
	var ce *sim.ConfigError
	if errors.As(err, &ce) {
		flag := "--" + strings.ReplaceAll(ce.Field, "_", "-")
		return usagef("%s %v out of range: must be %s", flag, ce.Value, ce.Range)
	}
	return asUsage(err)
}

// configJSON is the snake_case form of a sim.Config, as in MFN_MODEL.md
// and the dataset columns.
type configJSON struct {
	GridSize         int     `json:"grid_size"`
	Steps            int     `json:"steps"`
	Alpha            float64 `json:"alpha"`
	SpikeProbability float64 `json:"spike_probability"`
	TuringEnabled    bool    `json:"turing_enabled"`
	TuringThreshold  float64 `json:"turing_threshold"`
	QuantumJitter    bool    `json:"quantum_jitter"`
	JitterVar        float64 `json:"jitter_var"`
	Da               float64 `json:"da"`
	Di               float64 `json:"di"`
	Ra               float64 `json:"ra"`
	Ri               float64 `json:"ri"`
	Boundary         string  `json:"boundary"`
	Seed             int64   `json:"seed"`
}

func newConfigJSON(c sim.Config) configJSON {
	return configJSON{
		GridSize: c.GridSize, Steps: c.Steps, Alpha: c.Alpha,
		SpikeProbability: c.SpikeProbability, TuringEnabled: c.TuringEnabled,
		TuringThreshold: c.TuringThreshold, QuantumJitter: c.QuantumJitter,
		JitterVar: c.JitterVar, Da: c.Da, Di: c.Di, Ra: c.Ra, Ri: c.Ri,
		Boundary: c.Boundary.String(), Seed: c.Seed,
	}
}

// describeConfig renders a config on one line for people.
func describeConfig(c sim.Config) string {
	turing := "off"
	if c.TuringEnabled {
		turing = fmt.Sprintf("on (θ=%g, D_a=%g, D_i=%g, r_a=%g, r_i=%g)", c.TuringThreshold, c.Da, c.Di, c.Ra, c.Ri)
	}
	jitter := "off"
	if c.QuantumJitter {
		jitter = fmt.Sprintf("on (σ²=%g V²)", c.JitterVar)
	}
	return fmt.Sprintf("grid %d×%d, %d steps, alpha %g, spike probability %g, %s boundary, seed %d\nTuring %s, jitter %s",
		c.GridSize, c.GridSize, c.Steps, c.Alpha, c.SpikeProbability, c.Boundary, c.Seed, turing, jitter)
}
