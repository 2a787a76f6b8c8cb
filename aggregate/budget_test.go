package aggregate

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// withInserted returns honest with extra vectors inserted so that extra[k]
// ends up at position at[k] (at ascending), and the positions of the
// honest vectors in the result.
func withInserted(honest [][]float64, at []int, extra [][]float64) (all [][]float64, honestAt []int) {
	all = slices.Clone(honest)
	for k, p := range at {
		all = slices.Insert(all, p, extra[k])
	}
	for i := range all {
		if !slices.Contains(at, i) {
			honestAt = append(honestAt, i)
		}
	}
	return all, honestAt
}

func nanVector(d int) []float64 {
	v := make([]float64, d)
	for k := range v {
		v[k] = float64(k)
	}
	v[d/2] = math.NaN()
	return v
}

func constVector(d int, c float64) []float64 { return slices.Repeat([]float64{c}, d) }

// checkRejectedNaN asserts that the inputs at positions at are rejected as
// NaN and not used.
func checkRejectedNaN(t *testing.T, rep Report, at []int) {
	t.Helper()
	for _, p := range at {
		if slices.Contains(rep.Used, p) {
			t.Errorf("NaN input %d reported as used", p)
		}
		i := slices.IndexFunc(rep.Rejected, func(r Rejection) bool { return r.Index == p })
		if i < 0 || !strings.Contains(rep.Rejected[i].Reason, "NaN") {
			t.Errorf("NaN input %d not rejected as NaN: %v", p, rep.Rejected)
		}
	}
}

// TestRejectedInputsConsumeBudget: 10 honest inputs and 4 NaN ones with
// f = 4. The NaN inputs are the 4 faults, so every rule must run on the 10
// honest inputs exactly as it does with f = 0 on them alone.
func TestRejectedInputsConsumeBudget(t *testing.T) {
	const d, f = 16, 4
	honest := gaussians(seeded(71), 10, d)
	nanAt := []int{0, 3, 8, 13}
	all, honestAt := withInserted(honest, nanAt, slices.Repeat([][]float64{nanVector(d)}, len(nanAt)))
	for _, rc := range ruleCases {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			out, rep, err := rc.make(f).Aggregate(all, nil)
			if err != nil {
				t.Fatalf("10 honest + 4 NaN with f = 4: %v", err)
			}
			checkReport(t, rep, rc.make(f).Name(), len(all))
			checkRejectedNaN(t, rep, nanAt)
			for _, i := range rep.Used {
				if !slices.Contains(honestAt, i) {
					t.Errorf("used input %d is not honest", i)
				}
			}
			want, wrep, err := rc.equivalent(f, len(nanAt), len(all)).Aggregate(honest, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := maxAbsDiff(out, want); diff != 0 {
				t.Fatalf("differs from the rule with f = 0 on the honest inputs by %g", diff)
			}
			var used []int
			for _, i := range wrep.Used {
				used = append(used, honestAt[i])
			}
			if !slices.Equal(rep.Used, used) {
				t.Fatalf("used %v, want %v (the f = 0 rule's choice among the honest)", rep.Used, used)
			}
			// NNM with the effective f = 0 mixes all ten into their mean;
			// a rule after it then returns that mean. Had NNM and the rule
			// counted f differently, it would not.
			if strings.HasPrefix(rc.name, "nnm+") {
				if diff := maxAbsDiff(out, meanVec(honest)); diff > 1e-12 {
					t.Fatalf("nnm with f_eff = 0 should give the mean of the honest inputs; differs by %g", diff)
				}
			}
		})
	}
	// Without the NaN inputs, f = 4 is too many for Krum on 10 inputs: the
	// rejections are what make the round possible.
	if _, _, err := must(NewKrum(f)).Aggregate(honest, nil); !errors.Is(err, ErrRequirement) {
		t.Fatalf("krum f = 4 on 10 inputs: got %v, want ErrRequirement", err)
	}
}

