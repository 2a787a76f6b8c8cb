package sitedata

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// checkLoaded asserts the invariants of any successful load.
func checkLoaded(t *testing.T, l *Loaded, err error) {
	if err != nil {
		return
	}
	d := l.Data
	if err := d.Validate(); err != nil {
		t.Fatalf("loaded an invalid dataset: %v", err)
	}
	if d.Len() == 0 {
		t.Fatal("loaded no rows without ErrEmpty")
	}
	for i, v := range d.X {
		if !finite(v) {
			t.Fatalf("X[%d] = %v", i, v)
		}
	}
}

func csvSeeds() [][]byte {
	return [][]byte{[]byte(irisLike), []byte("a,b,label\n1,NaN,0\n1,2\n\"x\",3,1\n"), []byte("label\n1\n"), []byte("\ufeffa,label\n1e308,1\n-0,0\n")}
}

func FuzzReadCSV(f *testing.F) {
	for _, s := range csvSeeds() {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, drop bool) {
		l, err := ReadCSV(bytes.NewReader(b), "f.csv", Options{DropInvalid: drop, MaxValues: 1 << 16})
		checkLoaded(t, l, err)
		l, err = ReadCSV(bytes.NewReader(b), "f.csv", Options{Schema: Schema{Classes: irisClasses, Standardize: StandardizeSite}, MaxValues: 1 << 16})
		checkLoaded(t, l, err)
	})
}

func parquetSeed(t testing.TB) []byte {
	var buf bytes.Buffer
	if err := parquet.Write(&buf, []parquetRow{{1, 2, 3, "setosa"}, {4, 5, 6, "virginica"}}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func FuzzReadParquet(f *testing.F) {
	f.Add(parquetSeed(f))
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ReadParquet(bytes.NewReader(b), int64(len(b)), "f.parquet", Options{Schema: Schema{Classes: irisClasses}, DropInvalid: true, MaxValues: 1 << 16})
		checkLoaded(t, l, err)
	})
}

func npzSeed(t testing.TB) []byte {
	return makeNPZ(t, []float64{1, 2, 3, 4, 5, 6}, []int{3, 2}, []float64{0, 1, 1})
}

func FuzzReadNPZ(f *testing.F) {
	f.Add(npzSeed(f))
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ReadNPZ(bytes.NewReader(b), int64(len(b)), "f.npz", Options{MaxValues: 1 << 16})
		checkLoaded(t, l, err)
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz from the seeds above when
// MFN_WRITE_FUZZ_SEEDS=1; otherwise it checks that the files exist.
func TestWriteFuzzSeeds(t *testing.T) {
	seeds := map[string][]string{}
	for i, s := range csvSeeds() {
		seeds["FuzzReadCSV"] = append(seeds["FuzzReadCSV"], fmt.Sprintf("[]byte(%s)\nbool(%v)", strconv.Quote(string(s)), i%2 == 1))
	}
	seeds["FuzzReadParquet"] = []string{"[]byte(" + strconv.Quote(string(parquetSeed(t))) + ")"}
	seeds["FuzzReadNPZ"] = []string{"[]byte(" + strconv.Quote(string(npzSeed(t))) + ")"}
	seeds["FuzzFieldsLabels"] = []string{"[]byte(" + strconv.Quote("file,label\na.npy,1\na.npy,0\n") + ")"}
	seeds["FuzzLabelsText"] = []string{"[]byte(" + strconv.Quote("b\na\nb\n") + ")"}
	for name, list := range seeds {
		for i, body := range list {
			p := filepath.Join("testdata", "fuzz", name, fmt.Sprintf("seed%d", i))
			if os.Getenv("MFN_WRITE_FUZZ_SEEDS") != "1" {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("missing fuzz seed %s (run with MFN_WRITE_FUZZ_SEEDS=1)", p)
				}
				continue
			}
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte("go test fuzz v1\n"+body+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzFieldsLabels fuzzes the labels file of a folder of MFN fields (the
// one part of that format not covered by the .npy fuzzer): a folder with
// one valid 8×8 field a.npy and the fuzzed labels.csv.
func FuzzFieldsLabels(f *testing.F) {
	f.Add([]byte("file,label\na.npy,1\na.npy,0\n"))
	f.Add([]byte("file,label\n../a.npy,1\n,\n\"a.npy\",x\n"))
	field := make([]float64, 64)
	for i := range field {
		field[i] = -0.07 + 0.001*float64(i%9)
	}
	npyField := npyBytes(f, field, []int{8, 8})
	f.Fuzz(func(t *testing.T, labels []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a.npy"), npyField, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, DefaultFieldLabels), labels, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Load(dir, Options{DropInvalid: true, MaxValues: 1 << 12})
		checkLoaded(t, l, err)
		l, err = Load(dir, Options{Schema: Schema{Classes: []string{"0", "1"}}})
		checkLoaded(t, l, err)
	})
}

// FuzzLabelsText fuzzes the text labels file of a .npy input.
func FuzzLabelsText(f *testing.F) {
	f.Add([]byte("b\na\nb\n"))
	f.Add([]byte("1\n0\n\n"))
	x := npyBytes(f, []float64{1, 2, 3, 4, 5, 6}, []int{3, 2})
	f.Fuzz(func(t *testing.T, labels []byte) {
		dir := t.TempDir()
		xp, yp := filepath.Join(dir, "x.npy"), filepath.Join(dir, "y.txt")
		os.WriteFile(xp, x, 0o644)
		os.WriteFile(yp, labels, 0o644)
		l, err := Load(xp, Options{Labels: yp, DropInvalid: true})
		checkLoaded(t, l, err)
	})
}
