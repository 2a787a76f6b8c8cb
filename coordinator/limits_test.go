package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// Durations are strings: a bare number (which used to mean nanoseconds)
// is a type error naming the field.
func TestDurationJSON(t *testing.T) {
	var s JobSpec
	if err := json.Unmarshal([]byte(`{"round_deadline":"30s","hard_deadline":"1m30s"}`), &s); err != nil {
		t.Fatal(err)
	}
	if time.Duration(s.RoundDeadline) != 30*time.Second || time.Duration(s.HardDeadline) != 90*time.Second {
		t.Fatalf("decoded %v %v", time.Duration(s.RoundDeadline), time.Duration(s.HardDeadline))
	}
	for _, in := range []string{`{"round_deadline":60}`, `{"round_deadline":-1}`, `{"round_deadline":1e9}`, `{"hard_deadline":true}`, `{"round_deadline":"60"}`} {
		err := json.Unmarshal([]byte(in), &s)
		if err == nil {
			t.Errorf("%s: accepted", in)
			continue
		}
		var te *json.UnmarshalTypeError
		if strings.Contains(in, `"60"`) {
			if !strings.Contains(err.Error(), "missing unit") {
				t.Errorf("%s: %v", in, err)
			}
			continue
		}
		if !errors.As(err, &te) || (te.Field != "round_deadline" && te.Field != "hard_deadline") || !strings.Contains(err.Error(), `"30s"`) {
			t.Errorf("%s: %v (want a type error naming the field)", in, err)
		}
	}
	b, _ := json.Marshal(JobSpec{RoundDeadline: Duration(1500 * time.Millisecond)})
	if !strings.Contains(string(b), `"round_deadline":"1.5s"`) {
		t.Fatalf("encoded %s", b)
	}
}

// The largest dim CreateJob accepts gives updates that fit one frame when
// sealed for a cluster of 9 coordinators and framed as a SubmitUpdate.
func TestMaxUpdateDimFitsAFrame(t *testing.T) {
	if testing.Short() {
		t.Skip("seals a 4 MiB update")
	}
	k := newTestKeys(t, 9, 3)
	n := newTestNodes(t, 1, 3)[0]
	vals := make([]float64, MaxUpdateDim)
	for i := range vals {
		vals[i] = float64(i%1000) / 7
	}
	stmt := &crypto.Statement{Origin: k.origin, JobID: strings.Repeat("j", 64), Round: 1 << 40, NodeID: strings.Repeat("n", 64),
		SampleCount: 1 << 40, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	sealed, err := crypto.Seal(stmt, crypto.EncodeUpdate(vals, crypto.Float32), n.key, k.recipients)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := (&protocol.SubmitUpdate{Sealed: sealed}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if over := len(frame) - 4*MaxUpdateDim; over > UpdateEnvelopeOverhead {
		t.Fatalf("envelope overhead %d bytes exceeds UpdateEnvelopeOverhead %d", over, UpdateEnvelopeOverhead)
	}
	if len(frame) > protocol.DefaultMaxFrameSize {
		t.Fatalf("a dim %d update frames to %d bytes, above the %d-byte frame", MaxUpdateDim, len(frame), protocol.DefaultMaxFrameSize)
	}
}

// CreateJob refuses what could never run: a dim whose updates do not fit
// a frame, and a round deadline below the minimum (1 s by default).
func TestNewJobLimits(t *testing.T) {
	tc := newTestCluster(t, 1, clusterOpts{})
	c := tc.members[0]
	c.cfg.MinRoundDeadline = DefaultMinRoundDeadline // the test cluster lowers it
	ctx := context.Background()
	cases := []struct {
		name string
		edit func(*JobSpec)
		want string
	}{
		{"dim one above the byte limit", func(s *JobSpec) { s.Dim = (DefaultMaxUpdateBytes-crypto.UpdateHeaderLen)/4 + 1 },
			"above this cluster's per-update limit of 33554432 bytes (mfn coordinator --max-update-bytes"},
		{"dim above 2^27", func(s *JobSpec) { s.Dim = MaxStreamedDim + 1 }, "dim 134217729 must be in [1, 2^27]"},
		{"60 ns deadline", func(s *JobSpec) { s.RoundDeadline = 60 }, "round_deadline 60ns is below the minimum 1s"},
		{"999 ms deadline", func(s *JobSpec) { s.RoundDeadline = Duration(999 * time.Millisecond) }, "below the minimum 1s"},
		{"max_updates above a result leaf", func(s *JobSpec) { s.MaxUpdates = audit.MaxResultEntries + 1 },
			"max_updates 3001 is above 3000, the most updates one round's audit result can name"},
		{"negative max_failed_rounds", func(s *JobSpec) { s.MaxFailedRounds = -1 }, "max_failed_rounds -1"},
	}
	for _, cse := range cases {
		t.Run(cse.name, func(t *testing.T) {
			s := testSpec("big", 3, 1, 1)
			cse.edit(&s)
			_, err := c.CreateJob(ctx, s)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), cse.want) {
				t.Fatalf("got %v, want ErrInvalid containing %q", err, cse.want)
			}
			if _, err := c.GetJob("big"); !errors.Is(err, ErrNotFound) {
				t.Fatal("the refused job exists")
			}
		})
	}
	s := testSpec("edge", MaxUpdateDim, 1, 1)
	s.RoundDeadline = Duration(time.Second)
	if _, err := c.CreateJob(ctx, s); err != nil {
		t.Fatalf("dim %d with a 1 s deadline: %v", MaxUpdateDim, err)
	}
	// A configured limit: the largest dim it allows is taken, one more
	// is refused naming the limit.
	c.cfg.MaxUpdateBytes = 1 << 20
	s = testSpec("lim", (1<<20-crypto.UpdateHeaderLen)/4, 1, 1)
	if _, err := c.CreateJob(ctx, s); err != nil {
		t.Fatalf("dim %d under a 1 MiB limit: %v", s.Dim, err)
	}
	s = testSpec("lim2", s.Dim+1, 1, 1)
	if _, err := c.CreateJob(ctx, s); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "per-update limit of 1048576 bytes") {
		t.Fatalf("dim %d under a 1 MiB limit: %v", s.Dim, err)
	}
}