// TestRejectedInputsAndOutliers: 10 honest, 2 NaN and 2 crafted outliers
// with f = 4. The NaN inputs consume two units of the budget and the
// rules must still exclude the two outliers with f_eff = 2.
func TestRejectedInputsAndOutliers(t *testing.T) {
	const d, f = 8, 4
	honest := gaussians(seeded(73), 10, d)
	badAt := []int{1, 5, 9, 12}
	extra := [][]float64{nanVector(d), constVector(d, 50), nanVector(d), constVector(d, 50.5)}
	all, honestAt := withInserted(honest, badAt, extra)
	nanAt, outlierAt := []int{1, 9}, []int{5, 12}

	// run aggregates all; selects says the rule reports only the inputs
	// it selected as used (the coordinate-wise rules list every valid
	// input, and are checked by value instead).
	run := func(t *testing.T, r Rule, selects bool) ([]float64, Report) {
		t.Helper()
		out, rep, err := r.Aggregate(all, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep, r.Name(), len(all))
		checkRejectedNaN(t, rep, nanAt)
		for _, p := range outlierAt {
			if selects && slices.Contains(rep.Used, p) {
				t.Fatalf("outlier %d used", p)
			}
		}
		return out, rep
	}
	// sortedCol returns coordinate c of the honest inputs, sorted.
	sortedCol := func(c int) []float64 {
		col := make([]float64, len(honest))
		for i, x := range honest {
			col[i] = x[c]
		}
		slices.Sort(col)
		return col
	}

	t.Run("krum", func(t *testing.T) {
		out, rep := run(t, must(NewKrum(f)), true)
		if len(rep.Used) != 1 || !slices.Equal(out, all[rep.Used[0]]) {
			t.Fatalf("krum returned %v, used %v", out, rep.Used)
		}
	})
	t.Run("multi-krum", func(t *testing.T) {
		// m = n − f_eff = 12 − 2: exactly the honest ones.
		out, rep := run(t, must(NewMultiKrum(f, 0)), true)
		if !slices.Equal(rep.Used, honestAt) {
			t.Fatalf("used %v, want the honest %v", rep.Used, honestAt)
		}
		if diff := maxAbsDiff(out, meanVec(honest)); diff > 1e-12 {
			t.Fatalf("differs from the honest mean by %g", diff)
		}
	})
	t.Run("trimmed-mean", func(t *testing.T) {
		// Two dropped per side: the outliers on top, the two lowest
		// honest values at the bottom.
		out, _ := run(t, must(NewTrimmedMean(f)), false)
		for c := range out {
			col := sortedCol(c)
			var s float64
			for _, v := range col[2:] {
				s += v
			}
			if want := s / 8; math.Abs(out[c]-want) > 1e-12 {
				t.Fatalf("coordinate %d: %v, want %v", c, out[c], want)
			}
		}
	})
	t.Run("median", func(t *testing.T) {
		// Twelve values, the outliers the two largest: ranks 5 and 6 of
		// the twelve are ranks 5 and 6 of the honest.
		out, _ := run(t, must(NewMedian(f)), false)
		for c := range out {
			col := sortedCol(c)
			if want := (col[5] + col[6]) / 2; out[c] != want {
				t.Fatalf("coordinate %d: %v, want %v", c, out[c], want)
			}
		}
	})
	t.Run("bulyan", func(t *testing.T) {
		// n = 12 ≥ 4·2+3; θ = 12 − 4 = 8 selected. The two outliers sit
		// 0.5 apart and may be selected late, when Krum counts one
		// neighbour, but in each coordinate they are then the two largest
		// of 8 and outside the β = 4 values closest to the median: the
		// result stays within the honest range.
		out, rep := run(t, must(NewBulyan(f)), false)
		if len(rep.Used) != 8 {
			t.Fatalf("bulyan used %d inputs, want θ = 8", len(rep.Used))
		}
		for c := range out {
			col := sortedCol(c)
			if out[c] < col[0] || out[c] > col[len(col)-1] {
				t.Fatalf("coordinate %d: %v outside the honest range [%v, %v]", c, out[c], col[0], col[len(col)-1])
			}
		}
	})
	t.Run("nnm+krum", func(t *testing.T) {
		run(t, must(ParsePipeline("nnm+krum", Params{F: f})), true)
	})
	t.Run("nnm+trimmed-mean", func(t *testing.T) {
		// NNM mixes each honest input with its 10 nearest, the honest ones:
		// every honest output is the honest mean, which the trimmed mean
		// (two per side, outputs of the outliers at the top) returns.
		out, _, err := must(ParsePipeline("nnm+trimmed-mean", Params{F: f})).Aggregate(all, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := maxAbsDiff(out, meanVec(honest)); diff > 1e-12 {
			t.Fatalf("differs from the honest mean by %g", diff)
		}
	})
}

func TestRequirementWithBudget(t *testing.T) {
	x := [][]float64{{1, 0}, {2, 1}, {3, 5}, {4, 2}, {5, 9}}
	nan := []float64{math.NaN(), 1}
	tests := []struct {
		name    string
		rule    Rule
		updates [][]float64
		// want is the exact error message; "" means success.
		want                 string
		f, fEff, rejected, n int
	}{
		{name: "krum 3 valid f=1", rule: must(NewKrum(1)), updates: x[:3],
			want: "aggregate: krum needs n > 2f+2 = 4, got n = 3 valid inputs (f = 1)", f: 1, fEff: 1, n: 3},
		{name: "krum 3 valid + 2 NaN f=3", rule: must(NewKrum(3)), updates: append(slices.Clone(x[:3]), nan, nan),
			f: 3, fEff: 1, rejected: 2, n: 3,
			want: "aggregate: krum needs n > 2f+2 = 4, got n = 3 valid inputs (f = 1: configured f = 3 less 2 rejected inputs)"},
		{name: "krum 5 valid + 2 NaN f=3", rule: must(NewKrum(3)), updates: append(slices.Clone(x), nan, nan)},
		{name: "krum 3 valid + 5 NaN f=3", rule: must(NewKrum(3)), updates: append(slices.Clone(x[:3]), nan, nan, nan, nan, nan)},
		{name: "bulyan 4 valid + 1 length f=2", rule: must(NewBulyan(2)), updates: append(slices.Clone(x[:4]), []float64{1}),
			f: 2, fEff: 1, rejected: 1, n: 4,
			want: "aggregate: bulyan needs n ≥ 4f+3 = 7, got n = 4 valid inputs (f = 1: configured f = 2 less 1 rejected input)"},
		// The median sees the NaN only in its own pass: the requirement
		// fails on the 6 shapes, then holds for 3 valid with f_eff = 0.
		{name: "median 3 valid + 3 NaN f=3", rule: must(NewMedian(3)), updates: append(slices.Clone(x[:3]), nan, nan, nan)},
		{name: "median 2 valid + 1 NaN f=3", rule: must(NewMedian(3)), updates: [][]float64{x[0], nan, x[1]},
			f: 3, fEff: 2, rejected: 1, n: 2,
			want: "aggregate: median needs f < n/2, i.e. n > 4, got n = 2 valid inputs (f = 2: configured f = 3 less 1 rejected input)"},
		{name: "trimmed-mean 3 valid + 1 NaN f=2", rule: must(NewTrimmedMean(2)), updates: [][]float64{nan, x[0], x[1], x[2]}},
		{name: "nnm+geometric-median 2 valid + 1 NaN f=3", rule: must(ParsePipeline("nnm+geometric-median", Params{F: 3})),
			updates: [][]float64{x[0], x[1], nan}, f: 3, fEff: 2, rejected: 1, n: 2,
			want: "nnm+geometric-median: aggregate: nnm needs f < n, i.e. n > 2, got n = 2 valid inputs (f = 2: configured f = 3 less 1 rejected input)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.rule.Aggregate(tc.updates, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want success: %v", err)
				}
				return
			}
			var re *RequirementError
			if !errors.As(err, &re) || !errors.Is(err, ErrRequirement) {
				t.Fatalf("got %v, want a *RequirementError", err)
			}
			if err.Error() != tc.want {
				t.Fatalf("message\n%s\nwant\n%s", err, tc.want)
			}
			if re.F != tc.f || re.FEff != tc.fEff || re.Rejected != tc.rejected || re.N != tc.n {
				t.Fatalf("%+v, want F %d FEff %d Rejected %d N %d", re, tc.f, tc.fEff, tc.rejected, tc.n)
			}
		})
	}
	// The median and the trimmed mean that succeed above: by hand.
	out, _, _ := must(NewMedian(3)).Aggregate(append(slices.Clone(x[:3]), nan, nan, nan), nil)
	near(t, "median of three", out, []float64{2, 1}, 0)
	out, _, _ = must(NewTrimmedMean(2)).Aggregate([][]float64{nan, x[0], x[1], x[2]}, nil)
	near(t, "trimmed mean, one per side", out, []float64{2, 1}, 0)
	// NNM on its own receives valid inputs and knows of no rejection.
	if _, err := must(NewNNM(2)).Apply(x[:2], nil); !errors.Is(err, ErrRequirement) {
		t.Fatalf("NNM.Apply f = 2, n = 2: got %v, want ErrRequirement", err)
	}
}

