package e2e

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestFederation runs a short federation with a Byzantine node and a
// leader crash, and checks what the demo promises.
func TestFederation(t *testing.T) {
	o := DefaultOptions()
	o.Nodes, o.Byzantine, o.Rounds, o.Samples, o.TestPerRegime = 6, 1, 6, 40, 30
	o.ChaosAfter = 2
	o.OnRound = func(r RoundReport) { t.Logf("round %+v", r) }
	if f, err := os.Create("/tmp/e2e.log"); err == nil {
		o.Log = f
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary %+v", sum)
}
