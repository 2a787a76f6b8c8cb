package learn

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func seqDataset(n, classes int) *Dataset {
	d := &Dataset{X: make([]float64, n), Y: make([]int, n), Dim: 1, Classes: classes}
	for i := range n {
		d.X[i] = float64(i)
		d.Y[i] = i % classes
	}
	return d
}

func TestSplitTrainTestDeterministicDisjoint(t *testing.T) {
	d := seqDataset(101, 3)
	tr, te, err := SplitTrainTest(d, 0.2, rand.New(rand.NewPCG(4, 5)))
	if err != nil {
		t.Fatal(err)
	}
	if te.Len() != 20 || tr.Len() != 81 {
		t.Fatalf("sizes %d/%d", tr.Len(), te.Len())
	}
	seen := map[float64]bool{}
	for _, v := range append(slices.Clone(tr.X), te.X...) {
		if seen[v] {
			t.Fatalf("row %v in both splits", v)
		}
		seen[v] = true
	}
	if len(seen) != 101 {
		t.Fatalf("%d distinct rows", len(seen))
	}
	for i, v := range te.X {
		if te.Y[i] != int(v)%3 {
			t.Fatal("labels not carried with rows")
		}
	}
	tr2, te2, _ := SplitTrainTest(d, 0.2, rand.New(rand.NewPCG(4, 5)))
	if !slices.Equal(tr.X, tr2.X) || !slices.Equal(te.X, te2.X) {
		t.Error("same seed, different split")
	}
	_, te3, _ := SplitTrainTest(d, 0.2, rand.New(rand.NewPCG(4, 6)))
	if slices.Equal(te.X, te3.X) {
		t.Error("different seed, same split")
	}
	for _, f := range []float64{0, 1, -0.1} {
		if _, _, err := SplitTrainTest(d, f, rand.New(rand.NewPCG(1, 1))); !errors.Is(err, ErrPartition) {
			t.Errorf("fraction %v: %v", f, err)
		}
	}
}

func TestParsePartitionAndDeal(t *testing.T) {
	for s, want := range map[string]float64{"iid": 0, "dirichlet:0.5": 0.5, "dirichlet:10": 10} {
		p, err := ParsePartition(s)
		if err != nil || p.Alpha != want || p.String() != s {
			t.Errorf("%q: %+v %v", s, p, err)
		}
	}
	for _, s := range []string{"", "dirichlet", "dirichlet:0", "dirichlet:-1", "dirichlet:inf", "shards"} {
		if _, err := ParsePartition(s); !errors.Is(err, ErrPartition) {
			t.Errorf("%q accepted", s)
		}
	}
	d := seqDataset(300, 3)
	for _, spec := range []PartitionSpec{{}, {Alpha: 0.3}} {
		parts, err := PartitionDataset(d, spec, 7, rand.New(rand.NewPCG(9, 9)))
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, p := range parts {
			if p.Len() < 1 || p.Classes != 3 {
				t.Errorf("%v: client with %d rows", spec, p.Len())
			}
			total += p.Len()
		}
		if total != 300 {
			t.Errorf("%v: %d rows dealt", spec, total)
		}
	}
}
