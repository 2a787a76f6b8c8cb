package aggregate

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mfn/mfn/aggregate/internal/vec"
	"pgregory.net/rapid"
)

// streamed is a Source that is not in memory as far as the rules can tell:
// every block is copied out, as from a file. It records the longest block
// asked for.
type streamed struct {
	rows     [][]float32
	longest  atomic.Int64
	failRow  int // ReadBlock of this update fails (−1: never)
	failFrom int // … for blocks starting at or after this coordinate
}

var errDisk = errors.New("disk read failed")

func newStreamed(rows [][]float32) *streamed { return &streamed{rows: rows, failRow: -1} }

func (s *streamed) Shape() (int, int) { return Float32Rows(s.rows).Shape() }

func (s *streamed) ReadBlock(i, lo int, dst []float32) error {
	for {
		l := s.longest.Load()
		if int64(len(dst)) <= l || s.longest.CompareAndSwap(l, int64(len(dst))) {
			break
		}
	}
	if i == s.failRow && lo+len(dst) > s.failFrom {
		return errDisk
	}
	copy(dst, s.rows[i][lo:lo+len(dst)])
	return nil
}

func sourceRules(f int) []SourceRule {
	return []SourceRule{
		FedAvg{}, must(NewKrum(f)), must(NewMultiKrum(f, 0)), must(NewMedian(f)),
		must(NewTrimmedMean(f)), must(NewGeometricMedian(0, 0, 0)), must(NewCenteredClipping(3, 2)),
		must(NewBulyan(f)), must(NewHierarchicalKrum(0, 0.2, nil)),
	}
}

// fresh resets a stateful rule (centered clipping's reference) so that
// every call starts from the same state.
func fresh[R Rule](r R) R {
	if cc, ok := any(r).(*CenteredClipping); ok {
		cc.SetReference(nil)
	}
	return r
}

func widen(x [][]float32) [][]float64 {
	out := make([][]float64, len(x))
	for i, r := range x {
		for _, v := range r {
			out[i] = append(out[i], float64(v))
		}
	}
	return out
}

