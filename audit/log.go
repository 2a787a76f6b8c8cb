package audit

import (
	"bytes"
	"fmt"

	"github.com/mfn/mfn/crypto"
	"golang.org/x/mod/sumdb/note"
)

// Log is the append-only audit log of one cluster: the encoded leaves, the
// RFC 6962 Merkle tree over them, and the signed checkpoints committed so
// far.
//
// Every method is deterministic: no clock, no randomness, no I/O, no
// goroutines. Accept times come from the caller (the replicated entry), so
// replicas applying the same appends and checkpoints in the same order hold
// identical logs and identical snapshots.
//
// A Log is not safe for concurrent use; the state machine that drives it
// serialises calls (read-only methods may run concurrently with each other
// but not with Append, AddCheckpoint or Restore).
type Log struct {
	origin      string
	verifier    note.Verifier
	leaves      [][]byte
	tree        *tree
	checkpoints []storedCheckpoint
}

// storedCheckpoint is a signed note accepted by AddCheckpoint and its body.
type storedCheckpoint struct {
	note []byte
	cp   *Checkpoint
}

// NewLog returns an empty log for origin (the cluster origin; every leaf
// and checkpoint must carry it). verifier is the log key's verifier:
// AddCheckpoint accepts only notes it verifies. Errors wrap ErrMalformed for
// an empty origin or a nil verifier.
func NewLog(origin string, verifier note.Verifier) (*Log, error) {
	if err := checkString(origin, crypto.MaxOriginLen); err != nil {
		return nil, fmt.Errorf("audit: log origin: %w", err)
	}
	if verifier == nil {
		return nil, fmt.Errorf("audit: log needs a checkpoint verifier: %w", ErrMalformed)
	}
	return &Log{origin: origin, verifier: verifier, tree: newTree()}, nil
}

// Origin returns the log's origin.
func (l *Log) Origin() string { return l.origin }

// Verifier returns the verifier of the log's checkpoint key.
func (l *Log) Verifier() note.Verifier { return l.verifier }

// Size returns the number of leaves.
func (l *Log) Size() uint64 { return uint64(len(l.leaves)) }

// Root returns the RFC 6962 root of all leaves (the empty-tree hash,
// SHA-256 of nothing, for an empty log).
func (l *Log) Root() [32]byte { return l.tree.root }

// RootAt returns the root of the first size leaves. Errors wrap ErrRange
// for size > Size().
func (l *Log) RootAt(size uint64) ([32]byte, error) { return l.tree.rootAt(size) }

// Append verifies leaf (Leaf.Verify: the node signature and the statement
// agree) and checks that it carries the log's origin, then appends it and
// returns its index. On error nothing changes; errors wrap
// ErrOriginMismatch, ErrBadNodeSignature, ErrStatementMismatch or the
// encoding errors of Leaf.MarshalBinary.
func (l *Log) Append(leaf *Leaf) (uint64, error) {
	if leaf.Origin != l.origin {
		return 0, fmt.Errorf("audit: leaf origin %q, log origin %q: %w", leaf.Origin, l.origin, ErrOriginMismatch)
	}
	enc, err := leaf.MarshalBinary()
	if err != nil {
		return 0, err
	}
	if err := leaf.Verify(); err != nil {
		return 0, err
	}
	return l.appendVerified(enc), nil
}

// AppendTrusted appends leaf without verifying its node signature and
// returns its index. The contract: the caller has already verified the
// signature over leaf.Statement with leaf.NodeKey (crypto.VerifyStatement,
// as crypto.Open does), or holds the leaf from a source that did, such as
// a replicated state machine whose entries only a leader that verified
// them can write. Everything else Append checks is still checked (the
// origin, the encoding, the statement agreeing with the leaf's fields),
// with the same errors except ErrBadNodeSignature. Nothing is lost for
// auditors: VerifyLogDir (every leaf of an exported log) and VerifyBundle
// (one leaf with its proofs) verify the node signatures again offline;
// Restore, as after Append, checks the snapshot against its recorded root
// and signed checkpoints, not the leaf signatures. Callers that cannot
// meet the contract use Append. On error nothing changes.
func (l *Log) AppendTrusted(leaf *Leaf) (uint64, error) {
	if leaf.Origin != l.origin {
		return 0, fmt.Errorf("audit: leaf origin %q, log origin %q: %w", leaf.Origin, l.origin, ErrOriginMismatch)
	}
	enc, err := leaf.MarshalBinary()
	if err != nil {
		return 0, err
	}
	if err := leaf.checkStatement(); err != nil {
		return 0, err
	}
	return l.appendVerified(enc), nil
}

// AppendEncoded decodes an encoded leaf (Leaf.UnmarshalBinary) and appends
// it as Append does. A state machine whose entries carry encoded leaves
// calls this.
func (l *Log) AppendEncoded(encoded []byte) (uint64, error) {
	leaf, err := ParseLeaf(encoded)
	if err != nil {
		return 0, err
	}
	return l.Append(leaf)
}

// appendVerified appends an encoded leaf that has passed every check.
func (l *Log) appendVerified(enc []byte) uint64 {
	i := uint64(len(l.leaves))
	l.leaves = append(l.leaves, enc)
	l.tree.append(LeafHash(enc))
	return i
}

