package sim

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"
)

// ErrInvalidSweep is wrapped by every error about a malformed or out-of-range
// sweep, so callers can test errors.Is(err, ErrInvalidSweep).
var ErrInvalidSweep = errors.New("invalid sweep")

// SweepError reports a sweep that does not parse or that reaches outside the
// parameter's valid range. Param is the snake_case parameter name (as in
// ConfigError.Field and the dataset columns); Range, when set, describes the
// valid values. It wraps ErrInvalidSweep and, for range violations, the
// *ConfigError that Config.Validate returned.
type SweepError struct {
	Param  string
	Text   string // the sweep as given, when it came from a string
	Reason string
	Range  string
	Err    error
}

func (e *SweepError) Error() string {
	var b strings.Builder
	b.WriteString(e.Param)
	if e.Text != "" {
		fmt.Fprintf(&b, " %q", e.Text)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Range != "" {
		b.WriteString("; valid: ")
		b.WriteString(e.Range)
	}
	return b.String()
}

// Unwrap returns ErrInvalidSweep and the underlying cause, if any.
func (e *SweepError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidSweep, e.Err}
	}
	return []error{ErrInvalidSweep}
}

// Sweep describes the values one simulation parameter takes across a dataset:
//
//   - a fixed value: Values has one element;
//   - a list: Values has several elements and each sample picks one
//     uniformly at random;
//   - a range (numeric parameters only): IsRange is set and each sample draws
//     uniformly from [Min, Max] (for integers, every value in Min..Max
//     inclusive is equally likely).
//
// Build one with Fixed or parse one with ParseIntSweep, ParseFloatSweep,
// ParseBoolSweep or ParseBoundarySweep.
type Sweep[T int | float64 | bool | Boundary] struct {
	Values   []T
	Min, Max T
	IsRange  bool
}

// Fixed returns the sweep that always yields v.
func Fixed[T int | float64 | bool | Boundary](v T) Sweep[T] { return Sweep[T]{Values: []T{v}} }

// String renders the sweep in the syntax the Parse functions accept.
func (s Sweep[T]) String() string {
	if s.IsRange {
		return formatValue(s.Min) + ":" + formatValue(s.Max)
	}
	parts := make([]string, len(s.Values))
	for i, v := range s.Values {
		parts[i] = formatValue(v)
	}
	return strings.Join(parts, ",")
}

func formatValue(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// endpoints returns every value that bounds the sweep: the list, or the two
// ends of the range. Because every valid parameter set is an interval, the
// sweep stays valid if its endpoints are.
func (s Sweep[T]) endpoints() []T {
	if s.IsRange {
		return []T{s.Min, s.Max}
	}
	return s.Values
}

// draw picks the sample's value. Fixed sweeps consume no randomness.
func (s Sweep[T]) draw(rng *rand.Rand) T {
	if !s.IsRange {
		if len(s.Values) == 1 {
			return s.Values[0]
		}
		return s.Values[rng.IntN(len(s.Values))]
	}
	switch lo := any(s.Min).(type) {
	case int:
		span := uint64(any(s.Max).(int)-lo) + 1 // 0 only for the full int range
		if span == 0 {
			return any(int(rng.Uint64())).(T)
		}
		return any(lo + int(rng.Uint64N(span))).(T)
	case float64:
		hi := any(s.Max).(float64)
		return any(lo + (hi-lo)*rng.Float64()).(T)
	}
	return s.Min // ranges of bools and boundaries are rejected by check
}

// check reports structural problems: an empty list, a range over a
// non-numeric type or with min > max.
func (s Sweep[T]) check(param string) error {
	if !s.IsRange {
		if len(s.Values) == 0 {
			return &SweepError{Param: param, Reason: "no values"}
		}
		return nil
	}
	switch lo := any(s.Min).(type) {
	case int:
		if lo > any(s.Max).(int) {
			return &SweepError{Param: param, Text: s.String(), Reason: "range minimum exceeds maximum"}
		}
	case float64:
		hi := any(s.Max).(float64)
		if !(lo <= hi) {
			return &SweepError{Param: param, Text: s.String(), Reason: "range minimum exceeds maximum (or is NaN)"}
		}
	default:
		return &SweepError{Param: param, Text: s.String(), Reason: "a min:max range needs a numeric parameter; use a list"}
	}
	return nil
}

// parseSweep splits text into a fixed value, a comma-separated list or a
// min:max range and parses each part with parse.
func parseSweep[T int | float64 | bool | Boundary](param, text string, numeric bool, parse func(string) (T, error)) (Sweep[T], error) {
	fail := func(reason string) (Sweep[T], error) {
		return Sweep[T]{}, &SweepError{Param: param, Text: text, Reason: reason}
	}
	t := strings.TrimSpace(text)
	if t == "" {
		return fail("empty value")
	}
	if lo, hi, isRange := strings.Cut(t, ":"); isRange {
		if !numeric {
			return fail("a min:max range needs a numeric parameter; use a list such as a,b")
		}
		if strings.Contains(t, ",") {
			return fail("mixes a list and a range; use either a,b,c or min:max")
		}
		l, err := parse(strings.TrimSpace(lo))
		if err != nil {
			return fail("range minimum: " + err.Error())
		}
		h, err := parse(strings.TrimSpace(hi))
		if err != nil {
			return fail("range maximum: " + err.Error())
		}
		s := Sweep[T]{Min: l, Max: h, IsRange: true}
		if err := s.check(param); err != nil {
			return Sweep[T]{}, err
		}
		return s, nil
	}
	var s Sweep[T]
	for _, part := range strings.Split(t, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return fail("empty list element")
		}
		v, err := parse(part)
		if err != nil {
			return fail(err.Error())
		}
		s.Values = append(s.Values, v)
	}
	return s, nil
}

