package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
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
	span := startIngestSpan(ctx, "ingest.open")
	env, err := c.cfg.Opener.Open(sealed, c.fsm.nodeKey)
	span.end(err)
	if err != nil {
		switch {
		case errors.Is(err, ErrRevoked):
			return Ack{}, err
		case errors.Is(err, ErrUnknownNode), errors.Is(err, crypto.ErrUnknownNode):
			return Ack{}, fmt.Errorf("%w: %v", ErrUnknownNode, err)
		}
		return Ack{}, fmt.Errorf("%w: %w", ErrBadUpdate, err)
	}
	noteIngest(ctx, env.Job, env.Round, env.Node)
	span = startIngestSpan(ctx, "ingest.checks")
	j, err := c.checkUpdate(peerKey, env)
	span.end(err)
	if err != nil {
		return c.resolveDuplicate(err, env.UpdateHash)
	}
	c.cache.put(env.Job, env.Round, env.Node, env.UpdateHash, env.Update)
	return c.commitUpdate(ctx, j, env, sealed, nil)
}

// commitUpdate proposes a checked update's add-update entry and returns
// its acknowledgement once applied (the original one for a retry), poking
// the round engine when the round is full. Both ingest paths end here: a
// framed update carries its sealed bytes, a streamed one (sealed nil) the
// reference of its body, already committed as blob chunks.
func (c *Coordinator) commitUpdate(ctx context.Context, j Job, env *Envelope, sealed []byte, body *BlobRef) (Ack, error) {
	span := startIngestSpan(ctx, "ingest.raft_apply")
	res, err := c.propose(ctx, cmdAddUpdate, &addUpdateCmd{
		Job: env.Job, Round: env.Round, Node: env.Node, BaseHash: env.BaseHash, UpdateHash: env.UpdateHash,
		Samples: env.Samples, Statement: env.Statement, Signature: env.Signature, Sealed: sealed, Body: body, AcceptedAt: c.now(),
	})
	span.end(err)
	if err != nil {
		return c.resolveDuplicate(err, env.UpdateHash)
	}
	span = startIngestSpan(ctx, "ingest.ack")
	if n, ok := c.fsm.roundSummary(env.Job, env.Round); ok && n.Updates >= j.Spec.MaxUpdates {
		c.poke()
	}
	span.ack(res.ack)
	return res.ack, nil
}

// checkUpdate runs the checks between opening an envelope and proposing
// it: connection identity, origin, job and round, base model, shape and
// finite values, and returns the update's job. Its errors are the ones
// Submit documents; a *DuplicateError goes through resolveDuplicate.
func (c *Coordinator) checkUpdate(peerKey ed25519.PublicKey, env *Envelope) (Job, error) {
	j, err := c.checkUpdateHead(peerKey, env)
	if err != nil {
		return Job{}, err
	}
	if len(env.Update) != j.Spec.Dim {
		return Job{}, fmt.Errorf("%w: update has %d values, job %s has dim %d", ErrBadUpdate, len(env.Update), j.Spec.ID, j.Spec.Dim)
	}
	for i, v := range env.Update {
		if !finite(v) {
			return Job{}, fmt.Errorf("%w: value %d is %v", ErrBadUpdate, i, v)
		}
	}
	return j, nil
}

// checkUpdateHead runs the checks of checkUpdate that need no values:
// connection identity, origin, job and round, base model.
func (c *Coordinator) checkUpdateHead(peerKey ed25519.PublicKey, env *Envelope) (Job, error) {
	if peerKey == nil {
		if err := c.allow("node:" + env.Node); err != nil {
			return Job{}, err
		}
	} else {
		key, err := c.fsm.nodeKey(env.Node)
		if err != nil {
			return Job{}, err
		}
		if !bytes.Equal(key, peerKey) {
			return Job{}, fmt.Errorf("%w: statement names node %s, the connection is another node's key", ErrBadUpdate, env.Node)
		}
	}
	if env.Origin != c.cfg.Origin {
		return Job{}, fmt.Errorf("%w: statement origin %q, cluster is %q", ErrBadUpdate, env.Origin, c.cfg.Origin)
	}
	j, ok := c.fsm.job(env.Job)
	if !ok {
		return Job{}, fmt.Errorf("%w: job %s", ErrNotFound, env.Job)
	}
	if err := c.fsm.precheck(env.Job, env.Round, env.Node, env.BaseHash); err != nil {
		return Job{}, err
	}
	if err := checkStatementMetrics(env.Statement); err != nil { // roundmetrics.go
		return Job{}, err
	}
	return j, nil
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
		{ErrBadUpdate, "bad_update"}, {ErrClosed, "closed"}, {ErrNotSampled, "not_sampled"},
	} {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "internal"
}

// ---- ingest spans ----

// ingestSpan is a child span of the ingest span in a Submit context, or
// nothing (a nil span) when that context carries no recording span: with
// tracing off, Submit pays one context lookup per phase.
type ingestSpan struct{ s trace.Span }

// startIngestSpan starts phase name under ctx's recording span, if any.
func startIngestSpan(ctx context.Context, name string) ingestSpan {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ingestSpan{}
	}
	_, s := parent.TracerProvider().Tracer(tracerName).Start(ctx, name)
	return ingestSpan{s}
}

// end records err (if any) and ends the phase.
func (sp ingestSpan) end(err error) {
	if sp.s == nil {
		return
	}
	if err != nil {
		sp.s.RecordError(err)
		sp.s.SetStatus(codes.Error, rejectReason(err))
	}
	sp.s.End()
}

// ack ends the ack phase with the acknowledgement's indexes.
func (sp ingestSpan) ack(a Ack) {
	if sp.s == nil {
		return
	}
	sp.s.SetAttributes(attribute.Int64("mfn.log_index", int64(a.LogIndex)), attribute.Int64("mfn.leaf_index", int64(a.LeafIndex)))
	sp.s.End()
}

// tracerName is the instrumentation scope of the coordinator's spans
// (telemetry.TracerCoordinator).
const tracerName = "github.com/mfn/mfn/coordinator"

// ingestNote is filled by Submit with the update's identity once its
// envelope is open, for the caller that started the ingest span (the
// QUIC handler links it to the round span and names it in attributes).
type ingestNote struct {
	job, node string
	round     uint64
	ok        bool
	// link, when set, is called as soon as the update's round is known,
	// while that round is still open (a round can close before Submit
	// returns, so linking afterwards could miss it).
	link func(job string, round uint64, node string)
}

type ingestNoteKey struct{}

// withIngestNote returns ctx carrying n for noteIngest to fill.
func withIngestNote(ctx context.Context, n *ingestNote) context.Context {
	return context.WithValue(ctx, ingestNoteKey{}, n)
}

// noteIngest records the update's identity in ctx's ingestNote, and on its
// recording span, if any.
func noteIngest(ctx context.Context, job string, round uint64, node string) {
	n, _ := ctx.Value(ingestNoteKey{}).(*ingestNote)
	if n == nil {
		return
	}
	n.job, n.round, n.node, n.ok = job, round, node, true
	if n.link != nil {
		n.link(job, round, node)
	}
	if s := trace.SpanFromContext(ctx); s.IsRecording() {
		s.SetAttributes(attribute.String("mfn.job", job), attribute.Int64("mfn.round", int64(round)), attribute.String("mfn.node", node))
	}
}
