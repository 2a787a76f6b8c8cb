package sim

import "math"

// Thresholds of the feature definitions, in volts and millivolts.
const (
	thresholdLowV  = -60.0 / 1000.0 // "active" cells for D_box, f_active, clusters
	thresholdMedV  = -50.0 / 1000.0
	thresholdHighV = -40.0 / 1000.0

	// stabilityStdMV is the per-step std of |ΔV| (mV) below which a step
	// counts as quasi-stationary; stabilityWindow consecutive such steps
	// define T_stable.
	stabilityStdMV  = 0.001
	stabilityWindow = 10

	// lyapunovMinNorm is the smallest step norm ‖V_t − V_{t−1}‖₂ (volts)
	// that enters the history Lyapunov estimate.
	lyapunovMinNorm = 1e-10
)

// signMask clears the sign bit of a float64's bits.
const signMask = 1 << 63

// rowEnergy returns Σ (1000·v)² over one row: its share of E_t in mV².
// Four accumulators keep the adds independent.
func rowEnergy(cur []float64) float64 {
	var e0, e1, e2, e3 float64
	j := 0
	for ; j+3 < len(cur); j += 4 {
		b := cur[j : j+4 : j+4]
		y0, y1, y2, y3 := b[0]*1000, b[1]*1000, b[2]*1000, b[3]*1000
		e0 += float64(y0 * y0)
		e1 += float64(y1 * y1)
		e2 += float64(y2 * y2)
		e3 += float64(y3 * y3)
	}
	for ; j < len(cur); j++ {
		y := cur[j] * 1000
		e0 += float64(y * y)
	}
	return (e0 + e1) + (e2 + e3)
}

// rowStats returns, over one row, the energy Σ (1000·cur)² and, for
// d = |1000·cur − 1000·prev| (mV, multiplying before subtracting exactly as
// the reference's history_mv[1:] − history_mv[:−1]), Σd, Σd² and max d.
// The maximum is tracked on the bit patterns, whose order equals the
// numeric order for non-negative floats, so it compiles to a conditional
// move instead of a mispredicted branch.
func rowStats(cur, prev []float64) (e, sd, sd2, maxd float64) {
	prev = prev[:len(cur)]
	var e0, e1, e2, e3, s0, s1, s2, s3, q0, q1, q2, q3 float64
	var m0, m1, m2, m3 uint64
	j := 0
	if useAVX2 && len(cur) >= 4 {
		var acc [16]float64
		j = len(cur) / 4 * 4
		statsAVX2(&cur[0], &prev[0], j, &acc)
		e0, e1, e2, e3 = acc[0], acc[1], acc[2], acc[3]
		s0, s1, s2, s3 = acc[4], acc[5], acc[6], acc[7]
		q0, q1, q2, q3 = acc[8], acc[9], acc[10], acc[11]
		m0, m1 = math.Float64bits(acc[12]), math.Float64bits(acc[13])
		m2, m3 = math.Float64bits(acc[14]), math.Float64bits(acc[15])
	}
	for ; j+3 < len(cur); j += 4 {
		c := cur[j : j+4 : j+4]
		p := prev[j : j+4 : j+4]
		y0, y1, y2, y3 := c[0]*1000, c[1]*1000, c[2]*1000, c[3]*1000
		e0 += float64(y0 * y0)
		e1 += float64(y1 * y1)
		e2 += float64(y2 * y2)
		e3 += float64(y3 * y3)
		b0 := math.Float64bits(y0-float64(p[0]*1000)) &^ signMask
		b1 := math.Float64bits(y1-float64(p[1]*1000)) &^ signMask
		b2 := math.Float64bits(y2-float64(p[2]*1000)) &^ signMask
		b3 := math.Float64bits(y3-float64(p[3]*1000)) &^ signMask
		d0, d1, d2, d3 := math.Float64frombits(b0), math.Float64frombits(b1), math.Float64frombits(b2), math.Float64frombits(b3)
		s0 += d0
		s1 += d1
		s2 += d2
		s3 += d3
		q0 += float64(d0 * d0)
		q1 += float64(d1 * d1)
		q2 += float64(d2 * d2)
		q3 += float64(d3 * d3)
		if b0 > m0 {
			m0 = b0
		}
		if b1 > m1 {
			m1 = b1
		}
		if b2 > m2 {
			m2 = b2
		}
		if b3 > m3 {
			m3 = b3
		}
	}
	for ; j < len(cur); j++ {
		y := cur[j] * 1000
		e0 += float64(y * y)
		b := math.Float64bits(y-float64(prev[j]*1000)) &^ signMask
		d := math.Float64frombits(b)
		s0 += d
		q0 += float64(d * d)
		if b > m0 {
			m0 = b
		}
	}
	m := max(max(m0, m1), max(m2, m3))
	return (e0 + e1) + (e2 + e3), (s0 + s1) + (s2 + s3), (q0 + q1) + (q2 + q3), math.Float64frombits(m)
}

