package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mfn/mfn/protocol/internal/wire"
)

const testTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestSubmitTraceParent: the traceparent in the client's ctx reaches the
// handler's ctx when both speak Version3, and is left out (the update
// still accepted, its bytes unchanged) when either side is older.
func TestSubmitTraceParent(t *testing.T) {
	for _, tc := range []struct {
		name        string
		srv, cli    []uint8
		tp          string
		want        string
		wantVersion uint8
	}{
		{"both v3", nil, nil, testTraceParent, testTraceParent, Version4},
		{"no traceparent", nil, nil, "", "", Version4},
		{"old server", []uint8{Version1, Version2}, nil, testTraceParent, "", Version2},
		{"old client", nil, []uint8{Version1, Version2}, testTraceParent, "", Version2},
		{"oversized value not sent", nil, nil, strings.Repeat("a", MaxTraceParentLen+1), "", Version4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr transport) {
				cfg := testConfig(t)
				cfg.Versions = tc.srv
				h := newTestHandler(testModel(10))
				fx := newFixture(t, tr, h, cfg)
				fx.cfg.Versions = tc.cli
				c := fx.dial(t)
				fx.hello(t, c)
				if c.Version() != tc.wantVersion {
					t.Fatalf("negotiated %d, want %d", c.Version(), tc.wantVersion)
				}
				sealed := []byte("sealed envelope bytes")
				if _, err := c.Submit(WithTraceParent(ctxT(t), tc.tp), sealed); err != nil {
					t.Fatalf("Submit: %v", err)
				}
				h.mu.Lock()
				defer h.mu.Unlock()
				if len(h.traces) != 1 || h.traces[0] != tc.want {
					t.Fatalf("handler saw traceparents %q, want [%q]", h.traces, tc.want)
				}
				if !bytes.Equal(h.submitted[0], sealed) {
					t.Fatal("sealed bytes changed")
				}
			})
		})
	}
}

// TestSubmitUpdateTraceParentDecoding: the optional field decodes, and
// the non-canonical or oversized forms fail as *DecodeError.
func TestSubmitUpdateTraceParentDecoding(t *testing.T) {
	t.Parallel()
	base, _ := (&SubmitUpdate{Sealed: []byte("s")}).MarshalBinary()
	traced, err := (&SubmitUpdate{Sealed: []byte("s"), TraceParent: testTraceParent}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(traced, base) {
		t.Fatal("the traced encoding does not extend the plain one")
	}
	var m SubmitUpdate
	if err := m.UnmarshalBinary(traced); err != nil || m.TraceParent != testTraceParent || string(m.Sealed) != "s" {
		t.Fatalf("decoded %+v, %v", m, err)
	}
	if err := m.UnmarshalBinary(base); err != nil || m.TraceParent != "" {
		t.Fatalf("plain decode %+v, %v", m, err)
	}
	emptyField := wire.AppendU32(append([]byte(nil), base...), 0)
	long := wire.AppendU32(append([]byte(nil), base...), MaxTraceParentLen+1)
	long = append(long, strings.Repeat("a", MaxTraceParentLen+1)...)
	for name, b := range map[string][]byte{
		"empty field": emptyField, "oversized": long, "truncated": traced[:len(traced)-3],
	} {
		var de *DecodeError
		if err := m.UnmarshalBinary(b); !errors.As(err, &de) {
			t.Errorf("%s: %v, want *DecodeError", name, err)
		}
	}
	if _, err := (&SubmitUpdate{Sealed: []byte("s"), TraceParent: strings.Repeat("a", MaxTraceParentLen+1)}).MarshalBinary(); !errors.Is(err, ErrFieldTooLong) {
		t.Fatalf("encoding an oversized traceparent: %v, want ErrFieldTooLong", err)
	}
}
