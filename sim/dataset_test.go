package sim

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

func TestParseSweep(t *testing.T) {
	t.Parallel()
	f, err := ParseFloatSweep("alpha", "0.18")
	if err != nil || f.IsRange || !slices.Equal(f.Values, []float64{0.18}) {
		t.Errorf("fixed: %+v %v", f, err)
	}
	f, err = ParseFloatSweep("alpha", " 0.1, 0.2 ,0.24")
	if err != nil || f.IsRange || !slices.Equal(f.Values, []float64{0.1, 0.2, 0.24}) {
		t.Errorf("list: %+v %v", f, err)
	}
	f, err = ParseFloatSweep("alpha", "0.05:0.24")
	if err != nil || !f.IsRange || f.Min != 0.05 || f.Max != 0.24 {
		t.Errorf("range: %+v %v", f, err)
	}
	f, err = ParseFloatSweep("x", "-1e-3:2")
	if err != nil || f.Min != -0.001 || f.Max != 2 {
		t.Errorf("negative range: %+v %v", f, err)
	}
	i, err := ParseIntSweep("grid_size", "16:32")
	if err != nil || !i.IsRange || i.Min != 16 || i.Max != 32 {
		t.Errorf("int range: %+v %v", i, err)
	}
	i, err = ParseIntSweep("grid_size", "16,32,64")
	if err != nil || !slices.Equal(i.Values, []int{16, 32, 64}) {
		t.Errorf("int list: %+v %v", i, err)
	}
	b, err := ParseBoolSweep("turing_enabled", "true,false")
	if err != nil || !slices.Equal(b.Values, []bool{true, false}) {
		t.Errorf("bool list: %+v %v", b, err)
	}
	bd, err := ParseBoundarySweep("boundary", "periodic,Neumann,dirichlet")
	if err != nil || !slices.Equal(bd.Values, []Boundary{Periodic, Neumann, Dirichlet}) {
		t.Errorf("boundary list: %+v %v", bd, err)
	}

	bad := []struct {
		parse  func(string) error
		text   string
		reason string
	}{
		{floatP, "", "empty"},
		{floatP, "0.1,", "empty list element"},
		{floatP, "abc", "not a number"},
		{floatP, "0.3:0.1", "minimum exceeds maximum"},
		{floatP, "0.1,0.2:0.3", "mixes a list and a range"},
		{floatP, "0.1:0.2:0.3", "range maximum"},
		{floatP, "NaN:1", "NaN"},
		{intP, "1.5", "not an integer"},
		{intP, "64:32", "minimum exceeds maximum"},
		{boolP, "true:false", "numeric"},
		{boolP, "yes", "not true or false"},
		{boundaryP, "periodic:neumann", "numeric"},
		{boundaryP, "torus", "not one of periodic, neumann, dirichlet"},
	}
	for _, c := range bad {
		err := c.parse(c.text)
		var se *SweepError
		if !errors.As(err, &se) || !errors.Is(err, ErrInvalidSweep) {
			t.Errorf("%q: err %v, want a *SweepError", c.text, err)
			continue
		}
		if !strings.Contains(err.Error(), c.reason) || se.Param != "p" {
			t.Errorf("%q: error %q should name p and say %q", c.text, err, c.reason)
		}
	}
}

func floatP(s string) error    { _, err := ParseFloatSweep("p", s); return err }
func intP(s string) error      { _, err := ParseIntSweep("p", s); return err }
func boolP(s string) error     { _, err := ParseBoolSweep("p", s); return err }
func boundaryP(s string) error { _, err := ParseBoundarySweep("p", s); return err }

