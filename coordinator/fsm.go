package coordinator

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/mod/sumdb/note"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/privacy"
	"github.com/mfn/mfn/serveropt"
)

// keepModels is how many model versions per job keep their parameters in
// the replicated state; older versions keep only their hash. Nodes only
// ever need the base of the open round (the latest version), and operators
// mostly the last few; 8 × a 1M-parameter model is 64 MiB per job.
const keepModels = 8

// keepModelBytes bounds the parameter bytes one job keeps beyond its
// latest two versions: a big job keeps fewer than keepModels versions
// (at d = 25,000,000, 200 MB each, two), never fewer than two (the
// latest and its base).
const keepModelBytes = 512 << 20

// modelsKept is how many model versions a job of dim keeps in memory.
func modelsKept(dim int) int {
	if dim <= 0 {
		return keepModels
	}
	return max(2, min(keepModels, keepModelBytes/(8*dim)))
}

// idPattern restricts ids of jobs, nodes and members: they appear in
// URLs, logs, file names and audit leaves.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func validID(kind, id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: %s id %q must be 1-64 characters of [A-Za-z0-9._-]", ErrInvalid, kind, id)
	}
	return nil
}

// Validate checks a job spec and returns an error naming the first bad
// field and its valid range.
func (s JobSpec) Validate() error {
	if err := validID("job", s.ID); err != nil {
		return err
	}
	switch {
	case s.Task == "":
		return fmt.Errorf("%w: job %s: task must not be empty", ErrInvalid, s.ID)
	case s.Dim < 1 || s.Dim > 1<<27:
		return fmt.Errorf("%w: job %s: dim %d must be in [1, 2^27]", ErrInvalid, s.ID, s.Dim)
	case s.Rule.Name == "":
		return fmt.Errorf("%w: job %s: rule.name must not be empty", ErrInvalid, s.ID)
	case s.Rule.F < 0:
		return fmt.Errorf("%w: job %s: rule.f %d must be ≥ 0", ErrInvalid, s.ID, s.Rule.F)
	case s.Rounds < 1 || s.Rounds > 1_000_000:
		return fmt.Errorf("%w: job %s: rounds %d must be in [1, 1000000]", ErrInvalid, s.ID, s.Rounds)
	case s.MinUpdates < 1:
		return fmt.Errorf("%w: job %s: min_updates %d must be ≥ 1", ErrInvalid, s.ID, s.MinUpdates)
	case s.MaxUpdates < s.MinUpdates || s.MaxUpdates > 100_000:
		return fmt.Errorf("%w: job %s: max_updates %d must be in [min_updates=%d, 100000]", ErrInvalid, s.ID, s.MaxUpdates, s.MinUpdates)
	case s.RoundDeadline <= 0:
		return fmt.Errorf("%w: job %s: round_deadline %v must be > 0", ErrInvalid, s.ID, time.Duration(s.RoundDeadline))
	case s.HardDeadline != 0 && s.HardDeadline < s.RoundDeadline:
		return fmt.Errorf("%w: job %s: hard_deadline %v must be 0 or ≥ round_deadline %v", ErrInvalid, s.ID, time.Duration(s.HardDeadline), time.Duration(s.RoundDeadline))
	case s.MaxFailedRounds < 0 || s.MaxFailedRounds > 1_000_000:
		return fmt.Errorf("%w: job %s: max_failed_rounds %d must be in [0, 1000000] (0 means the default, %d)", ErrInvalid, s.ID, s.MaxFailedRounds, DefaultMaxFailedRounds)
	case s.OnFailure != "" && s.OnFailure != OnFailureContinue && s.OnFailure != OnFailureStop:
		return fmt.Errorf("%w: job %s: on_failure %q must be \"continue\" or \"stop\"", ErrInvalid, s.ID, s.OnFailure)
	case s.InitialModel != nil && len(s.InitialModel) != s.Dim:
		return fmt.Errorf("%w: job %s: initial_model has %d values, dim is %d", ErrInvalid, s.ID, len(s.InitialModel), s.Dim)
	}
	for i, v := range s.InitialModel {
		if !finite(v) {
			return fmt.Errorf("%w: job %s: initial_model[%d] is %v", ErrInvalid, s.ID, i, v)
		}
	}
	for _, d := range s.Shape {
		if d < 1 {
			return fmt.Errorf("%w: job %s: shape entries must be ≥ 1", ErrInvalid, s.ID)
		}
	}
	if err := s.validateOptimizer(); err != nil {
		return err
	}
	if err := s.Schema.validate(s); err != nil { // jobschema.go
		return err
	}
	if s.DP != nil {
		if err := s.DP.Validate(); err != nil {
			return fmt.Errorf("%w: job %s: %v", ErrInvalid, s.ID, err)
		}
		switch {
		case s.DP.Mode == privacy.ModeCentral && s.Rule.Name != "fedavg":
			// One node can move a rule that compares updates (Krum,
			// median, trimmed mean, NNM, ...) by more than C/n, so the
			// noise would not cover it: privacy/DESIGN.md, "Robust rules
			// and DP".
			return fmt.Errorf("%w: job %s: dp.mode central needs rule.name fedavg (the noise covers a mean of clipped updates, not rule %q); use dp.mode local with robust rules", ErrInvalid, s.ID, s.Rule.Name)
		}
	}
	return nil
}

// dpSecretLen is the length of a DP job's secret.
const dpSecretLen = 32

// resolveDP returns the noise multiplier of a DP job (0 without DP):
// dp.noise_multiplier, or z solved from dp.target_epsilon over the job's
// rounds at q = dp.sample_rate; and, for central mode or node sampling
// (q < 1), a fresh random secret from which every round's noise seed
// (privacy.DeriveSeed) and node sample (privacy.SampleSeed) are derived.
// The leader calls it once, at creation, and both travel in the
// create-job entry; errors are ErrInvalid naming the field.
func resolveDP(s JobSpec) (z float64, secret []byte, err error) {
	if s.DP == nil {
		return 0, nil, nil
	}
	z, err = s.DP.Resolve(s.DP.Rate(), s.Rounds)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: job %s: %v", ErrInvalid, s.ID, err)
	}
	if needsSecret(s.DP) {
		secret = make([]byte, dpSecretLen)
		if _, err := rand.Read(secret); err != nil {
			return 0, nil, fmt.Errorf("coordinator: job %s: dp secret: %w", s.ID, err)
		}
	}
	return z, secret, nil
}

// needsSecret reports whether a DP job needs a secret: central noise or
// node sampling.
func needsSecret(c *privacy.Config) bool {
	return c.Mode == privacy.ModeCentral || c.Rate() < 1
}

