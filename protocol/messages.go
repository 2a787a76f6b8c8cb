package protocol

import (
	"encoding"
	"fmt"
	"math"
	"time"

	"github.com/mfn/mfn/protocol/internal/wire"
)

// Field limits. They are part of the protocol: a decoder rejects longer
// fields with ErrFieldTooLong, and an encoder refuses to produce them.
const (
	MaxNameLen     = 256  // node id, client info, cluster origin, addresses
	MaxJobIDLen    = 128  // job ids
	MaxErrorMsgLen = 1024 // ProtocolError.Message
	MaxVersions    = 32   // entries in a version list
	MaxMetadata    = 64   // entries in RoundAnnouncement.Metadata
	MaxMetaKeyLen  = 64   // bytes per metadata key
	MaxMetaValLen  = 1024 // bytes per metadata value
	MaxInstanceLen = 64   // HelloAck.Instance
	// MaxTraceParentLen bounds SubmitUpdate.TraceParent: a W3C version 00
	// traceparent is 55 bytes; the rest leaves room for later versions.
	MaxTraceParentLen = 128
)

// maxBlob is the field limit for bulk bytes; the frame size limit is what
// really bounds them. It is the largest length the uint32 prefix can carry
// that is also an int on every platform: on 32-bit targets (386, arm) an
// int stops at math.MaxInt32, and math.MaxUint32 would not compile there.
const maxBlob = min(math.MaxUint32, math.MaxInt)

var metaLimits = wire.MapLimits{Entries: MaxMetadata, Key: MaxMetaKeyLen, Value: MaxMetaValLen}

// Message is one protocol message. Each has a canonical binary encoding:
// MarshalBinary fails on values that cannot be encoded (a field over its
// limit, an unsorted version list, ...), and UnmarshalBinary accepts exactly
// the encodings MarshalBinary produces, failing with a *DecodeError
// otherwise. Decoded byte slices alias the input.
type Message interface {
	encoding.BinaryMarshaler
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
	wireType() wire.Type
}

// Hello opens a session: the client's protocol versions and who it claims
// to be. The cryptographic identity is the TLS key, not NodeID; the server
// checks that they belong together.
type Hello struct {
	// Versions the client speaks, strictly increasing, 1..MaxVersions
	// entries. Client.Hello fills in the client's configured versions when
	// empty.
	Versions   []uint8
	NodeID     string // at most MaxNameLen bytes
	ClientInfo string // software and version, informational; at most MaxNameLen bytes
}

// HelloAck answers Hello.
type HelloAck struct {
	// Version is the chosen protocol version: the highest one both sides
	// speak. Zero means none (the client then reports VersionMismatchError).
	// Set by the Server, not the Handler.
	Version uint8
	// Supported lists the server's versions, strictly increasing. Set by
	// the Server.
	Supported []uint8
	// ClusterOrigin names the cluster; it is bound into signed statements.
	ClusterOrigin string
	// LeaderHint is the current leader's QUIC address if known, else "".
	LeaderHint string
	// Instance identifies the server process that answered (at most
	// MaxInstanceLen bytes): a member restarted at the same address
	// answers with another Instance, so a client can tell that its older
	// connection to that address is dead. Set by the Server. Encoded only
	// from Version2 on; empty with earlier versions.
	Instance string
	// Term is the consensus term of the leader named by LeaderHint as the
	// server knows it (0 if unknown): together with LeaderHint and
	// Instance it tells a client whether the leader it follows is still
	// the one it connected to. Encoded only from Version2 on; zero with
	// earlier versions.
	Term uint64
}

// RoundAnnouncement tells subscribed nodes that a training round is open.
// The server pushes it; see Server.Broadcast and Client.Subscribe.
type RoundAnnouncement struct {
	JobID       string   // at most MaxJobIDLen bytes
	Round       uint64   // round number r
	BaseVersion uint64   // global model version r-1 to train from
	BaseHash    [32]byte // SHA-256 of that model's bytes
	// Deadline is when the round closes. The zero Time means no deadline;
	// representable range is years 1678..2261 (int64 Unix nanoseconds).
	Deadline   time.Time
	ModelSize  uint64 // bytes of the base model
	MinUpdates uint32
	MaxUpdates uint32
	// Metadata carries task and model details (task name, model shape,
	// local epochs, ...) as at most MaxMetadata small string pairs.
	Metadata map[string]string
}

