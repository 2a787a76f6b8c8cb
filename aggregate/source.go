package aggregate

import (
	"fmt"
	"slices"
)

// Source gives block-by-block read access to n float32 updates of one
// length d, wherever they are stored (memory, a file, a blob store). The
// rules that implement SourceRule read it in bounded memory: they never
// hold more than a few cache-sized blocks of coordinates of every update
// at once (see "Big rounds" in the package documentation).
//
// Shape is trusted for sizing: the distance-based rules hold an n×n
// matrix, every rule a d-long result, so callers bound n and d (a round's
// maximum number of updates, the job's dimension) before building a
// Source. ReadBlock must be safe for concurrent use: the rules read
// blocks from several goroutines. It must fill dst completely or return an
// error, which aborts the aggregation and is returned wrapped, naming the
// update.
type Source interface {
	// Shape returns the number of updates and their common length.
	Shape() (n, d int)
	// ReadBlock copies coordinates [lo, lo+len(dst)) of update i into dst.
	ReadBlock(i, lo int, dst []float32) error
}

// Float32Rows is a Source over in-memory float32 vectors, which must all
// have the same length (AggregateFloat32 screens lengths first). The rules
// read its rows in place, without copying blocks.
type Float32Rows [][]float32

// Shape returns len(r) and the length of the first row.
func (r Float32Rows) Shape() (n, d int) {
	if len(r) == 0 {
		return 0, 0
	}
	return len(r), len(r[0])
}

// ReadBlock copies r[i][lo:lo+len(dst)] into dst.
func (r Float32Rows) ReadBlock(i, lo int, dst []float32) error {
	if i < 0 || i >= len(r) || lo < 0 || lo+len(dst) > len(r[i]) {
		return fmt.Errorf("%w: block [%d, %d) of update %d out of range", ErrBadArguments, lo, lo+len(dst), i)
	}
	copy(dst, r[i][lo:])
	return nil
}

// SourceRule is a Rule that also aggregates float32 updates read from a
// Source, block by block. The result does not depend on whether the
// Source is in memory or streamed, nor on GOMAXPROCS: the same bits. It is
// the rule's result on the updates widened to float64 up to rounding; bit
// for bit for the median and the trimmed mean when both paths use the
// vector sorting networks (n ≤ 256 on AVX2 and AVX-512 processors). Krum,
// Multi-Krum and Bulyan compute their distances with float32 products
// (see "Float32 inputs" in the package documentation), so near-ties
// between scores may resolve differently from the float64 path.
//
// The SourceRules are FedAvg, Krum, MultiKrum, Median, TrimmedMean,
// Bulyan, GeometricMedian, CenteredClipping, HierarchicalKrum (whose
// float64 arithmetic on the widened values gives the Aggregate path's
// bits; see its AggregateSource) and Pipeline (bounded memory for this
// package's pre-steps and FedAvg, Krum, MultiKrum, Median, TrimmedMean).
//
// Every input of a Source has the same length, so only values (NaN, ±Inf)
// and weights are screened; Report indices are positions in the Source.
type SourceRule interface {
	Rule
	AggregateSource(src Source, weights []float64) ([]float64, Report, error)
}

// AggregateFloat32 aggregates float32 updates with rule. Vectors whose
// length is not the most common one are rejected as in Screen. When rule
// is a SourceRule the updates are read in place (no float64 copy);
// otherwise they are widened to float64 and rule.Aggregate runs on the
// copy. Report indices refer to positions in updates.
func AggregateFloat32(rule Rule, updates [][]float32, weights []float64) ([]float64, Report, error) {
	sr, ok := rule.(SourceRule)
	if !ok {
		wide := make([][]float64, len(updates))
		for i, u := range updates {
			wide[i] = make([]float64, len(u))
			for k, v := range u {
				wide[i][k] = float64(v)
			}
		}
		return rule.Aggregate(wide, weights)
	}
	if weights != nil && len(weights) != len(updates) {
		return nil, Report{Rule: rule.Name()}, fmt.Errorf("%s: %w: %d weights for %d updates", rule.Name(), ErrBadArguments, len(weights), len(updates))
	}
	counts := make(map[int]int, 2)
	dim, best := 0, 0
	for _, u := range updates {
		counts[len(u)]++
		if c := counts[len(u)]; c > best {
			dim, best = len(u), c
		}
	}
	var rows Float32Rows
	var keep []int
	var lenRejected []Rejection
	for i, u := range updates {
		if len(u) != dim {
			lenRejected = append(lenRejected, Rejection{Index: i, Reason: fmt.Sprintf("length %d, want %d", len(u), dim)})
			continue
		}
		rows = append(rows, u)
		keep = append(keep, i)
	}
	if lenRejected == nil {
		return sr.AggregateSource(rows, weights)
	}
	var w []float64
	if weights != nil {
		for _, i := range keep {
			w = append(w, weights[i])
		}
	}
	if len(rows) == 0 {
		return nil, Report{Rule: rule.Name()}, fmt.Errorf("%s: %w: all %d updates rejected (first: %s)", rule.Name(), ErrNoValidInputs, len(updates), lenRejected[0].Reason)
	}
	out, rep, err := sr.AggregateSource(rows, w)
	// Map positions among the kept rows back to the caller's, and add the
	// length rejections.
	for k, u := range rep.Used {
		rep.Used[k] = keep[u]
	}
	for k := range rep.Rejected {
		rep.Rejected[k].Index = keep[rep.Rejected[k].Index]
	}
	rep.Rejected = append(rep.Rejected, lenRejected...)
	sortRejections(rep.Rejected)
	if rep.Scores != nil {
		sc := make([]float64, len(updates))
		for k, v := range rep.Scores {
			sc[keep[k]] = v
		}
		rep.Scores = sc
	}
	return out, rep, err
}

