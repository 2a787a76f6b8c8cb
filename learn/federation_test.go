package learn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/mfn/mfn/aggregate"
)

// meanRule is a minimal FedAvg test double (equal weights, non-finite
// inputs dropped) so that the federation is tested independently of the
// aggregate package's rules.
type meanRule struct{}

func (meanRule) Name() string { return "test-mean" }

func (meanRule) Aggregate(u [][]float64, _ []float64) ([]float64, aggregate.Report, error) {
	out := make([]float64, len(u[0]))
	var rep aggregate.Report
	for i, v := range u {
		finite := true
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				finite = false
				break
			}
		}
		if !finite {
			rep.Rejected = append(rep.Rejected, aggregate.Rejection{Index: i, Reason: "non-finite"})
			continue
		}
		rep.Used = append(rep.Used, i)
		for j, x := range v {
			out[j] += x
		}
	}
	if len(rep.Used) == 0 {
		return nil, rep, errors.New("no finite input")
	}
	for j := range out {
		out[j] /= float64(len(rep.Used))
	}
	return out, rep, nil
}

// reverseAttack sends −scale·mean(honest): with scale > honest/f it
// reverses the mean of all updates.
type reverseAttack struct{ scale float64 }

func (reverseAttack) Name() string { return "test-reverse" }

func (a reverseAttack) Craft(in aggregate.AttackInput) ([][]float64, error) {
	mean := make([]float64, len(in.Honest[0]))
	for _, h := range in.Honest {
		for j, x := range h {
			mean[j] += x / float64(len(in.Honest))
		}
	}
	out := make([][]float64, in.F)
	for i := range out {
		out[i] = make([]float64, len(mean))
		for j, m := range mean {
			out[i][j] = -a.scale*m + 1e-3*in.Rand.NormFloat64()
		}
	}
	return out, nil
}

func blobFederation(t *testing.T, clients int, kind string) Federation {
	t.Helper()
	rng := testRand(11)
	data := blobs(clients*40+200, 6, 3, rng)
	train, test := data.Subset(seq(0, clients*40)), data.Subset(seq(clients*40, data.Len()))
	Standardize(train, test)
	parts, err := PartitionIID(train.Len(), clients, rng)
	if err != nil {
		t.Fatal(err)
	}
	var cl []*Dataset
	for _, p := range parts {
		cl = append(cl, train.Subset(p))
	}
	return Federation{
		Config: FederationConfig{
			Arch:   Arch{Kind: kind, Dim: 6, Hidden: 8, Classes: 3},
			Rounds: 6, Local: LocalConfig{Steps: 5, Batch: 8},
			LR: 0.05, Momentum: 0.9, Seed: 42,
		},
		Clients: cl, Test: test, Rule: meanRule{},
	}
}

func TestFederationLearnsWithoutAttack(t *testing.T) {
	for _, kind := range []string{"softmax", "mlp"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f := blobFederation(t, 5, kind)
			f.Config.EvalEvery = 2
			res, err := RunFederation(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			if res.Accuracy < 0.95 {
				t.Errorf("accuracy %.3f, want ≥ 0.95", res.Accuracy)
			}
			rounds := []int{}
			for _, c := range res.Curve {
				rounds = append(rounds, c.Round)
			}
			if !slices.Equal(rounds, []int{2, 4, 6}) || res.Curve[2].Accuracy != res.Accuracy {
				t.Errorf("curve %+v", res.Curve)
			}
		})
	}
}

func TestFederationDeterministicAcrossWorkers(t *testing.T) {
	for _, flip := range []bool{false, true} {
		t.Run(fmt.Sprint("flip=", flip), func(t *testing.T) {
			t.Parallel()
			var params [][]float64
			for _, w := range []int{1, 2, 3} {
				f := blobFederation(t, 5, "mlp")
				f.Config.Workers = w
				f.Byzantine = 2
				if flip {
					f.FlipLabels = true
				} else {
					f.Attack = reverseAttack{scale: 0.5}
				}
				res, err := RunFederation(context.Background(), f)
				if err != nil {
					t.Fatal(err)
				}
				params = append(params, res.Params)
			}
			for i := 1; i < len(params); i++ {
				if !slices.Equal(params[0], params[i]) {
					t.Fatalf("workers=1 and workers=%d give different models", i+1)
				}
			}
		})
	}
}

func TestFederationAttackReversesFedAvg(t *testing.T) {
	clean := blobFederation(t, 5, "softmax")
	base, err := RunFederation(context.Background(), clean)
	if err != nil {
		t.Fatal(err)
	}
	att := blobFederation(t, 5, "softmax")
	att.Byzantine = 1
	att.Attack = reverseAttack{scale: 20} // 20 > honest/f = 5: the mean reverses
	res, err := RunFederation(context.Background(), att)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accuracy > 0.6 || base.Accuracy < 0.95 {
		t.Errorf("no attack %.3f, reversing attack %.3f: want ≥0.95 and ≤0.6", base.Accuracy, res.Accuracy)
	}
	if res.ByzantineUsed != 1 {
		t.Errorf("mean rule used the Byzantine input in %.2f of rounds, want 1", res.ByzantineUsed)
	}
}

func TestFederationLabelFlipUsesFlippedLabels(t *testing.T) {
	// With 1 honest client and 3 label flippers on its own data, the mean
	// delta follows the flipped labels: accuracy on true labels collapses.
	f := blobFederation(t, 1, "softmax")
	f.Byzantine = 3
	f.FlipLabels = true
	f.FlipLabel = func(y int) int { return (y + 1) % 3 }
	res, err := RunFederation(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accuracy > 0.2 {
		t.Errorf("accuracy %.3f with a flipping majority, want ≤ 0.2", res.Accuracy)
	}
}

func TestFederationErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RunFederation(ctx, blobFederation(t, 3, "softmax")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err=%v", err)
	}
	cases := map[string]func(*Federation){
		"rounds":    func(f *Federation) { f.Config.Rounds = 0 },
		"lr":        func(f *Federation) { f.Config.LR = math.NaN() },
		"momentum":  func(f *Federation) { f.Config.Momentum = 1 },
		"no rule":   func(f *Federation) { f.Rule = nil },
		"no attack": func(f *Federation) { f.Byzantine = 1 },
		"dim":       func(f *Federation) { f.Config.Arch.Dim = 7 },
		"no test":   func(f *Federation) { f.Test = nil },
		"local":     func(f *Federation) { f.Config.Local = LocalConfig{} },
	}
	for name, mod := range cases {
		f := blobFederation(t, 3, "softmax")
		mod(&f)
		if _, err := RunFederation(context.Background(), f); !errors.Is(err, ErrFederation) {
			t.Errorf("%s: err=%v, want ErrFederation", name, err)
		}
	}
}

func TestFederationRecognisesLabelFlipAttack(t *testing.T) {
	// aggregate.LabelFlip as Attack behaves exactly like FlipLabels with
	// FlipLabel(y) = classes−1−y.
	a := blobFederation(t, 3, "softmax")
	a.Byzantine = 2
	a.Attack = aggregate.LabelFlip{Classes: 3}
	b := blobFederation(t, 3, "softmax")
	b.Byzantine = 2
	b.FlipLabels = true
	ra, err := RunFederation(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := RunFederation(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ra.Params, rb.Params) {
		t.Error("LabelFlip attack and FlipLabels differ")
	}
}
