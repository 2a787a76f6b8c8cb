package protocol

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConnectionCaps dials one connection more than each cap allows: the
// extra connection is refused (its Hello fails), counted with the right
// reason, and a slot freed by a closed connection can be used again.
func TestConnectionCaps(t *testing.T) {
	for _, tc := range []struct {
		name          string
		total, perKey int
		reason        RefuseReason
	}{
		{"total", 2, 10, RefusedTooManyConns},
		{"per-key", 10, 2, RefusedTooManyForKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr transport) {
				var mu sync.Mutex
				reasons := map[RefuseReason]int{}
				cfg := testConfig(t)
				cfg.MaxConns, cfg.MaxConnsPerKey = tc.total, tc.perKey
				cfg.OnRefuse = func(r RefuseReason, peer ed25519.PublicKey) {
					mu.Lock()
					reasons[r]++
					mu.Unlock()
				}
				fx := newFixture(t, tr, newTestHandler(nil), cfg)
				var live []*Client
				for range 2 {
					c := fx.dial(t)
					fx.hello(t, c)
					live = append(live, c)
				}
				extra := fx.dial(t)
				if _, err := extra.Hello(ctxT(t), &Hello{NodeID: "node-2"}); err == nil {
					t.Fatal("a connection beyond the cap was served")
				}
				waitFor(t, "the refusal to be counted", func() bool { return fx.srv.Refused() == 1 })
				mu.Lock()
				if reasons[tc.reason] != 1 || len(reasons) != 1 {
					t.Errorf("refusals by reason %v, want one %s", reasons, tc.reason)
				}
				mu.Unlock()
				if n := fx.srv.Conns(); n != 2 {
					t.Fatalf("server holds %d connections, want 2", n)
				}
				live[0].Close()
				waitFor(t, "the closed connection to be released", func() bool { return fx.srv.Conns() == 1 })
				fx.hello(t, fx.dial(t))
				if fx.srv.Refused() != 1 {
					t.Fatalf("refused %d, want still 1", fx.srv.Refused())
				}
			})
		})
	}
}

// TestHelloAckVersions: a Version2 (or later) answer carries the server's instance
// and the leader's term; a client offering only Version1 gets neither, and
// a Version1 answer cannot carry them.
func TestHelloAckVersions(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cfg := testConfig(t)
		cfg.Instance = "instance-a"
		fx := newFixture(t, tr, newTestHandler(nil), cfg)
		ack := fx.hello(t, fx.dial(t))
		if ack.Version != Version4 || ack.Instance != "instance-a" || ack.Term != 7 {
			t.Fatalf("v2 HelloAck %+v, want instance-a and term 7", ack)
		}
		old, err := fx.dial(t).Hello(ctxT(t), &Hello{Versions: []uint8{Version1}, NodeID: "node-2"})
		if err != nil {
			t.Fatal(err)
		}
		if old.Version != Version1 || old.Instance != "" || old.Term != 0 || old.LeaderHint == "" {
			t.Fatalf("v1 HelloAck %+v, want no instance or term", old)
		}
	})
	if _, err := (&HelloAck{Version: Version1, Supported: []uint8{1}, Instance: "x"}).MarshalBinary(); !errors.Is(err, ErrNonCanonical) {
		t.Fatalf("v1 HelloAck with an instance: %v, want ErrNonCanonical", err)
	}
	v2, _ := (&HelloAck{Version: Version2, Supported: []uint8{1, 2}}).MarshalBinary()
	v1, _ := (&HelloAck{Version: Version1, Supported: []uint8{1, 2}}).MarshalBinary()
	if len(v2) != len(v1)+4+8 || !bytes.Equal(v2[1:len(v1)], v1[1:]) {
		t.Fatalf("v2 encoding has %d bytes, v1 %d: want 12 more (instance length, term)", len(v2), len(v1))
	}
	v2[0] = Version1 // a v1 decoder reads the v2 fields as trailing bytes
	if err := new(HelloAck).UnmarshalBinary(v2); !errors.Is(err, ErrTrailingBytes) {
		t.Fatalf("v2 fields under version 1: %v, want ErrTrailingBytes", err)
	}
}

func TestLogSampler(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	s := &LogSampler{Window: time.Second, Burst: 3, Now: func() time.Time { return now }}
	written := 0
	for range 100 {
		if s.Log(l, "refused", "reason", "x") {
			written++
		}
	}
	if written != 3 {
		t.Fatalf("%d lines in one window, want 3", written)
	}
	now = now.Add(time.Second)
	if !s.Log(l, "refused") {
		t.Fatal("a new window wrote nothing")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], "suppressed=97") {
		t.Fatalf("log lines %q, want 4 with the last reporting suppressed=97", lines)
	}
}
