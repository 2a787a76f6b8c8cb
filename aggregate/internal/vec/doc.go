// Package vec holds the dense float64 kernels behind package aggregate:
// dot products, squared distances, linear combinations of rows and the
// 3×4 Gram tile used by the pairwise-distance engine.
//
// Each kernel has a portable Go implementation (the *Generic functions)
// and, on amd64 processors with AVX2 and FMA, a hand-written assembly
// implementation selected once at start-up (see HasAVX2FMA). The two agree
// to rounding: the assembly keeps four-lane partial sums and fuses
// multiply-adds, so results can differ in the last bits from the portable
// code, never more. Tests compare them on random sizes, including lengths
// that are not multiples of the vector width.
//
// The kernels never allocate and never start goroutines: blocking and
// parallelism belong to the caller, which keeps the order of summation
// under the caller's control and the results deterministic.
package vec
