package learn

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// twoFeatureFile is a softmax over 2 features and 3 classes whose logits
// are (x0, x1, 0) after standardisation with mean (1, 1) and std (2, 2):
// class 0 when x0 is largest, class 1 when x1 is, class 2 when both are
// below the mean.
func twoFeatureFile() *ModelFile {
	return &ModelFile{
		Format: ModelFileFormat, Spec: "softmax", Dim: 2, Classes: []string{"a", "b", "c"},
		Features: []string{"x0", "x1"}, Mean: []float64{1, 1}, Std: []float64{2, 2},
		Params: []float64{1, 0, 0, 1, 0, 0, 0, 0, 0},
	}
}

func TestModelFileRoundTripAndPredict(t *testing.T) {
	f := twoFeatureFile()
	var buf bytes.Buffer
	if err := WriteModelFile(&buf, f); err != nil {
		t.Fatal(err)
	}
	g, err := ReadModelFile(&buf)
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.Model()
	if err != nil {
		t.Fatal(err)
	}
	x := []float64{9, 1, 1, 9, -5, -5, 3, 2}
	if got := g.Predict(m, x); !slices.Equal(got, []int{0, 1, 2, 0}) {
		t.Errorf("predictions %v", got)
	}
	if x[0] != 9 {
		t.Error("Predict changed its input")
	}
	// A trained MLP survives the trip bit for bit.
	a, _ := ParseArch("mlp:5,3", 4, 3)
	mm, _ := NewModel(a, testRand(1))
	f2 := &ModelFile{Format: ModelFileFormat, Spec: a.Spec(), Dim: 4, Classes: []string{"0", "1", "2"}, Params: mm.Params()}
	buf.Reset()
	WriteModelFile(&buf, f2)
	g2, err := ReadModelFile(&buf)
	if err != nil || !slices.Equal(g2.Params, mm.Params()) {
		t.Fatalf("mlp round trip: %v", err)
	}
}

