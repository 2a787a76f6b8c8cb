package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadGoldenCase decodes arbitrary bytes as a golden JSON case: never
// a panic, and an accepted case holds exactly prod(shape) values.
func FuzzReadGoldenCase(f *testing.F) {
	f.Add([]byte(`{"shape": [2, 2], "history_f64le_b64": "AAAAAAAA8L8AAAAAAAD4fwAAAAAAAPC/AAAAAAAA8L8="}`))
	f.Add([]byte(`{"shape": [1, 1, 1], "history_f64le_b64": "AAAAAAAA8L8="}`))
	f.Add([]byte(`{"shape": [0], "history_f64le_b64": ""}`))
	f.Add([]byte(`{"shape": [3037000500, 3037000500], "history_f64le_b64": "AA=="}`))
	if b, err := os.ReadFile(filepath.Join(sharedDir(), "golden", "features", "snapshot-s22.json")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		data, shape, err := readGoldenCase(bytes.NewReader(b))
		if err != nil {
			return
		}
		total := 1
		for _, d := range shape {
			if d <= 0 {
				t.Fatalf("accepted shape %v", shape)
			}
			total *= d
		}
		if len(data) != total {
			t.Fatalf("%d values for shape %v", len(data), shape)
		}
	})
}
