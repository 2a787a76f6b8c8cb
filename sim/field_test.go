package sim

import (
	"context"
	"errors"
	"math"
	"runtime"
	"testing"
)

// liveTuringConfig has a reaction rate at which the shortcut's bound
// cannot rule out activations.
func liveTuringConfig(n, steps int) Config {
	cfg := DefaultConfig()
	cfg.GridSize, cfg.Steps = n, steps
	cfg.TuringThreshold, cfg.Ra = 0.5, 0.1
	return cfg
}

// runSeeded runs cfg from its usual initial state except for an activator
// patch at 0.9 (and inhibitor 0), which grows past θ: from the uniform
// start the model's activator decays (a(1−a) − i < 0 once i tracks a), so
// activations need such a seed patch.
func runSeeded(t *testing.T, cfg Config, workers int) *Result {
	t.Helper()
	s := newSimulation(cfg, workers, true)
	n := s.n
	for r := n / 4; r < n/2; r++ {
		for c := n / 4; c < n/2; c++ {
			s.a[r*n+c], s.in[r*n+c] = 0.9, 0
		}
	}
	res, err := s.execute(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func sameResult(t *testing.T, what string, a, b *Result) {
	t.Helper()
	if a.Metrics != b.Metrics {
		t.Errorf("%s: metrics %+v vs %+v", what, a.Metrics, b.Metrics)
	}
	if math.Float64bits(a.Lyapunov) != math.Float64bits(b.Lyapunov) {
		t.Errorf("%s: lyapunov %v vs %v", what, a.Lyapunov, b.Lyapunov)
	}
	for i := range a.Features {
		if math.Float64bits(a.Features[i]) != math.Float64bits(b.Features[i]) {
			t.Errorf("%s: %s %v vs %v", what, FeatureNames[i], a.Features[i], b.Features[i])
		}
	}
	if len(a.Field) != len(b.Field) {
		t.Fatalf("%s: field lengths %d vs %d", what, len(a.Field), len(b.Field))
	}
	for k := range a.Field {
		if math.Float64bits(a.Field[k]) != math.Float64bits(b.Field[k]) {
			t.Fatalf("%s: field differs at cell %d: %v vs %v", what, k, a.Field[k], b.Field[k])
		}
	}
	for k := range a.History {
		if math.Float64bits(a.History[k]) != math.Float64bits(b.History[k]) {
			t.Fatalf("%s: history differs at %d", what, k)
		}
	}
}

// TestDeterministicAcrossProcs runs a 128×128 grid (shared between two
// goroutines when two CPUs are available) with jitter under GOMAXPROCS 1
// and 2 and requires bit-identical results.
func TestDeterministicAcrossProcs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GridSize, cfg.Steps, cfg.Seed = 128, 12, 7
	cfg.QuantumJitter, cfg.SpikeProbability = true, 0.9
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	one, err := Simulate(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GOMAXPROCS(2)
	two, err := Simulate(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "GOMAXPROCS 1 vs 2", one, two)
}

// TestWorkersIndependent forces one and two row workers on every boundary
// rule, with the Turing step live and jitter on.
func TestWorkersIndependent(t *testing.T) {
	t.Parallel()
	for _, b := range []Boundary{Periodic, Neumann, Dirichlet} {
		t.Run(b.String(), func(t *testing.T) {
			t.Parallel()
			cfg := liveTuringConfig(20, 30)
			cfg.Boundary, cfg.QuantumJitter, cfg.Seed = b, true, 3
			one := runSeeded(t, cfg, 1)
			two := runSeeded(t, cfg, 2)
			sameResult(t, "1 vs 2 workers", one, two)
			f, err := ExtractFeatures(one.History, cfg.Steps, cfg.GridSize)
			if err != nil {
				t.Fatal(err)
			}
			if f != one.Features {
				t.Errorf("streaming features %v differ from extracted %v", one.Features, f)
			}
			if one.Metrics.TuringActivations == 0 {
				t.Error("live Turing configuration produced no activations")
			}
		})
	}
}

// TestTuringShortcutExact runs configurations where the Turing shortcut
// applies with and without it and requires identical results.
func TestTuringShortcutExact(t *testing.T) {
	t.Parallel()
	for _, b := range []Boundary{Periodic, Neumann, Dirichlet} {
		cfg := DefaultConfig()
		cfg.GridSize, cfg.Steps, cfg.Seed, cfg.Boundary = 24, 60, 5, b
		cfg.QuantumJitter = true
		s := newSimulation(cfg, 1, false)
		if s.turingLive {
			t.Fatalf("%v: shortcut does not apply to the default parameters", b)
		}
		fast, err := run(context.Background(), cfg, true, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		full, err := run(context.Background(), cfg, true, 1, true)
		if err != nil {
			t.Fatal(err)
		}
		sameResult(t, b.String()+" shortcut vs full", fast, full)
	}
	if s := newSimulation(liveTuringConfig(16, 100), 1, false); !s.turingLive {
		t.Error("shortcut claims θ = 0.5, r_a = 0.1 can never fire in 100 steps")
	}
}

// TestTuringBoundHolds checks turingCanFire's bound against the actual
// activator maximum of a run with the update forced on.
func TestTuringBoundHolds(t *testing.T) {
	t.Parallel()
	cfg := liveTuringConfig(16, 80)
	cfg.TuringThreshold = 0.95
	s := newSimulation(cfg, 1, true)
	m := 0.0
	for _, x := range s.a {
		m = math.Max(m, x)
	}
	for step := 1; step <= cfg.Steps; step++ {
		s.step = step
		s.growth()
		for r := range s.n {
			s.workers[0].row(s, r)
		}
		if err := s.finishStep(); err != nil {
			t.Fatal(err)
		}
		g := 0.25
		if m <= 0.5 {
			g = m * (1 - m)
		}
		m += cfg.Ra*g + 1e-12
		for _, x := range s.a {
			if x > m {
				t.Fatalf("step %d: activator %v exceeds bound %v", step, x, m)
			}
		}
	}
}

func TestSimulateMatchesExtract(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		func() Config { c := DefaultConfig(); c.GridSize, c.Steps, c.Seed = 32, 40, 1; return c }(),
		func() Config {
			c := DefaultConfig()
			c.GridSize, c.Steps, c.Seed, c.Alpha = 32, 40, 2, 0.1
			c.SpikeProbability, c.QuantumJitter = 0.9, true
			return c
		}(),
		liveTuringConfig(24, 50),
	} {
		res, err := Simulate(cfg, true)
		if err != nil {
			t.Fatal(err)
		}
		f, err := ExtractFeatures(res.History, cfg.Steps, cfg.GridSize)
		if err != nil {
			t.Fatal(err)
		}
		for i := range f {
			if math.Float64bits(f[i]) != math.Float64bits(res.Features[i]) {
				t.Errorf("seed %d: %s streaming %v, from history %v", cfg.Seed, FeatureNames[i], res.Features[i], f[i])
			}
		}
		if l := HistoryLyapunov(res.History, cfg.Steps, cfg.GridSize); math.Float64bits(l) != math.Float64bits(res.Lyapunov) {
			t.Errorf("lyapunov streaming %v, from history %v", res.Lyapunov, l)
		}
		last := res.History[(cfg.Steps-1)*cfg.GridSize*cfg.GridSize:]
		for k := range last {
			if last[k] != res.Field[k] {
				t.Fatalf("final field differs from the last history frame at %d", k)
			}
		}
		noHist, err := Simulate(cfg, false)
		if err != nil {
			t.Fatal(err)
		}
		if noHist.History != nil {
			t.Error("history returned though not requested")
		}
		sameResult(t, "with vs without history", &Result{Field: res.Field, Metrics: res.Metrics, Lyapunov: res.Lyapunov, Features: res.Features}, noHist)
	}
}

// TestModelInvariants checks properties every run must have.
func TestModelInvariants(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.GridSize, cfg.Steps, cfg.Seed, cfg.SpikeProbability = 16, 50, 9, 1
	res, err := Simulate(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Metrics.GrowthEvents != cfg.Steps {
		t.Errorf("spike probability 1 gave %d growth events in %d steps", res.Metrics.GrowthEvents, cfg.Steps)
	}
	for _, v := range res.History {
		if v < vClampLow || v > vClampHigh {
			t.Fatalf("value %v outside the clamp range", v)
		}
	}
	cfg.SpikeProbability = 0
	res, err = Simulate(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Metrics.GrowthEvents != 0 {
		t.Errorf("spike probability 0 gave %d growth events", res.Metrics.GrowthEvents)
	}
	// Without spikes, jitter or Turing boosts, periodic diffusion
	// conserves the total potential (up to rounding).
	cfg.TuringEnabled = false
	s := newSimulation(cfg, 1, false)
	before := 0.0
	for _, v := range s.v {
		before += v
	}
	res, err = Simulate(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	after := 0.0
	for _, v := range res.Field {
		after += v
	}
	if math.Abs(after-before) > 1e-12 {
		t.Errorf("periodic diffusion changed Σ V from %v to %v", before, after)
	}
	// Different seeds give different fields.
	cfg.Seed = 10
	other, _ := Simulate(cfg, false)
	if other.Field[0] == res.Field[0] && other.Field[1] == res.Field[1] {
		t.Error("seeds 9 and 10 gave the same field")
	}
}

func TestBoundaryRules(t *testing.T) {
	t.Parallel()
	c := []float64{1, 2, 3, 4}
	u := []float64{10, 10, 10, 10}
	d := []float64{0, 0, 0, 0}
	for _, tc := range []struct {
		b    Boundary
		want []float64
	}{
		{Periodic, []float64{10 + 4 + 2 - 4, 10 + 1 + 3 - 8, 10 + 2 + 4 - 12, 10 + 3 + 1 - 16}},
		{Neumann, []float64{10 + 1 + 2 - 4, 10 + 1 + 3 - 8, 10 + 2 + 4 - 12, 10 + 3 + 4 - 16}},
		{Dirichlet, []float64{10 + 0 + 2 - 4, 10 + 1 + 3 - 8, 10 + 2 + 4 - 12, 10 + 3 + 0 - 16}},
	} {
		got := make([]float64, 4)
		laplacianRow(got, u, c, d, tc.b)
		for j := range got {
			if got[j] != tc.want[j] {
				t.Errorf("%v: laplacian %v, want %v", tc.b, got, tc.want)
				break
			}
		}
	}
	// Row neighbours at the top and bottom edges.
	s := &simulation{n: 4, zero: make([]float64, 4)}
	f := make([]float64, 16)
	for k := range f {
		f[k] = float64(k / 4)
	}
	for _, tc := range []struct {
		b              Boundary
		upOf0, downOf3 float64
	}{{Periodic, 3, 0}, {Neumann, 0, 3}, {Dirichlet, 0, 0}} {
		s.cfg.Boundary = tc.b
		up, _ := s.neighbours(f, 0)
		_, down := s.neighbours(f, 3)
		if up[0] != tc.upOf0 || down[0] != tc.downOf3 {
			t.Errorf("%v: up of row 0 = %v, down of row 3 = %v", tc.b, up[0], down[0])
		}
		if tc.b == Dirichlet && (&up[0] != &s.zero[0] || &down[0] != &s.zero[0]) {
			t.Error("Dirichlet edge rows are not the zero row")
		}
	}
}

func TestUnstableNamesStep(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.GridSize, cfg.Steps = 8, 5
	s := newSimulation(cfg, 1, true)
	var err error
	for step := 1; step <= cfg.Steps && err == nil; step++ {
		if step == 3 {
			s.v[2*8+5] = math.NaN()
		}
		s.step = step
		s.growth()
		for r := range s.n {
			s.workers[0].row(s, r)
		}
		err = s.finishStep()
	}
	var ue *UnstableError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want *UnstableError", err)
	}
	if ue.Step != 3 || ue.Field != "V" || ue.Row != 1 || ue.Col != 5 {
		t.Errorf("got %+v, want step 3, V, row 1 (the first cell the NaN reached in row-major order), column 5", ue)
	}
	if !errors.Is(err, ErrUnstable) || !errors.Is(err, ErrNonFinite) {
		t.Error("UnstableError does not wrap ErrUnstable and ErrNonFinite")
	}
}

func TestHistoryTooLarge(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.GridSize, cfg.Steps = 1024, 300
	if _, err := Simulate(cfg, true); !errors.Is(err, ErrHistoryTooLarge) {
		t.Fatalf("got %v, want ErrHistoryTooLarge", err)
	}
}

func TestSimulateContextCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := SimulateContext(ctx, DefaultConfig(), false); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
