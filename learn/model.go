package learn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// Model is a differentiable classifier whose parameters live in one flat
// vector, so that federated updates are plain []float64 deltas.
//
// A Model holds scratch buffers and is not safe for concurrent use; give
// each goroutine its own Clone.
type Model interface {
	// Params returns the live parameter vector: writing into it changes
	// the model. Its length never changes.
	Params() []float64
	// Grad writes into grad (len(Params())) the gradient of the mean
	// cross-entropy over the batch and returns that loss. It panics if the
	// batch or grad has the wrong shape (a programming error).
	Grad(b Batch, grad []float64) float64
	// Predict writes the most likely class of each row of x into out
	// (len(out) rows).
	Predict(x []float64, out []int)
	// Clone returns an independent copy with the same parameters.
	Clone() Model
}

// Batch is a set of rows: X is row-major len(Y)×dim, Y the class labels.
type Batch struct {
	X []float64
	Y []int
}

// Arch describes a model shape. Kind is "softmax" (multinomial logistic
// regression, Classes×Dim weights plus Classes biases) or "mlp" (one hidden
// layer of Hidden ReLU units, then a softmax layer).
type Arch struct {
	Kind    string
	Dim     int
	Hidden  int // mlp only; zero means 64
	Classes int
}

// ErrArch reports an invalid Arch.
var ErrArch = fmt.Errorf("learn: invalid model architecture")

// NumParams returns the length of the parameter vector of a.
func (a Arch) NumParams() int {
	switch a.Kind {
	case "softmax":
		return a.Classes*a.Dim + a.Classes
	case "mlp":
		h := a.hidden()
		return h*a.Dim + h + a.Classes*h + a.Classes
	}
	return 0
}

func (a Arch) hidden() int {
	if a.Hidden == 0 {
		return 64
	}
	return a.Hidden
}

// Validate returns an error wrapping ErrArch that names the bad field.
func (a Arch) Validate() error {
	switch {
	case a.Kind != "softmax" && a.Kind != "mlp":
		return fmt.Errorf("%w: Kind %q (want softmax or mlp)", ErrArch, a.Kind)
	case a.Dim < 1:
		return fmt.Errorf("%w: Dim %d < 1", ErrArch, a.Dim)
	case a.Classes < 2:
		return fmt.Errorf("%w: Classes %d < 2", ErrArch, a.Classes)
	case a.Hidden < 0:
		return fmt.Errorf("%w: Hidden %d < 0", ErrArch, a.Hidden)
	}
	return nil
}

// NewModel builds a model of shape a with parameters drawn from rng:
// softmax weights start at zero (the loss is convex, zero is the usual
// start); MLP weights use He initialisation N(0, 2/fan_in) for the ReLU
// layer and Glorot N(0, 1/fan_in) for the output layer, biases zero.
func NewModel(a Arch, rng *rand.Rand) (Model, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	switch a.Kind {
	case "softmax":
		return &Softmax{dim: a.Dim, classes: a.Classes, p: make([]float64, a.NumParams())}, nil
	default:
		h := a.hidden()
		m := &MLP{dim: a.Dim, hidden: h, classes: a.Classes, p: make([]float64, a.NumParams())}
		w1, _, w2, _ := m.split(m.p)
		s1 := math.Sqrt(2 / float64(a.Dim))
		for i := range w1 {
			w1[i] = rng.NormFloat64() * s1
		}
		s2 := math.Sqrt(1 / float64(h))
		for i := range w2 {
			w2[i] = rng.NormFloat64() * s2
		}
		return m, nil
	}
}

// Softmax is multinomial logistic regression. Parameters: the Classes×Dim
// weight matrix row-major, then the Classes biases.
type Softmax struct {
	dim, classes int
	p            []float64
	logits       []float64 // scratch, rows×classes
}

// Params implements Model.
func (m *Softmax) Params() []float64 { return m.p }

// Clone implements Model.
func (m *Softmax) Clone() Model {
	return &Softmax{dim: m.dim, classes: m.classes, p: append([]float64(nil), m.p...)}
}

func (m *Softmax) forward(x []float64, rows int) []float64 {
	c := m.classes
	m.logits = grow(m.logits, rows*c)
	w := m.p[:c*m.dim]
	b := m.p[c*m.dim:]
	for i := 0; i < rows; i++ {
		copy(m.logits[i*c:(i+1)*c], b)
	}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		general(x, rows, m.dim), general(w, c, m.dim), 1, general(m.logits, rows, c))
	return m.logits
}

// Grad implements Model.
func (m *Softmax) Grad(b Batch, grad []float64) float64 {
	rows := checkBatch(b, m.dim, len(m.p), grad)
	c := m.classes
	z := m.forward(b.X, rows)
	loss := softmaxXent(z, b.Y, c) // z now holds (p - onehot)/rows
	gw := grad[:c*m.dim]
	gb := grad[c*m.dim:]
	blas64.Gemm(blas.Trans, blas.NoTrans, 1,
		general(z, rows, c), general(b.X, rows, m.dim), 0, general(gw, c, m.dim))
	colSums(gb, z, rows, c)
	return loss
}

// Predict implements Model.
func (m *Softmax) Predict(x []float64, out []int) {
	rows := len(out)
	if len(x) != rows*m.dim {
		panic(fmt.Sprintf("learn: Predict: len(x)=%d, want %d×%d", len(x), rows, m.dim))
	}
	argmaxRows(m.forward(x, rows), out, m.classes)
}

