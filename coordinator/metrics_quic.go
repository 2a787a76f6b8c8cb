package coordinator

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/protocol"
)

// Reasons a QUIC connection or Hello is refused, the label values of
// mfn_coordinator_quic_refused_total. The connection caps add
// protocol.RefusedTooManyConns and protocol.RefusedTooManyForKey.
const (
	RefusedUnknownKey   = "unknown_key"  // TLS handshake: not an enrolled, non-revoked node key
	RefusedNotReady     = "not_ready"    // Hello: key unknown while this member catches up
	RefusedUnauthorized = "unauthorized" // Hello: the key is enrolled under another node id
)

// quicMetrics counts refused QUIC connections by reason and logs them,
// sampled, so a flood cannot fill the log.
type quicMetrics struct {
	refused *prometheus.CounterVec
	log     *slog.Logger
	sampler protocol.LogSampler
}

func newQUICMetrics(reg prometheus.Registerer, log *slog.Logger) *quicMetrics {
	m := &quicMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfn_coordinator_quic_refused_total",
			Help: "QUIC connections or Hellos this member refused, by reason (unknown_key, not_ready, unauthorized, too_many_conns, too_many_for_key).",
		}, []string{"reason"}),
		log: log,
	}
	if reg != nil {
		if err := reg.Register(m.refused); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if cv, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					m.refused = cv
				}
			}
		}
	}
	return m
}

func (m *quicMetrics) refuse(reason string, key ed25519.PublicKey) {
	m.refused.WithLabelValues(reason).Inc()
	k := key
	if len(k) > 8 {
		k = k[:8]
	}
	m.sampler.Log(m.log, "quic: node refused", "reason", reason, "key", hex.EncodeToString(k))
}

// Refused counts a connection the protocol server refused over a cap. Set
// it as protocol.Config.OnRefuse of the server that serves h.
func (h *QUICHandler) Refused(reason protocol.RefuseReason, key ed25519.PublicKey) {
	h.metrics.refuse(string(reason), key)
}