func TestMultiKrumExplicitM(t *testing.T) {
	const d, f = 8, 4
	honest := gaussians(seeded(79), 10, d)
	nans := func(k int) [][]float64 { return slices.Repeat([][]float64{nanVector(d)}, k) }
	tests := []struct {
		name   string
		m      int
		honest int   // how many of honest are given
		at     []int // positions of the NaN inputs
	}{
		{"m=10, 4 rejected: m stays", 10, 10, []int{0, 4, 7, 13}},
		{"m=10, 5 rejected: m becomes the 9 valid", 10, 9, []int{2, 3, 5, 11, 13}},
		{"m=8, 4 rejected: m stays", 8, 10, []int{0, 4, 7, 13}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := honest[:tc.honest]
			all, honestAt := withInserted(h, tc.at, nans(len(tc.at)))
			out, rep, err := must(NewMultiKrum(f, tc.m)).Aggregate(all, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkRejectedNaN(t, rep, tc.at)
			wantM := min(tc.m, tc.honest)
			if len(rep.Used) != wantM {
				t.Fatalf("used %d inputs, want m = %d", len(rep.Used), wantM)
			}
			// f_eff = 0 here: the same choice as Multi-Krum with f = 0 on
			// the honest inputs alone.
			want, wrep, err := must(NewMultiKrum(0, wantM)).Aggregate(h, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := maxAbsDiff(out, want); diff != 0 {
				t.Fatalf("differs from multi-krum f = 0, m = %d on the honest inputs by %g", wantM, diff)
			}
			for k, i := range wrep.Used {
				if rep.Used[k] != honestAt[i] {
					t.Fatalf("used %v, want honest positions of %v", rep.Used, wrep.Used)
				}
			}
		})
	}
	// An M beyond the inputs given stays an error.
	x := gaussians(seeded(83), 5, d)
	for _, updates := range [][][]float64{x, append(slices.Clone(x), nans(2)...)} {
		_, _, err := must(NewMultiKrum(1, 8)).Aggregate(updates, nil)
		var re *RequirementError
		if !errors.As(err, &re) || !strings.Contains(re.Need, "m = 8") {
			t.Fatalf("m = 8 with %d inputs: got %v, want a *RequirementError on m", len(updates), err)
		}
	}
}

func TestFractionBudget(t *testing.T) {
	s := &screened{x: make([][]float64, 10)}
	if got := s.fractionBudget(0.2); got != 0.2 {
		t.Fatalf("nothing rejected: %v, want 0.2", got)
	}
	s.upstream = 1
	if got, want := s.fractionBudget(0.3), (0.3*11-1)/10; math.Abs(got-want) > 1e-15 {
		t.Fatalf("1 rejected: %v, want %v", got, want)
	}
	s.upstream = 4
	if got := s.fractionBudget(0.2); got != 0 {
		t.Fatalf("4 rejected of 0.2·14 = 2.8 assumed: %v, want 0", got)
	}
	if got := s.budget(3); got != 0 {
		t.Fatalf("budget(3) with 4 rejected = %d, want 0", got)
	}
	s.rejected = []Rejection{{Index: 0, Reason: "x"}}
	if got := s.budget(7); got != 2 {
		t.Fatalf("budget(7) with 4 upstream + 1 rejected = %d, want 2", got)
	}
}
