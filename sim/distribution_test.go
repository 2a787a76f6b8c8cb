package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// distSeeds is the number of seeds per configuration of MFN_MODEL.md §5.
const distSeeds = 1000

type distReference struct {
	Config map[string]any     `json:"config"`
	N      int                `json:"n"`
	Mean   map[string]float64 `json:"mean"`
	Std    map[string]float64 `json:"std"`
}

// configFromReference builds a Config from the reference's parameter map
// (missing keys keep their defaults).
func configFromReference(t *testing.T, m map[string]any) Config {
	t.Helper()
	cfg := DefaultConfig()
	for k, v := range m {
		switch k {
		case "grid_size":
			cfg.GridSize = int(v.(float64))
		case "steps":
			cfg.Steps = int(v.(float64))
		case "alpha":
			cfg.Alpha = v.(float64)
		case "spike_probability":
			cfg.SpikeProbability = v.(float64)
		case "turing_enabled":
			cfg.TuringEnabled = v.(bool)
		case "quantum_jitter":
			cfg.QuantumJitter = v.(bool)
		case "jitter_var":
			cfg.JitterVar = v.(float64)
		default:
			t.Fatalf("unknown reference config key %q", k)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestFeatureDistribution runs 1000 seeds of each reference configuration
// and compares the mean of every feature (and of growth_events) with the
// reference: within 5 standard errors of the difference of two means,
// SE = sqrt((s_ref² + s_go²)/2)/sqrt(n), and exactly equal where the
// reference std is 0.
func TestFeatureDistribution(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(goldenDir(t), "sim_feature_distribution.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs map[string]distReference
	if err := json.Unmarshal(b, &refs); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"default", "active", "no-turing"} {
		ref, ok := refs[name]
		if !ok {
			t.Fatalf("reference lacks configuration %q", name)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := configFromReference(t, ref.Config)
			samples := simulateSeeds(t, cfg, distSeeds)
			names := append(FeatureNames[:], "growth_events")
			for i, fname := range names {
				refMean, ok1 := ref.Mean[fname]
				refStd, ok2 := ref.Std[fname]
				if !ok1 || !ok2 {
					t.Fatalf("reference lacks %s", fname)
				}
				var sum float64
				for _, s := range samples {
					sum += s[i]
				}
				goMean := sum / float64(len(samples))
				var ss float64
				for _, s := range samples {
					ss += (s[i] - goMean) * (s[i] - goMean)
				}
				goStd := math.Sqrt(ss / float64(len(samples)-1))
				if refStd == 0 {
					for k, s := range samples {
						if s[i] != refMean {
							t.Errorf("%s: seed %d gives %v, reference is constant %v", fname, k, s[i], refMean)
							break
						}
					}
					continue
				}
				se := math.Sqrt((refStd*refStd+goStd*goStd)/2) / math.Sqrt(float64(len(samples)))
				z := (goMean - refMean) / se
				t.Logf("%-17s go %12.6g ± %-10.4g ref %12.6g ± %-10.4g z = %+.2f", fname, goMean, goStd, refMean, refStd, z)
				if math.Abs(z) > 5 {
					t.Errorf("%s: mean %v vs reference %v is %.1f standard errors apart", fname, goMean, refMean, z)
				}
			}
		})
	}
}

// simulateSeeds runs seeds 0..count−1 of cfg on all cores and returns, per
// seed, the 18 features followed by the growth-event count.
func simulateSeeds(t *testing.T, cfg Config, count int) [][NumFeatures + 1]float64 {
	t.Helper()
	out := make([][NumFeatures + 1]float64, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range next {
				c := cfg
				c.Seed = int64(seed)
				res, err := Simulate(c, false)
				if err != nil {
					errs[seed] = fmt.Errorf("seed %d: %w", seed, err)
					continue
				}
				copy(out[seed][:], res.Features[:])
				out[seed][NumFeatures] = float64(res.Metrics.GrowthEvents)
			}
		}()
	}
	for s := range count {
		next <- s
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
