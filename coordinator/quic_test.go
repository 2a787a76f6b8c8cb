package coordinator

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// quicCluster adds a protocol server on an in-memory network to every
// member of a test cluster, at the member's advertised QUIC address.
func quicCluster(t *testing.T, tc *testCluster) *protocol.MemNetwork {
	t.Helper()
	net := protocol.NewMemNetwork()
	for i, m := range tc.members {
		id, err := protocol.NewIdentity(tc.keys.coords[i].SigningKey)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := protocol.NewServer(protocol.Config{}, NewQUICHandler(m))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen(m.cfg.QUICAddr, id, m.VerifyNodeKey, protocol.Config{})
		if err != nil {
			t.Fatal(err)
		}
		m.SetAnnouncer(ProtocolAnnouncer{Server: srv})
		m.SetDisconnect(srv.Disconnect)
		m.SetQUICConnections(srv.Subscribers)
		go srv.Serve(context.Background(), ln)
		t.Cleanup(func() { srv.Close() })
	}
	return net
}

func (tc *testCluster) coordinatorKeys() []ed25519.PublicKey {
	var out []ed25519.PublicKey
	for _, c := range tc.keys.coords {
		out = append(out, c.PublicKey())
	}
	return out
}

func dialNode(t *testing.T, net *protocol.MemNetwork, tc *testCluster, n *testNode, addr string) (*protocol.Client, error) {
	t.Helper()
	id, err := protocol.NewIdentity(n.key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := protocol.Dial(ctx, net.Dialer(id, tc.coordinatorKeys(), protocol.Config{}), addr, protocol.Config{})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { cl.Close() })
	if _, err := cl.Hello(ctx, &protocol.Hello{NodeID: n.id}); err != nil {
		return nil, err
	}
	return cl, nil
}