// newJobPrivacy returns the privacy state of a new DP job (nil without DP).
func newJobPrivacy(s JobSpec, z float64) (*JobPrivacy, error) {
	if s.DP == nil {
		return nil, nil
	}
	if z == 0 {
		z = s.DP.NoiseMultiplier
	}
	if !(z > 0) || math.IsInf(z, 1) {
		return nil, fmt.Errorf("%w: job %s: dp.noise_multiplier %v must be finite and > 0", ErrInvalid, s.ID, z)
	}
	limit := s.DP.Limit()
	if math.IsInf(limit, 1) {
		limit = 0
	}
	if a := s.DP.AdaptiveClip; a != nil {
		if _, err := privacy.UpdateNoiseMultiplier(z, a.CountNoise); err != nil {
			return nil, fmt.Errorf("%w: job %s: dp.adaptive_clip.count_noise: %v", ErrInvalid, s.ID, err)
		}
	}
	return &JobPrivacy{Mode: s.DP.Mode, NoiseMultiplier: z, Clip: s.DP.Clip, SampleRate: s.DP.Rate(),
		Delta: s.DP.Delta, MaxEpsilon: limit, Accountant: new(privacy.Accountant)}, nil
}

// hardDeadline returns the effective hard deadline duration.
func (s JobSpec) hardDeadline() time.Duration {
	if s.HardDeadline == 0 {
		if d := time.Duration(s.RoundDeadline); d <= math.MaxInt64/3 {
			return 3 * d
		}
		return math.MaxInt64 // 3 × a deadline of over 97 years overflows
	}
	return time.Duration(s.HardDeadline)
}

type modelVersion struct {
	Version uint64 `json:"version"`
	Hash    Hash   `json:"hash"`
	Round   uint64 `json:"round"`
	Params  Params `json:"params,omitempty"` // nil once pruned
}

type jobState struct {
	Job    Job            `json:"job"`
	Rounds []*Round       `json:"rounds"`
	Models []modelVersion `json:"models"`
	// DPSecret is a central DP job's noise secret (see resolveDP): in the
	// replicated state so every member can re-derive each round's noise;
	// shown with the job only once it has ended (JobPrivacy.Secret).
	DPSecret []byte `json:"dp_secret,omitempty"`
	// Optimizer is the state of the job's server optimizer (see
	// optimizer.go), nil before its first closed round or without one.
	Optimizer *serveropt.State `json:"optimizer,omitempty"`
	// CrossSite holds the nodes' signed evaluations of the final model of
	// a job with cross_site_eval (crosssite.go), in commit order.
	CrossSite []SiteEvaluation `json:"cross_site,omitempty"`

	byNode map[uint64]map[string]int // round → node → index in Updates (rebuilt on restore)
}

// pruneModels drops the parameters of all but the newest keep model
// versions (hashes stay): an ended job needs at most its final model, an
// archived one none.
func (j *jobState) pruneModels(keep int) {
	j.dropOptimizer() // an ended job needs no optimizer state (optimizer.go)
	for i := range max(len(j.Models)-keep, 0) {
		j.Models[i].Params = nil
	}
}

func (j *jobState) round(n uint64) *Round {
	if n == 0 || n > uint64(len(j.Rounds)) {
		return nil
	}
	return j.Rounds[n-1]
}

func (j *jobState) nodeIndex(round uint64) map[string]int {
	if j.byNode == nil {
		j.byNode = map[uint64]map[string]int{}
	}
	m := j.byNode[round]
	if m == nil {
		m = map[string]int{}
		if r := j.round(round); r != nil {
			for i, u := range r.Updates {
				m[u.Node] = i
			}
		}
		j.byNode[round] = m
	}
	return m
}

// applyResult is what fsm.Apply returns through raft's ApplyFuture.
type applyResult struct {
	err  error
	ack  Ack        // cmdAddUpdate
	cp   Checkpoint // cmdCheckpoint
	sent []Event    // events produced (for tests; also published)
	// attest is the closed round to re-derive (cmdCloseRound with a
	// result leaf), handed to the member's attester outside the lock.
	attest *attestTask
}

// fsm is the coordinator's replicated state machine. Apply is called by
// raft on one goroutine; readers take the read lock.
type fsm struct {
	origin string

	verifier note.Verifier

	mu      sync.RWMutex
	members map[string]*Member
	nodes   map[string]*Node
	// nodeKeys maps every enrolled key (revoked ones included) to the one
	// node id holding it: a key speaks for one node only, and a revoked
	// key never comes back under another id.
	nodeKeys map[string]string
	// removedKeys maps the keys of removed members to their id: no member
	// trusts them any more (even if a static --peer-keys list names them)
	// until an operator admits the member again.
	removedKeys map[string]string
	jobs        map[string]*jobState
	// deletedJobs holds the ids of deleted jobs: never reused, since
	// audit leaves name them.
	deletedJobs map[string]bool
	log         *audit.Log
	applied     uint64

	// publish receives the events of each applied command, outside the lock.
	publish func([]Event)
	// restored, if set, runs after Restore replaced the state (no events
	// are published for it).
	restored func()
	// attest, if set, receives every round closed with a result leaf,
	// outside the lock (the member's attester; local, not replicated).
	attest func(*attestTask)

	// parts are the blobs whose chunks are arriving (blob.go;
	// replicated: rebuilt by replay and restored from snapshots);
	// blobs is the member's blob directory (local).
	parts map[Hash]*blobPart
	blobs *blobStore
}

// newFSM returns an empty state machine for the cluster origin; verifier
// is the log key's verifier, which checkpoints must verify under.
func newFSM(origin string, verifier note.Verifier, publish func([]Event)) (*fsm, error) {
	log, err := audit.NewLog(origin, verifier)
	if err != nil {
		return nil, fmt.Errorf("coordinator: audit log: %w", err)
	}
	return &fsm{
		origin:      origin,
		verifier:    verifier,
		members:     map[string]*Member{},
		nodes:       map[string]*Node{},
		nodeKeys:    map[string]string{},
		removedKeys: map[string]string{},
		deletedJobs: map[string]bool{},
		jobs:        map[string]*jobState{},
		log:         log,
		publish:     publish,
		parts:       map[Hash]*blobPart{},
	}, nil
}

var _ raft.FSM = (*fsm)(nil)

// Apply applies one committed entry. Rejections are deterministic (they
// depend only on the state and the entry) and are returned, not panicked.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	t, body, err := decodeCommand(l.Data)
	if err != nil {
		return &applyResult{err: err}
	}
	f.mu.Lock()
	res := f.apply(l.Index, t, body)
	f.applied = l.Index
	f.mu.Unlock()
	if f.publish != nil && len(res.sent) > 0 {
		f.publish(res.sent)
	}
	if res.attest != nil && f.attest != nil {
		f.attest(res.attest)
	}
	return res
}

