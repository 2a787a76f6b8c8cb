package coordinator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/internal/telemetry"
	"github.com/mfn/mfn/protocol"
)

// QUICHandler serves the node protocol (package protocol) from a member:
// hello with the leader hint, model fetches from the replicated state, and
// update submission through Submit. Errors reach nodes as protocol error
// codes (see ProtocolError).
type QUICHandler struct {
	c       *Coordinator
	metrics *quicMetrics
	tracer  trace.Tracer          // nil: tracing off
	rounds  *telemetry.RoundSpans // nil: tracing off

	mu    sync.Mutex
	model map[string]encodedModel // latest encoded model per job
}

type encodedModel struct {
	version uint64
	bytes   []byte
	hash    Hash
}

// NewQUICHandler returns the protocol handler of c.
func NewQUICHandler(c *Coordinator) *QUICHandler {
	return &QUICHandler{c: c, model: map[string]encodedModel{}, metrics: newQUICMetrics(c.cfg.Registry, c.logger)}
}

// notReadyRetry is the RetryAfter of a CodeNotReady answer: a restarted
// member catches up within a few Raft heartbeats.
const notReadyRetry = 500 * time.Millisecond

// errNotReady answers a key this member does not know while it catches up.
var errNotReady = &protocol.ProtocolError{Code: protocol.CodeNotReady, RetryAfter: notReadyRetry,
	Message: "this member is catching up with the cluster and does not know this key yet; try another member"}

// VerifyNodeKey is the QUIC server's client certificate check, counting
// refusals (mfn_coordinator_quic_refused_total{reason="unknown_key"}) and
// logging them sampled. See Coordinator.VerifyNodeKey.
func (h *QUICHandler) VerifyNodeKey(pub ed25519.PublicKey) error {
	err := h.c.VerifyNodeKey(pub)
	if err != nil {
		h.metrics.refuse(RefusedUnknownKey, pub)
	}
	return err
}

// knownNode returns the node id of key, or the error to answer: CodeNotReady
// while this member has not caught up, CodeUnauthorized once it has.
func (h *QUICHandler) knownNode(key ed25519.PublicKey) (string, error) {
	if id, ok := h.c.fsm.nodeByKey(key); ok {
		return id, nil
	}
	if !h.c.CaughtUp() {
		h.metrics.refuse(RefusedNotReady, key)
		return "", errNotReady
	}
	h.metrics.refuse(RefusedUnknownKey, key)
	return "", &protocol.ProtocolError{Code: protocol.CodeUnauthorized, Message: "key is not an enrolled node"}
}

var _ protocol.Handler = (*QUICHandler)(nil)

// VerifyNodeKey is the QUIC server's client certificate check: only keys of
// enrolled, non-revoked nodes may connect. A member that has not caught up
// with the cluster (CaughtUp) admits keys it does not know yet, as it
// cannot tell them from nodes enrolled after its snapshot; their Hello is
// then answered protocol.CodeNotReady until it has caught up, and
// CodeUnauthorized after, so the node can tell a final refusal from a
// member that does not know yet. Every request checks the key again.
func (c *Coordinator) VerifyNodeKey(pub ed25519.PublicKey) error {
	if _, ok := c.fsm.nodeByKey(pub); !ok && c.CaughtUp() {
		return fmt.Errorf("%w: key %x is not an enrolled node", ErrUnknownNode, []byte(pub))
	}
	return nil
}

// HandleHello admits an enrolled node whose claimed id matches its key and
// tells it the cluster origin and the leader's QUIC address.
func (h *QUICHandler) HandleHello(_ context.Context, peer protocol.Peer, m *protocol.Hello) (*protocol.HelloAck, error) {
	id, err := h.knownNode(peer.Key)
	if err != nil {
		return nil, err
	}
	if m.NodeID != "" && m.NodeID != id {
		h.metrics.refuse(RefusedUnauthorized, peer.Key)
		return nil, &protocol.ProtocolError{Code: protocol.CodeUnauthorized, Message: fmt.Sprintf("key is enrolled as node %q, not %q", id, m.NodeID)}
	}
	ack := &protocol.HelloAck{ClusterOrigin: h.c.cfg.Origin}
	if l, ok := h.c.Leader(); ok {
		ack.LeaderHint = l.QUICAddr
		ack.Term = h.c.leaderTerm()
	}
	return ack, nil
}

