package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/serveropt"
)

func optSpec(t testing.TB, id string, dim int, opt string) JobSpec {
	t.Helper()
	s := testSpec(id, dim, 3, 3)
	o, err := serveropt.Parse(opt)
	if err != nil {
		t.Fatal(err)
	}
	s.Optimizer = &o
	return s
}

// optUpdates are node i's update in round n.
func optUpdate(i int, n uint64, dim int) []float64 {
	u := testUpdate(i+int(n), dim)
	for k := range u {
		u[k] *= 0.1 * float64(n%3+1)
	}
	return u
}

// replayOptimizer computes a job's models directly: the fedavg aggregate
// of each round's updates (equal weights), then serveropt.Step.
func replayOptimizer(t testing.TB, spec serveropt.Spec, dim, nodes int, rounds uint64) ([]Params, *serveropt.State) {
	t.Helper()
	rule, err := aggregate.New("fedavg", aggregate.Params{})
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, dim)
	var st *serveropt.State
	var models []Params
	for n := uint64(1); n <= rounds; n++ {
		var ups [][]float64
		var w []float64
		for i := range nodes {
			ups = append(ups, optUpdate(i, n, dim))
			w = append(w, 1)
		}
		agg, _, err := rule.Aggregate(ups, w)
		if err != nil {
			t.Fatal(err)
		}
		if st, x, err = serveropt.Step(spec, st, x, agg); err != nil {
			t.Fatal(err)
		}
		models = append(models, Params(x))
	}
	return models, st
}

// TestOptimizerLeaderChange: a FedAdam job on 3 attesting members whose
// leader is killed after round 2 ends with the models (and optimizer
// state) of a direct serveropt replay of the rounds' aggregates, bit for
// bit, on every surviving member, and every member's re-derivation of
// every round agrees with the recorded result (no dissent).
func TestOptimizerLeaderChange(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{attest: true})
	tc.registerAll()
	nodes := newTestNodes(t, 3, 21)
	tc.enroll(nodes)
	li := tc.leader()
	ctx := context.Background()
	const dim = 6
	spec := optSpec(t, "adam", dim, "fedadam:lr=0.05")
	spec.Rounds = 5 // checked after round 4, while it runs (an ended job drops its state)
	created, err := tc.members[li].CreateJob(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// Stored resolved: defaults are part of the spec.
	if o := created.Spec.Optimizer; o == nil || o.Beta1 == nil || *o.Beta2 != serveropt.DefaultBeta2 || o.Tau != serveropt.DefaultTau || o.LR != 0.05 {
		t.Fatalf("stored optimizer %+v, want resolved", created.Spec.Optimizer)
	}
	runRound := func(li int, n uint64) {
		t.Helper()
		l := tc.members[li]
		r := tc.waitRound(li, "adam", n, RoundOpen)
		for i, nd := range nodes {
			if _, err := l.Submit(ctx, nd.pub(), nd.seal(t, tc.keys, "adam", n, r.BaseHash, optUpdate(i, n, dim), 1)); err != nil {
				t.Fatalf("round %d node %s: %v", n, nd.id, err)
			}
		}
		if got := tc.waitRound(li, "adam", n, RoundClosed, RoundFailed); got.State != RoundClosed {
			t.Fatalf("round %d failed: %s", n, got.FailReason)
		}
	}
	runRound(li, 1)
	runRound(li, 2)
	// Every member re-derives rounds 1 and 2 (with the optimizer state
	// before each close) and agrees; the attesters are idle before the
	// kill (the harness's kill is not safe against a concurrent send).
	eventually(t, 30*time.Second, "3 attestations of rounds 1 and 2", func() bool {
		for v := uint64(1); v <= 2; v++ {
			r, err := tc.members[li].GetRound("adam", v)
			if err != nil || len(r.Attested) != 3 || len(r.Dissents) != 0 {
				return false
			}
		}
		return true
	})
	tc.waitApplied()
	tc.kill(li)
	ni := tc.leader()
	runRound(ni, 3)
	runRound(ni, 4)
	tc.waitApplied()

	want, wantState := replayOptimizer(t, *created.Spec.Optimizer, dim, len(nodes), 4)
	wantEnc, _ := wantState.MarshalBinary()
	for i, c := range tc.members {
		if tc.down[i] {
			continue
		}
		j := mustJob(t, c, "adam")
		if j.State != JobRunning || j.ModelVersion != 4 {
			t.Fatalf("member %d: job %s at version %d", i, j.State, j.ModelVersion)
		}
		m, err := c.Model("adam", 4)
		if err != nil {
			t.Fatal(err)
		}
		for k := range want[3] {
			if math.Float64bits(m.Params[k]) != math.Float64bits(want[3][k]) {
				t.Fatalf("member %d: model 4 param %d = %v, replay gives %v", i, k, m.Params[k], want[3][k])
			}
		}
		for v := uint64(1); v <= 4; v++ {
			m, err := c.Model("adam", v)
			if err != nil || m.Hash != ModelHash(want[v-1]) {
				t.Fatalf("member %d: model %d: %v, or its hash differs from the replay", i, v, err)
			}
			for k := range m.Params {
				if math.Float64bits(m.Params[k]) != math.Float64bits(want[v-1][k]) {
					t.Fatalf("member %d: model %d param %d = %v, replay gives %v", i, v, k, m.Params[k], want[v-1][k])
				}
			}
			r, err := c.GetRound("adam", v)
			if err != nil || r.Result == nil || r.Result.ModelHash != ModelHash(want[v-1]) {
				t.Fatalf("member %d round %d: %+v %v, want model hash of the replay", i, v, r.Result, err)
			}
		}
		c.fsm.mu.RLock()
		st := c.fsm.jobs["adam"].Optimizer
		c.fsm.mu.RUnlock()
		got, _ := st.MarshalBinary()
		if !bytes.Equal(got, wantEnc) || st.Steps != 4 {
			t.Fatalf("member %d: optimizer state differs from the replay's (steps %d)", i, st.Steps)
		}
	}
	eventually(t, 30*time.Second, "every round attested by the surviving members, no dissent", func() bool {
		c := tc.members[ni]
		for v := uint64(1); v <= 4; v++ {
			r, err := c.GetRound("adam", v)
			if err != nil || len(r.Dissents) != 0 {
				if err == nil {
					t.Fatalf("round %d: dissents %+v", v, r.Dissents)
				}
				return false
			}
			if len(r.Attested) < 2 {
				return false
			}
		}
		return true
	})
}