func TestSweepStringRoundTrip(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"0.18", "0.1,0.2,0.24", "0.05:0.24", "1e-05:0.0005"} {
		s, err := ParseFloatSweep("p", text)
		if err != nil {
			t.Fatal(err)
		}
		if s.String() != text {
			t.Errorf("%q renders as %q", text, s.String())
		}
	}
	if s := Fixed(Neumann).String(); s != "neumann" {
		t.Errorf("Fixed(Neumann) = %q", s)
	}
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultDatasetSpec().Validate(); err != nil {
		t.Fatalf("default spec: %v", err)
	}
	cases := []struct {
		name   string
		modify func(*DatasetSpec)
		want   []string
	}{
		{"alpha range past CFL", func(s *DatasetSpec) { s.Alpha = Sweep[float64]{Min: 0.05, Max: 0.3, IsRange: true} },
			[]string{"alpha", "0.3", "[0.05, 0.24]"}},
		{"grid list", func(s *DatasetSpec) { s.GridSize = Sweep[int]{Values: []int{64, 2}} }, []string{"grid_size", "2", "[4, 1024]"}},
		{"spike probability", func(s *DatasetSpec) { s.SpikeProbability = Fixed(1.5) }, []string{"spike_probability", "[0, 1]"}},
		{"jitter var", func(s *DatasetSpec) { s.JitterVar = Sweep[float64]{Min: -0.001, Max: 0.001, IsRange: true} }, []string{"jitter_var", "[0, 0.01]"}},
		{"threshold", func(s *DatasetSpec) { s.TuringThreshold = Sweep[float64]{Values: []float64{0.6, 0.99}} }, []string{"turing_threshold", "0.99"}},
		{"steps zero", func(s *DatasetSpec) { s.Steps = Sweep[int]{Min: 0, Max: 10, IsRange: true} }, []string{"steps", "≥ 1"}},
		{"empty boundary", func(s *DatasetSpec) { s.Boundary = Sweep[Boundary]{} }, []string{"boundary", "no values"}},
		{"bool range", func(s *DatasetSpec) { s.QuantumJitter = Sweep[bool]{IsRange: true} }, []string{"quantum_jitter", "numeric"}},
	}
	for _, c := range cases {
		s := DefaultDatasetSpec()
		c.modify(&s)
		err := s.Validate()
		if !errors.Is(err, ErrInvalidSweep) {
			t.Errorf("%s: err %v, want ErrInvalidSweep", c.name, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
	s := DefaultDatasetSpec()
	s.Alpha = Fixed(0.5)
	if err := s.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("range violation should also wrap ErrInvalidConfig: %v", err)
	}
	s = DefaultDatasetSpec()
	s.Samples = 0
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "samples") {
		t.Errorf("samples 0: %v", err)
	}
}

// TestSampleSeedKnownValues pins the documented derivation: the outputs of
// SplitMix64 from state 0 are the published reference sequence
// (java.util.SplittableRandom / Vigna's splitmix64.c with seed 0).
func TestSampleSeedKnownValues(t *testing.T) {
	t.Parallel()
	want := []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f}
	for i, w := range want {
		if got := uint64(SampleSeed(0, i)); got != w {
			t.Errorf("SampleSeed(0, %d) = %#x, want %#x", i, got, w)
		}
	}
	seen := map[int64]bool{}
	for i := range 10000 {
		s := SampleSeed(42, i)
		if seen[s] {
			t.Fatalf("seed collision at sample %d", i)
		}
		seen[s] = true
	}
}