// FetchModel serves a chunk of a model version (crypto update encoding of
// float64 parameters; its SHA-256 is the version's hash).
func (h *QUICHandler) FetchModel(_ context.Context, peer protocol.Peer, req *protocol.ModelFetch) (*protocol.ModelChunk, error) {
	if _, err := h.knownNode(peer.Key); err != nil {
		return nil, err
	}
	if j, ok := h.c.fsm.job(req.JobID); ok && modelEncodedSize(j.Spec.Dim) > bigModelBytes {
		// A big model: encode just the asked range (model_range.go), at
		// most maxModelRange bytes whatever the node asks for.
		data, total, hash, err := h.c.fsm.modelRange(req.JobID, req.Version, req.Offset, min(req.Length, maxModelRange))
		if err != nil {
			return nil, ProtocolError(err)
		}
		if req.Offset > total {
			return nil, &protocol.ProtocolError{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("offset %d beyond model size %d", req.Offset, total)}
		}
		return &protocol.ModelChunk{Offset: req.Offset, Total: total, Hash: hash, Data: data}, nil
	}
	em, err := h.encoded(req.JobID, req.Version)
	if err != nil {
		return nil, ProtocolError(err)
	}
	return protocol.ModelChunkOf(em.bytes, em.hash, req)
}

func (h *QUICHandler) encoded(job string, version uint64) (encodedModel, error) {
	h.mu.Lock()
	em, ok := h.model[job]
	h.mu.Unlock()
	if ok && em.version == version {
		return em, nil
	}
	m, err := h.c.Model(job, version)
	if err != nil {
		return encodedModel{}, err
	}
	em = encodedModel{version: version, bytes: ModelBytes(m.Params), hash: m.Hash}
	if j, ok := h.c.fsm.job(job); ok && j.ModelVersion == version {
		h.mu.Lock()
		h.model[job] = em
		h.mu.Unlock()
	}
	return em, nil
}

// Submit accepts a sealed update (Coordinator.Submit with the connection's
// key) and acknowledges it once committed. With tracing on (see
// SetTracerProvider) it records the span "coordinator.ingest", continuing
// the node's trace when the update came with a valid traceparent (a
// malformed one starts a new trace), with children ingest.open,
// ingest.checks, ingest.raft_apply and ingest.ack.
func (h *QUICHandler) Submit(ctx context.Context, peer protocol.Peer, sealed []byte) (*protocol.Ack, error) {
	if h.tracer == nil {
		return h.submit(ctx, peer, sealed)
	}
	ctx = telemetry.Extract(ctx, protocol.TraceParentFrom(ctx))
	ctx, span := h.tracer.Start(ctx, "coordinator.ingest", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.Int("mfn.sealed_bytes", len(sealed))))
	if peer.Addr != nil {
		span.SetAttributes(attribute.String("mfn.peer_addr", peer.Addr.String()))
	}
	defer span.End()
	note := ingestNote{link: func(job string, round uint64, node string) {
		h.rounds.Update(job, round, node, span.SpanContext())
	}}
	ack, err := h.c.Submit(withIngestNote(ctx, &note), peer.Key, sealed)
	if err != nil {
		reason := rejectReason(err)
		span.RecordError(err)
		span.SetStatus(codes.Error, reason)
		span.SetAttributes(attribute.String("mfn.result", "rejected"), attribute.String("mfn.reason", reason))
		return nil, ProtocolError(err)
	}
	span.SetAttributes(attribute.String("mfn.result", "accepted"))
	return &protocol.Ack{LogIndex: ack.LogIndex, LeafIndex: ack.LeafIndex}, nil
}

func (h *QUICHandler) submit(ctx context.Context, peer protocol.Peer, sealed []byte) (*protocol.Ack, error) {
	ack, err := h.c.Submit(ctx, peer.Key, sealed)
	if err != nil {
		return nil, ProtocolError(err)
	}
	return &protocol.Ack{LogIndex: ack.LogIndex, LeafIndex: ack.LeafIndex}, nil
}

