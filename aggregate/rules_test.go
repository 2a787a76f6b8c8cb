package aggregate

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// Five points in the plane, in the order e, c, a, d, b:
//
//	a=(0,0) b=(1,0) c=(0,1.5) d=(3,0) e=(10,10)
//
// With f = 1 each Krum score sums the 5−1−2 = 2 smallest squared
// distances: a: 1 (b) + 2.25 (c) = 3.25; b: 1 (a) + 3.25 (c) = 4.25;
// c: 2.25 + 3.25 = 5.5; d: 4 (b) + 9 (a) = 13; e: 149 (d) + 172.25 (c).
var krumPoints = [][]float64{{10, 10}, {0, 1.5}, {0, 0}, {3, 0}, {1, 0}}

func TestKrumByHand(t *testing.T) {
	out, rep, err := must(NewKrum(1)).Aggregate(krumPoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "krum", out, []float64{0, 0}, 0)
	near(t, "krum scores", rep.Scores, []float64{321.25, 5.5, 3.25, 13, 4.25}, 1e-12)
	if !slices.Equal(rep.Used, []int{2}) {
		t.Fatalf("used %v, want [2]", rep.Used)
	}
	// Multi-Krum with m = n − f = 4 averages a, b, c, d.
	out, rep, err = must(NewMultiKrum(1, 0)).Aggregate(krumPoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "multi-krum", out, []float64{1, 0.375}, 1e-15)
	if !slices.Equal(rep.Used, []int{1, 2, 3, 4}) || rep.Rejected[0].Index != 0 {
		t.Fatalf("used %v rejected %v", rep.Used, rep.Rejected)
	}
	// Hierarchical Krum with one cluster: budget min(⌈5·0.2⌉, ⌊(5−3)/2⌋) = 1,
	// 5 > 2·1+2, so it is Krum with f = 1, and one representative is final.
	out, _, err = must(NewHierarchicalKrum(1, 0.2, nil)).Aggregate(krumPoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "hierarchical krum, one cluster", out, []float64{0, 0}, 0)
}

func TestHierarchicalKrumTopByHand(t *testing.T) {
	// Seven representatives 0,1,2,3,4,5,100: budget min(⌈1.4⌉, 2) = 2,
	// 7 > 6 so Krum with 3 neighbours: scores 14, 6, 6, 6, 6, 14, … — the
	// tie among 1..4 goes to the smallest vector, 1. Lower median (rank 3)
	// is 3. Result 0.7·1 + 0.3·3 = 1.6.
	reps := [][]float64{{3}, {100}, {0}, {5}, {1}, {4}, {2}}
	near(t, "top level", hkrumTop(reps, 1, 0.2), []float64{1.6}, 1e-15)
	// Three representatives: budget min(1, 0) = 0, 3 > 2, Krum with one
	// neighbour: 1 and 2 tie (distance 1), 1 wins; lower median of {1,2,9}
	// is 2: 0.7 + 0.6 = 1.3.
	near(t, "three", hkrumTop([][]float64{{9}, {2}, {1}}, 1, 0.2), []float64{1.3}, 1e-15)
	// Two: budget 0 and 2 ≤ 2, so the lower median alone: 1.
	near(t, "two", hkrumTop([][]float64{{9}, {1}}, 1, 0.2), []float64{1}, 0)
}