// frameStat is one frame's (or one row's) contribution to the temporal
// features. Rows are folded in row order, so the totals do not depend on
// how rows were shared among goroutines.
type frameStat struct {
	energy      float64 // Σ (mV)²
	sumD, sumD2 float64 // Σ|ΔV|, Σ|ΔV|² in mV against the previous frame
	maxD        float64
}

// temporal accumulates the history-dependent features (dV_mean, dV_max,
// T_stable, E_trend) and the history Lyapunov estimate one frame at a time,
// without keeping the history.
type temporal struct {
	cells  int // cells per frame
	frames int

	sumD  float64
	maxD  float64
	diffs int // number of frame differences seen

	run     int // consecutive quasi-stationary differences
	tStable int // 0 until found
	found   bool

	// Welford co-moments of (t, E_t) for the least-squares slope.
	meanT, meanE, cov, varT float64

	lyapSum float64
	lyapN   int
}

func newTemporal(cells int) temporal { return temporal{cells: cells} }

// addFrame records frame t = frames with energy e and, from the second
// frame on, the statistics of its difference to the previous frame.
// exactStd recomputes the population std of that difference exactly; it is
// called only when the one-pass estimate is too close to the stability
// threshold to decide.
func (ts *temporal) addFrame(st frameStat, exactStd func() float64) {
	t := float64(ts.frames)
	ts.frames++
	n := float64(ts.frames)
	dt := t - ts.meanT
	ts.meanT += dt / n
	ts.meanE += (st.energy - ts.meanE) / n
	ts.cov += float64(dt * (st.energy - ts.meanE))
	ts.varT += float64(dt * (t - ts.meanT))
	if ts.frames < 2 {
		return
	}
	idx := ts.diffs // index of this difference, t − 1 in the spec's numbering
	ts.diffs++
	ts.sumD += st.sumD
	ts.maxD = max(ts.maxD, st.maxD)

	// ‖V_t − V_{t−1}‖₂ in volts from the mV squares.
	norm := math.Sqrt(st.sumD2) / 1000
	if norm > lyapunovMinNorm {
		ts.lyapSum += math.Log(norm)
		ts.lyapN++
	}

	if ts.found {
		return
	}
	if ts.quasiStationary(st, exactStd) {
		ts.run++
		if ts.run >= stabilityWindow {
			ts.found = true
			ts.tStable = idx - stabilityWindow + 2
		}
	} else {
		ts.run = 0
	}
}

// quasiStationary reports whether the population std of this step's |ΔV|
// is below stabilityStdMV. The one-pass variance Σd²/n − (Σd/n)² has an
// absolute error of a few ulps of Σd²/n; only inside that band around the
// threshold is the exact two-pass std computed.
func (ts *temporal) quasiStationary(st frameStat, exactStd func() float64) bool {
	cells := float64(ts.cells)
	m := st.sumD / cells
	ms := st.sumD2 / cells
	v := ms - float64(m*m)
	const thr2 = stabilityStdMV * stabilityStdMV
	if math.Abs(v-thr2) > 1e-9*(ms+thr2) {
		return v < thr2
	}
	return exactStd() < stabilityStdMV
}

// result fills the temporal features into f and returns the Lyapunov estimate.
func (ts *temporal) result(f *Features) (lyapunov float64) {
	if ts.frames >= 2 {
		f[FDVMean] = ts.sumD / (float64(ts.diffs) * float64(ts.cells))
		f[FDVMax] = ts.maxD
		f[FTStable] = float64(ts.frames)
		if ts.frames > stabilityWindow && ts.found {
			f[FTStable] = float64(ts.tStable)
		}
		if ts.varT > 0 {
			f[FETrend] = ts.cov / ts.varT
		}
	} else {
		f[FDVMean], f[FDVMax], f[FTStable], f[FETrend] = 0, 0, 0, 0
	}
	if ts.lyapN > 0 {
		return ts.lyapSum / float64(ts.lyapN)
	}
	return 0
}

// exactDiffStd is np.std(|1000·cur − 1000·prev|) over a frame, using
// scratch (len ≥ 2·len(cur)) for the temporaries.
func exactDiffStd(cur, prev, scratch []float64) float64 {
	n := len(cur)
	d := scratch[:n]
	for k := range d {
		d[k] = math.Abs(float64(cur[k]*1000) - float64(prev[k]*1000))
	}
	return populationStd(d, scratch[n:2*n])
}
