package learn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// SGD is stochastic gradient descent with heavy-ball momentum and L2 weight
// decay:
//
//	g ← ∇loss + WeightDecay·θ
//	v ← Momentum·v + g
//	θ ← θ − LR·v
//
// The velocity persists across calls to Step (and across federated rounds
// when the same SGD value is reused), which is the "client momentum" of
// Karimireddy et al. 2021. The zero value has LR 0 and does nothing.
type SGD struct {
	LR          float64
	Momentum    float64
	WeightDecay float64
	velocity    []float64
}

// Velocity returns a copy of the momentum buffer v: nil before the first
// Step with momentum. With SetVelocity it lets a caller persist v (a node
// keeps its client momentum across restarts).
func (o *SGD) Velocity() []float64 {
	if o.velocity == nil {
		return nil
	}
	return append([]float64(nil), o.velocity...)
}

// SetVelocity replaces the momentum buffer by a copy of v. A buffer whose
// length differs from the parameters is reset to zeros by the next Step.
func (o *SGD) SetVelocity(v []float64) {
	o.velocity = append([]float64(nil), v...)
}

// Step applies one update of θ (params) with gradient grad (which it may
// overwrite).
func (o *SGD) Step(params, grad []float64) {
	if o.WeightDecay != 0 {
		for i, p := range params {
			grad[i] += o.WeightDecay * p
		}
	}
	if o.Momentum != 0 {
		if len(o.velocity) != len(params) {
			o.velocity = make([]float64, len(params))
		}
		for i, g := range grad {
			v := o.Momentum*o.velocity[i] + g
			o.velocity[i] = v
			params[i] -= o.LR * v
		}
		return
	}
	for i, g := range grad {
		params[i] -= o.LR * g
	}
}

// LocalConfig says how much a client trains per round.
type LocalConfig struct {
	// Epochs is the number of passes over the local data; used only when
	// Steps is zero.
	Epochs int
	// Steps, when positive, is the exact number of minibatch steps, cycling
	// through fresh shuffles of the local data.
	Steps int
	// Batch is the minibatch size; zero means 32. A client with fewer
	// samples uses all of them in every step.
	Batch int
	// Prox is FedProx's proximal coefficient μ (Li et al., "Federated
	// Optimization in Heterogeneous Networks", MLSys 2020): each step
	// minimises loss + μ/2·‖θ − θ_start‖², pulling the client towards the
	// model it started the round from. Zero (plain local SGD) and
	// negative values add nothing.
	Prox float64
}

// ErrNoData is returned when training or evaluating on an empty dataset.
var ErrNoData = errors.New("learn: empty dataset")

// ErrDiverged is returned when training produced a NaN or infinite loss.
var ErrDiverged = errors.New("learn: training diverged (non-finite loss)")

// TrainLocal trains m in place on d with optimiser opt and returns the
// update delta θ_new − θ_old. The minibatch order comes only from rng.
// Errors: ErrNoData for an empty d, ErrDiverged if the loss became NaN or
// Inf (the model is left as it was trained; the delta is still returned).
func TrainLocal(m Model, d *Dataset, cfg LocalConfig, opt *SGD, rng *rand.Rand) ([]float64, error) {
	n := d.Len()
	if n == 0 {
		return nil, ErrNoData
	}
	if d.Dim*len(m.Params()) == 0 {
		return nil, fmt.Errorf("learn: TrainLocal: empty model or dimension")
	}
	batch := cfg.Batch
	if batch <= 0 {
		batch = 32
	}
	batch = min(batch, n)
	steps := cfg.Steps
	if steps <= 0 {
		epochs := max(cfg.Epochs, 1)
		steps = epochs * ((n + batch - 1) / batch)
	}
	params := m.Params()
	old := append([]float64(nil), params...)
	grad := make([]float64, len(params))
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	bx := make([]float64, batch*d.Dim)
	by := make([]int, batch)
	pos := n // forces a shuffle before the first batch
	var bad bool
	for s := 0; s < steps; s++ {
		if pos >= n {
			rng.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			pos = 0
		}
		rows := min(batch, n-pos) // the last batch of a pass may be short
		for r := 0; r < rows; r++ {
			i := perm[pos+r]
			copy(bx[r*d.Dim:(r+1)*d.Dim], d.X[i*d.Dim:(i+1)*d.Dim])
			by[r] = d.Y[i]
		}
		pos += rows
		loss := m.Grad(Batch{X: bx[:rows*d.Dim], Y: by[:rows]}, grad)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			bad = true
		}
		if mu := cfg.Prox; mu > 0 {
			for i, p := range params {
				grad[i] += mu * (p - old[i])
			}
		}
		opt.Step(params, grad)
	}
	delta := make([]float64, len(params))
	for i := range delta {
		delta[i] = params[i] - old[i]
	}
	if bad {
		return delta, ErrDiverged
	}
	return delta, nil
}

// Accuracy returns the fraction of d that m classifies correctly, in
// chunks so that memory stays bounded. ErrNoData for an empty d.
func Accuracy(m Model, d *Dataset) (float64, error) {
	n := d.Len()
	if n == 0 {
		return 0, ErrNoData
	}
	const chunk = 512
	out := make([]int, chunk)
	correct := 0
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		o := out[:hi-lo]
		m.Predict(d.X[lo*d.Dim:hi*d.Dim], o)
		for i, c := range o {
			if c == d.Y[lo+i] {
				correct++
			}
		}
	}
	return float64(correct) / float64(n), nil
}
