package coordinator

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Per-job metrics (mfn_job_*) are read from the replicated state at scrape
// time by jobCollector, so every member exports the same values for a job
// (the state machine is the same on every replica; a follower lags by the
// entries it has not applied yet). Dashboards aggregate them with
// max by (job_id) — summing over members would count each job once per
// member. A job's series disappear when it is archived or deleted, and
// nothing is kept for a job the state no longer holds.
//
// The job's id is the label job_id, not job: Prometheus sets job to the
// scrape job's name and would rename a scraped job label to exported_job.
//
// Cardinality: one set of series per job that is not archived, at most
// maxJobSeries jobs (the most recently created; the rest are counted in
// mfn_job_metrics_omitted_jobs). Label values are the job id and fixed
// enums: outcome (closed|failed, used|rejected), reason (rejectReasons)
// and from (open|last_update).

// maxJobSeries bounds the jobs exported: each job costs about 40 series
// (two histograms of 14 buckets, the counters, the gauges), so 500 jobs
// stay under 20,000 series per member.
const maxJobSeries = 500

// closeBuckets are the upper bounds (seconds) of the close-latency
// histograms: 0.1 s to about 14 min, doubling.
var closeBuckets = prometheus.ExponentialBuckets(0.1, 2, 14)

// Round-end rejection reasons: each update of an ended round that was not
// used is counted under one of these (rejectReasonOf maps the rule's
// free-text reason to one).
const (
	reasonNotSelected   = "not_selected"   // the robust rule left it out (krum, multi-krum, bulyan, clusters, pipelines)
	reasonNonFinite     = "non_finite"     // NaN, ±Inf or an overflowing norm
	reasonWrongDim      = "wrong_dim"      // not the job's dim
	reasonInvalidWeight = "invalid_weight" // negative or non-finite sample weight
	reasonUnopenable    = "unopenable"     // the sealed envelope could not be opened or did not match its record
	reasonRoundFailed   = "round_failed"   // its round failed, so no update of it was used
	reasonOther         = "other"
)

// rejectReasons lists every reason label value.
var rejectReasons = []string{reasonNotSelected, reasonNonFinite, reasonWrongDim, reasonInvalidWeight,
	reasonUnopenable, reasonRoundFailed, reasonOther}

// rejectReasonOf maps an update outcome's reason (written by the leader
// that closed the round, see Coordinator.closeRound and aggregate's
// Rejection reasons) to a fixed label value.
func rejectReasonOf(reason string) string {
	switch {
	case strings.HasPrefix(reason, "not "): // "not selected by krum", "not among the m best ...", "not chosen ...", "not used by ..."
		return reasonNotSelected
	case strings.HasPrefix(reason, "cannot open"):
		return reasonUnopenable
	case strings.HasPrefix(reason, "invalid weight"):
		return reasonInvalidWeight
	case strings.HasPrefix(reason, "length "), strings.HasPrefix(reason, "update has "):
		return reasonWrongDim
	case strings.HasPrefix(reason, "NaN "), strings.Contains(reason, "Inf at coordinate"), strings.Contains(reason, "overflows"):
		return reasonNonFinite
	}
	return reasonOther
}

var (
	jobRoundDesc = prometheus.NewDesc("mfn_job_round",
		"Number of the job's latest round (the open one while the job runs).", []string{"job_id"}, nil)
	jobRoundsDesc = prometheus.NewDesc("mfn_job_rounds_total",
		"Rounds of the job that ended, by outcome (closed, failed).", []string{"job_id", "outcome"}, nil)
	jobRunningDesc = prometheus.NewDesc("mfn_job_running",
		"1 while the job runs, 0 once it has completed, stopped or failed.", []string{"job_id"}, nil)
	jobAccuracyDesc = prometheus.NewDesc("mfn_job_accuracy",
		"Held-out accuracy of the model of the job's latest closed round that was evaluated (absent without an evaluator for the job's task).", []string{"job_id"}, nil)
	jobUpdatesDesc = prometheus.NewDesc("mfn_job_round_updates_total",
		"Updates of the job's ended rounds, by outcome (used, rejected) and, for rejected ones, reason.", []string{"job_id", "outcome", "reason"}, nil)
	jobCloseDesc = prometheus.NewDesc("mfn_job_round_close_seconds",
		"Time from a round's opening (from=open) or its last accepted update (from=last_update) to its close, closed rounds only, from the leader's clock in the entries.", []string{"job_id", "from"}, nil)
	jobTrainLossDesc = prometheus.NewDesc("mfn_job_train_loss",
		"Sample-weighted mean train loss the used updates' nodes signed, of the job's latest closed round that carried one.", []string{"job_id"}, nil)
	jobHoldoutAccuracyDesc = prometheus.NewDesc("mfn_job_holdout_accuracy",
		"Sample-weighted mean accuracy on the nodes' held-out splits, signed with the used updates, of the job's latest closed round that carried one.", []string{"job_id"}, nil)
	jobEvalLossDesc = prometheus.NewDesc("mfn_job_eval_loss",
		"Loss on the coordinators' evaluation data (--eval-data) of the model of the job's latest closed round that was evaluated.", []string{"job_id"}, nil)
	jobOmittedDesc = prometheus.NewDesc("mfn_job_metrics_omitted_jobs",
		"Jobs not exported as mfn_job_* series because more than the limit are held (archive ended jobs to drop theirs).", nil, nil)
)

