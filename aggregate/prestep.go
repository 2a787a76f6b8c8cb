package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/mfn/mfn/aggregate/internal/vec"
)

// PreStep transforms the inputs before a rule sees them (Allouah et al.,
// "Fixing by Mixing", AISTATS 2023; Karimireddy et al., "Byzantine-Robust
// Learning on Heterogeneous Datasets via Bucketing", ICLR 2022). Pre-steps
// compose with any rule through Pipeline, which screens the inputs first:
// Apply receives only valid vectors of one length.
type PreStep interface {
	// Name is the step's short identifier ("nnm", "bucketing", ...).
	Name() string
	// Apply returns the transformed inputs. It must not modify updates or
	// weights; output vectors may alias input vectors and must be treated
	// as read-only.
	Apply(updates [][]float64, weights []float64) (PreResult, error)
}

// PreResult is the output of a PreStep with its provenance, which lets a
// Pipeline report in terms of the original inputs.
type PreResult struct {
	// Updates are the transformed vectors.
	Updates [][]float64
	// Weights are their weights; nil when the step received nil.
	Weights []float64
	// Sources[j] lists, ascending, the input positions that output j was
	// computed from.
	Sources [][]int
	// Owner[i] is the output that stands for input i (the output a score
	// of input i is read from).
	Owner []int
}

// NNM is nearest-neighbour mixing (Allouah et al. 2023): each input is
// replaced by the mean of its n−f nearest inputs, itself included (ties go
// to the lower position). Output i stands for input i and comes from its
// n−f neighbours; weights pass through unchanged.
//
// Inside a Pipeline, f is the effective f: F less the inputs the
// pipeline's screening rejected as malformed (see the package
// documentation). Apply on its own receives valid inputs only and uses F.
//
// Requirement: f < n.
type NNM struct {
	// F is the number of Byzantine inputs tolerated (≥ 0).
	F int
}

// NewNNM returns nearest-neighbour mixing for f Byzantine inputs; f must
// be ≥ 0.
func NewNNM(f int) (*NNM, error) {
	if err := checkF("nnm", f); err != nil {
		return nil, err
	}
	return &NNM{F: f}, nil
}

// Name returns "nnm".
func (*NNM) Name() string { return "nnm" }

// Apply mixes the inputs. It allocates one n×d buffer for the outputs.
func (p *NNM) Apply(updates [][]float64, weights []float64) (PreResult, error) {
	return p.applyRejected(updates, weights, 0)
}

// budgetedPreStep is implemented by the pre-steps that have an f: a
// Pipeline tells them how many inputs its screening rejected, which count
// against f.
type budgetedPreStep interface {
	applyRejected(updates [][]float64, weights []float64, rejected int) (PreResult, error)
}

// applyRejected is Apply after rejected inputs were screened out: it
// mixes with the effective f, max(0, F − rejected).
func (p *NNM) applyRejected(updates [][]float64, weights []float64, rejected int) (PreResult, error) {
	n := len(updates)
	if err := checkF(p.Name(), p.F); err != nil {
		return PreResult{}, err
	}
	f := max(0, p.F-rejected)
	if f >= n {
		return PreResult{}, &RequirementError{Rule: p.Name(), N: n, F: p.F, FEff: f, Rejected: rejected, Need: fmt.Sprintf("f < n, i.e. n > %d", f)}
	}
	d := len(updates[0])
	k := n - f
	dist := pairwiseSqDist(updates)
	res := PreResult{Weights: slices.Clone(weights), Sources: make([][]int, n), Owner: allIndices(n)}
	order := make([]int, n)
	for i := 0; i < n; i++ {
		for j := range order {
			order[j] = j
		}
		row := dist[i*n : (i+1)*n]
		slices.SortStableFunc(order, func(a, b int) int {
			if a == i || b == i { // itself first, even against exact duplicates
				return b2i(b == i) - b2i(a == i)
			}
			return cmpFloat(row[a], row[b])
		})
		nb := slices.Clone(order[:k])
		slices.Sort(nb)
		res.Sources[i] = nb
	}
	// Outputs are computed four at a time (vec.Combine4): each group reads
	// the union of its members' neighbourhoods once per block of
	// coordinates, with coefficient 1/k for a neighbour and 0 otherwise.
	// A zero coefficient adds nothing, so every output is the sum of its
	// own neighbours in ascending order whatever its group.
	type group struct {
		out  [4]int
		rows [][]float64
		coef []float64
	}
	groups := make([]group, 0, (n+3)/4)
	for g0 := 0; g0 < n; g0 += 4 {
		var gr group
		var union []int
		for r := range gr.out {
			gr.out[r] = min(g0+r, n-1) // pad the last group by repeating an output
			union = append(union, res.Sources[gr.out[r]]...)
		}
		slices.Sort(union)
		union = slices.Compact(union)
		gr.rows = make([][]float64, len(union))
		gr.coef = make([]float64, 4*len(union))
		for m, j := range union {
			gr.rows[m] = updates[j]
			for r := range gr.out {
				if _, ok := slices.BinarySearch(res.Sources[gr.out[r]], j); ok {
					gr.coef[r*len(union)+m] = 1 / float64(k)
				}
			}
		}
		groups = append(groups, gr)
	}
	buf := make([]float64, n*d)
	res.Updates = make([][]float64, n)
	for i := range res.Updates {
		res.Updates[i] = buf[i*d : (i+1)*d : (i+1)*d]
	}
	chunk := chunkLen(n)
	nchunks := (d + chunk - 1) / chunk
	parallelFor(nchunks, int64(n)*int64(n)*int64(d), func(c int) {
		lo := c * chunk
		hi := min(d, lo+chunk)
		var dst [4][]float64
		for _, gr := range groups {
			for r, i := range gr.out {
				dst[r] = res.Updates[i][lo:hi]
			}
			vec.Combine4(&dst, gr.rows, gr.coef, lo)
		}
	})
	return res, nil
}

