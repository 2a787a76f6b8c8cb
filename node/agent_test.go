package node

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// recordsFor waits until the agent's state holds n records of job.
func waitRecords(t *testing.T, a *Agent, job string, n int) []Record {
	t.Helper()
	var recs []Record
	eventually(t, 60*time.Second, "acknowledgement records", func() bool {
		recs = recs[:0]
		for _, r := range a.State().Records() {
			if r.Job == job {
				recs = append(recs, r)
			}
		}
		return len(recs) >= n
	})
	return recs
}

// TestAgentsTrainEveryRound: three nodes take part in every round of a
// job; each node's records match, index for index, what the replicated
// state says it accepted, and the job completes.
func TestAgentsTrainEveryRound(t *testing.T) {
	mc := newMemCluster(t, 3)
	const rounds = 3
	var agents []*Agent
	for i := range 3 {
		id := newNodeIdentity(t, uint64(100+i))
		mc.enroll(id)
		a, _ := runAgent(t, mc.nodeConfig(t, id, t.TempDir(), uint64(i+1)))
		agents = append(agents, a)
	}
	mc.createJob(regimeJob("j", rounds, 3, 3))
	l := mc.members[mc.leader()]
	eventually(t, 60*time.Second, "the job to complete", func() bool {
		j, err := l.GetJob("j")
		return err == nil && j.State == coordinator.JobCompleted
	})
	for _, a := range agents {
		recs := waitRecords(t, a, "j", rounds)
		if len(recs) != rounds {
			t.Fatalf("node %s: %d records, want %d", a.NodeID(), len(recs), rounds)
		}
		for i, r := range recs {
			if r.Round != uint64(i+1) || r.Duplicate || r.LogIndex == 0 {
				t.Fatalf("node %s record %d: %+v", a.NodeID(), i, r)
			}
			round, err := l.GetRound("j", r.Round)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, u := range round.Updates {
				if u.Node == a.NodeID() {
					found = true
					if u.LogIndex != r.LogIndex || u.LeafIndex != r.LeafIndex || u.UpdateHash.String() != r.UpdateHash {
						t.Errorf("node %s round %d: record %+v, cluster has %+v", a.NodeID(), r.Round, r, u)
					}
					if !u.Used {
						t.Errorf("node %s round %d: honest update not used by fedavg: %s", a.NodeID(), r.Round, u.Reason)
					}
				}
			}
			if !found {
				t.Errorf("node %s round %d: acknowledged update missing from the round", a.NodeID(), r.Round)
			}
		}
	}
}

