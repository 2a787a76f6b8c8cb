package coordinator

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/mfn/mfn/crypto"
)

// TestEvalReportApply: an eval-report entry is recorded once per node on
// a completed cross_site_eval job's final model, signed by the node; every
// other case is refused and changes nothing; replicas and snapshots agree.
func TestEvalReportApply(t *testing.T) {
	t.Parallel()
	b := standardLog(t)
	spec := testSpec("xs", 3, 1, 2)
	spec.Rounds, spec.CrossSiteEval = 1, true
	b.add(cmdCreateJob, &createJobCmd{Spec: spec, At: b.at})
	base := ModelHash(make(Params, 3))
	b.add(cmdOpenRound, &openRoundCmd{Job: "xs", Round: 1, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	b.add(cmdAddUpdate, b.update(b.nodes[0], "xs", 1, base, []float64{1, 2, 3}))
	b.add(cmdSealRound, &sealRoundCmd{Job: "xs", Round: 1, At: b.at})
	report := func(n *testNode, job string, version uint64, hash Hash, acc float64) *evalReportCmd {
		r := &crypto.EvalReport{Origin: b.keys.origin, JobID: job, NodeID: n.id, ModelVersion: version, ModelHash: hash,
			Accuracy: acc, Loss: 0.5, Samples: 20, Time: b.at}
		rb, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return &evalReportCmd{Job: job, Node: n.id, Report: rb, Signature: crypto.SignEvalReport(n.key, rb), At: b.at}
	}
	model := Params{1, 2, 3}
	final := ModelHash(model)
	early := report(b.nodes[1], "xs", 1, final, 0.75)

	f := replay(t, b.keys, b.entries)
	if res := f.apply(100, cmdEvalReport, early); !errors.Is(res.err, ErrRoundClosed) {
		t.Fatalf("report before the job completed: %v", res.err)
	}
	b.add(cmdCloseRound, &closeRoundCmd{Job: "xs", Round: 1, Updates: 1, Outcomes: []updateOutcome{{Used: true}},
		Model: model, Result: RoundResult{ModelVersion: 1, ModelHash: final, Rule: "fedavg", Used: 1}, At: b.at})
	good := report(b.nodes[1], "xs", 1, final, 0.75)
	b.add(cmdEvalReport, good)
	f1, f2 := replay(t, b.keys, b.entries), replay(t, b.keys, b.entries)
	if !bytes.Equal(snapshotBytes(t, f1), snapshotBytes(t, f2)) {
		t.Fatal("replicas' snapshots differ")
	}
	got, err := f1.crossSite("xs")
	if err != nil || len(got) != 1 || got[0].Node != b.nodes[1].id || got[0].Accuracy != 0.75 || got[0].Samples != 20 ||
		got[0].LogIndex != uint64(len(b.entries)) || !bytes.Equal(got[0].Report, good.Report) {
		t.Fatalf("recorded %+v (%v)", got, err)
	}
	// The same report again: the original ack, nothing added.
	if res := f1.apply(200, cmdEvalReport, good); res.err != nil || res.ack.LogIndex != got[0].LogIndex {
		t.Fatalf("retry: %+v %v", res.ack, res.err)
	}
	forged := report(b.nodes[2], "xs", 1, final, 0.5)
	forged.Signature = crypto.SignEvalReport(b.nodes[1].key, forged.Report)
	wrongNode := report(b.nodes[2], "xs", 1, final, 0.5)
	wrongNode.Node = b.nodes[4].id
	for name, tc := range map[string]struct {
		c    *evalReportCmd
		want error
	}{
		"second report":     {report(b.nodes[1], "xs", 1, final, 0.25), ErrDuplicate},
		"not the final":     {report(b.nodes[2], "xs", 0, base, 0.5), ErrBaseMismatch},
		"forged signature":  {forged, ErrBadUpdate},
		"entry names other": {wrongNode, ErrBadUpdate},
		"no cross_site":     {report(b.nodes[2], "alpha", 1, final, 0.5), ErrBadUpdate},
		"revoked node":      {report(b.nodes[3], "xs", 1, final, 0.5), ErrRevoked},
		"unknown job":       {report(b.nodes[2], "nope", 1, final, 0.5), ErrNotFound},
	} {
		if res := f1.apply(300, cmdEvalReport, tc.c); !errors.Is(res.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, res.err, tc.want)
		}
	}
	if after, _ := f1.crossSite("xs"); len(after) != 1 {
		t.Fatalf("refused reports changed the state: %+v", after)
	}
	// A snapshot carries them.
	f3 := replay(t, b.keys, nil)
	if err := f3.Restore(nopCloser(snapshotBytes(t, f1))); err != nil {
		t.Fatal(err)
	}
	if r3, _ := f3.crossSite("xs"); len(r3) != 1 || r3[0].Accuracy != 0.75 {
		t.Fatalf("restored %+v", r3)
	}
}