// optimizerLog: a job with FedAvgM and one closed round whose close-round
// entry carries the aggregate.
func optimizerLog(t testing.TB) (*logBuilder, Params) {
	b := newLogBuilder(t)
	for _, n := range b.nodes {
		b.add(cmdEnrollNode, &enrollNodeCmd{ID: n.id, PublicKey: n.pub(), At: b.at})
	}
	spec := optSpec(t, "opt", 3, "fedavgm:lr=2,momentum=0.5")
	resolveOptimizer(&spec)
	spec.InitialModel = Params{1, 2, 3}
	b.add(cmdCreateJob, &createJobCmd{Spec: spec, At: b.at})
	base := ModelHash(spec.InitialModel)
	b.add(cmdOpenRound, &openRoundCmd{Job: "opt", Round: 1, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	for i, n := range b.nodes[:3] {
		b.add(cmdAddUpdate, b.update(n, "opt", 1, base, []float64{float64(i), 1, 2}))
	}
	b.add(cmdSealRound, &sealRoundCmd{Job: "opt", Round: 1, At: b.at})
	agg := Params{0.5, -0.25, 1}
	model := Params{1 + 2*0.5, 2 - 2*0.25, 3 + 2*1} // m = Δ, x + η·m
	b.add(cmdCloseRound, &closeRoundCmd{Job: "opt", Round: 1, Updates: 3,
		Outcomes:  []updateOutcome{{Used: true}, {Used: true}, {Used: true}},
		Aggregate: agg, Result: RoundResult{ModelVersion: 1, ModelHash: ModelHash(model), Rule: "fedavg", Used: 3}, At: b.at})
	return b, model
}

// The optimizer state is in snapshots and restores to the same bytes; the
// close-round Apply computes the model from the aggregate.
func TestOptimizerFSMSnapshot(t *testing.T) {
	b, model := optimizerLog(t)
	f := replay(t, b.keys, b.entries)
	if f.applied != uint64(len(b.entries)) {
		t.Fatalf("applied %d of %d entries", f.applied, len(b.entries))
	}
	m, err := f.model("opt", 1)
	if err != nil {
		t.Fatal(err)
	}
	for k := range model {
		if m.Params[k] != model[k] {
			t.Fatalf("model %v, want %v", m.Params, model)
		}
	}
	st := f.jobs["opt"].Optimizer
	if st == nil || st.Steps != 1 || st.M[0] != 0.5 || st.V != nil {
		t.Fatalf("state %+v, want one FedAvgM step with m = Δ", st)
	}
	snap := snapshotBytes(t, f)
	if !bytes.Contains(snap, []byte(`"optimizer":"TUZOT1BU`)) { // base64 of "MFNOPT"
		t.Fatalf("snapshot does not hold the optimizer state")
	}
	g, err := newFSM(b.keys.origin, b.keys.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Restore(nopCloser(snap)); err != nil {
		t.Fatal(err)
	}
	if again := snapshotBytes(t, g); !bytes.Equal(again, snap) {
		t.Fatal("restored snapshot differs")
	}
	j, _ := g.job("opt")
	if j.opt == nil || j.opt.Steps != 1 {
		t.Fatal("restored job does not link its optimizer state")
	}
	// A state that does not fit its job is refused, not installed.
	for name, mangle := range map[string]func([]byte) []byte{
		"no optimizer": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`,"optimizer":{"name":"fedavgm","lr":2,"momentum":0.5}`), nil, 1)
		},
		"another optimizer": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"optimizer":{"name":"fedavgm","lr":2,"momentum":0.5}`), []byte(`"optimizer":{"name":"fedadam","lr":2}`), 1)
		},
	} {
		bad := mangle(bytes.Clone(snap))
		if bytes.Equal(bad, snap) {
			t.Fatalf("%s: the snapshot does not hold the spec as expected", name)
		}
		h, _ := newFSM(b.keys.origin, b.keys.verifier, nil)
		if err := h.Restore(nopCloser(bad)); err == nil {
			t.Errorf("%s: a snapshot whose optimizer state does not fit the job was restored", name)
		}
	}
	// An ended job drops its state.
	stop, err := encodeCommand(cmdStopJob, &stopJobCmd{ID: "opt", Reason: "done", At: b.at})
	if err != nil {
		t.Fatal(err)
	}
	ended := replay(t, b.keys, append(slices.Clone(b.entries), stop))
	if st := ended.jobs["opt"]; st.Job.State != JobStopped || st.Optimizer != nil || st.Job.opt != nil {
		t.Fatalf("stopped job: state %s, optimizer state kept", st.Job.State)
	}
	// The JSON of a job shows the optimizer spec, not its state.
	js, _ := json.Marshal(j)
	if !strings.Contains(string(js), `"optimizer":{"name":"fedavgm","lr":2,"momentum":0.5}`) || strings.Contains(string(js), "TUZOT1BU") {
		t.Fatalf("job JSON %s", js)
	}
}

func TestOptimizerFSMRejections(t *testing.T) {
	b, model := optimizerLog(t)
	closeEntry := b.entries[len(b.entries)-1]
	prefix := b.entries[:len(b.entries)-1]
	cmdOf := func(mut func(c *closeRoundCmd)) []byte {
		_, body, err := decodeCommand(closeEntry)
		if err != nil {
			t.Fatal(err)
		}
		c := body.(*closeRoundCmd)
		mut(c)
		e, err := encodeCommand(cmdCloseRound, c)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if os.Getenv("MFN_UPDATE_GOLDEN") != "" {
		writeCorpus(t, "FuzzOptimizerApply", [][]byte{closeEntry,
			cmdOf(func(c *closeRoundCmd) { c.Model, c.Aggregate = model, nil }),
			cmdOf(func(c *closeRoundCmd) { c.Aggregate = Params{0.5, -0.25, 1.5} })})
	}
	for name, tt := range map[string]struct {
		entry []byte
		want  error
	}{
		"model instead of aggregate": {cmdOf(func(c *closeRoundCmd) { c.Model, c.Aggregate = model, nil }), ErrInvalid},
		"model and aggregate":        {cmdOf(func(c *closeRoundCmd) { c.Model = model }), ErrInvalid},
		"short aggregate":            {cmdOf(func(c *closeRoundCmd) { c.Aggregate = c.Aggregate[:2] }), ErrInvalid},
		"non-finite aggregate":       {cmdOf(func(c *closeRoundCmd) { c.Aggregate = Params{math.Inf(1), 0, 0} }), ErrInvalid},
		// A leader whose state differed would name another model.
		"other model hash": {cmdOf(func(c *closeRoundCmd) { c.Aggregate = Params{0.5, -0.25, 1.5} }), ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			f := replay(t, b.keys, prefix)
			before, _ := json.Marshal(f.jobs["opt"])
			res := f.Apply(&raft.Log{Index: uint64(len(prefix) + 1), Type: raft.LogCommand, Data: tt.entry}).(*applyResult)
			if !errors.Is(res.err, tt.want) {
				t.Fatalf("Apply: %v, want %v", res.err, tt.want)
			}
			if after, _ := json.Marshal(f.jobs["opt"]); !bytes.Equal(before, after) {
				t.Fatal("a rejected close-round changed the state")
			}
		})
	}
	// An aggregate for a job without optimizer is refused too.
	s := standardLog(t)
	var closeIdx int
	for i, e := range s.entries {
		if typ, _, _ := decodeCommand(e); typ == cmdCloseRound {
			closeIdx = i
		}
	}
	f := replay(t, s.keys, s.entries[:closeIdx])
	_, body, _ := decodeCommand(s.entries[closeIdx])
	c := body.(*closeRoundCmd)
	c.Aggregate = Params{1, 1, 1}
	e, _ := encodeCommand(cmdCloseRound, c)
	if res := f.Apply(&raft.Log{Index: uint64(closeIdx + 1), Type: raft.LogCommand, Data: e}).(*applyResult); !errors.Is(res.err, ErrInvalid) {
		t.Fatalf("aggregate for a plain job: %v", res.err)
	}
}

func TestOptimizerSpecValidate(t *testing.T) {
	s := testSpec("j", 3, 1, 1)
	s.Optimizer = &serveropt.Spec{Name: "adam"}
	if err := s.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "optimizer.name") {
		t.Fatalf("bad optimizer: %v", err)
	}
	lr := -1.0
	s.Optimizer = &serveropt.Spec{Name: "fedavgm", Momentum: &lr}
	if err := s.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "optimizer.momentum") {
		t.Fatalf("bad momentum: %v", err)
	}
}

// FuzzOptimizerApply: any entry applied to a sealed round of a job with a
// server optimizer either applies or leaves the state (the optimizer's
// included) unchanged, and never panics.
func FuzzOptimizerApply(f *testing.F) {
	b, model := optimizerLog(f)
	prefix := b.entries[:len(b.entries)-1]
	closeEntry := b.entries[len(b.entries)-1]
	f.Add(closeEntry)
	_, body, err := decodeCommand(closeEntry)
	if err != nil {
		f.Fatal(err)
	}
	c := *body.(*closeRoundCmd)
	c.Model = model
	for _, agg := range []Params{nil, {1, 2}, {math.MaxFloat64, 0, 0}} {
		c.Aggregate = agg
		e, err := encodeCommand(cmdCloseRound, &c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := replay(t, b.keys, prefix)
		before := snapshotBytes(t, m)
		res := m.Apply(&raft.Log{Index: uint64(len(prefix)), Type: raft.LogCommand, Data: data}).(*applyResult)
		if res.err != nil && !bytes.Equal(before, snapshotBytes(t, m)) {
			t.Fatalf("rejected entry (%v) changed the state", res.err)
		}
	})
}
