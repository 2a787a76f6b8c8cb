package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/mfn/mfn/aggregate/internal/vec"
)

// Pipelines on a Source, in bounded memory. A pre-step's output is a
// linear recipe over the valid inputs (a vecItem): NNM's output i is the
// mean of its neighbours, a bucket the mean of its members, a clipped
// input the input times a scale; recipes of recipes multiply out. No
// output vector is ever stored: every pass (a Gram matrix, the rule's
// reduction, the result) fills blocks of the recipes it needs from the
// inputs' blocks, widened to float64.
//
// Supported: pre-steps NNM, Bucketing and StaticClipping (this package's)
// in any order, then FedAvg, Krum, MultiKrum, Median or TrimmedMean.
// Another pre-step or rule makes AggregateSource widen the updates to
// float64 in memory and run Aggregate (unbounded memory).
//
// Agreement with Aggregate on the widened updates: the same steps, the
// same requirements, errors, reports and choices. Values: a recipe that
// is one input, or the mean of inputs (bucketing first, NNM first) is
// formed by the kernel meanOf uses, so a pipeline starting with bucketing
// gives the float64 path's bits; clipping's norm is summed block by block
// and NNM's means by vec.Combine rather than vec.Combine4, and a recipe
// of recipes is multiplied out, so these agree to rounding, and a near
// tie (Krum scores, NNM neighbours) may resolve otherwise.

// combineSplit sets dst (coordinates [lo, hi) of a d-long result) to
// Σ coef[j]·rows[j], the rows holding the same coordinates, cutting the
// range at the parts combineRows cuts d into, so that the kernel fuses the
// same coordinates as a whole-vector combineRows.
func combineSplit(dst []float64, lo, hi, d int, rows [][]float64, coef []float64) {
	parts := min(16, max(1, d/8192))
	for p := 0; p < parts; p++ {
		plo, phi := span(d, parts, p, 8)
		s, e := max(lo, plo), min(hi, phi)
		if s >= e {
			continue
		}
		vec.Combine(dst[s-lo:e-lo], rows, coef, s-lo)
	}
}

// reduceItems calls fn for every fixed block of sourceBlock coordinates,
// in parallel, with the blocks of the items in set (views[k] is item
// set[k]) and dst = out[lo:hi].
func reduceItems(vs *vecSet, set []int, out []float64, fn func(lo, hi int, views [][]float64, dst []float64)) error {
	d := len(out)
	return eachBlock(d, int64(len(set))*int64(d)*4, func(lo, hi int, sc *setScratch) error {
		w := hi - lo
		if cap(sc.med) < len(set)*w {
			sc.med = make([]float64, len(set)*w)
		}
		views := sc.medViews[:0]
		for k := range set {
			views = append(views, sc.med[k*w:(k+1)*w:(k+1)*w])
		}
		sc.medViews = views
		if err := vs.fillAll(set, lo, hi, views, sc); err != nil {
			return err
		}
		fn(lo, hi, views, out[lo:hi])
		return nil
	})
}

// compose returns the recipe Σ coef[k]·items[set[k]] over the inputs,
// inputs ascending. A mean of single inputs keeps the compact form (w nil)
// that fill forms as meanOf does.
func compose(items []vecItem, set []int, coef []float64) vecItem {
	mean := true
	for k, a := range set {
		if len(items[a].of) != 1 || items[a].w != nil || coef[k] != 1/float64(len(set)) {
			mean = false
			break
		}
	}
	if mean {
		of := make([]int, len(set))
		for k, a := range set {
			of[k] = items[a].of[0]
		}
		if slices.IsSorted(of) && len(slices.Compact(slices.Clone(of))) == len(of) {
			return vecItem{of: of}
		}
	}
	acc := map[int]float64{}
	for k, a := range set {
		it := items[a]
		for j, i := range it.of {
			acc[i] += coef[k] * it.coef(j)
		}
	}
	var out vecItem
	for i := range acc {
		out.of = append(out.of, i)
	}
	slices.Sort(out.of)
	out.w = make([]float64, len(out.of))
	for j, i := range out.of {
		out.w[j] = acc[i]
	}
	return out
}