// jobCollector exports per-job metrics from the state machine. Counters
// and histograms over ended rounds are tallied incrementally: a round that
// has ended never changes, so each scrape only reads the rounds that ended
// since the last one.
type jobCollector struct {
	f *fsm

	mu      sync.Mutex
	tallies map[string]*jobTally
}

func newJobCollector(f *fsm) *jobCollector {
	return &jobCollector{f: f, tallies: map[string]*jobTally{}}
}

// jobTally is what the collector has counted of one job's ended rounds.
type jobTally struct {
	created            time.Time // tells a re-created job with the same id apart
	scanned            uint64    // rounds 1..scanned have ended and are counted
	used               uint64
	reject             map[string]uint64
	fromOpen, fromLast histTally
	// accuracy of the latest counted closed round that carried one.
	accuracy    float64
	hasAccuracy bool
	// the round metrics of the latest counted closed round carrying each
	// (roundmetrics.go): train loss, held-out accuracy, evaluation loss.
	trainLoss, holdoutAcc, evalLoss latestValue
}

// latestValue is a gauge's value, if any round has given one.
type latestValue struct {
	v  float64
	ok bool
}

func (l *latestValue) set(p *float64) {
	if p != nil {
		l.v, l.ok = *p, true
	}
}

// histTally is a histogram's state over closeBuckets.
type histTally struct {
	counts []uint64 // per bucket, not cumulative
	n      uint64
	sum    float64
}

func (h *histTally) observe(v float64) {
	if h.counts == nil {
		h.counts = make([]uint64, len(closeBuckets))
	}
	if i, _ := slices.BinarySearch(closeBuckets, v); i < len(closeBuckets) {
		h.counts[i]++
	}
	h.n++
	h.sum += v
}

func (h *histTally) buckets() map[float64]uint64 {
	out := make(map[float64]uint64, len(closeBuckets))
	var c uint64
	for i, ub := range closeBuckets {
		if h.counts != nil {
			c += h.counts[i]
		}
		out[ub] = c
	}
	return out
}

// jobSample is one job's exported values, taken under the state lock.
type jobSample struct {
	id                string
	created           time.Time
	running           bool
	round             uint64
	completed, failed uint64
	tally             jobTally // a copy
}

// Describe sends every descriptor.
func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{jobRoundDesc, jobRoundsDesc, jobRunningDesc, jobAccuracyDesc, jobTrainLossDesc, jobHoldoutAccuracyDesc, jobEvalLossDesc, jobUpdatesDesc, jobCloseDesc, jobOmittedDesc} {
		ch <- d
	}
}

