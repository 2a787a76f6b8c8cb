package coordinator

import (
	"github.com/prometheus/client_golang/prometheus"
)

// attestationMetrics count this member's round attestations (attest.go).
type attestationMetrics struct {
	mismatch prometheus.Counter
	seconds  prometheus.Histogram
}

// attestMetrics returns the member's attestation metrics, registering
// them with Config.Registry on first use (a second coordinator on the
// same registry keeps unregistered ones).
func (c *Coordinator) attestMetrics() *attestationMetrics {
	c.attestOnce.Do(func() {
		m := &attestationMetrics{
			mismatch: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "mfn_round_attestation_mismatch_total",
				Help: "Closed rounds this member re-derived to a result other than the recorded one (a signed dissent was recorded).",
			}),
			seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "mfn_coordinator_attestation_seconds",
				Help:    "Time this member spent re-deriving a closed round before attesting it.",
				Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
			}),
		}
		if r := c.cfg.Registry; r != nil {
			_ = r.Register(m.mismatch)
			_ = r.Register(m.seconds)
		}
		c.attestM = m
	})
	return c.attestM
}