// coef is the coefficient of input of[j] in the recipe.
func (it vecItem) coef(j int) float64 {
	if it.w == nil {
		return 1 / float64(len(it.of))
	}
	return it.w[j]
}

// streamable reports whether AggregateSource can run p block by block.
func (p *Pipeline) streamable() bool {
	for _, st := range p.Pre {
		switch st.(type) {
		case *NNM, *Bucketing, *StaticClipping:
		default:
			return false
		}
	}
	switch p.Rule.(type) {
	case FedAvg, *Krum, *MultiKrum, *Median, *TrimmedMean:
		return true
	}
	return false
}

// AggregateSource runs the pipeline on the updates of src. With this
// package's pre-steps and FedAvg, Krum, MultiKrum, Median or TrimmedMean
// it reads the updates block by block in bounded memory (see the comment
// at the top of pipeline_source.go for how its values relate to
// Aggregate's); otherwise it widens them to float64 in memory and calls
// Aggregate.
func (p *Pipeline) AggregateSource(src Source, weights []float64) ([]float64, Report, error) {
	name := p.Name()
	if p.Rule == nil {
		return nil, Report{Rule: name}, fmt.Errorf("%w: pipeline %q has no rule", ErrBadArguments, name)
	}
	if !p.streamable() {
		n, d := src.Shape()
		if n < 0 || d < 0 {
			return nil, Report{Rule: name}, fmt.Errorf("%s: %w: source shape %d×%d", name, ErrBadArguments, n, d)
		}
		rd := newReader(src)
		wide := make([][]float64, n)
		for a := range wide {
			var err error
			if wide[a], err = rd.widenRow(a); err != nil {
				return nil, Report{Rule: name}, fmt.Errorf("%s: %w", name, err)
			}
		}
		return p.Aggregate(wide, weights)
	}
	s, rd, err := screenSource(name, src, weights)
	if err != nil {
		return nil, Report{Rule: name}, err
	}
	if err := checkValuesSource(s, rd); err != nil {
		return nil, Report{Rule: name}, fmt.Errorf("%s: %w", name, err)
	}
	vs := &vecSet{rd: rd, items: make([]vecItem, s.n())}
	for a := range vs.items {
		vs.items[a] = vecItem{of: []int{a}}
	}
	curW := s.w
	sources := make([][]int, s.n())
	owner := allIndices(s.n())
	for i := range sources {
		sources[i] = []int{i}
	}
	rejected := s.faulty()
	for _, step := range p.Pre {
		var res itemResult
		switch st := step.(type) {
		case *NNM:
			res, err = nnmItems(st, vs, curW, rejected)
		case *Bucketing:
			res, err = bucketItems(st, vs, curW)
		case *StaticClipping:
			res, err = clipItems(st, vs, curW)
		}
		if err != nil {
			return nil, Report{Rule: name}, fmt.Errorf("%s: %w", name, err)
		}
		next := make([][]int, len(res.items))
		for j, src := range res.sources {
			var u []int
			for _, k := range src {
				u = append(u, sources[k]...)
			}
			slices.Sort(u)
			next[j] = slices.Compact(u)
		}
		for i := range owner {
			owner[i] = res.owner[owner[i]]
		}
		vs = &vecSet{rd: rd, items: res.items}
		curW, sources = res.weights, next
	}
	inner := &screened{w: curW, orig: allIndices(len(vs.items)), total: len(vs.items), d: s.d, upstream: rejected}
	out, rr, err := runItems(p.Rule, inner, vs)
	if err != nil {
		return nil, Report{Rule: name}, fmt.Errorf("%s: %w", name, err)
	}
	return out, p.report(s, name, rr, sources, owner), nil
}

// itemResult is a PreResult whose outputs are recipes.
type itemResult struct {
	items   []vecItem
	weights []float64
	sources [][]int
	owner   []int
}

