package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mfn/mfn/crypto"
	"golang.org/x/mod/sumdb/note"
)

// SampleRoundsConfig describes a sample log with round results
// (BuildSampleRoundsLog). Its node and member keys come from public seeds:
// never use them anywhere real.
type SampleRoundsConfig struct {
	Origin    string // zero means "mfn.example/sample"
	Job       string // zero means "sample-job"
	Rounds    int    // rounds, each closed by a result leaf; >= 1
	Nodes     int    // updates per round, one per node; zero means 4
	Members   int    // coordinator members; zero means 3
	Cosigners int    // members that cosign each round's checkpoint; zero means all
	Seed      uint64 // seeds update hashes, sample counts and scores
}

// SampleMemberID is the member id of sample member i.
func SampleMemberID(i int) string { return fmt.Sprintf("coord-%d", i) }

// SampleMemberKey returns sample member i's cosigning key, derived from the
// public seed SHA-256("mfn sample member <i>").
func SampleMemberKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256(fmt.Appendf(nil, "mfn sample member %d", i))
	return ed25519.NewKeyFromSeed(seed[:])
}

// SampleMemberKeys returns the public keys of sample members 0..n-1.
func SampleMemberKeys(n int) MemberKeys {
	m := make(MemberKeys, n)
	for i := range n {
		m[SampleMemberID(i)] = SampleMemberKey(i).Public().(ed25519.PublicKey)
	}
	return m
}

// BuildSampleRoundsLog builds a log of cfg.Rounds rounds of job cfg.Job:
// each round has one signed update per node, then a result leaf (rule
// "krum", f=1, node 0's update rejected, the others used with scores), then
// a checkpoint cosigned by the first cfg.Cosigners members. Round r's base
// model hash is round r−1's new one. The model hashes are labels, not
// hashes of real models: the log passes VerifyLogFS, not a replay. It
// returns the log and the members' keys. Errors wrap ErrMalformed for
// counts out of range.
func BuildSampleRoundsLog(cfg SampleRoundsConfig, signer note.Signer, verifier note.Verifier) (*Log, MemberKeys, error) {
	if cfg.Origin == "" {
		cfg.Origin = "mfn.example/sample"
	}
	if cfg.Job == "" {
		cfg.Job = "sample-job"
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 4
	}
	if cfg.Members == 0 {
		cfg.Members = 3
	}
	if cfg.Cosigners == 0 {
		cfg.Cosigners = cfg.Members
	}
	if cfg.Rounds < 1 || cfg.Nodes < 2 || cfg.Members < 1 || cfg.Cosigners < 0 || cfg.Cosigners > cfg.Members {
		return nil, nil, fmt.Errorf("audit: sample rounds: rounds %d (>= 1), nodes %d (>= 2), members %d, cosigners %d (<= members): %w",
			cfg.Rounds, cfg.Nodes, cfg.Members, cfg.Cosigners, ErrMalformed)
	}
	l, err := NewLog(cfg.Origin, verifier)
	if err != nil {
		return nil, nil, err
	}
	members := SampleMemberKeys(cfg.Members)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x726f756e6473)) // "rounds"
	model := sha256.Sum256([]byte("sample initial model"))
	for round := uint64(1); round <= uint64(cfg.Rounds); round++ {
		res := &ResultLeaf{Origin: cfg.Origin, JobID: cfg.Job, Round: round, Rule: "krum", Params: "f=1",
			Weighting: WeightSamples, BaseHash: model}
		for n := range cfg.Nodes {
			var update [32]byte
			for j := range update {
				update[j] = byte(rng.Uint32())
			}
			made := sampleEpoch.Add(time.Duration(round)*time.Minute + time.Duration(n)*time.Second)
			st := crypto.Statement{Origin: cfg.Origin, JobID: cfg.Job, Round: round, NodeID: SampleNodeID(n),
				BaseModelHash: model, UpdateHash: update, SampleCount: 100 + rng.Uint64N(900), Time: made}
			stmt, err := st.MarshalBinary()
			if err != nil {
				return nil, nil, fmt.Errorf("audit: sample statement: %v: %w", err, ErrMalformed)
			}
			priv := SampleNodeKey(n)
			leaf, err := NewLeaf(stmt, crypto.SignStatement(priv, stmt), priv.Public().(ed25519.PublicKey), made.Add(250*time.Millisecond))
			if err != nil {
				return nil, nil, err
			}
			idx, err := l.Append(leaf)
			if err != nil {
				return nil, nil, err
			}
			sc := float64(rng.Uint64N(1000)) / 8
			e := ResultEntry{LeafIndex: idx, Input: true, Used: n != 0, Score: &sc}
			if n == 0 {
				e.Reason = "not selected by krum"
			}
			res.Entries = append(res.Entries, e)
		}
		res.NewHash = sha256.Sum256(fmt.Appendf(nil, "sample model %s %d", cfg.Job, round))
		model = res.NewHash
		if _, err := l.AppendResult(res); err != nil {
			return nil, nil, err
		}
		root := l.Root()
		msg, err := SignCheckpoint(signer, l.Origin(), l.Size(), root[:])
		if err != nil {
			return nil, nil, err
		}
		if _, err := l.AddCheckpoint(msg); err != nil {
			return nil, nil, err
		}
		var lines [][]byte
		for m := range cfg.Cosigners {
			line, err := CosignCheckpoint(msg, verifier, SampleMemberID(m), SampleMemberKey(m), sampleEpoch.Add(time.Duration(round)*time.Hour))
			if err != nil {
				return nil, nil, err
			}
			lines = append(lines, line)
		}
		if err := l.Cosign(l.Checkpoints()-1, members, lines...); err != nil {
			return nil, nil, err
		}
	}
	return l, members, nil
}
