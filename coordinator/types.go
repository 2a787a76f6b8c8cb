package coordinator

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/privacy"
	"github.com/mfn/mfn/serveropt"
)

// Hash is a SHA-256 digest. It encodes as lowercase hex in JSON.
type Hash [32]byte

// String returns the hash in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zeros (no hash).
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText encodes h as hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("coordinator: hash must be 64 hex digits, got %d", len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// Params is a flat float64 parameter vector (a model, or a delta). In JSON
// it is the base64 of its little-endian IEEE-754 bytes: exact, compact and
// canonical, unlike decimal floats.
type Params []float64

// Bytes returns the raw little-endian float64 encoding of p.
func (p Params) Bytes() []byte {
	b := make([]byte, 8*len(p))
	for i, v := range p {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	}
	return b
}

// MarshalJSON encodes p as a base64 string.
func (p Params) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.StdEncoding.EncodeToString(p.Bytes()))
}

// UnmarshalJSON decodes the base64 form written by MarshalJSON.
func (p *Params) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("coordinator: params: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("coordinator: params: %w", err)
	}
	if len(raw)%8 != 0 {
		return fmt.Errorf("coordinator: params: %d bytes is not a whole number of float64", len(raw))
	}
	out := make(Params, len(raw)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	*p = out
	return nil
}

// ModelBytes is the wire form of a model: crypto's update encoding of the
// parameters as float64 (header with dtype and length, then little-endian
// values), which nodes fetch and decode with crypto.DecodeUpdate.
func ModelBytes(p Params) []byte { return crypto.EncodeUpdate(p, crypto.Float64) }

// ModelHash is the hash of a model: SHA-256 of ModelBytes. Nodes check
// fetched models against it and sign it as their statement's base-model
// hash. The bytes are hashed as they are encoded, 64 KiB at a time (a
// model of 25 M values would otherwise be encoded whole, 200 MB, on every
// replica at every close).
func ModelHash(p Params) Hash {
	h := sha256.New()
	var hdr [crypto.UpdateHeaderLen]byte
	copy(hdr[:], crypto.UpdateMagic)
	hdr[4] = crypto.UpdateVersion
	hdr[5] = byte(crypto.Float64)
	binary.LittleEndian.PutUint64(hdr[6:], uint64(len(p)))
	h.Write(hdr[:])
	buf := make([]byte, 0, 64<<10)
	for _, v := range p {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
		if len(buf) == cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	return Hash(h.Sum(nil))
}

// Duration is a time.Duration that encodes in JSON as a Go duration string
// ("30s") and decodes only from one: a bare number is refused, because
// integer nanoseconds ("round_deadline": 60 meaning 60 ns) are a trap.
type Duration time.Duration

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts a duration string such as "1m30s". Anything else
// is a *json.UnmarshalTypeError, which encoding/json completes with the
// field's name.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		kind := "value"
		if len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
			kind = "number"
		}
		return &json.UnmarshalTypeError{Value: kind + ` (a duration is a string such as "30s")`, Type: reflect.TypeFor[Duration]()}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("coordinator: duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Member is one coordinator of the cluster as the replicated state knows
// it. The leader registers its own addresses when it takes office, and a
// joining member's addresses are registered by AddVoter, so the state can
// always say where the current leader is reachable.
type Member struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	QUICAddr  string `json:"quic_addr,omitempty"`
	HTTPAddr  string `json:"http_addr,omitempty"`
	PublicKey []byte `json:"public_key,omitempty"` // Ed25519, 32 bytes
}