// Collect reads the state and sends each job's metrics.
func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	samples := c.sample()
	slices.SortFunc(samples, func(a, b jobSample) int {
		return cmp.Or(b.created.Compare(a.created), strings.Compare(a.id, b.id))
	})
	omitted := 0
	if len(samples) > maxJobSeries {
		omitted = len(samples) - maxJobSeries
		samples = samples[:maxJobSeries]
	}
	ch <- prometheus.MustNewConstMetric(jobOmittedDesc, prometheus.GaugeValue, float64(omitted))
	for _, s := range samples {
		running := 0.0
		if s.running {
			running = 1
		}
		ch <- prometheus.MustNewConstMetric(jobRoundDesc, prometheus.GaugeValue, float64(s.round), s.id)
		ch <- prometheus.MustNewConstMetric(jobRunningDesc, prometheus.GaugeValue, running, s.id)
		ch <- prometheus.MustNewConstMetric(jobRoundsDesc, prometheus.CounterValue, float64(s.completed), s.id, "closed")
		ch <- prometheus.MustNewConstMetric(jobRoundsDesc, prometheus.CounterValue, float64(s.failed), s.id, "failed")
		if s.tally.hasAccuracy {
			ch <- prometheus.MustNewConstMetric(jobAccuracyDesc, prometheus.GaugeValue, s.tally.accuracy, s.id)
		}
		for _, g := range []struct {
			d *prometheus.Desc
			v latestValue
		}{{jobTrainLossDesc, s.tally.trainLoss}, {jobHoldoutAccuracyDesc, s.tally.holdoutAcc}, {jobEvalLossDesc, s.tally.evalLoss}} {
			if g.v.ok {
				ch <- prometheus.MustNewConstMetric(g.d, prometheus.GaugeValue, g.v.v, s.id)
			}
		}
		ch <- prometheus.MustNewConstMetric(jobUpdatesDesc, prometheus.CounterValue, float64(s.tally.used), s.id, "used", "")
		for _, r := range rejectReasons {
			ch <- prometheus.MustNewConstMetric(jobUpdatesDesc, prometheus.CounterValue, float64(s.tally.reject[r]), s.id, "rejected", r)
		}
		for _, h := range []struct {
			from string
			t    *histTally
		}{{"open", &s.tally.fromOpen}, {"last_update", &s.tally.fromLast}} {
			ch <- prometheus.MustNewConstHistogram(jobCloseDesc, h.t.n, h.t.sum, h.t.buckets(), s.id, h.from)
		}
	}
}

// sample updates the tallies from the state and returns a copy of each
// exported job's values. Lock order: c.mu, then the state's lock (the
// state machine never takes c.mu).
func (c *jobCollector) sample() []jobSample {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.f.mu.RLock()
	defer c.f.mu.RUnlock()
	out := make([]jobSample, 0, len(c.f.jobs))
	for id, j := range c.f.jobs {
		if j.Job.State == JobArchived {
			continue
		}
		t := c.tallies[id]
		if t == nil || !t.created.Equal(j.Job.CreatedAt) {
			t = &jobTally{created: j.Job.CreatedAt, reject: map[string]uint64{}}
			c.tallies[id] = t
		}
		t.advance(j)
		cp := *t
		cp.reject = nil
		s := jobSample{id: id, created: j.Job.CreatedAt, running: j.Job.State == JobRunning, round: j.Job.Rounds,
			completed: j.Job.Completed, failed: j.Job.Failed, tally: cp}
		s.tally.reject = make(map[string]uint64, len(t.reject))
		for k, v := range t.reject {
			s.tally.reject[k] = v
		}
		out = append(out, s)
	}
	for id := range c.tallies {
		if j, ok := c.f.jobs[id]; !ok || j.Job.State == JobArchived {
			delete(c.tallies, id)
		}
	}
	return out
}

// advance counts the rounds of j that ended since the last call, in
// order, stopping at the first that has not ended.
func (t *jobTally) advance(j *jobState) {
	for t.scanned < uint64(len(j.Rounds)) {
		r := j.Rounds[t.scanned]
		switch r.State {
		case RoundClosed:
			var last time.Time
			for _, u := range r.Updates {
				if u.Used {
					t.used++
				} else {
					t.reject[rejectReasonOf(u.Reason)]++
				}
				if u.AcceptedAt.After(last) {
					last = u.AcceptedAt
				}
			}
			t.fromOpen.observe(max(r.EndedAt.Sub(r.OpenedAt).Seconds(), 0))
			if !last.IsZero() {
				t.fromLast.observe(max(r.EndedAt.Sub(last).Seconds(), 0))
			}
			if r.Result != nil && r.Result.Accuracy != nil {
				t.accuracy, t.hasAccuracy = *r.Result.Accuracy, true
			}
			if r.Result != nil {
				t.trainLoss.set(r.Result.TrainLoss)
				t.holdoutAcc.set(r.Result.HoldoutAccuracy)
				t.evalLoss.set(r.Result.EvalLoss)
			}
		case RoundFailed:
			t.reject[reasonRoundFailed] += uint64(len(r.Updates))
		default:
			return
		}
		t.scanned++
	}
}
