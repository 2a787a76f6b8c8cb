package serveropt

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func randVec(r *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = scale * r.NormFloat64()
	}
	return v
}

func mustParse(t *testing.T, s string) Spec {
	t.Helper()
	sp, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return sp.Resolved()
}

// FedAvgM with β = 0 and η = 1 is plain FedAvg: x + Δ, bit for bit.
func TestFedAvgMIsFedAvg(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	spec := mustParse(t, "fedavgm:lr=1,momentum=0")
	x := randVec(r, 257, 1)
	var st *State
	for round := 0; round < 5; round++ {
		delta := randVec(r, len(x), 0.1)
		next, model, err := Step(spec, st, x, delta)
		if err != nil {
			t.Fatal(err)
		}
		for i := range x {
			if want := x[i] + delta[i]; math.Float64bits(model[i]) != math.Float64bits(want) {
				t.Fatalf("round %d param %d: %v, FedAvg gives %v", round, i, model[i], want)
			}
		}
		st, x = next, model
	}
	if st.Steps != 5 || st.V != nil {
		t.Fatalf("state after 5 steps: steps %d, v %v", st.Steps, st.V != nil)
	}
}

// An adaptive method's first step moves each coordinate by ≈ η for Adam
// and Yogi (m = (1−β1)Δ, √v = √(1−β2)|Δ| = (1−β1)|Δ| at the defaults) and
// by ≈ (1−β1)·η for Adagrad (v = Δ²).
func TestAdaptiveFirstStep(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := randVec(r, 100, 1)
	delta := randVec(r, 100, 1)
	for i := range delta { // |Δ| ≫ τ
		if math.Abs(delta[i]) < 0.05 {
			delta[i] = math.Copysign(0.05, delta[i])
		}
	}
	for _, tc := range []struct {
		spec string
		want float64 // |x' − x| per coordinate
	}{
		{"fedadam:lr=0.01", 0.01},
		{"fedyogi:lr=0.01", 0.01},
		{"fedadagrad:lr=0.1", 0.01},
		{"fedadam:lr=0.5,beta1=0", 0.5 / math.Sqrt(0.01) * math.Sqrt(1)}, // β1 = 0: m = Δ, √v = 0.1|Δ|: 10η
	} {
		t.Run(tc.spec, func(t *testing.T) {
			spec := mustParse(t, tc.spec)
			_, model, err := Step(spec, nil, x, delta)
			if err != nil {
				t.Fatal(err)
			}
			for i := range x {
				step := model[i] - x[i]
				if math.Signbit(step) != math.Signbit(delta[i]) {
					t.Fatalf("coordinate %d moved %v against Δ %v", i, step, delta[i])
				}
				if rel := math.Abs(math.Abs(step)-tc.want) / tc.want; rel > 0.25 {
					t.Fatalf("coordinate %d moved %v, want ≈ %v (Δ %v)", i, step, tc.want, delta[i])
				}
			}
		})
	}
}

// reference recomputes the update rules literally, without the package's
// rounding discipline, for a known-answer check.
func reference(spec Spec, m, v, x, d float64) (float64, float64, float64) {
	eta, tau := spec.LR, spec.Tau
	if spec.Name == FedAvgM {
		m = *spec.Momentum*m + d
		return m, 0, x + eta*m
	}
	b1 := *spec.Beta1
	m = b1*m + (1-b1)*d
	switch spec.Name {
	case FedAdam:
		v = *spec.Beta2*v + (1-*spec.Beta2)*d*d
	case FedYogi:
		s := 0.0
		if v-d*d > 0 {
			s = 1
		} else if v-d*d < 0 {
			s = -1
		}
		v = v - (1-*spec.Beta2)*d*d*s
	case FedAdagrad:
		v = v + d*d
	}
	return m, v, x + eta*m/(math.Sqrt(v)+tau)
}

func TestKnownAnswers(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, name := range Names {
		t.Run(name, func(t *testing.T) {
			spec := mustParse(t, name)
			x := randVec(r, 64, 1)
			var st *State
			m, v := make([]float64, len(x)), make([]float64, len(x))
			want := slices.Clone(x)
			for round := 0; round < 20; round++ {
				delta := randVec(r, len(x), 0.05)
				next, model, err := Step(spec, st, x, delta)
				if err != nil {
					t.Fatal(err)
				}
				for i := range x {
					m[i], v[i], want[i] = reference(spec, m[i], v[i], want[i], delta[i])
					if math.Abs(model[i]-want[i]) > 1e-12*(1+math.Abs(want[i])) {
						t.Fatalf("round %d param %d: %v, want %v", round, i, model[i], want[i])
					}
					if next.V != nil && next.V[i] < 0 {
						t.Fatalf("round %d: v[%d] = %v < 0", round, i, next.V[i])
					}
				}
				st, x = next, model
			}
		})
	}
}

