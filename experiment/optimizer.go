package experiment

import (
	"fmt"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/serveropt"
)

// Server optimizers (Config.Optimizer). learn.RunFederation adds the
// rule's output to the global model once per round; optimizerRule wraps
// the cell's rule so that this output is the optimizer's increment
// (serveropt.Advance of the robust aggregate), which gives the model
// serveropt.Step computes, bit for bit. The wrapper keeps the optimizer
// state, so the federation must call its Aggregate exactly once per round:
// an adaptive attack that probes the rule (opt-alie, min-max, ...) is
// handed the inner rule instead (rawRuleAttack), so probing never moves
// the state, and the attacker targets the robust rule as without an
// optimizer.

// parseOptimizer returns c's optimizer, resolved; ok is false without one.
func (c Config) parseOptimizer() (spec serveropt.Spec, ok bool, err error) {
	if c.Optimizer == "" {
		return serveropt.Spec{}, false, nil
	}
	s, err := serveropt.Parse(c.Optimizer)
	if err != nil {
		return serveropt.Spec{}, false, err
	}
	return s.Resolved(), true, nil
}

// validateOptimizer checks Optimizer; called by Validate.
func (c Config) validateOptimizer() error {
	if _, _, err := c.parseOptimizer(); err != nil {
		return bad("optimizer", "%q: %v", c.Optimizer, err)
	}
	if c.Optimizer != "" && len(c.DP) > 0 {
		return bad("optimizer", "%q: not supported together with --dp", c.Optimizer)
	}
	return nil
}

// optimizerSetup is the fingerprint of the optimizer for Setup ("" without
// one, so that files written before keep their keys).
func (c Config) optimizerSetup() string {
	spec, ok, err := c.parseOptimizer()
	if !ok || err != nil {
		return ""
	}
	return " opt=" + spec.String()
}

type optimizerRule struct {
	inner aggregate.Rule
	spec  serveropt.Spec
	state *serveropt.State
}

func (r *optimizerRule) Name() string { return r.inner.Name() }

// Aggregate runs the inner rule and returns the optimizer's increment; the
// report is the inner rule's.
func (r *optimizerRule) Aggregate(updates [][]float64, weights []float64) ([]float64, aggregate.Report, error) {
	agg, rep, err := r.inner.Aggregate(updates, weights)
	if err != nil {
		return nil, rep, err
	}
	next, inc, err := serveropt.Advance(r.spec, r.state, agg)
	if err != nil {
		return nil, rep, fmt.Errorf("server optimizer %s: %w", r.spec.Name, err)
	}
	r.state = next
	return inc, rep, nil
}

// rawRuleAttack hands its attack the rule under the optimizer.
type rawRuleAttack struct {
	inner aggregate.Attack
	rule  aggregate.Rule
}

func (a rawRuleAttack) Name() string { return a.inner.Name() }

func (a rawRuleAttack) Craft(in aggregate.AttackInput) ([][]float64, error) {
	in.Rule = a.rule
	return a.inner.Craft(in)
}
