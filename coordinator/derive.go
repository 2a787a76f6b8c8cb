package coordinator

import (
	"fmt"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/privacy"
)

// derivation is a sealed round's result computed from its updates: what
// the leader proposes in close-round and what an attesting member
// recomputes to cosign it. It is a pure function of the replicated state
// (job, round, base model, the updates' contents, the job's DP secret)
// and the rule factory, so every member derives the same bytes.
type derivation struct {
	model    Params
	outcomes []updateOutcome
	result   RoundResult // without Accuracy and AggregationSeconds
	// leaf is the encoded audit result leaf (audit.ResultLeaf).
	leaf []byte
	// fail, when not empty, is why the round must fail instead.
	fail string
	// seconds is how long the derivation took (set by Coordinator.derive).
	seconds float64
	// clipStep is the adaptive clipping step of a job with
	// dp.adaptive_clip (nil otherwise), recorded in close-round.
	clipStep *ClipStep
	// aggregate is set for a job with a server optimizer: the rule's
	// output, which close-round carries instead of the model (every
	// replica recomputes the step from it; optimizer.go).
	aggregate []float64
}

// deriveRound runs a sealed round's pipeline: vector returns the decoded
// update of r.Updates[i] (or why it cannot be given to the rule).
func deriveRound(origin string, j Job, r Round, base Params, rules RuleFactory, dpSecret []byte, vector func(Update) ([]float64, error)) derivation {
	outcomes := make([]updateOutcome, len(r.Updates))
	notInput := map[int]string{}
	var vecs [][]float64
	var weights []float64
	var pos []int // position in r.Updates of each vec
	allWeighted := true
	for i, u := range r.Updates {
		vec, err := vector(u)
		if err != nil {
			outcomes[i].Reason = err.Error()
			notInput[i] = err.Error()
			continue
		}
		vecs = append(vecs, vec)
		weights = append(weights, float64(u.Samples))
		allWeighted = allWeighted && u.Samples > 0
		pos = append(pos, i)
	}
	if !allWeighted || j.Privacy != nil {
		weights = nil // DP: every update weighs the same (see JobSpec.DP)
	}
	if len(vecs) == 0 {
		return derivation{fail: "no update could be opened"}
	}
	var agg []float64
	var rep aggregate.Report
	var ruleName string
	var noise []byte
	var step *ClipStep
	if p := j.Privacy; p != nil && p.Mode == privacy.ModeCentral {
		cr, err := centralRound(j, r, dpSecret, vecs)
		if err != nil {
			return derivation{fail: fmt.Sprintf("central DP: %v", err)}
		}
		agg, rep, noise, step = cr.mean, cr.report, cr.commitment, cr.step
		ruleName = rep.Rule
	} else {
		if rules == nil {
			return derivation{fail: "no aggregation rules configured"}
		}
		rule, err := rules(j.Spec.Rule)
		if err != nil {
			return derivation{fail: fmt.Sprintf("rule %s: %v", j.Spec.Rule.Name, err)}
		}
		agg, rep, err = rule.Aggregate(vecs, weights)
		if err != nil {
			return derivation{fail: fmt.Sprintf("aggregation: %v", err)}
		}
		ruleName = rule.Name()
	}
	return finishDerivation(origin, j, r, base, ruleOutput{agg: agg, rep: rep, ruleName: ruleName, noise: noise, step: step}, outcomes, notInput, pos, weights)
}
