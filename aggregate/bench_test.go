package aggregate

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user+system CPU time. Benchmarks report
// it per operation as cpu-ms/op next to wall time: on a shared machine the
// wall time includes waiting for a core, the CPU time does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

var benchCache = map[[2]int][][]float64{}

// benchInputs returns n standard-normal vectors of length d from a fixed
// seed, backed by one allocation, generated once per size and process.
// They are never modified.
func benchInputs(n, d int) [][]float64 {
	if x, ok := benchCache[[2]int{n, d}]; ok {
		return x
	}
	x := genInputs(n, d)
	benchCache = map[[2]int][][]float64{{n, d}: x} // keep one size alive at a time
	return x
}

func genInputs(n, d int) [][]float64 {
	r := rand.New(rand.NewPCG(42, uint64(n)*1_000_003+uint64(d)))
	buf := make([]float64, n*d)
	for i := range buf {
		buf[i] = r.NormFloat64()
	}
	x := make([][]float64, n)
	for i := range x {
		x[i] = buf[i*d : (i+1)*d : (i+1)*d]
	}
	return x
}

type benchSize struct{ n, d int }

func benchRule(b *testing.B, sizes []benchSize, build func(f int) Rule) {
	for _, sz := range sizes {
		b.Run(fmt.Sprintf("n=%d,d=%d", sz.n, sz.d), func(b *testing.B) {
			x := benchInputs(sz.n, sz.d)
			rule := build(sz.n / 5)
			b.ReportAllocs()
			b.SetBytes(int64(sz.n) * int64(sz.d) * 8)
			start := cpuTime()
			for b.Loop() {
				if _, _, err := rule.Aggregate(x, nil); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

func BenchmarkKrum(b *testing.B) {
	benchRule(b, []benchSize{{100, 100000}, {50, 1000000}}, func(f int) Rule { return must(NewKrum(f)) })
}

func BenchmarkMultiKrum(b *testing.B) {
	benchRule(b, []benchSize{{100, 100000}}, func(f int) Rule { return must(NewMultiKrum(f, 0)) })
}

func BenchmarkTrimmedMean(b *testing.B) {
	benchRule(b, []benchSize{{100, 100000}, {50, 1000000}}, func(f int) Rule { return must(NewTrimmedMean(f)) })
}

func BenchmarkMedian(b *testing.B) {
	benchRule(b, []benchSize{{100, 100000}}, func(f int) Rule { return must(NewMedian(f)) })
}

func BenchmarkGeometricMedian(b *testing.B) {
	benchRule(b, []benchSize{{100, 100000}}, func(int) Rule { return must(NewGeometricMedian(0, 0, 0)) })
}

// BenchmarkNNM times the pre-step alone (screening included, as in a
// pipeline): distances, neighbour selection and the n mixed vectors.
func BenchmarkNNM(b *testing.B) {
	for _, sz := range []benchSize{{100, 100000}} {
		b.Run(fmt.Sprintf("n=%d,d=%d", sz.n, sz.d), func(b *testing.B) {
			x := benchInputs(sz.n, sz.d)
			step := must(NewNNM(sz.n / 5))
			b.ReportAllocs()
			b.SetBytes(int64(sz.n) * int64(sz.d) * 8)
			start := cpuTime()
			defer reportCPU(b, start)
			for b.Loop() {
				s, err := screen(x, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := step.Apply(s.x, s.w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var benchCache32 = map[[2]int][][]float32{}

// benchInputs32 is benchInputs in float32 (the same normal draws,
// rounded), one size kept alive at a time.
func benchInputs32(n, d int) [][]float32 {
	if x, ok := benchCache32[[2]int{n, d}]; ok {
		return x
	}
	r := rand.New(rand.NewPCG(42, uint64(n)*1_000_003+uint64(d)))
	buf := make([]float32, n*d)
	for i := range buf {
		buf[i] = float32(r.NormFloat64())
	}
	x := make([][]float32, n)
	for i := range x {
		x[i] = buf[i*d : (i+1)*d : (i+1)*d]
	}
	benchCache32 = map[[2]int][][]float32{{n, d}: x}
	return x
}

// benchRuleF32 times AggregateSource on in-memory float32 updates.
func benchRuleF32(b *testing.B, sizes []benchSize, build func(f int) SourceRule) {
	for _, sz := range sizes {
		b.Run(fmt.Sprintf("n=%d,d=%d", sz.n, sz.d), func(b *testing.B) {
			x := Float32Rows(benchInputs32(sz.n, sz.d))
			rule := build(sz.n / 5)
			b.ReportAllocs()
			b.SetBytes(int64(sz.n) * int64(sz.d) * 4)
			start := cpuTime()
			for b.Loop() {
				if _, _, err := rule.AggregateSource(x, nil); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

func BenchmarkKrumF32(b *testing.B) {
	benchRuleF32(b, []benchSize{{100, 100000}, {50, 1000000}}, func(f int) SourceRule { return must(NewKrum(f)) })
}

func BenchmarkMultiKrumF32(b *testing.B) {
	benchRuleF32(b, []benchSize{{100, 100000}}, func(f int) SourceRule { return must(NewMultiKrum(f, 0)) })
}

func BenchmarkMedianF32(b *testing.B) {
	benchRuleF32(b, []benchSize{{100, 100000}}, func(f int) SourceRule { return must(NewMedian(f)) })
}

func BenchmarkTrimmedMeanF32(b *testing.B) {
	benchRuleF32(b, []benchSize{{100, 100000}, {50, 1000000}}, func(f int) SourceRule { return must(NewTrimmedMean(f)) })
}

func BenchmarkGeometricMedianF32(b *testing.B) {
	benchRuleF32(b, []benchSize{{100, 100000}}, func(int) SourceRule { return must(NewGeometricMedian(0, 0, 0)) })
}

func BenchmarkFedAvgF32(b *testing.B) {
	benchRuleF32(b, []benchSize{{100, 100000}}, func(int) SourceRule { return FedAvg{} })
}

// BenchmarkGeometricMedianT3F32 uses ByzFL's default parameters (ν = 0.1,
// T = 3 iterations, no early stop) for a like-for-like comparison.
func BenchmarkGeometricMedianT3F32(b *testing.B) {
	benchRuleF32(b, []benchSize{{100, 100000}}, func(int) SourceRule { return must(NewGeometricMedian(0.1, 3, 1e-300)) })
}