// MLP is a one-hidden-layer perceptron: logits = W2·relu(W1·x + b1) + b2.
// Parameters, in order: W1 (Hidden×Dim, row-major), b1, W2 (Classes×Hidden),
// b2.
type MLP struct {
	dim, hidden, classes int
	p                    []float64
	a1, logits, d1       []float64 // scratch
}

// Params implements Model.
func (m *MLP) Params() []float64 { return m.p }

// Clone implements Model.
func (m *MLP) Clone() Model {
	return &MLP{dim: m.dim, hidden: m.hidden, classes: m.classes, p: append([]float64(nil), m.p...)}
}

func (m *MLP) split(p []float64) (w1, b1, w2, b2 []float64) {
	h, d, c := m.hidden, m.dim, m.classes
	w1 = p[:h*d]
	b1 = p[h*d : h*d+h]
	w2 = p[h*d+h : h*d+h+c*h]
	b2 = p[h*d+h+c*h:]
	return
}

func (m *MLP) forward(x []float64, rows int) (a1, logits []float64) {
	h, c := m.hidden, m.classes
	w1, b1, w2, b2 := m.split(m.p)
	m.a1 = grow(m.a1, rows*h)
	m.logits = grow(m.logits, rows*c)
	for i := 0; i < rows; i++ {
		copy(m.a1[i*h:(i+1)*h], b1)
		copy(m.logits[i*c:(i+1)*c], b2)
	}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		general(x, rows, m.dim), general(w1, h, m.dim), 1, general(m.a1, rows, h))
	for i, v := range m.a1 {
		if v < 0 {
			m.a1[i] = 0
		}
	}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		general(m.a1, rows, h), general(w2, c, h), 1, general(m.logits, rows, c))
	return m.a1, m.logits
}

// Grad implements Model.
func (m *MLP) Grad(b Batch, grad []float64) float64 {
	rows := checkBatch(b, m.dim, len(m.p), grad)
	h, c := m.hidden, m.classes
	a1, z := m.forward(b.X, rows)
	loss := softmaxXent(z, b.Y, c)
	_, _, w2, _ := m.split(m.p)
	gw1, gb1, gw2, gb2 := m.split(grad)
	blas64.Gemm(blas.Trans, blas.NoTrans, 1,
		general(z, rows, c), general(a1, rows, h), 0, general(gw2, c, h))
	colSums(gb2, z, rows, c)
	m.d1 = grow(m.d1, rows*h)
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1,
		general(z, rows, c), general(w2, c, h), 0, general(m.d1, rows, h))
	for i, v := range a1 {
		if v <= 0 {
			m.d1[i] = 0
		}
	}
	blas64.Gemm(blas.Trans, blas.NoTrans, 1,
		general(m.d1, rows, h), general(b.X, rows, m.dim), 0, general(gw1, h, m.dim))
	colSums(gb1, m.d1, rows, h)
	return loss
}

// Predict implements Model.
func (m *MLP) Predict(x []float64, out []int) {
	rows := len(out)
	if len(x) != rows*m.dim {
		panic(fmt.Sprintf("learn: Predict: len(x)=%d, want %d×%d", len(x), rows, m.dim))
	}
	_, z := m.forward(x, rows)
	argmaxRows(z, out, m.classes)
}

func checkBatch(b Batch, dim, np int, grad []float64) int {
	rows := len(b.Y)
	if rows == 0 || len(b.X) != rows*dim || len(grad) != np {
		panic(fmt.Sprintf("learn: Grad: batch %d rows, len(X)=%d (dim %d), len(grad)=%d want %d",
			rows, len(b.X), dim, len(grad), np))
	}
	return rows
}

// softmaxXent turns logits z (rows×c) into (softmax − onehot)/rows in place
// and returns the mean cross-entropy. Uses the max-shift for stability.
func softmaxXent(z []float64, y []int, c int) float64 {
	rows := len(y)
	inv := 1 / float64(rows)
	var loss float64
	for i := 0; i < rows; i++ {
		r := z[i*c : (i+1)*c]
		mx := r[0]
		for _, v := range r[1:] {
			mx = max(mx, v)
		}
		var s float64
		for j, v := range r {
			e := math.Exp(v - mx)
			r[j] = e
			s += e
		}
		yi := y[i]
		if yi < 0 || yi >= c {
			panic(fmt.Sprintf("learn: label %d out of [0,%d)", yi, c))
		}
		loss -= math.Log(r[yi]/s + 1e-300)
		for j := range r {
			r[j] /= s
		}
		r[yi] -= 1
		for j := range r {
			r[j] *= inv
		}
	}
	return loss * inv
}

func colSums(dst, z []float64, rows, c int) {
	clear(dst)
	for i := 0; i < rows; i++ {
		for j, v := range z[i*c : (i+1)*c] {
			dst[j] += v
		}
	}
}

func argmaxRows(z []float64, out []int, c int) {
	for i := range out {
		r := z[i*c : (i+1)*c]
		best := 0
		for j, v := range r {
			if v > r[best] {
				best = j
			}
		}
		out[i] = best
	}
}

func general(data []float64, rows, cols int) blas64.General {
	return blas64.General{Rows: rows, Cols: cols, Stride: cols, Data: data[:rows*cols]}
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}
