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

// MaxHiddenLayers bounds the hidden layers of an MLP (Hidden plus the
// non-zero entries of Deeper).
const MaxHiddenLayers = 8

// Arch describes a model shape; ParseArch reads it from a spec string and
// Arch.Spec writes it back. Kind is
//
//   - "softmax": multinomial logistic regression, Classes×Dim weights plus
//     Classes biases;
//   - "mlp": hidden ReLU layers of widths Hidden, Deeper[0], Deeper[1], …
//     (a zero in Deeper ends the list), then a softmax layer;
//   - "cnn": the small convolutional network for 28×28 single-channel
//     images described at CNN (Dim must be 784).
//
// Arch is comparable with ==.
type Arch struct {
	Kind    string
	Dim     int
	Hidden  int // mlp only: the first hidden layer; zero means 64
	Classes int
	// Deeper holds an MLP's hidden widths after the first, in order; the
	// first zero ends the list.
	Deeper [MaxHiddenLayers - 1]int
}

// ErrArch reports an invalid Arch.
var ErrArch = fmt.Errorf("learn: invalid model architecture")

// widths returns the layer widths from input to output of an MLP.
func (a Arch) widths() []int {
	w := []int{a.Dim, a.hidden()}
	for _, h := range a.Deeper {
		if h == 0 {
			break
		}
		w = append(w, h)
	}
	return append(w, a.Classes)
}

// NumParams returns the length of the parameter vector of a.
func (a Arch) NumParams() int {
	switch a.Kind {
	case "softmax":
		return a.Classes*a.Dim + a.Classes
	case "mlp":
		w := a.widths()
		n := 0
		for l := 1; l < len(w); l++ {
			n += w[l]*w[l-1] + w[l]
		}
		return n
	case "cnn":
		return cnnParams(a.Classes)
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
	case a.Kind != "softmax" && a.Kind != "mlp" && a.Kind != "cnn":
		return fmt.Errorf("%w: Kind %q (want softmax, mlp or cnn)", ErrArch, a.Kind)
	case a.Dim < 1:
		return fmt.Errorf("%w: Dim %d < 1", ErrArch, a.Dim)
	case a.Classes < 2:
		return fmt.Errorf("%w: Classes %d < 2", ErrArch, a.Classes)
	case a.Hidden < 0:
		return fmt.Errorf("%w: Hidden %d < 0", ErrArch, a.Hidden)
	case a.Kind == "cnn" && a.Dim != cnnSide*cnnSide:
		return fmt.Errorf("%w: Dim %d: cnn takes 28×28 = 784 inputs", ErrArch, a.Dim)
	}
	for i, h := range a.Deeper {
		if h < 0 || (h > 0 && a.Kind != "mlp") {
			return fmt.Errorf("%w: Deeper[%d] = %d", ErrArch, i, h)
		}
	}
	return nil
}

