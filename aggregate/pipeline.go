package aggregate

import (
	"fmt"
	"slices"
	"strings"
)

// Pipeline runs pre-steps and then a rule, and is itself a Rule whose name
// joins its parts with "+" ("nnm+bucketing+krum").
//
// Reporting in original positions: the inputs are screened once (malformed
// ones rejected with their reason), then each step's PreResult provenance
// is composed, so
//   - Report.Used lists every original input that contributed to an
//     output the rule used (for NNM, the neighbours of each used output;
//     for bucketing, every member of a used bucket);
//   - Report.Scores[i] is the rule's score of the output that stands for
//     input i (its own NNM output, its bucket), zero for rejected inputs;
//   - every valid input not in Used is rejected with a reason naming the
//     rule.
//
// The rule's requirement is checked against what it receives: after
// bucketing that is the number of buckets.
//
// Byzantine budget: the inputs rejected by the screening are provably
// faulty and count against f in every step (see the package
// documentation, "Rejected inputs and the Byzantine budget"): NNM and the
// rule of this package both run with the same effective f,
// max(0, F − rejected). A Rule from outside this package only sees the
// pre-steps' output and cannot apply the budget itself.
type Pipeline struct {
	// Pre are applied in order.
	Pre []PreStep
	// Rule aggregates the pre-steps' output.
	Rule Rule
}

// Name returns the parts' names joined by "+".
func (p *Pipeline) Name() string {
	parts := make([]string, 0, len(p.Pre)+1)
	for _, s := range p.Pre {
		parts = append(parts, s.Name())
	}
	if p.Rule != nil {
		parts = append(parts, p.Rule.Name())
	}
	return strings.Join(parts, "+")
}

// Aggregate screens the inputs, applies the pre-steps and the rule, and
// reports in terms of the original inputs.
func (p *Pipeline) Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error) {
	name := p.Name()
	if p.Rule == nil {
		return nil, Report{Rule: name}, fmt.Errorf("%w: pipeline %q has no rule", ErrBadArguments, name)
	}
	s, err := screen(updates, weights)
	if err != nil {
		return nil, Report{Rule: name}, fmt.Errorf("%s: %w", name, err)
	}
	cur, curW := s.x, s.w
	sources := make([][]int, s.n()) // output → positions in s.x
	owner := allIndices(s.n())      // position in s.x → output
	for i := range sources {
		sources[i] = []int{i}
	}
	rejected := s.faulty()
	for _, step := range p.Pre {
		var res PreResult
		if bs, ok := step.(budgetedPreStep); ok {
			res, err = bs.applyRejected(cur, curW, rejected)
		} else {
			res, err = step.Apply(cur, curW)
		}
		if err != nil {
			return nil, Report{Rule: name}, fmt.Errorf("%s: %w", name, err)
		}
		next := make([][]int, len(res.Updates))
		for j, src := range res.Sources {
			var u []int
			for _, k := range src {
				u = append(u, sources[k]...)
			}
			slices.Sort(u)
			next[j] = slices.Compact(u)
		}
		for i := range owner {
			owner[i] = res.Owner[owner[i]]
		}
		cur, curW, sources = res.Updates, res.Weights, next
	}
	var out []float64
	var rr Report
	if sr, ok := p.Rule.(screenedRule); ok {
		inner := &screened{x: cur, w: curW, orig: allIndices(len(cur)), total: len(cur), d: s.d, upstream: rejected}
		out, rr, err = sr.run(inner)
	} else {
		out, rr, err = p.Rule.Aggregate(cur, curW)
	}
	if err != nil {
		return nil, Report{Rule: name}, fmt.Errorf("%s: %w", name, err)
	}
	return out, p.report(s, name, rr, sources, owner), nil
}

// report maps the rule's report on the pipeline's last outputs back to
// the original updates: an update is used when an output built from it
// (sources) is, and takes the score of the output it went into (owner).
func (p *Pipeline) report(s *screened, name string, rr Report, sources [][]int, owner []int) Report {
	var used []int
	for _, j := range rr.Used {
		used = append(used, sources[j]...)
	}
	slices.Sort(used)
	used = slices.Compact(used)
	reason := "not used by " + p.Rule.Name()
	if len(p.Pre) > 0 {
		reason += " after " + strings.Join(preNames(p.Pre), "+")
	}
	rep := s.report(name, used, reason)
	if rr.Scores != nil {
		sc := make([]float64, s.n())
		for i := range sc {
			sc[i] = rr.Scores[owner[i]]
		}
		rep.Scores = s.scores(sc)
	}
	return rep
}

func preNames(pre []PreStep) []string {
	names := make([]string, len(pre))
	for i, s := range pre {
		names[i] = s.Name()
	}
	return names
}

func sortRejections(r []Rejection) {
	slices.SortFunc(r, func(a, b Rejection) int { return a.Index - b.Index })
}
