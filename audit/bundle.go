package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// BundleVersion is the only bundle format version this package writes and
// reads.
const BundleVersion = 1

// MaxBundleLen bounds an encoded bundle. A bundle holds one leaf (at most
// MaxLeafLen bytes), at most 64 proof hashes and one checkpoint note
// (at most MaxCheckpointLen), all base64 or JSON-escaped; 256 KiB is ample.
const MaxBundleLen = 256 << 10

// maxProofLen is the longest inclusion proof: one hash per tree level of a
// tree of at most 2^64 leaves.
const maxProofLen = 64

// Bundle is the self-contained proof that one accepted update is in the
// log: an auditor holding only the log's verifier key checks it offline
// with VerifyBundle.
//
// Its JSON form (ParseBundle, Bundle.Marshal) is
//
//	{
//	  "version":    1,
//	  "leaf":       "<base64 of the encoded leaf (Leaf.MarshalBinary)>",
//	  "leaf_index": 17,
//	  "inclusion":  ["<base64 of a 32-byte hash>", ...],
//	  "checkpoint": "<the signed checkpoint note, verbatim text>"
//	}
//
// Bytes are standard padded base64 (encoding/json's []byte form);
// inclusion is the RFC 6962 audit path from the leaf to the checkpoint's
// root, bottom up; the tree size is the checkpoint's size.
type Bundle struct {
	Version    int      `json:"version"`
	Leaf       []byte   `json:"leaf"`
	LeafIndex  uint64   `json:"leaf_index"`
	Inclusion  [][]byte `json:"inclusion"`
	Checkpoint string   `json:"checkpoint"`
}

// Marshal returns the bundle's indented JSON, ending in a newline.
func (b *Bundle) Marshal() ([]byte, error) {
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("audit: encode bundle: %w", err)
	}
	return append(out, '\n'), nil
}

