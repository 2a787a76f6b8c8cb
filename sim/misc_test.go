package sim

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	d := DefaultConfig()
	if d.GridSize != 64 || d.Steps != 64 || d.Alpha != 0.18 || d.SpikeProbability != 0.25 ||
		!d.TuringEnabled || d.TuringThreshold != 0.75 || d.QuantumJitter || d.JitterVar != 0.0005 ||
		d.Da != 0.1 || d.Di != 0.05 || d.Ra != 0.01 || d.Ri != 0.02 || d.Boundary != Periodic {
		t.Errorf("DefaultConfig differs from MFN_MODEL.md: %+v", d)
	}
	for _, tc := range []struct {
		field  string
		mutate func(*Config)
		rng    string
	}{
		{"grid_size", func(c *Config) { c.GridSize = 3 }, "[4, 1024]"},
		{"grid_size", func(c *Config) { c.GridSize = 1025 }, "[4, 1024]"},
		{"steps", func(c *Config) { c.Steps = 0 }, "≥ 1"},
		{"alpha", func(c *Config) { c.Alpha = 0.25 }, "[0.05, 0.24]"},
		{"alpha", func(c *Config) { c.Alpha = math.NaN() }, "[0.05, 0.24]"},
		{"spike_probability", func(c *Config) { c.SpikeProbability = 1.01 }, "[0, 1]"},
		{"turing_threshold", func(c *Config) { c.TuringThreshold = 0.4 }, "[0.5, 0.95]"},
		{"jitter_var", func(c *Config) { c.JitterVar = -1e-9 }, "[0, 0.01]"},
		{"da", func(c *Config) { c.Da = 0.25 }, "[0.01, 0.25)"},
		{"di", func(c *Config) { c.Di = 0.009 }, "[0.01, 0.25)"},
		{"ra", func(c *Config) { c.Ra = 0.2 }, "[0.001, 0.1]"},
		{"ri", func(c *Config) { c.Ri = 0 }, "[0.001, 0.1]"},
		{"boundary", func(c *Config) { c.Boundary = 7 }, "periodic, neumann, dirichlet"},
	} {
		c := DefaultConfig()
		tc.mutate(&c)
		err := c.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: got %v, want *ConfigError", tc.field, err)
			continue
		}
		if ce.Field != tc.field || !strings.Contains(err.Error(), tc.rng) {
			t.Errorf("%s: error %q names %q, want field %q and range %q", tc.field, err, ce.Field, tc.field, tc.rng)
		}
		if _, err := Simulate(c, false); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Simulate accepted an invalid config: %v", tc.field, err)
		}
	}
	// Range ends are valid.
	c := DefaultConfig()
	c.GridSize, c.Alpha, c.SpikeProbability, c.TuringThreshold, c.JitterVar = 4, 0.24, 1, 0.95, 0.01
	c.Da, c.Ra = 0.01, 0.1
	if err := c.Validate(); err != nil {
		t.Errorf("range ends rejected: %v", err)
	}
}

func TestParseBoundary(t *testing.T) {
	t.Parallel()
	for _, b := range []Boundary{Periodic, Neumann, Dirichlet} {
		got, err := ParseBoundary(strings.ToUpper(b.String()))
		if err != nil || got != b {
			t.Errorf("ParseBoundary(%q) = %v, %v", b.String(), got, err)
		}
	}
	if _, err := ParseBoundary("torus"); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "boundary") {
		t.Errorf("ParseBoundary(torus) = %v", err)
	}
	if s := Boundary(9).String(); s != "Boundary(9)" {
		t.Errorf("String of an unknown boundary = %q", s)
	}
}

func TestNernstKnownAndErrors(t *testing.T) {
	t.Parallel()
	k, err := Nernst(1, 0.005, 0.140, BodyTemperatureK)
	if err != nil || math.Abs(k*1000-(-89.0)) > 0.05 {
		t.Errorf("K+: %v mV, %v; want ≈ −89.0", k*1000, err)
	}
	// z = −1 flips the sign of the same ratio.
	a, _ := Nernst(1, 0.12, 0.004, 310)
	b, _ := Nernst(-1, 0.12, 0.004, 310)
	if a != -b {
		t.Errorf("z = ±1 not antisymmetric: %v, %v", a, b)
	}
	// Clamp: 1e-7 and 1e-9 both become 1e-6.
	c1, _ := Nernst(2, 0.002, 1e-7, 310)
	c2, _ := Nernst(2, 0.002, 1e-9, 310)
	c3, _ := Nernst(2, 0.002, -5, 310)
	if c1 != c2 || c1 != c3 {
		t.Errorf("concentration clamp: %v %v %v", c1, c2, c3)
	}
	for _, tc := range []struct {
		z        int
		out, in  float64
		temp     float64
		wantName string
	}{
		{0, 1, 1, 310, "z"}, {3, 1, 1, 310, "z"}, {-3, 1, 1, 310, "z"},
		{1, 1, 1, 272.9, "temperature"}, {1, 1, 1, 320.1, "temperature"}, {1, 1, 1, math.NaN(), "temperature"},
		{1, math.NaN(), 1, 310, "c_out"}, {1, 1, math.Inf(1), 310, "c_in"},
	} {
		_, err := Nernst(tc.z, tc.out, tc.in, tc.temp)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.wantName {
			t.Errorf("Nernst(%d, %v, %v, %v) error %v, want field %s", tc.z, tc.out, tc.in, tc.temp, err, tc.wantName)
		}
	}
}

