package analyze

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfn/mfn/sim"
)

// dataset writes a small sim dataset in the format of path's extension
// and returns the file's bytes.
func dataset(t testing.TB, format string, samples int) []byte {
	t.Helper()
	spec := sim.DefaultDatasetSpec()
	spec.Samples, spec.Seed = samples, 5
	spec.GridSize = sim.Sweep[int]{Values: []int{8, 12}}
	spec.Steps = sim.Fixed(6)
	spec.SpikeProbability = sim.Sweep[float64]{Min: 0.2, Max: 0.9, IsRange: true}
	spec.QuantumJitter = sim.Sweep[bool]{Values: []bool{true, false}}
	spec.Boundary = sim.Sweep[sim.Boundary]{Values: []sim.Boundary{sim.Periodic, sim.Neumann}}
	var buf bytes.Buffer
	rw, err := sim.NewRowWriter(&buf, "x."+format)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.GenerateDataset(context.Background(), spec, 2, rw.WriteRow); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadDatasetCSVAndParquetAgree(t *testing.T) {
	t.Parallel()
	csvT, err := ReadCSV(bytes.NewReader(dataset(t, "csv", 30)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	pqT, err := ReadParquet(bytes.NewReader(dataset(t, "parquet", 30)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if csvT.Rows != 30 || pqT.Rows != 30 || len(csvT.Columns) != len(sim.DatasetColumns()) || len(pqT.Columns) != len(csvT.Columns) {
		t.Fatalf("rows %d/%d, columns %d/%d", csvT.Rows, pqT.Rows, len(csvT.Columns), len(pqT.Columns))
	}
	wantKind := map[string]Kind{"quantum_jitter": Bool, "turing_enabled": Bool, "boundary": Category, "D_box": Numeric, "grid_size": Numeric, "sim_id": Numeric}
	for j, c := range csvT.Columns {
		p := pqT.Columns[j]
		if c.Name != sim.DatasetColumns()[j] || p.Name != c.Name {
			t.Fatalf("column %d: %q / %q, want %q", j, c.Name, p.Name, sim.DatasetColumns()[j])
		}
		if k, ok := wantKind[c.Name]; ok && (c.Kind != k || p.Kind != k) {
			t.Errorf("%s: kinds %v / %v, want %v", c.Name, c.Kind, p.Kind, k)
		}
		for i := range c.Values {
			// CSV holds the shortest decimal that round-trips, so the
			// values are identical.
			if c.Values[i] != p.Values[i] {
				t.Errorf("%s row %d: csv %v parquet %v", c.Name, i, c.Values[i], p.Values[i])
				break
			}
		}
	}
	b, _ := csvT.Column("boundary")
	if len(b.Levels) != 2 {
		t.Errorf("boundary levels %v, want periodic and neumann", b.Levels)
	}
	if _, err := csvT.Column("nope"); !errors.Is(err, ErrNoColumn) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing column: %v", err)
	}
}

func TestReadTableFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "d.csv")
	if err := os.WriteFile(p, dataset(t, "csv", 3), 0o644); err != nil {
		t.Fatal(err)
	}
	if tb, err := ReadTableFile(p, Limits{}); err != nil || tb.Rows != 3 {
		t.Fatalf("%v %v", tb, err)
	}
	txt := filepath.Join(dir, "d.txt")
	os.WriteFile(txt, []byte("a\n1\n"), 0o644)
	if _, err := ReadTableFile(txt, Limits{}); !errors.Is(err, ErrTable) {
		t.Errorf(".txt: %v", err)
	}
}

func TestReadCSVKindsAndErrors(t *testing.T) {
	t.Parallel()
	tb, err := ReadCSV(strings.NewReader("x,flag,name\n1.5,true,a\n-2,FALSE,b\n3e2,true,a\n"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	x, _ := tb.Column("x")
	f, _ := tb.Column("flag")
	n, _ := tb.Column("name")
	if x.Kind != Numeric || x.Values[2] != 300 || f.Kind != Bool || f.Values[1] != 0 || n.Kind != Category || n.Values[2] != 0 || n.Levels[1] != "b" {
		t.Errorf("kinds: %+v %+v %+v", x, f, n)
	}
	bad := map[string]string{
		"empty":         "",
		"ragged":        "a,b\n1\n",
		"duplicate":     "a,a\n1,2\n",
		"unnamed":       "a,\n1,2\n",
		"non-finite":    "a\n1\nNaN\n",
		"infinite":      "a\n+Inf\n",
		"bad quoting":   "a\n\"1\n",
		"too many rows": "a\n1\n2\n3\n",
	}
	for name, in := range bad {
		_, err := ReadCSV(strings.NewReader(in), Limits{MaxRows: 2})
		if !errors.Is(err, ErrTable) {
			t.Errorf("%s: %v, want ErrTable", name, err)
		}
	}
	if _, err := ReadCSV(strings.NewReader("a\n1\nNaN\n"), Limits{}); err == nil || !strings.Contains(err.Error(), `column "a", row 2`) {
		t.Errorf("NaN error does not name its cell: %v", err)
	}
	many := &strings.Builder{}
	many.WriteString("id\n")
	for i := range 20 {
		many.WriteString(strings.Repeat("x", i+1) + "\n")
	}
	tb, err = ReadCSV(strings.NewReader(many.String()), Limits{MaxLevels: 5})
	if err != nil || tb.Columns[0].Kind != Other || tb.Columns[0].Values != nil {
		t.Errorf("many levels: %+v %v", tb.Columns[0], err)
	}
}

// TestReadLimits tries to exceed each limit.
func TestReadLimits(t *testing.T) {
	t.Parallel()
	data := dataset(t, "csv", 10)
	pq := dataset(t, "parquet", 10)
	cases := []struct {
		name string
		lim  Limits
	}{
		{"bytes", Limits{MaxBytes: int64(len(data) - 1)}},
		{"rows", Limits{MaxRows: 9}},
		{"columns", Limits{MaxColumns: 10}},
		{"cells", Limits{MaxCells: 100}},
	}
	for _, c := range cases {
		if _, err := ReadCSV(bytes.NewReader(data), c.lim); !errors.Is(err, ErrTable) {
			t.Errorf("csv %s: %v, want ErrTable", c.name, err)
		}
		lim := c.lim
		if c.name == "bytes" {
			lim.MaxBytes = int64(len(pq) - 1)
		}
		if _, err := ReadParquet(bytes.NewReader(pq), lim); !errors.Is(err, ErrTable) {
			t.Errorf("parquet %s: %v, want ErrTable", c.name, err)
		}
	}
	if _, err := ReadCSV(bytes.NewReader(data), Limits{MaxBytes: int64(len(data))}); err != nil {
		t.Errorf("at the byte limit: %v", err)
	}
}

func TestReadParquetMalformed(t *testing.T) {
	t.Parallel()
	pq := dataset(t, "parquet", 5)
	for _, in := range [][]byte{nil, []byte("PAR1"), pq[:len(pq)/2], append([]byte("xxxx"), pq[4:]...)} {
		if _, err := ReadParquet(bytes.NewReader(in), Limits{}); !errors.Is(err, ErrTable) {
			t.Errorf("%d bytes: %v, want ErrTable", len(in), err)
		}
	}
}

func TestAnalyzeFeaturesDataset(t *testing.T) {
	t.Parallel()
	tb, err := ReadCSV(bytes.NewReader(dataset(t, "csv", 60)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := AnalyzeFeatures(context.Background(), tb, FeatureConfig{ColorBy: "boundary", Label: "quantum_jitter", Importance: ImportanceConfig{Seed: 1, Epochs: 20}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Rows != 60 || len(r.Features) != sim.NumFeatures || len(r.Stats) != sim.NumFeatures || len(r.Correlation.Values) != sim.NumFeatures {
		t.Fatalf("report shape: rows %d features %d", r.Rows, len(r.Features))
	}
	for j, s := range r.Stats {
		col, _ := tb.Column(s.Name)
		if s.Min > s.Mean || s.Mean > s.Max || s.Count != 60 || s.Min != minOf(col.Values) {
			t.Errorf("%s: %+v", s.Name, s)
		}
		if d := r.Correlation.Values[j][j]; !s.Constant && d != 1 {
			t.Errorf("%s: diagonal %v", s.Name, d)
		}
	}
	if len(r.PCA.Columns)+len(r.PCA.Excluded) != sim.NumFeatures || len(r.PCA.Scores) != 60 {
		t.Errorf("pca: %d + %d columns, %d scores", len(r.PCA.Columns), len(r.PCA.Excluded), len(r.PCA.Scores))
	}
	sum := 0.0
	for _, v := range r.PCA.Variance {
		sum += v
	}
	if math.Abs(sum-float64(len(r.PCA.Columns))) > 1e-9*sum {
		t.Errorf("standardised variances sum to %v, want %d", sum, len(r.PCA.Columns))
	}
	imp := r.Importance
	if imp == nil || imp.Label != "quantum_jitter" || len(imp.Classes) != 2 || len(imp.Features) != sim.NumFeatures {
		t.Fatalf("importance: %+v", imp)
	}
	// Jitter leaves a clear trace in V_std and friends: the model beats
	// chance.
	if imp.Baseline <= imp.Chance {
		t.Errorf("test accuracy %v not above chance %v", imp.Baseline, imp.Chance)
	}
	bad := []FeatureConfig{{Features: []string{"nope"}}, {Features: []string{"boundary"}}, {ColorBy: "nope"}, {Label: "nope"}, {Label: "turing_enabled"}}
	for _, c := range bad {
		if _, err := AnalyzeFeatures(context.Background(), tb, c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

func minOf(x []float64) float64 {
	m := math.Inf(1)
	for _, v := range x {
		m = min(m, v)
	}
	return m
}
