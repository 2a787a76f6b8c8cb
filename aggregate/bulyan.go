package aggregate

import (
	"fmt"
	"slices"
)

// Bulyan (El Mhamdi et al., "The Hidden Vulnerability of Distributed
// Learning in Byzantium", ICML 2018) first selects θ = n−2f inputs by
// repeated Krum: each round computes Krum scores (n'−f−2 nearest
// neighbours, at least one) over the n' inputs not yet selected and moves
// the best one into the selection. Then, coordinate by coordinate, it
// averages the β = θ−2f selected values closest to their median (a window
// of β consecutive values in sorted order; ties go to the lower window).
// Weights are ignored. Report.Used is the θ selected inputs and
// Report.Scores the first round's Krum scores.
//
// Requirement: n ≥ 4f+3 valid inputs. Here and in θ and β, f is the
// effective f: F less the inputs rejected as malformed (see the package
// documentation).
type Bulyan struct {
	// F is the number of Byzantine inputs tolerated (≥ 0).
	F int
}

// NewBulyan returns Bulyan for f Byzantine inputs; f must be ≥ 0.
func NewBulyan(f int) (*Bulyan, error) {
	if err := checkF("bulyan", f); err != nil {
		return nil, err
	}
	return &Bulyan{F: f}, nil
}

// Name returns "bulyan".
func (*Bulyan) Name() string { return "bulyan" }

// Aggregate returns the Bulyan aggregate.
func (r *Bulyan) Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error) {
	return runScreened(r, updates, weights)
}

func (*Bulyan) checksValuesItself() {}

func (r *Bulyan) run(s *screened) ([]float64, Report, error) {
	dist, err := s.distances()
	if err != nil {
		return nil, Report{Rule: r.Name()}, fmt.Errorf("%s: %w", r.Name(), err)
	}
	n, f := s.n(), s.budget(r.F)
	if n < 4*f+3 {
		return nil, Report{Rule: r.Name()}, s.requirement(r.Name(), r.F, fmt.Sprintf("n ≥ 4f+3 = %d", 4*f+3))
	}
	theta := n - 2*f
	remaining := allIndices(n)
	selected := make([]int, 0, theta)
	var first []float64
	for len(selected) < theta {
		sc := krumScores(dist, n, remaining, max(len(remaining)-f-2, 1))
		if first == nil {
			first = sc
		}
		b := argminScore(sc, s.x, remaining)
		selected = append(selected, remaining[b])
		remaining = slices.Delete(remaining, b, b+1)
	}
	slices.Sort(selected)
	rows := make([][]float64, theta)
	for k, i := range selected {
		rows[k] = s.x[i]
	}
	beta := theta - 2*f
	out := make([]float64, s.d)
	coordwise(rows, out, colOp{
		one: func(col, _ []float64) float64 {
			slices.Sort(col)
			return closestToMedianMeanSorted(col, beta)
		},
		four: func(sorted []float64, n int, dst *[4]float64) {
			var col [maxNetworkN]float64
			for l := range dst {
				for i := 0; i < n; i++ {
					col[i] = sorted[4*i+l]
				}
				dst[l] = closestToMedianMeanSorted(col[:n], beta)
			}
		},
	})
	rep := s.report(r.Name(), selected, "not selected by bulyan's iterated krum")
	rep.Scores = s.scores(first)
	return out, rep, nil
}

// closestToMedianMean sorts col and returns the mean of the beta values
// closest to its median.
func closestToMedianMean(col []float64, beta int) float64 {
	slices.Sort(col)
	return closestToMedianMeanSorted(col, beta)
}

// closestToMedianMeanSorted is closestToMedianMean for a sorted column.
func closestToMedianMeanSorted(col []float64, beta int) float64 {
	n := len(col)
	m := col[n/2]
	if n%2 == 0 {
		m = (col[n/2-1] + col[n/2]) / 2
	}
	best, bestSpread := 0, 0.0
	for s := 0; s+beta <= n; s++ {
		spread := max(m-col[s], col[s+beta-1]-m)
		if s == 0 || spread < bestSpread {
			best, bestSpread = s, spread
		}
	}
	var sum float64
	for _, v := range col[best : best+beta] {
		sum += v
	}
	return sum / float64(beta)
}
