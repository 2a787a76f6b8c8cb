package coordinator

import (
	"fmt"

	"github.com/mfn/mfn/crypto"
)

// Round metrics (docs/METRICS.md): a node signs its train loss and
// held-out accuracy in a version 2 statement; add-update records them on
// the update (statementMetrics), and close-round aggregates them over the
// updates the rule used (aggregateRoundMetrics). Both run in Apply: they
// read only the entry and the state, iterate in round order and so give
// every replica the same values.

// statementMetrics returns the round metrics a signed statement carries:
// nil pointers for a version 1 statement (or one that does not parse,
// which add-update has refused already), the held-out accuracy only with
// held-out samples.
func statementMetrics(stmt []byte) (loss, acc *float64, holdout uint64) {
	s, err := crypto.ParseStatement(stmt)
	if err != nil || !s.HasMetrics() {
		return nil, nil, 0
	}
	l := s.TrainLoss
	loss = &l
	if s.HoldoutSamples > 0 {
		a := s.HoldoutAccuracy
		acc, holdout = &a, s.HoldoutSamples
	}
	return loss, acc, holdout
}

// checkStatementMetrics is Submit's range check of a statement's metrics:
// train loss finite and ≥ 0, held-out accuracy in [0, 1]. Parsing the
// statement enforces them (crypto.ParseStatement); the check here names
// the metric in the ErrBadUpdate a node gets back.
func checkStatementMetrics(stmt []byte) error {
	s, err := crypto.ParseStatement(stmt)
	if err != nil {
		return fmt.Errorf("%w: statement: %v", ErrBadUpdate, err)
	}
	if !s.HasMetrics() {
		return nil
	}
	switch {
	case !finite(s.TrainLoss) || s.TrainLoss < 0:
		return fmt.Errorf("%w: train loss %v is not a finite value ≥ 0", ErrBadUpdate, s.TrainLoss)
	case !finite(s.HoldoutAccuracy) || s.HoldoutAccuracy < 0 || s.HoldoutAccuracy > 1:
		return fmt.Errorf("%w: held-out accuracy %v is not in [0, 1]", ErrBadUpdate, s.HoldoutAccuracy)
	}
	return nil
}

// aggregateRoundMetrics returns the sample-weighted means of the round
// metrics over the used updates that carry them: the train loss weighted
// by training samples (equal weights when any such update has none), the
// held-out accuracy weighted by held-out samples. nil when no used update
// carries the metric. The sums run in round order, so the result is the
// same on every replica.
func aggregateRoundMetrics(updates []Update) (trainLoss, holdoutAcc *float64) {
	var lossSum, lossW, lossPlain float64
	var lossN int
	allWeighted := true
	var accSum, accW float64
	for _, u := range updates {
		if !u.Used {
			continue
		}
		if u.TrainLoss != nil {
			lossSum += *u.TrainLoss * float64(u.Samples)
			lossW += float64(u.Samples)
			lossPlain += *u.TrainLoss
			lossN++
			allWeighted = allWeighted && u.Samples > 0
		}
		if u.HoldoutAccuracy != nil && u.HoldoutSamples > 0 {
			accSum += *u.HoldoutAccuracy * float64(u.HoldoutSamples)
			accW += float64(u.HoldoutSamples)
		}
	}
	if lossN > 0 {
		v := lossPlain / float64(lossN)
		if allWeighted && lossW > 0 {
			v = lossSum / lossW
		}
		if finite(v) {
			trainLoss = &v
		}
	}
	if accW > 0 {
		v := min(max(accSum/accW, 0), 1)
		if finite(v) {
			holdoutAcc = &v
		}
	}
	return trainLoss, holdoutAcc
}

// cloneFloat returns a copy of *p, nil for nil.
func cloneFloat(p *float64) *float64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// RoundMetrics is one point of a job's training curve (GET
// /v1/jobs/{id}/metrics, "mfn ctl jobs metrics"): a round's outcome and
// its metrics, nil where the round has none.
type RoundMetrics struct {
	Round    uint64     `json:"round"`
	State    RoundState `json:"state"`
	Updates  int        `json:"updates"`
	Used     int        `json:"used"`
	Rejected int        `json:"rejected"`
	// TrainLoss and HoldoutAccuracy are the nodes' signed metrics,
	// sample-weighted over the used updates (RoundResult).
	TrainLoss       *float64 `json:"train_loss,omitempty"`
	HoldoutAccuracy *float64 `json:"holdout_accuracy,omitempty"`
	// EvalAccuracy and EvalLoss are the new model's on the coordinators'
	// evaluation data (RoundResult.Accuracy, RoundResult.EvalLoss).
	EvalAccuracy *float64 `json:"eval_accuracy,omitempty"`
	EvalLoss     *float64 `json:"eval_loss,omitempty"`
}

// Curve returns the metrics of each round in rs, in the same order.
func Curve(rs []Round) []RoundMetrics {
	out := make([]RoundMetrics, len(rs))
	for i, r := range rs {
		m := RoundMetrics{Round: r.Number, State: r.State, Updates: len(r.Updates)}
		if res := r.Result; res != nil {
			m.Used, m.Rejected = res.Used, res.Rejected
			m.TrainLoss, m.HoldoutAccuracy = cloneFloat(res.TrainLoss), cloneFloat(res.HoldoutAccuracy)
			m.EvalAccuracy, m.EvalLoss = cloneFloat(res.Accuracy), cloneFloat(res.EvalLoss)
		}
		out[i] = m
	}
	return out
}
