package coordinator

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors callers branch on. Errors returned by the coordinator
// wrap one of these (test with errors.Is) and add the failing id.
var (
	// ErrNotLeader: the operation needs the leader and this member is not
	// it. The error is a *NotLeaderError naming the leader when known.
	ErrNotLeader = errors.New("coordinator: not the leader")
	// ErrNotFound: no such job, round, node, member or model version.
	ErrNotFound = errors.New("coordinator: not found")
	// ErrExists: a job or node with that id already exists (with different
	// content; re-enrolling the same key is not an error).
	ErrExists = errors.New("coordinator: already exists")
	// ErrInvalid: the request is malformed (bad job spec, bad key, ...).
	ErrInvalid = errors.New("coordinator: invalid request")
	// ErrUnknownNode: the update's node is not enrolled.
	ErrUnknownNode = errors.New("coordinator: unknown node")
	// ErrRevoked: the node's enrollment was revoked.
	ErrRevoked = errors.New("coordinator: node revoked")
	// ErrRoundClosed: the round is no longer open (closing, closed, failed,
	// full, or its job ended).
	ErrRoundClosed = errors.New("coordinator: round closed")
	// ErrRoundNotOpen: the round has not been opened yet.
	ErrRoundNotOpen = errors.New("coordinator: round not open")
	// ErrBaseMismatch: the update was computed on another model version.
	ErrBaseMismatch = errors.New("coordinator: base model mismatch")
	// ErrDuplicate: the node already has a different update in this round.
	// The error is a *DuplicateError carrying the first update's ack.
	ErrDuplicate = errors.New("coordinator: duplicate update")
	// ErrBadUpdate: the envelope or the update in it failed a check
	// (signature, shape, non-finite value, hash, size). The wrapped error
	// from the Opener says which.
	ErrBadUpdate = errors.New("coordinator: bad update")
	// ErrRateLimited: the node sends too fast. The error is a
	// *RateLimitedError with the time to wait.
	ErrRateLimited = errors.New("coordinator: rate limited")
	// ErrModelPruned: the model version is older than the versions whose
	// parameters the cluster keeps (its hash is still known).
	ErrModelPruned = errors.New("coordinator: model parameters pruned")
	// ErrStale: a leader's command lost a race with a newer one (for
	// example a round closed by a newer leader); nothing changed.
	ErrStale = errors.New("coordinator: stale command")
	// ErrClosed: the coordinator is shut down.
	ErrClosed = errors.New("coordinator: closed")
	// ErrNotSampled: the round of a job with node sampling
	// (dp.sample_rate < 1) was announced to a sample of the nodes that
	// does not hold this one; it may take part in a later round.
	ErrNotSampled = errors.New("coordinator: node not in the round's sample")
)

// NotLeaderError says who the leader is, as far as this member knows. Any
// field may be empty when there is no known leader (an election is on, or
// this member is cut off).
type NotLeaderError struct {
	LeaderID string
	RaftAddr string
	QUICAddr string
	HTTPAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "coordinator: not the leader (no leader known)"
	}
	return fmt.Sprintf("coordinator: not the leader; leader is %s (quic %s, http %s)", e.LeaderID, e.QUICAddr, e.HTTPAddr)
}

// Unwrap returns ErrNotLeader.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// DuplicateError reports a second, different update from a node in a round
// where it already has one. Original is the acknowledgement of the first.
type DuplicateError struct{ Original Ack }

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("coordinator: duplicate update from node %s in job %s round %d (first at log index %d)",
		e.Original.Node, e.Original.Job, e.Original.Round, e.Original.LogIndex)
}

// Unwrap returns ErrDuplicate.
func (e *DuplicateError) Unwrap() error { return ErrDuplicate }

// RateLimitedError says how long a node must wait before its next update.
type RateLimitedError struct {
	Node       string
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("coordinator: node %s rate limited, retry after %v", e.Node, e.RetryAfter)
}

// Unwrap returns ErrRateLimited.
func (e *RateLimitedError) Unwrap() error { return ErrRateLimited }

// KeyInUseError refuses an enrolment whose public key another node holds
// (Holder), or held before it was revoked: one key speaks for one node
// only, so that a node cannot submit several updates per round, and a
// revoked key stays out under any id. It wraps ErrExists (HTTP 409).
type KeyInUseError struct {
	Node    string // the id asked for
	Holder  string // the node enrolled with the key
	Revoked bool   // Holder's enrolment is revoked
}

func (e *KeyInUseError) Error() string {
	if e.Revoked {
		return fmt.Sprintf("coordinator: node %s: public key belongs to node %s, which is revoked; a revoked key cannot be enrolled again", e.Node, e.Holder)
	}
	return fmt.Sprintf("coordinator: node %s: public key is already enrolled as node %s", e.Node, e.Holder)
}

// Unwrap returns ErrExists.
func (e *KeyInUseError) Unwrap() error { return ErrExists }
