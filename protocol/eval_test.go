package protocol

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// evalHandler is a testHandler that also takes evaluation reports.
type evalHandler struct {
	*testHandler
	got [][]byte
}

func (h *evalHandler) SubmitEval(_ context.Context, p Peer, report, sig []byte) (*Ack, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if bytes.Equal(report, []byte("bad")) {
		return nil, &ProtocolError{Code: CodeBadRequest, Message: "bad report"}
	}
	h.got = append(h.got, append(bytes.Clone(report), sig...))
	return &Ack{LogIndex: uint64(len(h.got))}, nil
}

func TestSubmitEval(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		sig := bytes.Repeat([]byte{7}, EvalSignatureLen)
		h := &evalHandler{testHandler: newTestHandler([]byte("model"))}
		fx := newFixture(t, tr, h, testConfig(t))
		c := fx.dial(t)
		fx.hello(t, c)
		ack, err := c.SubmitEval(ctxT(t), []byte("report"), sig)
		if err != nil || ack.LogIndex != 1 {
			t.Fatalf("SubmitEval: %+v, %v", ack, err)
		}
		h.mu.Lock()
		got := h.got
		h.mu.Unlock()
		if len(got) != 1 || !bytes.Equal(got[0], append([]byte("report"), sig...)) {
			t.Fatalf("handler got %q", got)
		}
		if _, err := c.SubmitEval(ctxT(t), []byte("bad"), sig); !errors.Is(err, CodeBadRequest) {
			t.Fatalf("refused report: %v", err)
		}
		// Over the limits the client refuses to encode.
		if _, err := c.SubmitEval(ctxT(t), make([]byte, MaxEvalReportLen+1), sig); err == nil {
			t.Fatal("oversize report sent")
		}
		if _, err := c.SubmitEval(ctxT(t), []byte("r"), sig[:10]); err == nil {
			t.Fatal("short signature sent")
		}
	})
}

// TestSubmitEvalUnsupported: a server whose handler takes no reports
// answers CodeBadRequest.
func TestSubmitEvalUnsupported(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		fx := newFixture(t, tr, newTestHandler([]byte("model")), testConfig(t))
		c := fx.dial(t)
		fx.hello(t, c)
		if _, err := c.SubmitEval(ctxT(t), []byte("report"), bytes.Repeat([]byte{7}, EvalSignatureLen)); !errors.Is(err, CodeBadRequest) {
			t.Fatalf("server without EvalHandler: %v", err)
		}
	})
}
