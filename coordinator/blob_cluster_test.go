package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// halfReader serves the first half of b, then fails: a leader that dies
// half way through a body.
type halfReader []byte

func (h halfReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(h)/2) {
		return 0, errors.New("leader gone")
	}
	return copy(p, h[off:]), nil
}

// blobFiles lists member c's blob directory (files only).
func blobFiles(t *testing.T, c *Coordinator) []string {
	t.Helper()
	return dirNames(t, c.fsm.blobs.dir)
}

// TestStreamedBlobCluster: a streamed update goes through a 3-member
// cluster as chunk entries, is acked, is in every member's blob
// directory (and in a snapshot of any of them), survives a leader
// change, and the round closes (its model, over 1 MiB, itself committed
// as a blob) with the model the framed path gives; a body whose leader
// stopped half way leaves no update; every blob file is gone once the
// round ended.
func TestStreamedBlobCluster(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{})
	nodes := newTestNodes(t, 2, 41)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const dim = 300_000 // a 1.2 MB body (2 chunks), a 2.4 MB model (a blob too)
	spec := testSpec("b", dim, 2, 2)
	spec.InitialModel = make(Params, dim)
	for i := range spec.InitialModel {
		spec.InitialModel[i] = float64(i%11) / 8
	}
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(li, "b", 1, RoundOpen)
	base := ModelHash(spec.InitialModel)
	u0, u1 := make([]float64, dim), make([]float64, dim)
	for i := range u0 {
		u0[i] = float64(i%7) / 4
		u1[i] = -float64(i%5) / 2
	}

	// Half a body, then the leader "dies" (its reader fails).
	bogus := bytes.Repeat([]byte{7}, 3*blobChunkSize)
	bogusKey := Hash(sha256.Sum256(bogus))
	if err := l.proposeBlob(ctx, "b", 1, bogusKey, int64(len(bogus)), halfReader(bogus)); err == nil {
		t.Fatal("a body read half way was committed")
	}

	sealed := nodes[0].sealStream(t, tc.keys, "b", 1, base, u0)
	if len(sealed) <= blobChunkSize {
		t.Fatalf("body of %d bytes fits one chunk", len(sealed))
	}
	key := Hash(sha256.Sum256(sealed))
	ack, err := l.SubmitStream(ctx, nodes[0].pub(), StreamHint{Job: "b", Round: 1, Size: int64(len(sealed))}, bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.SubmitStream(ctx, nodes[0].pub(), StreamHint{Job: "b", Round: 1, Size: int64(len(sealed))}, bytes.NewReader(sealed))
	if err != nil || again != ack {
		t.Fatalf("retry: %+v %v, want the original ack %+v", again, err, ack)
	}
	tc.waitApplied()
	want := []string{bogusKey.String() + ".part", key.String() + ".blob"}
	slices.Sort(want)
	for i, c := range tc.members {
		if got := blobFiles(t, c); !slices.Equal(got, want) {
			t.Fatalf("member %d (leader %d) blob directory %s %v, want %v; parts %d", i, li, c.fsm.blobs.dir, got, want, len(c.fsm.parts))
		}
		r, err := c.GetRound("b", 1)
		if err != nil || len(r.Updates) != 1 || r.Updates[0].Body == nil || r.Updates[0].Body.SHA256 != key {
			t.Fatalf("member %d round: %+v %v", i, r.Updates, err)
		}
	}

	// A member restored from a follower's snapshot has the blob.
	f := tc.members[(li+1)%3].fsm
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.Persist(&bufSink{Buffer: &buf}); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	g, err := newFSM(tc.keys.origin, tc.keys.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.setBlobDir(t.TempDir(), nil)
	t.Cleanup(g.closeBlobs)
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, g.blobs.dir); !slices.Equal(got, want) {
		t.Fatalf("restored blob directory %v, want %v", got, want)
	}
	if h, n, err := hashFile(g.blobs.path(key, true)); err != nil || h != key || n != int64(len(sealed)) {
		t.Fatalf("restored blob: %v", err)
	}

	// The leader goes; the new one closes the round from its own copy.
	tc.kill(li)
	li = tc.leader()
	l = tc.members[li]
	if _, err := l.Submit(ctx, nodes[1].pub(), nodes[1].seal(t, tc.keys, "b", 1, base, roundTo32(u1), 1)); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(li, "b", 1, RoundClosed)
	m, err := l.Model("b", 1)
	if err != nil {
		t.Fatal(err)
	}
	u0r, u1r := roundTo32(u0), roundTo32(u1)
	for i := range m.Params {
		if w := spec.InitialModel[i] + (u0r[i]+u1r[i])/2; m.Params[i] != w {
			t.Fatalf("model[%d] = %v, want %v", i, m.Params[i], w)
		}
	}
	tc.waitApplied()
	for i, c := range tc.members {
		if tc.down[i] {
			continue
		}
		if mm, err := c.Model("b", 1); err != nil || mm.Hash != m.Hash {
			t.Fatalf("member %d model: %v", i, err)
		}
		if got := blobFiles(t, c); len(got) != 0 {
			t.Fatalf("member %d: blob files left after the round closed: %v", i, got)
		}
	}
}