// ParseBundle decodes a bundle's JSON strictly: no unknown fields, no
// trailing data, version BundleVersion, every field present and every
// proof hash 32 bytes. Errors wrap ErrTooLarge (over MaxBundleLen or more
// than 64 proof hashes), ErrVersion or ErrMalformed. It does not verify
// anything cryptographic; use VerifyBundle.
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleLen {
		return nil, fmt.Errorf("audit: bundle is %d bytes, limit %d: %w", len(data), MaxBundleLen, ErrTooLarge)
	}
	// Pointers distinguish a missing field from a zero value.
	var raw struct {
		Version    *int      `json:"version"`
		Leaf       *[]byte   `json:"leaf"`
		LeafIndex  *uint64   `json:"leaf_index"`
		Inclusion  *[][]byte `json:"inclusion"`
		Checkpoint *string   `json:"checkpoint"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("audit: bundle JSON: %v: %w", err, ErrMalformed)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("audit: bundle JSON: trailing data: %w", ErrMalformed)
	}
	switch {
	case raw.Version == nil || raw.Leaf == nil || raw.LeafIndex == nil || raw.Inclusion == nil || raw.Checkpoint == nil:
		return nil, fmt.Errorf("audit: bundle JSON: missing field (need version, leaf, leaf_index, inclusion, checkpoint): %w", ErrMalformed)
	case *raw.Version != BundleVersion:
		return nil, fmt.Errorf("audit: bundle version %d, want %d: %w", *raw.Version, BundleVersion, ErrVersion)
	case len(*raw.Inclusion) > maxProofLen:
		return nil, fmt.Errorf("audit: bundle inclusion proof has %d hashes, limit %d: %w", len(*raw.Inclusion), maxProofLen, ErrTooLarge)
	}
	for i, h := range *raw.Inclusion {
		if len(h) != 32 {
			return nil, fmt.Errorf("audit: bundle inclusion hash %d is %d bytes, want 32: %w", i, len(h), ErrMalformed)
		}
	}
	return &Bundle{
		Version:    *raw.Version,
		Leaf:       *raw.Leaf,
		LeafIndex:  *raw.LeafIndex,
		Inclusion:  *raw.Inclusion,
		Checkpoint: *raw.Checkpoint,
	}, nil
}

// NodeKeys maps node ids to their enrolled Ed25519 public keys, as an
// auditor learns them from enrollment records. A nil NodeKeys means "trust
// the key recorded in each leaf": the signature then proves the leaf is
// self-consistent, not who the node is.
type NodeKeys map[string]ed25519.PublicKey

// check returns nil if keys is nil or maps the leaf's node id to exactly the
// leaf's node key, else an error wrapping ErrUnknownNode.
func (keys NodeKeys) check(l *Leaf) error {
	if keys == nil {
		return nil
	}
	k, ok := keys[l.NodeID]
	if !ok {
		return fmt.Errorf("audit: node %q is not enrolled: %w", l.NodeID, ErrUnknownNode)
	}
	if !k.Equal(l.NodeKey) {
		return fmt.Errorf("audit: node %q signed with a key other than its enrolled one: %w", l.NodeID, ErrUnknownNode)
	}
	return nil
}

// BundleReport is what a verified bundle proves.
type BundleReport struct {
	Leaf       *Leaf       // the decoded, signature-checked leaf
	LeafIndex  uint64      // its index in the log
	Checkpoint *Checkpoint // the signed checkpoint it is included under
}

// VerifyBundle checks a bundle offline, in this order: the checkpoint note
// is signed by verifier's key and well formed (a *CheckpointError wrapping
// ErrBadCheckpointSignature, ErrMalformed or ErrTooLarge); the leaf decodes,
// names the checkpoint's origin, its node signature verifies and its fields
// agree with the signed statement, and, if known is not nil, its node is
// enrolled with that key (a *LeafError wrapping ErrMalformed,
// ErrOriginMismatch, ErrBadNodeSignature, ErrStatementMismatch or
// ErrUnknownNode); the index lies inside the checkpoint and the inclusion
// proof leads from the leaf hash to the checkpoint's root (a *LeafError
// wrapping ErrRange or ErrInclusion).
func VerifyBundle(b *Bundle, verifier note.Verifier, known NodeKeys) (*BundleReport, error) {
	if b.Version != BundleVersion {
		return nil, fmt.Errorf("audit: bundle version %d, want %d: %w", b.Version, BundleVersion, ErrVersion)
	}
	cp, err := ParseCheckpoint([]byte(b.Checkpoint), verifier)
	if err != nil {
		return nil, &CheckpointError{File: "bundle", Err: err}
	}
	leaf, err := ParseLeaf(b.Leaf)
	if err == nil {
		err = checkLeaf(leaf, cp.Origin, known)
	}
	if err != nil {
		return nil, &LeafError{Index: b.LeafIndex, Err: err}
	}
	if b.LeafIndex >= cp.Size {
		return nil, &LeafError{Index: b.LeafIndex, Err: fmt.Errorf("audit: index %d outside checkpoint size %d: %w", b.LeafIndex, cp.Size, ErrRange)}
	}
	lh := LeafHash(b.Leaf)
	if err := proof.VerifyInclusion(hasher, b.LeafIndex, cp.Size, lh[:], b.Inclusion, cp.Root[:]); err != nil {
		return nil, &LeafError{Index: b.LeafIndex, Err: fmt.Errorf("audit: inclusion proof (tree size %d): %s: %w", cp.Size, proofFailure(err, "the leaf is not under the checkpoint's root"), ErrInclusion)}
	}
	return &BundleReport{Leaf: leaf, LeafIndex: b.LeafIndex, Checkpoint: cp}, nil
}

// checkLeaf runs every per-leaf check an auditor makes: origin, node
// signature and statement agreement, enrollment.
func checkLeaf(l *Leaf, origin string, known NodeKeys) error {
	if l.Origin != origin {
		return fmt.Errorf("audit: leaf origin %q, log origin %q: %w", l.Origin, origin, ErrOriginMismatch)
	}
	if err := l.Verify(); err != nil {
		return err
	}
	return known.check(l)
}
