package aggregate

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// ruleCase describes one rule (or pipeline) for the conformance suite.
type ruleCase struct {
	name string
	// make builds a fresh rule for f Byzantine inputs (stateful rules and
	// seeded shuffles must start afresh for each comparison).
	make func(f int) Rule
	// minN is the smallest valid n the rule accepts for f.
	minN func(f int) int
	// permInvariant: permuting the inputs permutes nothing in the output.
	permInvariant bool
	// usesWeights: the aggregate depends on the weights.
	usesWeights bool
	// meanAtF0: with f = 0 the rule is the plain mean.
	meanAtF0 bool
	// afterRejections builds the rule that a rule made for f must equal
	// once rejected of total inputs were rejected as malformed (the
	// Byzantine budget); nil means make(max(0, f − rejected)).
	afterRejections func(f, rejected, total int) Rule
}

// equivalent returns the rule that rc.make(f) behaves as after rejected of
// total inputs were rejected.
func (rc ruleCase) equivalent(f, rejected, total int) Rule {
	if rc.afterRejections != nil {
		return rc.afterRejections(f, rejected, total)
	}
	return rc.make(max(0, f-rejected))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }

func one(int) int { return 1 }

var ruleCases = []ruleCase{
	{name: "fedavg", make: func(int) Rule { return FedAvg{} }, minN: one, permInvariant: true, usesWeights: true, meanAtF0: true},
	{name: "krum", make: func(f int) Rule { return must(NewKrum(f)) }, minN: func(f int) int { return 2*f + 3 }, permInvariant: true},
	{name: "multi-krum", make: func(f int) Rule { return must(NewMultiKrum(f, 0)) }, minN: func(f int) int { return 2*f + 3 }, permInvariant: true, meanAtF0: true},
	{name: "median", make: func(f int) Rule { return must(NewMedian(f)) }, minN: func(f int) int { return 2*f + 1 }, permInvariant: true},
	{name: "trimmed-mean", make: func(f int) Rule { return must(NewTrimmedMean(f)) }, minN: func(f int) int { return 2*f + 1 }, permInvariant: true, meanAtF0: true},
	{name: "bulyan", make: func(f int) Rule { return must(NewBulyan(f)) }, minN: func(f int) int { return 4*f + 3 }, permInvariant: true, meanAtF0: true},
	{name: "geometric-median", make: func(int) Rule { return must(NewGeometricMedian(0, 0, 0)) }, minN: one, permInvariant: true, usesWeights: true},
	{name: "centered-clipping", make: func(int) Rule { return must(NewCenteredClipping(1e6, 1)) }, minN: one, permInvariant: true, meanAtF0: true},
	{name: "hierarchical-krum", make: func(int) Rule { return must(NewHierarchicalKrum(0, 0.2, seeded(7))) }, minN: one,
		afterRejections: func(_, r, total int) Rule {
			n := float64(total - r)
			return must(NewHierarchicalKrum(0, max(0, 0.2*float64(total)-float64(r))/n, seeded(7)))
		}},
	{name: "nnm+krum", make: func(f int) Rule { return must(ParsePipeline("nnm+krum", Params{F: f})) }, minN: func(f int) int { return 2*f + 3 }, permInvariant: true, meanAtF0: true},
	{name: "nnm+trimmed-mean", make: func(f int) Rule { return must(ParsePipeline("nnm+trimmed-mean", Params{F: f})) }, minN: func(f int) int { return 2*f + 1 }, permInvariant: true, meanAtF0: true},
	{name: "static-clipping+median", make: func(f int) Rule { return must(ParsePipeline("static-clipping+median", Params{F: f, ClipNorm: 1e9})) }, minN: func(f int) int { return 2*f + 1 }, permInvariant: true},
	// Bucketing with S = 2 halves n: the rule then needs its minimum in buckets.
	{name: "bucketing+krum", make: func(f int) Rule {
		return must(ParsePipeline("bucketing+krum", Params{F: f, BucketSize: 2, Seed: 3}))
	}, minN: func(f int) int { return 4*f + 5 }},
	{name: "nnm+bucketing+geometric-median", make: func(f int) Rule {
		return must(ParsePipeline("nnm+bucketing+geometric-median", Params{F: f, Seed: 5}))
	}, minN: func(f int) int { return f + 1 }, usesWeights: true, meanAtF0: true},
}