func TestCoordinateWiseByHand(t *testing.T) {
	// Coordinate 0 holds 1,100,3,2,4 and coordinate 1 holds 3,−50,0,2,1.
	x := [][]float64{{1, 3}, {100, -50}, {3, 0}, {2, 2}, {4, 1}}
	out, _, err := must(NewTrimmedMean(1)).Aggregate(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "trimmed mean", out, []float64{3, 1}, 1e-15) // (2+3+4)/3, (0+1+2)/3
	out, _, err = must(NewMedian(1)).Aggregate(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "median", out, []float64{3, 1}, 0)
	out, _, err = must(NewMedian(1)).Aggregate([][]float64{{1, 0}, {2, 5}, {3, 1}, {4, 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "even median", out, []float64{2.5, 1.5}, 0)
	out, _, err = FedAvg{}.Aggregate([][]float64{{1, 0}, {4, 2}}, []float64{3, 1})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "weighted mean", out, []float64{1.75, 0.5}, 1e-15)
}

func TestBulyanByHand(t *testing.T) {
	// n = 7, f = 1: θ = 5 by iterated Krum (0…4 beat ±50 in every round),
	// β = 3 values closest to the median 2: {1,2,3}, mean 2.
	x := [][]float64{{50}, {3}, {0}, {-50}, {4}, {2}, {1}}
	out, rep, err := must(NewBulyan(1)).Aggregate(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "bulyan", out, []float64{2}, 1e-15)
	if !slices.Equal(rep.Used, []int{1, 2, 4, 5, 6}) {
		t.Fatalf("used %v", rep.Used)
	}
	// The coordinate step alone: median of 1,2,10,11,12 is 10; the window
	// of three closest is 10,11,12.
	if got := closestToMedianMean([]float64{12, 1, 11, 2, 10}, 3); got != 11 {
		t.Fatalf("closest-to-median mean = %v, want 11", got)
	}
}

func TestGeometricMedianByHand(t *testing.T) {
	// On a line the geometric median is the median.
	gm := must(NewGeometricMedian(1e-12, 2000, 1e-15))
	out, rep, err := gm.Aggregate([][]float64{{0}, {1}, {10}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "geometric median", out, []float64{1}, 1e-3)
	near(t, "distances", rep.Scores, []float64{1, 0, 9}, 1e-3)
	// Weight 5 on 10 outweighs the other two together: the weighted
	// geometric median is 10.
	out, _, err = gm.Aggregate([][]float64{{0}, {1}, {10}}, []float64{1, 1, 5})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "weighted geometric median", out, []float64{10}, 1e-3)
	// Symmetric inputs: the centre of a square.
	out, _, err = gm.Aggregate([][]float64{{0, 0}, {2, 0}, {0, 2}, {2, 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "square", out, []float64{1, 1}, 1e-12)
}

func TestCenteredClippingByHand(t *testing.T) {
	cc := must(NewCenteredClipping(1, 1))
	x := [][]float64{{3, 0}, {0, 0.5}}
	// From 0: (3,0) is clipped to (1,0); (0,0.5) is within τ. v = ½(1, 0.5).
	out, rep, err := cc.Aggregate(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "first round", out, []float64{0.5, 0.25}, 1e-15)
	near(t, "distances to the reference", rep.Scores, []float64{3, 0.5}, 1e-15)
	// The next round starts from (0.5, 0.25).
	v := []float64{0.5, 0.25}
	d1 := []float64{3 - 0.5, 0 - 0.25}
	n1 := math.Hypot(d1[0], d1[1])
	d2 := []float64{0 - 0.5, 0.5 - 0.25}
	want := []float64{v[0] + (d1[0]/n1+d2[0])/2, v[1] + (d1[1]/n1+d2[1])/2}
	out, _, err = cc.Aggregate(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "second round", out, want, 1e-15)
	// Two iterations from a set reference.
	cc2 := must(NewCenteredClipping(1, 2))
	cc2.SetReference([]float64{0, 0})
	first, _, _ := must(NewCenteredClipping(1, 1)).Aggregate(x, nil)
	one := must(NewCenteredClipping(1, 1))
	one.SetReference(first)
	second, _, _ := one.Aggregate(x, nil)
	got, _, err := cc2.Aggregate(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "L = 2 equals two rounds of L = 1", got, second, 1e-15)
	cc2.SetReference([]float64{1})
	if _, _, err := cc2.Aggregate(x, nil); err == nil {
		t.Fatal("reference of the wrong length accepted")
	}
}

func TestPreStepsByHand(t *testing.T) {
	// NNM with f = 1 averages each point with its 2 nearest: 0,1,2 → 1 for
	// the first three, and 10 with 2 and 1 → 13/3.
	res, err := must(NewNNM(1)).Apply([][]float64{{0}, {1}, {2}, {10}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{1, 1, 1, 13.0 / 3} {
		near(t, "nnm", res.Updates[i], []float64{want}, 1e-15)
	}
	if !slices.Equal(res.Sources[3], []int{1, 2, 3}) {
		t.Fatalf("nnm sources %v", res.Sources[3])
	}
	// Static clipping keeps directions.
	res, err = must(NewStaticClipping(1)).Apply([][]float64{{3, 4}, {0.3, 0.4}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "clipped", res.Updates[0], []float64{0.6, 0.8}, 1e-15)
	near(t, "kept", res.Updates[1], []float64{0.3, 0.4}, 0)
	// Bucketing: every input in exactly one bucket, bucket = mean of its
	// members, weight = sum of theirs.
	x := gaussians(seeded(51), 7, 3)
	w := []float64{1, 2, 3, 4, 5, 6, 7}
	res, err = must(NewBucketing(3, seeded(52))).Apply(x, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Updates) != 3 {
		t.Fatalf("%d buckets, want 3", len(res.Updates))
	}
	seen := map[int]int{}
	for b, members := range res.Sources {
		var wsum float64
		rows := [][]float64{}
		for _, i := range members {
			seen[i]++
			wsum += w[i]
			rows = append(rows, x[i])
			if res.Owner[i] != b {
				t.Fatalf("owner of %d is %d, want %d", i, res.Owner[i], b)
			}
		}
		near(t, "bucket mean", res.Updates[b], meanVec(rows), 1e-15)
		if res.Weights[b] != wsum {
			t.Fatalf("bucket weight %v, want %v", res.Weights[b], wsum)
		}
	}
	if len(seen) != 7 {
		t.Fatalf("buckets cover %d of 7 inputs", len(seen))
	}
}

func TestPipelineReportsOriginalIndices(t *testing.T) {
	// A NaN input at position 1 is rejected and consumes one of the two
	// Byzantine inputs of the budget; NNM (f = 1, three neighbours) and the
	// median run on the other four (0, 1, 2, 10 → mixed 1, 1, 1, 13/3 →
	// median 1).
	x := [][]float64{{0}, {math.NaN()}, {1}, {2}, {10}}
	p := must(ParsePipeline("nnm+median", Params{F: 2}))
	out, rep, err := p.Aggregate(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "nnm+median", out, []float64{1}, 1e-15)
	if rep.Rule != "nnm+median" || !slices.Equal(rep.Used, []int{0, 2, 3, 4}) {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Rejected) != 1 || rep.Rejected[0].Index != 1 {
		t.Fatalf("rejected %v", rep.Rejected)
	}
	// Bucketing then Krum: the scores of the members of a bucket are the
	// bucket's, and Used is exactly the chosen bucket's members.
	y := gaussians(seeded(53), 12, 4)
	bk := &Pipeline{Pre: []PreStep{must(NewBucketing(2, seeded(54)))}, Rule: must(NewKrum(1))}
	_, rep, err = bk.Aggregate(y, nil)
	if err != nil {
		t.Fatal(err)
	}
	pre := must(NewBucketing(2, seeded(54)))
	res, _ := pre.Apply(y, nil)
	_, inner, _ := must(NewKrum(1)).Aggregate(res.Updates, nil)
	if !slices.Equal(rep.Used, res.Sources[inner.Used[0]]) {
		t.Fatalf("used %v, want members %v of bucket %d", rep.Used, res.Sources[inner.Used[0]], inner.Used[0])
	}
	for i := range y {
		if rep.Scores[i] != inner.Scores[res.Owner[i]] {
			t.Fatalf("score of input %d = %v, want its bucket's %v", i, rep.Scores[i], inner.Scores[res.Owner[i]])
		}
	}
}

func TestScreenDimension(t *testing.T) {
	x := [][]float64{{1, 2}, {1, 2, 3}, {4, 5, 6}, {7, 8, 9}}
	valid, rej := Screen(x, nil, 0)
	if !slices.Equal(valid, []int{1, 2, 3}) || len(rej) != 1 || rej[0].Index != 0 {
		t.Fatalf("mode length: valid %v rejected %v", valid, rej)
	}
	valid, rej = Screen(x, []float64{1, -1, 1, math.NaN()}, 2)
	if !slices.Equal(valid, []int{0}) || len(rej) != 3 {
		t.Fatalf("dim 2 with bad weights: valid %v rejected %v", valid, rej)
	}
}

// TestWeightsNearOverflow: finite weights whose sum overflows float64 must
// still give the right ratios (FuzzAggregate found the geometric median
// returning NaN and FedAvg the zero vector).
func TestWeightsNearOverflow(t *testing.T) {
	x := [][]float64{{1, 2}, {3, 6}, {5, 0}}
	w := []float64{math.MaxFloat64, math.MaxFloat64 / 2, math.MaxFloat64 / 2}
	out, _, err := FedAvg{}.Aggregate(x, w)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "fedavg", out, []float64{2.5, 2.5}, 1e-15)
	gm, _, err := must(NewGeometricMedian(0, 0, 0)).Aggregate(x, w)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := must(NewGeometricMedian(0, 0, 0)).Aggregate(x, []float64{2, 1, 1})
	near(t, "geometric median", gm, want, 1e-12)
	// After bucketing the weights' sums can reach +Inf: FedAvg refuses,
	// the geometric median falls back to equal weights.
	inf := []float64{math.Inf(1), 1, 1}
	if _, _, err := (FedAvg{}).run(&screened{x: x, w: inf, orig: allIndices(3), total: 3, d: 2}); !errors.Is(err, ErrBadArguments) {
		t.Fatalf("fedavg with an infinite weight: got %v, want ErrBadArguments", err)
	}
	gm, _, err = must(NewGeometricMedian(0, 0, 0)).run(&screened{x: x, w: inf, orig: allIndices(3), total: 3, d: 2})
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ = must(NewGeometricMedian(0, 0, 0)).Aggregate(x, nil)
	near(t, "geometric median, infinite weight", gm, want, 0)
}
