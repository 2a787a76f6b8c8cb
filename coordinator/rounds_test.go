package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mfn/mfn/audit"
)

// update returns node i's test update: u[k] = i*10 + k + 0.5.
func testUpdate(i, dim int) []float64 {
	u := make([]float64, dim)
	for k := range u {
		u[k] = float64(i*10+k) + 0.5
	}
	return u
}

// fedavg is the expected FedAvg result: base + Σ w_i u_i / Σ w_i.
func fedavg(base []float64, ups [][]float64, w []float64) []float64 {
	out := make([]float64, len(base))
	var sw float64
	for _, x := range w {
		sw += x
	}
	for k := range out {
		var s float64
		for i, u := range ups {
			s += w[i] * u[k]
		}
		out[k] = base[k] + s/sw
	}
	return out
}

func TestFullRound(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{})
	nodes := newTestNodes(t, 5, 1)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	events, cancelEvents := tc.members[(li+1)%3].Subscribe() // a follower's view
	defer cancelEvents()
	ctx := context.Background()
	const dim = 6
	if _, err := l.CreateJob(ctx, testSpec("job1", dim, 5, 5)); err != nil {
		t.Fatal(err)
	}
	r1 := tc.waitRound(li, "job1", 1, RoundOpen)
	var ups [][]float64
	var ws []float64
	acks := map[uint64]bool{}
	for i, n := range nodes {
		u := testUpdate(i, dim)
		ups, ws = append(ups, u), append(ws, float64(i+1))
		ack, err := l.Submit(ctx, n.pub(), n.seal(t, tc.keys, "job1", 1, r1.BaseHash, u, uint64(i+1)))
		if err != nil {
			t.Fatalf("node %s: %v", n.id, err)
		}
		if ack.LeafIndex != uint64(i) || acks[ack.LogIndex] {
			t.Fatalf("node %s: ack %+v (leaf should be %d, log index unique)", n.id, ack, i)
		}
		acks[ack.LogIndex] = true
	}
	r := tc.waitRound(li, "job1", 1, RoundClosed, RoundFailed)
	if r.State != RoundClosed {
		t.Fatalf("round 1 %s: %s", r.State, r.FailReason)
	}
	if r.Result.ModelVersion != 1 || r.Result.Used != 5 || r.Result.Rejected != 0 || r.Result.Rule != "fedavg" {
		t.Fatalf("result %+v", r.Result)
	}
	for _, u := range r.Updates {
		if !u.Used || u.Sealed != nil {
			t.Fatalf("update %+v: want used, sealed body dropped", u)
		}
	}
	m, err := l.Model("job1", 1)
	if err != nil {
		t.Fatal(err)
	}
	wantModel := fedavg(make([]float64, dim), ups, ws)
	for k := range wantModel {
		if math.Abs(m.Params[k]-wantModel[k]) > 1e-12 {
			t.Fatalf("model[%d] = %v, want %v", k, m.Params[k], wantModel[k])
		}
	}
	if m.Hash != ModelHash(m.Params) || m.Hash != r.Result.ModelHash {
		t.Fatal("model hash mismatch")
	}
	// A follower's subscribers saw the round's life, in log order.
	var kinds []EventKind
	var last uint64
	eventually(t, 5*time.Second, "round events on a follower", func() bool {
		for {
			select {
			case e := <-events:
				if e.Job != "job1" || e.Round != 1 {
					continue
				}
				if e.Index <= last {
					t.Fatalf("event index %d after %d", e.Index, last)
				}
				last = e.Index
				kinds = append(kinds, e.Kind)
			default:
				return len(kinds) == 8
			}
		}
	})
	want := []EventKind{EventRoundOpened, EventUpdateAccepted, EventUpdateAccepted, EventUpdateAccepted,
		EventUpdateAccepted, EventUpdateAccepted, EventRoundSealed, EventRoundClosed}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	// The next round opens on the new model.
	r2 := tc.waitRound(li, "job1", 2, RoundOpen)
	if r2.BaseVersion != 1 || r2.BaseHash != m.Hash {
		t.Fatalf("round 2 base %d %s, want 1 %s", r2.BaseVersion, r2.BaseHash, m.Hash)
	}
	// Every replica holds the same result, and the same state.
	tc.waitApplied()
	for i, c := range tc.members {
		mi, err := c.Model("job1", 1)
		if err != nil || mi.Hash != m.Hash {
			t.Fatalf("member %d: model %v %v", i, mi.Hash, err)
		}
	}
	assertSameState(t, tc)
	if got := metricValue(t, l, "mfn_coordinator_rounds_total"); got < 1 {
		t.Fatalf("rounds_total %v", got)
	}
	if got := metricValue(t, l, "mfn_coordinator_updates_total"); got != 5 {
		t.Fatalf("updates_total %v, want 5", got)
	}
	if got := metricValue(t, l, "mfn_coordinator_raft_state"); got != 2 {
		t.Fatalf("raft_state %v, want 2 (leader)", got)
	}
	// Every acknowledged update has an inclusion proof under a signed
	// checkpoint, valid offline.
	var cp Checkpoint
	eventually(t, 5*time.Second, "a checkpoint covering 5 leaves", func() bool {
		cp, err = l.LatestCheckpoint()
		return err == nil && cp.Size == 5
	})
	cps, err := tc.members[(li+2)%3].Checkpoints()
	if err != nil || len(cps) == 0 || cps[len(cps)-1].Size != 5 {
		t.Fatalf("checkpoints %v %v", cps, err)
	}
	for i := 1; i < len(cps); i++ {
		if cps[i].Size <= cps[i-1].Size {
			t.Fatalf("checkpoint sizes not increasing: %d then %d", cps[i-1].Size, cps[i].Size)
		}
		if _, err := tc.members[li].Consistency(cps[i-1].Size, cps[i].Size); err != nil {
			t.Fatal(err)
		}
	}
	keys := audit.NodeKeys{}
	for _, n := range nodes {
		keys[n.id] = n.pub()
	}
	for i := range uint64(5) {
		b, err := tc.members[(li+1)%3].Bundle(i)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := audit.VerifyBundle(b, tc.keys.verifier, keys); err != nil {
			t.Fatalf("bundle %d: %v", i, err)
		}
	}
}