// ParseIntSweep parses "64", "32,64,128" or "32:128" for the integer
// parameter param. Errors are *SweepError values.
func ParseIntSweep(param, text string) (Sweep[int], error) {
	return parseSweep(param, text, true, func(s string) (int, error) {
		v, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", s)
		}
		return v, nil
	})
}

// ParseFloatSweep parses "0.18", "0.1,0.2,0.24" or "0.05:0.24" for the
// real parameter param. Errors are *SweepError values.
func ParseFloatSweep(param, text string) (Sweep[float64], error) {
	return parseSweep(param, text, true, func(s string) (float64, error) {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", s)
		}
		return v, nil
	})
}

// ParseBoolSweep parses "true", "false" or "true,false" (any spelling
// strconv.ParseBool accepts). Ranges are rejected. Errors are *SweepError values.
func ParseBoolSweep(param, text string) (Sweep[bool], error) {
	return parseSweep(param, text, false, func(s string) (bool, error) {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return false, fmt.Errorf("%q is not true or false", s)
		}
		return v, nil
	})
}

// ParseBoundarySweep parses a boundary name or a list of them, e.g.
// "periodic,neumann". Errors are *SweepError values.
func ParseBoundarySweep(param, text string) (Sweep[Boundary], error) {
	return parseSweep(param, text, false, func(s string) (Boundary, error) {
		b, err := ParseBoundary(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not one of periodic, neumann, dirichlet", s)
		}
		return b, nil
	})
}

// DatasetSpec describes a batch of simulations. Each swept field gives the
// values of one column; the diffusion and reaction constants D_a, D_i, r_a and
// r_i are not swept and come from Base.
type DatasetSpec struct {
	Samples int   // number of simulations (rows); ≥ 1
	Seed    int64 // master seed S; sample i's seed is SampleSeed(S, i)

	GridSize         Sweep[int]
	Steps            Sweep[int]
	Alpha            Sweep[float64]
	SpikeProbability Sweep[float64]
	TuringEnabled    Sweep[bool]
	TuringThreshold  Sweep[float64]
	QuantumJitter    Sweep[bool]
	JitterVar        Sweep[float64]
	Boundary         Sweep[Boundary]

	Base Config // supplies Da, Di, Ra, Ri
}

// DefaultDatasetSpec returns a spec of one sample whose every parameter is
// fixed at DefaultConfig's value, with master seed 0.
func DefaultDatasetSpec() DatasetSpec {
	c := DefaultConfig()
	return DatasetSpec{
		Samples:          1,
		GridSize:         Fixed(c.GridSize),
		Steps:            Fixed(c.Steps),
		Alpha:            Fixed(c.Alpha),
		SpikeProbability: Fixed(c.SpikeProbability),
		TuringEnabled:    Fixed(c.TuringEnabled),
		TuringThreshold:  Fixed(c.TuringThreshold),
		QuantumJitter:    Fixed(c.QuantumJitter),
		JitterVar:        Fixed(c.JitterVar),
		Boundary:         Fixed(c.Boundary),
		Base:             c,
	}
}

