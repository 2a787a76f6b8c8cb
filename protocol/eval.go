package protocol

import (
	"context"
	"errors"
	"fmt"

	"github.com/mfn/mfn/protocol/internal/wire"
)

// Cross-site evaluation. After the last round of a job that asks for it,
// the leader announces the final model once more with the "eval"
// metadata set to "final"; each node evaluates that model on its held-out
// data and sends a SubmitEval carrying its signed report (crypto.EvalReport
// and its Ed25519 signature). The answer is an Ack (LogIndex: the Raft
// entry that recorded it; LeafIndex 0) or a ProtocolError. The message is
// type 11 in every protocol version; a server without an EvalHandler
// answers CodeBadRequest, and one of an older build answers the unknown
// type with CodeBadRequest too.

// Limits of SubmitEval's fields.
const (
	// MaxEvalReportLen bounds the report bytes (crypto.MaxEvalReportLen
	// is 655).
	MaxEvalReportLen = 1024
	// EvalSignatureLen is the signature's length (Ed25519).
	EvalSignatureLen = 64
)

// SubmitEval carries a node's signed cross-site evaluation report.
type SubmitEval struct {
	Report    []byte // crypto.EvalReport encoding, at most MaxEvalReportLen bytes
	Signature []byte // crypto.SignEvalReport, EvalSignatureLen bytes
}

func (*SubmitEval) wireType() wire.Type { return wire.TypeSubmitEval }

// AppendBinary appends the canonical encoding of s.
func (s *SubmitEval) AppendBinary(b []byte) ([]byte, error) {
	var err error
	if b, err = wire.AppendBytes(b, "report", s.Report, MaxEvalReportLen); err != nil {
		return b, encodeError(s, err)
	}
	if len(s.Signature) != EvalSignatureLen {
		return b, encodeError(s, fmt.Errorf("%w: signature of %d bytes, want %d", ErrFieldTooLong, len(s.Signature), EvalSignatureLen))
	}
	return wire.AppendBytes(b, "signature", s.Signature, EvalSignatureLen)
}

// MarshalBinary returns the canonical encoding of s.
func (s *SubmitEval) MarshalBinary() ([]byte, error) { return marshal(s) }

// UnmarshalBinary decodes a canonical SubmitEval; the slices alias data.
func (s *SubmitEval) UnmarshalBinary(data []byte) error {
	d := wire.NewDecoder(data)
	*s = SubmitEval{Report: d.Bytes("report", MaxEvalReportLen), Signature: d.Bytes("signature", EvalSignatureLen)}
	if d.Err() == nil && len(s.Signature) != EvalSignatureLen {
		d.Invalid("signature", fmt.Errorf("%w: %d bytes, want %d", ErrNonCanonical, len(s.Signature), EvalSignatureLen))
	}
	return decodeError(s, d.Finish())
}

// EvalHandler is the optional ability of a Handler to take cross-site
// evaluation reports. SubmitEval answers once the report is durable.
type EvalHandler interface {
	SubmitEval(ctx context.Context, peer Peer, report, signature []byte) (*Ack, error)
}

func (sc *serverConn) submitEval(ctx context.Context, f *framer, version uint8, m *SubmitEval) {
	h, ok := sc.s.h.(EvalHandler)
	if !ok {
		sc.replyError(f, &ProtocolError{Code: CodeBadRequest, Message: "this server takes no evaluation reports"})
		return
	}
	sc.call(ctx, f, version, func(ctx context.Context) (Message, error) {
		a, err := h.SubmitEval(ctx, sc.peer(), m.Report, m.Signature)
		if err == nil && a == nil {
			err = errors.New("nil Ack")
		}
		return a, err
	})
}

// SubmitEval sends a signed evaluation report and returns the server's
// Ack, or its *ProtocolError.
func (c *Client) SubmitEval(ctx context.Context, report, signature []byte) (*Ack, error) {
	v, err := c.negotiated()
	if err != nil {
		return nil, err
	}
	m, err := c.roundTrip(ctx, v, &SubmitEval{Report: report, Signature: signature})
	if err != nil {
		return nil, err
	}
	ack, ok := m.(*Ack)
	if !ok {
		return nil, fmt.Errorf("%w: %v in answer to SubmitEval", ErrUnexpectedMessage, m.wireType())
	}
	return ack, nil
}
