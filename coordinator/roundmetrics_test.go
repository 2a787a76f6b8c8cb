package coordinator

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/crypto"
)

func fp(v float64) *float64 { return &v }

func TestAggregateRoundMetrics(t *testing.T) {
	t.Parallel()
	ups := []Update{
		{Used: true, Samples: 30, TrainLoss: fp(1), HoldoutAccuracy: fp(0.5), HoldoutSamples: 10},
		{Used: true, Samples: 10, TrainLoss: fp(2), HoldoutAccuracy: fp(1), HoldoutSamples: 30},
		{Used: false, Samples: 1000, TrainLoss: fp(100), HoldoutAccuracy: fp(0), HoldoutSamples: 1000}, // rejected: not counted
		{Used: true, Samples: 5}, // a version 1 statement: no metrics
		{Used: true, Samples: 60, TrainLoss: fp(0.5), HoldoutSamples: 0}, // no held-out split
	}
	loss, acc := aggregateRoundMetrics(ups)
	// (30·1 + 10·2 + 60·0.5) / 100 and (10·0.5 + 30·1) / 40.
	if loss == nil || *loss != 0.8 {
		t.Fatalf("train loss %v, want 0.8", loss)
	}
	if acc == nil || *acc != 0.875 {
		t.Fatalf("held-out accuracy %v, want 0.875", acc)
	}
	// A used update without a sample count: equal weights.
	ups[0].Samples = 0
	if loss, _ := aggregateRoundMetrics(ups); loss == nil || math.Abs(*loss-3.5/3) > 1e-15 {
		t.Fatalf("equal-weight train loss %v, want %v", loss, 3.5/3)
	}
	if loss, acc := aggregateRoundMetrics(ups[2:4]); loss != nil || acc != nil {
		t.Fatalf("no used update with metrics: %v %v", loss, acc)
	}
}

// metricsUpdate is logBuilder.update with a version 2 statement.
func (b *logBuilder) metricsUpdate(n *testNode, job string, round uint64, base Hash, vals []float64, samples uint64, loss, acc float64, hold uint64) *addUpdateCmd {
	b.t.Helper()
	upd := crypto.EncodeUpdate(vals, crypto.Float32)
	stmt := &crypto.Statement{Version: crypto.StatementVersionMetrics, Origin: b.keys.origin, JobID: job, Round: round, NodeID: n.id,
		BaseModelHash: base, UpdateHash: sha256Sum(upd), SampleCount: samples, Time: b.at,
		TrainLoss: loss, HoldoutAccuracy: acc, HoldoutSamples: hold}
	sb, err := stmt.MarshalBinary()
	if err != nil {
		b.t.Fatal(err)
	}
	return &addUpdateCmd{Job: job, Round: round, Node: n.id, BaseHash: base, UpdateHash: stmt.UpdateHash, Samples: samples,
		Statement: sb, Signature: crypto.SignStatement(n.key, sb), Sealed: []byte("sealed:" + n.id), AcceptedAt: b.at}
}