func TestSampleConfigDraws(t *testing.T) {
	t.Parallel()
	spec := DefaultDatasetSpec()
	spec.Seed = 7
	spec.Samples = 400
	spec.Alpha = Sweep[float64]{Min: 0.1, Max: 0.2, IsRange: true}
	spec.GridSize = Sweep[int]{Min: 8, Max: 11, IsRange: true}
	spec.Boundary = Sweep[Boundary]{Values: []Boundary{Neumann, Dirichlet}}
	spec.TuringEnabled = Sweep[bool]{Values: []bool{true, false}}
	grids := map[int]int{}
	bounds := map[Boundary]int{}
	turing := map[bool]int{}
	var alphaSum float64
	for i := range spec.Samples {
		c, err := spec.SampleConfig(i)
		if err != nil {
			t.Fatal(err)
		}
		if c.Seed != SampleSeed(7, i) {
			t.Fatalf("sample %d: seed %d, want SampleSeed", i, c.Seed)
		}
		if c.Alpha < 0.1 || c.Alpha > 0.2 {
			t.Fatalf("alpha %v outside [0.1, 0.2]", c.Alpha)
		}
		alphaSum += c.Alpha
		grids[c.GridSize]++
		bounds[c.Boundary]++
		turing[c.TuringEnabled]++
		if c.Steps != 64 || c.SpikeProbability != 0.25 || c.Da != 0.1 {
			t.Fatalf("fixed parameters changed: %+v", c)
		}
		again, _ := spec.SampleConfig(i)
		if again != c {
			t.Fatalf("sample %d drew differently twice", i)
		}
	}
	// Uniform draws: each of 4 grid sizes ~100 times (binomial sd ≈ 8.7).
	for g := 8; g <= 11; g++ {
		if grids[g] < 60 || grids[g] > 140 {
			t.Errorf("grid size %d drawn %d times of 400", g, grids[g])
		}
	}
	if len(grids) != 4 || len(bounds) != 2 || bounds[Periodic] != 0 || turing[true] < 140 || turing[false] < 140 {
		t.Errorf("draw counts: grids %v boundaries %v turing %v", grids, bounds, turing)
	}
	// Mean of U(0.1, 0.2) over 400 draws: sd ≈ 0.0029/√400·… ≈ 0.0014.
	if m := alphaSum / 400; math.Abs(m-0.15) > 0.006 {
		t.Errorf("alpha mean %v, want ≈ 0.15", m)
	}

	// Parameters use separate streams: sweeping alpha leaves grid sizes alone.
	other := spec
	other.Alpha = Fixed(0.18)
	for i := range 50 {
		a, _ := spec.SampleConfig(i)
		b, _ := other.SampleConfig(i)
		if a.GridSize != b.GridSize || a.Boundary != b.Boundary {
			t.Fatalf("sample %d: fixing alpha changed other draws", i)
		}
	}
}

func TestCSVHeader(t *testing.T) {
	t.Parallel()
	want := "sim_id,seed,grid_size,steps,alpha,spike_probability,turing_enabled,turing_threshold," +
		"quantum_jitter,jitter_var,boundary,D_box,D_r2,V_min,V_max,V_mean,V_std,V_skew,V_kurt," +
		"dV_mean,dV_max,T_stable,E_trend,f_active,N_clusters_low,N_clusters_med,N_clusters_high," +
		"max_cluster_size,cluster_size_std,growth_events,turing_activations,clamped_cells,lyapunov\n"
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want {
		t.Errorf("header\n got %q\nwant %q", buf.String(), want)
	}
}

// syntheticRows builds rows without simulating, with distinct values in
// every column.
func syntheticRows(n int) []Row {
	rows := make([]Row, n)
	for i := range rows {
		c := DefaultConfig()
		c.Seed = SampleSeed(3, i)
		c.GridSize = 8 + i
		c.Alpha = 0.05 + 0.001*float64(i)
		c.TuringEnabled = i%2 == 0
		c.QuantumJitter = i%3 == 0
		c.Boundary = Boundary(i % 3)
		var f Features
		for k := range f {
			f[k] = float64(k) + 0.1*float64(i) - 70
		}
		rows[i] = Row{SimID: i, Config: c, Result: RowResult{
			Features: f, GrowthEvents: i, TuringActivations: 2 * i, ClampedCells: 3 * i, Lyapunov: -1.5 + float64(i),
		}}
	}
	return rows
}

