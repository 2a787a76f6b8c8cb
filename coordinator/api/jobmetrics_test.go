package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/mfn/mfn/coordinator"
)

// TestJobMetricsPaged: the curve has a point per round in increasing
// number with the round results' metrics, comes in pages, and the
// client's JobMetrics follows them.
func TestJobMetricsPaged(t *testing.T) {
	t.Parallel()
	f := seededFake()
	const total = MaxMetricsPage + 3
	var rounds []coordinator.Round
	for i := total; i >= 1; i-- { // stored out of order on purpose
		loss, hold, acc, el := 2/float64(i), 1-1/float64(i+1), 0.5, 0.25
		r := coordinator.Round{Job: "j1", Number: uint64(i), State: coordinator.RoundClosed,
			Updates: []coordinator.Update{{Node: "n1"}, {Node: "n2"}},
			Result:  &coordinator.RoundResult{Used: 1, Rejected: 1, TrainLoss: &loss, HoldoutAccuracy: &hold, Accuracy: &acc, EvalLoss: &el}}
		if i == 2 {
			r.State, r.Result, r.FailReason = coordinator.RoundFailed, nil, "hard deadline"
		}
		rounds = append(rounds, r)
	}
	f.rounds["j1"] = rounds
	srv, _ := newTestAPI(t, f, nil)

	page := decodeResp[JobMetrics](t, request(t, srv, "GET", "/v1/jobs/j1/metrics?limit=3", keyReader, ""), http.StatusOK)
	if page.Job != "j1" || len(page.Rounds) != 3 || page.NextAfter == nil || *page.NextAfter != 3 {
		t.Fatalf("first page %+v", page)
	}
	p1, p2 := page.Rounds[0], page.Rounds[1]
	if p1.Round != 1 || p1.Updates != 2 || p1.Used != 1 || p1.Rejected != 1 || *p1.TrainLoss != 2 || *p1.HoldoutAccuracy != 0.5 ||
		*p1.EvalAccuracy != 0.5 || *p1.EvalLoss != 0.25 {
		t.Fatalf("round 1 point %+v", p1)
	}
	if p2.Round != 2 || p2.State != coordinator.RoundFailed || p2.TrainLoss != nil || p2.EvalAccuracy != nil || p2.Used != 0 {
		t.Fatalf("failed round point %+v", p2)
	}
	for _, q := range []string{"limit=0", fmt.Sprintf("limit=%d", MaxMetricsPage+1), "after=x"} {
		wantError(t, request(t, srv, "GET", "/v1/jobs/j1/metrics?"+q, keyReader, ""), http.StatusBadRequest, CodeBadRequest)
	}
	cl, _ := NewClient(srv.URL, keyReader, srv.Client())
	all, err := cl.JobMetrics(context.Background(), "j1")
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Rounds) != total {
		t.Fatalf("client got %d points, want %d", len(all.Rounds), total)
	}
	for i, p := range all.Rounds {
		if p.Round != uint64(i+1) {
			t.Fatalf("round %d at position %d", p.Round, i)
		}
	}
	if _, err := cl.JobMetrics(context.Background(), "nope"); err == nil {
		t.Fatal("metrics of an unknown job")
	}
}
