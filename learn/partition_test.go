package learn

import (
	"errors"
	"slices"
	"testing"
)

func cyclicLabels(n, classes int) []int {
	y := make([]int, n)
	for i := range y {
		y[i] = (i * 7) % classes
	}
	return y
}

// checkCover asserts that parts is a partition of a subset of 0..n-1 (no
// index twice) and returns how many indices it covers.
func checkCover(t *testing.T, parts [][]int, n int) int {
	t.Helper()
	seen := make([]bool, n)
	total := 0
	for c, p := range parts {
		for _, i := range p {
			if i < 0 || i >= n || seen[i] {
				t.Fatalf("client %d: index %d out of range or repeated", c, i)
			}
			seen[i] = true
			total++
		}
	}
	return total
}

func TestPartitionIID(t *testing.T) {
	parts, err := PartitionIID(103, 10, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	if got := checkCover(t, parts, 103); got != 103 {
		t.Fatalf("covers %d of 103", got)
	}
	for c, p := range parts {
		if len(p) != 10 && len(p) != 11 {
			t.Errorf("client %d has %d samples", c, len(p))
		}
	}
	again, _ := PartitionIID(103, 10, testRand(1))
	if !slices.EqualFunc(parts, again, slices.Equal) {
		t.Error("same seed, different partition")
	}
	other, _ := PartitionIID(103, 10, testRand(2))
	if slices.EqualFunc(parts, other, slices.Equal) {
		t.Error("different seeds, same partition")
	}
	if _, err := PartitionIID(5, 10, testRand(1)); !errors.Is(err, ErrPartition) {
		t.Errorf("5 samples for 10 clients: err=%v", err)
	}
}

// dominantShare returns, averaged over clients, the share of the
// client's samples that belong to its most frequent label.
func dominantShare(parts [][]int, y []int, classes int) float64 {
	var s float64
	for _, p := range parts {
		cnt := make([]int, classes)
		for _, i := range p {
			cnt[y[i]]++
		}
		s += float64(slices.Max(cnt)) / float64(len(p))
	}
	return s / float64(len(parts))
}

func TestPartitionDirichlet(t *testing.T) {
	y := cyclicLabels(5000, 10)
	var shares []float64
	for _, alpha := range []float64{100, 0.5, 0.1} {
		parts, err := PartitionDirichlet(y, 10, 10, alpha, 5, testRand(3))
		if err != nil {
			t.Fatal(err)
		}
		if got := checkCover(t, parts, len(y)); got != len(y) {
			t.Fatalf("alpha %v: covers %d of %d", alpha, got, len(y))
		}
		for c, p := range parts {
			if len(p) < 5 {
				t.Errorf("alpha %v: client %d has %d < 5 samples", alpha, c, len(p))
			}
		}
		again, _ := PartitionDirichlet(y, 10, 10, alpha, 5, testRand(3))
		if !slices.EqualFunc(parts, again, slices.Equal) {
			t.Errorf("alpha %v: same seed, different partition", alpha)
		}
		shares = append(shares, dominantShare(parts, y, 10))
	}
	// α=100 is close to IID (dominant label ≈ 10–15 %); α=0.1 concentrates
	// each client on few labels (dominant label well above half).
	if shares[0] > 0.2 || shares[2] < 0.5 || !(shares[0] < shares[1] && shares[1] < shares[2]) {
		t.Errorf("dominant-label shares for alpha 100, 0.5, 0.1 = %.3f, want increasing from <0.2 to >0.5", shares)
	}
	if _, err := PartitionDirichlet(y, 10, 10, 0, 1, testRand(1)); !errors.Is(err, ErrPartition) {
		t.Errorf("alpha 0: err=%v", err)
	}
	if _, err := PartitionDirichlet([]int{0, 1, 2}, 2, 1, 1, 1, testRand(1)); !errors.Is(err, ErrPartition) {
		t.Errorf("label out of range: err=%v", err)
	}
}

func TestPartitionExtreme(t *testing.T) {
	y := cyclicLabels(2000, 10)
	for _, per := range []int{1, 2} {
		for _, clients := range []int{10, 13} {
			parts, err := PartitionExtreme(y, 10, clients, per, testRand(4))
			if err != nil {
				t.Fatal(err)
			}
			if got := checkCover(t, parts, len(y)); got != len(y) {
				t.Errorf("%d clients, %d labels: covers %d of %d", clients, per, got, len(y))
			}
			for c, p := range parts {
				labels := map[int]bool{}
				for _, i := range p {
					labels[y[i]] = true
				}
				if len(labels) > per || len(p) == 0 {
					t.Errorf("%d labels per client: client %d has %d samples and labels %v", per, c, len(p), labels)
				}
			}
			again, _ := PartitionExtreme(y, 10, clients, per, testRand(4))
			if !slices.EqualFunc(parts, again, slices.Equal) {
				t.Error("same seed, different partition")
			}
		}
	}
	// Fewer labels held than exist: 3 clients × 2 labels cover 6 of 10.
	parts, err := PartitionExtreme(y, 10, 3, 2, testRand(4))
	if err != nil {
		t.Fatal(err)
	}
	if got := checkCover(t, parts, len(y)); got != 6*200 {
		t.Errorf("3 clients × 2 labels cover %d samples, want 1200", got)
	}
	if _, err := PartitionExtreme(y, 10, 10, 11, testRand(1)); !errors.Is(err, ErrPartition) {
		t.Errorf("11 labels per client: err=%v", err)
	}
}