// Validate checks the spec: Samples ≥ 1, every sweep well formed, and every
// value a sweep can yield accepted by Config.Validate (checked at the list
// values and range ends, which suffices because each valid parameter set is
// an interval). Errors are *SweepError values naming the parameter and its
// valid range, or a *ConfigError for Samples or Base.
func (s DatasetSpec) Validate() error {
	if s.Samples < 1 {
		return &ConfigError{Field: "samples", Value: s.Samples, Range: "≥ 1"}
	}
	if err := s.Base.Validate(); err != nil {
		return err
	}
	for _, err := range []error{
		validateSweep(s.Base, "grid_size", s.GridSize, func(c *Config, v int) { c.GridSize = v }),
		validateSweep(s.Base, "steps", s.Steps, func(c *Config, v int) { c.Steps = v }),
		validateSweep(s.Base, "alpha", s.Alpha, func(c *Config, v float64) { c.Alpha = v }),
		validateSweep(s.Base, "spike_probability", s.SpikeProbability, func(c *Config, v float64) { c.SpikeProbability = v }),
		validateSweep(s.Base, "turing_enabled", s.TuringEnabled, func(c *Config, v bool) { c.TuringEnabled = v }),
		validateSweep(s.Base, "turing_threshold", s.TuringThreshold, func(c *Config, v float64) { c.TuringThreshold = v }),
		validateSweep(s.Base, "quantum_jitter", s.QuantumJitter, func(c *Config, v bool) { c.QuantumJitter = v }),
		validateSweep(s.Base, "jitter_var", s.JitterVar, func(c *Config, v float64) { c.JitterVar = v }),
		validateSweep(s.Base, "boundary", s.Boundary, func(c *Config, v Boundary) { c.Boundary = v }),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// validateSweep checks sw's structure and runs Config.Validate on base with
// each of sw's endpoint values set.
func validateSweep[T int | float64 | bool | Boundary](base Config, param string, sw Sweep[T], set func(*Config, T)) error {
	if err := sw.check(param); err != nil {
		return err
	}
	for _, v := range sw.endpoints() {
		c := base
		set(&c, v)
		if err := c.Validate(); err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				return &SweepError{Param: param, Text: sw.String(), Reason: fmt.Sprintf("value %v out of range", formatValue(v)), Range: ce.Range, Err: err}
			}
			return err
		}
	}
	return nil
}

// splitMix64Gamma is the golden-ratio increment of SplitMix64
// (Steele, Lea, Flood: "Fast splittable pseudorandom number generators",
// OOPSLA 2014), 2^64/φ rounded to odd.
const splitMix64Gamma = 0x9E3779B97F4A7C15

// splitMixOut is SplitMix64's output function (the variant "Mix13" of Stafford's
// MurmurHash3 finalizer, as in java.util.SplittableRandom).
func splitMixOut(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// SampleSeed returns the simulation seed of sample i under master seed s:
// the (i+1)-th output of a SplitMix64 generator whose state starts at s,
// that is splitMixOut(s + (i+1)·0x9E3779B97F4A7C15) reinterpreted as int64.
// Neighbouring samples get statistically independent seeds, and the seed of a
// sample depends only on (s, i), never on how the work was scheduled.
func SampleSeed(s int64, i int) int64 {
	return int64(splitMixOut(uint64(s) + uint64(i+1)*splitMix64Gamma))
}

// paramRNG returns the generator that draws parameter number p (0-based, in
// column order grid_size … boundary) of the sample whose seed is seed: a PCG
// with state splitMixOut(seed) and stream p+1. Each parameter has its own stream,
// so sweeping one parameter never changes the values drawn for another, and
// the streams are disjoint from the simulation's own use of seed.
func paramRNG(seed int64, p int) *rand.Rand {
	return rand.New(rand.NewPCG(splitMixOut(uint64(seed)), uint64(p)+1))
}

// SampleConfig returns the configuration of sample i: its seed is
// SampleSeed(spec.Seed, i), its swept parameters are drawn as paramRNG
// describes, and the rest comes from spec.Base. The result is checked with
// Config.Validate; an error names sample i.
func (s DatasetSpec) SampleConfig(i int) (Config, error) {
	c := s.Base
	c.Seed = SampleSeed(s.Seed, i)
	c.GridSize = s.GridSize.draw(paramRNG(c.Seed, 0))
	c.Steps = s.Steps.draw(paramRNG(c.Seed, 1))
	c.Alpha = s.Alpha.draw(paramRNG(c.Seed, 2))
	c.SpikeProbability = s.SpikeProbability.draw(paramRNG(c.Seed, 3))
	c.TuringEnabled = s.TuringEnabled.draw(paramRNG(c.Seed, 4))
	c.TuringThreshold = s.TuringThreshold.draw(paramRNG(c.Seed, 5))
	c.QuantumJitter = s.QuantumJitter.draw(paramRNG(c.Seed, 6))
	c.JitterVar = s.JitterVar.draw(paramRNG(c.Seed, 7))
	c.Boundary = s.Boundary.draw(paramRNG(c.Seed, 8))
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("sample %d: %w", i, err)
	}
	return c, nil
}