// Leaf returns a copy of the encoded leaf at index. Errors wrap ErrRange.
func (l *Log) Leaf(index uint64) ([]byte, error) {
	if index >= l.Size() {
		return nil, fmt.Errorf("audit: leaf %d of %d: %w", index, l.Size(), ErrRange)
	}
	return bytes.Clone(l.leaves[index]), nil
}

// InclusionProof returns the RFC 6962 inclusion proof (audit path) of leaf
// index in the tree of the first size leaves, verifiable with
// proof.VerifyInclusion. Errors wrap ErrRange unless index < size <= Size().
func (l *Log) InclusionProof(index, size uint64) ([][]byte, error) {
	return l.tree.inclusionProof(index, size)
}

// ConsistencyProof returns the RFC 6962 consistency proof from the tree of
// size1 leaves to the tree of size2 leaves, verifiable with
// proof.VerifyConsistency (empty when size1 is 0 or equals size2). Errors
// wrap ErrRange unless size1 <= size2 <= Size().
func (l *Log) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	return l.tree.consistencyProof(size1, size2)
}

// AddCheckpoint records a signed checkpoint note. It must verify under the
// log's verifier, name the log's origin, commit to at most Size() leaves
// with exactly the root of those leaves, and not be smaller than the latest
// recorded checkpoint. It returns the parsed checkpoint. On error nothing
// changes; errors wrap ErrBadCheckpointSignature, ErrMalformed,
// ErrTooLarge, ErrOriginMismatch, ErrRange (size beyond the log),
// ErrRootMismatch or ErrRollback.
func (l *Log) AddCheckpoint(signed []byte) (*Checkpoint, error) {
	cp, err := l.checkCheckpoint(signed)
	if err != nil {
		return nil, err
	}
	l.checkpoints = append(l.checkpoints, storedCheckpoint{note: bytes.Clone(signed), cp: cp})
	return cp, nil
}

func (l *Log) checkCheckpoint(signed []byte) (*Checkpoint, error) {
	cp, err := ParseCheckpoint(signed, l.verifier)
	if err != nil {
		return nil, err
	}
	if cp.Origin != l.origin {
		return nil, fmt.Errorf("audit: checkpoint origin %q, log origin %q: %w", cp.Origin, l.origin, ErrOriginMismatch)
	}
	if n := len(l.checkpoints); n > 0 && cp.Size < l.checkpoints[n-1].cp.Size {
		return nil, fmt.Errorf("audit: checkpoint size %d after size %d: %w", cp.Size, l.checkpoints[n-1].cp.Size, ErrRollback)
	}
	root, err := l.tree.rootAt(cp.Size)
	if err != nil {
		return nil, err
	}
	if root != cp.Root {
		return nil, fmt.Errorf("audit: checkpoint root at size %d differs from the log's: %w", cp.Size, ErrRootMismatch)
	}
	return cp, nil
}

// Checkpoints returns the number of recorded checkpoints.
func (l *Log) Checkpoints() int { return len(l.checkpoints) }

// Checkpoint returns recorded checkpoint i (0 = oldest): a copy of its
// signed note and its parsed body. Errors wrap ErrRange.
func (l *Log) Checkpoint(i int) ([]byte, *Checkpoint, error) {
	if i < 0 || i >= len(l.checkpoints) {
		return nil, nil, fmt.Errorf("audit: checkpoint %d of %d: %w", i, len(l.checkpoints), ErrRange)
	}
	c := l.checkpoints[i]
	cp := *c.cp
	cp.Extensions = append([]string(nil), c.cp.Extensions...)
	return bytes.Clone(c.note), &cp, nil
}

// LatestCheckpoint returns the newest recorded checkpoint, or an error
// wrapping ErrNoCheckpoint.
func (l *Log) LatestCheckpoint() ([]byte, *Checkpoint, error) {
	if len(l.checkpoints) == 0 {
		return nil, nil, fmt.Errorf("audit: log %q: %w", l.origin, ErrNoCheckpoint)
	}
	return l.Checkpoint(len(l.checkpoints) - 1)
}

// Bundle returns the self-contained proof for leaf index under the newest
// checkpoint: the encoded leaf, its index, its inclusion proof and the
// signed checkpoint note. Errors wrap ErrRange (no such leaf) or
// ErrNoCheckpoint (no checkpoint covers the leaf yet).
func (l *Log) Bundle(index uint64) (*Bundle, error) {
	if index >= l.Size() {
		return nil, fmt.Errorf("audit: leaf %d of %d: %w", index, l.Size(), ErrRange)
	}
	signed, cp, err := l.LatestCheckpoint()
	if err != nil {
		return nil, err
	}
	if index >= cp.Size {
		return nil, fmt.Errorf("audit: leaf %d not yet under a checkpoint (latest size %d): %w", index, cp.Size, ErrNoCheckpoint)
	}
	p, err := l.InclusionProof(index, cp.Size)
	if err != nil {
		return nil, err
	}
	return &Bundle{
		Version:    BundleVersion,
		Leaf:       bytes.Clone(l.leaves[index]),
		LeafIndex:  index,
		Inclusion:  p,
		Checkpoint: string(signed),
	}, nil
}
