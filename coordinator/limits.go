package coordinator

import (
	"fmt"
	"time"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// DefaultMaxFailedRounds is JobSpec.MaxFailedRounds when zero: a job
// stops by itself after this many consecutive failed rounds.
const DefaultMaxFailedRounds = 10

// DefaultMinRoundDeadline is Config.MinRoundDeadline when zero.
const DefaultMinRoundDeadline = time.Second

// UpdateEnvelopeOverhead bounds what a sealed update carries besides its
// dim × 4 bytes of float32 values, once framed as a SubmitUpdate: the
// update header, the signed statement and its signature, the age header
// (one X25519 stanza of about 100 bytes per coordinator), age's 16-byte
// tag per 64 KiB chunk (64 chunks at 4 MiB), and the frame's own fields.
// 64 KiB leaves room for far more coordinators than a cluster has
// (TestMaxUpdateDimFitsAFrame seals one at MaxUpdateDim and frames it).
const UpdateEnvelopeOverhead = 64 << 10

// MaxUpdateDim is the largest job dim whose updates fit one protocol frame
// of protocol.DefaultMaxFrameSize: (4 MiB − 64 KiB) / 4 = 1,032,192.
// Larger updates are streamed (protocol.SubmitStream); CreateJob bounds
// them by Config.MaxUpdateBytes and MaxStreamedDim.
const MaxUpdateDim = (protocol.DefaultMaxFrameSize - UpdateEnvelopeOverhead) / 4

// DefaultMaxUpdateBytes is Config.MaxUpdateBytes when zero: 32 MiB, a
// float32 update of 8,388,604 values. Streamed bodies and big models
// travel through the log as 1 MiB blob chunks into per-member files
// (blob.go) and big rounds close in bounded memory (derive_big.go), so
// the limit is no longer what one log entry can hold; what still grows
// with dim is every member's model memory (float64, dim × 8 bytes per
// kept version, keepModels of them while a job runs) and disk (each body
// in the Raft log and in its blob file). MaxUpdateBytesLimit is the
// update of the largest dim a job may have, MaxStreamedDim.
const (
	DefaultMaxUpdateBytes = 32 << 20
	MaxUpdateBytesLimit   = crypto.UpdateHeaderLen + 4*MaxStreamedDim
)

// UpdateBytes is the encoded size of a float32 update of dim values.
func UpdateBytes(dim int) int64 { return int64(crypto.UpdateHeaderLen) + 4*int64(dim) }

// checkNewJob applies the limits a new job must meet beyond
// JobSpec.Validate (which the state machine also applies to old log
// entries, so it keeps its original bounds): dim at most MaxStreamedDim,
// a float32 update (UpdateBytes) within maxUpdateBytes (Config.
// MaxUpdateBytes; updates over a frame travel as streams), a round
// deadline of at least minDeadline, and max_updates at most
// audit.MaxResultEntries (3,000), the most updates a round's result leaf
// can name: a larger round could never close.
func checkNewJob(s JobSpec, minDeadline time.Duration, maxUpdateBytes int64) error {
	switch {
	case s.Dim > MaxStreamedDim:
		return fmt.Errorf("%w: job %s: dim %d is above %d, the largest dim a job may have",
			ErrInvalid, s.ID, s.Dim, MaxStreamedDim)
	case UpdateBytes(s.Dim) > maxUpdateBytes:
		return fmt.Errorf("%w: job %s: an update of dim %d is %d bytes (dim × 4 + %d), above this cluster's per-update limit of %d bytes (mfn coordinator --max-update-bytes; the largest dim it allows is %d)",
			ErrInvalid, s.ID, s.Dim, UpdateBytes(s.Dim), crypto.UpdateHeaderLen, maxUpdateBytes, (maxUpdateBytes-crypto.UpdateHeaderLen)/4)
	case s.MaxUpdates > audit.MaxResultEntries:
		return fmt.Errorf("%w: job %s: max_updates %d is above %d, the most updates one round's audit result can name (shard the nodes across jobs or aggregate regionally: docs/SCALE.md)",
			ErrInvalid, s.ID, s.MaxUpdates, audit.MaxResultEntries)
	case time.Duration(s.RoundDeadline) < minDeadline:
		return fmt.Errorf("%w: job %s: round_deadline %v is below the minimum %v (durations are strings such as \"30s\")",
			ErrInvalid, s.ID, time.Duration(s.RoundDeadline), minDeadline)
	}
	return nil
}

// MaxStreamedDim is the largest dim a job may have at all (2^27 values,
// 512 MiB as float32): updates above MaxUpdateDim travel as streams
// (protocol.SubmitStream, Coordinator.SubmitStream).
const MaxStreamedDim = 1 << 27
