package sim

import (
	"errors"
	"fmt"
	"math"
)

// ErrNonFinite is wrapped by every error about a NaN or ±Inf value in a
// field, whether read from input (see NonFiniteError) or produced by an
// unstable simulation (see UnstableError).
var ErrNonFinite = errors.New("non-finite value in field")

// ErrShape is wrapped by errors about a history whose length does not
// match its declared shape.
var ErrShape = errors.New("history shape mismatch")

// NonFiniteError locates the first NaN or ±Inf in an input history.
type NonFiniteError struct {
	Frame, Row, Col int
	Value           float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("%v at frame %d, row %d, column %d (%v)", ErrNonFinite, e.Frame, e.Row, e.Col, e.Value)
}

// Unwrap returns ErrNonFinite.
func (e *NonFiniteError) Unwrap() error { return ErrNonFinite }

// ExtractFeatures computes the 18 features of a field history of steps
// frames, each an n×n row-major field in volts (steps may be 1 for a single
// field). Static features (D_box … V_kurt, f_active, clusters) describe the
// last frame; dV_mean, dV_max, T_stable and E_trend describe the whole
// history and are 0 when steps < 2. The result follows MFN_MODEL.md §4 and
// matches the reference implementation to within a few ulps.
//
// Errors: ErrShape (wrapped) if len(history) ≠ steps·n·n or steps, n < 1;
// a *NonFiniteError (wrapping ErrNonFinite) naming the first NaN/Inf;
// an error wrapping ErrNonFinite if the values are finite but so large that
// a feature overflows.
func ExtractFeatures(history []float64, steps, n int) (Features, error) {
	var f Features
	if err := checkShape(history, steps, n); err != nil {
		return f, err
	}
	cells := n * n
	ts := newTemporal(cells)
	scratch := make([]float64, 2*cells)
	finite := true
	for t := range steps {
		cur := history[t*cells : (t+1)*cells]
		var st frameStat
		var prev []float64
		if t == 0 {
			for r := range n {
				st.energy += rowEnergy(cur[r*n : (r+1)*n])
			}
		} else {
			prev = history[(t-1)*cells : t*cells]
			for r := range n {
				e, sd, sd2, md := rowStats(cur[r*n:(r+1)*n], prev[r*n:(r+1)*n])
				st.energy += e
				st.sumD += sd
				st.sumD2 += sd2
				st.maxD = max(st.maxD, md)
			}
		}
		// Σv² is finite iff every value of the frame is finite (or the
		// values are so large that it overflows, which is rejected too).
		if math.IsInf(st.energy, 0) || math.IsNaN(st.energy) {
			finite = false
			break
		}
		ts.addFrame(st, func() float64 { return exactDiffStd(cur, prev, scratch) })
	}
	if !finite {
		if err := checkFinite(history, n); err != nil {
			return f, err
		}
		return f, fmt.Errorf("%w: |V| so large that Σ V² overflows", ErrNonFinite)
	}
	ts.result(&f)
	var sc staticScratch
	staticFeatures(history[(steps-1)*cells:], n, &f, &sc)
	for i, v := range f {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Features{}, fmt.Errorf("%w: |V| so large that %s overflows", ErrNonFinite, FeatureNames[i])
		}
	}
	return f, nil
}

// HistoryLyapunov returns the field-history Lyapunov estimate of a history
// of steps n×n frames in volts: the mean of ln‖V_t − V_{t−1}‖₂ over the
// steps whose norm exceeds 1e-10 (0 if there are none, or steps < 2).
// The norm is computed from the millivolt differences that the features
// use, in the same order as Simulate, so it equals Result.Lyapunov of the
// run that produced the history bit for bit. It returns NaN if the
// history's length does not match steps·n·n or it holds a NaN or ±Inf.
func HistoryLyapunov(history []float64, steps, n int) float64 {
	if checkShape(history, steps, n) != nil || checkFinite(history, n) != nil {
		return math.NaN()
	}
	cells := n * n
	sum, count := 0.0, 0
	for t := 1; t < steps; t++ {
		cur := history[t*cells : (t+1)*cells]
		prev := history[(t-1)*cells : t*cells]
		s2 := 0.0
		for r := range n {
			_, _, sd2, _ := rowStats(cur[r*n:(r+1)*n], prev[r*n:(r+1)*n])
			s2 += sd2
		}
		if norm := math.Sqrt(s2) / 1000; norm > lyapunovMinNorm {
			sum += math.Log(norm)
			count++
		}
	}
	if count == 0 {
		return 0
	}
	return sum / float64(count)
}