func gaussians(r *rand.Rand, n, d int) [][]float64 {
	x := make([][]float64, n)
	for i := range x {
		x[i] = make([]float64, d)
		for k := range x[i] {
			x[i][k] = r.NormFloat64()
		}
	}
	return x
}

func maxAbsDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(a[i]-b[i]))
	}
	return m
}

func meanVec(x [][]float64) []float64 {
	m := make([]float64, len(x[0]))
	for _, v := range x {
		for k := range m {
			m[k] += v[k] / float64(len(x))
		}
	}
	return m
}

// checkReport verifies the invariants every Report must satisfy.
func checkReport(t *testing.T, rep Report, name string, total int) {
	t.Helper()
	if rep.Rule != name {
		t.Errorf("Report.Rule = %q, want %q", rep.Rule, name)
	}
	if !slices.IsSorted(rep.Used) {
		t.Errorf("Report.Used not ascending: %v", rep.Used)
	}
	seen := make([]int, total)
	for _, i := range rep.Used {
		seen[i]++
	}
	for _, r := range rep.Rejected {
		seen[r.Index]++
		if r.Reason == "" {
			t.Errorf("rejection of %d has no reason", r.Index)
		}
	}
	for i, c := range seen {
		if c != 1 {
			t.Errorf("input %d appears %d times across Used and Rejected", i, c)
		}
	}
	if rep.Scores != nil && len(rep.Scores) != total {
		t.Errorf("len(Scores) = %d, want %d", len(rep.Scores), total)
	}
}