// nnmItems is NNM.applyRejected on recipes.
func nnmItems(p *NNM, vs *vecSet, weights []float64, rejected int) (itemResult, error) {
	n := len(vs.items)
	if err := checkF(p.Name(), p.F); err != nil {
		return itemResult{}, err
	}
	f := max(0, p.F-rejected)
	if f >= n {
		return itemResult{}, &RequirementError{Rule: p.Name(), N: n, F: p.F, FEff: f, Rejected: rejected, Need: fmt.Sprintf("f < n, i.e. n > %d", f)}
	}
	k := n - f
	dist, err := gramSet(vs)
	if err != nil {
		return itemResult{}, err
	}
	res := itemResult{weights: slices.Clone(weights), sources: make([][]int, n), owner: allIndices(n), items: make([]vecItem, n)}
	order := make([]int, n)
	coef := make([]float64, k)
	for j := range coef {
		coef[j] = 1 / float64(k)
	}
	for i := 0; i < n; i++ {
		for j := range order {
			order[j] = j
		}
		row := dist[i*n : (i+1)*n]
		slices.SortStableFunc(order, func(a, b int) int {
			if a == i || b == i {
				return b2i(b == i) - b2i(a == i)
			}
			return cmpFloat(row[a], row[b])
		})
		nb := slices.Clone(order[:k])
		slices.Sort(nb)
		res.sources[i] = nb
		res.items[i] = compose(vs.items, nb, coef)
	}
	return res, nil
}

// bucketItems is Bucketing.Apply on recipes.
func bucketItems(p *Bucketing, vs *vecSet, weights []float64) (itemResult, error) {
	s := p.S
	if s == 0 {
		s = 2
	}
	if s < 0 {
		return itemResult{}, paramErr(p.Name(), "S", s, "≥ 1 (0 means 2)")
	}
	rng := p.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(0x6d666e, 0x6275636b))
	}
	n := len(vs.items)
	perm := rng.Perm(n)
	nb := (n + s - 1) / s
	res := itemResult{items: make([]vecItem, nb), sources: make([][]int, nb), owner: make([]int, n)}
	if weights != nil {
		res.weights = make([]float64, nb)
	}
	for b := 0; b < nb; b++ {
		members := slices.Clone(perm[b*s : min(n, (b+1)*s)])
		slices.Sort(members)
		for _, i := range members {
			res.owner[i] = b
			if weights != nil {
				res.weights[b] += weights[i]
			}
		}
		res.sources[b] = members
		if len(members) == 1 {
			res.items[b] = vs.items[members[0]]
			continue
		}
		coef := make([]float64, len(members))
		for k := range coef {
			coef[k] = 1 / float64(len(members))
		}
		res.items[b] = compose(vs.items, members, coef)
	}
	return res, nil
}

// clipItems is StaticClipping.Apply on recipes; each norm is summed block
// by block.
func clipItems(p *StaticClipping, vs *vecSet, weights []float64) (itemResult, error) {
	if err := p.validate(); err != nil {
		return itemResult{}, err
	}
	n, d := len(vs.items), vs.rd.d
	norms := make([]float64, n)
	e := make(errs, n)
	parallelFor(n, int64(n)*int64(d), func(a int) {
		buf := make([]float64, min(sourceBlock, d))
		var sc setScratch
		var sum float64
		for lo := 0; lo < d; lo += sourceBlock {
			hi := min(d, lo+sourceBlock)
			if err := vs.fill(a, lo, hi, buf[:hi-lo], &sc); err != nil {
				e[a] = err
				return
			}
			sum += vec.Dot(buf[:hi-lo], buf[:hi-lo])
		}
		norms[a] = math.Sqrt(sum)
	})
	if err := e.first(); err != nil {
		return itemResult{}, err
	}
	res := itemResult{items: make([]vecItem, n), weights: slices.Clone(weights), sources: make([][]int, n), owner: allIndices(n)}
	for a := range res.items {
		res.sources[a] = []int{a}
		if norms[a] <= p.C {
			res.items[a] = vs.items[a]
			continue
		}
		res.items[a] = compose(vs.items, []int{a}, []float64{p.C / norms[a]})
	}
	return res, nil
}