// ModelFetch asks for bytes [Offset, Offset+Length) of a model version.
type ModelFetch struct {
	JobID   string
	Version uint64
	Offset  uint64
	Length  uint32 // wanted bytes; the server may return fewer
}

// ModelChunk answers ModelFetch with a piece of the model.
type ModelChunk struct {
	Offset uint64   // echoes the request
	Total  uint64   // size of the whole model in bytes
	Hash   [32]byte // SHA-256 of the whole model
	Data   []byte
}

// SubmitUpdate carries one sealed envelope (see package crypto).
type SubmitUpdate struct {
	Sealed []byte
	// TraceParent is an optional W3C traceparent naming the sender's span,
	// so the server's spans for this update join the sender's trace. It
	// travels beside the sealed envelope, never inside it: it is not
	// signed, changes nothing the server stores, and a server ignores a
	// value it cannot parse. At most MaxTraceParentLen bytes; encoded as an
	// optional trailing field only when non-empty, and sent by Client only
	// when the session speaks Version3 (older servers reject the field).
	TraceParent string
}

// Ack acknowledges a committed update: it is in the replicated log and the
// audit log and will not be lost.
type Ack struct {
	LogIndex  uint64 // Raft log index of the entry holding the update
	LeafIndex uint64 // index of the update's leaf in the audit log
}

// subscribe asks the server to push round announcements on this stream.
type subscribe struct{}

// heartbeat is sent by the server on a subscription stream: first to accept
// it, then every Interval so the client can tell a dead stream from a quiet
// one.
type heartbeat struct {
	Interval time.Duration // > 0
}

func (*Hello) wireType() wire.Type             { return wire.TypeHello }
func (*HelloAck) wireType() wire.Type          { return wire.TypeHelloAck }
func (*RoundAnnouncement) wireType() wire.Type { return wire.TypeRoundAnnouncement }
func (*ModelFetch) wireType() wire.Type        { return wire.TypeModelFetch }
func (*ModelChunk) wireType() wire.Type        { return wire.TypeModelChunk }
func (*SubmitUpdate) wireType() wire.Type      { return wire.TypeSubmitUpdate }
func (*Ack) wireType() wire.Type               { return wire.TypeAck }
func (*ProtocolError) wireType() wire.Type     { return wire.TypeError }
func (*subscribe) wireType() wire.Type         { return wire.TypeSubscribe }
func (*heartbeat) wireType() wire.Type         { return wire.TypeHeartbeat }

// newMessage returns an empty message of type t, or nil if t is unknown.
func newMessage(t wire.Type) Message {
	switch t {
	case wire.TypeHello:
		return new(Hello)
	case wire.TypeHelloAck:
		return new(HelloAck)
	case wire.TypeSubscribe:
		return new(subscribe)
	case wire.TypeRoundAnnouncement:
		return new(RoundAnnouncement)
	case wire.TypeHeartbeat:
		return new(heartbeat)
	case wire.TypeModelFetch:
		return new(ModelFetch)
	case wire.TypeModelChunk:
		return new(ModelChunk)
	case wire.TypeSubmitUpdate:
		return new(SubmitUpdate)
	case wire.TypeAck:
		return new(Ack)
	case wire.TypeError:
		return new(ProtocolError)
	case wire.TypeSubmitEval:
		return new(SubmitEval) // eval.go
	case wire.TypeSubmitStream:
		return new(SubmitStream)
	case wire.TypeStreamChunk:
		return new(StreamChunk)
	}
	return nil
}

// decodeMessage decodes a payload of type t.
func decodeMessage(t wire.Type, payload []byte) (Message, error) {
	m := newMessage(t)
	if m == nil {
		return nil, &DecodeError{Message: t.String(), Err: ErrUnknownType}
	}
	if err := m.UnmarshalBinary(payload); err != nil {
		return nil, err
	}
	return m, nil
}

func encodeError(m Message, err error) error {
	return fmt.Errorf("protocol: encoding %v: %w", m.wireType(), err)
}

func decodeError(m Message, err error) error {
	if err == nil {
		return nil
	}
	return &DecodeError{Message: m.wireType().String(), Err: err}
}

func marshal(m Message) ([]byte, error) { return m.AppendBinary(nil) }

// --- version lists ---