func (f *fsm) apply(index uint64, t commandType, body any) *applyResult {
	res := &applyResult{}
	ev := func(e Event) {
		e.Index = index
		res.sent = append(res.sent, e)
	}
	switch c := body.(type) {
	case *registerMemberCmd:
		if err := validID("member", c.Member.ID); err != nil {
			res.err = err
			break
		}
		m := c.Member
		m.PublicKey = bytes.Clone(m.PublicKey)
		f.members[m.ID] = &m
		delete(f.removedKeys, string(m.PublicKey)) // an operator admitted it again
		ev(Event{Kind: EventMemberRegistered, Member: m.ID})
	case *removeMemberCmd:
		m, ok := f.members[c.ID]
		if !ok {
			res.err = fmt.Errorf("%w: member %s", ErrNotFound, c.ID)
			break
		}
		delete(f.members, c.ID)
		if len(m.PublicKey) == ed25519.PublicKeySize {
			f.removedKeys[string(m.PublicKey)] = c.ID
		}
		ev(Event{Kind: EventMemberRemoved, Member: c.ID})
	case *enrollNodeCmd:
		if err := validID("node", c.ID); err != nil {
			res.err = err
			break
		}
		if len(c.PublicKey) != ed25519.PublicKeySize {
			res.err = fmt.Errorf("%w: node %s: public key has %d bytes, want %d", ErrInvalid, c.ID, len(c.PublicKey), ed25519.PublicKeySize)
			break
		}
		n, exists := f.nodes[c.ID]
		holder, held := f.nodeKeys[string(c.PublicKey)]
		switch {
		case exists && bytes.Equal(n.PublicKey, c.PublicKey) && !n.Revoked:
			// same id and key again: idempotent
		case held && c.KeyUnique:
			res.err = &KeyInUseError{Node: c.ID, Holder: holder, Revoked: f.nodes[holder].Revoked}
		case exists:
			res.err = fmt.Errorf("%w: node %s is enrolled with another key, or revoked", ErrExists, c.ID)
		default:
			// Without KeyUnique (entries written before keys were unique)
			// a key may be enrolled twice; the index keeps its first
			// holder, so old logs replay as they applied.
			f.nodes[c.ID] = &Node{ID: c.ID, PublicKey: bytes.Clone(c.PublicKey), EnrolledAt: c.At}
			if !held {
				f.nodeKeys[string(c.PublicKey)] = c.ID
			}
			ev(Event{Kind: EventNodeEnrolled, Node: c.ID, At: c.At})
		}
	case *revokeNodeCmd:
		n, ok := f.nodes[c.ID]
		if !ok {
			res.err = fmt.Errorf("%w: node %s", ErrNotFound, c.ID)
			break
		}
		if !n.Revoked {
			n.Revoked, n.RevokedAt = true, c.At
			ev(Event{Kind: EventNodeRevoked, Node: c.ID, At: c.At})
		}
	case *createJobCmd:
		res.err = f.createJob(c, ev)
	case *stopJobCmd:
		res.err = f.stopJob(c, ev)
	case *openRoundCmd:
		res.err = f.openRound(c, ev)
	case *addUpdateCmd:
		res.ack, res.err = f.addUpdate(index, c, ev)
	case *sealRoundCmd:
		res.attest, res.err = f.sealRound(c, ev)
	case *closeRoundCmd:
		res.attest, res.err = f.closeRound(c, ev)
	case *Attestation:
		res.err = f.applyAttestation(c, ev)
	case *failRoundCmd:
		res.err = f.failRound(c.Job, c.Round, c.Reason, c.At, ev)
	case *checkpointCmd:
		res.cp, res.err = f.checkpoint(c, ev)
	case *deleteJobCmd:
		res.err = f.deleteJob(c, ev)
	case *evalReportCmd:
		res.ack, res.err = f.addEvalReport(index, c, ev) // crosssite.go
	case *blobChunkCmd:
		res.err = f.applyBlobChunk(c) // blob.go
	default:
		res.err = fmt.Errorf("%w: %v has no handler", ErrMalformedCommand, t)
	}
	return res
}

func (f *fsm) createJob(c *createJobCmd, ev func(Event)) error {
	if err := c.Spec.Validate(); err != nil {
		return err
	}
	if _, ok := f.jobs[c.Spec.ID]; ok {
		return fmt.Errorf("%w: job %s", ErrExists, c.Spec.ID)
	}
	if f.deletedJobs[c.Spec.ID] {
		return fmt.Errorf("%w: job %s was deleted; job ids are not reused (audit leaves name them)", ErrExists, c.Spec.ID)
	}
	spec := c.Spec
	model := spec.InitialModel
	if model == nil {
		model = make(Params, spec.Dim)
	}
	spec.InitialModel = nil // version 0 lives in Models
	priv, err := newJobPrivacy(spec, c.NoiseMultiplier)
	if err != nil {
		return err
	}
	var secret []byte
	if priv != nil && needsSecret(spec.DP) {
		if len(c.DPSecret) != dpSecretLen {
			return fmt.Errorf("%w: job %s: central DP and node sampling need a %d-byte secret, the entry has %d", ErrInvalid, spec.ID, dpSecretLen, len(c.DPSecret))
		}
		secret = slices.Clone(c.DPSecret)
	}
	h := ModelHash(model)
	f.jobs[spec.ID] = &jobState{
		Job:      Job{Spec: spec, State: JobRunning, CreatedAt: c.At, ModelHash: h, Privacy: priv},
		Models:   []modelVersion{{Version: 0, Hash: h, Params: slices.Clone(model)}},
		DPSecret: secret,
	}
	ev(Event{Kind: EventJobCreated, Job: spec.ID, At: c.At})
	return nil
}

func (f *fsm) stopJob(c *stopJobCmd, ev func(Event)) error {
	j, ok := f.jobs[c.ID]
	if !ok {
		return fmt.Errorf("%w: job %s", ErrNotFound, c.ID)
	}
	if j.Job.State != JobRunning {
		return nil // already ended: stopping is idempotent
	}
	if r := j.round(j.Job.Rounds); r != nil && (r.State == RoundOpen || r.State == RoundClosing) {
		reason := "job stopped"
		if c.Reason != "" {
			reason += ": " + c.Reason
		}
		f.endRound(j, r, RoundFailed, reason, c.At)
		j.Job.Failed++
		ev(Event{Kind: EventRoundFailed, Job: c.ID, Round: r.Number, Detail: reason, At: c.At})
	}
	j.Job.State, j.Job.Reason = JobStopped, c.Reason
	if c.Fail {
		j.Job.State = JobFailed
	}
	j.pruneModels(1)
	ev(Event{Kind: EventJobStopped, Job: c.ID, Detail: c.Reason, At: c.At})
	return nil
}

// deleteJob archives or deletes a job (see deleteJobCmd). A running job
// ends first, its open round failing with the reason.
func (f *fsm) deleteJob(c *deleteJobCmd, ev func(Event)) error {
	j, ok := f.jobs[c.ID]
	if !ok {
		if f.deletedJobs[c.ID] {
			return nil // deleting twice is idempotent
		}
		return fmt.Errorf("%w: job %s", ErrNotFound, c.ID)
	}
	what := "deleted"
	if c.Archive {
		what = "archived"
	}
	reason := "job " + what
	if c.Reason != "" {
		reason += ": " + c.Reason
	}
	if r := j.round(j.Job.Rounds); r != nil && (r.State == RoundOpen || r.State == RoundClosing) {
		f.endRound(j, r, RoundFailed, reason, c.At)
		j.Job.Failed++
		ev(Event{Kind: EventRoundFailed, Job: c.ID, Round: r.Number, Detail: reason, At: c.At})
	}
	f.endBlobs(c.ID, nil) // parts of any round of the job (blob.go)
	if !c.Archive {
		delete(f.jobs, c.ID)
		f.deletedJobs[c.ID] = true
		ev(Event{Kind: EventJobDeleted, Job: c.ID, Detail: c.Reason, At: c.At})
		return nil
	}
	if j.Job.State == JobArchived {
		return nil
	}
	j.Job.State, j.Job.Reason = JobArchived, c.Reason
	j.pruneModels(0)
	ev(Event{Kind: EventJobArchived, Job: c.ID, Detail: c.Reason, At: c.At})
	return nil
}