// TestRoundMetricsApply applies updates signed with metrics and a close
// whose entry claims other aggregates: every replica records the signed
// values and the aggregates computed over the used updates, in snapshots
// too, and /metrics exports them.
func TestRoundMetricsApply(t *testing.T) {
	t.Parallel()
	b := standardLog(t)
	spec := testSpec("delta", 3, 2, 4)
	b.add(cmdCreateJob, &createJobCmd{Spec: spec, At: b.at})
	base := ModelHash(make(Params, 3))
	b.add(cmdOpenRound, &openRoundCmd{Job: "delta", Round: 1, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	b.add(cmdAddUpdate, b.metricsUpdate(b.nodes[0], "delta", 1, base, []float64{1, 2, 3}, 30, 1, 0.5, 10))
	b.add(cmdAddUpdate, b.metricsUpdate(b.nodes[1], "delta", 1, base, []float64{1, 2, 3}, 10, 2, 1, 30))
	b.add(cmdAddUpdate, b.metricsUpdate(b.nodes[2], "delta", 1, base, []float64{1, 2, 3}, 50, 9, 0, 5))
	b.add(cmdSealRound, &sealRoundCmd{Job: "delta", Round: 1, At: b.at})
	model := Params{1, 2, 3}
	acc, evalLoss := 0.625, 0.25
	b.add(cmdCloseRound, &closeRoundCmd{Job: "delta", Round: 1, Updates: 3,
		Outcomes: []updateOutcome{{Used: true}, {Used: true}, {Reason: "not selected by krum"}},
		Model:    model, Result: RoundResult{ModelVersion: 1, ModelHash: ModelHash(model), Rule: "krum", Used: 2, Rejected: 1,
			Accuracy: &acc, EvalLoss: &evalLoss, TrainLoss: fp(42), HoldoutAccuracy: fp(0.01)}, At: b.at})

	f1, f2 := replay(t, b.keys, b.entries), replay(t, b.keys, b.entries)
	s1 := snapshotBytes(t, f1)
	if !bytes.Equal(s1, snapshotBytes(t, f2)) {
		t.Fatal("replicas' snapshots differ")
	}
	r, err := f1.round("delta", 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if u := r.Updates[1]; u.TrainLoss == nil || *u.TrainLoss != 2 || u.HoldoutAccuracy == nil || *u.HoldoutAccuracy != 1 || u.HoldoutSamples != 30 {
		t.Fatalf("update 1 metrics %v %v %d", u.TrainLoss, u.HoldoutAccuracy, u.HoldoutSamples)
	}
	res := r.Result
	// (30·1 + 10·2)/40 and (10·0.5 + 30·1)/40: the rejected update and the
	// entry's own claims do not count.
	if res.TrainLoss == nil || *res.TrainLoss != 1.25 || res.HoldoutAccuracy == nil || *res.HoldoutAccuracy != 0.875 {
		t.Fatalf("aggregates %v %v, want 1.25 and 0.875", res.TrainLoss, res.HoldoutAccuracy)
	}
	if res.EvalLoss == nil || *res.EvalLoss != evalLoss {
		t.Fatalf("eval loss %v", res.EvalLoss)
	}
	// Old rounds (version 1 statements) carry none.
	if old, _ := f1.round("alpha", 1, false); old.Result.TrainLoss != nil || old.Updates[0].TrainLoss != nil {
		t.Fatalf("version 1 round has metrics: %+v", old.Result)
	}
	// A snapshot restores them.
	f3, err := newFSM(b.keys.origin, b.keys.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f3.Restore(io.NopCloser(bytes.NewReader(s1))); err != nil {
		t.Fatal(err)
	}
	if r3, _ := f3.round("delta", 1, false); r3.Result.TrainLoss == nil || *r3.Result.TrainLoss != 1.25 || *r3.Updates[0].HoldoutAccuracy != 0.5 {
		t.Fatalf("restored round %+v", r3.Result)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(newJobCollector(f1))
	job := map[string]string{"job_id": "delta"}
	for name, want := range map[string]float64{"mfn_job_train_loss": 1.25, "mfn_job_holdout_accuracy": 0.875, "mfn_job_eval_loss": evalLoss, "mfn_job_accuracy": acc} {
		if got := one(t, reg, name, job); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := series(t, reg, "mfn_job_train_loss", map[string]string{"job_id": "alpha"}); len(got) != 0 {
		t.Errorf("alpha (no metrics) exports a train loss: %+v", got)
	}
}

func TestCheckStatementMetrics(t *testing.T) {
	t.Parallel()
	s := &crypto.Statement{Version: crypto.StatementVersionMetrics, Origin: "o", JobID: "j", Round: 1, NodeID: "n",
		Time: time.Unix(1, 0), TrainLoss: 0.5, HoldoutAccuracy: 0.5, HoldoutSamples: 2}
	good, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkStatementMetrics(good); err != nil {
		t.Fatal(err)
	}
	at := len(good) - 24
	for name, bits := range map[string][2]uint64{
		"nan loss":      {math.Float64bits(math.NaN()), math.Float64bits(0.5)},
		"inf loss":      {math.Float64bits(math.Inf(1)), math.Float64bits(0.5)},
		"negative loss": {math.Float64bits(-1), math.Float64bits(0.5)},
		"accuracy 2":    {math.Float64bits(0.5), math.Float64bits(2)},
	} {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint64(b[at:], bits[0])
		binary.BigEndian.PutUint64(b[at+8:], bits[1])
		if err := checkStatementMetrics(b); !errors.Is(err, ErrBadUpdate) {
			t.Errorf("%s: err = %v, want ErrBadUpdate", name, err)
		}
	}
}

// lossEvaluator is a JobEvaluator: accuracy from the first parameter,
// loss from the second; jobs of task "other" do not fit.
type lossEvaluator struct{}

func (lossEvaluator) Evaluate(string, []float64) (float64, bool, error) {
	return 0, false, errors.New("EvaluateJob must be called")
}

func (lossEvaluator) EvaluateJob(spec JobSpec, model []float64) (float64, float64, bool, error) {
	if spec.Task == "other" {
		return 0, 0, false, nil
	}
	return 1 / (1 + math.Abs(model[0])), math.Abs(model[1]), true, nil
}

// TestRoundMetricsCluster submits updates signed with metrics to a
// cluster with a JobEvaluator and checks the closed round's result on
// every member.
func TestRoundMetricsCluster(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{evaluator: lossEvaluator{}})
	nodes := newTestNodes(t, 3, 3)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	const dim = 4
	spec := testSpec("mjob", dim, 3, 3)
	spec.Rounds = 1
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r := tc.waitRound(li, "mjob", 1, RoundOpen)
	for i, nd := range nodes {
		stmt := &crypto.Statement{Version: crypto.StatementVersionMetrics, Origin: tc.keys.origin, JobID: "mjob", Round: 1, NodeID: nd.id,
			BaseModelHash: r.BaseHash, SampleCount: uint64(10 * (i + 1)), Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
			TrainLoss: float64(i + 1), HoldoutAccuracy: 0.5, HoldoutSamples: 4}
		if i == 2 {
			stmt.HoldoutAccuracy = 1
		}
		sealed, err := crypto.Seal(stmt, crypto.EncodeUpdate(testUpdate(i, dim), crypto.Float64), nd.key, tc.keys.recipients)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Submit(ctx, nd.pub(), sealed); err != nil {
			t.Fatal(err)
		}
	}
	r = tc.waitRound(li, "mjob", 1, RoundClosed, RoundFailed)
	if r.State != RoundClosed {
		t.Fatalf("round %s: %s", r.State, r.FailReason)
	}
	tc.waitApplied()
	for i, c := range tc.members {
		got, err := c.GetRound("mjob", 1)
		if err != nil {
			t.Fatal(err)
		}
		res := got.Result
		// fedavg uses all three: (10·1+20·2+30·3)/60 and (4·0.5·2+4·1)/12.
		if res.TrainLoss == nil || math.Abs(*res.TrainLoss-140.0/60) > 1e-12 || res.HoldoutAccuracy == nil || math.Abs(*res.HoldoutAccuracy-2.0/3) > 1e-12 {
			t.Fatalf("member %d: aggregates %v %v", i, res.TrainLoss, res.HoldoutAccuracy)
		}
		if res.Accuracy == nil || res.EvalLoss == nil || *res.EvalLoss < 0 {
			t.Fatalf("member %d: evaluation %v %v", i, res.Accuracy, res.EvalLoss)
		}
	}
}