// assertSameState checks that every live member's state is byte-identical
// once they have applied the same entries (the leader may still be
// appending, so it compares snapshots taken at equal applied indexes).
func assertSameState(t *testing.T, tc *testCluster) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var snaps [][]byte
		var applied []uint64
		for i, c := range tc.members {
			if tc.down[i] {
				continue
			}
			c.fsm.mu.RLock()
			b, err := c.fsm.marshalLocked()
			a := c.fsm.applied
			c.fsm.mu.RUnlock()
			if err != nil {
				t.Fatal(err)
			}
			snaps, applied = append(snaps, b), append(applied, a)
		}
		same := true
		for _, a := range applied {
			same = same && a == applied[0]
		}
		if same {
			for i := range snaps {
				if !bytes.Equal(snaps[0], snaps[i]) {
					t.Fatalf("live member %d's state differs from the first's at applied index %d", i, applied[0])
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("members never reached the same applied index: %v", applied)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSubmissionErrors(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{})
	nodes := newTestNodes(t, 4, 2)
	tc.enroll(nodes[:3]) // nodes[3] stays unknown
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	if _, err := l.CreateJob(ctx, testSpec("j", 3, 2, 2)); err != nil {
		t.Fatal(err)
	}
	r1 := tc.waitRound(li, "j", 1, RoundOpen)
	n0, n1, n2, stranger := nodes[0], nodes[1], nodes[2], nodes[3]
	sealed := n0.seal(t, tc.keys, "j", 1, r1.BaseHash, []float64{1, 2, 3}, 1)
	ack, err := l.Submit(ctx, n0.pub(), sealed)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("retry returns the original ack", func(t *testing.T) {
		again, err := l.Submit(ctx, n0.pub(), sealed)
		if err != nil || again != ack {
			t.Fatalf("retry: %+v %v, want %+v", again, err, ack)
		}
	})
	t.Run("different update from the same node is a duplicate", func(t *testing.T) {
		_, err := l.Submit(ctx, n0.pub(), n0.seal(t, tc.keys, "j", 1, r1.BaseHash, []float64{9, 9, 9}, 1))
		var dup *DuplicateError
		if !errors.As(err, &dup) || dup.Original != ack {
			t.Fatalf("got %v, want DuplicateError with the first ack", err)
		}
	})
	cases := []struct {
		name   string
		peer   *testNode
		sealed []byte
		want   error
	}{
		{"unknown node", stranger, stranger.seal(t, tc.keys, "j", 1, r1.BaseHash, []float64{1, 2, 3}, 1), ErrUnknownNode},
		{"wrong connection key", n2, n1.seal(t, tc.keys, "j", 1, r1.BaseHash, []float64{1, 2, 3}, 1), ErrBadUpdate},
		// Signed by another key in n1's name: the leader's Opener is the
		// only signature check before the entry (replicas trust it).
		{"signature not by the node's key", n1, (&testNode{id: n1.id, key: stranger.key}).seal(t, tc.keys, "j", 1, r1.BaseHash, []float64{1, 2, 3}, 1), ErrBadUpdate},
		{"wrong base", n1, n1.seal(t, tc.keys, "j", 1, Hash{1}, []float64{1, 2, 3}, 1), ErrBaseMismatch},
		{"wrong shape", n1, n1.seal(t, tc.keys, "j", 1, r1.BaseHash, []float64{1, 2}, 1), ErrBadUpdate},
		{"future round", n1, n1.seal(t, tc.keys, "j", 7, r1.BaseHash, []float64{1, 2, 3}, 1), ErrRoundNotOpen},
		{"unknown job", n1, n1.seal(t, tc.keys, "nope", 1, r1.BaseHash, []float64{1, 2, 3}, 1), ErrNotFound},
		{"garbage", n1, []byte("age-encryption.org/v1\nnot really"), ErrBadUpdate},
		{"empty", n1, nil, ErrBadUpdate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := l.Submit(ctx, c.peer.pub(), c.sealed); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	t.Run("non-finite value", func(t *testing.T) {
		_, err := l.Submit(ctx, n1.pub(), n1.seal(t, tc.keys, "j", 1, r1.BaseHash, []float64{1, math.NaN(), 3}, 1))
		if !errors.Is(err, ErrBadUpdate) {
			t.Fatalf("got %v, want ErrBadUpdate", err)
		}
	})
	t.Run("follower answers NotLeader with the leader's addresses", func(t *testing.T) {
		f := tc.members[(li+1)%3]
		_, err := f.Submit(ctx, n1.pub(), n1.seal(t, tc.keys, "j", 1, r1.BaseHash, []float64{1, 2, 3}, 1))
		var nl *NotLeaderError
		if !errors.As(err, &nl) || nl.LeaderID != l.cfg.ID || nl.QUICAddr != l.cfg.QUICAddr || nl.HTTPAddr != l.cfg.HTTPAddr {
			t.Fatalf("got %#v, want NotLeaderError for %s at %s", err, l.cfg.ID, l.cfg.QUICAddr)
		}
		if err := f.EnrollNode(ctx, "x", n1.pub()); !isNotLeader(err, l.cfg.ID) {
			t.Fatalf("enroll on follower: %v", err)
		}
	})
	// Fill the round: it closes at max updates.
	if _, err := l.Submit(ctx, n1.pub(), n1.seal(t, tc.keys, "j", 1, r1.BaseHash, []float64{3, 2, 1}, 1)); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(li, "j", 1, RoundClosed)
	t.Run("late submission to a closed round", func(t *testing.T) {
		_, err := l.Submit(ctx, n2.pub(), n2.seal(t, tc.keys, "j", 1, r1.BaseHash, []float64{1, 2, 3}, 1))
		if !errors.Is(err, ErrRoundClosed) {
			t.Fatalf("got %v, want ErrRoundClosed", err)
		}
	})
	t.Run("retry after close still returns the ack", func(t *testing.T) {
		again, err := l.Submit(ctx, n0.pub(), sealed)
		if err != nil || again != ack {
			t.Fatalf("retry: %+v %v, want %+v", again, err, ack)
		}
	})
	t.Run("revoked node", func(t *testing.T) {
		if err := l.RevokeNode(ctx, n2.id); err != nil {
			t.Fatal(err)
		}
		r2 := tc.waitRound(li, "j", 2, RoundOpen)
		_, err := l.Submit(ctx, n2.pub(), n2.seal(t, tc.keys, "j", 2, r2.BaseHash, []float64{1, 2, 3}, 1))
		if !errors.Is(err, ErrRevoked) {
			t.Fatalf("got %v, want ErrRevoked", err)
		}
		if _, ok := l.NodeByKey(n2.pub()); ok {
			t.Fatal("NodeByKey finds a revoked node")
		}
	})
	if n := l.fsm.treeSize(); n != 2 {
		t.Fatalf("audit log has %d leaves, want 2 (only accepted updates)", n)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 1, clusterOpts{nodeRate: 0.001})
	nodes := newTestNodes(t, 1, 3)
	tc.enroll(nodes)
	l := tc.members[0]
	ctx := context.Background()
	if _, err := l.CreateJob(ctx, testSpec("j", 2, 1, 5)); err != nil {
		t.Fatal(err)
	}
	r := tc.waitRound(0, "j", 1, RoundOpen)
	n := nodes[0]
	if _, err := l.Submit(ctx, n.pub(), n.seal(t, tc.keys, "j", 1, r.BaseHash, []float64{1, 2}, 1)); err != nil {
		t.Fatal(err)
	}
	_, err := l.Submit(ctx, n.pub(), n.seal(t, tc.keys, "j", 1, r.BaseHash, []float64{1, 2}, 1))
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter < 100*time.Second {
		t.Fatalf("got %v, want RateLimitedError with retry-after ≈ 1000 s", err)
	}
}

func TestDeadlines(t *testing.T) {
	t.Parallel()
	for _, policy := range []OnFailure{OnFailureContinue, OnFailureStop} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			tc := newTestCluster(t, 3, clusterOpts{})
			nodes := newTestNodes(t, 3, 4)
			tc.enroll(nodes)
			li := tc.leader()
			l := tc.members[li]
			ctx := context.Background()
			spec := testSpec("j", 2, 2, 3)
			spec.OnFailure = policy
			if _, err := l.CreateJob(ctx, spec); err != nil {
				t.Fatal(err)
			}
			r1 := tc.waitRound(li, "j", 1, RoundOpen)
			if want := r1.OpenedAt.Add(time.Minute); !r1.Deadline.Equal(want) || !r1.HardDeadline.Equal(r1.OpenedAt.Add(5*time.Minute)) {
				t.Fatalf("deadlines %v %v", r1.Deadline, r1.HardDeadline)
			}
			n0 := nodes[0]
			if _, err := l.Submit(ctx, n0.pub(), n0.seal(t, tc.keys, "j", 1, r1.BaseHash, []float64{1, 1}, 1)); err != nil {
				t.Fatal(err)
			}
			// Past the soft deadline with 1 < min updates: still open.
			tc.clock.Advance(2 * time.Minute)
			time.Sleep(50 * time.Millisecond) // several engine ticks
			if r, _ := l.GetRound("j", 1); r.State != RoundOpen {
				t.Fatalf("round %s after the soft deadline below min updates, want open", r.State)
			}
			// Past the hard deadline: failed with a reason.
			tc.clock.Advance(5 * time.Minute)
			r := tc.waitRound(li, "j", 1, RoundFailed)
			if r.FailReason == "" || r.Updates[0].Sealed != nil {
				t.Fatalf("failed round: reason %q, sealed kept %v", r.FailReason, r.Updates[0].Sealed != nil)
			}
			if policy == OnFailureStop {
				eventually(t, 5*time.Second, "job failed", func() bool {
					j, _ := l.GetJob("j")
					return j.State == JobFailed
				})
				return
			}
			r2 := tc.waitRound(li, "j", 2, RoundOpen)
			// Soft deadline with min updates closes the round.
			for _, n := range nodes[:2] {
				if _, err := l.Submit(ctx, n.pub(), n.seal(t, tc.keys, "j", 2, r2.BaseHash, []float64{2, 4}, 1)); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(50 * time.Millisecond)
			if r, _ := l.GetRound("j", 2); r.State != RoundOpen {
				t.Fatalf("round 2 %s before its deadline with 2 < max updates, want open", r.State)
			}
			tc.clock.Advance(2 * time.Minute)
			r = tc.waitRound(li, "j", 2, RoundClosed)
			if r.Result.Used != 2 {
				t.Fatalf("result %+v", r.Result)
			}
			j, _ := l.GetJob("j")
			if j.Failed != 1 || j.Completed != 1 || j.ModelVersion != 1 {
				t.Fatalf("job %+v", j)
			}
		})
	}
}

// TestLeaderChange: a leader is lost with a round holding acknowledged
// updates; the new leader resumes the round with its deadline, every
// acknowledged update is present exactly once, and the round completes.
func TestLeaderChange(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"transfer", "crash"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			tc := newTestCluster(t, 3, clusterOpts{})
			nodes := newTestNodes(t, 5, 5)
			tc.enroll(nodes)
			li := tc.leader()
			l := tc.members[li]
			ctx := context.Background()
			const dim = 4
			if _, err := l.CreateJob(ctx, testSpec("j", dim, 5, 5)); err != nil {
				t.Fatal(err)
			}
			r1 := tc.waitRound(li, "j", 1, RoundOpen)
			sealed := make([][]byte, len(nodes))
			acks := make([]Ack, len(nodes))
			for i, n := range nodes {
				sealed[i] = n.seal(t, tc.keys, "j", 1, r1.BaseHash, testUpdate(i, dim), 1)
			}
			for i := range 3 {
				var err error
				if acks[i], err = l.Submit(ctx, nodes[i].pub(), sealed[i]); err != nil {
					t.Fatal(err)
				}
			}
			switch mode {
			case "transfer":
				if err := l.raft.LeadershipTransfer().Error(); err != nil {
					t.Fatal(err)
				}
			case "crash":
				tc.kill(li)
			}
			ni := tc.leader()
			if ni == li {
				t.Fatal("leadership did not move")
			}
			nl := tc.members[ni]
			// The old leader (if alive) now redirects to the new one.
			if mode == "transfer" {
				eventually(t, 5*time.Second, "old leader to know the new one", func() bool {
					_, err := l.Submit(ctx, nodes[3].pub(), sealed[3])
					return isNotLeader(err, nl.cfg.ID)
				})
			}
			if err := nl.Linearize(ctx); err != nil {
				t.Fatal(err)
			}
			r, err := nl.GetRound("j", 1)
			if err != nil {
				t.Fatal(err)
			}
			if r.State != RoundOpen || !r.Deadline.Equal(r1.Deadline) || !r.HardDeadline.Equal(r1.HardDeadline) || len(r.Updates) != 3 {
				t.Fatalf("round after leader change: %s, deadline %v (was %v), %d updates", r.State, r.Deadline, r1.Deadline, len(r.Updates))
			}
			// A node that did not hear its ack retries: same ack, not stored twice.
			again, err := nl.Submit(ctx, nodes[2].pub(), sealed[2])
			if err != nil || again != acks[2] {
				t.Fatalf("retry at the new leader: %+v %v, want %+v", again, err, acks[2])
			}
			for i := 3; i < 5; i++ {
				if acks[i], err = nl.Submit(ctx, nodes[i].pub(), sealed[i]); err != nil {
					t.Fatal(err)
				}
			}
			r = tc.waitRound(ni, "j", 1, RoundClosed)
			seen := map[string]int{}
			for _, u := range r.Updates {
				seen[u.Node]++
			}
			for i, n := range nodes {
				if seen[n.id] != 1 {
					t.Fatalf("node %s appears %d times", n.id, seen[n.id])
				}
				u := r.Updates[i]
				if u.Node != n.id || u.LogIndex != acks[i].LogIndex || u.LeafIndex != acks[i].LeafIndex || !u.Used {
					t.Fatalf("update %d = %+v, ack %+v", i, u, acks[i])
				}
			}
			if got := nl.AuditSize(); got != 5 {
				t.Fatalf("audit log has %d leaves, want 5", got)
			}
			m, err := nl.Model("j", 1)
			if err != nil {
				t.Fatal(err)
			}
			var ups [][]float64
			for i := range nodes {
				ups = append(ups, testUpdate(i, dim))
			}
			want := fedavg(make([]float64, dim), ups, []float64{1, 1, 1, 1, 1})
			for k := range want {
				if math.Abs(m.Params[k]-want[k]) > 1e-12 {
					t.Fatalf("model[%d] = %v, want %v", k, m.Params[k], want[k])
				}
			}
			assertSameState(t, tc)
		})
	}
}

