package telemetry

import (
	"sync"
	"time"

	"context"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// MaxOpenRounds bounds the rounds RoundSpans follows at once; a round
// opened beyond it is not traced.
const MaxOpenRounds = 1024

// Round outcomes passed to RoundSpans.Closed.
const (
	OutcomeClosed = "closed"
	OutcomeFailed = "failed"
	// OutcomeAbandoned ends a round whose closing event never came, when
	// the job's next round opens.
	OutcomeAbandoned = "abandoned"
)

type roundKey struct {
	job   string
	round uint64
}

type roundState struct {
	ctx   context.Context
	span  trace.Span
	phase trace.Span // round.open, then round.aggregate
}

// RoundSpans records one "round" span per round from its events:
//
//	round                 Opened .. Closed, links to each update's ingest span
//	├── round.open        Opened .. Sealed (collecting updates)
//	├── round.seal        at Sealed
//	├── round.aggregate   Sealed .. Closed
//	└── round.close       at Closed (attribute mfn.outcome)
//
// A nil *RoundSpans does nothing, so callers need no "tracing on" test.
// Methods are safe for concurrent use.
type RoundSpans struct {
	tracer trace.Tracer
	mu     sync.Mutex
	open   map[roundKey]*roundState
}

// NewRoundSpans returns the round recorder of tp, or nil when tp is nil.
func NewRoundSpans(tp trace.TracerProvider) *RoundSpans {
	if tp == nil {
		return nil
	}
	return &RoundSpans{tracer: tp.Tracer(TracerCoordinator), open: map[roundKey]*roundState{}}
}

// Opened starts round's span at at.
func (r *RoundSpans) Opened(job string, round uint64, at time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := roundKey{job, round}
	if _, ok := r.open[k]; ok {
		return
	}
	// A job runs one round at a time: an earlier round still followed
	// lost its closing event (a subscriber that fell behind drops events),
	// and is ended here so it does not hold a slot.
	for k2, st := range r.open {
		if k2.job == job && k2.round < round {
			r.end(k2, st, at, OutcomeAbandoned, "closing event not seen")
		}
	}
	if len(r.open) >= MaxOpenRounds {
		return
	}
	attrs := trace.WithAttributes(attribute.String("mfn.job", job), attribute.Int64("mfn.round", int64(round)))
	ctx, span := r.tracer.Start(context.Background(), "round", trace.WithTimestamp(at), attrs, trace.WithNewRoot())
	_, phase := r.tracer.Start(ctx, "round.open", trace.WithTimestamp(at))
	r.open[k] = &roundState{ctx: ctx, span: span, phase: phase}
}

// Update links the ingest span sc of an update submitted to round (it is
// called once the update is opened and its round known; the ingest span
// itself says whether it was accepted).
// Nothing happens when the round is not followed or sc is invalid.
func (r *RoundSpans) Update(job string, round uint64, node string, sc trace.SpanContext) {
	if r == nil || !sc.IsValid() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.open[roundKey{job, round}]; ok {
		st.span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("mfn.node", node)}})
	}
}

// Sealed ends round.open and starts round.aggregate at at.
func (r *RoundSpans) Sealed(job string, round uint64, at time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.open[roundKey{job, round}]
	if !ok {
		return
	}
	st.phase.End(trace.WithTimestamp(at))
	_, seal := r.tracer.Start(st.ctx, "round.seal", trace.WithTimestamp(at))
	seal.End(trace.WithTimestamp(at))
	_, st.phase = r.tracer.Start(st.ctx, "round.aggregate", trace.WithTimestamp(at))
}

// Closed ends the round's spans at at. outcome is OutcomeClosed or
// OutcomeFailed; detail (the failure reason) becomes the status message.
func (r *RoundSpans) Closed(job string, round uint64, at time.Time, outcome, detail string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := roundKey{job, round}
	if st, ok := r.open[k]; ok {
		r.end(k, st, at, outcome, detail)
	}
}

func (r *RoundSpans) end(k roundKey, st *roundState, at time.Time, outcome, detail string) {
	delete(r.open, k)
	st.phase.End(trace.WithTimestamp(at))
	_, c := r.tracer.Start(st.ctx, "round.close", trace.WithTimestamp(at), trace.WithAttributes(attribute.String("mfn.outcome", outcome)))
	c.End(trace.WithTimestamp(at))
	st.span.SetAttributes(attribute.String("mfn.outcome", outcome))
	if outcome != OutcomeClosed {
		st.span.SetStatus(codes.Error, detail)
	}
	st.span.End(trace.WithTimestamp(at))
}

// Open is the number of rounds followed now.
func (r *RoundSpans) Open() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.open)
}
