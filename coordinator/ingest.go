package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/mfn/mfn/crypto"
)

// Submit accepts one sealed update envelope from a node and returns its
// acknowledgement once the update is committed through Raft and applied
// (ARCHITECTURE steps 5 and 6). peerKey is the Ed25519 key the node's
// connection authenticated with; nil for in-process callers, which skips
// the check that the statement's node owns the connection.
//
// The checks, in order: leader (else *NotLeaderError), size, per-node rate
// (*RateLimitedError), envelope (decrypts, node enrolled and not revoked,
// signature, update hash, finite values: ErrBadUpdate, ErrUnknownNode,
// ErrRevoked), connection identity and cluster origin (ErrBadUpdate), job
// and round (ErrNotFound, ErrRoundNotOpen, ErrRoundClosed), base model
// (ErrBaseMismatch), shape (ErrBadUpdate), and one update per node and
// round. A node re-sending the update it already had acknowledged (same
// update hash) gets the original Ack back and nothing is stored twice; a
// different update gets a *DuplicateError.
func (c *Coordinator) Submit(ctx context.Context, peerKey ed25519.PublicKey, sealed []byte) (Ack, error) {
	ack, err := c.submit(ctx, peerKey, sealed)
	if err != nil {
		c.metrics.updates.WithLabelValues("rejected", rejectReason(err)).Inc()
		return Ack{}, err
	}
	c.metrics.updates.WithLabelValues("accepted", "").Inc()
	return ack, nil
}

func (c *Coordinator) submit(ctx context.Context, peerKey ed25519.PublicKey, sealed []byte) (Ack, error) {
	if c.closed.Load() {
		return Ack{}, ErrClosed
	}
	if err := c.awaitLeading(ctx); err != nil {
		return Ack{}, err
	}
	if len(sealed) > c.cfg.MaxSealedBytes {
		return Ack{}, fmt.Errorf("%w: %d bytes exceeds the limit of %d", ErrBadUpdate, len(sealed), c.cfg.MaxSealedBytes)
	}
	if peerKey != nil {
		if err := c.allow("key:" + hex.EncodeToString(peerKey)); err != nil {
			return Ack{}, err
		}
	}
	if c.cfg.Opener == nil {
		return Ack{}, fmt.Errorf("%w: no opener configured", ErrBadUpdate)
	}
	env, err := c.cfg.Opener.Open(sealed, c.fsm.nodeKey)
	if err != nil {
		switch {
		case errors.Is(err, ErrRevoked):
			return Ack{}, err
		case errors.Is(err, ErrUnknownNode), errors.Is(err, crypto.ErrUnknownNode):
			return Ack{}, fmt.Errorf("%w: %v", ErrUnknownNode, err)
		}
		return Ack{}, fmt.Errorf("%w: %w", ErrBadUpdate, err)
	}
	if peerKey == nil {
		if err := c.allow("node:" + env.Node); err != nil {
			return Ack{}, err
		}
	} else {
		key, err := c.fsm.nodeKey(env.Node)
		if err != nil {
			return Ack{}, err
		}
		if !bytes.Equal(key, peerKey) {
			return Ack{}, fmt.Errorf("%w: statement names node %s, the connection is another node's key", ErrBadUpdate, env.Node)
		}
	}
	if env.Origin != c.cfg.Origin {
		return Ack{}, fmt.Errorf("%w: statement origin %q, cluster is %q", ErrBadUpdate, env.Origin, c.cfg.Origin)
	}
	j, ok := c.fsm.job(env.Job)
	if !ok {
		return Ack{}, fmt.Errorf("%w: job %s", ErrNotFound, env.Job)
	}
	if err := c.fsm.precheck(env.Job, env.Round, env.Node, env.BaseHash); err != nil {
		return c.resolveDuplicate(err, env.UpdateHash)
	}
	if len(env.Update) != j.Spec.Dim {
		return Ack{}, fmt.Errorf("%w: update has %d values, job %s has dim %d", ErrBadUpdate, len(env.Update), j.Spec.ID, j.Spec.Dim)
	}
	for i, v := range env.Update {
		if !finite(v) {
			return Ack{}, fmt.Errorf("%w: value %d is %v", ErrBadUpdate, i, v)
		}
	}
	c.cache.put(env.Job, env.Round, env.Node, env.UpdateHash, env.Update)
	res, err := c.propose(ctx, cmdAddUpdate, &addUpdateCmd{
		Job: env.Job, Round: env.Round, Node: env.Node, BaseHash: env.BaseHash, UpdateHash: env.UpdateHash,
		Samples: env.Samples, Statement: env.Statement, Signature: env.Signature, Sealed: sealed, AcceptedAt: c.now(),
	})
	if err != nil {
		return c.resolveDuplicate(err, env.UpdateHash)
	}
	if n, ok := c.fsm.roundSummary(env.Job, env.Round); ok && n.Updates >= j.Spec.MaxUpdates {
		c.poke()
	}
	return res.ack, nil
}

// awaitLeading returns nil once this member leads with its state caught up
// (a fresh leader first applies the entries of earlier terms), or a
// *NotLeaderError.
func (c *Coordinator) awaitLeading(ctx context.Context) error {
	deadline := time.Now().Add(c.cfg.ApplyTimeout)
	for !c.leading.Load() {
		if !c.IsLeader() || time.Now().After(deadline) {
			return c.notLeader()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// resolveDuplicate turns a DuplicateError for the same update (a retry)
// into the original acknowledgement.
func (c *Coordinator) resolveDuplicate(err error, h Hash) (Ack, error) {
	var dup *DuplicateError
	if errors.As(err, &dup) {
		if _, hh, ok := c.fsm.ackFor(dup.Original.Job, dup.Original.Round, dup.Original.Node); ok && hh == h {
			return dup.Original, nil
		}
	}
	return Ack{}, err
}

// allow applies the per-node token bucket.
func (c *Coordinator) allow(key string) error {
	c.limMu.Lock()
	lim, ok := c.limiters[key]
	if !ok {
		lim = rate.NewLimiter(c.cfg.NodeRate, c.cfg.NodeBurst)
		c.limiters[key] = lim
	}
	c.limMu.Unlock()
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return &RateLimitedError{Node: key, RetryAfter: d.Round(time.Millisecond) + time.Millisecond}
	}
	return nil
}

// rejectReason is the metric label of a submission error.
func rejectReason(err error) string {
	for _, r := range []struct {
		err   error
		label string
	}{
		{ErrNotLeader, "not_leader"}, {ErrRateLimited, "rate_limited"}, {ErrUnknownNode, "unknown_node"},
		{ErrRevoked, "revoked"}, {ErrDuplicate, "duplicate"}, {ErrRoundClosed, "round_closed"},
		{ErrRoundNotOpen, "round_not_open"}, {ErrBaseMismatch, "base_mismatch"}, {ErrNotFound, "not_found"},
		{ErrBadUpdate, "bad_update"}, {ErrClosed, "closed"},
	} {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "internal"
}
