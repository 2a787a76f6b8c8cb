package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"

	"filippo.io/age"
	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/crypto"
)

// ErrUnsupported means a result asks for something Replay cannot
// re-derive yet (a DP noise commitment).
var ErrUnsupported = errors.New("audit: not supported")

// ReplayReport is what a successful Replay re-derived.
type ReplayReport struct {
	Result   *ResultLeaf // the decoded result leaf
	Inputs   int         // updates given to the rule
	Used     []uint64    // leaf indexes the rule used, in input order
	NewHash  [32]byte    // hash of the re-derived model (equals Result.NewHash)
	LeafHash [32]byte    // RFC 6962 leaf hash of the result leaf, to find it in the log
}

// Replay re-derives a round's model from its archive, bit for bit, as the
// coordinator computed it at round close:
//
//  1. decode the result leaf; a non-empty noise commitment fails with
//     ErrUnsupported;
//  2. the base model must be a canonical float64 update encoding whose
//     SHA-256 is the result's base hash;
//  3. for every input entry, in the result's order: the archived leaf must
//     be an update leaf of the result's origin, job and round; its sealed
//     envelope is opened with ids (crypto.Open, the node key taken from the
//     leaf) and must carry exactly the leaf's signed statement; the update
//     must decode to the model's dimension;
//  4. weights are the statements' sample counts (Weighting WeightSamples)
//     or none (WeightEqual); the rule is aggregate.New(Rule,
//     ParseRuleParams(Params)) and runs on the inputs in order;
//  5. new model = base + aggregate, element by element; its SHA-256 over
//     crypto.EncodeUpdate(model, crypto.Float64) must equal the result's
//     new hash, and the inputs the rule used must be the entries marked
//     used.
//
// Failures name the leaf or the hashes and wrap ErrModelMismatch (base or
// new hash, used set), ErrResultMismatch (an archived leaf of another
// round), ErrMalformed, ErrUnsupported, or crypto's errors (an envelope
// that does not open: wrong identity, damage, a swapped envelope).
func Replay(a *RoundArchive, ids []age.Identity, limits ArchiveLimits) (*ReplayReport, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	r, err := ParseResultLeaf(a.Result)
	if err != nil {
		return nil, err
	}
	if len(r.NoiseCommitment) > 0 {
		return nil, fmt.Errorf("audit: job %s round %d has a DP noise commitment; replaying noise: %w", r.JobID, r.Round, ErrUnsupported)
	}
	if h := sha256.Sum256(a.BaseModel); h != r.BaseHash {
		return nil, fmt.Errorf("audit: job %s round %d: archived base model hashes to %x, the result says %x: %w", r.JobID, r.Round, h[:8], r.BaseHash[:8], ErrModelMismatch)
	}
	base, err := crypto.DecodeUpdate(a.BaseModel, crypto.DefaultMaxUpdateLen)
	if err != nil {
		return nil, fmt.Errorf("audit: base model: %v: %w", err, ErrMalformed)
	}
	if !bytes.Equal(crypto.EncodeUpdate(base, crypto.Float64), a.BaseModel) {
		return nil, fmt.Errorf("audit: base model is not a float64 model encoding: %w", ErrMalformed)
	}
	params, err := ParseRuleParams(r.Params)
	if err != nil {
		return nil, err
	}
	rule, err := aggregate.New(r.Rule, params)
	if err != nil {
		return nil, fmt.Errorf("audit: rule %q: %v: %w", r.Rule, err, ErrMalformed)
	}
	byIndex := make(map[uint64]*ArchivedUpdate, len(a.Updates))
	for i := range a.Updates {
		byIndex[a.Updates[i].LeafIndex] = &a.Updates[i]
	}
	var vecs [][]float64
	var weights []float64
	var inputs []ResultEntry
	for _, e := range r.Entries {
		if !e.Input {
			continue
		}
		u := byIndex[e.LeafIndex]
		vec, samples, err := openArchived(r, u, ids, limits, len(base))
		if err != nil {
			return nil, err
		}
		vecs = append(vecs, vec)
		weights = append(weights, float64(samples))
		inputs = append(inputs, e)
	}
	if r.Weighting == WeightEqual {
		weights = nil
	} else if slices.Contains(weights, 0) {
		return nil, fmt.Errorf("audit: job %s round %d weighs by samples but an input has none: %w", r.JobID, r.Round, ErrMalformed)
	}
	if len(vecs) == 0 {
		return nil, fmt.Errorf("audit: job %s round %d has no input: %w", r.JobID, r.Round, ErrMalformed)
	}
	agg, rep, err := rule.Aggregate(vecs, weights)
	if err != nil {
		return nil, fmt.Errorf("audit: job %s round %d: rule %s: %v: %w", r.JobID, r.Round, r.Rule, err, ErrModelMismatch)
	}
	if len(agg) != len(base) {
		return nil, fmt.Errorf("audit: aggregate has %d values, model %d: %w", len(agg), len(base), ErrModelMismatch)
	}
	model := make([]float64, len(base))
	for i := range model {
		model[i] = base[i] + agg[i]
		if math.IsNaN(model[i]) || math.IsInf(model[i], 0) {
			return nil, fmt.Errorf("audit: re-derived parameter %d is not finite: %w", i, ErrModelMismatch)
		}
	}
	out := &ReplayReport{Result: r, Inputs: len(vecs), NewHash: sha256.Sum256(crypto.EncodeUpdate(model, crypto.Float64)), LeafHash: LeafHash(a.Result)}
	usedByRule := make([]bool, len(inputs))
	for _, k := range rep.Used {
		if k >= 0 && k < len(inputs) {
			usedByRule[k] = true
		}
	}
	for k, e := range inputs {
		if usedByRule[k] {
			out.Used = append(out.Used, e.LeafIndex)
		}
		if usedByRule[k] != e.Used {
			return nil, fmt.Errorf("audit: job %s round %d: the rule %s leaf %d, the result says used=%v: %w",
				r.JobID, r.Round, map[bool]string{true: "used", false: "rejected"}[usedByRule[k]], e.LeafIndex, e.Used, ErrModelMismatch)
		}
	}
	if out.NewHash != r.NewHash {
		return nil, fmt.Errorf("audit: job %s round %d: re-derived model %x, the result says %x: %w", r.JobID, r.Round, out.NewHash[:8], r.NewHash[:8], ErrModelMismatch)
	}
	return out, nil
}

