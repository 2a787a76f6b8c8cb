package learn

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"gonum.org/v1/gonum/stat/distmv"
)

// ErrPartition reports partition arguments that cannot be satisfied.
var ErrPartition = errors.New("learn: invalid partition")

// PartitionIID shuffles the indices 0..n-1 and deals them into clients
// parts whose sizes differ by at most one. Errors wrap ErrPartition when
// clients < 1 or n < clients.
func PartitionIID(n, clients int, rng *rand.Rand) ([][]int, error) {
	if clients < 1 || n < clients {
		return nil, fmt.Errorf("%w: %d samples for %d clients", ErrPartition, n, clients)
	}
	perm := rng.Perm(n)
	parts := make([][]int, clients)
	for c := range parts {
		lo, hi := c*n/clients, (c+1)*n/clients
		parts[c] = perm[lo:hi:hi]
	}
	return parts, nil
}

// PartitionDirichlet splits the samples by label in the manner of Hsu, Qi
// & Brown 2019: for each class, proportions over the clients are drawn from
// a symmetric Dirichlet(α) and that class's shuffled samples are cut in
// those proportions. α → ∞ approaches IID; α = 0.1 leaves most clients with
// one or two dominant labels. Draws are repeated (at most 1,000 times) until
// every client holds at least minSize samples. Errors wrap ErrPartition
// (bad arguments, or minSize unreachable).
func PartitionDirichlet(labels []int, classes, clients int, alpha float64, minSize int, rng *rand.Rand) ([][]int, error) {
	if clients < 1 || classes < 1 || !(alpha > 0) || minSize < 0 || len(labels) < clients*minSize {
		return nil, fmt.Errorf("%w: dirichlet with %d samples, %d classes, %d clients, alpha %v, min size %d",
			ErrPartition, len(labels), classes, clients, alpha, minSize)
	}
	byClass, err := indicesByClass(labels, classes)
	if err != nil {
		return nil, err
	}
	conc := make([]float64, clients)
	for i := range conc {
		conc[i] = alpha
	}
	dir := distmv.NewDirichlet(conc, rng)
	p := make([]float64, clients)
	for try := 0; try < 1000; try++ {
		parts := make([][]int, clients)
		for _, idx := range byClass {
			idx = append([]int(nil), idx...)
			rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			dir.Rand(p)
			var cum float64
			lo := 0
			for c := range parts {
				cum += p[c]
				hi := int(cum*float64(len(idx)) + 0.5)
				if c == clients-1 {
					hi = len(idx)
				}
				hi = min(max(hi, lo), len(idx))
				parts[c] = append(parts[c], idx[lo:hi]...)
				lo = hi
			}
		}
		ok := true
		for _, part := range parts {
			if len(part) < max(minSize, 1) {
				ok = false
				break
			}
		}
		if ok {
			return parts, nil
		}
	}
	return nil, fmt.Errorf("%w: dirichlet alpha %v: no draw in 1000 gave every one of %d clients ≥ %d samples",
		ErrPartition, alpha, clients, max(minSize, 1))
}

// PartitionExtreme gives each client exactly labelsPer labels (1 or 2 in
// the usual "pathological" non-IID setting of McMahan et al. 2017): the
// labels, in an order shuffled by rng, are assigned round-robin, client c
// taking positions c·labelsPer … c·labelsPer+labelsPer−1 (mod classes), and
// each label's shuffled samples are split evenly among the clients holding
// it. Labels no client holds (clients·labelsPer < classes) are left out.
// Errors wrap ErrPartition.
func PartitionExtreme(labels []int, classes, clients, labelsPer int, rng *rand.Rand) ([][]int, error) {
	if clients < 1 || labelsPer < 1 || labelsPer > classes {
		return nil, fmt.Errorf("%w: extreme with %d clients, %d of %d labels each", ErrPartition, clients, labelsPer, classes)
	}
	byClass, err := indicesByClass(labels, classes)
	if err != nil {
		return nil, err
	}
	order := rng.Perm(classes)
	holders := make([][]int, classes)
	for c := 0; c < clients; c++ {
		for j := 0; j < labelsPer; j++ {
			l := order[(c*labelsPer+j)%classes]
			holders[l] = append(holders[l], c)
		}
	}
	parts := make([][]int, clients)
	for l, hs := range holders {
		idx := append([]int(nil), byClass[l]...)
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		for k, c := range hs {
			lo, hi := k*len(idx)/len(hs), (k+1)*len(idx)/len(hs)
			parts[c] = append(parts[c], idx[lo:hi]...)
		}
	}
	for c, part := range parts {
		if len(part) == 0 {
			return nil, fmt.Errorf("%w: extreme: client %d gets no samples", ErrPartition, c)
		}
	}
	return parts, nil
}

func indicesByClass(labels []int, classes int) ([][]int, error) {
	by := make([][]int, classes)
	for i, y := range labels {
		if y < 0 || y >= classes {
			return nil, fmt.Errorf("%w: label %d of sample %d out of [0,%d)", ErrPartition, y, i, classes)
		}
		by[y] = append(by[y], i)
	}
	return by, nil
}