func sameBits(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

type result struct {
	out []float64
	rep Report
	err error
}

func (r result) String() string {
	return fmt.Sprintf("err=%v used=%v rejected=%v", r.err, r.rep.Used, r.rep.Rejected)
}

func sameResult(a, b result) bool {
	return fmt.Sprint(a.err) == fmt.Sprint(b.err) && sameBits(a.out, b.out) &&
		slices.Equal(a.rep.Used, b.rep.Used) && slices.Equal(a.rep.Rejected, b.rep.Rejected) &&
		sameBits(a.rep.Scores, b.rep.Scores)
}

// drawRound draws n float32 updates of length d with f Byzantine ones
// (large, shifted) and, sometimes, a NaN or Inf planted in one of them.
// d ranges over lengths that cross the engines' chunk and block bounds.
// drawWeights returns nil or one weight per update, sometimes with an
// invalid one (negative or NaN), which rejects its update.
func drawWeights(t *rapid.T, n int) []float64 {
	switch rapid.IntRange(0, 2).Draw(t, "weights") {
	case 0:
		return nil
	case 1:
		w := make([]float64, n)
		for i := range w {
			w[i] = rapid.Float64Range(0, 100).Draw(t, "w")
		}
		return w
	}
	w := make([]float64, n)
	for i := range w {
		w[i] = 1 + float64(i)
	}
	w[rapid.IntRange(0, n-1).Draw(t, "badWeight")] = []float64{-1, math.NaN()}[rapid.IntRange(0, 1).Draw(t, "badKind")]
	return w
}

func drawRound(t *rapid.T) (x [][]float32, f int) {
	f = rapid.IntRange(0, 3).Draw(t, "f")
	n := rapid.IntRange(2*f+3, 2*f+14).Draw(t, "n")
	d := rapid.SampledFrom([]int{1, 7, 16, 17, 100, 511, 513, 1025, 2049, 4100}).Draw(t, "d")
	r := seeded(rapid.Uint64().Draw(t, "seed"))
	x = make([][]float32, n)
	for i := range x {
		x[i] = make([]float32, d)
		for k := range x[i] {
			v := r.NormFloat64()
			if i >= n-f {
				v = 100*v + 1e3
			}
			x[i][k] = float32(v)
		}
	}
	if rapid.Bool().Draw(t, "duplicate") {
		copy(x[1], x[0]) // exercises the exact recomputation of close pairs
	}
	switch rapid.IntRange(0, 3).Draw(t, "plant") {
	case 1:
		x[rapid.IntRange(0, n-1).Draw(t, "nanRow")][rapid.IntRange(0, d-1).Draw(t, "nanCol")] = float32(math.NaN())
	case 2:
		x[rapid.IntRange(0, n-1).Draw(t, "infRow")][d-1] = float32(math.Inf(-1))
	case 3:
		x[0][0] = 3e30 // finite, but its square overflows float32
	}
	return x, f
}

// TestPropertySourceStreamedEqualsInMemory: a streamed Source gives the
// same bits, report and error as the same updates in memory, with one
// core or several.
func TestPropertySourceStreamedEqualsInMemory(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(procs)
	rapid.Check(t, func(t *rapid.T) {
		x, f := drawRound(t)
		w := drawWeights(t, len(x))
		for _, rule := range sourceRules(f) {
			runtime.GOMAXPROCS(max(2, procs))
			var mem, str, one result
			mem.out, mem.rep, mem.err = fresh(rule).AggregateSource(Float32Rows(x), w)
			src := newStreamed(x)
			str.out, str.rep, str.err = fresh(rule).AggregateSource(src, w)
			runtime.GOMAXPROCS(1)
			one.out, one.rep, one.err = fresh(rule).AggregateSource(newStreamed(x), w)
			if !sameResult(mem, str) {
				t.Fatalf("%s: in memory %v, streamed %v", rule.Name(), mem, str)
			}
			if !sameResult(mem, one) {
				t.Fatalf("%s: GOMAXPROCS=%d %v, GOMAXPROCS=1 %v", rule.Name(), max(2, procs), mem, one)
			}
			if l, most := int(src.longest.Load()), max(sourceBlock, chunkLen(1)); l > most {
				t.Fatalf("%s read a block of %d coordinates, more than %d", rule.Name(), l, most)
			}
		}
	})
}

// TestSourceStreamedEqualsInMemorySizes is the property above on a fixed
// grid that always includes the lengths crossing the engines' block and
// chunk bounds (512, 1024, 2048, 8192 coordinates) and n large enough for
// several Gram tiles, with a NaN planted in one input.
func TestSourceStreamedEqualsInMemorySizes(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(procs)
	r := seeded(99)
	for _, n := range []int{5, 13, 41} {
		for _, d := range []int{511, 513, 1025, 2049, 8193, 20000} {
			x := make([][]float32, n)
			for i := range x {
				x[i] = make([]float32, d)
				for k := range x[i] {
					x[i][k] = float32(r.NormFloat64())
				}
			}
			copy(x[2], x[1])
			x[n-1][d/2] = float32(math.NaN())
			for _, rule := range sourceRules(1) {
				runtime.GOMAXPROCS(max(2, procs))
				var mem, str, one result
				mem.out, mem.rep, mem.err = fresh(rule).AggregateSource(Float32Rows(x), nil)
				str.out, str.rep, str.err = fresh(rule).AggregateSource(newStreamed(x), nil)
				runtime.GOMAXPROCS(1)
				one.out, one.rep, one.err = fresh(rule).AggregateSource(newStreamed(x), nil)
				if mem.err != nil || !sameResult(mem, str) || !sameResult(mem, one) {
					t.Fatalf("%s n=%d d=%d: in memory %v, streamed %v, one core %v", rule.Name(), n, d, mem, str, one)
				}
				if name := rule.Name(); (name == "median" || name == "trimmed-mean") && vec.Accelerated() && vec.AcceleratedF32() {
					f64, _, err := rule.Aggregate(widen(x), nil)
					if err != nil || !sameBits(mem.out, f64) {
						t.Fatalf("%s n=%d d=%d: not bit-identical to the float64 path (%v)", name, n, d, err)
					}
				}
				want := Rejection{Index: n - 1, Reason: fmt.Sprintf("NaN at coordinate %d", d/2)}
				if !slices.Contains(mem.rep.Rejected, want) {
					t.Fatalf("%s n=%d d=%d: NaN input not rejected: %v", rule.Name(), n, d, mem.rep.Rejected)
				}
			}
		}
	}
}

// TestPropertySourceMatchesFloat64Path compares every SourceRule with the
// float64 path on the widened updates: same rejections, same inputs used
// (Krum: a selection whose exact score is within the float32 distance
// error of the best), and aggregates equal up to rounding — bit for bit
// for the median and the trimmed mean when both use sorting networks.
func TestPropertySourceMatchesFloat64Path(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		x, f := drawRound(t)
		w := drawWeights(t, len(x))
		wide := widen(x)
		networks := vec.Accelerated() && vec.AcceleratedF32()
		for _, rule := range sourceRules(f) {
			got, grep, gerr := AggregateFloat32(fresh(rule), x, w)
			want, wrep, werr := fresh(rule).Aggregate(wide, w)
			if (gerr == nil) != (werr == nil) {
				t.Fatalf("%s: float32 error %v, float64 error %v", rule.Name(), gerr, werr)
			}
			if gerr != nil {
				continue
			}
			distanceBased := rule.Name() == "krum" || rule.Name() == "multi-krum" || rule.Name() == "bulyan"
			if !slices.Equal(grep.Rejected, wrep.Rejected) && !distanceBased {
				t.Fatalf("%s: rejected %v, float64 path %v", rule.Name(), grep.Rejected, wrep.Rejected)
			}
			switch rule.Name() {
			case "hierarchical-krum":
				// The same kernels, chunks and order of summation: the
				// same bits (drawRound plants exact duplicates only, whose
				// direct distance is 0 either way).
				if !sameResult(result{got, grep, nil}, result{want, wrep, nil}) {
					t.Fatalf("hierarchical-krum: not identical to the float64 path: used %v / %v, max diff %g", grep.Used, wrep.Used, maxAbsDiff(got, want))
				}
				continue
			case "median", "trimmed-mean":
				if networks && !sameBits(got, want) {
					t.Fatalf("%s: not bit-identical to the float64 path (max diff %g)", rule.Name(), maxAbsDiff(got, want))
				}
			case "bulyan":
				// Same first-round scores within the float32 distance
				// error; the selection may differ on near-ties.
				for i, s := range grep.Scores {
					if w := wrep.Scores[i]; math.Abs(s-w) > 2e-3*w+1e-9 {
						t.Fatalf("bulyan score %d: %v, float64 path %v", i, s, w)
					}
				}
				if slices.Equal(grep.Used, wrep.Used) && networks && !sameBits(got, want) {
					t.Fatalf("bulyan: same selection, aggregate not bit-identical (max diff %g)", maxAbsDiff(got, want))
				}
				continue
			case "krum", "multi-krum":
				// Compare the exact (float64) scores of the choices.
				best := slices.Min(nonZeroUsed(wrep))
				for _, u := range grep.Used {
					if s := wrep.Scores[u]; s > best*(1+2e-3)+1e-30 && rule.Name() == "krum" {
						t.Fatalf("krum chose %d with exact score %v, best %v", u, s, best)
					}
				}
				for i, s := range grep.Scores {
					if w := wrep.Scores[i]; math.Abs(s-w) > 2e-3*w+1e-9 {
						t.Fatalf("%s score %d: %v, float64 path %v", rule.Name(), i, s, w)
					}
				}
				continue
			}
			scale := 1.0
			for _, v := range want {
				scale = max(scale, math.Abs(v))
			}
			if d := maxAbsDiff(got, want); d > 1e-9*scale {
				t.Fatalf("%s: differs from the float64 path by %g", rule.Name(), d)
			}
		}
	})
}

