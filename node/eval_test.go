package node

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/learn"
)

func TestEvaluate(t *testing.T) {
	t.Parallel()
	// A zero softmax model predicts every class with probability 1/K: the
	// loss is ln K and argmax picks class 0.
	const k, dim, n = 4, 3, 1030 // more than two chunks
	d := &learn.Dataset{Dim: dim, Classes: k, X: make([]float64, n*dim), Y: make([]int, n)}
	zeros := 0
	for i := range d.Y {
		d.Y[i] = (i * 7) % k
		d.X[i*dim] = float64(i % 5)
		if d.Y[i] == 0 {
			zeros++
		}
	}
	m, err := learn.NewModel(learn.Arch{Kind: "softmax", Dim: dim, Classes: k}, newRand(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	clear(m.Params())
	ev, err := Evaluate(m, d)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(ev.Loss-math.Log(k)) > 1e-12 || ev.Accuracy != float64(zeros)/n || ev.Samples != n {
		t.Fatalf("evaluation %+v, want loss ln 4 = %v and accuracy %v", ev, math.Log(k), float64(zeros)/n)
	}
	if _, err := Evaluate(m, &learn.Dataset{Dim: dim, Classes: k}); !errors.Is(err, learn.ErrNoData) {
		t.Fatalf("empty dataset: %v", err)
	}
	// measure: without a held-out split only the loss.
	rm, ok := measure(m, d, nil)
	if !ok || rm.holdoutSamples != 0 || rm.holdoutAccuracy != 0 || math.Abs(rm.trainLoss-math.Log(k)) > 1e-12 {
		t.Fatalf("measure %+v %v", rm, ok)
	}
	rm, ok = measure(m, d, d.Subset([]int{0, 1, 2, 3}))
	if !ok || rm.holdoutSamples != 4 || rm.holdoutAccuracy != 0.25 {
		t.Fatalf("measure with hold-out %+v %v", rm, ok)
	}

	// The train loss is measured on maxLossRows rows spread evenly over a
	// larger split: here every other row of a split whose odd rows are
	// badly predicted, so only the well predicted even rows count.
	big := &learn.Dataset{Dim: dim, Classes: k, X: make([]float64, 2*maxLossRows*dim), Y: make([]int, 2*maxLossRows)}
	even := make([]int, 0, maxLossRows)
	for i := range big.Y {
		big.X[i*dim] = 5
		if i%2 == 1 {
			big.Y[i] = 1
		} else {
			even = append(even, i)
		}
	}
	m.Params()[0] = 1 // class 0's weight on feature 0
	rm, ok = measure(m, big, nil)
	want, err := Evaluate(m, big.Subset(even))
	all, _ := Evaluate(m, big)
	if !ok || err != nil || rm.trainLoss != want.Loss || want.Loss >= all.Loss {
		t.Fatalf("train loss %v, want %v (the even rows; all rows give %v)", rm.trainLoss, want.Loss, all.Loss)
	}
}

// TestAgentsSignRoundMetrics: honest nodes sign their train loss and
// held-out accuracy; the cluster records them per update and the closed
// round carries their sample-weighted means.
func TestAgentsSignRoundMetrics(t *testing.T) {
	mc := newMemCluster(t, 3)
	const rounds = 2
	for i := range 3 {
		id := newNodeIdentity(t, uint64(200+i))
		mc.enroll(id)
		runAgent(t, mc.nodeConfig(t, id, t.TempDir(), uint64(i+1)))
	}
	mc.createJob(regimeJob("m", rounds, 3, 3))
	l := mc.members[mc.leader()]
	eventually(t, 60*time.Second, "the job to complete", func() bool {
		j, err := l.GetJob("m")
		return err == nil && j.State == coordinator.JobCompleted
	})
	for n := uint64(1); n <= rounds; n++ {
		r, err := l.GetRound("m", n)
		if err != nil {
			t.Fatal(err)
		}
		var lossSum, lossW, accSum, accW float64
		for _, u := range r.Updates {
			// testData: 32 samples, the default hold-out 0.2 keeps 6.
			if u.TrainLoss == nil || u.HoldoutAccuracy == nil || u.HoldoutSamples != 6 || u.Samples != 26 {
				t.Fatalf("round %d node %s: metrics %v %v %d, samples %d", n, u.Node, u.TrainLoss, u.HoldoutAccuracy, u.HoldoutSamples, u.Samples)
			}
			if *u.TrainLoss <= 0 || *u.TrainLoss > 10 || *u.HoldoutAccuracy < 0 || *u.HoldoutAccuracy > 1 {
				t.Fatalf("round %d node %s: implausible loss %v accuracy %v", n, u.Node, *u.TrainLoss, *u.HoldoutAccuracy)
			}
			lossSum += *u.TrainLoss * float64(u.Samples)
			lossW += float64(u.Samples)
			accSum += *u.HoldoutAccuracy * float64(u.HoldoutSamples)
			accW += float64(u.HoldoutSamples)
		}
		res := r.Result
		if res.TrainLoss == nil || math.Abs(*res.TrainLoss-lossSum/lossW) > 1e-12 ||
			res.HoldoutAccuracy == nil || math.Abs(*res.HoldoutAccuracy-accSum/accW) > 1e-12 {
			t.Fatalf("round %d: aggregates %v %v, want %v %v", n, res.TrainLoss, res.HoldoutAccuracy, lossSum/lossW, accSum/accW)
		}
	}
}