// reader reads the valid inputs of one AggregateSource call: valid input
// a is update ids[a] of src. Rows of an in-memory source are returned in
// place; otherwise blocks are copied into the caller's scratch. Either
// way the values are the same, so every engine computes the same bits
// from a streamed Source as from memory.
type reader struct {
	src Source
	mem Float32Rows // src itself when it is in memory
	ids []int
	d   int
}

func newReader(src Source) *reader {
	n, d := src.Shape()
	rd := &reader{src: src, ids: allIndices(n), d: d}
	if m, ok := src.(Float32Rows); ok {
		rd.mem = m
	}
	return rd
}

func (rd *reader) n() int { return len(rd.ids) }

// row returns coordinates [lo, hi) of valid input a, in place or read into
// scratch (which must hold hi−lo values).
func (rd *reader) row(a, lo, hi int, scratch []float32) ([]float32, error) {
	i := rd.ids[a]
	if rd.mem != nil {
		return rd.mem[i][lo:hi:hi], nil
	}
	dst := scratch[:hi-lo]
	if err := rd.src.ReadBlock(i, lo, dst); err != nil {
		return nil, fmt.Errorf("reading coordinates [%d, %d) of update %d: %w", lo, hi, i, err)
	}
	return dst, nil
}

// rows returns coordinates [lo, hi) of every valid input, the k-th in
// scratch[k*(hi−lo):] when it must be read; out is reused.
func (rd *reader) rows(lo, hi int, scratch []float32, out [][]float32) ([][]float32, error) {
	out = out[:0]
	w := hi - lo
	for a := range rd.ids {
		var buf []float32
		if rd.mem == nil {
			buf = scratch[a*w : (a+1)*w]
		}
		r, err := rd.row(a, lo, hi, buf)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// needsScratch reports whether blocks must be copied (the source is not in
// memory).
func (rd *reader) needsScratch() bool { return rd.mem == nil }

// errs collects the first error of parallel parts, in part order, so the
// error returned does not depend on scheduling.
type errs []error

func (e errs) first() error {
	for _, err := range e {
		if err != nil {
			return err
		}
	}
	return nil
}

// sourceBlock is the number of coordinates read per ReadBlock call by the
// coordinate-wise engines and the combination: 4 KiB of float32 per
// update, large enough to amortise a read, small enough that n of them
// stay in the L2 cache for n up to a few hundred.
const sourceBlock = 1024

// widenRow returns valid input a widened to float64, read block by block.
func (rd *reader) widenRow(a int) ([]float64, error) {
	out := make([]float64, rd.d)
	scratch := make([]float32, min(sourceBlock, rd.d))
	for lo := 0; lo < rd.d; lo += sourceBlock {
		hi := min(rd.d, lo+sourceBlock)
		r, err := rd.row(a, lo, hi, scratch)
		if err != nil {
			return nil, err
		}
		for k, v := range r {
			out[lo+k] = float64(v)
		}
	}
	return out, nil
}

// compareRows orders valid inputs a and b lexicographically (as
// slices.Compare on their widened values would).
func (rd *reader) compareRows(a, b int) (int, error) {
	sa := make([]float32, min(sourceBlock, rd.d))
	sb := make([]float32, len(sa))
	for lo := 0; lo < rd.d; lo += sourceBlock {
		hi := min(rd.d, lo+sourceBlock)
		ra, err := rd.row(a, lo, hi, sa)
		if err != nil {
			return 0, err
		}
		rb, err := rd.row(b, lo, hi, sb)
		if err != nil {
			return 0, err
		}
		if c := slices.Compare(ra, rb); c != 0 {
			return c, nil
		}
	}
	return 0, nil
}
