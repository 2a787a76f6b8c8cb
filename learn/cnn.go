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
//	conv 5×5, 1→8 channels, valid, ReLU   → 24×24×8
//	max pool 2×2                          → 12×12×8
//	conv 5×5, 8→16 channels, valid, ReLU  → 8×8×16
//	max pool 2×2                          → 4×4×16 = 256
//	dense 256 → Classes, softmax
//
// Parameters (6,218 for 10 classes), in order:
//
//	W1 (8 × 25):   W1[o][ky·5+kx]
//	b1 (8)
//	W2 (16 × 200): W2[o][(ky·5+kx)·8 + c]   (kernel row, column, input channel)
//	b2 (16)
//	Wd (Classes × 256): Wd[k][(y·4+x)·16 + c] (pooled row, column, channel)
//	bd (Classes)
//
// The input row is the image row-major (pixel y·28+x). Convolutions are
// computed as im2col matrix products through gonum's BLAS.
type CNN struct {
	classes int
	p       []float64
	// scratch, grown to the batch
	cols1, a1, p1, cols2, a2, p2 []float64
	idx1, idx2                   []int32
	da2, dcols2, dp1, da1, dp2   []float64
	logits                       []float64
}

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

// maxPool2 pools src (rows×side×side×ch, HWC) into dst (rows×side/2×side/2×ch),
// recording in idx the src offset of each maximum.
func maxPool2(dst, src []float64, idx []int32, rows, side, ch int) {
	half := side / 2
	o := 0
	for b := 0; b < rows; b++ {
		base := b * side * side * ch
		for py := 0; py < half; py++ {
			for px := 0; px < half; px++ {
				r0 := base + ((2*py)*side+2*px)*ch
				r1 := r0 + side*ch
				for c := 0; c < ch; c++ {
					best, bi := src[r0+c], r0+c
					if v := src[r0+ch+c]; v > best {
						best, bi = v, r0+ch+c
					}
					if v := src[r1+c]; v > best {
						best, bi = v, r1+c
					}
					if v := src[r1+ch+c]; v > best {
						best, bi = v, r1+ch+c
					}
					dst[o], idx[o] = best, int32(bi)
					o++
				}
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

func addBiasRelu(a, bias []float64, relu bool) {
	c := len(bias)
	for i := 0; i < len(a); i += c {
		r := a[i : i+c]
		for j, v := range r {
			v += bias[j]
			if relu && v < 0 {
				v = 0
			}
			r[j] = v
		}
	}
}

func (m *CNN) forward(x []float64, rows int) []float64 {
	w1, b1, w2, b2, wd, bd := m.split(m.p)
	// conv1 as im2col: one row per output pixel, one column per kernel tap.
	n1 := rows * cnnS1 * cnnS1
	m.cols1 = grow(m.cols1, n1*cnnPatch1)
	r := 0
	for b := 0; b < rows; b++ {
		img := x[b*cnnSide*cnnSide : (b+1)*cnnSide*cnnSide]
		for oy := 0; oy < cnnS1; oy++ {
			for ox := 0; ox < cnnS1; ox++ {
				dst := m.cols1[r*cnnPatch1 : (r+1)*cnnPatch1]
				for ky := 0; ky < cnnK; ky++ {
					copy(dst[ky*cnnK:(ky+1)*cnnK], img[(oy+ky)*cnnSide+ox:])
				}
				r++
			}
		}
	}
	m.a1 = grow(m.a1, n1*cnnC1)
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, general(m.cols1, n1, cnnPatch1), general(w1, cnnC1, cnnPatch1), 0, general(m.a1, n1, cnnC1))
	addBiasRelu(m.a1, b1, true)
	m.p1 = grow(m.p1, rows*cnnP1*cnnP1*cnnC1)
	m.idx1 = growInt32(m.idx1, len(m.p1))
	maxPool2(m.p1, m.a1, m.idx1, rows, cnnS1, cnnC1)

	// conv2: patches of (ky, kx, c) from the HWC pooled map.
	n2 := rows * cnnS2 * cnnS2
	m.cols2 = grow(m.cols2, n2*cnnPatch2)
	r = 0
	for b := 0; b < rows; b++ {
		mp := m.p1[b*cnnP1*cnnP1*cnnC1 : (b+1)*cnnP1*cnnP1*cnnC1]
		for oy := 0; oy < cnnS2; oy++ {
			for ox := 0; ox < cnnS2; ox++ {
				dst := m.cols2[r*cnnPatch2 : (r+1)*cnnPatch2]
				for ky := 0; ky < cnnK; ky++ {
					src := ((oy+ky)*cnnP1 + ox) * cnnC1
					copy(dst[ky*cnnK*cnnC1:(ky+1)*cnnK*cnnC1], mp[src:src+cnnK*cnnC1])
				}
				r++
			}
		}
	}
	m.a2 = grow(m.a2, n2*cnnC2)
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, general(m.cols2, n2, cnnPatch2), general(w2, cnnC2, cnnPatch2), 0, general(m.a2, n2, cnnC2))
	addBiasRelu(m.a2, b2, true)
	m.p2 = grow(m.p2, rows*cnnFlat)
	m.idx2 = growInt32(m.idx2, len(m.p2))
	maxPool2(m.p2, m.a2, m.idx2, rows, cnnS2, cnnC2)

	m.logits = grow(m.logits, rows*m.classes)
	logits := m.logits
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, general(m.p2, rows, cnnFlat), general(wd, m.classes, cnnFlat), 0, general(logits, rows, m.classes))
	addBiasRelu(logits, bd, false)
	return logits
}

// Grad implements Model.
func (m *CNN) Grad(bt Batch, grad []float64) float64 {
	rows := checkBatch(bt, cnnSide*cnnSide, len(m.p), grad)
	z := m.forward(bt.X, rows)
	loss := softmaxXent(z, bt.Y, m.classes)
	_, _, w2, _, wd, _ := m.split(m.p)
	gw1, gb1, gw2, gb2, gwd, gbd := m.split(grad)

	blas64.Gemm(blas.Trans, blas.NoTrans, 1, general(z, rows, m.classes), general(m.p2, rows, cnnFlat), 0, general(gwd, m.classes, cnnFlat))
	colSums(gbd, z, rows, m.classes)
	m.dp2 = grow(m.dp2, rows*cnnFlat)
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, general(z, rows, m.classes), general(wd, m.classes, cnnFlat), 0, general(m.dp2, rows, cnnFlat))

	n2 := rows * cnnS2 * cnnS2
	m.da2 = grow(m.da2, n2*cnnC2)
	clear(m.da2)
	for i, g := range m.dp2 {
		j := m.idx2[i]
		if m.a2[j] > 0 {
			m.da2[j] += g
		}
	}
	blas64.Gemm(blas.Trans, blas.NoTrans, 1, general(m.da2, n2, cnnC2), general(m.cols2, n2, cnnPatch2), 0, general(gw2, cnnC2, cnnPatch2))
	colSums(gb2, m.da2, n2, cnnC2)
	m.dcols2 = grow(m.dcols2, n2*cnnPatch2)
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, general(m.da2, n2, cnnC2), general(w2, cnnC2, cnnPatch2), 0, general(m.dcols2, n2, cnnPatch2))

	// col2im into the pooled map's gradient.
	m.dp1 = grow(m.dp1, rows*cnnP1*cnnP1*cnnC1)
	clear(m.dp1)
	r := 0
	for b := 0; b < rows; b++ {
		dmp := m.dp1[b*cnnP1*cnnP1*cnnC1 : (b+1)*cnnP1*cnnP1*cnnC1]
		for oy := 0; oy < cnnS2; oy++ {
			for ox := 0; ox < cnnS2; ox++ {
				src := m.dcols2[r*cnnPatch2 : (r+1)*cnnPatch2]
				for ky := 0; ky < cnnK; ky++ {
					dst := dmp[((oy+ky)*cnnP1+ox)*cnnC1 : ((oy+ky)*cnnP1+ox+cnnK)*cnnC1]
					s := src[ky*cnnK*cnnC1 : (ky+1)*cnnK*cnnC1]
					for i, v := range s {
						dst[i] += v
					}
				}
				r++
			}
		}
	}
	n1 := rows * cnnS1 * cnnS1
	m.da1 = grow(m.da1, n1*cnnC1)
	clear(m.da1)
	for i, g := range m.dp1 {
		j := m.idx1[i]
		if m.a1[j] > 0 {
			m.da1[j] += g
		}
	}
	blas64.Gemm(blas.Trans, blas.NoTrans, 1, general(m.da1, n1, cnnC1), general(m.cols1, n1, cnnPatch1), 0, general(gw1, cnnC1, cnnPatch1))
	colSums(gb1, m.da1, n1, cnnC1)
	return loss
}

// Predict implements Model.
func (m *CNN) Predict(x []float64, out []int) {
	rows := len(out)
	if len(x) != rows*cnnSide*cnnSide {
		panic(fmt.Sprintf("learn: Predict: len(x)=%d, want %d×%d", len(x), rows, cnnSide*cnnSide))
	}
	argmaxRows(m.forward(x, rows), out, m.classes)
}