func appendVersions(b []byte, field string, v []uint8) ([]byte, error) {
	if len(v) > MaxVersions {
		return b, &wire.FieldError{Field: field, Err: fmt.Errorf("%w: %d versions, limit %d", ErrFieldTooLong, len(v), MaxVersions)}
	}
	for i := 1; i < len(v); i++ {
		if v[i] <= v[i-1] {
			return b, &wire.FieldError{Field: field, Err: fmt.Errorf("%w: versions not strictly increasing", ErrNonCanonical)}
		}
	}
	b = wire.AppendU8(b, uint8(len(v)))
	return append(b, v...), nil
}

func decodeVersions(d *wire.Decoder, field string) []uint8 {
	n := int(d.U8(field))
	if d.Err() != nil {
		return nil
	}
	if n > MaxVersions {
		d.Invalid(field, fmt.Errorf("%w: %d versions, limit %d", ErrFieldTooLong, n, MaxVersions))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]uint8, n)
	for i := range v {
		v[i] = d.U8(field)
		if d.Err() == nil && i > 0 && v[i] <= v[i-1] {
			d.Invalid(field, fmt.Errorf("%w: versions not strictly increasing", ErrNonCanonical))
		}
	}
	if d.Err() != nil {
		return nil
	}
	return v
}

// --- times and durations ---

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func appendTime(b []byte, field string, t time.Time) ([]byte, error) {
	if t.IsZero() {
		return wire.AppendU64(b, 0), nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return b, &wire.FieldError{Field: field, Err: fmt.Errorf("%w: time %v out of range", ErrNonCanonical, t)}
	}
	return wire.AppendU64(b, uint64(t.UnixNano())), nil
}

func decodeTime(d *wire.Decoder, field string) time.Time {
	n := int64(d.U64(field))
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func appendDuration(b []byte, field string, v time.Duration) ([]byte, error) {
	if v < 0 {
		return b, &wire.FieldError{Field: field, Err: fmt.Errorf("%w: negative duration %v", ErrNonCanonical, v)}
	}
	return wire.AppendU64(b, uint64(v)), nil
}

func decodeDuration(d *wire.Decoder, field string) time.Duration {
	v := d.U64(field)
	if v > math.MaxInt64 {
		d.Invalid(field, fmt.Errorf("%w: duration out of range", ErrNonCanonical))
		return 0
	}
	return time.Duration(v)
}

// --- Hello ---

// AppendBinary appends the canonical encoding of h.
func (h *Hello) AppendBinary(b []byte) ([]byte, error) {
	var err error
	if b, err = appendVersions(b, "versions", h.Versions); err != nil {
		return b, encodeError(h, err)
	}
	if b, err = wire.AppendString(b, "node_id", h.NodeID, MaxNameLen); err != nil {
		return b, encodeError(h, err)
	}
	if b, err = wire.AppendString(b, "client_info", h.ClientInfo, MaxNameLen); err != nil {
		return b, encodeError(h, err)
	}
	return b, nil
}

// MarshalBinary returns the canonical encoding of h.
func (h *Hello) MarshalBinary() ([]byte, error) { return marshal(h) }

// UnmarshalBinary decodes a canonical Hello.
func (h *Hello) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*h = Hello{
		Versions:   decodeVersions(d, "versions"),
		NodeID:     d.String("node_id", MaxNameLen),
		ClientInfo: d.String("client_info", MaxNameLen),
	}
	return decodeError(h, d.Finish())
}

// --- HelloAck ---

// AppendBinary appends the canonical encoding of a.
func (a *HelloAck) AppendBinary(b []byte) ([]byte, error) {
	b = wire.AppendU8(b, a.Version)
	var err error
	if b, err = appendVersions(b, "supported", a.Supported); err != nil {
		return b, encodeError(a, err)
	}
	if b, err = wire.AppendString(b, "cluster_origin", a.ClusterOrigin, MaxNameLen); err != nil {
		return b, encodeError(a, err)
	}
	if b, err = wire.AppendString(b, "leader_hint", a.LeaderHint, MaxNameLen); err != nil {
		return b, encodeError(a, err)
	}
	if a.Version < Version2 {
		// The version 1 encoding ends here; it has no room for them.
		if a.Instance != "" || a.Term != 0 {
			return b, encodeError(a, &wire.FieldError{Field: "instance", Err: fmt.Errorf("%w: instance and term need version %d, answer has %d", ErrNonCanonical, Version2, a.Version)})
		}
		return b, nil
	}
	if b, err = wire.AppendString(b, "instance", a.Instance, MaxInstanceLen); err != nil {
		return b, encodeError(a, err)
	}
	return wire.AppendU64(b, a.Term), nil
}