func nonZeroUsed(rep Report) []float64 {
	var s []float64
	for _, u := range rep.Used {
		s = append(s, rep.Scores[u])
	}
	return s
}

// TestSourceReadErrorNamesUpdate: a failing ReadBlock aborts every rule
// with an error that wraps the source's and names the update.
func TestSourceReadErrorNamesUpdate(t *testing.T) {
	x := make([][]float32, 9)
	r := seeded(7)
	for i := range x {
		x[i] = make([]float32, 3000)
		for k := range x[i] {
			x[i][k] = float32(r.NormFloat64())
		}
	}
	for _, rule := range sourceRules(2) {
		src := newStreamed(x)
		src.failRow, src.failFrom = 4, 2500
		_, _, err := fresh(rule).AggregateSource(src, nil)
		if !errors.Is(err, errDisk) {
			t.Fatalf("%s: error %v does not wrap the read error", rule.Name(), err)
		}
		if want := "update 4"; !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: error %q does not name %q", rule.Name(), err, want)
		}
	}
}

// TestSourceEdgeShapes: no updates, zero-length updates and a single
// update behave as in the float64 path.
func TestSourceEdgeShapes(t *testing.T) {
	for _, rule := range sourceRules(0) {
		if _, _, err := fresh(rule).AggregateSource(Float32Rows(nil), nil); !errors.Is(err, ErrNoValidInputs) {
			t.Errorf("%s, no updates: %v, want ErrNoValidInputs", rule.Name(), err)
		}
		if _, _, err := fresh(rule).AggregateSource(Float32Rows{{1}}, []float64{1, 2}); !errors.Is(err, ErrBadArguments) {
			t.Errorf("%s, 2 weights for 1 update: %v, want ErrBadArguments", rule.Name(), err)
		}
		empty := [][]float32{{}, {}, {}, {}, {}}
		got, _, gerr := AggregateFloat32(fresh(rule), empty, nil)
		want, _, werr := fresh(rule).Aggregate(widen(empty), nil)
		if (gerr == nil) != (werr == nil) || len(got) != len(want) {
			t.Errorf("%s, zero-length updates: %v %v, float64 path %v %v", rule.Name(), got, gerr, want, werr)
		}
	}
}

