package node

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/learn"
)

// TestCrossSiteEvaluation: after the last round of a job with
// cross_site_eval every node evaluates the final model on its held-out
// split and reports it signed; the cluster records one report per node,
// equal to what the node's own data give, and a second report is refused.
func TestCrossSiteEvaluation(t *testing.T) {
	mc := newMemCluster(t, 3)
	var agents []*Agent
	var evs events
	for i := range 3 {
		id := newNodeIdentity(t, uint64(400+i))
		mc.enroll(id)
		cfg := mc.nodeConfig(t, id, t.TempDir(), uint64(i+1))
		cfg.OnEvent = evs.add
		a, _ := runAgent(t, cfg)
		agents = append(agents, a)
	}
	job := regimeJob("xs", 2, 3, 3)
	job.CrossSiteEval = true
	mc.createJob(job)
	l := mc.members[mc.leader()]
	var got []coordinator.SiteEvaluation
	eventually(t, 60*time.Second, "three cross-site reports", func() bool {
		var err error
		got, err = mc.members[mc.leader()].CrossSite("xs")
		return err == nil && len(got) == 3
	})
	j, err := l.GetJob("xs")
	if err != nil {
		t.Fatal(err)
	}
	final, err := l.LatestModel("xs")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		var s *coordinator.SiteEvaluation
		for i := range got {
			if got[i].Node == a.NodeID() {
				s = &got[i]
			}
		}
		if s == nil {
			t.Fatalf("no report from %s: %+v", a.NodeID(), got)
		}
		hold := a.heldOut()
		arch, _ := ArchFor(TaskMFNRegime, len(final.Params))
		m, _ := learn.NewModel(arch, newRand(0, 0))
		copy(m.Params(), final.Params)
		want, err := Evaluate(m, hold)
		if err != nil {
			t.Fatal(err)
		}
		if s.ModelVersion != j.ModelVersion || s.Accuracy != want.Accuracy || math.Abs(s.Loss-want.Loss) > 1e-12 || s.Samples != uint64(hold.Len()) {
			t.Errorf("node %s reported %+v, its data give %+v (model v%d)", a.NodeID(), s, want, j.ModelVersion)
		}
		// The report is the node's signed statement of those values.
		r, err := crypto.ParseEvalReport(s.Report)
		if err != nil || r.Accuracy != s.Accuracy || r.NodeID != a.NodeID() || crypto.VerifyEvalReport(a.id.PublicKey(), s.Report, s.Signature) != nil {
			t.Errorf("node %s: report %+v does not verify or differ (%v)", a.NodeID(), r, err)
		}
	}
	// A node raises its event once the ack is back, which may be after the
	// cluster has applied its report.
	eventually(t, 30*time.Second, "three evaluated events", func() bool {
		return evs.count(EventEvaluated, ResultAcked) == 3
	})
	if n := evs.count(EventEvaluated, ResultAcked); n != 3 {
		t.Errorf("%d evaluated events, want 3", n)
	}
	// A second, different report of a node is refused; the same one is
	// answered with the original ack.
	a := agents[0]
	var first coordinator.SiteEvaluation
	for _, s := range got {
		if s.Node == a.NodeID() {
			first = s
		}
	}
	ack, err := l.SubmitEvalReport(context.Background(), nil, first.Report, first.Signature)
	if err != nil || ack.LogIndex != first.LogIndex {
		t.Fatalf("retry: %+v, %v (first at %d)", ack, err, first.LogIndex)
	}
	r, _ := crypto.ParseEvalReport(first.Report)
	r.Accuracy = 1 - r.Accuracy/2
	b, _ := r.MarshalBinary()
	if _, err := l.SubmitEvalReport(context.Background(), nil, b, crypto.SignEvalReport(a.id.SigningKey, b)); err == nil {
		t.Fatal("second report of a node accepted")
	}
}
