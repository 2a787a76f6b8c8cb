package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"github.com/mfn/mfn/protocol/internal/wire"
)

// Version4 adds streamed submission: SubmitStream declares a sealed
// envelope's size, and StreamChunk frames carry its bytes on the same
// stream, so an update of any size a job allows travels in frames of at
// most MaxFrameSize without either end holding it whole.
const Version4 uint8 = 4

// Streamed-submission defaults for zero Config fields.
const (
	// DefaultChunkTimeout bounds the wait for each StreamChunk.
	DefaultChunkTimeout = 10 * time.Second
	// DefaultStreamMinRate is the slowest average a stream may have: a
	// stream of n bytes gets RequestTimeout + n/rate in total.
	DefaultStreamMinRate = 1 << 20 // bytes per second
	// DefaultMaxStreamSize bounds a declared stream size before any
	// handler sees it: a 2^27-value float32 update plus its envelope.
	DefaultMaxStreamSize = 1<<29 + 1<<20
	// DefaultStreamChunk is the data a client puts in one StreamChunk.
	DefaultStreamChunk = 1 << 20
)

// Stream errors, as the StreamHandler's body reader returns them (wrapped
// with detail) and as the server reports them to the sender (CodeBadRequest
// naming the error).
var (
	// ErrStreamTruncated: the stream ended before its declared size.
	ErrStreamTruncated = errors.New("protocol: stream truncated")
	// ErrStreamTooLarge: the declared size is over the limit, or the
	// sender sent more than it declared.
	ErrStreamTooLarge = errors.New("protocol: stream too large")
	// ErrStreamStalled: a chunk did not arrive within ChunkTimeout, or the
	// stream fell below StreamMinRate.
	ErrStreamStalled = errors.New("protocol: stream stalled")
	// ErrStreamUnsupported: the session does not speak Version4, or the
	// server's handler does not take streams; send with Submit instead.
	ErrStreamUnsupported = errors.New("protocol: streamed submission not supported")
)

// SubmitStream opens a streamed submission of one sealed envelope of Size
// bytes, which follow in StreamChunk frames on the same stream; the sender
// then closes its side. JobID and Round name the round the envelope is
// for, so that a server can refuse a stream for a closed round, or one
// larger than the job's updates, before receiving it; they are hints, and
// the server checks them against the signed statement inside.
type SubmitStream struct {
	JobID string // at most MaxJobIDLen bytes
	Round uint64
	Size  uint64 // bytes of the sealed envelope, > 0
	// TraceParent is as in SubmitUpdate: optional, trailing, not signed.
	TraceParent string
}

// StreamChunk carries the next bytes of a streamed submission; Data is
// never empty.
type StreamChunk struct {
	Data []byte
}

func (*SubmitStream) wireType() wire.Type { return wire.TypeSubmitStream }
func (*StreamChunk) wireType() wire.Type  { return wire.TypeStreamChunk }

// AppendBinary appends the canonical encoding of s.
func (s *SubmitStream) AppendBinary(b []byte) ([]byte, error) {
	var err error
	if b, err = wire.AppendString(b, "job_id", s.JobID, MaxJobIDLen); err != nil {
		return b, encodeError(s, err)
	}
	b = wire.AppendU64(b, s.Round)
	if s.Size == 0 {
		return b, encodeError(s, &wire.FieldError{Field: "size", Err: fmt.Errorf("%w: zero size", ErrNonCanonical)})
	}
	b = wire.AppendU64(b, s.Size)
	if s.TraceParent == "" {
		return b, nil
	}
	if b, err = wire.AppendString(b, "trace_parent", s.TraceParent, MaxTraceParentLen); err != nil {
		return b, encodeError(s, err)
	}
	return b, nil
}

// MarshalBinary returns the canonical encoding of s.
func (s *SubmitStream) MarshalBinary() ([]byte, error) { return marshal(s) }

