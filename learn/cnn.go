package learn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// Shape of the "cnn:mnist" network.
const (
	cnnSide   = 28                 // input is cnnSide×cnnSide, one channel
	cnnK      = 5                  // kernel side of both convolutions
	cnnC1     = 8                  // channels of the first convolution
	cnnC2     = 16                 // channels of the second convolution
	cnnS1     = cnnSide - cnnK + 1 // 24: first conv output side ("valid")
	cnnP1     = cnnS1 / 2          // 12: after 2×2 max pooling
	cnnS2     = cnnP1 - cnnK + 1   // 8: second conv output side
	cnnP2     = cnnS2 / 2          // 4: after 2×2 max pooling
	cnnFlat   = cnnP2 * cnnP2 * cnnC2
	cnnPatch1 = cnnK * cnnK
	cnnPatch2 = cnnK * cnnK * cnnC1
)

func cnnParams(classes int) int {
	return cnnC1*cnnPatch1 + cnnC1 + cnnC2*cnnPatch2 + cnnC2 + classes*cnnFlat + classes
}

// CNN is the "cnn:mnist" network for 28×28 single-channel images:
//
//	conv 5×5, 1→8 channels, valid, ReLU   → 8×24×24
//	max pool 2×2                          → 8×12×12
//	conv 5×5, 8→16 channels, valid, ReLU  → 16×8×8
//	max pool 2×2                          → 16×4×4 = 256
//	dense 256 → Classes, softmax
//
// Parameters (6,218 for 10 classes), in order, with PyTorch's layouts
// (Conv2d weight [out][in][ky][kx], flatten in (channel, row, column)
// order), so weights can be moved between the two by reshaping:
//
//	W1 (8 × 25):   W1[o][ky·5+kx]
//	b1 (8)
//	W2 (16 × 200): W2[o][c·25 + ky·5 + kx]
//	b2 (16)
//	Wd (Classes × 256): Wd[k][c·16 + y·4 + x]
//	bd (Classes)
//
// The input row is the image row-major (pixel y·28+x). Within a batch
// feature maps are kept channel-major ([channel][image][y][x]), so each
// convolution is one long matrix product W·im2col through gonum's BLAS.
type CNN struct {
	classes int
	p       []float64
	// scratch, grown to the batch
	cols1, a1, p1, cols2, a2, p2, flat []float64
	idx1, idx2                         []int32
	da2, dcols2, dp1, da1, dp2, dflat  []float64
	logits, w2t                        []float64
	// half computes the second half of a large batch on another
	// goroutine (see Grad); nil until first needed.
	half     *CNN
	halfGrad []float64
}

// cnnSplitRows is the batch size from which Grad computes the two halves
// of the batch on two goroutines: below it the goroutine costs more than
// it saves.
const cnnSplitRows = 8

func newCNN(classes int, rng *rand.Rand) *CNN {
	m := &CNN{classes: classes, p: make([]float64, cnnParams(classes))}
	w1, _, w2, _, wd, _ := m.split(m.p)
	for _, l := range []struct {
		w     []float64
		fanIn int
		gain  float64
	}{{w1, cnnPatch1, 2}, {w2, cnnPatch2, 2}, {wd, cnnFlat, 1}} {
		s := math.Sqrt(l.gain / float64(l.fanIn))
		for i := range l.w {
			l.w[i] = rng.NormFloat64() * s
		}
	}
	return m
}

func (m *CNN) split(p []float64) (w1, b1, w2, b2, wd, bd []float64) {
	off := 0
	take := func(n int) []float64 {
		s := p[off : off+n]
		off += n
		return s
	}
	w1, b1 = take(cnnC1*cnnPatch1), take(cnnC1)
	w2, b2 = take(cnnC2*cnnPatch2), take(cnnC2)
	wd, bd = take(m.classes*cnnFlat), take(m.classes)
	return
}

// Params implements Model.
func (m *CNN) Params() []float64 { return m.p }

// Clone implements Model.
func (m *CNN) Clone() Model { return &CNN{classes: m.classes, p: append([]float64(nil), m.p...)} }

// maxPool2 pools src (planes of side×side) into dst (planes of
// side/2×side/2), recording in idx the src offset of each maximum.
func maxPool2(dst, src []float64, idx []int32, planes, side int) {
	half := side / 2
	o := 0
	for p := 0; p < planes; p++ {
		base := p * side * side
		for py := 0; py < half; py++ {
			r0 := base + 2*py*side
			r1 := r0 + side
			for px := 0; px < half; px++ {
				i0, i1 := r0+2*px, r1+2*px
				best, bi := src[i0], i0
				if v := src[i0+1]; v > best {
					best, bi = v, i0+1
				}
				if v := src[i1]; v > best {
					best, bi = v, i1
				}
				if v := src[i1+1]; v > best {
					best, bi = v, i1+1
				}
				dst[o], idx[o] = best, int32(bi)
				o++
			}
		}
	}
}

