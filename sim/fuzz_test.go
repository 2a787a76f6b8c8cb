package sim

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"testing"
)

// FuzzExtractFeatures feeds arbitrary float64 arrays (the bytes are read
// as little-endian float64) with arbitrary shapes to ExtractFeatures: it
// must never panic, must reject non-finite input and mismatched shapes,
// and otherwise return finite features within their ranges.
func FuzzExtractFeatures(f *testing.F) {
	seed := func(vals []float64, steps, n int) {
		b := make([]byte, 8*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
		}
		f.Add(b, steps, n)
	}
	seed([]float64{-0.07, -0.05, -0.03, -0.09}, 1, 2)
	seed([]float64{-0.07, -0.05, -0.03, -0.09, -0.06, -0.061, 0.04, -0.095}, 2, 2)
	seed([]float64{math.NaN(), 0, 0, 0}, 1, 2)
	seed(make([]float64, 9), 1, 3)
	seed([]float64{1e300, -1e300, 5e-324, 0}, 1, 2)
	f.Fuzz(func(t *testing.T, raw []byte, steps, n int) {
		vals := make([]float64, len(raw)/8)
		finite := true
		for i := range vals {
			vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
			if math.IsNaN(vals[i]) || math.IsInf(vals[i], 0) {
				finite = false
			}
		}
		feat, err := ExtractFeatures(vals, steps, n)
		shapeOK := steps >= 1 && n >= 1 && n <= 1<<15 && steps <= len(vals) && len(vals) == steps*n*n
		if !shapeOK {
			if err == nil {
				t.Fatalf("shape (%d, %d) accepted for %d values", steps, n, len(vals))
			}
			return
		}
		if !finite {
			if err == nil {
				t.Fatal("non-finite input accepted")
			}
			return
		}
		if err != nil {
			// Only an overflowing Σ V² may still fail.
			return
		}
		for i, v := range feat {
			if math.IsInf(v, 0) || (math.IsNaN(v) && i != FVSkew && i != FVKurt) {
				t.Fatalf("%s = %v for finite input", FeatureNames[i], v)
			}
		}
		if feat[FDR2] < 0 || feat[FDR2] > 1 || feat[FFActive] < 0 || feat[FFActive] > 1 {
			t.Fatalf("D_r2 %v or f_active %v outside [0, 1]", feat[FDR2], feat[FFActive])
		}
		if feat[FVMin] > feat[FVMax] {
			t.Fatalf("V_min %v > V_max %v", feat[FVMin], feat[FVMax])
		}
		if feat[FClustersLow] > float64(n*n) || feat[FMaxClusterSize] > float64(n*n) {
			t.Fatalf("cluster counts exceed the grid: %v", feat)
		}
	})
}

// FuzzFeaturesJSON decodes arbitrary bytes as a Features object: no panic,
// and what decodes re-encodes to an object that decodes to the same values.
func FuzzFeaturesJSON(f *testing.F) {
	var x Features
	for i := range x {
		x[i] = float64(i) * 1.5
	}
	b, _ := json.Marshal(x)
	f.Add(b)
	f.Add([]byte(`{"D_box": 1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Features
		if err := json.Unmarshal(data, &got); err != nil {
			return
		}
		again, err := json.Marshal(got)
		if err != nil {
			return // e.g. a NaN cannot be encoded; not reachable from JSON
		}
		var back Features
		if err := json.Unmarshal(again, &back); err != nil || back != got {
			t.Fatalf("round trip of %s: %v, %v", again, back, err)
		}
	})
}
