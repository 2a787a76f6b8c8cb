package learn

import (
	"context"
	"errors"
	"testing"
)

func TestCentralizedReference(t *testing.T) {
	rng := testRand(11)
	data := blobs(600, 8, 4, rng)
	train, test := data.Subset(seq(0, 500)), data.Subset(seq(500, 600))
	c := FederationConfig{Arch: Arch{Kind: "softmax", Dim: 8, Classes: 4}, Rounds: 3,
		Local: LocalConfig{Steps: 5, Batch: 16}, LR: 0.05, Momentum: 0.9, Seed: 3}
	acc, err := CentralizedReference(context.Background(), c, 5, train, test)
	if err != nil {
		t.Fatal(err)
	}
	if acc < 0.95 {
		t.Errorf("reference accuracy %v on separable blobs", acc)
	}
	again, _ := CentralizedReference(context.Background(), c, 5, train, test)
	if again != acc {
		t.Errorf("same seed: %v then %v", acc, again)
	}
	// The budget is Steps·clients steps a round: 5 clients of 5 steps
	// train exactly like 1 client of 25.
	c1 := c
	c1.Local.Steps = 25
	c1.Rounds = 3
	if one, _ := CentralizedReference(context.Background(), c1, 1, train, test); one != acc {
		t.Errorf("1 client × 25 steps: %v, 5 × 5: %v", one, acc)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CentralizedReference(ctx, c, 5, train, test); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := CentralizedReference(context.Background(), c, 5, train, &Dataset{Dim: 8, Classes: 4}); !errors.Is(err, ErrNoData) {
		t.Errorf("empty test: %v", err)
	}
}
