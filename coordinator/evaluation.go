package coordinator

import (
	"log/slog"
)

// JobEvaluator is an Evaluator that also measures the loss and sees the
// job's whole spec (model shape, schema), so that it can tell whether its
// data fit the job's model. When Config.Evaluator implements it, closing
// a round calls EvaluateJob instead of Evaluate: ok=false (the data do
// not fit the job, or there are none) records nothing; an error is
// logged and records nothing.
type JobEvaluator interface {
	EvaluateJob(spec JobSpec, model []float64) (accuracy, loss float64, ok bool, err error)
}

// evaluate fills result's Accuracy (and EvalLoss) of a new model with the
// configured Evaluator. It runs on the leader before close-round is
// proposed: the values travel in the entry.
func (c *Coordinator) evaluate(j Job, model []float64, result *RoundResult) {
	ev := c.cfg.Evaluator
	if ev == nil {
		return
	}
	if je, ok := ev.(JobEvaluator); ok {
		acc, loss, ok, err := je.EvaluateJob(j.Spec, model)
		switch {
		case err != nil:
			c.logger.Warn("evaluation", slog.String("job", j.Spec.ID), errAttr(err))
		case ok && finite(acc) && acc >= 0 && acc <= 1:
			result.Accuracy = &acc
			if finite(loss) && loss >= 0 {
				result.EvalLoss = &loss
			}
		}
		return
	}
	acc, ok, err := ev.Evaluate(j.Spec.Task, model)
	switch {
	case err != nil:
		c.logger.Warn("evaluation", slog.String("job", j.Spec.ID), errAttr(err))
	case ok && finite(acc):
		result.Accuracy = &acc
	}
}