// Step is pure: the inputs are unchanged, and the same inputs give the
// same bits.
func TestStepPure(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, name := range Names {
		spec := mustParse(t, name)
		x, d := randVec(r, 33, 1), randVec(r, 33, 0.1)
		st, _, err := Step(spec, nil, x, d)
		if err != nil {
			t.Fatal(err)
		}
		stEnc, _ := st.MarshalBinary()
		xc, dc := slices.Clone(x), slices.Clone(d)
		s1, m1, err1 := Step(spec, st, x, d)
		s2, m2, err2 := Step(spec, st, x, d)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		after, _ := st.MarshalBinary()
		if !bytes.Equal(stEnc, after) || !slices.Equal(x, xc) || !slices.Equal(d, dc) {
			t.Fatalf("%s: Step changed its inputs", name)
		}
		e1, _ := s1.MarshalBinary()
		e2, _ := s2.MarshalBinary()
		if !bytes.Equal(e1, e2) || !slices.Equal(m1, m2) {
			t.Fatalf("%s: two equal steps differ", name)
		}
	}
}

// Step and Advance agree: x + increment is Step's model bit for bit.
func TestAdvanceMatchesStep(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, name := range Names {
		spec := mustParse(t, name)
		x, d := randVec(r, 40, 1), randVec(r, 40, 0.1)
		_, model, err := Step(spec, nil, x, d)
		if err != nil {
			t.Fatal(err)
		}
		_, inc, err := Advance(spec, nil, d)
		if err != nil {
			t.Fatal(err)
		}
		for i := range x {
			if math.Float64bits(x[i]+inc[i]) != math.Float64bits(model[i]) {
				t.Fatalf("%s: param %d differs", name, i)
			}
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, name := range Names {
		spec := mustParse(t, name)
		x := randVec(r, 50, 1)
		var st *State
		for k := 0; k < 3; k++ {
			var err error
			if st, x, err = Step(spec, st, x, randVec(r, 50, 0.3)); err != nil {
				t.Fatal(err)
			}
		}
		b, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		b2, _ := back.MarshalBinary()
		if !bytes.Equal(b, b2) || back.Steps != 3 {
			t.Fatalf("%s: binary round trip differs", name)
		}
		for i := range st.M {
			if math.Float64bits(st.M[i]) != math.Float64bits(back.M[i]) {
				t.Fatalf("%s: m[%d] differs", name, i)
			}
		}
		j, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		var viaJSON State
		if err := json.Unmarshal(j, &viaJSON); err != nil {
			t.Fatal(err)
		}
		b3, _ := viaJSON.MarshalBinary()
		if !bytes.Equal(b, b3) {
			t.Fatalf("%s: JSON round trip differs", name)
		}
		// The restored state steps exactly as the original.
		d := randVec(r, 50, 0.1)
		_, m1, _ := Step(spec, st, x, d)
		_, m2, _ := Step(spec, &back, x, d)
		if !slices.Equal(m1, m2) {
			t.Fatalf("%s: restored state steps differently", name)
		}
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good, _ := (&State{Steps: 2, M: []float64{1, 2}, V: []float64{3, 4}}).MarshalBinary()
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"empty":     nil,
		"magic":     mut(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":   mut(func(b []byte) []byte { b[6] = 9; return b }),
		"flags":     mut(func(b []byte) []byte { b[7] = 2; return b }),
		"truncated": good[:len(good)-1],
		"trailing":  append(bytes.Clone(good), 0),
		"huge dim":  mut(func(b []byte) []byte { b[23] = 0x7f; return b }),
		"nan":       mut(func(b []byte) []byte { copy(b[headerLen:], []byte{1, 0, 0, 0, 0, 0, 0xf8, 0x7f}); return b }),
		"negative v": mut(func(b []byte) []byte {
			b[len(b)-1] |= 0x80
			return b
		}),
	} {
		var st State
		if err := st.UnmarshalBinary(b); !errors.Is(err, ErrState) {
			t.Errorf("%s: err %v, want ErrState", name, err)
		}
	}
}

func TestStepErrors(t *testing.T) {
	spec := mustParse(t, "fedadam")
	if _, _, err := Step(spec, nil, []float64{1}, []float64{1, 2}); !errors.Is(err, ErrStep) {
		t.Errorf("dim mismatch: %v", err)
	}
	if _, _, err := Step(spec, nil, []float64{1}, []float64{math.NaN()}); !errors.Is(err, ErrStep) {
		t.Errorf("NaN aggregate: %v", err)
	}
	avgm := NewState(mustParse(t, "fedavgm"), 1)
	if _, _, err := Step(spec, avgm, []float64{1}, []float64{1}); !errors.Is(err, ErrStep) {
		t.Errorf("FedAvgM state given to Adam: %v", err)
	}
	if _, _, err := Step(mustParse(t, "fedavgm:lr=1e6"), nil, []float64{math.MaxFloat64}, []float64{1e300}); !errors.Is(err, ErrStep) {
		t.Errorf("overflow: %v", err)
	}
}

func TestParseAndValidate(t *testing.T) {
	for _, ok := range []string{"fedavgm", "fedadam:lr=0.03,tau=1e-3", "fedyogi:beta1=0,beta2=0.9", "fedadagrad:lr=1", "FedAvgM:momentum=0"} {
		s, err := Parse(ok)
		if err != nil {
			t.Errorf("Parse(%q): %v", ok, err)
			continue
		}
		back, err := Parse(s.String())
		if err != nil || back.String() != s.String() {
			t.Errorf("Parse(%q).String() = %q does not round-trip: %v", ok, s.String(), err)
		}
	}
	for text, field := range map[string]string{
		"adam":                                "optimizer.name",
		"fedadam:lr=-1":                       "optimizer.lr",
		"fedadam:lr=0":                        "optimizer.lr",
		"fedadam:beta1=1":                     "optimizer.beta1",
		"fedadam:beta2=-0.1":                  "optimizer.beta2",
		"fedadam:tau=0.0":                     "optimizer.name", // tau=0 means default: valid (replaced below)
		"fedavgm:beta1=0.9":                   "optimizer.beta1",
		"fedavgm:tau=0.1":                     "optimizer.tau",
		"fedadam:momentum=0.9":                "optimizer.momentum",
		"fedadagrad:beta2=0.9":                "optimizer.beta2",
		"fedadam:lr=1,lr=2":                   "optimizer.lr",
		"fedadam:x=1":                         "unknown parameter",
		"fedadam:lr=NaN":                      "optimizer.lr",
		"fedadam:tau=1e-20":                   "optimizer.tau",
		"fedadam:lr":                          "key=value",
		"fedavgm:momentum=1.5":                "optimizer.momentum",
		"fedadam:" + strings.Repeat("x", 300): "bytes long",
	} {
		if text == "fedadam:tau=0.0" {
			if _, err := Parse(text); err != nil {
				t.Errorf("tau=0 means the default: %v", err)
			}
			continue
		}
		_, err := Parse(text)
		if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), field) {
			t.Errorf("Parse(%q) = %v, want an ErrSpec naming %s", text, err, field)
		}
	}
}

func TestResolvedDefaults(t *testing.T) {
	a := Spec{Name: FedAdam}.Resolved()
	if a.LR != DefaultLRAdaptive || *a.Beta1 != DefaultBeta1 || *a.Beta2 != DefaultBeta2 || a.Tau != DefaultTau || a.Momentum != nil {
		t.Errorf("fedadam defaults: %+v", a)
	}
	m := Spec{Name: FedAvgM, Momentum: ptr(0)}.Resolved()
	if m.LR != 1 || *m.Momentum != 0 || m.Beta1 != nil || m.Tau != 0 {
		t.Errorf("fedavgm with momentum 0: %+v", m)
	}
	g := Spec{Name: FedAdagrad}.Resolved()
	if g.LR != DefaultLRAdagrad || g.Beta2 != nil {
		t.Errorf("fedadagrad defaults: %+v", g)
	}
	if err := a.Validate(); err != nil {
		t.Errorf("resolved spec invalid: %v", err)
	}
	if err := g.Validate(); err != nil {
		t.Errorf("resolved spec invalid: %v", err)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("resolved spec invalid: %v", err)
	}
}