// SubmitStream accepts a streamed update (Coordinator.SubmitStream with
// the connection's key) and acknowledges it once committed. Tracing is as
// for Submit.
func (h *QUICHandler) SubmitStream(ctx context.Context, peer protocol.Peer, req *protocol.SubmitStream, body io.Reader) (*protocol.Ack, error) {
	hint := StreamHint{Job: req.JobID, Round: req.Round, Size: int64(min(req.Size, math.MaxInt64))}
	var span trace.Span
	if h.tracer != nil {
		ctx = telemetry.Extract(ctx, protocol.TraceParentFrom(ctx))
		ctx, span = h.tracer.Start(ctx, "coordinator.ingest", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.Int64("mfn.sealed_bytes", hint.Size), attribute.Bool("mfn.streamed", true)))
		defer span.End()
		ctx = withIngestNote(ctx, &ingestNote{link: func(job string, round uint64, node string) {
			h.rounds.Update(job, round, node, span.SpanContext())
		}})
	}
	ack, err := h.c.SubmitStream(ctx, peer.Key, hint, body)
	if err != nil {
		if span != nil {
			reason := rejectReason(err)
			span.RecordError(err)
			span.SetStatus(codes.Error, reason)
			span.SetAttributes(attribute.String("mfn.result", "rejected"), attribute.String("mfn.reason", reason))
		}
		return nil, ProtocolError(err)
	}
	if span != nil {
		span.SetAttributes(attribute.String("mfn.result", "accepted"))
	}
	return &protocol.Ack{LogIndex: ack.LogIndex, LeafIndex: ack.LeafIndex}, nil
}

var _ protocol.StreamHandler = (*QUICHandler)(nil)

// SetTracerProvider turns tracing on for updates arriving through h
// (spans described at Submit) and records round spans (see
// telemetry.RoundSpans) from the coordinator's events while this member
// leads, linking the ingest spans of the updates accepted here. Call it
// before serving; stop ends the event follower (it also ends when the
// coordinator closes). A nil tp leaves tracing off and returns a no-op.
func (h *QUICHandler) SetTracerProvider(tp trace.TracerProvider) (stop func()) {
	if tp == nil {
		return func() {}
	}
	h.tracer = tp.Tracer(telemetry.TracerCoordinator)
	h.rounds = telemetry.NewRoundSpans(tp)
	events, cancel := h.c.Subscribe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range events {
			traceRoundEvent(h.rounds, ev, h.c.IsLeader)
		}
	}()
	return func() { cancel(); <-done }
}

// traceRoundEvent feeds one coordinator event to rs. Rounds are followed
// from their opening on the member that leads then; the others' events
// for that round are ignored by rs.
func traceRoundEvent(rs *telemetry.RoundSpans, ev Event, leading func() bool) {
	switch ev.Kind {
	case EventRoundOpened:
		if leading() {
			rs.Opened(ev.Job, ev.Round, ev.At)
		}
	case EventRoundSealed:
		rs.Sealed(ev.Job, ev.Round, ev.At)
	case EventRoundClosed:
		rs.Closed(ev.Job, ev.Round, ev.At, telemetry.OutcomeClosed, ev.Detail)
	case EventRoundFailed:
		rs.Closed(ev.Job, ev.Round, ev.At, telemetry.OutcomeFailed, ev.Detail)
	}
}

// ProtocolError maps a coordinator error to the protocol error a node
// receives: not leader (with the leader's QUIC address), round closed,
// duplicate, rate limited (with retry-after), unauthorized, not found,
// bad request, unavailable.
func ProtocolError(err error) *protocol.ProtocolError {
	var nl *NotLeaderError
	var rl *RateLimitedError
	switch {
	case errors.As(err, &nl):
		msg := "no leader is known (this member cannot reach a quorum; try another member)"
		if nl.LeaderID != "" {
			msg = "leader is " + nl.LeaderID
		}
		return &protocol.ProtocolError{Code: protocol.CodeNotLeader, LeaderAddr: nl.QUICAddr, Message: msg}
	case errors.As(err, &rl):
		return &protocol.ProtocolError{Code: protocol.CodeRateLimited, RetryAfter: rl.RetryAfter}
	case errors.Is(err, ErrRoundClosed), errors.Is(err, ErrRoundNotOpen), errors.Is(err, ErrBaseMismatch), errors.Is(err, ErrNotSampled):
		return &protocol.ProtocolError{Code: protocol.CodeRoundClosed, Message: limit(err.Error())}
	case errors.Is(err, ErrDuplicate):
		return &protocol.ProtocolError{Code: protocol.CodeDuplicate, Message: limit(err.Error())}
	case errors.Is(err, ErrUnknownNode), errors.Is(err, ErrRevoked), errors.Is(err, crypto.ErrUnknownNode):
		return &protocol.ProtocolError{Code: protocol.CodeUnauthorized, Message: limit(err.Error())}
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrModelPruned):
		return &protocol.ProtocolError{Code: protocol.CodeNotFound, Message: limit(err.Error())}
	case errors.Is(err, ErrBadUpdate), errors.Is(err, ErrInvalid):
		return &protocol.ProtocolError{Code: protocol.CodeBadRequest, Message: limit(err.Error())}
	case errors.Is(err, ErrClosed), errors.Is(err, context.DeadlineExceeded):
		return &protocol.ProtocolError{Code: protocol.CodeUnavailable, RetryAfter: time.Second}
	}
	return &protocol.ProtocolError{Code: protocol.CodeInternal, Message: "internal error"}
}

