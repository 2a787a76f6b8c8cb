package learn

import (
	"context"
	"fmt"
)

// CentralizedReference trains one model of c.Arch on the pooled training
// data of a federation of clients clients with the same budget and
// returns its accuracy on test: the "centralized reference" a federated
// run is compared with.
//
// Same budget means the same number of per-sample gradients and the same
// optimiser: c.Rounds passes of c.Local over the pooled data, where a
// step-based Local (Steps > 0) is scaled to Steps·clients steps per round
// (each of the clients took Steps steps), and an epoch-based one trains
// Epochs epochs per round over the pooled data (each client trained Epochs
// epochs over its share). SGD uses c.LR, c.Momentum and c.WeightDecay with
// the momentum kept across rounds; the model is initialised as
// RunFederation initialises the global model, so both start from the same
// parameters. Deterministic in c.Seed.
//
// Errors: c.Validate's, ErrNoData for an empty train or test set,
// ErrDiverged, ctx.Err() between rounds.
func CentralizedReference(ctx context.Context, c FederationConfig, clients int, train, test *Dataset) (float64, error) {
	if err := c.Validate(); err != nil {
		return 0, err
	}
	if clients < 1 {
		return 0, fmt.Errorf("learn: CentralizedReference: %d clients", clients)
	}
	if train.Len() == 0 || test.Len() == 0 {
		return 0, ErrNoData
	}
	m, err := NewModel(c.Arch, streamRand(c.Seed, 0, 0))
	if err != nil {
		return 0, err
	}
	local := c.Local
	if local.Steps > 0 {
		local.Steps *= clients
	}
	opt := &SGD{LR: c.LR, Momentum: c.Momentum, WeightDecay: c.WeightDecay}
	rng := streamRand(c.Seed, -1, -1)
	for r := 0; r < c.Rounds; r++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if _, err := TrainLocal(m, train, local, opt, rng); err != nil {
			return 0, err
		}
	}
	return Accuracy(m, test)
}