func growInt32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

// addBiasRelu adds bias[c] to row c of a (len(bias) rows) and applies
// ReLU.
func addBiasRelu(a, bias []float64) {
	n := len(a) / len(bias)
	for c, b := range bias {
		r := a[c*n : (c+1)*n]
		for j, v := range r {
			r[j] = max(v+b, 0)
		}
	}
}

// im2col writes, for planes ch×rows×side×side (channel-major, then image),
// the matrix of kernel taps: row (c·K + ky)·K + kx, column
// (b·out + oy)·out + ox, value in[c][b][oy+ky][ox+kx].
func im2col(cols, in []float64, ch, rows, side int) {
	out := side - cnnK + 1
	n := rows * out * out
	for c := 0; c < ch; c++ {
		for ky := 0; ky < cnnK; ky++ {
			for kx := 0; kx < cnnK; kx++ {
				dst := cols[((c*cnnK+ky)*cnnK+kx)*n:]
				o := 0
				for b := 0; b < rows; b++ {
					plane := in[(c*rows+b)*side*side:]
					for oy := 0; oy < out; oy++ {
						copy(dst[o:o+out], plane[(oy+ky)*side+kx:])
						o += out
					}
				}
			}
		}
	}
}

// col2im adds the tap gradients dcols (layout of im2col) into din.
func col2im(din, dcols []float64, ch, rows, side int) {
	out := side - cnnK + 1
	n := rows * out * out
	for c := 0; c < ch; c++ {
		for ky := 0; ky < cnnK; ky++ {
			for kx := 0; kx < cnnK; kx++ {
				src := dcols[((c*cnnK+ky)*cnnK+kx)*n:]
				o := 0
				for b := 0; b < rows; b++ {
					plane := din[(c*rows+b)*side*side:]
					for oy := 0; oy < out; oy++ {
						d := plane[(oy+ky)*side+kx : (oy+ky)*side+kx+out]
						for i, v := range src[o : o+out] {
							d[i] += v
						}
						o += out
					}
				}
			}
		}
	}
}

func (m *CNN) forward(x []float64, rows int) []float64 {
	w1, b1, w2, b2, wd, bd := m.split(m.p)
	n1 := rows * cnnS1 * cnnS1
	m.cols1 = grow(m.cols1, cnnPatch1*n1)
	im2col(m.cols1, x, 1, rows, cnnSide)
	m.a1 = grow(m.a1, cnnC1*n1)
	matNN(cnnC1, n1, cnnPatch1, w1, m.cols1, m.a1)
	addBiasRelu(m.a1, b1)
	m.p1 = grow(m.p1, cnnC1*rows*cnnP1*cnnP1)
	m.idx1 = growInt32(m.idx1, len(m.p1))
	maxPool2(m.p1, m.a1, m.idx1, cnnC1*rows, cnnS1)

	n2 := rows * cnnS2 * cnnS2
	m.cols2 = grow(m.cols2, cnnPatch2*n2)
	im2col(m.cols2, m.p1, cnnC1, rows, cnnP1)
	m.a2 = grow(m.a2, cnnC2*n2)
	matNN(cnnC2, n2, cnnPatch2, w2, m.cols2, m.a2)
	addBiasRelu(m.a2, b2)
	m.p2 = grow(m.p2, cnnC2*rows*cnnP2*cnnP2)
	m.idx2 = growInt32(m.idx2, len(m.p2))
	maxPool2(m.p2, m.a2, m.idx2, cnnC2*rows, cnnS2)

	// Flatten each image's 16×4×4 maps in (c, y, x) order.
	const plane = cnnP2 * cnnP2
	m.flat = grow(m.flat, rows*cnnFlat)
	for c := 0; c < cnnC2; c++ {
		for b := 0; b < rows; b++ {
			copy(m.flat[b*cnnFlat+c*plane:b*cnnFlat+(c+1)*plane], m.p2[(c*rows+b)*plane:])
		}
	}
	m.logits = grow(m.logits, rows*m.classes)
	for b := 0; b < rows; b++ {
		copy(m.logits[b*m.classes:(b+1)*m.classes], bd)
	}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, general(m.flat, rows, cnnFlat), general(wd, m.classes, cnnFlat), 1, general(m.logits, rows, m.classes))
	return m.logits
}

