package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// A 3-member cluster loses two members for good. The survivor's data
// directory is recovered into a 1-member cluster: every committed update,
// round, audit leaf and checkpoint is still there, the recovered member
// leads alone and accepts writes, and the lost members leave the member
// list (their keys lose trust).
func TestRecoverAfterQuorumLoss(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	tc := newTestCluster(t, 3, clusterOpts{peerKeys: true, storage: func(i int) *Storage {
		st, err := OpenStorage(dirs[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}})
	nodes := newTestNodes(t, 4, 31)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	const dim = 4
	if _, err := l.CreateJob(ctx, testSpec("job1", dim, 4, 4)); err != nil {
		t.Fatal(err)
	}
	survivor := (li + 1) % 3
	for round := uint64(1); round <= 2; round++ {
		r := tc.waitRound(li, "job1", round, RoundOpen)
		for i, n := range nodes {
			if _, err := l.Submit(ctx, n.pub(), n.seal(t, tc.keys, "job1", round, r.BaseHash, testUpdate(i, dim), 1)); err != nil {
				t.Fatal(err)
			}
		}
		tc.waitRound(li, "job1", round, RoundClosed)
		if round == 1 {
			// Recovery restores the survivor's snapshot (round 1), then
			// replays its log after it (round 2).
			tc.waitApplied()
			if err := tc.members[survivor].raft.Snapshot().Error(); err != nil {
				t.Fatal(err)
			}
			if snaps, _ := tc.members[survivor].cfg.Storage.Snapshots.List(); len(snaps) == 0 {
				t.Fatal("no snapshot on the survivor")
			}
		}
	}
	tc.eventually(10*time.Second, "a checkpoint over the 8 leaves", func() bool {
		cp, err := l.LatestCheckpoint()
		return err == nil && cp.Size == 8
	})
	tc.waitApplied()

	s := tc.members[survivor]
	wantRounds, _ := s.ListRounds("job1")
	wantCP, _ := s.LatestCheckpoint()
	var wantLeaves [][]byte
	for i := range s.AuditSize() {
		b, err := s.Leaf(i)
		if err != nil {
			t.Fatal(err)
		}
		wantLeaves = append(wantLeaves, b)
	}
	if len(wantLeaves) != 8 {
		t.Fatalf("%d audit leaves before the loss, want 8", len(wantLeaves))
	}
	for i := range 3 { // the two others are lost, then the survivor stops
		if i != survivor {
			tc.kill(i)
		}
	}
	tc.kill(survivor)
	srvID, srvAddr := s.cfg.ID, s.cfg.RaftAddr

	// Recovery refuses the wrong log key without touching the directory.
	other := newTestKeys(t, 1, 99)
	if _, err := Recover(RecoverConfig{DataDir: dirs[survivor], Origin: tc.keys.origin, LogVerifier: other.verifier,
		Servers: []raft.Server{{ID: raft.ServerID(srvID), Address: raft.ServerAddress(srvAddr)}}}); err == nil {
		t.Fatal("recover accepted another log key")
	}
	if _, err := Recover(RecoverConfig{DataDir: filepath.Join(t.TempDir(), "none"), Origin: tc.keys.origin, LogVerifier: tc.keys.verifier,
		Servers: []raft.Server{{ID: raft.ServerID(srvID), Address: raft.ServerAddress(srvAddr)}}}); err == nil {
		t.Fatal("recover accepted an empty directory")
	}

	dry, err := Recover(RecoverConfig{DataDir: dirs[survivor], DryRun: true})
	if err != nil || dry.LastIndex == 0 || dry.LastTerm == 0 {
		t.Fatalf("dry run %+v %v", dry, err)
	}
	res, err := Recover(RecoverConfig{DataDir: dirs[survivor], Origin: tc.keys.origin, LogVerifier: tc.keys.verifier,
		Servers: []raft.Server{{ID: raft.ServerID(srvID), Address: raft.ServerAddress(srvAddr)}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.AuditSize != 8 || res.Jobs != 1 || res.Nodes != 4 || res.LastIndex != dry.LastIndex || res.LastTerm != dry.LastTerm {
		t.Fatalf("recover result %+v", res)
	}

	// Restart the survivor alone on its recovered directory.
	st, err := OpenStorage(dirs[survivor], nil)
	if err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransportWithTimeout(raft.ServerAddress(srvAddr), 5*time.Second)
	peers := NewPeerKeys()
	for _, k := range tc.keys.coords {
		peers.Add(k.PublicKey())
	}
	c, err := New(Config{
		ID: srvID, Origin: tc.keys.origin, RaftAddr: srvAddr, QUICAddr: s.cfg.QUICAddr, HTTPAddr: s.cfg.HTTPAddr,
		PublicKey: s.cfg.PublicKey, PeerKeys: peers, Storage: st, Transport: trans, Raft: fastRaftConfig(),
		Opener:      &CryptoOpener{Identities: []age.Identity{tc.keys.coords[survivor].Age}},
		LogVerifier: tc.keys.verifier, LogSigner: tc.keys.signer, Logger: newTestLogger(t, 8), Clock: tc.clock.Now,
		Tick: 10 * time.Millisecond, Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		c.Close(cctx)
	}()
	eventually(t, 10*time.Second, "the recovered member to lead alone", c.IsLeader)
	if st := c.Status(); len(st.Members) != 1 || st.Members[0].ID != srvID {
		t.Fatalf("members after recovery: %+v", st.Members)
	}
	if c.AuditSize() != 8 {
		t.Fatalf("audit size %d after recovery, want 8", c.AuditSize())
	}
	for i, want := range wantLeaves {
		if got, err := c.Leaf(uint64(i)); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("leaf %d differs after recovery: %v", i, err)
		}
	}
	gotRounds, _ := c.ListRounds("job1")
	gotJSON, _ := json.Marshal(gotRounds[:2])
	wantJSON, _ := json.Marshal(wantRounds[:2])
	if len(wantRounds) < 2 || !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("rounds differ after recovery:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if cp, err := c.LatestCheckpoint(); err != nil || cp.Size < wantCP.Size {
		t.Fatalf("checkpoint after recovery %+v %v, before %+v", cp, err, wantCP)
	}
	// It commits alone, and the lost members leave the member list.
	if err := c.EnrollNode(ctx, "late", newTestNodes(t, 5, 32)[4].pub()); err != nil {
		t.Fatal(err)
	}
	// The lost leader had registered itself: its record goes, its key
	// loses trust (members never registered were only trusted through the
	// static list, which the operator edits).
	eventually(t, 10*time.Second, "lost members removed from the member list", func() bool {
		if peers.Contains(tc.keys.coords[li].PublicKey()) {
			return false
		}
		for _, m := range c.fsm.memberList() {
			if m.ID != srvID {
				return false
			}
		}
		return true
	})
	if j, err := c.GetJob("job1"); err != nil || j.Completed != 2 || j.ModelVersion != 2 {
		t.Fatalf("job after recovery %+v %v", j, err)
	}
	if _, err := c.Model("job1", 2); errors.Is(err, ErrNotFound) {
		t.Fatal("model version 2 lost")
	}
}