func (f *fsm) openRound(c *openRoundCmd, ev func(Event)) error {
	j, ok := f.jobs[c.Job]
	if !ok {
		return fmt.Errorf("%w: job %s", ErrNotFound, c.Job)
	}
	if j.Job.State != JobRunning {
		return fmt.Errorf("%w: job %s is %s", ErrStale, c.Job, j.Job.State)
	}
	if c.Round != j.Job.Rounds+1 {
		return fmt.Errorf("%w: job %s: open round %d, next is %d", ErrStale, c.Job, c.Round, j.Job.Rounds+1)
	}
	if c.BaseVersion != j.Job.ModelVersion || c.BaseHash != j.Job.ModelHash {
		return fmt.Errorf("%w: job %s round %d: base version %d, latest is %d", ErrStale, c.Job, c.Round, c.BaseVersion, j.Job.ModelVersion)
	}
	seed, sample, pop, err := f.checkOpenSample(j, c)
	if err != nil {
		return err
	}
	nr := &Round{
		Job: c.Job, Number: c.Round, State: RoundOpen,
		BaseVersion: c.BaseVersion, BaseHash: c.BaseHash,
		OpenedAt: c.OpenedAt, Deadline: c.Deadline, HardDeadline: c.HardDeadline,
		Updates:    []Update{},
		SampleSeed: seed, Sample: sample, Population: pop,
	}
	if j.adaptive() {
		nr.Clip = j.Job.Privacy.Clip
	}
	j.Rounds = append(j.Rounds, nr)
	j.Job.Rounds = c.Round
	ev(Event{Kind: EventRoundOpened, Job: c.Job, Round: c.Round, At: c.OpenedAt})
	return nil
}

// checkUpdate runs the state checks of an update (everything but the
// envelope's cryptography, which the leader checks before proposing).
// It returns the original ack when the node already has an update in the
// round.
func (f *fsm) checkUpdate(job string, round uint64, node string, base Hash) (*jobState, *Round, error) {
	n, ok := f.nodes[node]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrUnknownNode, node)
	}
	if n.Revoked {
		return nil, nil, fmt.Errorf("%w: %s", ErrRevoked, node)
	}
	j, ok := f.jobs[job]
	if !ok {
		return nil, nil, fmt.Errorf("%w: job %s", ErrNotFound, job)
	}
	r := j.round(round)
	if r == nil {
		if round > j.Job.Rounds && j.Job.State == JobRunning {
			return nil, nil, fmt.Errorf("%w: job %s round %d", ErrRoundNotOpen, job, round)
		}
		return nil, nil, fmt.Errorf("%w: job %s round %d", ErrRoundClosed, job, round)
	}
	if i, ok := j.nodeIndex(round)[node]; ok {
		u := r.Updates[i]
		return j, r, &DuplicateError{Original: Ack{Job: job, Round: round, Node: node, LogIndex: u.LogIndex, LeafIndex: u.LeafIndex}}
	}
	if r.State != RoundOpen {
		return nil, nil, fmt.Errorf("%w: job %s round %d is %s", ErrRoundClosed, job, round, r.State)
	}
	if err := checkSampled(j, r, node); err != nil {
		return nil, nil, err
	}
	if len(r.Updates) >= j.Job.Spec.MaxUpdates {
		return nil, nil, fmt.Errorf("%w: job %s round %d is full (%d updates)", ErrRoundClosed, job, round, len(r.Updates))
	}
	if base != r.BaseHash {
		return nil, nil, fmt.Errorf("%w: job %s round %d: update's base %s, round's base %s", ErrBaseMismatch, job, round, base, r.BaseHash)
	}
	return j, r, nil
}

// precheck runs checkUpdate for the ingest path (before proposing).
func (f *fsm) precheck(job string, round uint64, node string, base Hash) error {
	f.mu.Lock() // checkUpdate may build the per-round node index
	defer f.mu.Unlock()
	_, _, err := f.checkUpdate(job, round, node, base)
	return err
}

func (f *fsm) addUpdate(index uint64, c *addUpdateCmd, ev func(Event)) (Ack, error) {
	j, r, err := f.checkUpdate(c.Job, c.Round, c.Node, c.BaseHash)
	if err != nil {
		return Ack{}, err
	}
	if c.Body != nil {
		if len(c.Sealed) != 0 {
			return Ack{}, fmt.Errorf("%w: add-update with both a body and sealed bytes", ErrInvalid)
		}
		if err := f.checkBlob(*c.Body); err != nil {
			return Ack{}, err
		}
	}
	leaf, err := audit.NewLeaf(c.Statement, c.Signature, f.nodes[c.Node].PublicKey, c.AcceptedAt)
	if err != nil {
		return Ack{}, fmt.Errorf("%w: %v", ErrBadUpdate, err)
	}
	if leaf.JobID != c.Job || leaf.Round != c.Round || leaf.NodeID != c.Node || leaf.UpdateHash != c.UpdateHash {
		return Ack{}, fmt.Errorf("%w: statement does not match the entry (job %s round %d node %s)", ErrBadUpdate, c.Job, c.Round, c.Node)
	}
	// Only a leader writes this entry, after Opener verified the node's
	// signature over the statement with this same enrolled key (keys are
	// never replaced), so replicas append without a second Ed25519
	// verification; offline audits (VerifyLogDir, VerifyBundle) verify it.
	leafIndex, err := f.log.AppendTrusted(leaf)
	if err != nil {
		return Ack{}, fmt.Errorf("%w: %v", ErrBadUpdate, err)
	}
	u := Update{
		Node: c.Node, UpdateHash: c.UpdateHash, Samples: c.Samples, AcceptedAt: c.AcceptedAt,
		LogIndex: index, LeafIndex: leafIndex, Sealed: c.Sealed,
	}
	if c.Body != nil {
		ref := *c.Body
		u.Body, u.Sealed = &ref, nil
		f.acceptBlob(ref)
	}
	u.TrainLoss, u.HoldoutAccuracy, u.HoldoutSamples = statementMetrics(c.Statement) // roundmetrics.go
	r.Updates = append(r.Updates, u)
	j.nodeIndex(c.Round)[c.Node] = len(r.Updates) - 1
	ack := Ack{Job: c.Job, Round: c.Round, Node: c.Node, LogIndex: index, LeafIndex: leafIndex}
	ev(Event{Kind: EventUpdateAccepted, Job: c.Job, Round: c.Round, Node: c.Node, At: c.AcceptedAt})
	return ack, nil
}

func (f *fsm) sealRound(c *sealRoundCmd, ev func(Event)) (*attestTask, error) {
	j, ok := f.jobs[c.Job]
	if !ok {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, c.Job)
	}
	r := j.round(c.Round)
	if r == nil || r.State != RoundOpen {
		return nil, fmt.Errorf("%w: job %s round %d is not open", ErrStale, c.Job, c.Round)
	}
	r.State = RoundClosing
	ev(Event{Kind: EventRoundSealed, Job: c.Job, Round: c.Round, At: c.At})
	if !c.Attest {
		return nil, nil
	}
	r.Attest = true
	return f.pinTask(f.newSealTask(j, r), r), nil
}