// openArchived opens one archived input and checks it against its leaf
// and the result.
func openArchived(r *ResultLeaf, u *ArchivedUpdate, ids []age.Identity, limits ArchiveLimits, dim int) ([]float64, uint64, error) {
	leaf, err := ParseLeaf(u.Leaf)
	if err != nil {
		return nil, 0, &LeafError{Index: u.LeafIndex, Err: err}
	}
	if leaf.Origin != r.Origin || leaf.JobID != r.JobID || leaf.Round != r.Round {
		return nil, 0, &LeafError{Index: u.LeafIndex, Err: fmt.Errorf("audit: update of %s job %s round %d in an archive of job %s round %d: %w", leaf.Origin, leaf.JobID, leaf.Round, r.JobID, r.Round, ErrResultMismatch)}
	}
	keys := crypto.NodeKeys{leaf.NodeID: ed25519.PublicKey(leaf.NodeKey)}
	op, err := crypto.Open(u.Sealed, ids, keys, limits.Envelope)
	if err != nil {
		return nil, 0, &LeafError{Index: u.LeafIndex, Err: fmt.Errorf("audit: open envelope: %w", err)}
	}
	if !bytes.Equal(op.StatementBytes, leaf.Statement) {
		return nil, 0, &LeafError{Index: u.LeafIndex, Err: fmt.Errorf("audit: envelope's statement differs from the logged leaf's: %w", ErrResultMismatch)}
	}
	vec, err := crypto.DecodeUpdate(op.Update, dim)
	if err != nil {
		return nil, 0, &LeafError{Index: u.LeafIndex, Err: fmt.Errorf("audit: update: %v: %w", err, ErrMalformed)}
	}
	if len(vec) != dim {
		return nil, 0, &LeafError{Index: u.LeafIndex, Err: fmt.Errorf("audit: update has %d values, model %d: %w", len(vec), dim, ErrMalformed)}
	}
	return vec, op.Statement.SampleCount, nil
}
