package npy

import (
	"bytes"
	"math"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Read. Read must never panic; when it
// accepts the input, the values must match the shape and survive a
// Write/Read round trip bit for bit (float32 input comes back as float64).
func FuzzRead(f *testing.F) {
	f.Add(knownF8())
	f.Add(f4File([]float32{1, 2, 3}, "(3,)"))
	f.Add(rawFile(1, `{"descr": "<f8", "shape": (1,), "fortran_order": False}`, 8))
	for _, shape := range [][]int{{}, {0}, {2, 2, 2}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		var buf bytes.Buffer
		if err := Write(&buf, seq(n), shape); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		data, shape, err := Read(bytes.NewReader(in), 1<<20)
		if err != nil {
			return
		}
		n := 1
		for _, d := range shape {
			n *= d
		}
		if n != len(data) {
			t.Fatalf("shape %v holds %d values, got %d", shape, n, len(data))
		}
		var buf bytes.Buffer
		if err := Write(&buf, data, shape); err != nil {
			t.Fatalf("re-Write: %v", err)
		}
		data2, shape2, err := Read(&buf, 1<<21)
		if err != nil {
			t.Fatalf("re-Read: %v", err)
		}
		if len(shape2) != len(shape) || len(data2) != len(data) {
			t.Fatalf("round trip changed shape %v→%v", shape, shape2)
		}
		for i := range data {
			if math.Float64bits(data[i]) != math.Float64bits(data2[i]) {
				t.Fatalf("value %d changed in round trip", i)
			}
		}
	})
}