func (f *fsm) closeRound(c *closeRoundCmd, ev func(Event)) (*attestTask, error) {
	j, ok := f.jobs[c.Job]
	if !ok {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, c.Job)
	}
	r := j.round(c.Round)
	if r != nil && r.State == RoundClosing {
		if err := f.resolveCloseBlobs(c); err != nil { // blob.go
			return nil, err
		}
	}
	nextOpt, err := f.optimizerStep(j, r, c)
	if err != nil {
		return nil, err
	}
	switch {
	case r == nil || r.State != RoundClosing:
		return nil, fmt.Errorf("%w: job %s round %d is not closing", ErrStale, c.Job, c.Round)
	case c.Updates != len(r.Updates) || len(c.Outcomes) != len(r.Updates):
		return nil, fmt.Errorf("%w: job %s round %d: result over %d updates, round has %d", ErrStale, c.Job, c.Round, c.Updates, len(r.Updates))
	case len(c.Model) != j.Job.Spec.Dim:
		return nil, fmt.Errorf("%w: job %s round %d: model has %d values, dim is %d", ErrInvalid, c.Job, c.Round, len(c.Model), j.Job.Spec.Dim)
	case c.Result.ModelVersion != j.Job.ModelVersion+1:
		return nil, fmt.Errorf("%w: job %s round %d: model version %d, next is %d", ErrStale, c.Job, c.Round, c.Result.ModelVersion, j.Job.ModelVersion+1)
	case c.Result.ModelHash != ModelHash(c.Model):
		return nil, fmt.Errorf("%w: job %s round %d: model hash does not match its parameters", ErrInvalid, c.Job, c.Round)
	}
	var result *audit.ResultLeaf
	if len(c.ResultLeaf) > 0 {
		var err error
		if result, err = f.checkResultLeaf(j, r, c); err != nil {
			return nil, err
		}
	}
	if r.Attest {
		if err := f.checkQuorum(r, c); err != nil {
			return nil, err
		}
	}
	if err := checkClipStep(j, c, result); err != nil {
		return nil, err
	}
	if p := j.Job.Privacy; p != nil {
		// The round's step is composed with its result, in the same entry
		// (on error nothing has changed).
		if err := p.Accountant.Compose(p.SampleRate, p.NoiseMultiplier, 1); err != nil {
			return nil, fmt.Errorf("%w: job %s round %d: privacy accountant: %v", ErrInvalid, c.Job, c.Round, err)
		}
		if c.ClipStep != nil {
			step := *c.ClipStep
			r.ClipStep, p.Clip = &step, step.Next
		}
	}
	for i := range r.Updates {
		o := c.Outcomes[i]
		r.Updates[i].Used, r.Updates[i].Reason, r.Updates[i].Score = o.Used, o.Reason, o.Score
	}
	res := c.Result
	res.TrainLoss, res.HoldoutAccuracy = aggregateRoundMetrics(r.Updates) // roundmetrics.go
	var task *attestTask
	if result != nil {
		idx, err := f.log.AppendResult(result)
		if err != nil {
			return nil, fmt.Errorf("%w: job %s round %d: result leaf: %v", ErrInvalid, c.Job, c.Round, err)
		}
		res.ResultLeaf = &idx
		task = f.pinTask(f.newAttestTask(j, r, idx, c.ResultLeaf), r)
	}
	r.Result = &res
	f.endRound(j, r, RoundClosed, "", c.At)
	model := c.Model
	if c.ModelBlob == nil && c.AggregateBlob == nil {
		model = slices.Clone(c.Model)
	}
	f.consumeCloseBlobs(c) // blob.go
	j.Models = append(j.Models, modelVersion{Version: res.ModelVersion, Hash: res.ModelHash, Round: c.Round, Params: model})
	if n := len(j.Models) - modelsKept(j.Job.Spec.Dim); n > 0 {
		j.Models[n-1].Params = nil // older ones went at earlier closes
	}
	j.Job.ModelVersion, j.Job.ModelHash = res.ModelVersion, res.ModelHash
	j.setOptimizer(nextOpt)
	j.Job.Completed++
	j.Job.FailedInARow = 0
	ev(Event{Kind: EventRoundClosed, Job: c.Job, Round: c.Round, At: c.At,
		Detail: fmt.Sprintf("model version %d, %d used, %d rejected", res.ModelVersion, res.Used, res.Rejected)})
	if j.Job.Completed >= uint64(j.Job.Spec.Rounds) {
		j.Job.State = JobCompleted
		j.pruneModels(1)
		ev(Event{Kind: EventJobCompleted, Job: c.Job, At: c.At})
	}
	return task, nil
}

func (f *fsm) failRound(job string, round uint64, reason string, at time.Time, ev func(Event)) error {
	j, ok := f.jobs[job]
	if !ok {
		return fmt.Errorf("%w: job %s", ErrNotFound, job)
	}
	r := j.round(round)
	if r == nil || (r.State != RoundOpen && r.State != RoundClosing) {
		return fmt.Errorf("%w: job %s round %d has ended", ErrStale, job, round)
	}
	f.endRound(j, r, RoundFailed, reason, at)
	j.Job.Failed++
	j.Job.FailedInARow++
	ev(Event{Kind: EventRoundFailed, Job: job, Round: round, Detail: reason, At: at})
	switch limit := j.Job.Spec.MaxFailedRounds; {
	case j.Job.Spec.OnFailure == OnFailureStop:
		j.Job.State, j.Job.Reason = JobFailed, fmt.Sprintf("round %d failed: %s", round, reason)
	case limit > 0 && j.Job.FailedInARow >= uint64(limit):
		j.Job.State, j.Job.Reason = JobFailed, fmt.Sprintf("stopped after %d consecutive failed rounds (max_failed_rounds %d); the last, round %d: %s",
			j.Job.FailedInARow, limit, round, reason)
	default:
		return nil
	}
	j.pruneModels(1)
	ev(Event{Kind: EventJobStopped, Job: job, Detail: j.Job.Reason, At: at})
	return nil
}

// endRound moves r to a final state and drops the sealed bodies; the audit
// leaves stay.
func (f *fsm) endRound(j *jobState, r *Round, state RoundState, reason string, at time.Time) {
	if p := j.Job.Privacy; p != nil && state == RoundFailed && p.Mode == privacy.ModeLocal && len(r.Updates) > 0 {
		// In local mode every update sent is a release (to the
		// coordinators), whether or not its round closes; a closed round
		// composes in closeRound. The error (MaxSteps, MaxEvents) cannot
		// happen with at most 10⁶ rounds and one (q, z) pair.
		_ = p.Accountant.Compose(p.SampleRate, p.NoiseMultiplier, 1)
	}
	r.State, r.EndedAt, r.FailReason = state, at, reason
	for i := range r.Updates {
		r.Updates[i].Sealed = nil
	}
	f.endBlobs(j.Job.Spec.ID, r) // blob.go
	if j.byNode != nil {
		delete(j.byNode, r.Number)
	}
}

