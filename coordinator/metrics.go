package coordinator

import (
	"crypto/ed25519"
	"log/slog"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the coordinator's Prometheus metrics. Names follow
// mfn_coordinator_<name>_<unit>.
type metrics struct {
	rounds        *prometheus.CounterVec // outcome: closed|failed
	updates       *prometheus.CounterVec // result: accepted|rejected, reason
	aggregation   prometheus.Histogram
	roundDuration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, c *Coordinator) (*metrics, error) {
	m := &metrics{
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfn_coordinator_rounds_total",
			Help: "Rounds ended by this member as leader, by outcome (closed, failed).",
		}, []string{"outcome"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfn_coordinator_updates_total",
			Help: "Update submissions handled by this member, by result (accepted, rejected) and reason.",
		}, []string{"result", "reason"}),
		aggregation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mfn_coordinator_aggregation_seconds",
			Help:    "Time to open, decode and aggregate a round's updates.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		roundDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mfn_coordinator_round_duration_seconds",
			Help:    "Time from a round's opening to its committed result.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}),
	}
	if reg == nil {
		return m, nil
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	cs := []prometheus.Collector{
		m.rounds, m.updates, m.aggregation, m.roundDuration,
		gauge("mfn_coordinator_quic_connections", "Nodes connected over QUIC (subscribed to announcements).",
			func() float64 {
				if f := c.quicConns.Load(); f != nil {
					return float64((*f)())
				}
				return 0
			}),
		gauge("mfn_coordinator_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.",
			func() float64 { return float64(c.raft.State()) }),
		gauge("mfn_coordinator_raft_term", "Current Raft term.",
			func() float64 { return float64(c.raft.CurrentTerm()) }),
		gauge("mfn_coordinator_raft_commit_index", "Raft commit index.",
			func() float64 { return float64(c.raft.CommitIndex()) }),
		gauge("mfn_coordinator_raft_applied_index", "Raft index applied to the state machine.",
			func() float64 { return float64(c.raft.AppliedIndex()) }),
		gauge("mfn_coordinator_raft_peers", "Voters in the Raft configuration, this member included.",
			func() float64 { return float64(c.voterCount()) }),
		gauge("mfn_coordinator_audit_leaves", "Leaves in the audit log.",
			func() float64 { return float64(c.fsm.treeSize()) }),
		privacyCollector{c}, newJobCollector(c.fsm),
	}
	for _, col := range cs {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// privacyDesc describes mfn_job_privacy_epsilon_spent.
var privacyDesc = prometheus.NewDesc("mfn_job_privacy_epsilon_spent",
	"Privacy budget ε spent by a DP job (at its δ), from the replicated accountant; one series per job with a dp block.",
	[]string{"job"}, nil)

// privacyCollector exports each DP job's ε spent at scrape time (every
// member can: the accountant is in the replicated state).
type privacyCollector struct{ c *Coordinator }

func (p privacyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- privacyDesc }

func (p privacyCollector) Collect(ch chan<- prometheus.Metric) {
	for _, j := range p.c.fsm.jobList() {
		if j.Privacy != nil {
			ch <- prometheus.MustNewConstMetric(privacyDesc, prometheus.GaugeValue, j.Privacy.EpsilonSpent, j.Spec.ID)
		}
	}
}

func (c *Coordinator) voterCount() int {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// SetQUICConnections gives the coordinator a function counting the nodes
// connected to its QUIC server, reported as mfn_coordinator_quic_connections.
func (c *Coordinator) SetQUICConnections(count func() int) { c.quicConns.Store(&count) }

// SetDisconnect gives the coordinator a function closing every node
// connection authenticated with a key (protocol.Server.Disconnect). Every
// member calls it when it applies a node's revocation, so that a revoked
// node's live connections end at once, wherever they are held (new
// handshakes are refused by VerifyNodeKey).
func (c *Coordinator) SetDisconnect(disconnect func(pub ed25519.PublicKey) int) {
	c.disconnect.Store(&disconnect)
}

func (c *Coordinator) disconnectNode(id string) {
	d := c.disconnect.Load()
	if d == nil {
		return
	}
	pub, err := c.fsm.nodeKeyAny(id)
	if err != nil {
		return
	}
	if n := (*d)(pub); n > 0 {
		c.logger.Info("revoked node disconnected", slog.String("node", id), slog.Int("connections", n))
	}
}

// SetAnnouncer sets (or replaces) the Announcer after New, for servers
// that need the coordinator before they exist.
func (c *Coordinator) SetAnnouncer(a Announcer) { c.announcerV.Store(&a) }

func (c *Coordinator) announcer() Announcer {
	if a := c.announcerV.Load(); a != nil {
		return *a
	}
	return nil
}
