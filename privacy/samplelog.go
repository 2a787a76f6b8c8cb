package privacy

import (
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/crypto"
)

// ErrNotSampled is wrapped by *NotSampledError: an update leaf of a
// sampled job comes from a node outside its round's sample.
var ErrNotSampled = errors.New("privacy: update from a node outside the round's sample")

// NotSampledError names the first update leaf whose node the round's
// sample does not hold.
type NotSampledError struct {
	Leaf  uint64 // leaf index
	Job   string
	Round uint64
	Node  string
}

func (e *NotSampledError) Error() string {
	return fmt.Sprintf("privacy: leaf %d: job %s round %d: node %s was not in the round's sample", e.Leaf, e.Job, e.Round, e.Node)
}

// Unwrap returns ErrNotSampled.
func (e *NotSampledError) Unwrap() error { return ErrNotSampled }

// SampleReport is what VerifySampleFS checked.
type SampleReport struct {
	Leaves  uint64 // leaves read (update and result leaves)
	Updates int    // update leaves of the job, each checked
	Rounds  int    // distinct rounds among them
}

// MaxSampleLogLeaves bounds how many leaves VerifySampleFS reads.
const MaxSampleLogLeaves = 1 << 26

// VerifySampleFS reads an exported audit log (audit.ExportDir's layout:
// leaves/00000000.leaf, … from fsys) and checks that every update leaf of
// job comes from a node in its round's sample at rate q, the sample seed
// being SampleSeed(secret, job, round, base) with base the base model
// hash from the node's signed statement (the leader accepts an update
// only on its round's base). It does not verify signatures or the tree:
// run `mfn audit verify-log` on the same export for that. Errors: a
// *NotSampledError (ErrNotSampled) for the first update from an unsampled
// node; a *ParamError for q outside (0, 1]; an error naming the leaf that
// does not decode; fs errors other than the end of the leaves.
func VerifySampleFS(fsys fs.FS, job string, secret []byte, q float64) (SampleReport, error) {
	var rep SampleReport
	if !(q > 0 && q <= 1) {
		return rep, &ParamError{Param: "sample_rate", Value: q, Want: "in (0, 1]"}
	}
	rounds := map[uint64]bool{}
	for i := uint64(0); i < MaxSampleLogLeaves; i++ {
		b, err := fs.ReadFile(fsys, audit.LeafFile(i))
		if errors.Is(err, fs.ErrNotExist) {
			if i == 0 {
				return rep, fmt.Errorf("privacy: %s: %w (not an exported log?)", path.Dir(audit.LeafFile(0)), err)
			}
			break
		}
		if err != nil {
			return rep, err
		}
		rep.Leaves++
		if audit.IsResultLeaf(b) {
			continue
		}
		l, err := audit.ParseLeaf(b)
		if err != nil {
			return rep, fmt.Errorf("privacy: leaf %d: %w", i, err)
		}
		if l.JobID != job {
			continue
		}
		st, err := crypto.ParseStatement(l.Statement)
		if err != nil {
			return rep, fmt.Errorf("privacy: leaf %d: statement: %w", i, err)
		}
		rep.Updates++
		rounds[l.Round] = true
		if !Sampled(SampleSeed(secret, job, l.Round, st.BaseModelHash), l.NodeID, q) {
			return rep, &NotSampledError{Leaf: i, Job: job, Round: l.Round, Node: l.NodeID}
		}
	}
	rep.Rounds = len(rounds)
	return rep, nil
}