// MarshalBinary returns the canonical encoding of a.
func (a *HelloAck) MarshalBinary() ([]byte, error) { return marshal(a) }

// UnmarshalBinary decodes a canonical HelloAck.
func (a *HelloAck) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*a = HelloAck{
		Version:       d.U8("version"),
		Supported:     decodeVersions(d, "supported"),
		ClusterOrigin: d.String("cluster_origin", MaxNameLen),
		LeaderHint:    d.String("leader_hint", MaxNameLen),
	}
	if a.Version >= Version2 {
		a.Instance = d.String("instance", MaxInstanceLen)
		a.Term = d.U64("term")
	}
	return decodeError(a, d.Finish())
}

// --- RoundAnnouncement ---

// AppendBinary appends the canonical encoding of r.
func (r *RoundAnnouncement) AppendBinary(b []byte) ([]byte, error) {
	var err error
	if b, err = wire.AppendString(b, "job_id", r.JobID, MaxJobIDLen); err != nil {
		return b, encodeError(r, err)
	}
	b = wire.AppendU64(b, r.Round)
	b = wire.AppendU64(b, r.BaseVersion)
	b = append(b, r.BaseHash[:]...)
	if b, err = appendTime(b, "deadline", r.Deadline); err != nil {
		return b, encodeError(r, err)
	}
	b = wire.AppendU64(b, r.ModelSize)
	b = wire.AppendU32(b, r.MinUpdates)
	b = wire.AppendU32(b, r.MaxUpdates)
	if b, err = wire.AppendMap(b, "metadata", r.Metadata, metaLimits); err != nil {
		return b, encodeError(r, err)
	}
	return b, nil
}

// MarshalBinary returns the canonical encoding of r.
func (r *RoundAnnouncement) MarshalBinary() ([]byte, error) { return marshal(r) }

// UnmarshalBinary decodes a canonical RoundAnnouncement. An empty Metadata
// decodes as nil.
func (r *RoundAnnouncement) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*r = RoundAnnouncement{
		JobID:       d.String("job_id", MaxJobIDLen),
		Round:       d.U64("round"),
		BaseVersion: d.U64("base_version"),
		BaseHash:    d.Hash("base_hash"),
		Deadline:    decodeTime(d, "deadline"),
		ModelSize:   d.U64("model_size"),
		MinUpdates:  d.U32("min_updates"),
		MaxUpdates:  d.U32("max_updates"),
		Metadata:    d.Map("metadata", metaLimits),
	}
	return decodeError(r, d.Finish())
}

// --- ModelFetch ---

// AppendBinary appends the canonical encoding of f.
func (f *ModelFetch) AppendBinary(b []byte) ([]byte, error) {
	var err error
	if b, err = wire.AppendString(b, "job_id", f.JobID, MaxJobIDLen); err != nil {
		return b, encodeError(f, err)
	}
	b = wire.AppendU64(b, f.Version)
	b = wire.AppendU64(b, f.Offset)
	return wire.AppendU32(b, f.Length), nil
}

// MarshalBinary returns the canonical encoding of f.
func (f *ModelFetch) MarshalBinary() ([]byte, error) { return marshal(f) }

// UnmarshalBinary decodes a canonical ModelFetch.
func (f *ModelFetch) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*f = ModelFetch{
		JobID:   d.String("job_id", MaxJobIDLen),
		Version: d.U64("version"),
		Offset:  d.U64("offset"),
		Length:  d.U32("length"),
	}
	return decodeError(f, d.Finish())
}

// --- ModelChunk ---

// AppendBinary appends the canonical encoding of c.
func (c *ModelChunk) AppendBinary(b []byte) ([]byte, error) {
	b = wire.AppendU64(b, c.Offset)
	b = wire.AppendU64(b, c.Total)
	b = append(b, c.Hash[:]...)
	var err error
	if b, err = wire.AppendBytes(b, "data", c.Data, maxBlob); err != nil {
		return b, encodeError(c, err)
	}
	return b, nil
}

// MarshalBinary returns the canonical encoding of c.
func (c *ModelChunk) MarshalBinary() ([]byte, error) { return marshal(c) }

// UnmarshalBinary decodes a canonical ModelChunk. Data aliases data.
func (c *ModelChunk) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*c = ModelChunk{
		Offset: d.U64("offset"),
		Total:  d.U64("total"),
		Hash:   d.Hash("hash"),
		Data:   d.Bytes("data", maxBlob),
	}
	return decodeError(c, d.Finish())
}

