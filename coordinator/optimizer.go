package coordinator

import (
	"fmt"

	"github.com/mfn/mfn/serveropt"
)

// Server optimizers (JobSpec.Optimizer, package serveropt).
//
// A job with an optimizer moves its model by the optimizer's step on the
// round's aggregate Δ (the rule's output) instead of by Δ itself. The
// optimizer's state (m, v: 2 × dim float64) is part of the replicated
// state (jobState.Optimizer, in snapshots) and changes only in Apply:
//
//   - the leader's deriveRound computes the new model with serveropt.Step
//     from the state it reads (Job.opt) and proposes close-round with the
//     aggregate (closeRoundCmd.Aggregate) instead of the model;
//   - every replica's Apply (optimizerStep) recomputes the step from its
//     own state, the round's base model and the committed aggregate,
//     fills in the model, and the close-round checks go on as for any
//     job: the result's model hash must match the recomputed model, so a
//     replica whose state differs from the leader's rejects the entry
//     rather than diverging. The state is replaced (never changed in
//     place) once the entry has applied.
//
// So the entry never carries the state (for a large model it would be
// twice the model again) and is no larger than a plain job's; the step is
// a pure float64 function (serveropt), so every replica computes the
// same bits. Members that attest rounds re-derive them with the state
// captured before the close (copyJob keeps Job.opt).

// resolveOptimizer validates and fills in the defaults of spec's
// optimizer; CreateJob stores the resolved spec, so that a later change
// of a default never changes how a replayed log applies.
func resolveOptimizer(spec *JobSpec) {
	if spec.Optimizer != nil {
		r := spec.Optimizer.Resolved()
		spec.Optimizer = &r
	}
}

// validateOptimizer is JobSpec.Validate's check of the optimizer block.
func (s JobSpec) validateOptimizer() error {
	if s.Optimizer == nil {
		return nil
	}
	if err := s.Optimizer.Validate(); err != nil {
		return fmt.Errorf("%w: job %s: %v", ErrInvalid, s.ID, err)
	}
	return nil
}

// nextModel is the new model of a round whose aggregate is agg: base +
// agg, or the optimizer's step from the job's state (optimized true; the
// state itself changes only in Apply, see optimizerStep). why, when not
// empty, is the reason the round must fail.
func nextModel(j Job, base Params, agg []float64) (model Params, optimized bool, why string) {
	if j.Spec.Optimizer != nil {
		_, m, err := serveropt.Step(j.Spec.Optimizer.Resolved(), j.opt, base, agg)
		if err != nil {
			return nil, false, fmt.Sprintf("server optimizer %s: %v", j.Spec.Optimizer.Name, err)
		}
		return m, true, ""
	}
	model = make(Params, j.Spec.Dim)
	for i := range model {
		model[i] = base[i] + agg[i]
		if !finite(model[i]) {
			return nil, false, fmt.Sprintf("new model parameter %d is not finite", i)
		}
	}
	return model, false, ""
}

// optimizerStep is close-round's Apply for a job with an optimizer: it
// recomputes the step from the replica's state, the round's base model
// and the entry's aggregate, and sets c.Model. It returns the state to
// install once the entry has applied (nil for a job without optimizer).
// A command that does not fit the job is ErrInvalid; a round that is not
// closing is left to closeRound's checks.
func (f *fsm) optimizerStep(j *jobState, r *Round, c *closeRoundCmd) (*serveropt.State, error) {
	spec := j.Job.Spec.Optimizer
	switch {
	case spec == nil && c.Aggregate == nil:
		return nil, nil
	case spec == nil:
		return nil, fmt.Errorf("%w: job %s round %d: an aggregate for a job without optimizer", ErrInvalid, c.Job, c.Round)
	case r == nil || r.State != RoundClosing:
		return nil, nil
	case len(c.Aggregate) != j.Job.Spec.Dim || len(c.Model) != 0:
		return nil, fmt.Errorf("%w: job %s round %d: a job with optimizer closes with its %d-value aggregate and no model (got %d and %d values)",
			ErrInvalid, c.Job, c.Round, j.Job.Spec.Dim, len(c.Aggregate), len(c.Model))
	case r.BaseVersion >= uint64(len(j.Models)) || j.Models[r.BaseVersion].Params == nil:
		return nil, fmt.Errorf("%w: job %s round %d: base model %d has no parameters", ErrInvalid, c.Job, c.Round, r.BaseVersion)
	}
	next, model, err := serveropt.Step(spec.Resolved(), j.Optimizer, j.Models[r.BaseVersion].Params, c.Aggregate)
	if err != nil {
		return nil, fmt.Errorf("%w: job %s round %d: %v", ErrInvalid, c.Job, c.Round, err)
	}
	c.Model = model
	return next, nil
}

// setOptimizer installs a job's optimizer state (nil: unchanged).
func (j *jobState) setOptimizer(st *serveropt.State) {
	if st != nil {
		j.Optimizer, j.Job.opt = st, st
	}
}

// dropOptimizer frees the optimizer state of a job that has ended (every
// end calls pruneModels): only a running job steps, and the state is
// twice the model's size.
func (j *jobState) dropOptimizer() {
	j.Optimizer, j.Job.opt = nil, nil
}

// restoreOptimizer links a restored job's state into its Job and checks
// that it fits the job's optimizer and dimension.
func (j *jobState) restoreOptimizer() error {
	if j.Optimizer == nil {
		return nil
	}
	if j.Job.Spec.Optimizer == nil {
		return fmt.Errorf("coordinator: restore: job %s has an optimizer state but no optimizer", j.Job.Spec.ID)
	}
	if err := j.Optimizer.CheckFor(*j.Job.Spec.Optimizer, j.Job.Spec.Dim); err != nil {
		return fmt.Errorf("coordinator: restore: job %s: %w", j.Job.Spec.ID, err)
	}
	j.Job.opt = j.Optimizer
	return nil
}