// Row is one dataset row: the configuration of one simulation and what it
// produced.
type Row struct {
	SimID  int // sample index i, 0-based
	Config Config
	Result RowResult
}

// RowResult is the part of a Row computed by the simulation.
type RowResult struct {
	Features          Features
	GrowthEvents      int
	TuringActivations int
	ClampedCells      int
	Lyapunov          float64
}

// DatasetColumns lists the column names of a dataset file, in order: the
// sample id and seed, the swept parameters, the 18 features (FeatureNames
// order), the run metrics and the history-based Lyapunov estimate.
func DatasetColumns() []string {
	cols := []string{"sim_id", "seed", "grid_size", "steps", "alpha", "spike_probability",
		"turing_enabled", "turing_threshold", "quantum_jitter", "jitter_var", "boundary"}
	cols = append(cols, FeatureNames[:]...)
	return append(cols, "growth_events", "turing_activations", "clamped_cells", "lyapunov")
}

// RunSample simulates sample i of spec and returns its row. The
// simulation stops early with an error wrapping ctx.Err() if ctx is done;
// other errors name the sample and its seed.
func (s DatasetSpec) RunSample(ctx context.Context, i int) (Row, error) {
	c, err := s.SampleConfig(i)
	if err != nil {
		return Row{}, err
	}
	res, err := SimulateContext(ctx, c, false)
	if err != nil {
		return Row{}, fmt.Errorf("sample %d (seed %d): %w", i, c.Seed, err)
	}
	return Row{SimID: i, Config: c, Result: RowResult{
		Features:          res.Features,
		GrowthEvents:      res.Metrics.GrowthEvents,
		TuringActivations: res.Metrics.TuringActivations,
		ClampedCells:      res.Metrics.ClampedCells,
		Lyapunov:          res.Lyapunov,
	}}, nil
}

// GenerateDataset runs spec.Samples simulations on workers goroutines
// (workers < 1 means 1) and calls emit with each row in sim_id order, from
// the calling goroutine. Rows depend only on spec, never on workers or
// scheduling, so the emitted sequence is identical for any worker count.
//
// At most 4·workers samples are in flight or waiting to be emitted, so memory
// does not grow with Samples. GenerateDataset stops at the first error: an
// invalid spec (see Validate), a failed simulation (naming the sample), an
// error returned by emit, or the cancellation of ctx (the error then wraps
// ctx.Err()). It returns only after all its goroutines have exited.
func GenerateDataset(ctx context.Context, spec DatasetSpec, workers int, emit func(Row) error) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	workers = max(1, min(workers, spec.Samples))
	ctx, cancel := context.WithCancel(ctx)

	type result struct {
		row Row
		err error
	}
	window := 4 * workers
	slots := make(chan struct{}, window)
	jobs := make(chan int)
	results := make(chan result, window)
	var wg sync.WaitGroup
	defer func() {
		cancel() // unblocks the dispatcher and the workers
		wg.Wait()
	}()
	wg.Add(1)
	go func() { // dispatcher: hands out indices while a slot is free
		defer wg.Done()
		defer close(jobs)
		for i := 0; i < spec.Samples; i++ {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if ctx.Err() != nil {
					return
				}
				row, err := spec.RunSample(ctx, i)
				select {
				case results <- result{row, err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	pending := make(map[int]Row, window)
	for next := 0; next < spec.Samples; {
		select {
		case r := <-results:
			if r.err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("dataset generation stopped after %d of %d samples: %w", next, spec.Samples, ctx.Err())
				}
				return r.err
			}
			pending[r.row.SimID] = r.row
		case <-ctx.Done():
			return fmt.Errorf("dataset generation stopped after %d of %d samples: %w", next, spec.Samples, ctx.Err())
		}
		for {
			row, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			if ctx.Err() != nil {
				return fmt.Errorf("dataset generation stopped after %d of %d samples: %w", next, spec.Samples, ctx.Err())
			}
			if err := emit(row); err != nil {
				return err
			}
			next++
			<-slots
		}
	}
	return nil
}

// RowWriter writes dataset rows to a file format. Close flushes buffered
// rows and the format's footer; it does not close the underlying writer.
type RowWriter interface {
	WriteRow(Row) error
	Close() error
}

// ErrUnknownFormat is returned by NewRowWriter for a path whose extension
// is neither .csv nor .parquet.
var ErrUnknownFormat = errors.New("unknown dataset format (want a .csv or .parquet file name)")

// NewRowWriter returns the writer for the format named by path's extension
// (.csv or .parquet, case-insensitive), writing to w. Other extensions give
// an error wrapping ErrUnknownFormat.
func NewRowWriter(w io.Writer, path string) (RowWriter, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return NewCSVWriter(w), nil
	case ".parquet":
		return NewParquetWriter(w), nil
	}
	return nil, fmt.Errorf("%s: %w", path, ErrUnknownFormat)
}

