package analyze

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/mfn/mfn/sim"
)

// DefaultThresholdMV is the activity threshold of the D_box feature:
// MFN_MODEL's low threshold, −60 mV.
const DefaultThresholdMV = -60.0

// MaxScales bounds the number of box edges of one analysis (and so the
// panels of the box-counting figure).
const MaxScales = 16

// MaxSweep bounds the number of thresholds of a threshold sweep.
const MaxSweep = 256

// ErrFractalConfig is wrapped by every error about a FractalConfig or a
// threshold sweep; the message names the field and its valid range.
var ErrFractalConfig = errors.New("analyze: invalid fractal configuration")

// ErrField is wrapped by errors about the shape or values of a field.
var ErrField = errors.New("analyze: invalid field")

// FractalConfig says how a field is turned into a binary pattern and at
// which scales its boxes are counted.
type FractalConfig struct {
	// ThresholdMV: a cell is active when its potential is strictly above
	// this many millivolts. Must be finite. DefaultFractalConfig sets −60.
	ThresholdMV float64
	// Sizes are the box edges in cells, strictly increasing, each ≥ 1,
	// at most MaxScales of them. Nil means the sizes of the D_box feature
	// for the grid (sim.BoxSizes with 2 and 5 scales: [2 4 7 16 32] for
	// N ≥ 64). Edges larger than the grid count nothing and are dropped
	// from the fit, as in the feature.
	Sizes []int
}

// DefaultFractalConfig returns the parameters of the D_box feature:
// threshold −60 mV and the reference's box sizes.
func DefaultFractalConfig() FractalConfig {
	return FractalConfig{ThresholdMV: DefaultThresholdMV}
}

// Validate returns an error wrapping ErrFractalConfig naming the first bad
// field.
func (c FractalConfig) Validate() error {
	if math.IsNaN(c.ThresholdMV) || math.IsInf(c.ThresholdMV, 0) {
		return fmt.Errorf("%w: ThresholdMV %v must be finite", ErrFractalConfig, c.ThresholdMV)
	}
	if len(c.Sizes) > MaxScales {
		return fmt.Errorf("%w: %d Sizes, at most %d", ErrFractalConfig, len(c.Sizes), MaxScales)
	}
	for i, s := range c.Sizes {
		if s < 1 {
			return fmt.Errorf("%w: Sizes[%d] = %d must be ≥ 1", ErrFractalConfig, i, s)
		}
		if i > 0 && s <= c.Sizes[i-1] {
			return fmt.Errorf("%w: Sizes must be strictly increasing (%d after %d)", ErrFractalConfig, s, c.Sizes[i-1])
		}
	}
	return nil
}

// sizesFor returns the box edges for an n×n grid.
func (c FractalConfig) sizesFor(n int) []int {
	if c.Sizes != nil {
		return slices.Clone(c.Sizes)
	}
	s, _ := sim.BoxSizes(n, sim.DefaultMinBox, sim.DefaultNumScales) // default parameters cannot fail
	return s
}

// Scale is one box edge of a box count.
type Scale struct {
	Size  int  `json:"size"`  // box edge in cells
	Boxes int  `json:"boxes"` // boxes in the k×k tiling, k = N/size (0 if size > N)
	Count int  `json:"count"` // boxes holding an active cell
	Used  bool `json:"used"`  // whether the point enters the fit (count > 0)
}

// BoxFit is the box-counting analysis of one binary pattern: the count at
// every scale and the least-squares fit ln(count) = D·ln(1/s) + Intercept
// over the scales with a non-zero count.
type BoxFit struct {
	ThresholdMV    float64 `json:"threshold_mv"`
	ActiveFraction float64 `json:"active_fraction"` // fraction of cells above the threshold
	Scales         []Scale `json:"scales"`
	// D is the slope, the box-counting dimension; R2 the fit's R² clamped
	// to [0, 1]. Both are exactly sim.BoxDimension's, hence equal to the
	// D_box and D_r2 features at the default configuration. Both are 0
	// when fewer than two scales have a non-zero count.
	D  float64 `json:"d"`
	R2 float64 `json:"r2"`
	// Intercept is the fitted constant c (0 when D is undefined).
	Intercept float64 `json:"intercept"`
}

