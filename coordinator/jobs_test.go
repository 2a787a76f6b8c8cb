package coordinator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// Jobs can be archived or deleted: on every member the open round fails,
// the models' parameters are freed (archived) or the job is gone
// (deleted, its id never reused); an ended job keeps only its final model.
func TestArchiveAndDeleteJobs(t *testing.T) {
	tc := newTestCluster(t, 3, clusterOpts{})
	nodes := newTestNodes(t, 2, 41)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	const dim = 3
	runRound := func(job string, round uint64) {
		t.Helper()
		r := tc.waitRound(li, job, round, RoundOpen)
		for i, n := range nodes {
			if _, err := l.Submit(ctx, n.pub(), n.seal(t, tc.keys, job, round, r.BaseHash, testUpdate(i, dim), 1)); err != nil {
				t.Fatal(err)
			}
		}
		tc.waitRound(li, job, round, RoundClosed)
	}
	for _, id := range []string{"keep", "arch", "del"} {
		if _, err := l.CreateJob(ctx, testSpec(id, dim, 2, 2)); err != nil {
			t.Fatal(err)
		}
	}
	one := testSpec("one", dim, 2, 2)
	one.Rounds = 1
	if _, err := l.CreateJob(ctx, one); err != nil {
		t.Fatal(err)
	}
	runRound("arch", 1)
	runRound("one", 1)
	tc.waitRound(li, "arch", 2, RoundOpen)
	tc.waitRound(li, "del", 1, RoundOpen)

	if err := l.ArchiveJob(ctx, "arch", "done with it"); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteJob(ctx, "del", "typo in the spec"); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteJob(ctx, "nope", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete an unknown job: %v", err)
	}
	if err := l.DeleteJob(ctx, "del", ""); err != nil {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := l.CreateJob(ctx, testSpec("del", dim, 1, 1)); !errors.Is(err, ErrExists) {
		t.Fatalf("re-create a deleted job's id: %v", err)
	}
	tc.waitApplied()
	for i, c := range tc.members {
		if _, err := c.GetJob("del"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("member %d still has the deleted job: %v", i, err)
		}
		if _, err := c.ListRounds("del"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("member %d still has the deleted job's rounds", i)
		}
		j, err := c.GetJob("arch")
		if err != nil || j.State != JobArchived || j.Reason != "done with it" || j.ModelVersion != 1 {
			t.Fatalf("member %d: archived job %+v %v", i, j, err)
		}
		if r, _ := c.GetRound("arch", 2); r.State != RoundFailed || r.FailReason != "job archived: done with it" {
			t.Fatalf("member %d: archived job's open round %+v", i, r)
		}
		for v := range uint64(2) {
			if m, err := c.Model("arch", v); !errors.Is(err, ErrModelPruned) || m.Hash.IsZero() {
				t.Fatalf("member %d: archived model %d: %v (hash %s)", i, v, err, m.Hash)
			}
		}
		// A completed job keeps its final model only.
		if _, err := c.Model("one", 0); !errors.Is(err, ErrModelPruned) {
			t.Fatalf("member %d: completed job's initial model: %v", i, err)
		}
		if m, err := c.Model("one", 1); err != nil || len(m.Params) != dim {
			t.Fatalf("member %d: completed job's final model: %v", i, err)
		}
		// Nothing of the freed jobs stays in memory.
		c.fsm.mu.RLock()
		for _, mv := range c.fsm.jobs["arch"].Models {
			if mv.Params != nil {
				t.Errorf("member %d: archived job keeps model %d's parameters", i, mv.Version)
			}
		}
		_, delKept := c.fsm.jobs["del"]
		c.fsm.mu.RUnlock()
		if delKept {
			t.Errorf("member %d keeps the deleted job", i)
		}
	}
	// The other job is untouched and the engine goes on with it.
	if r := tc.waitRound(li, "keep", 1, RoundOpen); r.State != RoundOpen {
		t.Fatal(r.State)
	}
	assertSameState(t, tc)
}

// A deleted job's id stays taken across a snapshot.
func TestDeletedJobsInSnapshot(t *testing.T) {
	b := standardLog(t)
	b.add(cmdDeleteJob, &deleteJobCmd{ID: "beta", At: b.at})
	b.add(cmdDeleteJob, &deleteJobCmd{ID: "alpha", Archive: true, At: b.at})
	src := replay(t, b.keys, b.entries)
	snap := snapshotBytes(t, src)
	dst, _ := newFSM(b.keys.origin, b.keys.verifier, nil)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, dst), snap) {
		t.Fatal("restored state snapshots differently")
	}
	if res := applyCmd(t, dst, 100, cmdCreateJob, &createJobCmd{Spec: testSpec("beta", 2, 1, 1)}); !errors.Is(res.err, ErrExists) {
		t.Fatalf("re-create a deleted job after restore: %v", res.err)
	}
	if j, _ := dst.job("alpha"); j.State != JobArchived {
		t.Fatalf("alpha %+v", j)
	}
	if r, _ := dst.round("alpha", 2, true); r.State != RoundFailed || r.Updates[0].Sealed != nil {
		t.Fatalf("archived job's open round %+v", r)
	}
}