// checkShape validates the shape of a history.
func checkShape(history []float64, steps, n int) error {
	if steps < 1 || n < 1 {
		return fmt.Errorf("%w: steps %d and n %d must be ≥ 1", ErrShape, steps, n)
	}
	if n > 1<<15 || steps > math.MaxInt/(n*n) || len(history) != steps*n*n {
		return fmt.Errorf("%w: %d values for %d frames of %d×%d", ErrShape, len(history), steps, n, n)
	}
	return nil
}

// checkFinite returns a *NonFiniteError for the first NaN or ±Inf.
func checkFinite(history []float64, n int) error {
	for k, v := range history {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			cells := n * n
			return &NonFiniteError{Frame: k / cells, Row: k % cells / n, Col: k % n, Value: v}
		}
	}
	return nil
}

// staticScratch holds the buffers of staticFeatures.
type staticScratch struct {
	mv, tmp []float64
	mask    []bool
	cs      clusterScratch
}

func (sc *staticScratch) grow(cells int) {
	if cap(sc.mv) < cells {
		sc.mv = make([]float64, cells)
		sc.tmp = make([]float64, cells)
		sc.mask = make([]bool, cells)
	}
	sc.mv, sc.tmp, sc.mask = sc.mv[:cells], sc.tmp[:cells], sc.mask[:cells]
}

// staticFeatures fills the features of a single n×n field (volts):
// D_box, D_r2, V_min … V_kurt, f_active and the cluster features.
func staticFeatures(v []float64, n int, f *Features, sc *staticScratch) {
	cells := n * n
	sc.grow(cells)
	mv, tmp, mask := sc.mv, sc.tmp, sc.mask

	active := 0
	vmin, vmax := math.Inf(1), math.Inf(-1)
	for k, x := range v {
		b := x > thresholdLowV
		mask[k] = b
		if b {
			active++
		}
		y := x * 1000
		mv[k] = y
		vmin = min(vmin, y)
		vmax = max(vmax, y)
	}
	sizes, _ := BoxSizes(n, DefaultMinBox, DefaultNumScales)
	f[FDBox], f[FDR2] = BoxDimension(mask, n, sizes)

	m := mean(mv)
	std := populationStd(mv, tmp)
	f[FVMin], f[FVMax], f[FVMean], f[FVStd] = vmin, vmax, m, std
	f[FVSkew], f[FVKurt] = 0, 0
	if std > 1e-10 {
		for k, y := range mv {
			tmp[k] = cube(y - m)
		}
		m3 := mean(tmp)
		for k, y := range mv {
			tmp[k] = fourth(y - m)
		}
		m4 := mean(tmp)
		f[FVSkew] = m3 / cube(std)
		f[FVKurt] = m4/fourth(std) - 3.0
	}

	f[FFActive] = float64(active) / float64(cells)
	f[FClustersLow] = float64(sc.cs.components(v, n, thresholdLowV))
	f[FMaxClusterSize], f[FClusterSizeStd] = 0, 0
	if sizes := sc.cs.sizes; len(sizes) > 0 {
		big := 0.0
		for _, s := range sizes {
			big = max(big, s)
		}
		f[FMaxClusterSize] = big
		if len(sizes) > 1 {
			f[FClusterSizeStd] = populationStd(sizes, tmp)
		}
	}
	f[FClustersMed] = float64(sc.cs.components(v, n, thresholdMedV))
	f[FClustersHigh] = float64(sc.cs.components(v, n, thresholdHighV))
}
