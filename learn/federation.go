package learn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/mfn/mfn/aggregate"
)

// FederationConfig holds the training hyper-parameters of a simulated
// federation. Validate reports the first bad field by name.
type FederationConfig struct {
	// Arch is the model trained by every client.
	Arch Arch
	// Rounds is the number of synchronous rounds (≥ 1).
	Rounds int
	// Local is each client's work per round.
	Local LocalConfig
	// LR, Momentum and WeightDecay configure each client's SGD. The
	// momentum buffer persists across rounds per client (client momentum);
	// zero Momentum means plain SGD.
	LR, Momentum, WeightDecay float64
	// ServerLR scales the aggregate before it is added to the global model;
	// zero means 1.
	ServerLR float64
	// EvalEvery, when positive, also evaluates the global model every
	// EvalEvery rounds (into FederationResult.Curve); the final round is
	// always evaluated.
	EvalEvery int
	// Workers bounds the goroutines that train clients; zero means
	// GOMAXPROCS. The result does not depend on it.
	Workers int
	// Seed determines the initial model, every minibatch order and every
	// attack's randomness.
	Seed uint64
}

// Validate returns an error naming the first invalid field.
func (c FederationConfig) Validate() error {
	if err := c.Arch.Validate(); err != nil {
		return err
	}
	switch {
	case c.Rounds < 1:
		return fmt.Errorf("learn: FederationConfig.Rounds %d < 1", c.Rounds)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("learn: FederationConfig.LR %v must be positive and finite", c.LR)
	case c.Momentum < 0 || c.Momentum >= 1:
		return fmt.Errorf("learn: FederationConfig.Momentum %v outside [0,1)", c.Momentum)
	case c.WeightDecay < 0:
		return fmt.Errorf("learn: FederationConfig.WeightDecay %v < 0", c.WeightDecay)
	case c.ServerLR < 0:
		return fmt.Errorf("learn: FederationConfig.ServerLR %v < 0", c.ServerLR)
	case c.Local.Epochs < 0 || c.Local.Steps < 0 || c.Local.Batch < 0:
		return fmt.Errorf("learn: FederationConfig.Local %+v has a negative field", c.Local)
	case c.Local.Epochs == 0 && c.Local.Steps == 0:
		return fmt.Errorf("learn: FederationConfig.Local: one of Epochs and Steps must be positive")
	case c.Workers < 0:
		return fmt.Errorf("learn: FederationConfig.Workers %d < 0", c.Workers)
	}
	return nil
}

// Federation is one simulated federated training run: len(Clients) honest
// clients and Byzantine adversaries aggregated by Rule.
type Federation struct {
	Config FederationConfig
	// Clients holds each honest client's local data.
	Clients []*Dataset
	// Test is the held-out set the global model is evaluated on.
	Test *Dataset
	// Rule aggregates the round's deltas (honest first, then Byzantine).
	// Weights are equal: Byzantine clients could lie about sample counts.
	Rule aggregate.Rule
	// Byzantine is the number of Byzantine clients f.
	Byzantine int
	// Attack crafts the Byzantine deltas from the honest ones. When nil and
	// FlipLabels is set, Byzantine clients instead train honestly on
	// flipped labels. With Byzantine > 0 one of the two is required. The
	// data-level aggregate.LabelFlip is recognised and carried out as
	// FlipLabels with aggregate.FlipLabel.
	Attack aggregate.Attack
	// FlipLabels makes Byzantine client j train on the data of honest
	// client j mod len(Clients) with every label y replaced by
	// FlipLabel(y): a data-poisoning attack.
	FlipLabels bool
	// FlipLabel maps a label to its poisoned value; nil means
	// Classes − 1 − y (9 − y on MNIST).
	FlipLabel func(y int) int
}

// RoundAccuracy is the test accuracy after a round (1-based).
type RoundAccuracy struct {
	Round    int     `json:"round"`
	Accuracy float64 `json:"accuracy"`
}