type badShape struct{ n, d int }

func (b badShape) Shape() (int, int)                 { return b.n, b.d }
func (badShape) ReadBlock(int, int, []float32) error { return errDisk }

// TestSourceBadShape: a Source announcing a negative shape is refused,
// not a panic.
func TestSourceBadShape(t *testing.T) {
	for _, shape := range []badShape{{-1, 5}, {3, -7}} {
		for _, rule := range sourceRules(0) {
			if _, _, err := fresh(rule).AggregateSource(shape, nil); !errors.Is(err, ErrBadArguments) {
				t.Errorf("%s, shape %v: %v, want ErrBadArguments", rule.Name(), shape, err)
			}
		}
	}
}

// TestAggregateFloat32Lengths: a vector of the wrong length is rejected
// and the report speaks of the caller's positions.
func TestAggregateFloat32Lengths(t *testing.T) {
	x := [][]float32{{1, 2}, {1, 2, 3}, {2, 3}, {3, 4}, {100, 100}}
	for _, rule := range []Rule{must(NewMedian(1)), must(NewKrum(0)), FedAvg{}} {
		out, rep, err := AggregateFloat32(rule, x, nil)
		if err != nil {
			t.Fatalf("%s: %v", rule.Name(), err)
		}
		if len(out) != 2 {
			t.Fatalf("%s: length %d", rule.Name(), len(out))
		}
		found := false
		for _, rj := range rep.Rejected {
			found = found || (rj.Index == 1 && rj.Reason == "length 3, want 2")
		}
		if !found || slices.Contains(rep.Used, 1) {
			t.Fatalf("%s: report %+v does not reject input 1 for its length", rule.Name(), rep)
		}
		if rule.Name() == "median" && !slices.Equal(out, []float64{2.5, 3.5}) {
			t.Fatalf("median %v, want [2.5 3.5]", out)
		}
		if rule.Name() == "krum" && (rep.Used[0] == 1 || rep.Used[0] == 4 || len(rep.Scores) != 5) {
			t.Fatalf("krum report %+v", rep)
		}
	}
}

// TestSourceMemoryIsBounded: through a streamed Source, a rule allocates
// its result and a bounded working set, not a copy of the inputs. With
// n = 12 updates of d = 400,000 float32 (19 MB of inputs) every rule must
// allocate less than three float64 d-vectors (the result, the geometric
// median's previous point or centered clipping's next one, the reference
// centered clipping keeps) plus 4 MiB of blocks: 13.8 MB. A rule that
// copied the inputs would allocate 19 MB, widened 38 MB.
func TestSourceMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 19 MB of inputs")
	}
	const n, d = 12, 400_000
	x := bigInputs(n, d)
	for _, rule := range sourceRules(2) {
		src := copySource{x}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, _, err := fresh(rule).AggregateSource(src, nil); err != nil {
			t.Fatalf("%s: %v", rule.Name(), err)
		}
		runtime.ReadMemStats(&after)
		got := after.TotalAlloc - before.TotalAlloc
		if limit := uint64(3*d*8 + 4<<20); got > limit {
			t.Errorf("%s allocated %d bytes, more than %d", rule.Name(), got, limit)
		}
	}
}
