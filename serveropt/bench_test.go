package serveropt

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkStep is the cost every coordinator replica pays in Apply per
// closed round of a job with an optimizer, at the largest job dimension
// (MaxUpdateDim, 1,032,192 parameters).
func BenchmarkStep(b *testing.B) {
	const dim = 1_032_192
	r := rand.New(rand.NewPCG(1, 2))
	x, d := randVec(r, dim, 1), randVec(r, dim, 0.01)
	for _, name := range Names {
		b.Run(name, func(b *testing.B) {
			spec := Spec{Name: name}.Resolved()
			st, _, err := Step(spec, nil, x, d)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(8 * dim)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Step(spec, st, x, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
