package coordinator

import (
	"context"
	"crypto/ed25519"
	"math"
	"time"

	"github.com/mfn/mfn/aggregate"
)

// KeyLookup returns the Ed25519 key of an enrolled, non-revoked node, or an
// error wrapping ErrUnknownNode or ErrRevoked.
type KeyLookup func(nodeID string) (ed25519.PublicKey, error)

// Envelope is an opened, verified update envelope.
type Envelope struct {
	// The signed statement's fields.
	Origin     string
	Job        string
	Round      uint64
	Node       string
	BaseHash   Hash
	UpdateHash Hash
	Samples    uint64
	Time       time.Time
	// Statement is the signed statement's encoding and Signature the
	// node's Ed25519 signature over it; both go into the audit leaf.
	Statement []byte
	Signature []byte
	// Update is the decoded update (a delta to the base model).
	Update []float64
}

// Opener opens sealed update envelopes with the coordinator's private
// identity. Open must verify the node's signature with the key returned by
// keys for the statement's node, check that the update's hash equals the
// statement's UpdateHash, reject non-finite values and oversize input, and
// never panic on hostile bytes. Errors from keys are wrapped (%w).
type Opener interface {
	Open(sealed []byte, keys KeyLookup) (*Envelope, error)
}

// RuleFactory builds the aggregation rule a job names.
type RuleFactory func(spec RuleSpec) (aggregate.Rule, error)

// Evaluator measures a model's accuracy on a task's held-out data. It
// returns ok=false when the task has no held-out data. An Evaluator that
// also implements JobEvaluator (evaluation.go) gives the loss too and is
// called with the job's whole spec instead.
type Evaluator interface {
	Evaluate(task string, model []float64) (accuracy float64, ok bool, err error)
}

// Announcement tells nodes that a round is open.
type Announcement struct {
	Job   string `json:"job"`
	Round uint64 `json:"round"`
	Task  string `json:"task"`
	Dim   int    `json:"dim"`
	// Shape is the job's model shape (JobSpec.Shape, layer sizes from
	// input to output), nil when the job names none.
	Shape       []int     `json:"shape,omitempty"`
	BaseVersion uint64    `json:"base_version"`
	BaseHash    Hash      `json:"base_hash"`
	Deadline    time.Time `json:"deadline"`
	// HardDeadline is when the round fails unless it holds MinUpdates;
	// the round stays open, and its announcement current, until then (or
	// until it closes earlier, see Retracter).
	HardDeadline time.Time `json:"hard_deadline"`
	MinUpdates   int       `json:"min_updates"`
	MaxUpdates   int       `json:"max_updates"`
	// DP is a DP job's privacy.Announced encoding ("" without DP), sent
	// as the "dp" metadata: in local mode nodes privatize with it.
	DP string `json:"dp,omitempty"`
	// Nodes, when not nil, are the only nodes to tell: the public keys of
	// a sampled round's nodes (dp.sample_rate < 1). Never serialised: who
	// was sampled is not for the other nodes to see.
	Nodes []ed25519.PublicKey `json:"-"`
	// Schema is the job's DataSchema.Encode ("" without a schema), sent
	// as the "schema" metadata: nodes check their data against it.
	Schema string `json:"schema,omitempty"`
	// Eval marks the announcement of a completed job's final model for
	// cross-site evaluation (crosssite.go), sent as "eval"="final".
	Eval bool `json:"eval,omitempty"`
}

// Announcer pushes round announcements to the connected nodes (the QUIC
// server's broadcast). It must not block for long.
type Announcer interface {
	Announce(a Announcement)
}

// Retracter is implemented by Announcers that remember announcements for
// nodes that connect later: the leader calls Retract when a round closes
// or fails, so that the round is no longer offered.
type Retracter interface {
	Retract(job string, round uint64)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Prober checks, before a member becomes a voter, that the leader reaches
// it: Probe connects to the Raft address addr, completes the transport's
// handshake, and fails unless the peer proves it holds key. It must
// return by ctx's deadline.
type Prober interface {
	Probe(ctx context.Context, addr string, key ed25519.PublicKey) error
}

// Identifier is an optional ability of a Prober: Identify connects to a
// Raft address and returns the member there: the key it proves it holds
// (one the transport trusts) and, when it tells them, its id and QUIC and
// HTTP addresses (empty otherwise). A leader uses it to record voters that
// never registered themselves (bootstrapped members that have not led),
// so that Status lists every member's addresses and key.
type Identifier interface {
	Identify(ctx context.Context, addr string) (Member, error)
}