// limit keeps an error message within the protocol's 1024-byte field.
func limit(s string) string {
	if len(s) > 1000 {
		return s[:1000]
	}
	return s
}

// ProtocolAnnouncer pushes announcements through a protocol server's
// broadcast. The server keeps each announcement current for nodes that
// subscribe later until the round's hard deadline (the round can stay open
// that long) or until Retract, which the leader calls when the round closes
// or fails.
type ProtocolAnnouncer struct {
	Server interface {
		BroadcastUntil(ann *protocol.RoundAnnouncement, expires time.Time) error
		Retract(jobID string, round uint64) bool
	}
}

// targetedBroadcaster is implemented by servers that can tell a subset of
// their subscribers (protocol.Server.BroadcastTo).
type targetedBroadcaster interface {
	BroadcastTo(ann *protocol.RoundAnnouncement, expires time.Time, to func(ed25519.PublicKey) bool) error
}

// Announce implements Announcer. A sampled round (an.Nodes not nil) is
// told only to its nodes when the server can target; otherwise to every
// node (the unsampled ones are then refused with ErrNotSampled).
func (a ProtocolAnnouncer) Announce(an Announcement) {
	expires := an.HardDeadline
	if expires.Before(an.Deadline) {
		expires = an.Deadline
	}
	ann := &protocol.RoundAnnouncement{
		JobID: an.Job, Round: an.Round, BaseVersion: an.BaseVersion, BaseHash: an.BaseHash,
		Deadline: an.Deadline, ModelSize: uint64(crypto.UpdateHeaderLen + 8*an.Dim),
		MinUpdates: uint32(an.MinUpdates), MaxUpdates: uint32(an.MaxUpdates),
		Metadata: AnnouncementMetadata(an),
	}
	if tb, ok := a.Server.(targetedBroadcaster); ok && an.Nodes != nil {
		to := make(map[string]bool, len(an.Nodes))
		for _, k := range an.Nodes {
			to[string(k)] = true
		}
		_ = tb.BroadcastTo(ann, expires, func(k ed25519.PublicKey) bool { return to[string(k)] })
		return
	}
	_ = a.Server.BroadcastUntil(ann, expires)
}

// AnnouncementMetadata is the metadata of an's protocol announcement:
// "task", "dim" (the parameter count, decimal) and, when the job names a
// model shape, "shape": its layer sizes from input to output, decimal and
// comma-separated ("18,32,4" is an MLP with 18 inputs, 32 hidden units
// and 4 classes). A shape too long for one metadata value is left out;
// nodes then infer the model from the task and dim.
func AnnouncementMetadata(an Announcement) map[string]string {
	md := map[string]string{"task": an.Task, "dim": strconv.Itoa(an.Dim)}
	if len(an.Shape) > 0 {
		parts := make([]string, len(an.Shape))
		for i, d := range an.Shape {
			parts[i] = strconv.Itoa(d)
		}
		if s := strings.Join(parts, ","); len(s) <= protocol.MaxMetaValLen {
			md["shape"] = s
		}
	}
	if an.DP != "" {
		md["dp"] = an.DP // privacy.Announced: "local;clip=C;z=Z"
	}
	if an.Schema != "" {
		md["schema"] = an.Schema // DataSchema.Encode (jobschema.go)
	}
	if an.Eval {
		md["eval"] = "final" // cross-site evaluation (crosssite.go)
	}
	return md
}

// Retract implements Retracter.
func (a ProtocolAnnouncer) Retract(job string, round uint64) { a.Server.Retract(job, round) }