// runItems runs rule (one of streamable's) on the recipes of vs, with
// inner describing them as the rule's valid inputs.
func runItems(rule Rule, inner *screened, vs *vecSet) ([]float64, Report, error) {
	n, d := inner.n(), inner.d
	out := make([]float64, d)
	all := allIndices(n)
	switch r := rule.(type) {
	case FedAvg:
		coef := make([]float64, n)
		if inner.w == nil {
			for i := range coef {
				coef[i] = 1 / float64(n)
			}
		} else if !normalizeWeights(coef, inner.w) {
			return nil, Report{Rule: r.Name()}, fmt.Errorf("%w: fedavg: the valid inputs' weights do not sum to a positive finite number", ErrBadArguments)
		}
		err := reduceItems(vs, all, out, func(lo, hi int, views [][]float64, dst []float64) {
			combineSplit(dst, lo, hi, d, views, coef)
		})
		return out, inner.allUsed(r.Name()), err
	case *Median, *TrimmedMean:
		var f int
		var op colOp
		if m, ok := r.(*Median); ok {
			if f = inner.budget(m.F); 2*f >= n {
				return nil, Report{Rule: m.Name()}, inner.requirement(m.Name(), m.F, fmt.Sprintf("f < n/2, i.e. n > %d", 2*f))
			}
			op = colOp{one: medianOf, four: medianOf4}
		} else {
			tm := r.(*TrimmedMean)
			if f = inner.budget(tm.F); 2*f >= n {
				return nil, Report{Rule: tm.Name()}, inner.requirement(tm.Name(), tm.F, fmt.Sprintf("2f < n, i.e. n > %d", 2*f))
			}
			op = colOp{
				one:  func(col, tmp []float64) float64 { return trimmedMeanOf(col, tmp, f) },
				four: func(sorted []float64, n int, dst *[4]float64) { trimmedMean4(sorted, n, f, dst) },
			}
		}
		err := reduceItems(vs, all, out, func(_, _ int, views [][]float64, dst []float64) {
			coordwise(views, dst, op)
		})
		return out, inner.allUsed(rule.Name()), err
	case *Krum, *MultiKrum:
		var fcfg int
		if k, ok := r.(*Krum); ok {
			fcfg = k.F
		} else {
			fcfg = r.(*MultiKrum).F
		}
		dist, err := gramSet(vs)
		if err != nil {
			return nil, Report{Rule: rule.Name()}, err
		}
		if err := krumRequirement(rule.Name(), inner, fcfg); err != nil {
			return nil, Report{Rule: rule.Name()}, err
		}
		f := inner.budget(fcfg)
		scores := krumScores(dist, n, all, n-f-2)
		var cmpErr error
		cmp := func(a, b int) int {
			if c := cmpFloat(scores[a], scores[b]); c != 0 {
				return c
			}
			c, err := compareItems(vs, a, b)
			if err != nil && cmpErr == nil {
				cmpErr = err
			}
			return c
		}
		if k, ok := r.(*Krum); ok {
			best := 0
			for a := 1; a < n; a++ {
				if cmp(a, best) < 0 {
					best = a
				}
			}
			if cmpErr != nil {
				return nil, Report{Rule: k.Name()}, cmpErr
			}
			err := reduceItems(vs, []int{best}, out, func(_, _ int, views [][]float64, dst []float64) { copy(dst, views[0]) })
			rep := inner.report(k.Name(), []int{best}, "not selected by krum")
			rep.Scores = inner.scores(scores)
			return out, rep, err
		}
		mk := r.(*MultiKrum)
		m := mk.M
		switch {
		case m == 0:
			m = n - f
		case m > n && m <= n+inner.faulty():
			m = n
		}
		if m < 1 || m > n {
			return nil, Report{Rule: mk.Name()}, inner.requirement(mk.Name(), mk.F, fmt.Sprintf("1 ≤ m ≤ n with m = %d", m))
		}
		order := allIndices(n)
		slices.SortStableFunc(order, cmp)
		if cmpErr != nil {
			return nil, Report{Rule: mk.Name()}, cmpErr
		}
		chosen := order[:m]
		slices.Sort(chosen)
		coef := make([]float64, m)
		for j := range coef {
			coef[j] = 1 / float64(m)
		}
		err = reduceItems(vs, chosen, out, func(lo, hi int, views [][]float64, dst []float64) {
			combineSplit(dst, lo, hi, d, views, coef)
		})
		rep := inner.report(mk.Name(), chosen, "not among the m best multi-krum scores")
		rep.Scores = inner.scores(scores)
		return out, rep, err
	}
	return nil, Report{Rule: rule.Name()}, fmt.Errorf("%w: rule %s cannot run on a source", ErrBadArguments, rule.Name())
}

var _ SourceRule = (*Pipeline)(nil)
