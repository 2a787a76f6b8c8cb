package aggregate

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// copySource is a Source over float32 rows held elsewhere (here in
// memory) that hands out copies of blocks, as a file or blob store would:
// the rules see no in-memory rows and cannot keep references.
type copySource struct{ rows [][]float32 }

func (s copySource) Shape() (int, int) { return Float32Rows(s.rows).Shape() }

func (s copySource) ReadBlock(i, lo int, dst []float32) error {
	copy(dst, s.rows[i][lo:lo+len(dst)])
	return nil
}

// bigInputs returns n float32 rows of length d (normal draws; the sign
// and scale of the last fifth differ, as Byzantine inputs would), in one
// allocation.
func bigInputs(n, d int) [][]float32 {
	r := rand.New(rand.NewPCG(7, uint64(d)))
	buf := make([]float32, n*d)
	for i := range buf {
		buf[i] = float32(r.NormFloat64())
	}
	x := make([][]float32, n)
	for i := range x {
		x[i] = buf[i*d : (i+1)*d : (i+1)*d]
	}
	return x
}

// BenchmarkBigRound times n = 50 updates at d = 1e6 in memory and at
// d = 1e7 through a copying Source (the updates' 2 GB stay outside the
// rules). B/op is everything the rule allocated during the call, an upper
// bound on its working set beyond the inputs' storage; the bound
// is 512 MiB. Run it with -benchtime 1x: one call at d = 1e7 takes
// seconds.
func BenchmarkBigRound(b *testing.B) {
	const n = 50
	rules := []SourceRule{FedAvg{}, must(NewKrum(10)), must(NewMultiKrum(10, 0)), must(NewMedian(10)),
		must(NewTrimmedMean(10)), must(NewGeometricMedian(0, 0, 0)), must(NewCenteredClipping(3, 2)),
		must(NewHierarchicalKrum(0, 0.2, nil)),
		must(ParsePipeline("nnm+krum", Params{F: 10})).(SourceRule),
		must(ParsePipeline("bucketing+trimmed-mean", Params{F: 5, Seed: 1})).(SourceRule)}
	for _, d := range []int{1_000_000, 10_000_000} {
		x := bigInputs(n, d)
		var src Source = Float32Rows(x)
		kind := "memory"
		if d > 1_000_000 {
			src, kind = copySource{x}, "streamed"
		}
		for _, rule := range rules {
			b.Run(fmt.Sprintf("%s/%s/n=%d,d=%d", rule.Name(), kind, n, d), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(n) * int64(d) * 4)
				start := cpuTime()
				for b.Loop() {
					if _, _, err := fresh(rule).AggregateSource(src, nil); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, start)
			})
		}
		x = nil
	}
}
