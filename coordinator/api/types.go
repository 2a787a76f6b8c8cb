package api

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/crypto"
)

// PublicKey is an Ed25519 public key. In JSON it is the text form
// "mfn-ed25519:<base64>" (crypto.FormatPublicKey, as "mfn keygen" prints
// it); decoding also accepts the bare standard base64 of the 32 bytes.
type PublicKey ed25519.PublicKey

// MarshalText encodes k as "mfn-ed25519:<base64>", and an empty key as
// the empty string.
func (k PublicKey) MarshalText() ([]byte, error) {
	if len(k) == 0 {
		return []byte{}, nil
	}
	if len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key has %d bytes, want %d", len(k), ed25519.PublicKeySize)
	}
	return []byte(crypto.FormatPublicKey(ed25519.PublicKey(k))), nil
}

// UnmarshalText decodes either text form, and the empty string as an
// empty key; errors name public_key.
func (k *PublicKey) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "" {
		*k = nil
		return nil
	}
	if strings.HasPrefix(s, crypto.PublicKeyPrefix) {
		pub, err := crypto.ParsePublicKey(s)
		if err != nil {
			return fmt.Errorf("public_key: %v", err)
		}
		*k = PublicKey(pub)
		return nil
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return fmt.Errorf("public_key: want %q followed by the base64 of 32 bytes", crypto.PublicKeyPrefix)
	}
	*k = PublicKey(raw)
	return nil
}

// Health is the body of /healthz.
type Health struct {
	Status string `json:"status"` // "ok"
}

// Readiness is the body of a 200 /readyz.
type Readiness struct {
	Ready  bool   `json:"ready"`
	Leader string `json:"leader"`
	State  string `json:"state"`
}

// JoinRequest is the body of POST /v1/cluster/join: the joining member's
// id, addresses and Ed25519 identity key.
type JoinRequest struct {
	ID        string    `json:"id"`
	RaftAddr  string    `json:"raft_addr"`
	QUICAddr  string    `json:"quic_addr"`
	HTTPAddr  string    `json:"http_addr"`
	PublicKey PublicKey `json:"public_key"`
}

// EnrollRequest is the body of POST /v1/nodes.
type EnrollRequest struct {
	ID        string    `json:"id"`
	PublicKey PublicKey `json:"public_key"`
}