// NewModel builds a model of shape a with parameters drawn from rng:
// softmax weights start at zero (the loss is convex, zero is the usual
// start); MLP and CNN weights use He initialisation N(0, 2/fan_in) for the
// ReLU layers and Glorot N(0, 1/fan_in) for the output layer, biases zero,
// drawn layer by layer in parameter order.
func NewModel(a Arch, rng *rand.Rand) (Model, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	switch a.Kind {
	case "softmax":
		return &Softmax{dim: a.Dim, classes: a.Classes, p: make([]float64, a.NumParams())}, nil
	case "cnn":
		return newCNN(a.Classes, rng), nil
	default:
		m := newMLP(a.widths(), make([]float64, a.NumParams()))
		for l := range m.layers {
			ly := &m.layers[l]
			s := math.Sqrt(2 / float64(ly.in))
			if l == len(m.layers)-1 {
				s = math.Sqrt(1 / float64(ly.in))
			}
			for i := range ly.w {
				ly.w[i] = rng.NormFloat64() * s
			}
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

// MLP is a multilayer perceptron with ReLU hidden layers:
// a_0 = x, a_l = relu(W_l·a_{l−1} + b_l), logits = W_L·a_{L−1} + b_L.
// Parameters, layer by layer from the input: W_l (out×in, row-major), then
// b_l. With one hidden layer that is W1 (Hidden×Dim), b1, W2
// (Classes×Hidden), b2. This is the order and layout of the parameters of
// PyTorch's nn.Sequential of nn.Linear layers (weight [out][in]).
type MLP struct {
	widths []int
	p      []float64
	layers []mlpLayer
	acts   [][]float64 // scratch: acts[l] = output of layer l (rows×out)
	deltas [][]float64 // scratch: gradient w.r.t. the pre-activation
}

type mlpLayer struct {
	in, out int
	w, b    []float64 // views of p
}

func newMLP(widths []int, p []float64) *MLP {
	m := &MLP{widths: widths, p: p}
	off := 0
	for l := 1; l < len(widths); l++ {
		in, out := widths[l-1], widths[l]
		ly := mlpLayer{in: in, out: out, w: p[off : off+out*in]}
		off += out * in
		ly.b = p[off : off+out]
		off += out
		m.layers = append(m.layers, ly)
	}
	m.acts = make([][]float64, len(m.layers))
	m.deltas = make([][]float64, len(m.layers))
	return m
}

// Params implements Model.
func (m *MLP) Params() []float64 { return m.p }

// Clone implements Model.
func (m *MLP) Clone() Model { return newMLP(m.widths, append([]float64(nil), m.p...)) }

func (m *MLP) forward(x []float64, rows int) []float64 {
	in := x
	last := len(m.layers) - 1
	for l := range m.layers {
		ly := &m.layers[l]
		a := grow(m.acts[l], rows*ly.out)
		m.acts[l] = a
		for i := 0; i < rows; i++ {
			copy(a[i*ly.out:(i+1)*ly.out], ly.b)
		}
		blas64.Gemm(blas.NoTrans, blas.Trans, 1,
			general(in, rows, ly.in), general(ly.w, ly.out, ly.in), 1, general(a, rows, ly.out))
		if l < last {
			for i, v := range a {
				if v < 0 {
					a[i] = 0
				}
			}
		}
		in = a
	}
	return m.acts[last]
}

// Grad implements Model.
func (m *MLP) Grad(b Batch, grad []float64) float64 {
	rows := checkBatch(b, m.widths[0], len(m.p), grad)
	z := m.forward(b.X, rows)
	last := len(m.layers) - 1
	loss := softmaxXent(z, b.Y, m.widths[len(m.widths)-1])
	g := newMLP(m.widths, grad) // views of grad in the same layout
	d := z
	for l := last; l >= 0; l-- {
		ly, gl := &m.layers[l], &g.layers[l]
		in := b.X
		if l > 0 {
			in = m.acts[l-1]
		}
		blas64.Gemm(blas.Trans, blas.NoTrans, 1,
			general(d, rows, ly.out), general(in, rows, ly.in), 0, general(gl.w, ly.out, ly.in))
		colSums(gl.b, d, rows, ly.out)
		if l == 0 {
			break
		}
		prev := grow(m.deltas[l-1], rows*ly.in)
		m.deltas[l-1] = prev
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1,
			general(d, rows, ly.out), general(ly.w, ly.out, ly.in), 0, general(prev, rows, ly.in))
		for i, v := range in {
			if v <= 0 {
				prev[i] = 0
			}
		}
		d = prev
	}
	return loss
}

// Predict implements Model.
func (m *MLP) Predict(x []float64, out []int) {
	rows := len(out)
	if len(x) != rows*m.widths[0] {
		panic(fmt.Sprintf("learn: Predict: len(x)=%d, want %d×%d", len(x), rows, m.widths[0]))
	}
	argmaxRows(m.forward(x, rows), out, m.widths[len(m.widths)-1])
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