// UnmarshalBinary decodes a canonical SubmitStream.
func (s *SubmitStream) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*s = SubmitStream{JobID: d.String("job_id", MaxJobIDLen), Round: d.U64("round"), Size: d.U64("size")}
	if d.Err() == nil && s.Size == 0 {
		d.Invalid("size", fmt.Errorf("%w: zero size", ErrNonCanonical))
	}
	if d.More() {
		s.TraceParent = d.String("trace_parent", MaxTraceParentLen)
		if d.Err() == nil && s.TraceParent == "" {
			d.Invalid("trace_parent", fmt.Errorf("%w: empty trace_parent must be omitted", ErrNonCanonical))
		}
	}
	return decodeError(s, d.Finish())
}

// AppendBinary appends the canonical encoding of c.
func (c *StreamChunk) AppendBinary(b []byte) ([]byte, error) {
	if len(c.Data) == 0 {
		return b, encodeError(c, &wire.FieldError{Field: "data", Err: fmt.Errorf("%w: empty chunk", ErrNonCanonical)})
	}
	b, err := wire.AppendBytes(b, "data", c.Data, maxBlob)
	if err != nil {
		return b, encodeError(c, err)
	}
	return b, nil
}

// MarshalBinary returns the canonical encoding of c.
func (c *StreamChunk) MarshalBinary() ([]byte, error) { return marshal(c) }

// UnmarshalBinary decodes a canonical StreamChunk. Data aliases data.
func (c *StreamChunk) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*c = StreamChunk{Data: d.Bytes("data", maxBlob)}
	if d.Err() == nil && len(c.Data) == 0 {
		d.Invalid("data", fmt.Errorf("%w: empty chunk", ErrNonCanonical))
	}
	return decodeError(c, d.Finish())
}

// StreamHandler is implemented by Handlers that take streamed submissions.
// SubmitStream stores the envelope read from body, which yields exactly
// req.Size bytes and then io.EOF, or fails with an error wrapping
// ErrStreamTruncated, ErrStreamTooLarge or ErrStreamStalled (the server
// then answers with that error, whatever the handler returns). The
// handler may return before reading everything (to refuse the stream);
// the server then stops receiving. body is valid only during the call.
type StreamHandler interface {
	SubmitStream(ctx context.Context, peer Peer, req *SubmitStream, body io.Reader) (*Ack, error)
}

// streamBody reads a stream's StreamChunk frames as the envelope's bytes.
type streamBody struct {
	f        *framer
	version  uint8
	size     uint64
	remain   uint64
	cur      []byte
	chunk    time.Duration
	deadline time.Time // overall
	done     bool      // EOF seen after the last byte
	err      error
}

