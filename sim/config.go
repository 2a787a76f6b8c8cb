package sim

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Boundary selects how the 5-point Laplacian treats cells outside the grid.
type Boundary int

const (
	// Periodic wraps the grid into a torus: the neighbour past the last
	// column is the first column (np.roll semantics).
	Periodic Boundary = iota
	// Neumann is zero-flux: a neighbour outside the grid takes the value of
	// the edge cell itself.
	Neumann
	// Dirichlet treats every cell outside the grid as zero.
	Dirichlet
)

// String returns the lower-case name used by flags and files.
func (b Boundary) String() string {
	switch b {
	case Periodic:
		return "periodic"
	case Neumann:
		return "neumann"
	case Dirichlet:
		return "dirichlet"
	}
	return fmt.Sprintf("Boundary(%d)", int(b))
}

// ParseBoundary parses "periodic", "neumann" or "dirichlet" (case-insensitive).
// Any other string is an error wrapping ErrInvalidConfig.
func ParseBoundary(s string) (Boundary, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "periodic":
		return Periodic, nil
	case "neumann":
		return Neumann, nil
	case "dirichlet":
		return Dirichlet, nil
	}
	return 0, &ConfigError{Field: "boundary", Value: s, Range: "one of periodic, neumann, dirichlet"}
}

// Config holds every parameter of one field simulation. The zero value is
// not valid; start from DefaultConfig.
type Config struct {
	GridSize         int     // N, the grid is N×N; [4, 1024]
	Steps            int     // number of steps; ≥ 1
	Alpha            float64 // field diffusion coefficient; [0.05, 0.24]
	SpikeProbability float64 // per-step probability of a growth event; [0, 1]
	TuringEnabled    bool    // run the activator–inhibitor Turing step
	TuringThreshold  float64 // activator level θ that depolarises a cell; [0.5, 0.95]
	QuantumJitter    bool    // add Gaussian noise to V every step
	JitterVar        float64 // variance σ² of the jitter, volts²; [0, 0.01]
	Da, Di           float64 // activator/inhibitor diffusion; each [0.01, 0.25)
	Ra, Ri           float64 // activator/inhibitor reaction rates; each [0.001, 0.1]
	Boundary         Boundary
	Seed             int64 // seeds the run's only random stream
}

// DefaultConfig returns the MFN_MODEL defaults: a 64×64 grid, 64 steps,
// alpha 0.18, spike probability 0.25, Turing on with θ = 0.75, jitter off
// (σ² = 0.0005 when enabled), D_a = 0.1, D_i = 0.05, r_a = 0.01, r_i = 0.02,
// periodic boundary, seed 0.
func DefaultConfig() Config {
	return Config{
		GridSize:         64,
		Steps:            64,
		Alpha:            0.18,
		SpikeProbability: 0.25,
		TuringEnabled:    true,
		TuringThreshold:  0.75,
		QuantumJitter:    false,
		JitterVar:        0.0005,
		Da:               0.1,
		Di:               0.05,
		Ra:               0.01,
		Ri:               0.02,
		Boundary:         Periodic,
	}
}

// ErrInvalidConfig is wrapped by every ConfigError, so callers can test
// errors.Is(err, ErrInvalidConfig).
var ErrInvalidConfig = errors.New("invalid simulation config")

// ConfigError reports one parameter outside its valid range. Field is the
// snake_case parameter name used in MFN_MODEL.md and dataset columns
// (e.g. "grid_size"); Range describes the valid values.
type ConfigError struct {
	Field string
	Value any
	Range string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s = %v out of range: must be %s", e.Field, e.Value, e.Range)
}

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// Validate checks every field against its valid range and returns the first
// violation as a *ConfigError (nil if the config is valid). NaN is outside
// every range.
func (c Config) Validate() error {
	intIn := func(name string, v, lo, hi int, rng string) error {
		if v < lo || v > hi {
			return &ConfigError{Field: name, Value: v, Range: rng}
		}
		return nil
	}
	floatIn := func(name string, v, lo, hi float64, hiOpen bool, rng string) error {
		if math.IsNaN(v) || v < lo || v > hi || (hiOpen && v == hi) {
			return &ConfigError{Field: name, Value: v, Range: rng}
		}
		return nil
	}
	checks := []func() error{
		func() error { return intIn("grid_size", c.GridSize, 4, 1024, "in [4, 1024]") },
		func() error { return intIn("steps", c.Steps, 1, math.MaxInt32, "≥ 1") },
		func() error {
			return floatIn("alpha", c.Alpha, 0.05, 0.24, false, "in [0.05, 0.24] (CFL stability needs alpha < 0.25)")
		},
		func() error { return floatIn("spike_probability", c.SpikeProbability, 0, 1, false, "in [0, 1]") },
		func() error {
			return floatIn("turing_threshold", c.TuringThreshold, 0.5, 0.95, false, "in [0.5, 0.95]")
		},
		func() error { return floatIn("jitter_var", c.JitterVar, 0, 0.01, false, "in [0, 0.01]") },
		func() error { return floatIn("da", c.Da, 0.01, 0.25, true, "in [0.01, 0.25)") },
		func() error { return floatIn("di", c.Di, 0.01, 0.25, true, "in [0.01, 0.25)") },
		func() error { return floatIn("ra", c.Ra, 0.001, 0.1, false, "in [0.001, 0.1]") },
		func() error { return floatIn("ri", c.Ri, 0.001, 0.1, false, "in [0.001, 0.1]") },
		func() error {
			if c.Boundary < Periodic || c.Boundary > Dirichlet {
				return &ConfigError{Field: "boundary", Value: c.Boundary, Range: "one of periodic, neumann, dirichlet"}
			}
			return nil
		},
	}
	for _, chk := range checks {
		if err := chk(); err != nil {
			return err
		}
	}
	return nil
}