func TestIFS(t *testing.T) {
	t.Parallel()
	const seeds = 200
	sum := 0.0
	for seed := range uint64(seeds) {
		pts, lyap, err := GenerateIFS(DefaultIFSTransforms, DefaultIFSPoints, rand.New(rand.NewPCG(seed, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != DefaultIFSPoints {
			t.Fatalf("%d points", len(pts))
		}
		// det = s² with s ∈ [0.2, 0.5]: λ ∈ [2 ln 0.2, 2 ln 0.5].
		if lyap >= 0 || lyap < 2*math.Log(0.2) || lyap > 2*math.Log(0.5) {
			t.Fatalf("seed %d: λ = %v outside [2 ln 0.2, 2 ln 0.5]", seed, lyap)
		}
		// Contractive maps with |translation| ≤ 1 and scale ≤ 0.5 keep
		// the orbit within radius √2/(1−0.5).
		for _, p := range pts {
			if math.Hypot(p[0], p[1]) > 2*math.Sqrt2+1e-9 {
				t.Fatalf("seed %d: point %v escapes the attractor's bound", seed, p)
			}
		}
		sum += lyap
	}
	// E[2 ln s] for s ~ U(0.2, 0.5) = 2·[s ln s − s]_{0.2}^{0.5}/0.3 ≈ −2.1645.
	want := 2 * ((0.5*math.Log(0.5) - 0.5) - (0.2*math.Log(0.2) - 0.2)) / 0.3
	if m := sum / seeds; math.Abs(m-want) > 0.05 {
		t.Errorf("mean λ over %d seeds = %v, want ≈ %v", seeds, m, want)
	}
	// Same seed, same output.
	p1, l1, _ := GenerateIFS(4, 1000, rand.New(rand.NewPCG(5, 5)))
	p2, l2, _ := GenerateIFS(4, 1000, rand.New(rand.NewPCG(5, 5)))
	if l1 != l2 || p1[999] != p2[999] {
		t.Error("GenerateIFS is not deterministic")
	}
	// Every map is a similarity with the drawn scale.
	f, err := NewIFS(8, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Maps {
		if m.A != m.D || m.B != -m.C || m.Det() < 0.04-1e-12 || m.Det() > 0.25+1e-12 {
			t.Errorf("map %+v is not a similarity with scale in [0.2, 0.5]", m)
		}
	}
	for _, tc := range []struct{ tr, pts int }{{1, 1000}, {9, 1000}, {4, 999}, {4, 100001}} {
		if _, _, err := GenerateIFS(tc.tr, tc.pts, rand.New(rand.NewPCG(1, 1))); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("GenerateIFS(%d, %d) error %v", tc.tr, tc.pts, err)
		}
	}
	if _, _, err := GenerateIFS(4, 1000, nil); !errors.Is(err, ErrNilRand) {
		t.Errorf("nil rng: %v", err)
	}
}

func TestPairwiseSumMatchesNumPyOrder(t *testing.T) {
	t.Parallel()
	// Small integers sum exactly in any order: a value check.
	x := make([]float64, 300)
	for i := range x {
		x[i] = float64(i%7) - 3
	}
	want := 0.0
	for _, v := range x {
		want += v
	}
	if got := pairwiseSum(x); got != want {
		t.Errorf("pairwiseSum of small integers = %v, want %v", got, want)
	}
	// 1e16 in lane 0 absorbs the +1s added to it sequentially, but the
	// other lanes' 1s survive: 16 elements = 2 rounds of 8 lanes.
	y := make([]float64, 16)
	y[0] = 1e16
	for i := 1; i < 16; i++ {
		y[i] = 1
	}
	// lanes: r0 = 1e16 + 1 (=1e16), r1..r7 = 2 each → ((1e16+2)+(4))+((4)+(4)) = 1e16+14
	if got := pairwiseSum(y); got != 1e16+14 {
		t.Errorf("pairwiseSum lane order: %v, want %v", got, 1e16+14)
	}
	if pairwiseSum(nil) != 0 || pairwiseSum([]float64{2.5}) != 2.5 {
		t.Error("pairwiseSum of short slices")
	}
}

func TestCubeFourthExact(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		x := (rng.Float64() - 0.5) * 200
		// The compensated powers stay within rounding of the naive ones.
		c := cube(x)
		if r := math.Abs(c-x*x*x) / math.Abs(c); r > 4e-16 {
			t.Fatalf("cube(%v) = %v, naive %v", x, c, x*x*x)
		}
		f := fourth(x)
		if r := math.Abs(f-x*x*x*x) / f; r > 6e-16 {
			t.Fatalf("fourth(%v) = %v, naive %v", x, f, x*x*x*x)
		}
	}
	if cube(3) != 27 || fourth(3) != 81 || cube(-2) != -8 {
		t.Error("cube/fourth of small integers")
	}
}
