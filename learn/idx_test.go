package learn

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func idxBytes(dims []uint32, data []byte) []byte {
	b := []byte{0, 0, 0x08, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, data...)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestReadIDX(t *testing.T) {
	good := idxBytes([]uint32{2, 3}, []byte{1, 2, 3, 4, 5, 6})
	for _, raw := range [][]byte{good, gz(good)} {
		x, err := ReadIDX(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if len(x.Dims) != 2 || x.Dims[0] != 2 || x.Dims[1] != 3 || !bytes.Equal(x.Data, []byte{1, 2, 3, 4, 5, 6}) {
			t.Fatalf("got %+v", x)
		}
	}
	bad := map[string][]byte{
		"empty":      {},
		"short":      {0, 0},
		"magic":      {1, 0, 8, 1, 0, 0, 0, 1, 7},
		"type":       {0, 0, 0x0d, 1, 0, 0, 0, 1, 7},
		"zero dims":  {0, 0, 8, 0},
		"nine dims":  {0, 0, 8, 9},
		"dims short": {0, 0, 8, 2, 0, 0, 0, 1},
		"zero dim":   idxBytes([]uint32{0}, nil),
		"huge":       idxBytes([]uint32{1 << 16, 1 << 16}, nil),
		"truncated":  idxBytes([]uint32{4}, []byte{1, 2}),
		"trailing":   idxBytes([]uint32{1}, []byte{1, 2}),
		"gz trunc":   gz(good)[:20],
		"gz trail":   gz(idxBytes([]uint32{1}, []byte{1, 2})),
	}
	head, err := ReadIDXHead(bytes.NewReader(good), 1)
	if err != nil || head.Dims[0] != 1 || head.Dims[1] != 3 || !bytes.Equal(head.Data, []byte{1, 2, 3}) {
		t.Errorf("ReadIDXHead(1) = %+v, %v", head, err)
	}
	if _, err := ReadIDXHead(bytes.NewReader(good[:len(good)-4]), 1); !errors.Is(err, ErrIDX) {
		t.Errorf("ReadIDXHead on a file shorter than its head: err=%v", err)
	}
	for name, b := range bad {
		if _, err := ReadIDX(bytes.NewReader(b)); !errors.Is(err, ErrIDX) {
			t.Errorf("%s: err=%v, want ErrIDX", name, err)
		}
	}
}

func TestImageDataset(t *testing.T) {
	img := &IDX{Dims: []int{2, 1, 2}, Data: []byte{0, 255, 51, 102}}
	lab := &IDX{Dims: []int{2}, Data: []byte{3, 9}}
	d, err := ImageDataset(img, lab, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d.Dim != 2 || d.Len() != 2 || d.X[1] != 1 || d.X[2] != 0.2 || d.Y[1] != 9 {
		t.Fatalf("got %+v", d)
	}
	if _, err := ImageDataset(img, &IDX{Dims: []int{2}, Data: []byte{3, 10}}, 10); !errors.Is(err, ErrIDX) {
		t.Errorf("label 10: err=%v", err)
	}
	if _, err := ImageDataset(img, &IDX{Dims: []int{3}, Data: []byte{1, 2, 3}}, 10); !errors.Is(err, ErrIDX) {
		t.Errorf("count mismatch: err=%v", err)
	}
}

func TestLoadFashionMNISTAbsent(t *testing.T) {
	_, _, err := LoadFashionMNIST(t.TempDir())
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("err=%v, want ErrNotInstalled", err)
	}
}

func TestGoMNISTVersionMatchesGoMod(t *testing.T) {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Skip("go.mod not found:", err)
	}
	if !strings.Contains(string(b), gomnistModule+" "+gomnistVersion) {
		t.Fatalf("go.mod does not require %s %s; update gomnistVersion", gomnistModule, gomnistVersion)
	}
}

// mnistForTest loads the first 3,000 training and 1,000 test images of
// MNIST or fails: CI runs `go mod download`, which puts the module in the
// cache, so its absence is an error, not a skip.
func mnistForTest(t *testing.T) (train, test *Dataset) {
	t.Helper()
	dir := mnistDirForTest(t)
	train, test, err := LoadImages(dir, 3000, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return train, test
}

func mnistDirForTest(t *testing.T) string {
	t.Helper()
	dir, err := LocateMNIST(context.Background(), MNISTOptions{NoFetch: true})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadMNIST(t *testing.T) {
	dir := mnistDirForTest(t)
	train, test := mnistForTest(t)
	if train.Len() != 3000 || test.Len() != 1000 || train.Dim != 784 || train.Classes != 10 {
		t.Fatalf("train %d×%d, test %d", train.Len(), train.Dim, test.Len())
	}
	// The full label files are small: check the counts of the whole set.
	labels, err := ReadIDXFile(filepath.Join(dir, "train-labels-idx1-ubyte.gz"), 0)
	if err != nil {
		t.Fatal(err)
	}
	images, err := ReadIDXFile(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if labels.Dims[0] != 60000 || images.Dims[0] != 10 || images.Dims[1] != 28 || images.Dims[2] != 28 {
		t.Fatalf("label dims %v, test image head dims %v", labels.Dims, images.Dims)
	}
	full, _ := ImageDataset(&IDX{Dims: []int{60000, 1, 1}, Data: make([]byte, 60000)}, labels, 10)
	// The first training labels of MNIST are 5 0 4 1 9 2 1 3 1 4.
	want := []int{5, 0, 4, 1, 9, 2, 1, 3, 1, 4}
	for i, w := range want {
		if train.Y[i] != w {
			t.Fatalf("train label %d = %d, want %d", i, train.Y[i], w)
		}
	}
	if test.Y[0] != 7 {
		t.Errorf("first test label %d, want 7", test.Y[0])
	}
	counts := full.LabelCounts()
	if counts[1] != 6742 || counts[5] != 5421 {
		t.Errorf("label counts %v (want 6742 ones, 5421 fives)", counts)
	}
}

func TestTrainMNISTSubsetSoftmax(t *testing.T) {
	train, test := mnistForTest(t)
	Standardize(train, test)
	rng := testRand(7)
	m, _ := NewModel(Arch{Kind: "softmax", Dim: 784, Classes: 10}, rng)
	if _, err := TrainLocal(m, train, LocalConfig{Epochs: 2, Batch: 32}, &SGD{LR: 0.01, Momentum: 0.9, WeightDecay: 1e-4}, rng); err != nil {
		t.Fatal(err)
	}
	acc, _ := Accuracy(m, test)
	// Softmax regression on 3,000 standardised MNIST digits reaches about
	// 0.85–0.88 after two epochs; below 0.8 means the data or the model is wrong.
	if acc < 0.8 {
		t.Fatalf("accuracy %.3f, want ≥ 0.8", acc)
	}
	t.Logf("accuracy %.3f", acc)
}

func FuzzIDX(f *testing.F) {
	f.Add(idxBytes([]uint32{2, 3}, []byte{1, 2, 3, 4, 5, 6}))
	f.Add(gz(idxBytes([]uint32{3}, []byte{7, 8, 9})))
	f.Add(idxBytes([]uint32{1, 2, 2}, []byte{0, 1, 2, 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := ReadIDXHead(bytes.NewReader(b), 2); err == nil {
			size := 1
			for _, d := range h.Dims {
				size *= d
			}
			if h.Dims[0] > 2 || size != len(h.Data) {
				t.Fatalf("head of 2 items: dims %v, %d bytes", h.Dims, len(h.Data))
			}
		}
		x, err := ReadIDX(bytes.NewReader(b))
		if err != nil {
			return
		}
		size := 1
		for _, d := range x.Dims {
			if d <= 0 {
				t.Fatalf("dimension %d accepted", d)
			}
			size *= d
		}
		if size != len(x.Data) {
			t.Fatalf("dims %v but %d bytes", x.Dims, len(x.Data))
		}
		if len(x.Dims) == 3 {
			lab := &IDX{Dims: []int{x.Dims[0]}, Data: make([]byte, x.Dims[0])}
			if _, err := ImageDataset(x, lab, 10); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestLoadFashionMNIST(t *testing.T) {
	train, test, err := LoadImages(FashionMNISTDir, 100, 10)
	if errors.Is(err, ErrNotInstalled) {
		t.Skipf("Fashion-MNIST not installed in %s (Debian package dataset-fashion-mnist): %v", FashionMNISTDir, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 100 || test.Len() != 10 || train.Dim != 784 {
		t.Fatalf("train %d×%d, test %d", train.Len(), train.Dim, test.Len())
	}
	labels, err := ReadIDXFile(filepath.Join(FashionMNISTDir, "train-labels-idx1-ubyte.gz"), 0)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := ImageDataset(&IDX{Dims: []int{labels.Dims[0], 1, 1}, Data: make([]byte, labels.Dims[0])}, labels, 10)
	// Fashion-MNIST's first training items: ankle boot, T-shirt, T-shirt,
	// dress, T-shirt, pullover.
	want := []int{9, 0, 0, 3, 0, 2}
	for i, w := range want {
		if train.Y[i] != w {
			t.Fatalf("train label %d = %d, want %d", i, train.Y[i], w)
		}
	}
	for c, n := range full.LabelCounts() {
		if n != 6000 {
			t.Errorf("class %d has %d training items, want 6000", c, n)
		}
	}
}
