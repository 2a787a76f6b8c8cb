package node

import (
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
)

func TestMomentumFileRoundTrip(t *testing.T) {
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := st.LoadMomentum("j"); ok || err != nil {
		t.Fatalf("no file yet: ok=%v err=%v", ok, err)
	}
	v := []float64{0.5, -1.25, 0, math.SmallestNonzeroFloat64, -math.MaxFloat64}
	if err := st.SaveMomentum("j", 7, v); err != nil {
		t.Fatal(err)
	}
	round, got, ok, err := st.LoadMomentum("j")
	if err != nil || !ok || round != 7 || !slices.Equal(got, v) {
		t.Fatalf("LoadMomentum = %d %v %v %v, want 7 %v", round, got, ok, err, v)
	}
	if _, _, ok, _ := st.LoadMomentum("other"); ok {
		t.Fatal("another job sees j's momentum")
	}
	// Any flipped byte is caught (checksum, magic or length).
	path := st.momentumPath("j")
	good, _ := os.ReadFile(path)
	for i := range good {
		b := slices.Clone(good)
		b[i] ^= 0x40
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := st.LoadMomentum("j"); !errors.Is(err, ErrStateFile) {
			t.Fatalf("byte %d flipped: err %v, want ErrStateFile", i, err)
		}
	}
	if err := os.WriteFile(path, good[:len(good)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := st.LoadMomentum("j"); !errors.Is(err, ErrStateFile) {
		t.Fatalf("truncated: %v", err)
	}
}

func FuzzDecodeMomentum(f *testing.F) {
	f.Add(encodeMomentum(3, []float64{1, 2, 3}))
	f.Add(encodeMomentum(0, nil))
	f.Add([]byte("MFNMOM1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		round, v, err := decodeMomentum(b)
		if err != nil {
			if !errors.Is(err, ErrStateFile) {
				t.Fatalf("error %v does not wrap ErrStateFile", err)
			}
			return
		}
		if re := encodeMomentum(round, v); !slices.Equal(re, b) {
			t.Fatal("accepted input is not the canonical encoding")
		}
	})
}

// TestMomentumSurvivesRestart: a node stopped after round 1 and started
// again trains round 2 exactly as a node that never stopped, so its
// client momentum was carried over the restart.
func TestMomentumSurvivesRestart(t *testing.T) {
	job := regimeJob("j", 2, 1, 1)
	job.RoundDeadline, job.HardDeadline = coordinator.Duration(time.Minute), coordinator.Duration(2*time.Minute)
	id := newNodeIdentity(t, 1)

	// Reference: one run through both rounds.
	ref := newMemCluster(t, 1)
	ref.enroll(id)
	ref.createJob(job)
	a, stop := runAgent(t, ref.nodeConfig(t, id, t.TempDir(), 1))
	want := waitRecords(t, a, "j", 2)
	stop()

	// Restarted after round 1, before round 2 is open: the job has one
	// round's worth of updates for now.
	mc := newMemCluster(t, 1)
	mc.enroll(id)
	mc.createJob(job)
	dir := t.TempDir()
	cfg := mc.nodeConfig(t, id, dir, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.OnEvent = func(e Event) {
		// Stop right at round 1's acknowledgement, before round 2 trains.
		if e.Kind == EventSubmitted && e.Round == 1 {
			cancel()
		}
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}
	first := b.State().Records()
	if len(first) != 1 || first[0].UpdateHash != want[0].UpdateHash {
		t.Fatalf("first run recorded %+v, want round 1 with update %s as the reference run", first, want[0].UpdateHash)
	}
	if p, err := b.State().loadPending("j", 2); p != nil || err != nil {
		t.Fatalf("round 2 was already built before the restart (%v, %v): the test would prove nothing", p != nil, err)
	}
	if r, v, ok, err := b.State().LoadMomentum("j"); err != nil || !ok || r != 1 || len(v) != job.Dim {
		t.Fatalf("momentum after round 1: round %d, %d values, ok=%v, err=%v", r, len(v), ok, err)
	}
	c, _ := runAgent(t, mc.nodeConfig(t, id, dir, 1))
	got := waitRecords(t, c, "j", 2)
	if got[1].UpdateHash != want[1].UpdateHash {
		t.Fatalf("round 2 after a restart has update %s, the uninterrupted node %s: momentum was lost", got[1].UpdateHash, want[1].UpdateHash)
	}
}
