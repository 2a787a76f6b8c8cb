package node

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Submission results, the values of the "result" label of
// mfn_node_submissions_total and of Event.Result.
const (
	ResultAcked       = "acked"        // acknowledged and recorded
	ResultDuplicate   = "duplicate"    // the cluster already held this node's update for the round
	ResultRoundClosed = "round_closed" // too late: the round was closed or is not current
	ResultRejected    = "rejected"     // refused as invalid (bad request, unauthorized, not found)
	ResultNotLeader   = "not_leader"   // sent to a follower; the node redials the leader
	ResultRetry       = "retry"        // rate limited or unavailable; retried
	ResultError       = "error"        // the connection failed; the node reconnects
)

type metrics struct {
	rounds      prometheus.Counter
	submissions *prometheus.CounterVec
	trainSecs   prometheus.Histogram
	accuracy    *prometheus.GaugeVec
	trainLoss   prometheus.Gauge // the last signed train loss (eval.go)
	connected   prometheus.Gauge
	reconnects  prometheus.Counter
	sim         *simStats // statistics of the runs simulated for the local data
	// Verified round outcomes (roundcheck.go).
	roundOutcomes *prometheus.CounterVec
	lastVerified  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mfn_node_rounds_participated_total",
			Help: "Rounds for which this node's update was acknowledged (or found already stored).",
		}),
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfn_node_submissions_total",
			Help: "Update submissions by result (acked, duplicate, round_closed, rejected, not_leader, retry, error).",
		}, []string{"result"}),
		trainSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mfn_node_train_seconds",
			Help:    "Time to compute one update (local training or attack crafting).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		accuracy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mfn_node_local_accuracy_ratio",
			Help: "Accuracy on the node's held-out split of the round's base (global) model and of the locally trained model.",
		}, []string{"model"}),
		trainLoss: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mfn_node_train_loss",
			Help: "Mean cross-entropy of the last locally trained model on the node's training split (signed in the update's statement).",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mfn_node_connected",
			Help: "1 while the node holds a subscription to the leader, else 0.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mfn_node_reconnects_total",
			Help: "Connection attempts after the first.",
		}),
		sim: newSimStats(),
		roundOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfn_node_round_outcomes_total",
			Help: "Rounds of this node settled by the round check (Config.RoundCheck), by outcome verified against the signed result leaf and its inclusion proof: used, rejected, not-input, missing, or, after their tries, no-result and unverified.",
		}, []string{"outcome"}),
		lastVerified: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mfn_node_round_last_verified",
			Help: "The last round of a job whose signed result this node verified (outcome used, rejected, not-input or missing).",
		}, []string{"job"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range append([]prometheus.Collector{m.rounds, m.submissions, m.trainSecs, m.accuracy, m.trainLoss, m.connected, m.reconnects, m.roundOutcomes, m.lastVerified}, m.sim.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