func TestConformance(t *testing.T) {
	for _, rc := range ruleCases {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			r := seeded(11)
			const d = 37
			f := 2
			n := max(rc.minN(f)+2, 9)
			x := gaussians(r, n, d)

			t.Run("report", func(t *testing.T) {
				out, rep, err := rc.make(f).Aggregate(x, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(out) != d {
					t.Fatalf("len(out) = %d, want %d", len(out), d)
				}
				checkReport(t, rep, rc.make(f).Name(), n)
				if len(rep.Used) == 0 {
					t.Fatal("no input used")
				}
			})

			t.Run("does-not-modify-inputs", func(t *testing.T) {
				cp := make([][]float64, n)
				for i := range x {
					cp[i] = slices.Clone(x[i])
				}
				w := make([]float64, n)
				for i := range w {
					w[i] = float64(i + 1)
				}
				wcp := slices.Clone(w)
				if _, _, err := rc.make(f).Aggregate(x, w); err != nil {
					t.Fatal(err)
				}
				for i := range x {
					if !slices.Equal(cp[i], x[i]) {
						t.Fatalf("input %d modified", i)
					}
				}
				if !slices.Equal(w, wcp) {
					t.Fatal("weights modified")
				}
			})

			t.Run("permutation", func(t *testing.T) {
				if !rc.permInvariant {
					t.Skip("documented as order-dependent (random clustering or shuffling)")
				}
				out1, rep1, err := rc.make(f).Aggregate(x, nil)
				if err != nil {
					t.Fatal(err)
				}
				perm := r.Perm(n)
				px := make([][]float64, n)
				for i, p := range perm {
					px[i] = x[p]
				}
				out2, rep2, err := rc.make(f).Aggregate(px, nil)
				if err != nil {
					t.Fatal(err)
				}
				if diff := maxAbsDiff(out1, out2); diff > 1e-12 {
					t.Fatalf("permuted inputs change the aggregate by %g", diff)
				}
				used2 := make([]int, 0, len(rep2.Used))
				for _, i := range rep2.Used {
					used2 = append(used2, perm[i])
				}
				slices.Sort(used2)
				if !slices.Equal(rep1.Used, used2) {
					t.Fatalf("used set changes under permutation: %v vs %v", rep1.Used, used2)
				}
			})

			t.Run("identical-inputs", func(t *testing.T) {
				v := x[0]
				same := make([][]float64, n)
				for i := range same {
					same[i] = v
				}
				out, _, err := rc.make(f).Aggregate(same, nil)
				if err != nil {
					t.Fatal(err)
				}
				if diff := maxAbsDiff(out, v); diff > 1e-12 {
					t.Fatalf("identical inputs: aggregate differs from the input by %g", diff)
				}
			})

			t.Run("f=0", func(t *testing.T) {
				n0 := max(rc.minN(0), 5)
				x0 := x[:n0]
				out, _, err := rc.make(0).Aggregate(x0, nil)
				if err != nil {
					t.Fatalf("f = 0, n = %d: %v", n0, err)
				}
				if rc.meanAtF0 {
					if diff := maxAbsDiff(out, meanVec(x0)); diff > 1e-12 {
						t.Fatalf("f = 0 should give the mean; differs by %g", diff)
					}
				}
			})

			t.Run("requirement", func(t *testing.T) {
				short := rc.minN(f) - 1
				if short < 1 {
					t.Skip("no requirement beyond one valid input")
				}
				_, _, err := rc.make(f).Aggregate(x[:short], nil)
				var re *RequirementError
				if !errors.Is(err, ErrRequirement) || !errors.As(err, &re) {
					t.Fatalf("n = %d, f = %d: got %v, want a *RequirementError", short, f, err)
				}
				if re.F != f || re.Need == "" || !strings.Contains(err.Error(), "needs") {
					t.Fatalf("requirement error does not say which and why: %v (%+v)", err, re)
				}
				if _, _, err := rc.make(f).Aggregate(x[:short+1], nil); err != nil {
					t.Fatalf("n = %d should satisfy the requirement: %v", short+1, err)
				}
			})

			t.Run("malformed-rejected", func(t *testing.T) {
				bad := [][]float64{
					append(slices.Clone(x[0][:d-1]), math.NaN()),
					append(slices.Clone(x[1][:d-1]), math.Inf(-1)),
					x[2][:d-1],                         // wrong length
					slices.Repeat([]float64{1e200}, d), // squared norm overflows
				}
				mixed := slices.Clone(x)
				badAt := []int{1, 4, 6, n + 3}
				for k, at := range badAt {
					mixed = slices.Insert(mixed, at, bad[k])
				}
				out, rep, err := rc.make(f).Aggregate(mixed, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range out {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatal("non-finite value propagated into the aggregate")
					}
				}
				checkReport(t, rep, rc.make(f).Name(), len(mixed))
				for _, at := range badAt {
					if slices.Contains(rep.Used, at) {
						t.Errorf("malformed input %d reported as used", at)
					}
					i := slices.IndexFunc(rep.Rejected, func(r Rejection) bool { return r.Index == at })
					if i < 0 {
						t.Errorf("malformed input %d not reported", at)
						continue
					}
					if reason := rep.Rejected[i].Reason; !strings.ContainsAny(reason, "NaNInflengthoverflows") {
						t.Errorf("reason %q does not say what is wrong", reason)
					}
				}
				// The malformed inputs are provably faulty: they consume the
				// Byzantine budget, so the rule acts on the rest as with
				// f − 4 (here 0).
				want, _, err := rc.equivalent(f, len(bad), len(mixed)).Aggregate(x, nil)
				if err != nil {
					t.Fatal(err)
				}
				if diff := maxAbsDiff(out, want); diff > 1e-12 {
					t.Fatalf("aggregate with malformed inputs differs from the clean aggregate with the reduced budget by %g", diff)
				}
				// Requirements are checked against the vectors that remain
				// and the effective f: one NaN input leaves f − 1.
				if short := rc.minN(f-1) - 1; short >= 1 {
					withBad := append(slices.Clone(x[:short]), bad[0])
					_, _, err := rc.make(f).Aggregate(withBad, nil)
					var re *RequirementError
					if !errors.As(err, &re) {
						t.Fatalf("%d valid + 1 malformed input: got %v, want a *RequirementError", short, err)
					}
					wantN := short
					if strings.HasPrefix(rc.name, "bucketing+") {
						wantN = (short + 1) / 2 // the rule sees buckets of 2
					}
					if re.F != f || re.FEff != f-1 || re.Rejected != 1 || re.N != wantN {
						t.Fatalf("%d valid + 1 malformed input: %+v, want F = %d, FEff = %d, Rejected = 1, N = %d", short, re, f, f-1, wantN)
					}
					if !strings.Contains(err.Error(), "less 1 rejected input") {
						t.Fatalf("requirement error does not mention the rejection: %v", err)
					}
					withBad = append(slices.Clone(x[:short+1]), bad[0])
					if _, _, err := rc.make(f).Aggregate(withBad, nil); err != nil {
						t.Fatalf("%d valid + 1 malformed input should satisfy the requirement with f = %d: %v", short+1, f-1, err)
					}
				}
			})

			t.Run("weights", func(t *testing.T) {
				w := make([]float64, n)
				for i := range w {
					w[i] = float64(1 + i*i)
				}
				plain, _, err := rc.make(f).Aggregate(x, nil)
				if err != nil {
					t.Fatal(err)
				}
				weighted, _, err := rc.make(f).Aggregate(x, w)
				if err != nil {
					t.Fatal(err)
				}
				diff := maxAbsDiff(plain, weighted)
				if rc.usesWeights && diff < 1e-6 {
					t.Fatalf("weights documented as used but change nothing (%g)", diff)
				}
				if !rc.usesWeights && diff != 0 {
					t.Fatalf("weights documented as ignored but change the aggregate by %g", diff)
				}
				if _, _, err := rc.make(f).Aggregate(x, w[:n-1]); !errors.Is(err, ErrBadArguments) {
					t.Fatalf("short weights: got %v, want ErrBadArguments", err)
				}
			})

			t.Run("deterministic", func(t *testing.T) {
				a, _, err := rc.make(f).Aggregate(x, nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _, err := rc.make(f).Aggregate(x, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(a, b) {
					t.Fatal("same inputs, different aggregates")
				}
			})

			t.Run("no-inputs", func(t *testing.T) {
				if _, _, err := rc.make(f).Aggregate(nil, nil); !errors.Is(err, ErrNoValidInputs) {
					t.Fatalf("got %v, want ErrNoValidInputs", err)
				}
				nan := [][]float64{{math.NaN()}}
				if _, _, err := rc.make(f).Aggregate(nan, nil); !errors.Is(err, ErrNoValidInputs) {
					t.Fatalf("got %v, want ErrNoValidInputs", err)
				}
			})
		})
	}
}

func TestRegistryCoversEveryRule(t *testing.T) {
	for _, name := range RuleNames {
		r, err := New(name, Params{F: 1, ClipNorm: 1})
		if err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		if r.Name() != name {
			t.Errorf("New(%q).Name() = %q", name, r.Name())
		}
	}
	for _, name := range PreStepNames {
		s, err := NewPreStep(name, Params{F: 1, ClipNorm: 1})
		if err != nil {
			t.Fatalf("NewPreStep(%q): %v", name, err)
		}
		if s.Name() != name {
			t.Errorf("NewPreStep(%q).Name() = %q", name, s.Name())
		}
	}
	p, err := ParsePipeline("nnm+bucketing+krum", Params{F: 1})
	if err != nil || p.Name() != "nnm+bucketing+krum" {
		t.Fatalf("ParsePipeline: %v, %v", p, err)
	}
	for _, bad := range []string{"nope", "nnm", "krum+nnm", "nnm+nope"} {
		if _, err := ParsePipeline(bad, Params{}); !errors.Is(err, ErrUnknownName) {
			t.Errorf("ParsePipeline(%q): got %v, want ErrUnknownName", bad, err)
		}
	}
	for _, tc := range []struct {
		name string
		p    Params
	}{
		{"krum", Params{F: -1}},
		{"multi-krum", Params{M: -2}},
		{"geometric-median", Params{Nu: -1}},
		{"centered-clipping", Params{Tau: math.Inf(1)}},
		{"hierarchical-krum", Params{Fraction: 0.5}},
		{"static-clipping+krum", Params{}},
		{"bucketing+krum", Params{BucketSize: -1}},
	} {
		var pe *ParamError
		if _, err := New(tc.name, tc.p); !errors.Is(err, ErrInvalidParam) || !errors.As(err, &pe) {
			t.Errorf("New(%q, %+v): got %v, want a *ParamError", tc.name, tc.p, err)
		}
	}
}
