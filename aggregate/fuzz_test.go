package aggregate

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzAggregate feeds every rule and a few pipelines vectors decoded from
// arbitrary bytes (any float64 bit pattern: NaN, ±Inf, huge, subnormal;
// ragged lengths) and weights. No rule may panic, and an aggregate that is
// returned must be finite: malformed inputs are rejected, never propagated.
func FuzzAggregate(f *testing.F) {
	f.Add([]byte{3, 2, 1, 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 0, 64})
	f.Add([]byte{5, 3, 0, 0, 0, 0, 0, 0, 248, 127, 0, 0, 0, 0, 0, 0, 240, 127, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{9, 1, 2, 255, 255, 255, 255, 255, 255, 239, 127, 1, 0, 0, 0, 0, 0, 0, 0})
	rules := []string{"fedavg", "krum", "multi-krum", "median", "trimmed-mean", "bulyan",
		"geometric-median", "centered-clipping", "hierarchical-krum",
		"nnm+bucketing+krum", "static-clipping+trimmed-mean"}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		n := 1 + int(data[0])%12
		d := 1 + int(data[1])%6
		flags := data[2]
		data = data[3:]
		next := func() float64 {
			if len(data) < 8 {
				return float64(len(data))
			}
			v := math.Float64frombits(binary.LittleEndian.Uint64(data))
			data = data[8:]
			return v
		}
		x := make([][]float64, n)
		for i := range x {
			di := d
			if flags&1 != 0 && i == n-1 {
				di = d + 1 // one ragged vector
			}
			x[i] = make([]float64, di)
			for k := range x[i] {
				x[i][k] = next()
			}
		}
		var w []float64
		if flags&2 != 0 {
			w = make([]float64, n)
			for i := range w {
				w[i] = next()
			}
		}
		for _, name := range rules {
			r, err := ParsePipeline(name, Params{F: int(flags>>4) % 3, ClipNorm: 1, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			out, rep, err := r.Aggregate(x, w)
			if err != nil {
				continue
			}
			for _, v := range out {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s returned a non-finite aggregate %v (report %+v)", name, out, rep)
				}
			}
		}
	})
}