// Bucketing (Karimireddy et al. 2022) shuffles the inputs with Rand and
// replaces each consecutive group of S by its mean (the last group may be
// smaller). A bucket's weight is the sum of its members' weights; the
// mean itself is unweighted. Each member is owned by its bucket. Because
// the shuffle is random, results depend on input order for a fixed seed.
// A *rand.Rand is not safe for concurrent use, so neither is a Bucketing
// with Rand set.
type Bucketing struct {
	// S is the bucket size (≥ 1); zero means 2.
	S int
	// Rand shuffles the inputs; nil means a fresh generator with a fixed
	// seed on every call.
	Rand *rand.Rand
}

// NewBucketing returns bucketing with bucket size s (0 means 2) drawing
// from rng; s must be ≥ 0.
func NewBucketing(s int, rng *rand.Rand) (*Bucketing, error) {
	if s < 0 {
		return nil, paramErr("bucketing", "S", s, "≥ 1 (0 means 2)")
	}
	return &Bucketing{S: s, Rand: rng}, nil
}

// Name returns "bucketing".
func (*Bucketing) Name() string { return "bucketing" }

// Apply returns the bucket means.
func (p *Bucketing) Apply(updates [][]float64, weights []float64) (PreResult, error) {
	s := p.S
	if s == 0 {
		s = 2
	}
	if s < 0 {
		return PreResult{}, paramErr(p.Name(), "S", s, "≥ 1 (0 means 2)")
	}
	rng := p.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(0x6d666e, 0x6275636b))
	}
	n := len(updates)
	perm := rng.Perm(n)
	nb := (n + s - 1) / s
	res := PreResult{Updates: make([][]float64, nb), Sources: make([][]int, nb), Owner: make([]int, n)}
	if weights != nil {
		res.Weights = make([]float64, nb)
	}
	d := len(updates[0])
	for b := 0; b < nb; b++ {
		members := slices.Clone(perm[b*s : min(n, (b+1)*s)])
		slices.Sort(members)
		rows := make([][]float64, len(members))
		for k, i := range members {
			rows[k] = updates[i]
			res.Owner[i] = b
			if weights != nil {
				res.Weights[b] += weights[i]
			}
		}
		res.Sources[b] = members
		if len(rows) == 1 {
			res.Updates[b] = rows[0]
		} else {
			res.Updates[b] = meanOf(rows, d)
		}
	}
	return res, nil
}

// StaticClipping scales every input with norm above C down to norm C
// (direction kept); shorter inputs pass unchanged. Output i stands for
// input i; weights pass through.
type StaticClipping struct {
	// C is the norm bound (> 0).
	C float64
}

// NewStaticClipping returns clipping to norm c, which must be finite and
// positive.
func NewStaticClipping(c float64) (*StaticClipping, error) {
	p := &StaticClipping{C: c}
	return p, p.validate()
}

func (p *StaticClipping) validate() error {
	if !(p.C > 0) || math.IsInf(p.C, 0) {
		return paramErr(p.Name(), "C", p.C, "finite and > 0")
	}
	return nil
}

// Name returns "static-clipping".
func (*StaticClipping) Name() string { return "static-clipping" }

// Apply clips the inputs.
func (p *StaticClipping) Apply(updates [][]float64, weights []float64) (PreResult, error) {
	if err := p.validate(); err != nil {
		return PreResult{}, err
	}
	n := len(updates)
	res := PreResult{Updates: make([][]float64, n), Weights: slices.Clone(weights), Sources: make([][]int, n), Owner: allIndices(n)}
	parallelFor(n, int64(n)*int64(len(updates[0])), func(i int) {
		x := updates[i]
		res.Sources[i] = []int{i}
		norm := math.Sqrt(vec.Dot(x, x))
		if norm <= p.C {
			res.Updates[i] = x
			return
		}
		scale := p.C / norm
		y := make([]float64, len(x))
		for k, v := range x {
			y[k] = v * scale
		}
		res.Updates[i] = y
	})
	return res, nil
}