// TestRestartSkipsRecordedRound: a node restarted while the round it
// submitted to is still open does not submit again.
func TestRestartSkipsRecordedRound(t *testing.T) {
	mc := newMemCluster(t, 1)
	ida, idb := newNodeIdentity(t, 1), newNodeIdentity(t, 2)
	mc.enroll(ida)
	mc.enroll(idb)
	job := regimeJob("j", 2, 2, 2)
	job.RoundDeadline, job.HardDeadline = coordinator.Duration(time.Minute), coordinator.Duration(2*time.Minute)
	mc.createJob(job)
	dir := t.TempDir()
	a, stop := runAgent(t, mc.nodeConfig(t, ida, dir, 1))
	waitRecords(t, a, "j", 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := mc.totalSubmits(ida.PublicKey()); n != 1 {
		t.Fatalf("%d submissions before the restart, want 1", n)
	}
	var ev events
	cfg := mc.nodeConfig(t, ida, dir, 1)
	cfg.OnEvent = ev.add
	a2, _ := runAgent(t, cfg)
	eventually(t, 30*time.Second, "the restarted node to see round 1 again", func() bool {
		return ev.count(EventSkipped, "already submitted") >= 1
	})
	if n := mc.totalSubmits(ida.PublicKey()); n != 1 {
		t.Fatalf("%d submissions after the restart, want still 1", n)
	}
	// The second node completes round 1; the restarted node goes on to round 2.
	runAgent(t, mc.nodeConfig(t, idb, t.TempDir(), 2))
	waitRecords(t, a2, "j", 2)
	if n := mc.totalSubmits(ida.PublicKey()); n != 2 {
		t.Fatalf("%d submissions for two rounds, want 2", n)
	}
}

// TestCrashBetweenSubmitAndRecord: the node dies after the cluster stored
// its update but before the acknowledgement was recorded. Restarted, it
// sends the same sealed bytes again and records the original
// acknowledgement; the round holds the update once.
func TestCrashBetweenSubmitAndRecord(t *testing.T) {
	mc := newMemCluster(t, 1)
	id := newNodeIdentity(t, 7)
	mc.enroll(id)
	job := regimeJob("j", 1, 2, 2)
	job.RoundDeadline, job.HardDeadline = coordinator.Duration(time.Minute), coordinator.Duration(2*time.Minute)
	mc.createJob(job)
	dir := t.TempDir()

	var mu sync.Mutex
	var first *protocol.Ack
	crashed := make(chan struct{})
	cfg := mc.nodeConfig(t, id, dir, 7)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mc.handlers[0].hook = func(_ protocol.Peer, ack *protocol.Ack, err error) (*protocol.Ack, error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil && err == nil {
			first = ack
			cancel() // the node "crashes" before it reads the answer
			close(crashed)
			return nil, &protocol.ProtocolError{Code: protocol.CodeUnavailable, RetryAfter: time.Minute}
		}
		return ack, err
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-crashed:
	case <-time.After(60 * time.Second):
		t.Fatal("no submission")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := a.State().Acked("j", 1); ok {
		t.Fatal("the crashed node recorded an acknowledgement it never received")
	}
	if p, err := a.State().loadPending("j", 1); err != nil || p == nil {
		t.Fatalf("no pending update after the crash: %v", err)
	}

	a2, _ := runAgent(t, mc.nodeConfig(t, id, dir, 7))
	recs := waitRecords(t, a2, "j", 1)
	mu.Lock()
	want := *first
	mu.Unlock()
	if recs[0].LogIndex != want.LogIndex || recs[0].LeafIndex != want.LeafIndex {
		t.Fatalf("recorded %+v, the cluster acknowledged %+v first", recs[0], want)
	}
	h := mc.handlers[0]
	h.mu.Lock()
	sent := h.sealed[string(id.PublicKey())]
	h.mu.Unlock()
	if len(sent) != 2 || string(sent[0]) != string(sent[1]) {
		t.Fatalf("%d submissions; the resubmission must repeat the same sealed bytes", len(sent))
	}
	r, err := mc.members[0].GetRound("j", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Updates) != 1 {
		t.Fatalf("round holds %d updates, want 1", len(r.Updates))
	}
	if p, _ := a2.State().loadPending("j", 1); p != nil {
		t.Fatal("pending update kept after its acknowledgement was recorded")
	}
}

// TestRefusedKeys: a node that was never enrolled, and one whose key was
// revoked, are refused at the handshake and submit nothing.
func TestRefusedKeys(t *testing.T) {
	mc := newMemCluster(t, 1)
	mc.createJob(regimeJob("j", 1, 1, 1))
	revoked := newNodeIdentity(t, 3)
	mc.enroll(revoked)
	if err := mc.members[0].RevokeNode(context.Background(), revoked.NodeID()); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]*crypto.Identity{"never enrolled": newNodeIdentity(t, 4), "revoked": revoked} {
		t.Run(name, func(t *testing.T) {
			var ev events
			var mu sync.Mutex
			var lastErr error
			cfg := mc.nodeConfig(t, id, t.TempDir(), 3)
			cfg.OnEvent = func(e Event) {
				ev.add(e)
				if e.Kind == EventRefused {
					mu.Lock()
					lastErr = e.Err
					mu.Unlock()
				}
			}
			runAgent(t, cfg)
			eventually(t, 30*time.Second, "a refusal", func() bool { return ev.count(EventRefused, "") >= 2 })
			mu.Lock()
			defer mu.Unlock()
			if !errors.Is(lastErr, ErrRefused) {
				t.Fatalf("refusal error %v does not match ErrRefused", lastErr)
			}
			if ev.count(EventConnected, "") != 0 || mc.totalSubmits(id.PublicKey()) != 0 {
				t.Fatal("a refused node connected or submitted")
			}
		})
	}
}

// TestFollowerRedirectsToLeader: the node's first address is a follower;
// it reaches the leader through the follower's hint and submits there.
func TestFollowerRedirectsToLeader(t *testing.T) {
	mc := newMemCluster(t, 3)
	li := mc.leader()
	fi := (li + 1) % 3
	reordered := &Cluster{Origin: mc.cluster.Origin}
	reordered.Members = append(reordered.Members, mc.cluster.Members[fi])
	for i, m := range mc.cluster.Members {
		if i != fi {
			reordered.Members = append(reordered.Members, m)
		}
	}
	id := newNodeIdentity(t, 5)
	mc.enroll(id)
	mc.createJob(regimeJob("j", 1, 1, 1))
	var ev events
	cfg := mc.nodeConfig(t, id, t.TempDir(), 5)
	cfg.Cluster = reordered
	cfg.OnEvent = ev.add
	a, _ := runAgent(t, cfg)
	recs := waitRecords(t, a, "j", 1)
	if recs[0].Coordinator != mc.cluster.Members[li].QUICAddr {
		t.Fatalf("acknowledged by %s, the leader is %s", recs[0].Coordinator, mc.cluster.Members[li].QUICAddr)
	}
	if n := mc.handlers[fi].count(id.PublicKey()); n != 0 {
		t.Fatalf("%d submissions sent to the follower", n)
	}
}

// TestLeaderCrash: the leader dies after the first round; the nodes find
// the new leader and the job completes with every node in every round.
func TestLeaderCrash(t *testing.T) {
	mc := newMemCluster(t, 3)
	var agents []*Agent
	for i := range 2 {
		id := newNodeIdentity(t, uint64(200+i))
		mc.enroll(id)
		a, _ := runAgent(t, mc.nodeConfig(t, id, t.TempDir(), uint64(10+i)))
		agents = append(agents, a)
	}
	mc.createJob(regimeJob("j", 4, 2, 2))
	for _, a := range agents {
		waitRecords(t, a, "j", 1)
	}
	old := mc.leader()
	mc.kill(old)
	nl := mc.leader()
	if nl == old {
		t.Fatal("no new leader")
	}
	eventually(t, 90*time.Second, "the job to complete after the crash", func() bool {
		j, err := mc.members[nl].GetJob("j")
		return err == nil && j.State == coordinator.JobCompleted
	})
	for _, a := range agents {
		recs := waitRecords(t, a, "j", 4)
		seen := map[uint64]bool{}
		for _, r := range recs {
			if seen[r.Round] {
				t.Fatalf("round %d recorded twice", r.Round)
			}
			seen[r.Round] = true
		}
	}
	rounds, err := mc.members[nl].ListRounds("j")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rounds {
		nodes := map[string]bool{}
		for _, u := range r.Updates {
			if nodes[u.Node] {
				t.Fatalf("round %d counts node %s twice", r.Number, u.Node)
			}
			nodes[u.Node] = true
		}
	}
}

// TestPendingOfClosedRoundIsSettled: the node dies after the cluster stored
// its update; the round closes without it (another node completes it).
// Restarted, the node only hears of the next round, but first settles its
// pending update: the cluster answers with the original acknowledgement,
// which the node records.
func TestPendingOfClosedRoundIsSettled(t *testing.T) {
	mc := newMemCluster(t, 1)
	ida, idb := newNodeIdentity(t, 8), newNodeIdentity(t, 9)
	mc.enroll(ida)
	mc.enroll(idb)
	job := regimeJob("j", 2, 2, 2)
	mc.createJob(job)
	dir := t.TempDir()
	var mu sync.Mutex
	var first *protocol.Ack
	crashed := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mc.handlers[0].hook = func(peer protocol.Peer, ack *protocol.Ack, err error) (*protocol.Ack, error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil && err == nil && peer.Key.Equal(ida.PublicKey()) {
			first = ack
			cancel()
			close(crashed)
			return nil, &protocol.ProtocolError{Code: protocol.CodeUnavailable, RetryAfter: time.Minute}
		}
		return ack, err
	}
	a, err := New(mc.nodeConfig(t, ida, dir, 8))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-crashed:
	case <-time.After(60 * time.Second):
		t.Fatal("no submission")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The other node completes round 1 alone; round 2 opens.
	b, _ := runAgent(t, mc.nodeConfig(t, idb, t.TempDir(), 9))
	waitRecords(t, b, "j", 1)
	eventually(t, 30*time.Second, "round 2", func() bool {
		j, err := mc.members[0].GetJob("j")
		return err == nil && j.Rounds == 2
	})
	a2, _ := runAgent(t, mc.nodeConfig(t, ida, dir, 8))
	recs := waitRecords(t, a2, "j", 2)
	mu.Lock()
	want := *first
	mu.Unlock()
	if recs[0].Round != 1 || recs[0].LogIndex != want.LogIndex || recs[0].LeafIndex != want.LeafIndex {
		t.Fatalf("round 1 recorded as %+v, the cluster acknowledged %+v", recs[0], want)
	}
	if p, _ := a2.State().loadPending("j", 1); p != nil {
		t.Fatal("the settled pending update is still there")
	}
	r, err := mc.members[0].GetRound("j", 1)
	if err != nil || len(r.Updates) != 2 {
		t.Fatalf("round 1: %d updates, %v", len(r.Updates), err)
	}
}
