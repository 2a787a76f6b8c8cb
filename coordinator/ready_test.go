package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mfn/mfn/protocol"
)

// TestNotReadyIsNotRefused: a member cut off from its leader cannot know
// the nodes enrolled meanwhile. It must not refuse them at the handshake
// ("not enrolled", which a node takes as final) but answer their Hello
// with CodeNotReady; once it has caught up it admits them. A member that
// has caught up still refuses a key nobody enrolled, at the handshake and
// at Hello.
func TestNotReadyIsNotRefused(t *testing.T) {
	tc := newTestCluster(t, 3, clusterOpts{})
	nodes := newTestNodes(t, 3, 5)
	tc.enroll(nodes[:1])
	tc.waitApplied()
	l := tc.leader()
	f := (l + 1) % 3
	isolate := func(on bool) {
		for j, tr := range tc.trans {
			if j == f {
				continue
			}
			if on {
				tr.Disconnect(tc.trans[f].LocalAddr())
				tc.trans[f].Disconnect(tr.LocalAddr())
			} else {
				tr.Connect(tc.trans[f].LocalAddr(), tc.trans[f])
				tc.trans[f].Connect(tr.LocalAddr(), tr)
			}
		}
	}
	isolate(true)
	tc.eventually(10*time.Second, "the cut-off member to lose its leader", func() bool { return !tc.members[f].CaughtUp() })
	tc.enroll(nodes[1:2]) // the cut-off member misses this

	fh := NewQUICHandler(tc.members[f])
	late := protocol.Peer{Key: nodes[1].pub()}
	if err := fh.VerifyNodeKey(late.Key); err != nil {
		t.Fatalf("a member that has not caught up refused a key at the handshake: %v", err)
	}
	_, err := fh.HandleHello(context.Background(), late, &protocol.Hello{NodeID: nodes[1].id})
	var pe *protocol.ProtocolError
	if !errors.As(err, &pe) || pe.Code != protocol.CodeNotReady || pe.RetryAfter <= 0 {
		t.Fatalf("Hello of a key enrolled meanwhile: %v, want CodeNotReady with a RetryAfter", err)
	}
	if n := testutil.ToFloat64(fh.metrics.refused.WithLabelValues(RefusedNotReady)); n != 1 {
		t.Fatalf("not_ready refusals counted %v, want 1", n)
	}
	if ack, err := fh.HandleHello(context.Background(), protocol.Peer{Key: nodes[0].pub()}, &protocol.Hello{NodeID: nodes[0].id}); err != nil || ack.LeaderHint != "" {
		t.Fatalf("Hello of a key it knows: %+v, %v; want admitted with no leader hint", ack, err)
	}

	// The leader, caught up, refuses a key nobody enrolled.
	lh := NewQUICHandler(tc.members[l])
	stranger := nodes[2].pub()
	if err := lh.VerifyNodeKey(stranger); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("leader handshake of an unknown key: %v, want ErrUnknownNode", err)
	}
	if _, err := lh.HandleHello(context.Background(), protocol.Peer{Key: stranger}, &protocol.Hello{}); !errors.Is(err, protocol.CodeUnauthorized) {
		t.Fatalf("leader Hello of an unknown key: %v, want CodeUnauthorized", err)
	}
	if ack, err := lh.HandleHello(context.Background(), late, &protocol.Hello{NodeID: nodes[1].id}); err != nil || ack.Term == 0 || ack.LeaderHint == "" {
		t.Fatalf("leader Hello: %+v, %v; want a leader hint and its term", ack, err)
	}

	isolate(false)
	tc.eventually(15*time.Second, "the member to catch up", func() bool {
		_, known := tc.members[f].NodeByKey(late.Key)
		return known && tc.members[f].CaughtUp()
	})
	if _, err := fh.HandleHello(context.Background(), late, &protocol.Hello{NodeID: nodes[1].id}); err != nil {
		t.Fatalf("caught-up member, key enrolled meanwhile: %v", err)
	}
	before := testutil.ToFloat64(fh.metrics.refused.WithLabelValues(RefusedUnknownKey))
	if err := fh.VerifyNodeKey(stranger); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("caught-up follower, unknown key: %v, want ErrUnknownNode", err)
	}
	if n := testutil.ToFloat64(fh.metrics.refused.WithLabelValues(RefusedUnknownKey)); n != before+1 {
		t.Fatalf("unknown_key refusals counted %v, want %v", n, before+1)
	}
}