// checkField validates one n×n frame of volts.
func checkField(frame []float64, n int) error {
	if n < 1 || len(frame) != n*n {
		return fmt.Errorf("%w: %d values for a %d×%d field", ErrField, len(frame), n, n)
	}
	for k, v := range frame {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: non-finite value %v at row %d, column %d", ErrField, v, k/n, k%n)
		}
	}
	return nil
}

// Mask returns the binary pattern of an n×n row-major frame of volts: cell
// k is true when frame[k] > thresholdMV/1000 (volts, strictly), the same
// comparison as the feature extractor.
func Mask(frame []float64, thresholdMV float64) []bool {
	thr := thresholdMV / 1000
	m := make([]bool, len(frame))
	for k, v := range frame {
		m[k] = v > thr
	}
	return m
}

// BoxCount analyses an n×n row-major binary mask at the given box edges
// (see FractalConfig.Sizes; nil means the feature's sizes). D and R2 come
// from sim.BoxDimension, so they match the feature bit for bit. It returns
// an error wrapping ErrFractalConfig for bad sizes and ErrField if
// len(mask) ≠ n·n.
func BoxCount(mask []bool, n int, sizes []int) (BoxFit, error) {
	cfg := FractalConfig{Sizes: sizes}
	if err := cfg.Validate(); err != nil {
		return BoxFit{}, err
	}
	if n < 1 || len(mask) != n*n {
		return BoxFit{}, fmt.Errorf("%w: mask of %d cells for a %d×%d grid", ErrField, len(mask), n, n)
	}
	sizes = cfg.sizesFor(n)
	counts := sim.BoxCounts(mask, n, sizes)
	fit := BoxFit{Scales: make([]Scale, len(sizes))}
	var xs, ys []float64
	for i, s := range sizes {
		k := n / s
		fit.Scales[i] = Scale{Size: s, Boxes: k * k, Count: counts[i], Used: counts[i] > 0}
		if counts[i] > 0 {
			xs = append(xs, math.Log(1/float64(s)))
			ys = append(ys, math.Log(float64(counts[i])))
		}
	}
	active := 0
	for _, b := range mask {
		if b {
			active++
		}
	}
	fit.ActiveFraction = float64(active) / float64(len(mask))
	fit.D, fit.R2 = sim.BoxDimension(mask, n, sizes)
	if len(xs) >= 2 {
		fit.Intercept = mean(ys) - fit.D*mean(xs)
	}
	return fit, nil
}

// FieldFit thresholds an n×n frame of volts at cfg.ThresholdMV and counts
// its boxes at cfg's sizes. Errors: ErrFractalConfig for a bad cfg, ErrField
// for a wrong length or a NaN/Inf (naming the cell).
func FieldFit(frame []float64, n int, cfg FractalConfig) (BoxFit, error) {
	if err := cfg.Validate(); err != nil {
		return BoxFit{}, err
	}
	if err := checkField(frame, n); err != nil {
		return BoxFit{}, err
	}
	fit, err := BoxCount(Mask(frame, cfg.ThresholdMV), n, cfg.sizesFor(n))
	fit.ThresholdMV = cfg.ThresholdMV
	return fit, err
}

// SweepPoint is the dimension of one frame at one threshold.
type SweepPoint struct {
	ThresholdMV    float64 `json:"threshold_mv"`
	D              float64 `json:"d"`
	R2             float64 `json:"r2"`
	ActiveFraction float64 `json:"active_fraction"`
}

// ThresholdSweep returns the dimension of one n×n frame at each threshold
// (mV, at most MaxSweep, each finite) with the box edges of sizes (nil
// means the feature's sizes). Errors as FieldFit.
func ThresholdSweep(frame []float64, n int, thresholdsMV []float64, sizes []int) ([]SweepPoint, error) {
	if len(thresholdsMV) > MaxSweep {
		return nil, fmt.Errorf("%w: %d thresholds, at most %d", ErrFractalConfig, len(thresholdsMV), MaxSweep)
	}
	out := make([]SweepPoint, 0, len(thresholdsMV))
	for _, t := range thresholdsMV {
		fit, err := FieldFit(frame, n, FractalConfig{ThresholdMV: t, Sizes: sizes})
		if err != nil {
			return nil, err
		}
		out = append(out, SweepPoint{ThresholdMV: t, D: fit.D, R2: fit.R2, ActiveFraction: fit.ActiveFraction})
	}
	return out, nil
}

