package audit

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps one of them,
// so callers and tools branch with errors.Is; the typed errors LeafError and
// CheckpointError add the failing leaf index or checkpoint file.
var (
	// ErrMalformed means bytes do not follow the expected encoding: a leaf,
	// a checkpoint body, a bundle, a snapshot (truncated, trailing data,
	// lengths out of range, invalid UTF-8, non-canonical numbers).
	ErrMalformed = errors.New("audit: malformed input")
	// ErrVersion means a version field names a format this package does not
	// implement.
	ErrVersion = errors.New("audit: unsupported version")
	// ErrTooLarge means an input exceeds a built-in size limit; it is
	// reported before the data is read or allocated.
	ErrTooLarge = errors.New("audit: too large")
	// ErrBadNodeSignature means a leaf's statement signature does not verify
	// under the node key recorded in the leaf.
	ErrBadNodeSignature = errors.New("audit: bad node signature")
	// ErrStatementMismatch means a leaf's own fields (origin, job, round,
	// node id, update hash) disagree with the signed statement it carries,
	// or the statement does not parse.
	ErrStatementMismatch = errors.New("audit: leaf disagrees with its signed statement")
	// ErrUnknownNode means an auditor-supplied set of node keys does not
	// contain the leaf's node id, or holds a different key for it.
	ErrUnknownNode = errors.New("audit: unknown node or node key")
	// ErrOriginMismatch means a leaf or checkpoint names another log origin
	// than expected.
	ErrOriginMismatch = errors.New("audit: origin mismatch")
	// ErrBadCheckpointSignature means a checkpoint note carries no valid
	// signature by the expected log key.
	ErrBadCheckpointSignature = errors.New("audit: checkpoint not signed by the log key")
	// ErrRootMismatch means a Merkle root computed from leaves differs from
	// the root a checkpoint commits to.
	ErrRootMismatch = errors.New("audit: root mismatch")
	// ErrSizeMismatch means the number of leaves differs from the size a
	// checkpoint commits to.
	ErrSizeMismatch = errors.New("audit: size mismatch")
	// ErrInclusion means an inclusion proof does not place the leaf under
	// the checkpoint's root.
	ErrInclusion = errors.New("audit: inclusion proof failed")
	// ErrInconsistent means a consistency proof between two checkpoints
	// fails: the later one does not extend the earlier one (a fork).
	ErrInconsistent = errors.New("audit: checkpoints inconsistent")
	// ErrFork means two checkpoints of the same size commit to different
	// roots.
	ErrFork = errors.New("audit: fork: same size, different roots")
	// ErrRollback means a checkpoint is smaller than one before it.
	ErrRollback = errors.New("audit: checkpoint rolled back")
	// ErrRange means a leaf index or tree size lies outside the log.
	ErrRange = errors.New("audit: index or size out of range")
	// ErrNoCheckpoint means no checkpoint exists (yet) that covers the
	// requested leaf or log.
	ErrNoCheckpoint = errors.New("audit: no checkpoint")
	// ErrLayout means an exported log directory is missing files, has gaps
	// in its numbering or holds unexpected entries.
	ErrLayout = errors.New("audit: bad export layout")
	// ErrResultMismatch means a result leaf names a leaf that is not an
	// update leaf of its job and round (or not in the log at all).
	ErrResultMismatch = errors.New("audit: result names an update not of its round")
	// ErrDoubleUse means an update leaf is named by more than one result
	// entry (in one result or across rounds).
	ErrDoubleUse = errors.New("audit: update named by more than one result")
	// ErrBaseChain means a result's base model hash is not the previous
	// result's new model hash for the same job, or its round does not come
	// after the previous result's.
	ErrBaseChain = errors.New("audit: base model is not the previous round's model")
	// ErrQuorum means fewer than a quorum of members cosigned a checkpoint
	// covering a result leaf.
	ErrQuorum = errors.New("audit: result not cosigned by a quorum of members")
	// ErrBadCosignature means a cosignature line by a known cosigner does
	// not verify.
	ErrBadCosignature = errors.New("audit: bad cosignature")
	// ErrModelMismatch means a replayed round produced another model hash
	// than its result leaf records (or the base model differs).
	ErrModelMismatch = errors.New("audit: replayed model differs from the result")
)

// RoundError names the round (job, round and the result leaf's index) at
// which a result check failed. Err wraps one of the sentinels.
type RoundError struct {
	Job   string
	Round uint64
	Index uint64 // the result leaf's index
	Err   error
}

func (e *RoundError) Error() string {
	return fmt.Sprintf("job %s round %d (result leaf %d): %v", e.Job, e.Round, e.Index, e.Err)
}

// Unwrap returns the underlying error.
func (e *RoundError) Unwrap() error { return e.Err }

// LeafError names the leaf (by index) at which a check failed. Err wraps one
// of the sentinels.
type LeafError struct {
	Index uint64 // leaf index in the log
	File  string // the file the leaf came from, if any
	Err   error
}

func (e *LeafError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("leaf %d (%s): %v", e.Index, e.File, e.Err)
	}
	return fmt.Sprintf("leaf %d: %v", e.Index, e.Err)
}

// Unwrap returns the underlying error.
func (e *LeafError) Unwrap() error { return e.Err }

// CheckpointError names the checkpoint at which a check failed. File is the
// checkpoint's file (or a description such as "bundle"); Prev, when set, is
// the earlier checkpoint it was compared with. Err wraps one of the
// sentinels.
type CheckpointError struct {
	File string
	Prev string
	Err  error
}

func (e *CheckpointError) Error() string {
	if e.Prev != "" {
		return fmt.Sprintf("checkpoint %s (after %s): %v", e.File, e.Prev, e.Err)
	}
	return fmt.Sprintf("checkpoint %s: %v", e.File, e.Err)
}

// Unwrap returns the underlying error.
func (e *CheckpointError) Unwrap() error { return e.Err }

// LayoutError names a path in an exported log directory that breaks the
// layout: a missing folder or an unexpected entry. Err wraps ErrLayout or
// ErrNoCheckpoint.
type LayoutError struct {
	Path string // relative to the export directory
	Err  error
}

func (e *LayoutError) Error() string { return fmt.Sprintf("%s: %v", e.Path, e.Err) }

// Unwrap returns the underlying error.
func (e *LayoutError) Unwrap() error { return e.Err }
