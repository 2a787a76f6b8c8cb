package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mfn/mfn/crypto"
	"golang.org/x/mod/sumdb/note"
)

// SampleConfig describes a sample log for tutorials, tests and benchmarks
// (BuildSampleLog). Its node keys are derived from public seeds: never
// enroll them anywhere real.
type SampleConfig struct {
	Origin          string // log and cluster origin; zero means "mfn.example/sample"
	Leaves          int    // number of accepted updates, >= 0
	Nodes           int    // distinct nodes taking turns; zero means 4
	CheckpointEvery int    // a checkpoint after every CheckpointEvery leaves; zero means only one at the end
	Seed            uint64 // seeds the update hashes and sample counts
}

// sampleEpoch is the fixed start of sample statement and accept times.
var sampleEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// SampleNodeID is the node id of sample node i.
func SampleNodeID(i int) string { return fmt.Sprintf("node-%02d", i) }

// SampleNodeKey returns the Ed25519 key of sample node i, derived from the
// public seed SHA-256("mfn sample node <i>").
func SampleNodeKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256(fmt.Appendf(nil, "mfn sample node %d", i))
	return ed25519.NewKeyFromSeed(seed[:])
}

// SampleNodeKeys returns the enrolled keys of sample nodes 0..n-1.
func SampleNodeKeys(n int) NodeKeys {
	keys := make(NodeKeys, n)
	for i := range n {
		keys[SampleNodeID(i)] = SampleNodeKey(i).Public().(ed25519.PublicKey)
	}
	return keys
}

// SampleLeaf returns the i-th sample leaf: node i mod nodes signs a
// statement for round i/nodes+1 of job "sample-job" with a pseudo-random
// update hash drawn from rng; it is accepted 250 ms after it was made.
func SampleLeaf(origin string, i, nodes int, rng *rand.Rand) (*Leaf, error) {
	node := i % nodes
	var update [32]byte
	for j := 0; j < len(update); j += 8 {
		binary.LittleEndian.PutUint64(update[j:], rng.Uint64())
	}
	made := sampleEpoch.Add(time.Duration(i) * time.Second)
	st := crypto.Statement{
		Origin:        origin,
		JobID:         "sample-job",
		Round:         uint64(i/nodes + 1),
		NodeID:        SampleNodeID(node),
		BaseModelHash: sha256.Sum256(fmt.Appendf(nil, "sample model %d", i/nodes)),
		UpdateHash:    update,
		SampleCount:   100 + rng.Uint64N(900),
		Time:          made,
	}
	stmt, err := st.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("audit: sample statement: %v: %w", err, ErrMalformed)
	}
	priv := SampleNodeKey(node)
	return NewLeaf(stmt, crypto.SignStatement(priv, stmt), priv.Public().(ed25519.PublicKey), made.Add(250*time.Millisecond))
}

// BuildSampleLog builds a log of cfg.Leaves signed sample leaves
// (SampleLeaf) with checkpoints signed by signer, which must match
// verifier. The same cfg and keys always give the same log. Errors wrap
// ErrMalformed for a negative count or a signer that does not match
// verifier (ErrBadCheckpointSignature).
func BuildSampleLog(cfg SampleConfig, signer note.Signer, verifier note.Verifier) (*Log, error) {
	if cfg.Origin == "" {
		cfg.Origin = "mfn.example/sample"
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 4
	}
	if cfg.Leaves < 0 || cfg.Nodes < 0 || cfg.CheckpointEvery < 0 {
		return nil, fmt.Errorf("audit: sample log: leaves %d, nodes %d, checkpoint every %d must not be negative: %w", cfg.Leaves, cfg.Nodes, cfg.CheckpointEvery, ErrMalformed)
	}
	l, err := NewLog(cfg.Origin, verifier)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d666e2d61756469)) // "mfn-audi"
	checkpoint := func() error {
		root := l.Root()
		msg, err := SignCheckpoint(signer, l.Origin(), l.Size(), root[:])
		if err == nil {
			_, err = l.AddCheckpoint(msg)
		}
		return err
	}
	for i := range cfg.Leaves {
		leaf, err := SampleLeaf(cfg.Origin, i, cfg.Nodes, rng)
		if err != nil {
			return nil, err
		}
		if _, err := l.Append(leaf); err != nil {
			return nil, err
		}
		if cfg.CheckpointEvery > 0 && (i+1)%cfg.CheckpointEvery == 0 {
			if err := checkpoint(); err != nil {
				return nil, err
			}
		}
	}
	if n := l.Checkpoints(); n == 0 || l.checkpoints[n-1].cp.Size != l.Size() {
		if err := checkpoint(); err != nil {
			return nil, err
		}
	}
	return l, nil
}