// A job stops by itself after max_failed_rounds consecutive failed rounds
// (10 by default, written into the spec by CreateJob) with a reason that
// says so; a closed round resets the count. A spec without the field (an
// entry written before the limit) replays without it.
func TestJobStopsAfterConsecutiveFailures(t *testing.T) {
	tc := newTestCluster(t, 1, clusterOpts{})
	j, err := tc.members[0].CreateJob(context.Background(), testSpec("dflt", 2, 1, 1))
	if err != nil || j.Spec.MaxFailedRounds != DefaultMaxFailedRounds {
		t.Fatalf("CreateJob: max_failed_rounds %d %v, want %d", j.Spec.MaxFailedRounds, err, DefaultMaxFailedRounds)
	}
	for _, limit := range []int{DefaultMaxFailedRounds, 3, 0} {
		b := newLogBuilder(t)
		spec := testSpec("j", 2, 1, 1)
		spec.MaxFailedRounds = limit
		b.add(cmdCreateJob, &createJobCmd{Spec: spec, At: b.at})
		f := replay(t, b.keys, b.entries)
		want := limit
		if want == 0 {
			want = 15 // no limit: still running after 15
		}
		base := ModelHash(make(Params, 2))
		idx := uint64(len(b.entries))
		round, version := uint64(0), uint64(0)
		fail := func() {
			t.Helper()
			round++
			idx++
			if res := applyCmd(t, f, idx, cmdOpenRound, &openRoundCmd{Job: "j", Round: round, BaseVersion: version, BaseHash: base, OpenedAt: b.at,
				Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)}); res.err != nil {
				t.Fatal(res.err)
			}
			idx++
			if res := applyCmd(t, f, idx, cmdFailRound, &failRoundCmd{Job: "j", Round: round, Reason: "0 of 1 required updates", At: b.at}); res.err != nil {
				t.Fatal(res.err)
			}
		}
		// limit-1 failures, then a success: the count starts again.
		for range want - 1 {
			fail()
		}
		round++
		idx++
		applyCmd(t, f, idx, cmdOpenRound, &openRoundCmd{Job: "j", Round: round, BaseHash: base, OpenedAt: b.at, Deadline: b.at, HardDeadline: b.at})
		idx++
		applyCmd(t, f, idx, cmdSealRound, &sealRoundCmd{Job: "j", Round: round, At: b.at})
		model := Params{1, 2}
		idx++
		if res := applyCmd(t, f, idx, cmdCloseRound, &closeRoundCmd{Job: "j", Round: round, Model: model,
			Result: RoundResult{ModelVersion: 1, ModelHash: ModelHash(model)}, At: b.at}); res.err != nil {
			t.Fatal(res.err)
		}
		base, version = ModelHash(model), 1
		if j, _ := f.job("j"); j.FailedInARow != 0 || j.State != JobRunning {
			t.Fatalf("limit %d: after a success: %+v", limit, j)
		}
		for i := range want {
			if j, _ := f.job("j"); j.State != JobRunning {
				t.Fatalf("limit %d: job ended after %d consecutive failures: %s", limit, i, j.Reason)
			}
			fail()
		}
		j, _ := f.job("j")
		if limit == 0 {
			if j.State != JobRunning || j.FailedInARow != 15 {
				t.Fatalf("legacy spec: %+v", j)
			}
			continue
		}
		if j.State != JobFailed || j.FailedInARow != uint64(want) ||
			!strings.Contains(j.Reason, "consecutive failed rounds") || !strings.Contains(j.Reason, "0 of 1 required updates") {
			t.Fatalf("limit %d: %+v", limit, j)
		}
	}
}

// The largest update limit is a job of the largest dim, whose round can
// still close: its float32 body (sealed, about dim × 4 bytes) fits a blob
// and a protocol stream, and its float64 model, too big for a close-round
// entry, travels as a blob that fits the blob bound.
func TestMaxUpdateBytesLimitLetsRoundsClose(t *testing.T) {
	dim := (MaxUpdateBytesLimit - crypto.UpdateHeaderLen) / 4
	if dim != MaxStreamedDim {
		t.Fatalf("the limit is dim %d, want the largest job dim %d", dim, MaxStreamedDim)
	}
	if sealed := StreamLimit(dim)/2 + UpdateEnvelopeOverhead; sealed > maxBlobSize || sealed > protocol.DefaultMaxStreamSize {
		t.Fatalf("dim %d: a float32 envelope of ≈ %d bytes exceeds a blob (%d) or a stream (%d)", dim, sealed, int64(maxBlobSize), int64(protocol.DefaultMaxStreamSize))
	}
	if model := int64(8 * dim); model <= blobThreshold || model > maxBlobSize {
		t.Fatalf("dim %d: a float64 model of %d bytes must travel as a blob (over %d, at most %d)", dim, model, int64(blobThreshold), int64(maxBlobSize))
	}
}