// TimePoint is the dimension of one frame of a history.
type TimePoint struct {
	Step           int     `json:"step"` // 1-based, as the simulation counts
	D              float64 `json:"d"`
	R2             float64 `json:"r2"`
	ActiveFraction float64 `json:"active_fraction"`
}

// OverTime returns the dimension of every frame of a history of steps n×n
// frames (volts) under cfg. It checks ctx between frames and returns its
// error if cancelled. Errors as FieldFit, naming the frame.
func OverTime(ctx context.Context, history []float64, steps, n int, cfg FractalConfig) ([]TimePoint, error) {
	if steps < 1 || n < 1 || len(history) != steps*n*n {
		return nil, fmt.Errorf("%w: %d values for %d frames of %d×%d", ErrField, len(history), steps, n, n)
	}
	out := make([]TimePoint, steps)
	for t := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fit, err := FieldFit(history[t*n*n:(t+1)*n*n], n, cfg)
		if err != nil {
			return nil, fmt.Errorf("frame %d: %w", t, err)
		}
		out[t] = TimePoint{Step: t + 1, D: fit.D, R2: fit.R2, ActiveFraction: fit.ActiveFraction}
	}
	return out, nil
}

// FractalReport is the whole fractal exploration of a field or history:
// the fit of the last frame under the chosen configuration, the threshold
// sweep of the last frame and, for a history, the dimension over time.
type FractalReport struct {
	Shape     []int        `json:"shape"` // [T, N, N] or [N, N] as read
	Steps     int          `json:"steps"`
	N         int          `json:"n"`
	Frame     int          `json:"frame"` // 1-based step analysed by Fit and Sweep (the last)
	Fit       BoxFit       `json:"fit"`
	Sweep     []SweepPoint `json:"threshold_sweep"`
	OverTime  []TimePoint  `json:"over_time,omitempty"`
	IsDefault bool         `json:"default_parameters"` // threshold −60 mV and the feature's sizes
}

// DefaultSweepMV is the default threshold sweep: −90 to +30 mV every 5 mV,
// which spans the clamp range [−95, 40] mV of the model.
func DefaultSweepMV() []float64 {
	var out []float64
	for t := -90.0; t <= 30; t += 5 {
		out = append(out, t)
	}
	return out
}

// Fractal analyses a history of steps n×n frames (steps may be 1): the fit
// and threshold sweep of the last frame and, if steps > 1, the dimension
// of every frame. shape is recorded as given. Errors as FieldFit and
// ThresholdSweep; ctx cancels the per-frame loop.
func Fractal(ctx context.Context, history []float64, shape []int, steps, n int, cfg FractalConfig, sweepMV []float64) (*FractalReport, error) {
	if steps < 1 || n < 1 || len(history) != steps*n*n {
		return nil, fmt.Errorf("%w: %d values for %d frames of %d×%d", ErrField, len(history), steps, n, n)
	}
	last := history[(steps-1)*n*n:]
	fit, err := FieldFit(last, n, cfg)
	if err != nil {
		return nil, err
	}
	sweep, err := ThresholdSweep(last, n, sweepMV, cfg.Sizes)
	if err != nil {
		return nil, err
	}
	r := &FractalReport{Shape: slices.Clone(shape), Steps: steps, N: n, Frame: steps, Fit: fit, Sweep: sweep,
		IsDefault: cfg.ThresholdMV == DefaultThresholdMV && cfg.Sizes == nil}
	if steps > 1 {
		if r.OverTime, err = OverTime(ctx, history, steps, n, cfg); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// mean returns the arithmetic mean of x (0 for an empty x).
func mean(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}