func (b *streamBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	for len(b.cur) == 0 {
		if b.remain == 0 {
			if !b.done {
				if err := b.eof(); err != nil {
					b.err = err
					return 0, err
				}
				b.done = true
			}
			return 0, io.EOF
		}
		if err := b.next(); err != nil {
			b.err = err
			return 0, err
		}
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

func (b *streamBody) until() time.Time {
	t := time.Now().Add(b.chunk)
	if t.After(b.deadline) {
		return b.deadline
	}
	return t
}

// failed classifies a read error.
func (b *streamBody) failed(err error) error {
	got := b.size - b.remain
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: no chunk within %v after %d of %d bytes", ErrStreamStalled, b.chunk, got, b.size)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, ErrTruncated):
		return fmt.Errorf("%w: ended after %d of %d bytes", ErrStreamTruncated, got, b.size)
	}
	return fmt.Errorf("%w: after %d of %d bytes: %v", ErrStreamTruncated, got, b.size, err)
}

func (b *streamBody) next() error {
	if err := b.f.s.SetReadDeadline(b.until()); err != nil {
		return b.failed(err)
	}
	fr, err := wire.ReadFrame(b.f.s, b.f.maxFrame)
	if err != nil {
		if errors.Is(err, ErrFrameTooLarge) {
			return fmt.Errorf("%w: %v", ErrStreamTooLarge, err)
		}
		return b.failed(err)
	}
	if fr.Version != b.version || fr.Type != wire.TypeStreamChunk {
		return fmt.Errorf("%w: %v frame (version %d) inside a stream", ErrStreamTruncated, fr.Type, fr.Version)
	}
	var c StreamChunk
	if err := c.UnmarshalBinary(fr.Payload); err != nil {
		return fmt.Errorf("%w: %v", ErrStreamTruncated, err)
	}
	if uint64(len(c.Data)) > b.remain {
		return fmt.Errorf("%w: more than the declared %d bytes", ErrStreamTooLarge, b.size)
	}
	b.cur, b.remain = c.Data, b.remain-uint64(len(c.Data))
	return nil
}

// eof checks that the sender closed its side after the declared bytes.
func (b *streamBody) eof() error {
	if err := b.f.s.SetReadDeadline(b.until()); err != nil {
		return b.failed(err)
	}
	var one [1]byte
	n, err := io.ReadFull(b.f.s, one[:])
	switch {
	case n > 0:
		return fmt.Errorf("%w: more than the declared %d bytes", ErrStreamTooLarge, b.size)
	case errors.Is(err, io.EOF):
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: the sender did not end the stream after its %d bytes", ErrStreamStalled, b.size)
	}
	return b.failed(err)
}

// submitStream serves a SubmitStream request: bounds, inflight slot,
// handler, answer.
func (sc *serverConn) submitStream(ctx context.Context, f *framer, version uint8, m *SubmitStream) {
	s := sc.s
	refuse := func(pe *ProtocolError) {
		f.s.CancelRead()
		sc.replyError(f, pe)
	}
	sh, ok := s.h.(StreamHandler)
	if !ok || version < Version4 {
		refuse(&ProtocolError{Code: CodeBadRequest, Message: ErrStreamUnsupported.Error()})
		return
	}
	if m.Size > uint64(s.cfg.MaxStreamSize) {
		refuse(&ProtocolError{Code: CodeBadRequest, Message: fmt.Sprintf("%v: declared %d bytes, limit %d", ErrStreamTooLarge, m.Size, s.cfg.MaxStreamSize)})
		return
	}
	select {
	case s.inflight <- struct{}{}:
	default:
		refuse(errOverloaded)
		return
	}
	defer func() { <-s.inflight }()
	total := s.cfg.RequestTimeout + time.Duration(float64(m.Size)/float64(s.cfg.StreamMinRate)*float64(time.Second))
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	dl, _ := ctx.Deadline()
	body := &streamBody{f: f, version: version, size: m.Size, remain: m.Size, chunk: s.cfg.ChunkTimeout, deadline: dl}
	if m.TraceParent != "" {
		ctx = WithTraceParent(ctx, m.TraceParent)
	}
	ack, err := sh.SubmitStream(ctx, sc.peer(), m, body)
	if !body.done {
		f.s.CancelRead()
	}
	if body.err != nil {
		sc.log.Debug("protocol: stream failed", "err", body.err)
		sc.replyError(f, &ProtocolError{Code: CodeBadRequest, Message: body.err.Error()})
		return
	}
	if err == nil && ack == nil {
		err = errors.New("nil Ack")
	}
	if err != nil {
		sc.replyError(f, toProtocolError(err))
		return
	}
	sc.reply(f, version, ack)
}

// CanStream reports whether the session speaks Version4, so that
// SubmitStream may be used.
func (c *Client) CanStream() bool { return uint8(c.version.Load()) >= Version4 }

// SubmitStream sends a sealed envelope of size bytes for job's round in
// StreamChunk frames of at most Config.StreamChunk bytes: write is called
// once with a writer that frames what it is given (a crypto.StreamSealer's
// WriteTo, say) and must write exactly size bytes. It returns the server's
// Ack, or its *ProtocolError (which a server that refuses the stream early
// sends while write is still running: write's error is then dropped),
// ErrStreamUnsupported if the session does not speak Version4, or write's
// error (the stream is then aborted, and the server discards what it got).
func (c *Client) SubmitStream(ctx context.Context, job string, round uint64, size int64, write func(io.Writer) error) (*Ack, error) {
	v, err := c.negotiated()
	if err != nil {
		return nil, err
	}
	if v < Version4 {
		return nil, ErrStreamUnsupported
	}
	if size <= 0 {
		return nil, fmt.Errorf("protocol: SubmitStream: size %d is not positive", size)
	}
	req := &SubmitStream{JobID: job, Round: round, Size: uint64(size)}
	if tp := TraceParentFrom(ctx); len(tp) <= MaxTraceParentLen && utf8.ValidString(tp) {
		req.TraceParent = tp
	}
	st, err := c.conn.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, st.Abort)
	defer stop()
	f := &framer{s: st, maxFrame: c.cfg.MaxFrameSize, timeout: c.cfg.RequestTimeout}
	fail := func(err error) (*Ack, error) {
		st.Abort()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("protocol: SubmitStream: %w", ctx.Err())
		}
		return nil, err
	}
	if err := f.write(v, req); err != nil {
		return fail(err)
	}
	cw := &chunkWriter{f: f, version: v, buf: make([]byte, wire.HeaderSize, wire.HeaderSize+4+c.cfg.StreamChunk), max: c.cfg.StreamChunk}
	werr := write(cw)
	if werr == nil {
		werr = cw.flush()
	}
	if werr == nil && cw.n != size {
		werr = fmt.Errorf("protocol: SubmitStream: wrote %d bytes, declared %d", cw.n, size)
	}
	if werr != nil && cw.err == nil {
		// The writer failed by itself, not on the stream: abort, so the
		// server discards what it got.
		return fail(werr)
	}
	if werr == nil {
		werr = st.CloseWrite()
	}
	// An early refusal from the server makes writes fail; its answer is
	// what to report.
	f.timeout = c.cfg.RequestTimeout + c.cfg.RequestTimeout/2
	rv, m, rerr := f.read()
	if rerr != nil {
		if werr != nil {
			return fail(werr)
		}
		return fail(rerr)
	}
	if pe, ok := m.(*ProtocolError); ok {
		st.Abort()
		return nil, pe
	}
	if werr != nil {
		return fail(werr)
	}
	ack, ok := m.(*Ack)
	if !ok || rv != v {
		return fail(fmt.Errorf("%w: %v (version %d) in answer to SubmitStream", ErrUnexpectedMessage, m.wireType(), rv))
	}
	if err := f.expectEOF(); err != nil {
		return fail(err)
	}
	return ack, nil
}