// Node is an enrolled edge node.
type Node struct {
	ID         string    `json:"id"`
	PublicKey  []byte    `json:"public_key"` // Ed25519, 32 bytes
	EnrolledAt time.Time `json:"enrolled_at"`
	Revoked    bool      `json:"revoked"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// OnFailure says what a job does when one of its rounds fails.
type OnFailure string

// The job failure policies.
const (
	OnFailureContinue OnFailure = "continue" // open the next round
	OnFailureStop     OnFailure = "stop"     // stop the job (state failed)
)

// RuleSpec names an aggregation rule and its parameters, as
// aggregate.New takes them (see aggregate.Params for each field's meaning
// and zero-value default). The rule is built when a round closes.
type RuleSpec struct {
	// Name is the rule or pipeline name ("fedavg", "krum", "nnm+krum", ...).
	Name       string  `json:"name"`
	F          int     `json:"f,omitempty"`
	M          int     `json:"m,omitempty"`
	Tau        float64 `json:"tau,omitempty"`
	Iters      int     `json:"iters,omitempty"`
	Nu         float64 `json:"nu,omitempty"`
	Tol        float64 `json:"tol,omitempty"`
	BucketSize int     `json:"bucket_size,omitempty"`
	ClipNorm   float64 `json:"clip_norm,omitempty"`
	Clusters   int     `json:"clusters,omitempty"`
	Fraction   float64 `json:"fraction,omitempty"`
	Seed       uint64  `json:"seed,omitempty"`
}

// Params returns the spec's aggregate.Params.
func (r RuleSpec) Params() aggregate.Params {
	return aggregate.Params{F: r.F, M: r.M, Tau: r.Tau, Iters: r.Iters, Nu: r.Nu, Tol: r.Tol,
		BucketSize: r.BucketSize, ClipNorm: r.ClipNorm, Clusters: r.Clusters, Fraction: r.Fraction, Seed: r.Seed}
}

// DefaultRules builds rules with aggregate.New (pipelines like
// "nnm+bucketing+krum" included).
func DefaultRules(spec RuleSpec) (aggregate.Rule, error) {
	return aggregate.New(spec.Name, spec.Params())
}

// JobSpec is what an operator gives to create a training job.
type JobSpec struct {
	// ID names the job; unique in the cluster, 1–64 characters of
	// [A-Za-z0-9._-].
	ID string `json:"id"`
	// Task names the learning task (e.g. "mfn-regime"); the Evaluator
	// receives it.
	Task string `json:"task"`
	// Dim is the number of model parameters; every update must have it.
	Dim int `json:"dim"`
	// Shape optionally describes the model's layer shape (informative).
	Shape []int `json:"shape,omitempty"`
	// Rule is the aggregation rule.
	Rule RuleSpec `json:"rule"`
	// Rounds is the number of successful rounds to run (≥ 1).
	Rounds int `json:"rounds"`
	// MinUpdates is the number of updates a round needs to close once its
	// deadline has passed (≥ 1); MaxUpdates closes it at once (≥ MinUpdates).
	MinUpdates int `json:"min_updates"`
	MaxUpdates int `json:"max_updates"`
	// RoundDeadline is the soft deadline of each round, after which the
	// round closes as soon as it holds MinUpdates.
	RoundDeadline Duration `json:"round_deadline"`
	// HardDeadline (≥ RoundDeadline) is the time after which a round with
	// fewer than MinUpdates fails. Zero means 3 × RoundDeadline.
	HardDeadline Duration `json:"hard_deadline"`
	// OnFailure is the policy when a round fails; "" means continue.
	OnFailure OnFailure `json:"on_failure"`
	// MaxFailedRounds stops the job (state failed) after this many
	// consecutive failed rounds whatever OnFailure says, so a job nobody
	// serves does not fail rounds for ever; zero means
	// DefaultMaxFailedRounds (10), which CreateJob writes into the spec.
	MaxFailedRounds int `json:"max_failed_rounds,omitempty"`
	// InitialModel is model version 0; nil means Dim zeros.
	InitialModel Params `json:"initial_model,omitempty"`
	// DP, if set, makes the job differentially private at the client
	// level (DP-FedAvg): see privacy.Config and docs/PRIVACY.md. With DP
	// every update weighs the same (sample counts are ignored: a weight
	// per node would raise one node's sensitivity above the clip).
	DP *privacy.Config `json:"dp,omitempty"`
	// Optimizer, if set, is a server optimizer applied after the rule
	// (FedAvgM, FedAdam, FedYogi, FedAdagrad; package serveropt): the
	// model moves by its step on the round's aggregate instead of by the
	// aggregate. CreateJob stores it with its defaults filled in. Its
	// state is part of the replicated state (see optimizer.go).
	Optimizer *serveropt.Spec `json:"optimizer,omitempty"`
	// Schema, if set, declares the job's data (feature count or input
	// shape, class list, standardisation): nodes check their data against
	// it before taking part and map labels by its class list
	// (jobschema.go).
	Schema *DataSchema `json:"schema,omitempty"`
	// CrossSiteEval asks every node, once the job has completed, to
	// evaluate the final model on its held-out data and report it signed
	// (crosssite.go); the reports are recorded with the job.
	CrossSiteEval bool `json:"cross_site_eval,omitempty"`
}

// JobPrivacy is a DP job's privacy state, part of the replicated state:
// the parameters fixed at creation and the accountant, which composes one
// step (q, z) per closed round, and in local mode also per failed round
// that received updates (each update sent is a release to the
// coordinators). It is composed in Apply, so every replica holds the same
// events.
type JobPrivacy struct {
	Mode privacy.Mode `json:"mode"`
	// NoiseMultiplier is z for every round (dp.noise_multiplier, or the z
	// the leader solved from dp.target_epsilon over the job's rounds when
	// it created the job).
	NoiseMultiplier float64 `json:"noise_multiplier"`
	// Clip is the L2 clipping norm C; with dp.adaptive_clip, the clip of
	// the next round, moved by every close-round entry (ClipStep).
	Clip float64 `json:"clip"`
	// SampleRate is q per round (dp.sample_rate, default 1): with q < 1
	// each round is announced to a Poisson sample of the enrolled nodes
	// (Round.Sample) and the accountant composes the sampled Gaussian
	// mechanism at q.
	SampleRate float64 `json:"sample_rate"`
	Delta      float64 `json:"delta"`
	// MaxEpsilon is the limit no round may take ε above (dp.max_epsilon,
	// else dp.target_epsilon); 0 means no limit.
	MaxEpsilon float64 `json:"max_epsilon,omitempty"`
	// Accountant holds the composed steps.
	Accountant *privacy.Accountant `json:"accountant"`
	// EpsilonSpent is ε after the composed steps at Delta. It is computed
	// when the job is read, from the accountant, and is not part of the
	// replicated state (ε is a float function of the events; only the
	// events are replicated).
	EpsilonSpent float64 `json:"epsilon_spent,omitempty"`
	// Secret is a central DP job's noise secret, shown once the job has
	// ended so that an auditor can re-derive every round's noise
	// (privacy.DeriveSeed(secret, job, round)) and check each result; nil
	// while the job runs. Like EpsilonSpent it is filled in when the job is
	// read.
	Secret []byte `json:"secret,omitempty"`
}

// JobState is the lifecycle state of a job.
type JobState string

// Job states.
const (
	JobRunning   JobState = "running"
	JobCompleted JobState = "completed" // all rounds succeeded
	JobStopped   JobState = "stopped"   // stopped by an operator
	JobFailed    JobState = "failed"    // a round failed under OnFailure=stop, or MaxFailedRounds in a row
	JobArchived  JobState = "archived"  // ended and its models' parameters freed (hashes kept)
)

// Job is a training job and its progress.
type Job struct {
	Spec      JobSpec   `json:"spec"`
	State     JobState  `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	// Reason explains a stopped or failed state.
	Reason string `json:"reason,omitempty"`
	// Rounds is the number of rounds opened so far (the last one's number).
	Rounds uint64 `json:"rounds"`
	// Completed counts successful rounds, Failed failed ones, and
	// FailedInARow the failed rounds since the last successful one.
	Completed    uint64 `json:"completed"`
	Failed       uint64 `json:"failed"`
	FailedInARow uint64 `json:"failed_in_a_row,omitempty"`
	// ModelVersion is the latest model version (0 = initial model) and
	// ModelHash its hash.
	ModelVersion uint64 `json:"model_version"`
	ModelHash    Hash   `json:"model_hash"`
	// Privacy is the privacy state of a job with a dp block, nil otherwise.
	Privacy *JobPrivacy `json:"privacy,omitempty"`

	// opt is the server optimizer's state (jobState.Optimizer), nil
	// before the first round or without optimizer. A State is never
	// changed in place, so copies of a Job may share it.
	opt *serveropt.State
}