// Grad implements Model. A batch of cnnSplitRows or more rows is split in
// two halves computed in parallel (two goroutines, like PyTorch's two
// threads in the benchmark); the halves' mean gradients are combined
// weighted by their sizes, so the result is the gradient of the whole
// batch up to rounding, and deterministic.
func (m *CNN) Grad(bt Batch, grad []float64) float64 {
	rows := checkBatch(bt, cnnSide*cnnSide, len(m.p), grad)
	if rows < cnnSplitRows {
		return m.grad(bt, rows, grad)
	}
	if m.half == nil {
		m.half = &CNN{classes: m.classes}
		m.halfGrad = make([]float64, len(m.p))
	}
	m.half.p = m.p
	r1 := rows / 2
	r2 := rows - r1
	const dim = cnnSide * cnnSide
	var loss2 float64
	done := make(chan struct{})
	go func() {
		loss2 = m.half.grad(Batch{X: bt.X[r1*dim:], Y: bt.Y[r1:]}, r2, m.halfGrad)
		close(done)
	}()
	loss1 := m.grad(Batch{X: bt.X[:r1*dim], Y: bt.Y[:r1]}, r1, grad)
	<-done
	w1, w2 := float64(r1)/float64(rows), float64(r2)/float64(rows)
	for i, g := range m.halfGrad {
		grad[i] = w1*grad[i] + w2*g
	}
	return w1*loss1 + w2*loss2
}

func (m *CNN) grad(bt Batch, rows int, grad []float64) float64 {
	z := m.forward(bt.X, rows)
	loss := softmaxXent(z, bt.Y, m.classes)
	_, _, w2, _, wd, _ := m.split(m.p)
	gw1, gb1, gw2, gb2, gwd, gbd := m.split(grad)

	blas64.Gemm(blas.Trans, blas.NoTrans, 1, general(z, rows, m.classes), general(m.flat, rows, cnnFlat), 0, general(gwd, m.classes, cnnFlat))
	colSums(gbd, z, rows, m.classes)
	m.dflat = grow(m.dflat, rows*cnnFlat)
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, general(z, rows, m.classes), general(wd, m.classes, cnnFlat), 0, general(m.dflat, rows, cnnFlat))
	const plane = cnnP2 * cnnP2
	m.dp2 = grow(m.dp2, len(m.p2))
	for c := 0; c < cnnC2; c++ {
		for b := 0; b < rows; b++ {
			copy(m.dp2[(c*rows+b)*plane:(c*rows+b+1)*plane], m.dflat[b*cnnFlat+c*plane:])
		}
	}

	n2 := rows * cnnS2 * cnnS2
	m.da2 = grow(m.da2, cnnC2*n2)
	unpoolRelu(m.da2, m.dp2, m.idx2, m.a2)
	matNT(cnnC2, cnnPatch2, n2, m.da2, m.cols2, gw2)
	rowSums(gb2, m.da2)
	m.dcols2 = grow(m.dcols2, cnnPatch2*n2)
	m.w2t = grow(m.w2t, len(w2))
	for o := 0; o < cnnC2; o++ {
		for q := 0; q < cnnPatch2; q++ {
			m.w2t[q*cnnC2+o] = w2[o*cnnPatch2+q]
		}
	}
	matNN(cnnPatch2, n2, cnnC2, m.w2t, m.da2, m.dcols2)
	m.dp1 = grow(m.dp1, len(m.p1))
	clear(m.dp1)
	col2im(m.dp1, m.dcols2, cnnC1, rows, cnnP1)

	n1 := rows * cnnS1 * cnnS1
	m.da1 = grow(m.da1, cnnC1*n1)
	unpoolRelu(m.da1, m.dp1, m.idx1, m.a1)
	matNT(cnnC1, cnnPatch1, n1, m.da1, m.cols1, gw1)
	rowSums(gb1, m.da1)
	return loss
}

// unpoolRelu routes the pooled gradient dp back to the maxima idx, where
// the ReLU output a was positive; everything else in da is zero.
func unpoolRelu(da, dp []float64, idx []int32, a []float64) {
	clear(da)
	for i, g := range dp {
		if j := idx[i]; a[j] > 0 {
			da[j] += g
		}
	}
}

// rowSums writes into dst[c] the sum of row c of a (len(dst) rows).
func rowSums(dst, a []float64) {
	n := len(a) / len(dst)
	for c := range dst {
		var s float64
		for _, v := range a[c*n : (c+1)*n] {
			s += v
		}
		dst[c] = s
	}
}

// Predict implements Model.
func (m *CNN) Predict(x []float64, out []int) {
	rows := len(out)
	if len(x) != rows*cnnSide*cnnSide {
		panic(fmt.Sprintf("learn: Predict: len(x)=%d, want %d×%d", len(x), rows, cnnSide*cnnSide))
	}
	argmaxRows(m.forward(x, rows), out, m.classes)
}
