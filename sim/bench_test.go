package sim

import (
	"fmt"
	"testing"
)

// reportCPU adds a cpu-ns/op metric: the process's CPU time per iteration.
// On a shared, loaded machine wall-clock ns/op includes time spent waiting
// for a core; CPU time does not (it includes both goroutines on large grids).
func reportCPU(b *testing.B, start int64) {
	if end := processCPUNanos(); start >= 0 && end >= 0 && b.N > 0 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}

// benchConfig is the default configuration on an n×n grid for steps steps.
func benchConfig(n, steps int) Config {
	cfg := DefaultConfig()
	cfg.GridSize, cfg.Steps, cfg.Seed = n, steps, 42
	return cfg
}

// BenchmarkSimulate measures a full run (features and Lyapunov included,
// no history) with default parameters. The 64x64x200 and 256x256x200 cases
// exist to show that allocations per run do not grow with the step count.
// With default parameters the Turing update is provably inert and skipped
// (see turingCanFire); the "-turing" cases use r_a = 0.1, θ = 0.5, where it
// must run, to show its cost.
func BenchmarkSimulate(b *testing.B) {
	for _, bc := range []struct {
		n, steps int
		turing   bool
	}{{64, 100, false}, {256, 100, false}, {64, 200, false}, {256, 200, false}, {64, 100, true}, {256, 100, true}} {
		name := fmt.Sprintf("%dx%dx%d", bc.n, bc.n, bc.steps)
		if bc.turing {
			name += "-turing"
		}
		b.Run(name, func(b *testing.B) {
			cfg := benchConfig(bc.n, bc.steps)
			if bc.turing {
				cfg.Ra, cfg.TuringThreshold = 0.1, 0.5
			}
			b.ReportAllocs()
			start := processCPUNanos()
			for b.Loop() {
				if _, err := Simulate(cfg, false); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkFeatures measures ExtractFeatures on a 100-step 64×64 history.
func BenchmarkFeatures(b *testing.B) {
	for _, bc := range []struct{ n, steps int }{{64, 100}} {
		b.Run(fmt.Sprintf("%dx%dx%d", bc.n, bc.n, bc.steps), func(b *testing.B) {
			cfg := benchConfig(bc.n, bc.steps)
			cfg.QuantumJitter = true // a lively field, with clusters
			cfg.SpikeProbability = 0.9
			res, err := Simulate(cfg, true)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			start := processCPUNanos()
			for b.Loop() {
				if _, err := ExtractFeatures(res.History, bc.steps, bc.n); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}