// RoundState is the lifecycle state of a round.
type RoundState string

// Round states. A round goes open → closing → closed, or open/closing →
// failed. Closing means no more updates are accepted and the leader is
// aggregating; a new leader finishes a closing round.
const (
	RoundOpen    RoundState = "open"
	RoundClosing RoundState = "closing"
	RoundClosed  RoundState = "closed"
	RoundFailed  RoundState = "failed"
)

// Update is one accepted update as the replicated state records it.
type Update struct {
	Node       string    `json:"node"`
	UpdateHash Hash      `json:"update_hash"`
	Samples    uint64    `json:"samples"`
	AcceptedAt time.Time `json:"accepted_at"`
	// LogIndex is the Raft index of the entry that accepted it, LeafIndex
	// its audit log leaf: together the acknowledgement.
	LogIndex  uint64 `json:"log_index"`
	LeafIndex uint64 `json:"leaf_index"`
	// Used, Reason and Score are set when the round closes: whether the
	// rule used the update, why not, and the rule's score for it.
	Used   bool     `json:"used"`
	Reason string   `json:"reason,omitempty"`
	Score  *float64 `json:"score,omitempty"`
	// TrainLoss, HoldoutAccuracy and HoldoutSamples are the round metrics
	// the node signed in its statement (version 2; nil/0 before, and
	// HoldoutAccuracy nil without a held-out split): see roundmetrics.go.
	TrainLoss       *float64 `json:"train_loss,omitempty"`
	HoldoutAccuracy *float64 `json:"holdout_accuracy,omitempty"`
	HoldoutSamples  uint64   `json:"holdout_samples,omitempty"`
	// Sealed is the sealed envelope; kept only while the round is open or
	// closing (it is dropped when the round ends).
	Sealed []byte `json:"sealed,omitempty"`
	// Body names the sealed envelope of a streamed update, committed as
	// blob chunks and kept in the member's blob file (blob.go) until the
	// round ends; Sealed is then nil. Nil for a framed update.
	Body *BlobRef `json:"body,omitempty"`
}