// TestQUICRound drives a round end to end through the node protocol: a
// node learns of the round by push, fetches the hash-checked base model,
// submits a sealed update and gets its ack; a follower redirects to the
// leader's QUIC address; an unenrolled key cannot even connect.
func TestQUICRound(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{})
	net := quicCluster(t, tc)
	nodes := newTestNodes(t, 3, 21)
	tc.enroll(nodes[:2])
	li := tc.leader()
	l := tc.members[li]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cl, err := dialNode(t, net, tc, nodes[0], l.cfg.QUICAddr)
	if err != nil {
		t.Fatal(err)
	}
	anns, err := cl.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec("q", 5, 1, 2)
	spec.InitialModel = Params{1, 2, 3, 4, 5}
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	var ann *protocol.RoundAnnouncement
	select {
	case ann = <-anns:
	case <-ctx.Done():
		t.Fatal("no announcement pushed")
	}
	if ann.JobID != "q" || ann.Round != 1 || ann.BaseVersion != 0 || ann.BaseHash != ModelHash(spec.InitialModel) || ann.MaxUpdates != 2 {
		t.Fatalf("announcement %+v", ann)
	}
	raw, err := cl.FetchModel(ctx, "q", ann.BaseVersion, ann.BaseHash)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(raw)) != ann.ModelSize || sha256.Sum256(raw) != ann.BaseHash {
		t.Fatalf("fetched %d bytes, announced %d", len(raw), ann.ModelSize)
	}
	base, err := crypto.DecodeUpdate(raw, 0)
	if err != nil || fmt.Sprint(base) != "[1 2 3 4 5]" {
		t.Fatalf("model %v %v", base, err)
	}
	sealed := nodes[0].seal(t, tc.keys, "q", 1, ann.BaseHash, []float64{1, 1, 1, 1, 1}, 3)
	ack, err := cl.Submit(ctx, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if ack.LeafIndex != 0 || ack.LogIndex == 0 {
		t.Fatalf("ack %+v", ack)
	}
	if _, err := cl.Submit(ctx, nodes[0].seal(t, tc.keys, "q", 1, ann.BaseHash, []float64{2, 2, 2, 2, 2}, 3)); !errors.Is(err, protocol.CodeDuplicate) {
		t.Fatalf("second update: %v, want duplicate", err)
	}
	if got := metricValue(t, l, "mfn_coordinator_quic_connections"); got != 1 {
		t.Fatalf("quic connections gauge %v, want 1", got)
	}

	// A follower says who leads.
	f := tc.members[(li+1)%3]
	fc, err := dialNode(t, net, tc, nodes[1], f.cfg.QUICAddr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fc.Submit(ctx, nodes[1].seal(t, tc.keys, "q", 1, ann.BaseHash, []float64{1, 1, 1, 1, 1}, 3))
	var pe *protocol.ProtocolError
	if !errors.As(err, &pe) || pe.Code != protocol.CodeNotLeader || pe.LeaderAddr != l.cfg.QUICAddr {
		t.Fatalf("follower: %v, want not leader with %s", err, l.cfg.QUICAddr)
	}

	// An unenrolled key is refused at the handshake.
	if _, err := dialNode(t, net, tc, nodes[2], l.cfg.QUICAddr); err == nil {
		t.Fatal("unenrolled node connected")
	}
}

func TestProtocolErrorMapping(t *testing.T) {
	cases := []struct {
		err  error
		code protocol.Code
	}{
		{&NotLeaderError{LeaderID: "a", QUICAddr: "q"}, protocol.CodeNotLeader},
		{&RateLimitedError{RetryAfter: time.Second}, protocol.CodeRateLimited},
		{fmt.Errorf("x: %w", ErrRoundClosed), protocol.CodeRoundClosed},
		{&DuplicateError{}, protocol.CodeDuplicate},
		{ErrRevoked, protocol.CodeUnauthorized},
		{ErrUnknownNode, protocol.CodeUnauthorized},
		{ErrNotFound, protocol.CodeNotFound},
		{ErrBadUpdate, protocol.CodeBadRequest},
		{ErrClosed, protocol.CodeUnavailable},
		{errors.New("boom"), protocol.CodeInternal},
	}
	for _, c := range cases {
		if got := ProtocolError(c.err); got.Code != c.code {
			t.Errorf("%v → %v, want %v", c.err, got.Code, c.code)
		}
	}
	if pe := ProtocolError(&NotLeaderError{LeaderID: "a", QUICAddr: "q:1"}); pe.LeaderAddr != "q:1" {
		t.Errorf("leader address lost: %+v", pe)
	}
}

// TestLateSubscriberAfterFailover: a round stays open between its soft and
// hard deadlines while it lacks MinUpdates, so a node that subscribes in
// that window, here to the leader elected after the first one crashed,
// must still be told of it; once the round closes it is no longer offered.
func TestLateSubscriberAfterFailover(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{})
	// The protocol server expires announcements by the wall clock: run the
	// leaders' clock from now so that both agree on when deadlines pass.
	tc.clock.mu.Lock()
	tc.clock.now = time.Now()
	tc.clock.mu.Unlock()
	net := quicCluster(t, tc)
	nodes := newTestNodes(t, 1, 22)
	tc.enroll(nodes)
	li := tc.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec := testSpec("late", 3, 1, 2)
	spec.Shape = []int{3}
	spec.RoundDeadline = Duration(50 * time.Millisecond)
	spec.HardDeadline = Duration(time.Hour)
	if _, err := tc.members[li].CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r := tc.waitRound(li, "late", 1, RoundOpen)
	eventually(t, 5*time.Second, "the soft deadline to pass", func() bool { return time.Now().After(r.Deadline) })
	tc.kill(li)
	ni := tc.leader()
	nl := tc.members[ni]

	cl, err := dialNode(t, net, tc, nodes[0], nl.cfg.QUICAddr)
	if err != nil {
		t.Fatal(err)
	}
	first := func() *protocol.RoundAnnouncement {
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		anns, err := cl.Subscribe(sctx)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-anns:
			return a
		case <-time.After(500 * time.Millisecond):
			return nil
		}
	}
	ann := first()
	if ann == nil || ann.JobID != "late" || ann.Round != 1 {
		t.Fatalf("subscriber after the soft deadline got %+v, want job late round 1", ann)
	}
	if ann.Metadata["shape"] != "3" || ann.Metadata["dim"] != "3" || ann.Metadata["task"] != "test" {
		t.Fatalf("announcement metadata %v, want the job's task, dim and shape", ann.Metadata)
	}
	if !ann.Deadline.Equal(r.Deadline) {
		t.Fatalf("announced deadline %v, want the soft deadline %v", ann.Deadline, r.Deadline)
	}
	sealed := nodes[0].seal(t, tc.keys, "late", 1, ann.BaseHash, []float64{1, 2, 3}, 1)
	if _, err := cl.Submit(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	tc.clock.Advance(time.Second) // the leaders' clock past the soft deadline too
	tc.waitRound(ni, "late", 1, RoundClosed)
	// Round 2 is open now; round 1 is not offered any more.
	eventually(t, 5*time.Second, "round 2 to be the one offered", func() bool {
		a := first()
		return a != nil && a.Round == 2
	})
}

