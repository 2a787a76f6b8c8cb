package sitedata

import (
	"archive/zip"
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/mfn/mfn/internal/npy"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/sim"
)

const irisLike = `sepal,petal,label,width
1.5,2,setosa,0.5
3,4.25,virginica,1
5,6,versicolor,2
7,8,setosa,3
`

var irisClasses = []string{"versicolor", "setosa", "virginica"}

func TestCSVLabelsByClassListNotAppearance(t *testing.T) {
	l, err := ReadCSV(strings.NewReader(irisLike), "iris.csv", Options{Schema: Schema{Classes: irisClasses}})
	if err != nil {
		t.Fatal(err)
	}
	d := l.Data
	if d.Dim != 3 || d.Classes != 3 || d.Len() != 4 {
		t.Fatalf("dim %d classes %d rows %d", d.Dim, d.Classes, d.Len())
	}
	if want := []int{1, 2, 0, 1}; !slices.Equal(d.Y, want) {
		t.Errorf("labels %v, want %v (indices in the class list)", d.Y, want)
	}
	if want := []float64{1.5, 2, 0.5, 3, 4.25, 1}; !slices.Equal(d.X[:6], want) {
		t.Errorf("first rows %v, want %v", d.X[:6], want)
	}
	if !slices.Equal(l.Features, []string{"sepal", "petal", "width"}) {
		t.Errorf("features %v", l.Features)
	}
	// Picked feature columns come in the order asked for.
	l, err = ReadCSV(strings.NewReader(irisLike), "iris.csv", Options{Schema: Schema{Classes: irisClasses}, FeatureColumns: []string{"width", "sepal"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.5, 1.5, 1, 3}; !slices.Equal(l.Data.X[:4], want) || l.Data.Dim != 2 {
		t.Errorf("picked columns %v, want %v", l.Data.X[:4], want)
	}
}

func TestCSVIntegerLabelsAndLabelColumn(t *testing.T) {
	in := "y,a\n0,1\n2,2\n1,3\n"
	l, err := ReadCSV(strings.NewReader(in), "n.csv", Options{LabelColumn: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Data.Classes != 3 || !slices.Equal(l.Data.Y, []int{0, 2, 1}) {
		t.Errorf("classes %d labels %v", l.Data.Classes, l.Data.Y)
	}
	for _, bad := range []string{"y,a\n-1,1\n", "y,a\n1.5,1\n", "y,a\ncat,1\n", "y,a\n99999999,1\n"} {
		_, err := ReadCSV(strings.NewReader(bad), "n.csv", Options{LabelColumn: "y"})
		var re *RowError
		if !errors.As(err, &re) || re.Row != 1 || re.Column != "y" {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestCSVInvalidRowsNameRowAndColumn(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		row, line  int
		column     string
	}{
		{"nan", "a,b,label\n1,2,0\n3,NaN,1\n", 2, 3, "b"},
		{"inf", "a,b,label\n1,2,0\n1,2,1\n-Inf,2,1\n", 3, 4, "a"},
		{"empty", "a,b,label\n1,,0\n", 1, 2, "b"},
		{"text", "a,b,label\n1,2,0\nx,2,1\n", 2, 3, "a"},
		{"ragged", "a,b,label\n1,2,0\n1,2\n", 2, 3, ""},
		{"empty label", "a,b,label\n1,2,\n", 1, 2, "label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(tc.body), "site.csv", Options{})
			var re *RowError
			if !errors.As(err, &re) || !errors.Is(err, ErrInvalidRow) {
				t.Fatalf("error %v", err)
			}
			if re.File != "site.csv" || re.Row != tc.row || re.Line != tc.line || re.Column != tc.column {
				t.Errorf("got %+v, want row %d line %d column %q", re, tc.row, tc.line, tc.column)
			}
			if !strings.Contains(err.Error(), "site.csv") {
				t.Errorf("message %q lacks the file", err)
			}
		})
	}
	in := "a,b,label\n1,2,0\n3,NaN,1\n1,2\n5,6,1\n,1,0\n"
	l, err := ReadCSV(strings.NewReader(in), "site.csv", Options{DropInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	if l.Dropped != 3 || l.Data.Len() != 2 || !slices.Equal(l.Data.X, []float64{1, 2, 5, 6}) {
		t.Errorf("dropped %d, rows %v", l.Dropped, l.Data.X)
	}
	if _, err := ReadCSV(strings.NewReader("a,label\nNaN,0\n"), "site.csv", Options{DropInvalid: true}); !errors.Is(err, ErrEmpty) {
		t.Errorf("all rows dropped: %v", err)
	}
}

func TestSchemaMismatches(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		opt    Options
		column string
		msg    string
	}{
		{"feature count", irisLike, Options{Schema: Schema{Features: 2, Classes: irisClasses}}, "width", "3 feature columns, the schema declares 2"},
		{"unknown class", irisLike, Options{Schema: Schema{Classes: []string{"setosa", "virginica"}}}, "label", `label "versicolor" is not in the class list`},
		{"no label column", irisLike, Options{LabelColumn: "species"}, "species", "no such label column"},
		{"no feature column", irisLike, Options{FeatureColumns: []string{"sepal", "stem"}, Schema: Schema{Classes: irisClasses}}, "stem", "no such feature column"},
		{"label as feature", irisLike, Options{FeatureColumns: []string{"label"}}, "label", "cannot also be a feature"},
		{"duplicate header", "a,a,label\n1,2,0\n", Options{}, "a", "twice"},
		{"job stats length", irisLike, Options{Schema: Schema{Classes: irisClasses, Standardize: StandardizeJob, Mean: []float64{0, 0}, Std: []float64{1, 1}}}, "", "reference statistics for 2 features, data has 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(tc.body), "site.csv", tc.opt)
			var se *SchemaError
			if !errors.As(err, &se) || !errors.Is(err, ErrSchema) {
				t.Fatalf("error %v", err)
			}
			if se.File != "site.csv" || se.Column != tc.column || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("got %+v, want column %q and %q", se, tc.column, tc.msg)
			}
		})
	}
	for _, s := range []Schema{
		{Features: -1}, {Shape: []int{28, 0}}, {Features: 10, Shape: []int{3, 3}}, {Classes: []string{"a", "a"}},
		{Classes: []string{"a"}}, {Standardize: "global"}, {Standardize: StandardizeJob},
		{Standardize: StandardizeJob, Mean: []float64{0}, Std: []float64{0}},
	} {
		if err := s.Validate(); !errors.Is(err, ErrSchema) {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

func TestStandardization(t *testing.T) {
	in := "a,b,label\n1,10,0\n3,10,1\n"
	l, err := ReadCSV(strings.NewReader(in), "s.csv", Options{Schema: Schema{Standardize: StandardizeSite}})
	if err != nil {
		t.Fatal(err)
	}
	// a: mean 2, std 1; b is constant (std 1 by convention, maps to 0).
	if want := []float64{-1, 0, 1, 0}; !slices.Equal(l.Data.X, want) || l.Stats.Mean[0] != 2 {
		t.Errorf("site: %v, want %v", l.Data.X, want)
	}
	l, err = ReadCSV(strings.NewReader(in), "s.csv", Options{Schema: Schema{Standardize: StandardizeJob, Mean: []float64{0, 5}, Std: []float64{2, 5}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.5, 1, 1.5, 1}; !slices.Equal(l.Data.X, want) {
		t.Errorf("job: %v, want %v", l.Data.X, want)
	}
}

func TestMaxValues(t *testing.T) {
	in := "a,b,label\n1,2,0\n3,4,1\n5,6,1\n"
	if _, err := ReadCSV(strings.NewReader(in), "s.csv", Options{MaxValues: 5}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("csv over limit: %v", err)
	}
	if _, err := ReadCSV(strings.NewReader(in), "s.csv", Options{MaxValues: 6}); err != nil {
		t.Errorf("csv at limit: %v", err)
	}
	npz := makeNPZ(t, []float64{1, 2, 3, 4, 5, 6}, []int{3, 2}, []float64{0, 1, 1})
	if _, err := ReadNPZ(bytes.NewReader(npz), int64(len(npz)), "s.npz", Options{MaxValues: 5}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("npz over limit: %v", err)
	}
}

type parquetRow struct {
	A     float64 `parquet:"a"`
	B     int32   `parquet:"b"`
	C     float32 `parquet:"c"`
	Label string  `parquet:"label"`
}

func TestParquet(t *testing.T) {
	var buf bytes.Buffer
	rows := []parquetRow{{1.5, 2, 0.25, "virginica"}, {3, -4, 1, "versicolor"}, {math.NaN(), 1, 1, "setosa"}}
	if err := parquet.Write(&buf, rows); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	_, err := ReadParquet(bytes.NewReader(b), int64(len(b)), "s.parquet", Options{Schema: Schema{Classes: irisClasses}})
	var re *RowError
	if !errors.As(err, &re) || re.Row != 3 || re.Column != "a" {
		t.Fatalf("NaN row: %v", err)
	}
	l, err := ReadParquet(bytes.NewReader(b), int64(len(b)), "s.parquet", Options{Schema: Schema{Classes: irisClasses}, DropInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	if l.Dropped != 1 || !slices.Equal(l.Data.X, []float64{1.5, 2, 0.25, 3, -4, 1}) || !slices.Equal(l.Data.Y, []int{2, 0}) {
		t.Errorf("X %v Y %v dropped %d", l.Data.X, l.Data.Y, l.Dropped)
	}
	if _, err := ReadParquet(bytes.NewReader(b), int64(len(b)), "s.parquet", Options{Schema: Schema{Features: 4}}); !errors.Is(err, ErrSchema) {
		t.Errorf("feature count: %v", err)
	}
	if _, err := ReadParquet(bytes.NewReader(b[:len(b)-9]), int64(len(b)-9), "s.parquet", Options{}); !errors.Is(err, ErrFormat) {
		t.Errorf("truncated: %v", err)
	}
}

func npyBytes(t testing.TB, data []float64, shape []int) []byte {
	var b bytes.Buffer
	if err := npy.Write(&b, data, shape); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func makeNPZ(t testing.TB, x []float64, shape []int, y []float64) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, content := range map[string][]byte{"X.npy": npyBytes(t, x, shape), "y.npy": npyBytes(t, y, []int{len(y)})} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(content)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestNPZAndNPY(t *testing.T) {
	x := []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	npz := makeNPZ(t, x, []int{3, 2, 2}, []float64{2, 0, 1})
	l, err := ReadNPZ(bytes.NewReader(npz), int64(len(npz)), "s.npz", Options{Schema: Schema{Shape: []int{2, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Data.Dim != 4 || !slices.Equal(l.Data.Y, []int{2, 0, 1}) || !slices.Equal(l.Data.X, x) {
		t.Errorf("dim %d y %v", l.Data.Dim, l.Data.Y)
	}
	_, err = ReadNPZ(bytes.NewReader(npz), int64(len(npz)), "s.npz", Options{Schema: Schema{Shape: []int{4}}})
	var se *SchemaError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "input shape [2 2], the schema declares [4]") {
		t.Errorf("shape mismatch: %v", err)
	}
	bad := makeNPZ(t, x, []int{3, 4}, []float64{0, 1})
	if _, err := ReadNPZ(bytes.NewReader(bad), int64(len(bad)), "s.npz", Options{}); !errors.As(err, &se) || !strings.Contains(se.Msg, "3 input rows but 2 labels") {
		t.Errorf("label count: %v", err)
	}

	dir := t.TempDir()
	xp, yp, yt := filepath.Join(dir, "x.npy"), filepath.Join(dir, "y.npy"), filepath.Join(dir, "y.txt")
	os.WriteFile(xp, npyBytes(t, x, []int{4, 3}), 0o644)
	os.WriteFile(yp, npyBytes(t, []float64{1, 0, 1, 2}, []int{4}), 0o644)
	os.WriteFile(yt, []byte("b\na\nb\nc\n"), 0o644)
	l, err = Load(xp, Options{Labels: yp})
	if err != nil || l.Data.Dim != 3 || !slices.Equal(l.Data.Y, []int{1, 0, 1, 2}) {
		t.Fatalf("npy: %v %+v", err, l)
	}
	l, err = Load(xp, Options{Labels: yt, Schema: Schema{Classes: []string{"c", "b", "a"}}})
	if err != nil || !slices.Equal(l.Data.Y, []int{1, 2, 1, 0}) {
		t.Fatalf("npy with text labels: %v %+v", err, l)
	}
	if _, err := Load(xp, Options{}); !errors.Is(err, ErrSchema) {
		t.Errorf("npy without labels: %v", err)
	}
}

func idxFile(dims []int, data []byte) []byte {
	b := []byte{0, 0, 8, byte(len(dims))}
	for _, d := range dims {
		b = append(b, byte(d>>24), byte(d>>16), byte(d>>8), byte(d))
	}
	return append(b, data...)
}

func TestIDXPair(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "train-images-idx3-ubyte")
	os.WriteFile(img, idxFile([]int{3, 2, 2}, []byte{0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8}), 0o644)
	os.WriteFile(filepath.Join(dir, "train-labels-idx1-ubyte"), idxFile([]int{3}, []byte{7, 0, 9}), 0o644)
	if f, _ := DetectFormat(img); f != FormatIDX {
		t.Fatalf("format %q", f)
	}
	l, err := Load(img, Options{Schema: Schema{Shape: []int{2, 2}, Classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Data.Classes != 10 || !slices.Equal(l.Data.Y, []int{7, 0, 9}) || l.Data.X[1] != 1 || l.Data.X[2] != 0.2 {
		t.Errorf("classes %d y %v x %v", l.Data.Classes, l.Data.Y, l.Data.X[:4])
	}
	if _, err := Load(img, Options{Schema: Schema{Shape: []int{28, 28}}}); !errors.Is(err, ErrSchema) {
		t.Errorf("shape: %v", err)
	}
}

func TestFieldsFolder(t *testing.T) {
	dir := t.TempDir()
	cfg := sim.DefaultConfig()
	cfg.GridSize, cfg.Steps = 16, 12
	var want [][sim.NumFeatures]float64
	for i, seed := range []int64{1, 2} {
		cfg.Seed = seed
		res, err := sim.Simulate(cfg, true)
		if err != nil {
			t.Fatal(err)
		}
		name := []string{"a.npy", "b.npy"}[i]
		data, shape := res.History, []int{res.Steps, res.N, res.N}
		if i == 1 { // a single N×N field: the last frame
			data, shape = res.History[(res.Steps-1)*res.N*res.N:], []int{res.N, res.N}
		}
		os.WriteFile(filepath.Join(dir, name), npyBytes(t, data, shape), 0o644)
		steps := 1
		if len(shape) == 3 {
			steps = shape[0]
		}
		f, err := sim.ExtractFeatures(data, steps, res.N)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, f)
	}
	os.WriteFile(filepath.Join(dir, "labels.csv"), []byte("file,label\na.npy,active\nb.npy,quiet\n"), 0o644)
	l, err := Load(dir, Options{Schema: Schema{Features: 18, Classes: []string{"quiet", "active"}}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Data.Dim != 18 || !slices.Equal(l.Data.Y, []int{1, 0}) {
		t.Fatalf("dim %d y %v", l.Data.Dim, l.Data.Y)
	}
	for i := range want {
		if !slices.Equal(l.Data.X[i*18:(i+1)*18], want[i][:]) {
			t.Errorf("row %d features differ from sim.ExtractFeatures", i)
		}
	}
	if !slices.Equal(l.Features, sim.FeatureNames[:]) {
		t.Errorf("feature names %v", l.Features)
	}
	// A missing field file and an escaping name are row errors naming the row.
	os.WriteFile(filepath.Join(dir, "labels.csv"), []byte("file,label\na.npy,active\nmissing.npy,quiet\n../b.npy,quiet\n"), 0o644)
	_, err = Load(dir, Options{Schema: Schema{Classes: []string{"quiet", "active"}}})
	var re *RowError
	if !errors.As(err, &re) || re.Row != 2 || re.Column != "file" {
		t.Fatalf("missing file: %v", err)
	}
	l, err = Load(dir, Options{Schema: Schema{Classes: []string{"quiet", "active"}}, DropInvalid: true})
	if err != nil || l.Dropped != 2 || l.Data.Len() != 1 {
		t.Fatalf("drop: %v %+v", err, l)
	}
}

func TestDetectFormat(t *testing.T) {
	for p, want := range map[string]Format{"a.csv": FormatCSV, "A.CSV": FormatCSV, "t.parquet": FormatParquet, "x.npy": FormatNPY,
		"d.npz": FormatNPZ, "t10k-images-idx3-ubyte.gz": FormatIDX, t.TempDir(): FormatFields} {
		if got, err := DetectFormat(p); err != nil || got != want {
			t.Errorf("%s: %q %v", p, got, err)
		}
	}
	if _, err := DetectFormat("data.xlsx"); !errors.Is(err, ErrFormat) {
		t.Errorf("xlsx: %v", err)
	}
}

// TestParquetHostileFooter: a footer length of ~4 GB is refused before the
// decoder allocates anything (found by FuzzReadParquet).
func TestParquetHostileFooter(t *testing.T) {
	b := []byte("PAR1\x00\x00\x00\xf7PAR1")
	if _, err := ReadParquet(bytes.NewReader(b), int64(len(b)), "h.parquet", Options{}); !errors.Is(err, ErrFormat) {
		t.Fatalf("%v", err)
	}
	good := parquetSeed(t)
	if _, err := ReadParquet(bytes.NewReader(good), int64(len(good)), "g.parquet", Options{MaxValues: 1}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the value limit: %v", err)
	}
}

func TestUnlabelled(t *testing.T) {
	in := "b,a\n1,2\n3,4\n"
	l, err := ReadCSV(strings.NewReader(in), "new.csv", Options{Unlabelled: true, FeatureColumns: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Data.X, []float64{2, 1, 4, 3}) || !slices.Equal(l.Data.Y, []int{0, 0}) {
		t.Errorf("X %v Y %v", l.Data.X, l.Data.Y)
	}
	// A label column, when present, is not a feature and is ignored.
	l, err = ReadCSV(strings.NewReader(irisLike), "new.csv", Options{Unlabelled: true})
	if err != nil || l.Data.Dim != 3 || l.Data.Len() != 4 {
		t.Fatalf("%v %+v", err, l)
	}
	npz := makeNPZ(t, []float64{1, 2, 3, 4}, []int{2, 2}, []float64{0, 1})
	if l, err := ReadNPZ(bytes.NewReader(npz), int64(len(npz)), "x.npz", Options{Unlabelled: true}); err != nil || l.Data.Len() != 2 {
		t.Fatalf("npz: %v", err)
	}
}

// TestFashionMNISTThroughIDX loads Debian's dataset-fashion-mnist (apt-get
// install dataset-fashion-mnist; files in learn.FashionMNISTDir) with the
// IDX loader, the labels file found by name. Skipped when not installed.
func TestFashionMNISTThroughIDX(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 60,000 images")
	}
	img := filepath.Join(learn.FashionMNISTDir, "t10k-images-idx3-ubyte.gz")
	if _, err := os.Stat(img); err != nil {
		t.Skip("dataset-fashion-mnist not installed")
	}
	classes := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	l, err := Load(img, Options{Schema: Schema{Shape: []int{28, 28}, Classes: classes, Standardize: StandardizeSite}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Data.Len() != 10000 || l.Data.Dim != 784 || l.Data.Classes != 10 {
		t.Fatalf("rows %d dim %d classes %d", l.Data.Len(), l.Data.Dim, l.Data.Classes)
	}
	// Fashion-MNIST's test split is balanced: 1,000 of each class.
	for c, n := range l.Data.LabelCounts() {
		if n != 1000 {
			t.Errorf("class %d: %d images", c, n)
		}
	}
}