// FederationResult is the outcome of RunFederation.
type FederationResult struct {
	// Accuracy is the final global model's test accuracy.
	Accuracy float64
	// Curve holds intermediate accuracies when EvalEvery > 0, and the
	// final one.
	Curve []RoundAccuracy
	// ByzantineUsed is the mean over rounds of the fraction of Byzantine
	// inputs the rule reported as used (0 when f = 0).
	ByzantineUsed float64
	// Params is the final global parameter vector.
	Params []float64
}

// ErrFederation wraps configuration errors of a Federation.
var ErrFederation = errors.New("learn: invalid federation")

// RoundError reports a failure of the aggregation rule in one round.
type RoundError struct {
	Round int
	Err   error
}

func (e *RoundError) Error() string { return fmt.Sprintf("learn: round %d: %v", e.Round, e.Err) }
func (e *RoundError) Unwrap() error { return e.Err }

// RunFederation runs the federation and evaluates the final global model.
//
// Each round, every honest client copies the global parameters, trains
// with TrainLocal and reports its delta; the Byzantine clients then craft
// theirs (seeing the honest deltas) or train on flipped labels; Rule
// aggregates all deltas and the global model moves by ServerLR times the
// aggregate. Honest clients train concurrently on Workers goroutines, each
// with a random source derived from (Seed, round, client), so the result is
// identical for every Workers value and schedule.
//
// Errors: ErrFederation (wrapped) for an inconsistent setup; a *RoundError
// when the rule or the attack fails in a round; ctx.Err() when ctx is
// cancelled (checked between rounds and clients).
func RunFederation(ctx context.Context, f Federation) (*FederationResult, error) {
	cfg := f.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFederation, err)
	}
	if _, ok := f.Attack.(aggregate.LabelFlip); ok {
		f.Attack, f.FlipLabels = nil, true
		if f.FlipLabel == nil {
			classes := cfg.Arch.Classes
			f.FlipLabel = func(y int) int { return aggregate.FlipLabel(y, classes) }
		}
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	honest := len(f.Clients)
	workers := cfg.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, honest)
	global, err := NewModel(cfg.Arch, streamRand(cfg.Seed, 0, 0))
	if err != nil {
		return nil, err
	}
	models := make([]Model, workers)
	for i := range models {
		models[i] = global.Clone()
	}
	newOpt := func() *SGD { return &SGD{LR: cfg.LR, Momentum: cfg.Momentum, WeightDecay: cfg.WeightDecay} }
	honestOpt := make([]*SGD, honest)
	for i := range honestOpt {
		honestOpt[i] = newOpt()
	}
	var flipped []*Dataset
	var byzOpt []*SGD
	if f.Byzantine > 0 && f.Attack == nil {
		flip := f.FlipLabel
		if flip == nil {
			classes := cfg.Arch.Classes
			flip = func(y int) int { return classes - 1 - y }
		}
		for j := 0; j < f.Byzantine; j++ {
			flipped = append(flipped, f.Clients[j%honest].WithLabels(flip))
			byzOpt = append(byzOpt, newOpt())
		}
	}
	serverLR := cfg.ServerLR
	if serverLR == 0 {
		serverLR = 1
	}
	res := &FederationResult{}
	n := honest + f.Byzantine
	updates := make([][]float64, n)
	var byzUsed float64
	for round := 1; round <= cfg.Rounds; round++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Honest clients, then label-flipping clients, share one job list.
		type job struct {
			data *Dataset
			opt  *SGD
			id   int
		}
		jobs := make([]job, 0, honest+len(flipped))
		for i := 0; i < honest; i++ {
			jobs = append(jobs, job{f.Clients[i], honestOpt[i], i})
		}
		for j := range flipped {
			jobs = append(jobs, job{flipped[j], byzOpt[j], honest + j})
		}
		if err := Parallel(ctx, workers, len(jobs), func(w, k int) {
			m := models[w]
			copy(m.Params(), global.Params())
			jb := jobs[k]
			// ErrDiverged is not fatal: the (non-finite) delta is sent and
			// the rule must reject it, as it would a faulty node's.
			updates[jb.id], _ = TrainLocal(m, jb.data, cfg.Local, jb.opt, streamRand(cfg.Seed, round, jb.id+1))
		}); err != nil {
			return nil, err
		}
		if f.Byzantine > 0 && f.Attack != nil {
			byz, err := f.Attack.Craft(aggregate.AttackInput{
				Honest: updates[:honest:honest],
				F:      f.Byzantine,
				Rule:   f.Rule,
				Rand:   streamRand(cfg.Seed, round, 1<<30),
			})
			if err != nil {
				return nil, &RoundError{Round: round, Err: fmt.Errorf("attack %s: %w", f.Attack.Name(), err)}
			}
			if len(byz) != f.Byzantine {
				return nil, &RoundError{Round: round, Err: fmt.Errorf("attack %s returned %d vectors, want %d", f.Attack.Name(), len(byz), f.Byzantine)}
			}
			copy(updates[honest:], byz)
		}
		agg, rep, err := f.Rule.Aggregate(updates, nil)
		if err != nil {
			return nil, &RoundError{Round: round, Err: fmt.Errorf("rule %s: %w", f.Rule.Name(), err)}
		}
		p := global.Params()
		if len(agg) != len(p) {
			return nil, &RoundError{Round: round, Err: fmt.Errorf("rule %s returned %d values, want %d", f.Rule.Name(), len(agg), len(p))}
		}
		for i, v := range agg {
			p[i] += serverLR * v
		}
		if f.Byzantine > 0 {
			used := 0
			for _, i := range rep.Used {
				if i >= honest {
					used++
				}
			}
			byzUsed += float64(used) / float64(f.Byzantine)
		}
		if round == cfg.Rounds || (cfg.EvalEvery > 0 && round%cfg.EvalEvery == 0) {
			acc, err := Accuracy(global, f.Test)
			if err != nil {
				return nil, err
			}
			res.Curve = append(res.Curve, RoundAccuracy{Round: round, Accuracy: acc})
			res.Accuracy = acc
		}
	}
	res.ByzantineUsed = byzUsed / float64(cfg.Rounds)
	res.Params = append([]float64(nil), global.Params()...)
	return res, nil
}