// TestRevokeDisconnects: revoking a node ends its live connections on every
// member at once (leader and follower alike), and it cannot reconnect; a
// node that is not revoked keeps its connection.
func TestRevokeDisconnects(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{})
	net := quicCluster(t, tc)
	nodes := newTestNodes(t, 2, 23)
	tc.enroll(nodes)
	tc.waitApplied()
	li := tc.leader()
	l, f := tc.members[li], tc.members[(li+1)%3]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conns []*protocol.Client
	for _, addr := range []string{l.cfg.QUICAddr, f.cfg.QUICAddr} {
		cl, err := dialNode(t, net, tc, nodes[0], addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cl)
	}
	other, err := dialNode(t, net, tc, nodes[1], l.cfg.QUICAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RevokeNode(ctx, nodes[0].id); err != nil {
		t.Fatal(err)
	}
	for i, cl := range conns {
		select {
		case <-cl.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("connection %d of the revoked node still open", i)
		}
	}
	select {
	case <-other.Done():
		t.Fatal("the connection of a node that was not revoked ended")
	default:
	}
	if _, err := other.Hello(ctx, &protocol.Hello{NodeID: nodes[1].id}); err != nil {
		t.Fatalf("other node after the revocation: %v", err)
	}
	if _, err := dialNode(t, net, tc, nodes[0], l.cfg.QUICAddr); err == nil {
		t.Fatal("revoked node reconnected")
	}
}

func TestAnnouncementMetadata(t *testing.T) {
	an := Announcement{Task: "mfn-regime", Dim: 740, Shape: []int{18, 32, 4}}
	if got := fmt.Sprint(AnnouncementMetadata(an)); got != "map[dim:740 shape:18,32,4 task:mfn-regime]" {
		t.Fatalf("metadata %s", got)
	}
	an.Shape = nil
	if _, ok := AnnouncementMetadata(an)["shape"]; ok {
		t.Fatal("shape announced for a job without one")
	}
	// A shape that does not fit one metadata value is left out.
	an.Shape = make([]int, protocol.MaxMetaValLen)
	for i := range an.Shape {
		an.Shape[i] = 1
	}
	if _, ok := AnnouncementMetadata(an)["shape"]; ok {
		t.Fatal("oversize shape announced")
	}
	an.Shape = an.Shape[:protocol.MaxMetaValLen/2] // "1,1,…,1" is 1023 bytes
	if s := AnnouncementMetadata(an)["shape"]; len(s) != protocol.MaxMetaValLen-1 {
		t.Fatalf("shape of %d bytes", len(s))
	}
}