func (f *fsm) checkpoint(c *checkpointCmd, ev func(Event)) (Checkpoint, error) {
	if _, last, err := f.log.LatestCheckpoint(); err == nil {
		if cp, err := audit.ParseCheckpoint(c.Note, f.verifier); err == nil && cp.Size <= last.Size {
			return Checkpoint{}, fmt.Errorf("%w: checkpoint size %d not above %d", ErrStale, cp.Size, last.Size)
		}
	}
	cp, err := f.log.AddCheckpoint(c.Note)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint: %v", ErrInvalid, err)
	}
	ev(Event{Kind: EventCheckpoint, Detail: fmt.Sprintf("size %d", cp.Size)})
	return Checkpoint{Size: cp.Size, Root: Hash(cp.Root), Note: bytes.Clone(c.Note)}, nil
}

// ---- reads (callers hold no lock) ----

func (f *fsm) member(id string) (Member, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.members[id]
	if !ok {
		return Member{}, false
	}
	return *m, true
}

// nodeKey returns the enrolled, non-revoked key of a node.
func (f *fsm) nodeKey(id string) (ed25519.PublicKey, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.nodes[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownNode, id)
	}
	if n.Revoked {
		return nil, fmt.Errorf("%w: %s", ErrRevoked, id)
	}
	return ed25519.PublicKey(bytes.Clone(n.PublicKey)), nil
}

// nodeByKey returns the enrolled, non-revoked node holding a key (one
// index lookup: a key belongs to at most one node).
func (f *fsm) nodeByKey(key ed25519.PublicKey) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	id, ok := f.nodeKeys[string(key)]
	if !ok || f.nodes[id].Revoked {
		return "", false
	}
	return id, true
}

// memberKeys returns the keys of the registered members and of the
// removed ones.
func (f *fsm) memberKeys() (current, removed []ed25519.PublicKey) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, m := range f.members {
		if len(m.PublicKey) == ed25519.PublicKeySize {
			current = append(current, bytes.Clone(m.PublicKey))
		}
	}
	for k := range f.removedKeys {
		removed = append(removed, ed25519.PublicKey(k))
	}
	return current, removed
}

// memberList returns the registered members, by id.
func (f *fsm) memberList() []Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Member, 0, len(f.members))
	for _, m := range f.members {
		c := *m
		c.PublicKey = bytes.Clone(m.PublicKey)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (f *fsm) nodeList() []Node {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Node, 0, len(f.nodes))
	for _, n := range f.nodes {
		c := *n
		c.PublicKey = bytes.Clone(n.PublicKey)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (f *fsm) job(id string) (Job, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[id]
	if !ok {
		return Job{}, false
	}
	return j.public(), true
}

// public returns a copy of the job for readers: a central DP job's noise
// secret is included once the job has ended, for auditors.
func (j *jobState) public() Job {
	out := copyJob(j.Job)
	if out.Privacy != nil && j.DPSecret != nil && out.State != JobRunning {
		out.Privacy.Secret = slices.Clone(j.DPSecret)
	}
	return out
}

// dpSecret returns a job's central DP noise secret (nil if none).
func (f *fsm) dpSecret(job string) []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if j, ok := f.jobs[job]; ok {
		return slices.Clone(j.DPSecret)
	}
	return nil
}

func copyJob(j Job) Job {
	j.Spec.Shape = slices.Clone(j.Spec.Shape)
	if j.Spec.DP != nil {
		dp := *j.Spec.DP
		if dp.AdaptiveClip != nil {
			ac := *dp.AdaptiveClip
			dp.AdaptiveClip = &ac
		}
		j.Spec.DP = &dp
	}
	if j.Privacy != nil {
		p := *j.Privacy
		p.Accountant = p.Accountant.Clone()
		if p.Accountant == nil {
			p.Accountant = new(privacy.Accountant)
		}
		if eps, _, err := p.Accountant.Epsilon(p.Delta); err == nil {
			p.EpsilonSpent = eps
		}
		j.Privacy = &p
	}
	return j
}

func (f *fsm) jobList() []Job {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Job, 0, len(f.jobs))
	for _, j := range f.jobs {
		out = append(out, j.public())
	}
	slices.SortFunc(out, func(a, b Job) int { return strings.Compare(a.Spec.ID, b.Spec.ID) })
	return out
}

// copyRound returns a deep copy of r; withSealed keeps the sealed bodies.
func copyRound(r *Round, withSealed bool) Round {
	c := *r
	c.Updates = make([]Update, len(r.Updates))
	for i, u := range r.Updates {
		if withSealed {
			u.Sealed = bytes.Clone(u.Sealed)
		} else {
			u.Sealed = nil
		}
		if u.Body != nil {
			b := *u.Body
			u.Body = &b
		}
		if u.Score != nil {
			s := *u.Score
			u.Score = &s
		}
		u.TrainLoss, u.HoldoutAccuracy = cloneFloat(u.TrainLoss), cloneFloat(u.HoldoutAccuracy)
		c.Updates[i] = u
	}
	if r.Result != nil {
		res := *r.Result
		if res.Accuracy != nil {
			a := *res.Accuracy
			res.Accuracy = &a
		}
		if res.ResultLeaf != nil {
			x := *res.ResultLeaf
			res.ResultLeaf = &x
		}
		res.EvalLoss, res.TrainLoss, res.HoldoutAccuracy = cloneFloat(res.EvalLoss), cloneFloat(res.TrainLoss), cloneFloat(res.HoldoutAccuracy)
		c.Result = &res
	}
	c.Attested = slices.Clone(r.Attested)
	c.Dissents = slices.Clone(r.Dissents)
	c.Derivations = slices.Clone(r.Derivations)
	return c
}

func (f *fsm) round(job string, n uint64, withSealed bool) (Round, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[job]
	if !ok {
		return Round{}, fmt.Errorf("%w: job %s", ErrNotFound, job)
	}
	r := j.round(n)
	if r == nil {
		return Round{}, fmt.Errorf("%w: job %s round %d", ErrNotFound, job, n)
	}
	return copyRound(r, withSealed), nil
}

// roundList returns the rounds of a job without their updates' sealed
// bodies.
func (f *fsm) roundList(job string) ([]Round, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[job]
	if !ok {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, job)
	}
	out := make([]Round, len(j.Rounds))
	for i, r := range j.Rounds {
		out[i] = copyRound(r, false)
	}
	return out, nil
}

// ackFor returns the ack of node's update in a round, if it has one.
func (f *fsm) ackFor(job string, round uint64, node string) (Ack, Hash, bool) {
	f.mu.Lock() // nodeIndex may build its cache
	defer f.mu.Unlock()
	j, ok := f.jobs[job]
	if !ok {
		return Ack{}, Hash{}, false
	}
	r := j.round(round)
	if r == nil {
		return Ack{}, Hash{}, false
	}
	i, ok := j.nodeIndex(round)[node]
	if !ok {
		return Ack{}, Hash{}, false
	}
	u := r.Updates[i]
	return Ack{Job: job, Round: round, Node: node, LogIndex: u.LogIndex, LeafIndex: u.LeafIndex}, u.UpdateHash, true
}