func (f *Federation) check() error {
	switch {
	case len(f.Clients) == 0:
		return fmt.Errorf("%w: no honest clients", ErrFederation)
	case f.Test == nil || f.Test.Len() == 0:
		return fmt.Errorf("%w: empty test set", ErrFederation)
	case f.Rule == nil:
		return fmt.Errorf("%w: nil Rule", ErrFederation)
	case f.Byzantine < 0:
		return fmt.Errorf("%w: Byzantine %d < 0", ErrFederation, f.Byzantine)
	case f.Byzantine > 0 && f.Attack == nil && !f.FlipLabels:
		return fmt.Errorf("%w: %d Byzantine clients but no Attack and FlipLabels unset", ErrFederation, f.Byzantine)
	}
	a := f.Config.Arch
	for i, d := range append(append([]*Dataset(nil), f.Clients...), f.Test) {
		if d.Len() == 0 && i < len(f.Clients) {
			return fmt.Errorf("%w: client %d has no data", ErrFederation, i)
		}
		if d.Dim != a.Dim || d.Classes != a.Classes {
			return fmt.Errorf("%w: dataset %d is %d-dim with %d classes, model expects %d and %d",
				ErrFederation, i, d.Dim, d.Classes, a.Dim, a.Classes)
		}
	}
	return nil
}

// Parallel runs fn(worker, k) for k in [0, jobs) on at most workers
// goroutines; worker ∈ [0, workers) identifies the goroutine so that fn can
// use per-worker scratch state. It returns ctx.Err() if ctx was cancelled
// before all jobs started.
func Parallel(ctx context.Context, workers, jobs int, fn func(worker, k int)) error {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				fn(w, k)
			}
		}()
	}
	var err error
	for k := 0; k < jobs; k++ {
		if err = ctx.Err(); err != nil {
			break
		}
		next <- k
	}
	close(next)
	wg.Wait()
	return err
}

// streamRand derives an independent PCG stream for (seed, round, id) so
// that every client's randomness is fixed regardless of scheduling. The
// second PCG word mixes round and id with SplitMix64's finaliser.
func streamRand(seed uint64, round, id int) *rand.Rand {
	z := uint64(round)<<32 ^ uint64(id) + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return rand.New(rand.NewPCG(seed, z))
}
