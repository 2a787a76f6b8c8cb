package coordinator

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/aggregate"
)

// scraped is one series as gathered: a gauge's or counter's value, or a
// histogram's count, sum and cumulative buckets.
type scraped struct {
	value   float64
	count   uint64
	sum     float64
	buckets map[float64]uint64
}

// series returns the series of family name whose labels include want.
func series(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) []scraped {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []scraped
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			var s scraped
			switch {
			case m.Gauge != nil:
				s.value = m.Gauge.GetValue()
			case m.Counter != nil:
				s.value = m.Counter.GetValue()
			case m.Histogram != nil:
				s.count, s.sum, s.value = m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum(), float64(m.Histogram.GetSampleCount())
				s.buckets = map[float64]uint64{}
				for _, b := range m.Histogram.GetBucket() {
					s.buckets[b.GetUpperBound()] = b.GetCumulativeCount()
				}
			}
			out = append(out, s)
		}
	}
	return out
}

// one returns the value of the single series of name with labels want
// (a gauge's or counter's value, a histogram's sample count).
func one(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	ms := series(t, reg, name, want)
	if len(ms) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, want, len(ms))
	}
	return ms[0].value
}

func TestJobCollector(t *testing.T) {
	b := standardLog(t)
	// gamma: round 1 closes with two used updates and two rejected ones
	// (by the robust rule, and for a NaN), evaluated; round 2 fails with
	// two updates.
	spec := testSpec("gamma", 3, 2, 4)
	b.add(cmdCreateJob, &createJobCmd{Spec: spec, At: b.at})
	base := ModelHash(make(Params, 3))
	opened := b.at
	b.add(cmdOpenRound, &openRoundCmd{Job: "gamma", Round: 1, BaseHash: base, OpenedAt: opened, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	var lastUpdate time.Time
	for _, n := range []*testNode{b.nodes[0], b.nodes[1], b.nodes[2], b.nodes[4]} {
		lastUpdate = b.at
		b.add(cmdAddUpdate, b.update(n, "gamma", 1, base, []float64{1, 2, 3}))
	}
	b.add(cmdSealRound, &sealRoundCmd{Job: "gamma", Round: 1, At: b.at})
	b.at = b.at.Add(7 * time.Second)
	closed := b.at
	model := Params{1, 2, 3}
	acc := 0.75
	b.add(cmdCloseRound, &closeRoundCmd{Job: "gamma", Round: 1, Updates: 4,
		Outcomes: []updateOutcome{{Used: true}, {Reason: "not selected by krum"}, {Used: true}, {Reason: "NaN at coordinate 1"}},
		Model:    model, Result: RoundResult{ModelVersion: 1, ModelHash: ModelHash(model), Rule: "krum", Used: 2, Rejected: 2, Accuracy: &acc}, At: closed})
	b.add(cmdOpenRound, &openRoundCmd{Job: "gamma", Round: 2, BaseVersion: 1, BaseHash: ModelHash(model), OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	for _, n := range b.nodes[:2] {
		b.add(cmdAddUpdate, b.update(n, "gamma", 2, ModelHash(model), []float64{1, 1, 1}))
	}
	b.add(cmdFailRound, &failRoundCmd{Job: "gamma", Round: 2, Reason: "hard deadline", At: b.at})
	b.add(cmdOpenRound, &openRoundCmd{Job: "gamma", Round: 3, BaseVersion: 1, BaseHash: ModelHash(model), OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})

	f := replay(t, b.keys, b.entries)
	reg := prometheus.NewRegistry()
	reg.MustRegister(newJobCollector(f))

	for scrape := range 2 { // a second scrape must not count the ended rounds again
		gamma := map[string]string{"job_id": "gamma"}
		j, _ := f.job("gamma")
		if got := one(t, reg, "mfn_job_round", gamma); got != 3 || uint64(got) != j.Rounds {
			t.Fatalf("scrape %d: mfn_job_round %v, want 3 (job says %d)", scrape, got, j.Rounds)
		}
		if got := one(t, reg, "mfn_job_rounds_total", map[string]string{"job_id": "gamma", "outcome": "closed"}); got != 1 || uint64(got) != j.Completed {
			t.Fatalf("scrape %d: closed rounds %v, want 1 (job says %d)", scrape, got, j.Completed)
		}
		if got := one(t, reg, "mfn_job_rounds_total", map[string]string{"job_id": "gamma", "outcome": "failed"}); got != 1 || uint64(got) != j.Failed {
			t.Fatalf("scrape %d: failed rounds %v, want 1 (job says %d)", scrape, got, j.Failed)
		}
		if got := one(t, reg, "mfn_job_accuracy", gamma); got != acc {
			t.Fatalf("scrape %d: accuracy %v, want %v", scrape, got, acc)
		}
		if got := one(t, reg, "mfn_job_running", gamma); got != 1 {
			t.Fatalf("scrape %d: running %v", scrape, got)
		}
		for reason, want := range map[string]float64{"": 2, reasonNotSelected: 1, reasonNonFinite: 1, reasonRoundFailed: 2, reasonWrongDim: 0, reasonOther: 0} {
			outcome := "rejected"
			if reason == "" {
				outcome = "used"
			}
			if got := one(t, reg, "mfn_job_round_updates_total", map[string]string{"job_id": "gamma", "outcome": outcome, "reason": reason}); got != want {
				t.Fatalf("scrape %d: updates %s/%s %v, want %v", scrape, outcome, reason, got, want)
			}
		}
		// The rejections of round 1 by reason are the round's report.
		r1, err := f.round("gamma", 1, false)
		if err != nil {
			t.Fatal(err)
		}
		rej := 0.0
		for _, r := range rejectReasons {
			if r != reasonRoundFailed {
				rej += one(t, reg, "mfn_job_round_updates_total", map[string]string{"job_id": "gamma", "outcome": "rejected", "reason": r})
			}
		}
		if int(rej) != r1.Result.Rejected {
			t.Fatalf("scrape %d: rejected over closed rounds %v, round report says %d", scrape, rej, r1.Result.Rejected)
		}
		for from, want := range map[string]float64{"open": closed.Sub(opened).Seconds(), "last_update": closed.Sub(lastUpdate).Seconds()} {
			h := series(t, reg, "mfn_job_round_close_seconds", map[string]string{"job_id": "gamma", "from": from})
			if len(h) != 1 || h[0].count != 1 || h[0].sum != want {
				t.Fatalf("scrape %d: close latency from %s: %v, want one sample of %v s", scrape, from, h, want)
			}
			for ub, c := range h[0].buckets {
				if in := want <= ub; (c == 1) != in {
					t.Fatalf("scrape %d: from %s: bucket ≤%v holds %d", scrape, from, ub, c)
				}
			}
		}
		// alpha's round 1: 2 used, 1 rejected with a reason no rule writes.
		if got := one(t, reg, "mfn_job_round_updates_total", map[string]string{"job_id": "alpha", "outcome": "rejected", "reason": reasonOther}); got != 1 {
			t.Fatalf("scrape %d: alpha other %v, want 1", scrape, got)
		}
		if got := one(t, reg, "mfn_job_running", map[string]string{"job_id": "beta"}); got != 0 {
			t.Fatalf("scrape %d: stopped beta running %v", scrape, got)
		}
		if len(series(t, reg, "mfn_job_accuracy", map[string]string{"job_id": "alpha"})) != 0 {
			t.Fatal("alpha was not evaluated but exports an accuracy")
		}
	}

	// Archiving and deleting jobs removes their series.
	next := uint64(len(b.entries))
	for _, c := range []*deleteJobCmd{{ID: "alpha", Archive: true, At: b.at}, {ID: "beta", At: b.at}} {
		e, err := encodeCommand(cmdDeleteJob, c)
		if err != nil {
			t.Fatal(err)
		}
		next++
		if res, ok := f.Apply(&raft.Log{Index: next, Type: raft.LogCommand, Data: e}).(*applyResult); !ok || res.err != nil {
			t.Fatalf("delete %s: %+v", c.ID, res)
		}
	}
	for _, id := range []string{"alpha", "beta"} {
		if n := len(series(t, reg, "mfn_job_round", map[string]string{"job_id": id})); n != 0 {
			t.Fatalf("job %s ended: %d mfn_job_round series left", id, n)
		}
	}
	if got := one(t, reg, "mfn_job_round", map[string]string{"job_id": "gamma"}); got != 3 {
		t.Fatalf("gamma round %v after the deletions", got)
	}
}

// TestJobCollectorBoundsJobs: above maxJobSeries jobs, only the newest are
// exported and the rest counted.
func TestJobCollectorBoundsJobs(t *testing.T) {
	b := newLogBuilder(t)
	n := maxJobSeries + 3
	for i := range n {
		b.add(cmdCreateJob, &createJobCmd{Spec: testSpec("j"+time.Duration(i).String(), 2, 1, 1), At: b.at})
	}
	f := replay(t, b.keys, b.entries)
	reg := prometheus.NewRegistry()
	reg.MustRegister(newJobCollector(f))
	if got := len(series(t, reg, "mfn_job_round", nil)); got != maxJobSeries {
		t.Fatalf("%d jobs exported, want %d", got, maxJobSeries)
	}
	if got := one(t, reg, "mfn_job_metrics_omitted_jobs", nil); got != 3 {
		t.Fatalf("omitted %v, want 3", got)
	}
	// The oldest three are the ones left out.
	for i := range 3 {
		if len(series(t, reg, "mfn_job_round", map[string]string{"job_id": "j" + time.Duration(i).String()})) != 0 {
			t.Fatalf("oldest job %d exported", i)
		}
	}
}

// TestRejectReasonOf maps the reasons the aggregation rules really write.
func TestRejectReasonOf(t *testing.T) {
	krum, err := aggregate.New("krum", aggregate.Params{F: 1})
	if err != nil {
		t.Fatal(err)
	}
	ups := [][]float64{{0, 0}, {0.1, 0}, {0, 0.1}, {9, 9}, {math.NaN(), 0}, {1, 2, 3}}
	_, rep, err := krum.Aggregate(ups, []float64{1, 1, 1, 1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range rep.Rejected {
		got[rejectReasonOf(r.Reason)]++
	}
	if got[reasonNotSelected] != 3 || got[reasonNonFinite] != 1 || got[reasonWrongDim] != 1 || got[reasonOther] != 0 {
		t.Fatalf("krum rejections %+v mapped to %v", rep.Rejected, got)
	}
	for reason, want := range map[string]string{
		"cannot open: bad tag":           reasonUnopenable,
		"update has 3 values, dim is 4":  reasonWrongDim,
		"invalid weight -1":              reasonInvalidWeight,
		"+Inf at coordinate 3":           reasonNonFinite,
		"squared norm overflows float64": reasonNonFinite,
		"far from the others":            reasonOther,
	} {
		if got := rejectReasonOf(reason); got != want {
			t.Errorf("%q → %s, want %s", reason, got, want)
		}
	}
}

// evalFirst scores a model by its first parameter, so every round's
// accuracy differs.
type evalFirst struct{}

func (evalFirst) Evaluate(_ string, model []float64) (float64, bool, error) {
	return 1 / (1 + math.Abs(model[0])), true, nil
}

// TestJobMetricsCluster drives a 3-member cluster through two krum rounds
// with a Byzantine node and checks every member's mfn_job_* series
// against the rounds' reports.
func TestJobMetricsCluster(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{evaluator: evalFirst{}})
	nodes := newTestNodes(t, 5, 3)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	const dim = 4
	spec := testSpec("krumjob", dim, 5, 5)
	spec.Rule, spec.Rounds = RuleSpec{Name: "krum", F: 1}, 2
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	var rounds []Round
	for n := uint64(1); n <= 2; n++ {
		r := tc.waitRound(li, "krumjob", n, RoundOpen)
		for i, nd := range nodes {
			u := testUpdate(0, dim)
			u[0] += float64(i) * 0.01
			if i == 4 {
				u[0] = 1e6 // Byzantine: far from the others, krum leaves it out
			}
			if _, err := l.Submit(ctx, nd.pub(), nd.seal(t, tc.keys, "krumjob", n, r.BaseHash, u, 1)); err != nil {
				t.Fatalf("round %d node %s: %v", n, nd.id, err)
			}
		}
		r = tc.waitRound(li, "krumjob", n, RoundClosed, RoundFailed)
		if r.State != RoundClosed || r.Result.Accuracy == nil {
			t.Fatalf("round %d %s (%s), result %+v", n, r.State, r.FailReason, r.Result)
		}
		rounds = append(rounds, r)
	}
	tc.waitApplied()
	var used, rejected int
	var open float64
	for _, r := range rounds {
		used, rejected = used+r.Result.Used, rejected+r.Result.Rejected
		open += r.EndedAt.Sub(r.OpenedAt).Seconds()
	}
	if rejected != 8 || used != 2 {
		t.Fatalf("krum used %d rejected %d over two rounds of 5, want 2 and 8", used, rejected)
	}
	for i, c := range tc.members {
		reg := c.cfg.Registry.(*prometheus.Registry)
		job := map[string]string{"job_id": "krumjob"}
		if got := one(t, reg, "mfn_job_rounds_total", map[string]string{"job_id": "krumjob", "outcome": "closed"}); got != float64(len(rounds)) {
			t.Errorf("member %d: closed rounds %v, want %d", i, got, len(rounds))
		}
		if got := one(t, reg, "mfn_job_round_updates_total", map[string]string{"job_id": "krumjob", "outcome": "used"}); got != float64(used) {
			t.Errorf("member %d: used %v, want %d", i, got, used)
		}
		if got := one(t, reg, "mfn_job_round_updates_total", map[string]string{"job_id": "krumjob", "outcome": "rejected", "reason": reasonNotSelected}); got != float64(rejected) {
			t.Errorf("member %d: rejected (not selected) %v, want the reports' %d", i, got, rejected)
		}
		if got, want := one(t, reg, "mfn_job_accuracy", job), *rounds[1].Result.Accuracy; got != want {
			t.Errorf("member %d: accuracy %v, want round 2's %v", i, got, want)
		}
		if got := one(t, reg, "mfn_job_running", job); got != 0 {
			t.Errorf("member %d: completed job running %v", i, got)
		}
		h := series(t, reg, "mfn_job_round_close_seconds", map[string]string{"job_id": "krumjob", "from": "open"})
		if len(h) != 1 || h[0].count != 2 || math.Abs(h[0].sum-open) > 1e-9 {
			t.Errorf("member %d: close latency from open %+v, want 2 rounds summing to %v s", i, h, open)
		}
	}
}

// BenchmarkJobCollectorScrape measures one scrape of the per-job metrics
// with 100 running jobs of 100 ended rounds of 10 updates each, after the
// first scrape has tallied the ended rounds (the steady state).
func BenchmarkJobCollectorScrape(b *testing.B) {
	k := newTestKeys(b, 1, 7)
	f, err := newFSM(k.origin, k.verifier, nil)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	acc := 0.5
	for j := range 100 {
		id := "job" + time.Duration(j).String()
		js := &jobState{Job: Job{Spec: testSpec(id, 4, 1, 10), State: JobRunning, CreatedAt: t0.Add(time.Duration(j)), Rounds: 100, Completed: 100}}
		for n := range 100 {
			r := &Round{Job: id, Number: uint64(n + 1), State: RoundClosed, OpenedAt: t0, EndedAt: t0.Add(time.Duration(n+1) * time.Second),
				Result: &RoundResult{Accuracy: &acc}}
			for u := range 10 {
				r.Updates = append(r.Updates, Update{Node: "n", Used: u%3 == 0, Reason: "not selected by krum", AcceptedAt: t0})
			}
			js.Rounds = append(js.Rounds, r)
		}
		f.jobs[id] = js
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newJobCollector(f))
	if _, err := reg.Gather(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