// TestBlobInstallSnapshot: a member added after the log was compacted
// past a body's chunks catches up by snapshot (raft InstallSnapshot, a
// version 3 snapshot streamed from the leader's files) and holds the
// body's blob; it then closes the round with the others and removes it.
func TestBlobInstallSnapshot(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 4, clusterOpts{voters: 3, raft: func(rc *raft.Config) { rc.TrailingLogs = 1 }})
	nodes := newTestNodes(t, 2, 43)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const dim = 300_000
	spec := testSpec("s", dim, 2, 2)
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(li, "s", 1, RoundOpen)
	base := ModelHash(make(Params, dim))
	u0, u1 := make([]float64, dim), make([]float64, dim)
	for i := range u0 {
		u0[i], u1[i] = float64(i%9)/8, -float64(i%3)
	}
	sealed := nodes[0].sealStream(t, tc.keys, "s", 1, base, u0)
	key := Hash(sha256.Sum256(sealed))
	if _, err := l.SubmitStream(ctx, nodes[0].pub(), StreamHint{Job: "s", Round: 1, Size: int64(len(sealed))}, bytes.NewReader(sealed)); err != nil {
		t.Fatal(err)
	}
	if err := l.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	nc := tc.members[3].cfg
	if err := l.AddVoter(ctx, Member{ID: nc.ID, RaftAddr: nc.RaftAddr, QUICAddr: nc.QUICAddr, HTTPAddr: nc.HTTPAddr, PublicKey: nc.PublicKey}); err != nil {
		t.Fatal(err)
	}
	tc.waitApplied()
	if idx := tc.members[3].raft.Stats()["last_snapshot_index"]; idx == "0" || idx == "" {
		t.Fatalf("the new member caught up without a snapshot (last_snapshot_index %q)", idx)
	}
	if got := blobFiles(t, tc.members[3]); !slices.Equal(got, []string{key.String() + ".blob"}) {
		t.Fatalf("new member's blob directory: %v", got)
	}
	if h, n, err := hashFile(tc.members[3].fsm.blobs.path(key, true)); err != nil || h != key || n != int64(len(sealed)) {
		t.Fatalf("new member's blob: %v", err)
	}
	if _, err := l.Submit(ctx, nodes[1].pub(), nodes[1].seal(t, tc.keys, "s", 1, base, roundTo32(u1), 1)); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(li, "s", 1, RoundClosed)
	tc.waitApplied()
	want, err := l.Model("s", 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range tc.members {
		if m, err := c.Model("s", 1); err != nil || m.Hash != want.Hash {
			t.Fatalf("member %d model: %v", i, err)
		}
		if got := blobFiles(t, c); len(got) != 0 {
			t.Fatalf("member %d: blob files left: %v", i, got)
		}
	}
}