func TestModelFileValidate(t *testing.T) {
	for name, edit := range map[string]func(*ModelFile){
		"format":      func(f *ModelFile) { f.Format = "mfn-model/2" },
		"spec":        func(f *ModelFile) { f.Spec = "rnn" },
		"classes":     func(f *ModelFile) { f.Classes = []string{"a", "a", "b"} },
		"one class":   func(f *ModelFile) { f.Classes = []string{"a"} },
		"features":    func(f *ModelFile) { f.Features = []string{"x0"} },
		"mean":        func(f *ModelFile) { f.Mean = []float64{1} },
		"std zero":    func(f *ModelFile) { f.Std = []float64{2, 0} },
		"params":      func(f *ModelFile) { f.Params = f.Params[:8] },
		"params NaN":  func(f *ModelFile) { f.Params[3] = math.NaN() },
		"mean inf":    func(f *ModelFile) { f.Mean[0] = math.Inf(1) },
		"cnn non-img": func(f *ModelFile) { f.Spec = "cnn:mnist" },
	} {
		f := twoFeatureFile()
		edit(f)
		if err := f.Validate(); !errors.Is(err, ErrModelFile) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, in := range []string{"", "{", `{"format":"mfn-model/1","spec":"softmax","dim":2,"classes":["a","b"],"params":[1e999]}`} {
		if _, err := ReadModelFile(strings.NewReader(in)); !errors.Is(err, ErrModelFile) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// TestModelFileSizeLimit: a file one byte over the limit is refused
// without being parsed (the limit is lowered here; ReadModelFile uses
// MaxModelFileBytes).
func TestModelFileSizeLimit(t *testing.T) {
	var buf bytes.Buffer
	WriteModelFile(&buf, twoFeatureFile())
	n := int64(buf.Len())
	if _, err := readModelFile(bytes.NewReader(buf.Bytes()), n); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	_, err := readModelFile(bytes.NewReader(buf.Bytes()), n-1)
	if !errors.Is(err, ErrModelFile) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("over the limit: %v", err)
	}
}

func FuzzReadModelFile(f *testing.F) {
	var buf bytes.Buffer
	WriteModelFile(&buf, twoFeatureFile())
	f.Add(buf.Bytes())
	f.Add([]byte(`{"format":"mfn-model/1","spec":"mlp:3","dim":2,"classes":["a","b"],"params":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		mf, err := ReadModelFile(bytes.NewReader(b))
		if err != nil {
			return
		}
		m, err := mf.Model()
		if err != nil {
			t.Fatalf("valid file, no model: %v", err)
		}
		got := mf.Predict(m, make([]float64, 3*mf.Dim))
		for _, c := range got {
			if c < 0 || c >= len(mf.Classes) {
				t.Fatalf("class %d of %d", c, len(mf.Classes))
			}
		}
	})
}

// TestModelFileFuzzSeed keeps testdata/fuzz/FuzzReadModelFile in step
// with the format (MFN_WRITE_FUZZ_SEEDS=1 rewrites it).
func TestModelFileFuzzSeed(t *testing.T) {
	var buf bytes.Buffer
	WriteModelFile(&buf, twoFeatureFile())
	p := filepath.Join("testdata", "fuzz", "FuzzReadModelFile", "seed0")
	body := "go test fuzz v1\n[]byte(" + strconvQuote(buf.String()) + ")\n"
	if os.Getenv("MFN_WRITE_FUZZ_SEEDS") == "1" {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != body {
		t.Errorf("%s missing or stale (run with MFN_WRITE_FUZZ_SEEDS=1): %v", p, err)
	}
}

func strconvQuote(s string) string { return strconv.Quote(s) }

func TestArchForJob(t *testing.T) {
	for _, tc := range []struct {
		shape                []int
		dim, inputs, classes int
		want                 string // Spec, or "" for an error
	}{
		{[]int{4, 3}, 15, 0, 0, "softmax"},
		{[]int{4, 3}, 15, 4, 3, "softmax"},
		{[]int{30, 16, 2}, 30*16 + 16 + 16*2 + 2, 30, 2, "mlp:16"},
		{[]int{30, 8, 4, 2}, 30*8 + 8 + 8*4 + 4 + 4*2 + 2, 0, 0, "mlp:8,4"},
		{[]int{4, 3}, 16, 0, 0, ""}, // dim does not match the shape
		{[]int{4, 3}, 15, 5, 0, ""}, // the data has another feature count
		{[]int{4, 3}, 15, 0, 2, ""}, // and another class count
		{[]int{4}, 4, 0, 0, ""},     // no output layer
		{nil, 15, 4, 3, "softmax"},  // inferred as a node does
		{nil, 4*5 + 5 + 5*3 + 3, 4, 3, "mlp:5"},
		{nil, 15, 0, 0, ""}, // nothing to infer from
		{nil, 17, 4, 3, ""}, // fits no model
	} {
		a, err := ArchForJob(tc.shape, tc.dim, tc.inputs, tc.classes)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ArchForJob(%v, %d, %d, %d) = %s, want an error", tc.shape, tc.dim, tc.inputs, tc.classes, a.Spec())
		case tc.want == "":
			if !errors.Is(err, ErrArch) {
				t.Errorf("ArchForJob(%v, %d): %v, want ErrArch", tc.shape, tc.dim, err)
			}
		case err != nil:
			t.Errorf("ArchForJob(%v, %d, %d, %d): %v", tc.shape, tc.dim, tc.inputs, tc.classes, err)
		case a.Spec() != tc.want || a.NumParams() != tc.dim:
			t.Errorf("ArchForJob(%v, %d) = %s with %d parameters, want %s", tc.shape, tc.dim, a.Spec(), a.NumParams(), tc.want)
		}
	}
	cnn := Arch{Kind: "cnn", Dim: 784, Classes: 10}
	if a, err := ArchForJob(nil, cnn.NumParams(), 784, 10); err != nil || a.Kind != "cnn" {
		t.Errorf("CNN by parameter count: %v %v", a, err)
	}
}