// Round is one training round of a job.
type Round struct {
	Job          string     `json:"job"`
	Number       uint64     `json:"number"`
	State        RoundState `json:"state"`
	BaseVersion  uint64     `json:"base_version"`
	BaseHash     Hash       `json:"base_hash"`
	OpenedAt     time.Time  `json:"opened_at"`
	Deadline     time.Time  `json:"deadline"`
	HardDeadline time.Time  `json:"hard_deadline"`
	Updates      []Update   `json:"updates"`
	// SampleSeed, Sample and Population are set for a job with node
	// sampling (dp.sample_rate < 1): the round's sample seed
	// (privacy.SampleSeed of the job's secret, job, round and base hash),
	// the sorted ids of the enrolled nodes it sampled, and how many nodes
	// were enrolled (not revoked) when the round opened. Only sampled
	// nodes may submit (ErrNotSampled).
	SampleSeed *Hash    `json:"sample_seed,omitempty"`
	Sample     []string `json:"sample,omitempty"`
	Population int      `json:"population,omitempty"`
	// Clip is the clipping norm of a round of a job with adaptive
	// clipping (the job's clip when the round opened); 0 otherwise.
	Clip float64 `json:"clip,omitempty"`
	// ClipStep is the adaptive clipping step its close-round entry
	// recorded; nil otherwise.
	ClipStep *ClipStep `json:"clip_step,omitempty"`
	// EndedAt is when the round was closed or failed (leader's clock).
	EndedAt time.Time `json:"ended_at,omitzero"`
	// Result is set for a closed round, FailReason for a failed one.
	Result     *RoundResult `json:"result,omitempty"`
	FailReason string       `json:"fail_reason,omitempty"`
	// Attested lists, in commit order, the members that re-derived the
	// round's result leaf and cosigned a checkpoint covering it;
	// Dissents the members whose re-derivation differed (see attest.go).
	Attested []string  `json:"attested,omitempty"`
	Dissents []Dissent `json:"dissents,omitempty"`
	// Attest is set when the round was sealed for the strong form: it
	// closes only with a quorum of matching Derivations (the members'
	// signed results of re-deriving it between seal and close, in commit
	// order; attest_quorum.go).
	Attest      bool         `json:"attest,omitempty"`
	Derivations []Derivation `json:"derivations,omitempty"`
}

