package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"time"

	"filippo.io/age"
	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/crypto"
)

// SampleArchiveConfig describes a sample round (BuildSampleRoundArchive).
type SampleArchiveConfig struct {
	Origin string // zero means "mfn.example/sample"
	Dim    int    // model parameters; zero means 8
	Nodes  int    // updates, one per sample node; zero means 5 (>= 3)
	Seed   uint64 // seeds the base model and the updates
}

// BuildSampleRoundArchive runs one sample round of job "sample-job", round
// 1, as a coordinator would: sample nodes seal updates of a cfg.Dim model
// to recipient (the last node's update is an outlier), krum (f=1) with
// sample-count weights aggregates them, and the result leaf records the
// outcome. It returns the archive (replayable by the holder of recipient's
// identity) and the log holding the update and result leaves. The
// envelopes' encryption is random (age); everything else follows
// cfg.Seed. Errors wrap ErrMalformed for a bad config.
func BuildSampleRoundArchive(cfg SampleArchiveConfig, recipient age.Recipient, log *Log) (*RoundArchive, error) {
	if cfg.Dim == 0 {
		cfg.Dim = 8
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 5
	}
	if cfg.Dim < 1 || cfg.Dim > 1<<20 || cfg.Nodes < 3 || cfg.Nodes > 1000 {
		return nil, fmt.Errorf("audit: sample archive: dim %d (1..1048576), nodes %d (3..1000): %w", cfg.Dim, cfg.Nodes, ErrMalformed)
	}
	origin := log.Origin()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x61726368)) // "arch"
	base := make([]float64, cfg.Dim)
	for i := range base {
		base[i] = rng.NormFloat64()
	}
	baseEnc := crypto.EncodeUpdate(base, crypto.Float64)
	baseHash := sha256.Sum256(baseEnc)
	a := &RoundArchive{BaseModel: baseEnc}
	var vecs [][]float64
	var weights []float64
	var leaves []uint64
	for n := range cfg.Nodes {
		upd := make([]float64, cfg.Dim)
		for i := range upd {
			upd[i] = 0.01 * rng.NormFloat64()
			if n == cfg.Nodes-1 {
				upd[i] += 10
			}
		}
		made := sampleEpoch.Add(time.Duration(n) * time.Second)
		st := &crypto.Statement{Origin: origin, JobID: "sample-job", Round: 1, NodeID: SampleNodeID(n),
			BaseModelHash: baseHash, SampleCount: 10 + rng.Uint64N(90), Time: made}
		priv := SampleNodeKey(n)
		enc := crypto.EncodeUpdate(upd, crypto.Float64)
		sealed, err := crypto.Seal(st, enc, priv, []age.Recipient{recipient})
		if err != nil {
			return nil, fmt.Errorf("audit: sample archive: %w", err)
		}
		stmt, err := st.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("audit: sample archive: %v: %w", err, ErrMalformed)
		}
		leaf, err := NewLeaf(stmt, crypto.SignStatement(priv, stmt), priv.Public().(ed25519.PublicKey), made.Add(250*time.Millisecond))
		if err != nil {
			return nil, err
		}
		idx, err := log.Append(leaf)
		if err != nil {
			return nil, err
		}
		leafEnc, _ := log.Leaf(idx)
		a.Updates = append(a.Updates, ArchivedUpdate{LeafIndex: idx, Leaf: leafEnc, Sealed: sealed})
		vecs = append(vecs, upd)
		weights = append(weights, float64(st.SampleCount))
		leaves = append(leaves, idx)
	}
	p := aggregate.Params{F: 1}
	rule, err := aggregate.New("krum", p)
	if err != nil {
		return nil, fmt.Errorf("audit: sample archive: %w", err)
	}
	agg, rep, err := rule.Aggregate(vecs, weights)
	if err != nil {
		return nil, fmt.Errorf("audit: sample archive: %w", err)
	}
	model := make([]float64, cfg.Dim)
	for i := range model {
		model[i] = base[i] + agg[i]
	}
	r := &ResultLeaf{Origin: origin, JobID: "sample-job", Round: 1, Rule: "krum", Params: FormatRuleParams(p),
		Weighting: WeightSamples, BaseHash: baseHash, NewHash: sha256.Sum256(crypto.EncodeUpdate(model, crypto.Float64)),
		Entries: EntriesFromReport(leaves, nil, rep)}
	if _, err := log.AppendResult(r); err != nil {
		return nil, err
	}
	if a.Result, err = r.MarshalBinary(); err != nil {
		return nil, err
	}
	return a, nil
}