// Node is an enrolled edge node as the API shows it.
type Node struct {
	ID         string    `json:"id"`
	PublicKey  PublicKey `json:"public_key"`
	EnrolledAt time.Time `json:"enrolled_at"`
	Revoked    bool      `json:"revoked"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

func nodeView(n coordinator.Node) Node {
	return Node{ID: n.ID, PublicKey: PublicKey(n.PublicKey), EnrolledAt: n.EnrolledAt, Revoked: n.Revoked, RevokedAt: n.RevokedAt}
}

// NodeList is the body of GET /v1/nodes.
type NodeList struct {
	Nodes []Node `json:"nodes"`
}

// JobList is the body of GET /v1/jobs.
type JobList struct {
	Jobs []coordinator.Job `json:"jobs"`
}

// StopRequest is the optional body of POST /v1/jobs/{id}/stop.
type StopRequest struct {
	Reason string `json:"reason"`
}

// RoundList is the body of GET /v1/jobs/{id}/rounds: one page of rounds
// in increasing number. NextAfter is set when more rounds follow: pass it
// as the after parameter to get the next page.
type RoundList struct {
	Rounds    []coordinator.Round `json:"rounds"`
	NextAfter *uint64             `json:"next_after,omitempty"`
}

// Round list paging (GET /v1/jobs/{id}/rounds?after=&limit=).
const (
	// DefaultRoundsPage is the page size without a limit parameter.
	DefaultRoundsPage = 100
	// MaxRoundsPage is the largest limit accepted (400 beyond).
	MaxRoundsPage = 1000
)

// ModelInfo is the body of GET /v1/jobs/{id}/models/{version}: a model
// version's metadata. Pruned is true when the cluster no longer keeps the
// parameters (the params download then answers 410).
type ModelInfo struct {
	Job     string           `json:"job"`
	Version uint64           `json:"version"`
	Hash    coordinator.Hash `json:"hash"`
	Round   uint64           `json:"round"`
	Dim     int              `json:"dim"`
	Pruned  bool             `json:"pruned,omitempty"`
}

// Checkpoint is a signed audit checkpoint in JSON: its tree size, root
// (hex) and the signed note verbatim.
type Checkpoint struct {
	Size uint64           `json:"size"`
	Root coordinator.Hash `json:"root"`
	Note string           `json:"note"`
}

// CheckpointList is the body of GET /v1/audit/checkpoints. Complete is
// false when the member can serve only its newest checkpoint.
type CheckpointList struct {
	Checkpoints []Checkpoint `json:"checkpoints"`
	Complete    bool         `json:"complete"`
}

// ConsistencyProof is the body of GET /v1/audit/consistency: the RFC 6962
// consistency proof between the trees of sizes From and To.
type ConsistencyProof struct {
	From  uint64   `json:"from"`
	To    uint64   `json:"to"`
	Proof [][]byte `json:"proof"`
}

// MaxLeavesPage is the most leaves one GET /v1/audit/leaves returns.
const MaxLeavesPage = 1000

// LeafPage is the body of GET /v1/audit/leaves: the encoded leaves with
// indexes [Start, Start+len(Leaves)) and the log's size when served.
type LeafPage struct {
	Start  uint64   `json:"start"`
	Size   uint64   `json:"size"`
	Leaves [][]byte `json:"leaves"`
}

// SimulateRequest is the body of POST /v1/simulate. Field names follow
// the sim flags and MFN_MODEL.md; an omitted field takes its
// sim.DefaultConfig value. Boundary is periodic, neumann or dirichlet.
type SimulateRequest struct {
	GridSize         *int     `json:"grid_size"`
	Steps            *int     `json:"steps"`
	Alpha            *float64 `json:"alpha"`
	SpikeProbability *float64 `json:"spike_probability"`
	TuringEnabled    *bool    `json:"turing_enabled"`
	TuringThreshold  *float64 `json:"turing_threshold"`
	QuantumJitter    *bool    `json:"quantum_jitter"`
	JitterVar        *float64 `json:"jitter_var"`
	Da               *float64 `json:"da"`
	Di               *float64 `json:"di"`
	Ra               *float64 `json:"ra"`
	Ri               *float64 `json:"ri"`
	Boundary         *string  `json:"boundary"`
	Seed             *int64   `json:"seed"`
}

// SimulateResponse is the body of a successful POST /v1/simulate.
type SimulateResponse struct {
	GridSize int `json:"grid_size"`
	Steps    int `json:"steps"`
	// Features maps each of the 18 feature names to its value, and
	// FeatureVector lists them in sim.FeatureNames order.
	Features      map[string]float64 `json:"features"`
	FeatureVector []float64          `json:"feature_vector"`
	Metrics       SimulateMetrics    `json:"metrics"`
	Lyapunov      float64            `json:"lyapunov"`
	// Field statistics of the final potential, in millivolts.
	FieldMinMV  float64 `json:"field_min_mv"`
	FieldMaxMV  float64 `json:"field_max_mv"`
	FieldMeanMV float64 `json:"field_mean_mv"`
}

// SimulateMetrics counts a simulation's events (sim.Metrics).
type SimulateMetrics struct {
	GrowthEvents      int `json:"growth_events"`
	TuringActivations int `json:"turing_activations"`
	ClampedCells      int `json:"clamped_cells"`
}

// NernstRequest is the body of POST /v1/nernst: valence z (−2, −1, 1 or
// 2), concentrations in mol/L, temperature in kelvin (omitted: 310 K).
type NernstRequest struct {
	Z           *int     `json:"z"`
	COut        *float64 `json:"c_out"`
	CIn         *float64 `json:"c_in"`
	Temperature *float64 `json:"temperature"`
}

// NernstResponse is the equilibrium potential in millivolts and volts.
type NernstResponse struct {
	PotentialMV float64 `json:"potential_mv"`
	PotentialV  float64 `json:"potential_v"`
}