func TestCSVRows(t *testing.T) {
	t.Parallel()
	rows := syntheticRows(3)
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	for _, r := range rows {
		if err := w.WriteRow(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want header + 3", len(recs))
	}
	r1 := recs[2]
	col := func(name string) string { return r1[slices.Index(DatasetColumns(), name)] }
	if col("sim_id") != "1" || col("seed") != strconv.FormatInt(SampleSeed(3, 1), 10) || col("grid_size") != "9" ||
		col("alpha") != "0.051000000000000004" || col("turing_enabled") != "false" || col("boundary") != "neumann" ||
		col("V_min") != "-67.9" || col("clamped_cells") != "3" || col("lyapunov") != "-0.5" {
		t.Errorf("row 1: %v", r1)
	}
}

func TestParquetRoundTrip(t *testing.T) {
	t.Parallel()
	rows := syntheticRows(parquetBatch + 7) // crosses a batch boundary
	var buf bytes.Buffer
	w := NewParquetWriter(&buf)
	for _, r := range rows {
		if err := w.WriteRow(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := parquet.Read[ParquetRow](bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, wrote %d", len(got), len(rows))
	}
	for i, r := range rows {
		if got[i] != r.ToParquet() {
			t.Fatalf("row %d: got %+v want %+v", i, got[i], r.ToParquet())
		}
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range f.Schema().Fields() {
		names = append(names, c.Name())
	}
	if !slices.Equal(names, DatasetColumns()) {
		t.Errorf("parquet columns\n got %v\nwant %v", names, DatasetColumns())
	}
}

func TestNewRowWriter(t *testing.T) {
	t.Parallel()
	if w, err := NewRowWriter(&bytes.Buffer{}, "out/data.CSV"); err != nil {
		t.Errorf("csv: %v", err)
	} else if _, ok := w.(*CSVWriter); !ok {
		t.Errorf("csv: got %T", w)
	}
	if w, err := NewRowWriter(&bytes.Buffer{}, "x.parquet"); err != nil {
		t.Errorf("parquet: %v", err)
	} else if _, ok := w.(*ParquetWriter); !ok {
		t.Errorf("parquet: got %T", w)
	}
	if _, err := NewRowWriter(&bytes.Buffer{}, "x.json"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("json: err %v", err)
	}
}

// smallSweepSpec is a spec with every kind of sweep on small, fast grids.
func smallSweepSpec(samples int) DatasetSpec {
	s := DefaultDatasetSpec()
	s.Samples = samples
	s.Seed = 99
	s.GridSize = Sweep[int]{Min: 8, Max: 16, IsRange: true}
	s.Steps = Sweep[int]{Values: []int{5, 12}}
	s.Alpha = Sweep[float64]{Min: 0.05, Max: 0.24, IsRange: true}
	s.SpikeProbability = Sweep[float64]{Min: 0.2, Max: 1, IsRange: true}
	s.TuringEnabled = Sweep[bool]{Values: []bool{true, false}}
	s.QuantumJitter = Sweep[bool]{Values: []bool{true, false}}
	s.JitterVar = Sweep[float64]{Min: 0, Max: 0.001, IsRange: true}
	s.Boundary = Sweep[Boundary]{Values: []Boundary{Periodic, Neumann, Dirichlet}}
	return s
}

func generateCSV(t *testing.T, spec DatasetSpec, workers int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	next := 0
	err := GenerateDataset(context.Background(), spec, workers, func(r Row) error {
		if r.SimID != next {
			t.Fatalf("row %d emitted when %d was due", r.SimID, next)
		}
		next++
		return w.WriteRow(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if next != spec.Samples {
		t.Fatalf("emitted %d rows, want %d", next, spec.Samples)
	}
	return buf.Bytes()
}

func TestGenerateDatasetWorkerIndependence(t *testing.T) {
	t.Parallel()
	spec := smallSweepSpec(24)
	one := generateCSV(t, spec, 1)
	three := generateCSV(t, spec, 3)
	if !bytes.Equal(one, three) {
		t.Fatalf("1 worker and 3 workers differ:\n%s\n---\n%s", one, three)
	}
	recs, err := csv.NewReader(bytes.NewReader(one)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 25 {
		t.Fatalf("%d records, want 25", len(recs))
	}
	// Each row reproduces a direct run of its own config.
	c, err := spec.SampleConfig(5)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Simulate(c, false)
	if err != nil {
		t.Fatal(err)
	}
	var direct bytes.Buffer
	w := NewCSVWriter(&direct)
	_ = w.WriteRow(Row{SimID: 5, Config: c, Result: RowResult{Features: res.Features, GrowthEvents: res.Metrics.GrowthEvents,
		TuringActivations: res.Metrics.TuringActivations, ClampedCells: res.Metrics.ClampedCells, Lyapunov: res.Lyapunov}})
	_ = w.Close()
	if got := strings.Split(direct.String(), "\n")[1]; got != strings.Join(recs[6], ",") {
		t.Errorf("row 5 differs from a direct simulation:\n got %s\nwant %s", strings.Join(recs[6], ","), got)
	}
}

func TestGenerateDatasetCancel(t *testing.T) {
	t.Parallel()
	spec := smallSweepSpec(1000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	emitted := 0
	err := GenerateDataset(ctx, spec, 2, func(Row) error {
		emitted++
		if emitted == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if emitted != 3 {
		t.Errorf("emitted %d rows after cancelling at 3", emitted)
	}

	stop := errors.New("disk full")
	n := 0
	err = GenerateDataset(context.Background(), spec, 2, func(Row) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("emit error: err %v after %d rows", err, n)
	}

	bad := spec
	bad.Alpha = Fixed(0.9)
	if err := GenerateDataset(context.Background(), bad, 2, func(Row) error { return nil }); !errors.Is(err, ErrInvalidSweep) {
		t.Errorf("invalid spec: err %v", err)
	}
}

// TestGenerateDatasetCancelInsideSample checks that cancellation reaches a
// simulation in progress instead of waiting for it to finish.
func TestGenerateDatasetCancelInsideSample(t *testing.T) {
	t.Parallel()
	spec := DefaultDatasetSpec()
	spec.Steps = Fixed(50_000_000) // hours of work if not interrupted
	spec.GridSize = Fixed(16)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := GenerateDataset(ctx, spec, 1, func(Row) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancellation took %v", d)
	}
}

// FuzzParseSweep feeds arbitrary flag text to every sweep parser. They must
// not panic; whatever they accept must render back (String) to text that
// parses to the same sweep, and drawing from it must not panic.
func FuzzParseSweep(f *testing.F) {
	for _, s := range []string{"0.18", "0.1,0.2,0.24", "0.05:0.24", "64", "16:32", "8,16", "true,false",
		"periodic,neumann", "-1:1", "1e-3", " 3 , 4 ", "NaN", "Inf:Inf", "9223372036854775807", ":", ",", "1:", "a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		rng := paramRNG(1, 0)
		if s, err := ParseFloatSweep("p", text); err == nil {
			again, err := ParseFloatSweep("p", s.String())
			if err != nil || again.String() != s.String() {
				t.Fatalf("float sweep %q renders as %q, which parses to %v (%v)", text, s.String(), again, err)
			}
			_ = s.draw(rng)
		}
		if s, err := ParseIntSweep("p", text); err == nil {
			again, err := ParseIntSweep("p", s.String())
			if err != nil || again.String() != s.String() {
				t.Fatalf("int sweep %q renders as %q, which parses to %v (%v)", text, s.String(), again, err)
			}
			v := s.draw(rng)
			if s.IsRange && (v < s.Min || v > s.Max) {
				t.Fatalf("int sweep %q drew %d", text, v)
			}
		}
		if s, err := ParseBoolSweep("p", text); err == nil {
			if s.IsRange || len(s.Values) == 0 {
				t.Fatalf("bool sweep %q parsed to %+v", text, s)
			}
			_ = s.draw(rng)
		}
		if s, err := ParseBoundarySweep("p", text); err == nil {
			if again, err := ParseBoundarySweep("p", s.String()); err != nil || again.String() != s.String() {
				t.Fatalf("boundary sweep %q does not round-trip", text)
			}
			_ = s.draw(rng)
		}
	})
}
