package learn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// SplitTrainTest deals d's rows into a training and a test set: a
// permutation drawn from rng, the first round(testFraction·n) rows (at
// least one, and leaving at least one for training) to test, the rest to
// train, each in the permuted order. The same rng state gives the same
// split. Errors wrap ErrPartition for a fraction outside (0, 1) or fewer
// than 2 rows.
func SplitTrainTest(d *Dataset, testFraction float64, rng *rand.Rand) (train, test *Dataset, err error) {
	n := d.Len()
	if !(testFraction > 0 && testFraction < 1) || n < 2 {
		return nil, nil, fmt.Errorf("%w: test fraction %v of %d rows", ErrPartition, testFraction, n)
	}
	k := min(max(int(math.Round(testFraction*float64(n))), 1), n-1)
	perm := rng.Perm(n)
	return d.Subset(perm[k:]), d.Subset(perm[:k]), nil
}

// PartitionSpec says how a training set is dealt to clients: Alpha zero
// means IID, otherwise Dirichlet(Alpha) label proportions.
type PartitionSpec struct {
	Alpha float64
}

// String returns "iid" or "dirichlet:ALPHA".
func (p PartitionSpec) String() string {
	if p.Alpha == 0 {
		return "iid"
	}
	return "dirichlet:" + strconv.FormatFloat(p.Alpha, 'g', -1, 64)
}

// ParsePartition reads "iid" or "dirichlet:ALPHA" (α > 0, finite).
func ParsePartition(s string) (PartitionSpec, error) {
	if s == "iid" {
		return PartitionSpec{}, nil
	}
	a, ok := strings.CutPrefix(s, "dirichlet:")
	if ok {
		alpha, err := strconv.ParseFloat(a, 64)
		if err == nil && alpha > 0 && !math.IsInf(alpha, 0) {
			return PartitionSpec{Alpha: alpha}, nil
		}
	}
	return PartitionSpec{}, fmt.Errorf("%w: %q (want iid or dirichlet:ALPHA with ALPHA > 0)", ErrPartition, s)
}

// PartitionDataset deals d to clients by spec with PartitionIID or
// PartitionDirichlet (every client at least one sample), returning each
// client's rows as a new Dataset. Deterministic in rng.
func PartitionDataset(d *Dataset, spec PartitionSpec, clients int, rng *rand.Rand) ([]*Dataset, error) {
	var parts [][]int
	var err error
	if spec.Alpha == 0 {
		parts, err = PartitionIID(d.Len(), clients, rng)
	} else {
		parts, err = PartitionDirichlet(d.Y, d.Classes, clients, spec.Alpha, 1, rng)
	}
	if err != nil {
		return nil, err
	}
	out := make([]*Dataset, len(parts))
	for i, p := range parts {
		out[i] = d.Subset(p)
	}
	return out, nil
}