// --- SubmitUpdate ---

// AppendBinary appends the canonical encoding of s.
func (s *SubmitUpdate) AppendBinary(b []byte) ([]byte, error) {
	var err error
	if b, err = wire.AppendBytes(b, "sealed", s.Sealed, maxBlob); err != nil {
		return b, encodeError(s, err)
	}
	if s.TraceParent == "" {
		return b, nil
	}
	if b, err = wire.AppendString(b, "trace_parent", s.TraceParent, MaxTraceParentLen); err != nil {
		return b, encodeError(s, err)
	}
	return b, nil
}

// MarshalBinary returns the canonical encoding of s.
func (s *SubmitUpdate) MarshalBinary() ([]byte, error) { return marshal(s) }

// UnmarshalBinary decodes a canonical SubmitUpdate. Sealed aliases data.
// A present but empty TraceParent is not canonical (an empty one is
// encoded by leaving the field out).
func (s *SubmitUpdate) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*s = SubmitUpdate{Sealed: d.Bytes("sealed", maxBlob)}
	if d.More() {
		s.TraceParent = d.String("trace_parent", MaxTraceParentLen)
		if d.Err() == nil && s.TraceParent == "" {
			d.Invalid("trace_parent", fmt.Errorf("%w: empty trace_parent must be omitted", ErrNonCanonical))
		}
	}
	return decodeError(s, d.Finish())
}

// --- Ack ---

// AppendBinary appends the canonical encoding of a.
func (a *Ack) AppendBinary(b []byte) ([]byte, error) {
	b = wire.AppendU64(b, a.LogIndex)
	return wire.AppendU64(b, a.LeafIndex), nil
}

// MarshalBinary returns the canonical encoding of a.
func (a *Ack) MarshalBinary() ([]byte, error) { return marshal(a) }

// UnmarshalBinary decodes a canonical Ack.
func (a *Ack) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*a = Ack{LogIndex: d.U64("log_index"), LeafIndex: d.U64("leaf_index")}
	return decodeError(a, d.Finish())
}

// --- ProtocolError (the Error message) ---

// AppendBinary appends the canonical encoding of e.
func (e *ProtocolError) AppendBinary(b []byte) ([]byte, error) {
	b = wire.AppendU16(b, uint16(e.Code))
	var err error
	if b, err = wire.AppendString(b, "message", e.Message, MaxErrorMsgLen); err != nil {
		return b, encodeError(e, err)
	}
	if b, err = wire.AppendString(b, "leader_addr", e.LeaderAddr, MaxNameLen); err != nil {
		return b, encodeError(e, err)
	}
	if b, err = appendDuration(b, "retry_after", e.RetryAfter); err != nil {
		return b, encodeError(e, err)
	}
	return b, nil
}

// MarshalBinary returns the canonical encoding of e.
func (e *ProtocolError) MarshalBinary() ([]byte, error) { return marshal(e) }

// UnmarshalBinary decodes a canonical Error message. Codes unknown to this
// version are kept as they are.
func (e *ProtocolError) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*e = ProtocolError{
		Code:       Code(d.U16("code")),
		Message:    d.String("message", MaxErrorMsgLen),
		LeaderAddr: d.String("leader_addr", MaxNameLen),
		RetryAfter: decodeDuration(d, "retry_after"),
	}
	return decodeError(e, d.Finish())
}

// --- subscribe, heartbeat ---

func (s *subscribe) AppendBinary(b []byte) ([]byte, error) { return b, nil }
func (s *subscribe) MarshalBinary() ([]byte, error)        { return marshal(s) }
func (s *subscribe) UnmarshalBinary(data []byte) error {
	return decodeError(s, wire.NewDecoder(data).Finish())
}

func (h *heartbeat) AppendBinary(b []byte) ([]byte, error) {
	if h.Interval <= 0 {
		return b, encodeError(h, &wire.FieldError{Field: "interval", Err: fmt.Errorf("%w: interval %v not positive", ErrNonCanonical, h.Interval)})
	}
	return wire.AppendU64(b, uint64(h.Interval)), nil
}
func (h *heartbeat) MarshalBinary() ([]byte, error) { return marshal(h) }
func (h *heartbeat) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*h = heartbeat{Interval: decodeDuration(d, "interval")}
	if d.Err() == nil && h.Interval == 0 {
		d.Invalid("interval", fmt.Errorf("%w: zero interval", ErrNonCanonical))
	}
	return decodeError(h, d.Finish())
}