// TestSnapshotInstall: a member added after the leader compacted its log
// receives the state as a Raft snapshot (InstallSnapshot → fsm.Restore) and
// ends identical to the others, open round and sealed updates included.
func TestSnapshotInstall(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 4, clusterOpts{voters: 3, raft: func(rc *raft.Config) { rc.TrailingLogs = 2 }})
	nodes := newTestNodes(t, 3, 6)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	if _, err := l.CreateJob(ctx, testSpec("s", 3, 2, 3)); err != nil {
		t.Fatal(err)
	}
	r1 := tc.waitRound(li, "s", 1, RoundOpen)
	for _, n := range nodes[:2] {
		if _, err := l.Submit(ctx, n.pub(), n.seal(t, tc.keys, "s", 1, r1.BaseHash, []float64{1, 2, 3}, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	newcomer := tc.members[3]
	if err := l.AddVoter(ctx, Member{ID: newcomer.cfg.ID, RaftAddr: newcomer.cfg.RaftAddr, PublicKey: newcomer.cfg.PublicKey}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the newcomer to restore the snapshot", func() bool {
		r, err := newcomer.GetRound("s", 1)
		return err == nil && len(r.Updates) == 2
	})
	// Raft restores the FSM before it records the snapshot's index, so the
	// state can be visible a moment before the index is.
	eventually(t, 5*time.Second, "the newcomer to record an installed snapshot", func() bool {
		idx := newcomer.raft.Stats()["last_snapshot_index"]
		return idx != "0" && idx != ""
	})
	if got, _ := newcomer.fsm.round("s", 1, true); len(got.Updates[0].Sealed) == 0 {
		t.Fatal("sealed updates of the open round were not in the snapshot")
	}
	assertSameState(t, tc)
	// The round completes with the newcomer in the cluster.
	if _, err := l.Submit(ctx, nodes[2].pub(), nodes[2].seal(t, tc.keys, "s", 1, r1.BaseHash, []float64{3, 2, 1}, 1)); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(3, "s", 1, RoundClosed)
	assertSameState(t, tc)
}

// TestMinorityPartition: a leader cut off from the majority acknowledges
// nothing, steps down and says who it believes leads; the majority goes on;
// after healing, the isolated member converges and holds no update it did
// not acknowledge.
func TestMinorityPartition(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{})
	nodes := newTestNodes(t, 3, 8)
	tc.enroll(nodes)
	li := tc.leader()
	old := tc.members[li]
	ctx := context.Background()
	if _, err := old.CreateJob(ctx, testSpec("p", 2, 3, 3)); err != nil {
		t.Fatal(err)
	}
	r1 := tc.waitRound(li, "p", 1, RoundOpen)
	tc.waitApplied()
	partition := func(connect bool) {
		for j := range tc.members {
			if j == li {
				continue
			}
			if connect {
				tc.trans[li].Connect(tc.trans[j].LocalAddr(), tc.trans[j])
				tc.trans[j].Connect(tc.trans[li].LocalAddr(), tc.trans[li])
			} else {
				tc.trans[li].Disconnect(tc.trans[j].LocalAddr())
				tc.trans[j].Disconnect(tc.trans[li].LocalAddr())
			}
		}
	}
	partition(false)
	// The isolated leader cannot commit: no ack.
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := old.Submit(sctx, nodes[0].pub(), nodes[0].seal(t, tc.keys, "p", 1, r1.BaseHash, []float64{1, 1}, 1))
	cancel()
	if err == nil {
		t.Fatal("an isolated leader acknowledged an update")
	}
	// It steps down and redirects.
	eventually(t, 10*time.Second, "the isolated member to step down", func() bool { return !old.IsLeader() })
	_, err = old.Submit(ctx, nodes[1].pub(), nodes[1].seal(t, tc.keys, "p", 1, r1.BaseHash, []float64{1, 1}, 1))
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("isolated member: %v, want NotLeaderError", err)
	}
	// The majority elects a leader and accepts updates.
	var ni int
	eventually(t, 10*time.Second, "a majority leader", func() bool {
		for i, c := range tc.members {
			if i != li && c.IsLeader() && c.leading.Load() {
				ni = i
				return true
			}
		}
		return false
	})
	nl := tc.members[ni]
	ack, err := nl.Submit(ctx, nodes[1].pub(), nodes[1].seal(t, tc.keys, "p", 1, r1.BaseHash, []float64{2, 2}, 1))
	if err != nil {
		t.Fatal(err)
	}
	partition(true)
	assertSameState(t, tc)
	r, err := old.GetRound("p", 1)
	if err != nil {
		t.Fatal(err)
	}
	// The isolated leader's entry was never replicated, so never
	// committed: healing truncated it.
	if len(r.Updates) != 1 || r.Updates[0].Node != nodes[1].id || r.Updates[0].LogIndex != ack.LogIndex {
		t.Fatalf("healed member's round: %+v, want only the majority's ack %+v", r.Updates, ack)
	}
}
