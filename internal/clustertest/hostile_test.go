package clustertest_test

import (
	"crypto/rand"
	"errors"
	"math"
	mrand "math/rand/v2"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/internal/clustertest"
	"github.com/mfn/mfn/protocol"
)

// TestHostileSubmissions sends the leader process what a Byzantine or
// broken node would — garbage, truncated envelopes, NaN, wrong shape,
// stale base model, wrong round and job, someone else's statement, an
// envelope for other recipients, a flood, a revoked key — and checks that
// each gets its typed protocol error, nothing is stored, and no process
// dies. A round then completes with exactly the valid updates.
func TestHostileSubmissions(t *testing.T) {
	processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	const dim = 1000
	spec := testSpec("hostile", dim, 2, 1)
	c, leader, nodes := startCluster(ctx, t, 8, 8, spec)
	r := waitOpen(t, ctx, c, spec.ID, 1)
	rng := mrand.New(mrand.NewPCG(10, 10))
	vals := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(float32(rng.NormFloat64()))
		}
		return v
	}
	seal := func(n *clustertest.Node, job string, round uint64, base coordinator.Hash, v []float64) []byte {
		t.Helper()
		s, _, err := n.Seal(job, round, base, v, 10)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	garbage := make([]byte, 40_000)
	rand.Read(garbage)
	good := seal(nodes[0], spec.ID, 1, r.BaseHash, vals(dim))
	nan := vals(dim)
	nan[17] = math.NaN()
	stranger, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	stmt := &crypto.Statement{Origin: c.Origin, JobID: spec.ID, Round: 1, NodeID: nodes[6].ID, BaseModelHash: r.BaseHash,
		SampleCount: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	forStranger, err := crypto.Seal(stmt, crypto.EncodeUpdate(vals(dim), crypto.Float32), nodes[6].Identity.SigningKey, []age.Recipient{stranger.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	var staleBase coordinator.Hash
	staleBase[0] = 1

	cases := []struct {
		name   string
		from   *clustertest.Node
		sealed []byte
		want   protocol.Code
	}{
		{"random bytes", nodes[0], garbage, protocol.CodeBadRequest},
		{"truncated envelope", nodes[0], good[:len(good)-1000], protocol.CodeBadRequest},
		{"NaN value", nodes[1], seal(nodes[1], spec.ID, 1, r.BaseHash, nan), protocol.CodeBadRequest},
		{"wrong dimension", nodes[1], seal(nodes[1], spec.ID, 1, r.BaseHash, vals(dim+1)), protocol.CodeBadRequest},
		{"stale base model", nodes[2], seal(nodes[2], spec.ID, 1, staleBase, vals(dim)), protocol.CodeRoundClosed},
		{"round not open", nodes[2], seal(nodes[2], spec.ID, 7, r.BaseHash, vals(dim)), protocol.CodeRoundClosed},
		{"unknown job", nodes[5], seal(nodes[5], "no-such-job", 1, r.BaseHash, vals(dim)), protocol.CodeNotFound},
		{"another node's statement", nodes[5], seal(nodes[4], spec.ID, 1, r.BaseHash, vals(dim)), protocol.CodeBadRequest},
		{"sealed to other recipients", nodes[6], forStranger, protocol.CodeBadRequest},
	}
	for _, tc := range cases {
		ack, err := tc.from.SubmitTo(ctx, leader.QUICAddr, tc.sealed)
		var pe *protocol.ProtocolError
		if err == nil {
			t.Errorf("%s: acknowledged %+v", tc.name, ack)
		} else if !errors.As(err, &pe) || pe.Code != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}

	// A flood from one node hits its rate limit, with a retry-after.
	flooder := nodes[7]
	limited := false
	for range 30 {
		_, err := flooder.SubmitTo(ctx, leader.QUICAddr, garbage)
		var pe *protocol.ProtocolError
		if errors.As(err, &pe) && pe.Code == protocol.CodeRateLimited {
			limited = true
			if pe.RetryAfter <= 0 {
				t.Errorf("rate limited without a retry-after: %v", err)
			}
			break
		}
	}
	if !limited {
		t.Error("30 back-to-back submissions from one node were never rate limited")
	}

	// A revoked node is refused on its open connection (the member closes
	// that connection when it applies the revocation, or refuses the
	// submission as unauthorized if it arrives first) and cannot connect
	// again.
	revoked := nodes[3]
	if err := revoked.Connect(ctx, leader.QUICAddr); err != nil {
		t.Fatal(err)
	}
	if _, err := c.API(leader, c.OperatorKeys[0]).RevokeNode(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	_, err = revoked.SubmitTo(ctx, leader.QUICAddr, seal(revoked, spec.ID, 1, r.BaseHash, vals(dim)))
	switch {
	case err == nil:
		t.Error("revoked node's submission on its open connection was acknowledged")
	case errors.Is(err, protocol.CodeUnauthorized):
	default:
		var pe *protocol.ProtocolError
		if errors.As(err, &pe) {
			t.Errorf("revoked node's submission on its open connection: got %v, want %v or a closed connection", err, protocol.CodeUnauthorized)
		}
	}
	revoked.Close()
	if _, err := revoked.SubmitTo(ctx, leader.QUICAddr, good); err == nil || errors.Is(err, protocol.CodeNotLeader) {
		t.Errorf("revoked node connected and submitted again: %v", err)
	}

	for _, m := range c.Members {
		if done, exitErr := m.Exited(); done != nil {
			select {
			case <-done:
				t.Fatalf("%s exited: %v", m.ID, exitErr())
			default:
			}
		}
	}
	r, err = c.Round(ctx, spec.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Updates) != 0 || r.State != coordinator.RoundOpen {
		t.Fatalf("after hostile submissions the round is %s with %d updates, want open and empty", r.State, len(r.Updates))
	}
	// The round still works: two valid updates close it.
	ups := makeUpdates(t, nodes[4:6], spec.ID, 1, r.BaseHash, dim, rng)
	acks := map[string]protocol.Ack{}
	for i, rc := range submitAll(ctx, t, ups) {
		acks[ups[i].node.ID] = rc.Ack
	}
	r, err = c.WaitRound(ctx, spec.ID, 1, "ended", roundEnded)
	if err != nil {
		t.Fatal(err)
	}
	checkRound(t, r, ups, acks)
	st, err := c.Status(ctx, leader)
	if err != nil {
		t.Fatal(err)
	}
	if st.AuditSize != 2 {
		t.Errorf("audit log has %d leaves, 2 updates were accepted", st.AuditSize)
	}
}