// ClipStep is one round's adaptive clipping step (Andrew et al. 2021):
// the noisy fraction of updates whose norm was within the round's clip,
// and the clip of the next round, Clip·exp(−η·(Fraction − γ)).
type ClipStep struct {
	Fraction float64 `json:"fraction"`
	Next     float64 `json:"next"`
}

// RoundResult is what a closed round produced.
type RoundResult struct {
	ModelVersion uint64 `json:"model_version"`
	ModelHash    Hash   `json:"model_hash"`
	Rule         string `json:"rule"`
	Used         int    `json:"used"`
	Rejected     int    `json:"rejected"`
	// Accuracy is the new model's held-out accuracy, nil without an
	// Evaluator for the job's task.
	Accuracy *float64 `json:"accuracy,omitempty"`
	// EvalLoss is the new model's mean cross-entropy on the Evaluator's
	// data, nil when the Evaluator gives none (see JobEvaluator).
	EvalLoss *float64 `json:"eval_loss,omitempty"`
	// TrainLoss and HoldoutAccuracy are the sample-weighted means of the
	// metrics the used updates' nodes signed (train loss weighted by
	// training samples, held-out accuracy by held-out samples), computed
	// when the round closes (in Apply, so every replica agrees); nil when
	// no used update carries them.
	TrainLoss       *float64 `json:"train_loss,omitempty"`
	HoldoutAccuracy *float64 `json:"holdout_accuracy,omitempty"`
	// AggregationSeconds is how long the leader spent aggregating.
	AggregationSeconds float64 `json:"aggregation_seconds"`
	// ResultLeaf is the index of the round's result leaf in the audit
	// log (audit.ResultLeaf), nil when the round was closed without one.
	ResultLeaf *uint64 `json:"result_leaf,omitempty"`
}

// Ack acknowledges an accepted update: the Raft index of the entry that
// committed it and its leaf index in the audit log.
type Ack struct {
	Job       string `json:"job"`
	Round     uint64 `json:"round"`
	Node      string `json:"node"`
	LogIndex  uint64 `json:"log_index"`
	LeafIndex uint64 `json:"leaf_index"`
}

// Model is one model version of a job.
type Model struct {
	Job     string `json:"job"`
	Version uint64 `json:"version"`
	Hash    Hash   `json:"hash"`
	// Round is the round that produced it (0 for the initial model).
	Round  uint64 `json:"round"`
	Params Params `json:"params,omitempty"`
}

// Checkpoint is a signed audit log checkpoint committed by a leader.
type Checkpoint struct {
	Size uint64 `json:"size"`
	Root Hash   `json:"root"`
	// Note is the signed note (C2SP tlog-checkpoint text plus signatures).
	Note []byte `json:"note"`
}