func (f *fsm) model(job string, version uint64) (Model, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[job]
	if !ok {
		return Model{}, fmt.Errorf("%w: job %s", ErrNotFound, job)
	}
	if version >= uint64(len(j.Models)) {
		return Model{}, fmt.Errorf("%w: job %s model version %d", ErrNotFound, job, version)
	}
	m := j.Models[version]
	out := Model{Job: job, Version: m.Version, Hash: m.Hash, Round: m.Round}
	if m.Params == nil {
		return out, fmt.Errorf("%w: job %s model version %d (a running job keeps the last %d, an ended one its final model, an archived one none)", ErrModelPruned, job, version, modelsKept(j.Job.Spec.Dim))
	}
	out.Params = slices.Clone(m.Params)
	return out, nil
}

// roundSummary is a round without its updates.
type roundSummary struct {
	Number       uint64
	State        RoundState
	Updates      int
	BaseVersion  uint64
	BaseHash     Hash
	OpenedAt     time.Time
	Deadline     time.Time
	HardDeadline time.Time
}

func (f *fsm) roundSummary(job string, n uint64) (roundSummary, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[job]
	if !ok {
		return roundSummary{}, false
	}
	r := j.round(n)
	if r == nil {
		return roundSummary{}, false
	}
	return roundSummary{Number: r.Number, State: r.State, Updates: len(r.Updates), BaseVersion: r.BaseVersion,
		BaseHash: r.BaseHash, OpenedAt: r.OpenedAt, Deadline: r.Deadline, HardDeadline: r.HardDeadline}, true
}

// nodeKeyAny returns a node's key even if revoked: updates accepted before
// a revocation are still opened when their round closes.
func (f *fsm) nodeKeyAny(id string) (ed25519.PublicKey, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.nodes[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownNode, id)
	}
	return ed25519.PublicKey(bytes.Clone(n.PublicKey)), nil
}

func (f *fsm) treeSize() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.log.Size()
}

func (f *fsm) treeRoot(size uint64) (Hash, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	root, err := f.log.RootAt(size)
	return Hash(root), err
}

func (f *fsm) lastCheckpointSize() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, cp, err := f.log.LatestCheckpoint()
	if err != nil {
		return 0
	}
	return cp.Size
}

// latestCheckpoint returns the newest checkpoint (audit.ErrNoCheckpoint
// before the first).
func (f *fsm) latestCheckpoint() (Checkpoint, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	note, cp, err := f.log.LatestCheckpoint()
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Size: cp.Size, Root: Hash(cp.Root), Note: note}, nil
}

// checkpoints returns every checkpoint, oldest first.
func (f *fsm) checkpoints() ([]Checkpoint, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Checkpoint, 0, f.log.Checkpoints())
	for i := range f.log.Checkpoints() {
		note, cp, err := f.log.Checkpoint(i)
		if err != nil {
			return nil, err
		}
		out = append(out, Checkpoint{Size: cp.Size, Root: Hash(cp.Root), Note: note})
	}
	return out, nil
}

// bundle returns the proof bundle of a leaf under the newest checkpoint.
func (f *fsm) bundle(leaf uint64) (*audit.Bundle, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.log.Bundle(leaf)
}

// consistency returns the consistency proof between two tree sizes.
func (f *fsm) consistency(size1, size2 uint64) ([][]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.log.ConsistencyProof(size1, size2)
}

// leaf returns an encoded audit leaf.
func (f *fsm) leaf(i uint64) ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.log.Leaf(i)
}

// ---- snapshots ----

// snapshotMagic starts every snapshot; the byte after it is the format
// version. Version 2 added node_keys (the key → node index); a version 1
// snapshot is still restored, its index rebuilt from the nodes.
const (
	snapshotMagic   = "MFNFSM"
	snapshotVersion = 2
)

// snapshotBody is the canonical content of a snapshot: every collection is
// a slice sorted by id, so equal states encode to equal bytes.
type snapshotBody struct {
	Origin  string   `json:"origin"`
	Applied uint64   `json:"applied"`
	Members []Member `json:"members"`
	Nodes   []Node   `json:"nodes"`
	// NodeKeys maps each enrolled key (hex) to the node holding it
	// (version 2; encoding/json sorts the keys).
	NodeKeys map[string]string `json:"node_keys,omitempty"`
	// RemovedMembers maps the keys (hex) of removed members to their id
	// (version 2).
	RemovedMembers map[string]string `json:"removed_members,omitempty"`
	Jobs           []*jobState       `json:"jobs"`
	// DeletedJobs are the ids of deleted jobs, sorted (version 2).
	DeletedJobs []string `json:"deleted_jobs,omitempty"`
	// Audit is the audit log's own snapshot (audit.Log.Snapshot).
	Audit []byte `json:"audit"`

	version byte // format version read (decodeSnapshot)
}

// restoreNodeKeys returns the key index of a snapshot: version 2 carries
// it (checked against the nodes), version 1 is rebuilt in id order, the
// first node enrolled with a key keeping it (ids sort, so every replica
// picks the same holder even in a state that let a key be enrolled
// twice).
func restoreNodeKeys(body *snapshotBody, nodes map[string]*Node) (map[string]string, error) {
	idx := make(map[string]string, len(body.Nodes))
	if body.version < 2 {
		for _, n := range body.Nodes { // sorted by id
			if _, ok := idx[string(n.PublicKey)]; !ok {
				idx[string(n.PublicKey)] = n.ID
			}
		}
		return idx, nil
	}
	for hk, id := range body.NodeKeys {
		k, err := hex.DecodeString(hk)
		if err != nil {
			return nil, fmt.Errorf("coordinator: restore: node_keys: %w", err)
		}
		n, ok := nodes[id]
		if !ok || !bytes.Equal(n.PublicKey, k) {
			return nil, fmt.Errorf("coordinator: restore: node_keys: key %s names node %s, which does not hold it", hk, id)
		}
		idx[string(k)] = id
	}
	for _, n := range body.Nodes {
		if _, ok := idx[string(n.PublicKey)]; !ok {
			return nil, fmt.Errorf("coordinator: restore: node %s: its key is missing from node_keys", n.ID)
		}
	}
	return idx, nil
}

