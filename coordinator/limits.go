package coordinator

import (
	"fmt"
	"time"

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
// CreateJob refuses larger jobs, whose every update would otherwise fail
// "frame too large".
const MaxUpdateDim = (protocol.DefaultMaxFrameSize - UpdateEnvelopeOverhead) / 4

// checkNewJob applies the limits a new job must meet beyond
// JobSpec.Validate (which the state machine also applies to old log
// entries, so it keeps its original bounds): updates that fit a frame,
// and a round deadline of at least minDeadline.
func checkNewJob(s JobSpec, minDeadline time.Duration) error {
	switch {
	case s.Dim > MaxUpdateDim:
		return fmt.Errorf("%w: job %s: dim %d is above %d, the largest whose update (dim × 4 bytes + %d bytes of envelope) fits the protocol's %d-byte frame",
			ErrInvalid, s.ID, s.Dim, MaxUpdateDim, UpdateEnvelopeOverhead, protocol.DefaultMaxFrameSize)
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