// chunkWriter frames written bytes as StreamChunk messages.
type chunkWriter struct {
	f       *framer
	version uint8
	buf     []byte // frame header room, then the chunk's length and data
	max     int
	n       int64
	err     error // the first failed frame write
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if len(w.buf) == wire.HeaderSize {
			w.buf = append(w.buf, 0, 0, 0, 0) // length, set at flush
		}
		k := min(len(p), w.max-(len(w.buf)-wire.HeaderSize-4))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		written += k
		if len(w.buf)-wire.HeaderSize-4 == w.max {
			if err := w.flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (w *chunkWriter) flush() error {
	n := len(w.buf) - wire.HeaderSize - 4
	if n <= 0 {
		return nil
	}
	putU32(w.buf[wire.HeaderSize:], uint32(n))
	if err := w.f.writeRaw(w.version, wire.TypeStreamChunk, w.buf); err != nil {
		w.err = err
		return err
	}
	w.n += int64(n)
	w.buf = w.buf[:wire.HeaderSize]
	return nil
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// SubmitSealed sends a sealed envelope held in memory for job's round:
// in one SubmitUpdate frame when it fits Config.MaxFrameSize, else as a
// stream (SubmitStream), which needs a Version4 session (otherwise the
// frame is tried, and the server refuses it as too large).
func (c *Client) SubmitSealed(ctx context.Context, job string, round uint64, sealed []byte) (*Ack, error) {
	if len(sealed)+submitOverhead <= c.cfg.MaxFrameSize || !c.CanStream() {
		return c.Submit(ctx, sealed)
	}
	return c.SubmitStream(ctx, job, round, int64(len(sealed)), func(w io.Writer) error {
		_, err := w.Write(sealed)
		return err
	})
}

// submitOverhead is a SubmitUpdate's encoding beyond its envelope: the
// envelope's length and a traceparent with its length.
const submitOverhead = 4 + 4 + MaxTraceParentLen