// marshal encodes the state; the caller holds the lock.
func (f *fsm) marshalLocked() ([]byte, error) {
	auditSnap, err := f.log.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("coordinator: snapshot: %w", err)
	}
	body := snapshotBody{Origin: f.origin, Applied: f.applied, Audit: auditSnap}
	for _, m := range f.members {
		body.Members = append(body.Members, *m)
	}
	slices.SortFunc(body.Members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	for _, n := range f.nodes {
		body.Nodes = append(body.Nodes, *n)
	}
	slices.SortFunc(body.Nodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	if len(f.nodeKeys) > 0 {
		body.NodeKeys = make(map[string]string, len(f.nodeKeys))
		for k, id := range f.nodeKeys {
			body.NodeKeys[hex.EncodeToString([]byte(k))] = id
		}
	}
	if len(f.removedKeys) > 0 {
		body.RemovedMembers = make(map[string]string, len(f.removedKeys))
		for k, id := range f.removedKeys {
			body.RemovedMembers[hex.EncodeToString([]byte(k))] = id
		}
	}
	for _, j := range f.jobs {
		body.Jobs = append(body.Jobs, j)
	}
	slices.SortFunc(body.Jobs, func(a, b *jobState) int { return strings.Compare(a.Job.Spec.ID, b.Job.Spec.ID) })
	for id := range f.deletedJobs {
		body.DeletedJobs = append(body.DeletedJobs, id)
	}
	slices.Sort(body.DeletedJobs)
	var buf bytes.Buffer
	buf.WriteString(snapshotMagic)
	buf.WriteByte(snapshotVersion)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&body); err != nil {
		return nil, fmt.Errorf("coordinator: snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

// Snapshot encodes the state at once (raft runs Persist concurrently with
// later Applies, so nothing may be shared).
//
// With blob files to carry (blob.go) the snapshot is version 3: they are
// linked into a staging directory here and streamed from disk by Persist.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := f.marshalLocked()
	if err != nil {
		return nil, err
	}
	dir, files, err := f.snapshotBlobs()
	if err != nil {
		return nil, err
	}
	if files == nil {
		return &fsmSnapshot{data: b}, nil
	}
	body := b[len(snapshotMagic)+1:]
	v3 := make([]byte, 0, len(b)+8)
	v3 = append(v3, snapshotMagic...)
	v3 = append(v3, snapshotBlobVersion)
	v3 = binary.BigEndian.AppendUint64(v3, uint64(len(body)))
	v3 = append(v3, body...)
	return &fsmSnapshot{data: v3, blobs: files, dir: dir}, nil
}

// Restore replaces the state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	head := make([]byte, len(snapshotMagic)+1)
	if _, err := io.ReadFull(rc, head); err != nil {
		return fmt.Errorf("coordinator: restore: not an MFN coordinator snapshot: %v", err)
	}
	var data []byte
	var err error
	if head[len(head)-1] == snapshotBlobVersion {
		// Version 3: the JSON's length, the JSON, then the blob section.
		var n [8]byte
		if _, err := io.ReadFull(rc, n[:]); err != nil {
			return fmt.Errorf("coordinator: restore: %w", err)
		}
		size := binary.BigEndian.Uint64(n[:])
		if size > 1<<40 {
			return fmt.Errorf("coordinator: restore: state of %d bytes", size)
		}
		data, err = io.ReadAll(io.LimitReader(rc, int64(size)))
		if err == nil && uint64(len(data)) != size {
			err = io.ErrUnexpectedEOF
		}
		data = append(head, data...)
	} else {
		data, err = io.ReadAll(io.LimitReader(rc, 1<<40))
		data = append(head, data...)
	}
	if err != nil {
		return fmt.Errorf("coordinator: restore: %w", err)
	}
	body, err := decodeSnapshot(data)
	if err != nil {
		return err
	}
	var restoredBlobs []restoredBlob
	if body.version == snapshotBlobVersion {
		f.mu.Lock()
		store := f.blobDir()
		f.mu.Unlock()
		if restoredBlobs, err = readBlobSection(rc, store); err != nil {
			return err
		}
	}
	parts := map[Hash]*blobPart{}
	for _, rb := range restoredBlobs {
		if rb.kind == blobRecPart {
			parts[rb.key] = &blobPart{Job: rb.job, Round: rb.round, Total: rb.total}
		}
	}
	members := make(map[string]*Member, len(body.Members))
	for i := range body.Members {
		members[body.Members[i].ID] = &body.Members[i]
	}
	nodes := make(map[string]*Node, len(body.Nodes))
	for i := range body.Nodes {
		nodes[body.Nodes[i].ID] = &body.Nodes[i]
	}
	nodeKeys, err := restoreNodeKeys(body, nodes)
	if err != nil {
		return err
	}
	deletedJobs := make(map[string]bool, len(body.DeletedJobs))
	for _, id := range body.DeletedJobs {
		deletedJobs[id] = true
	}
	removedKeys := make(map[string]string, len(body.RemovedMembers))
	for hk, id := range body.RemovedMembers {
		k, err := hex.DecodeString(hk)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("coordinator: restore: removed_members: bad key %q", hk)
		}
		removedKeys[string(k)] = id
	}
	jobs := make(map[string]*jobState, len(body.Jobs))
	for _, j := range body.Jobs {
		if j == nil {
			return fmt.Errorf("coordinator: restore: null job")
		}
		if err := j.restoreOptimizer(); err != nil {
			return err
		}
		jobs[j.Job.Spec.ID] = j
	}
	if body.Origin != f.origin {
		return fmt.Errorf("coordinator: restore: snapshot of cluster %q into cluster %q", body.Origin, f.origin)
	}
	log, err := audit.NewLog(f.origin, f.verifier)
	if err != nil {
		return fmt.Errorf("coordinator: restore: %w", err)
	}
	if err := log.Restore(body.Audit); err != nil {
		return fmt.Errorf("coordinator: restore: %w", err)
	}
	f.mu.Lock()
	f.members, f.nodes, f.nodeKeys, f.removedKeys, f.jobs, f.log = members, nodes, nodeKeys, removedKeys, jobs, log
	f.deletedJobs = deletedJobs
	f.applied = body.Applied
	f.parts = parts
	if f.blobs != nil {
		f.blobs.sweep(restoredBlobs) // orphans of the replaced state (blob.go)
	}
	f.mu.Unlock()
	if f.restored != nil {
		f.restored()
	}
	return nil
}

// decodeSnapshot checks the header and decodes the body.
func decodeSnapshot(data []byte) (*snapshotBody, error) {
	if len(data) < len(snapshotMagic)+1 || string(data[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("coordinator: restore: not an MFN coordinator snapshot")
	}
	v := data[len(snapshotMagic)]
	if v != 1 && v != snapshotVersion && v != snapshotBlobVersion {
		return nil, fmt.Errorf("coordinator: restore: snapshot format version %d, want 1 to %d", v, snapshotBlobVersion)
	}
	body := snapshotBody{version: v}
	dec := json.NewDecoder(bytes.NewReader(data[len(snapshotMagic)+1:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("coordinator: restore: %w", err)
	}
	if v == snapshotBlobVersion && dec.More() {
		return nil, fmt.Errorf("coordinator: restore: data after the state")
	}
	if v == 1 && (body.NodeKeys != nil || body.RemovedMembers != nil || body.DeletedJobs != nil) {
		return nil, fmt.Errorf("coordinator: restore: node_keys in a version 1 snapshot")
	}
	for _, n := range body.Nodes {
		if len(n.PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("coordinator: restore: node %s: public key has %d bytes", n.ID, len(n.PublicKey))
		}
	}
	for _, j := range body.Jobs {
		if j == nil {
			return nil, fmt.Errorf("coordinator: restore: null job")
		}
		for _, r := range j.Rounds {
			if r == nil {
				return nil, fmt.Errorf("coordinator: restore: job %s: null round", j.Job.Spec.ID)
			}
		}
		if p := j.Job.Privacy; p != nil && p.Accountant == nil {
			return nil, fmt.Errorf("coordinator: restore: job %s: privacy state without an accountant", j.Job.Spec.ID)
		}
	}
	return &body, nil
}

type fsmSnapshot struct {
	data []byte
	// blobs are the files a version 3 snapshot streams after data, linked
	// under dir (removed by Release).
	blobs []snapBlob
	dir   string
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	_, err := sink.Write(s.data)
	if err == nil && s.blobs != nil {
		err = writeBlobSection(sink, s.blobs)
	}
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("coordinator: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}