// CSVWriter writes rows as RFC 4180 CSV with a header line of
// DatasetColumns. Floats use the shortest representation that parses back
// to the same float64; booleans are true/false; the boundary is its name.
type CSVWriter struct {
	w      *csv.Writer
	header bool
	rec    []string
}

// NewCSVWriter returns a CSVWriter writing to w.
func NewCSVWriter(w io.Writer) *CSVWriter {
	return &CSVWriter{w: csv.NewWriter(w), rec: make([]string, 0, len(DatasetColumns()))}
}

// WriteRow writes the header (before the first row) and one record.
func (cw *CSVWriter) WriteRow(r Row) error {
	if !cw.header {
		cw.header = true
		if err := cw.w.Write(DatasetColumns()); err != nil {
			return err
		}
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	c := r.Config
	rec := append(cw.rec[:0],
		strconv.Itoa(r.SimID), strconv.FormatInt(c.Seed, 10),
		strconv.Itoa(c.GridSize), strconv.Itoa(c.Steps), f(c.Alpha), f(c.SpikeProbability),
		strconv.FormatBool(c.TuringEnabled), f(c.TuringThreshold),
		strconv.FormatBool(c.QuantumJitter), f(c.JitterVar), c.Boundary.String())
	for _, v := range r.Result.Features {
		rec = append(rec, f(v))
	}
	rec = append(rec, strconv.Itoa(r.Result.GrowthEvents), strconv.Itoa(r.Result.TuringActivations),
		strconv.Itoa(r.Result.ClampedCells), f(r.Result.Lyapunov))
	cw.rec = rec
	return cw.w.Write(rec)
}

// Close writes the header if no row was written, and flushes.
func (cw *CSVWriter) Close() error {
	if !cw.header {
		cw.header = true
		if err := cw.w.Write(DatasetColumns()); err != nil {
			return err
		}
	}
	cw.w.Flush()
	return cw.w.Error()
}

// ParquetRow is the Parquet schema of a dataset row: one column per entry of
// DatasetColumns, in the same order, integers as INT64, reals as DOUBLE,
// flags as BOOLEAN and the boundary as a UTF-8 string. Readers can decode a
// file with parquet.Read[sim.ParquetRow].
type ParquetRow struct {
	SimID             int64   `parquet:"sim_id"`
	Seed              int64   `parquet:"seed"`
	GridSize          int64   `parquet:"grid_size"`
	Steps             int64   `parquet:"steps"`
	Alpha             float64 `parquet:"alpha"`
	SpikeProbability  float64 `parquet:"spike_probability"`
	TuringEnabled     bool    `parquet:"turing_enabled"`
	TuringThreshold   float64 `parquet:"turing_threshold"`
	QuantumJitter     bool    `parquet:"quantum_jitter"`
	JitterVar         float64 `parquet:"jitter_var"`
	Boundary          string  `parquet:"boundary"`
	DBox              float64 `parquet:"D_box"`
	DR2               float64 `parquet:"D_r2"`
	VMin              float64 `parquet:"V_min"`
	VMax              float64 `parquet:"V_max"`
	VMean             float64 `parquet:"V_mean"`
	VStd              float64 `parquet:"V_std"`
	VSkew             float64 `parquet:"V_skew"`
	VKurt             float64 `parquet:"V_kurt"`
	DVMean            float64 `parquet:"dV_mean"`
	DVMax             float64 `parquet:"dV_max"`
	TStable           float64 `parquet:"T_stable"`
	ETrend            float64 `parquet:"E_trend"`
	FActive           float64 `parquet:"f_active"`
	NClustersLow      float64 `parquet:"N_clusters_low"`
	NClustersMed      float64 `parquet:"N_clusters_med"`
	NClustersHigh     float64 `parquet:"N_clusters_high"`
	MaxClusterSize    float64 `parquet:"max_cluster_size"`
	ClusterSizeStd    float64 `parquet:"cluster_size_std"`
	GrowthEvents      int64   `parquet:"growth_events"`
	TuringActivations int64   `parquet:"turing_activations"`
	ClampedCells      int64   `parquet:"clamped_cells"`
	Lyapunov          float64 `parquet:"lyapunov"`
}

// ToParquet converts r to its Parquet form.
func (r Row) ToParquet() ParquetRow {
	c, f := r.Config, r.Result.Features
	return ParquetRow{
		SimID: int64(r.SimID), Seed: c.Seed, GridSize: int64(c.GridSize), Steps: int64(c.Steps),
		Alpha: c.Alpha, SpikeProbability: c.SpikeProbability, TuringEnabled: c.TuringEnabled,
		TuringThreshold: c.TuringThreshold, QuantumJitter: c.QuantumJitter, JitterVar: c.JitterVar,
		Boundary: c.Boundary.String(),
		DBox:     f[FDBox], DR2: f[FDR2], VMin: f[FVMin], VMax: f[FVMax], VMean: f[FVMean], VStd: f[FVStd],
		VSkew: f[FVSkew], VKurt: f[FVKurt], DVMean: f[FDVMean], DVMax: f[FDVMax], TStable: f[FTStable],
		ETrend: f[FETrend], FActive: f[FFActive], NClustersLow: f[FClustersLow], NClustersMed: f[FClustersMed],
		NClustersHigh: f[FClustersHigh], MaxClusterSize: f[FMaxClusterSize], ClusterSizeStd: f[FClusterSizeStd],
		GrowthEvents: int64(r.Result.GrowthEvents), TuringActivations: int64(r.Result.TuringActivations),
		ClampedCells: int64(r.Result.ClampedCells), Lyapunov: r.Result.Lyapunov,
	}
}

// parquetBatch is how many rows ParquetWriter buffers before handing them to
// parquet-go, which buffers a whole row group in memory.
const parquetBatch = 1024

// parquetRowGroup caps a row group at 65536 rows (about 17 MiB of column
// data), so memory stays bounded however many samples a dataset has.
const parquetRowGroup = 1 << 16

// ParquetWriter writes rows as a Parquet file with the ParquetRow schema.
type ParquetWriter struct {
	w     *parquet.GenericWriter[ParquetRow]
	batch []ParquetRow
}

// NewParquetWriter returns a ParquetWriter writing to w.
func NewParquetWriter(w io.Writer) *ParquetWriter {
	return &ParquetWriter{w: parquet.NewGenericWriter[ParquetRow](w, parquet.MaxRowsPerRowGroup(parquetRowGroup))}
}

// WriteRow buffers one row.
func (pw *ParquetWriter) WriteRow(r Row) error {
	pw.batch = append(pw.batch, r.ToParquet())
	if len(pw.batch) >= parquetBatch {
		return pw.flushBatch()
	}
	return nil
}

func (pw *ParquetWriter) flushBatch() error {
	if len(pw.batch) == 0 {
		return nil
	}
	_, err := pw.w.Write(pw.batch)
	pw.batch = pw.batch[:0]
	return err
}

// Close writes buffered rows and the Parquet footer.
func (pw *ParquetWriter) Close() error {
	if err := pw.flushBatch(); err != nil {
		return err
	}
	return pw.w.Close()
}
