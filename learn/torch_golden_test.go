package learn

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// TestPyTorchLayouts compares the logits of mlp:5,3 and cnn:mnist with
// PyTorch's (float64) for the same weights, flattened from the PyTorch
// modules in parameter order (testdata/torch_golden.py made the file):
// the documented layouts are PyTorch's, so weights move between the two
// by reshaping.
func TestPyTorchLayouts(t *testing.T) {
	b, err := os.ReadFile("testdata/torch_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string]struct {
		Spec              string
		Dim, Classes      int
		Params, X, Logits []float64
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	for name, g := range golden {
		t.Run(name, func(t *testing.T) {
			a, err := ParseArch(g.Spec, g.Dim, g.Classes)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := NewModel(a, testRand(1))
			if len(g.Params) != len(m.Params()) {
				t.Fatalf("%d PyTorch parameters, %d here", len(g.Params), len(m.Params()))
			}
			copy(m.Params(), g.Params)
			rows := len(g.X) / g.Dim
			var logits []float64
			switch mm := m.(type) {
			case *MLP:
				logits = mm.forward(g.X, rows)
			case *CNN:
				logits = mm.forward(g.X, rows)
			}
			for i, want := range g.Logits {
				if math.Abs(logits[i]-want) > 1e-9*(1+math.Abs(want)) {
					t.Errorf("logit %d: %v, PyTorch %v", i, logits[i], want)
				}
			}
		})
	}
}
