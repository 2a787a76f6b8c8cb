package node

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/privacy"
	"github.com/mfn/mfn/sim"
)

// ErrTask reports a job the node cannot train: another task than its
// data's, or a parameter count that fits no model of the task.
var ErrTask = errors.New("node: job does not fit the node's task")

// ArchFor returns the model a job of task with dim parameters trains:
// softmax regression when dim is the task's softmax size, otherwise a
// one-hidden-layer MLP whose hidden width makes dim parameters. For the
// regime task (18 features, 4 classes) softmax has 76 parameters and an
// MLP with h hidden units 23h+4; for MNIST 7,850 and 795h+10. Errors wrap
// ErrTask.
func ArchFor(task string, dim int) (learn.Arch, error) {
	var in, classes int
	switch task {
	case TaskMFNRegime:
		in, classes = sim.NumFeatures, NumRegimes
	case TaskMNIST:
		in, classes = 28*28, 10
	default:
		return learn.Arch{}, fmt.Errorf("%w: unknown task %q", ErrTask, task)
	}
	soft := learn.Arch{Kind: "softmax", Dim: in, Classes: classes}
	if dim == soft.NumParams() {
		return soft, nil
	}
	per := in + 1 + classes // weights in, bias, weights out per hidden unit
	if dim > classes && (dim-classes)%per == 0 {
		return learn.Arch{Kind: "mlp", Dim: in, Hidden: (dim - classes) / per, Classes: classes}, nil
	}
	return learn.Arch{}, fmt.Errorf("%w: %d parameters fit neither softmax (%d) nor an MLP (%d·h+%d) of task %s",
		ErrTask, dim, soft.NumParams(), per, classes, task)
}

// ArchForShape returns the model a job of task announces by its layer
// shape (input, [hidden,] classes: "softmax" for two sizes, a
// one-hidden-layer MLP for three) and checks it against the task's input
// and class counts and against dim, the model's parameter count. Errors
// wrap ErrTask.
func ArchForShape(task string, shape []int, dim int) (learn.Arch, error) {
	var in, classes int
	switch task {
	case TaskMFNRegime:
		in, classes = sim.NumFeatures, NumRegimes
	case TaskMNIST:
		in, classes = 28*28, 10
	default:
		return learn.Arch{}, fmt.Errorf("%w: unknown task %q", ErrTask, task)
	}
	var arch learn.Arch
	switch len(shape) {
	case 2:
		arch = learn.Arch{Kind: "softmax", Dim: shape[0], Classes: shape[1]}
	case 3:
		if shape[1] < 1 {
			return learn.Arch{}, fmt.Errorf("%w: shape %v has no hidden units", ErrTask, shape)
		}
		arch = learn.Arch{Kind: "mlp", Dim: shape[0], Hidden: shape[1], Classes: shape[2]}
	default:
		return learn.Arch{}, fmt.Errorf("%w: shape %v: want input,classes or input,hidden,classes", ErrTask, shape)
	}
	if arch.Dim != in || arch.Classes != classes {
		return learn.Arch{}, fmt.Errorf("%w: shape %v: task %s has %d inputs and %d classes", ErrTask, shape, task, in, classes)
	}
	if n := arch.NumParams(); n != dim {
		return learn.Arch{}, fmt.Errorf("%w: shape %v has %d parameters, the model %d", ErrTask, shape, n, dim)
	}
	return arch, nil
}

// parseShape reads an announcement's "shape" metadata: decimal layer sizes
// separated by commas. Errors wrap ErrTask.
func parseShape(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 16 {
		return nil, fmt.Errorf("%w: shape %.40q has too many layers", ErrTask, s)
	}
	out := make([]int, len(parts))
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%w: bad shape %.40q", ErrTask, s)
		}
		out[i] = v
	}
	return out, nil
}

// archOf returns the model of an announced job: from its "shape" metadata
// when present, otherwise inferred from the parameter count (ArchFor).
func archOf(task string, md map[string]string, dim int) (learn.Arch, error) {
	if s, ok := md["shape"]; ok && s != "" {
		shape, err := parseShape(s)
		if err != nil {
			return learn.Arch{}, err
		}
		return ArchForShape(task, shape, dim)
	}
	return ArchFor(task, dim)
}

// privatize applies a job's local differential privacy to an update, in
// place, before the node seals it: when the announcement's "dp" metadata
// (privacy.Announced) says mode local, the update is clipped to L2 norm
// clip and discrete Gaussian noise of standard deviation z·clip is added
// (privacy.Local) with randomness from src (a privacy.CryptoSource in the
// agent; seeded in tests). Without "dp", or in central mode (the leader
// clips and noises), the update is left as it is. A "dp" value the node
// cannot parse, or an update the mechanism refuses, is an error wrapping
// ErrTask: the node then sends nothing rather than an update without the
// privacy the job promises.
func privatize(md map[string]string, update []float64, src privacy.Source) error {
	s, ok := md["dp"]
	if !ok {
		return nil
	}
	a, err := privacy.ParseAnnounced(s)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTask, err)
	}
	if a.Mode != privacy.ModeLocal {
		return nil
	}
	l, err := privacy.NewLocal(a.Clip, a.NoiseMultiplier)
	if err != nil {
		return fmt.Errorf("%w: local DP: %v", ErrTask, err)
	}
	if _, _, err := l.Privatize(update, src); err != nil {
		return fmt.Errorf("%w: local DP: %v", ErrTask, err)
	}
	return nil
}

// Learner computes one node's updates. It holds the node's training split
// and its per-job SGD state (client momentum persists across rounds), and
// draws every random choice from a source derived from (seed, job, round),
// so the same node trains the same update from the same base model. It is
// exported so that an in-process reference federation can train exactly as
// nodes do. Safe for concurrent use (updates of one job are serialised).
type Learner struct {
	data *learn.Dataset
	cfg  TrainConfig
	seed uint64

	mu   sync.Mutex
	opts map[string]*learn.SGD
}

// NewLearner returns a Learner training on data with cfg, seeded by seed.
func NewLearner(data *learn.Dataset, cfg TrainConfig, seed uint64) *Learner {
	return &Learner{data: data, cfg: cfg, seed: seed, opts: map[string]*learn.SGD{}}
}

// Samples returns the number of training samples.
func (l *Learner) Samples() int { return l.data.Len() }

// roundRand is the source of one (job, round) for one purpose.
func (l *Learner) roundRand(job string, round, purpose uint64) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(job))
	return rand.New(rand.NewPCG(l.seed^h.Sum64(), round<<8|purpose))
}

func (l *Learner) sgd(job string) *learn.SGD {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, ok := l.opts[job]
	if !ok {
		o = &learn.SGD{LR: l.cfg.LR, Momentum: l.cfg.Momentum, WeightDecay: l.cfg.WeightDecay}
		l.opts[job] = o
	}
	return o
}

// Velocity returns a copy of job's momentum buffer, nil if job has not
// trained with momentum yet.
func (l *Learner) Velocity(job string) []float64 {
	o := l.sgd(job)
	l.mu.Lock()
	defer l.mu.Unlock()
	return o.Velocity()
}

// SetVelocity restores job's momentum buffer (a copy of v), for a node
// resuming after a restart.
func (l *Learner) SetVelocity(job string, v []float64) {
	o := l.sgd(job)
	l.mu.Lock()
	defer l.mu.Unlock()
	o.SetVelocity(v)
}

// Update trains a model of shape arch from base on the local data and
// returns the delta θ_new − θ_old and the trained model. Errors: an arch
// or base of the wrong size, learn.ErrDiverged.
func (l *Learner) Update(job string, round uint64, arch learn.Arch, base []float64) ([]float64, learn.Model, error) {
	return l.train(job, round, arch, base, l.data, l.sgd(job), 0)
}

func (l *Learner) train(job string, round uint64, arch learn.Arch, base []float64, data *learn.Dataset, opt *learn.SGD, purpose uint64) ([]float64, learn.Model, error) {
	if arch.Dim != l.data.Dim || arch.Classes != l.data.Classes {
		return nil, nil, fmt.Errorf("%w: model %dx%d, data %dx%d", ErrTask, arch.Dim, arch.Classes, l.data.Dim, l.data.Classes)
	}
	rng := l.roundRand(job, round, purpose)
	m, err := learn.NewModel(arch, rng)
	if err != nil {
		return nil, nil, err
	}
	if len(base) != len(m.Params()) {
		return nil, nil, fmt.Errorf("%w: base model has %d parameters, arch %d", ErrTask, len(base), len(m.Params()))
	}
	copy(m.Params(), base)
	delta, err := learn.TrainLocal(m, data, learn.LocalConfig{Epochs: l.cfg.Epochs, Batch: l.cfg.Batch}, opt, rng)
	return delta, m, err
}

// Craft returns a Byzantine node's update for a round: attack "label-flip"
// trains honestly on flipped labels; every other attack is fed honest
// updates that the node simulates from its own data (honest updates
// trained from base on bootstrap resamples of the local data), since it
// cannot see the other nodes' updates. maxUpdates, when above f, is the
// federation size ALIE's z is computed for; rule is what adaptive attacks
// optimise against.
func (l *Learner) Craft(attack string, job string, round uint64, arch learn.Arch, base []float64, honest, f, maxUpdates int, rule aggregate.Rule) ([]float64, error) {
	if attack == "label-flip" {
		flipped := l.data.WithLabels(func(y int) int { return aggregate.FlipLabel(y, l.data.Classes) })
		delta, _, err := l.train(job, round, arch, base, flipped, l.sgd(job), 1)
		return delta, err
	}
	p := aggregate.AttackParams{Classes: l.data.Classes}
	if attack == "alie" && maxUpdates > f {
		z, err := aggregate.ALIE{}.ZFor(maxUpdates-f, f)
		if err == nil {
			p.Z = z
		}
	}
	a, err := aggregate.NewAttack(attack, p)
	if err != nil {
		return nil, err
	}
	vecs := make([][]float64, honest)
	for k := range vecs {
		rng := l.roundRand(job, round, 2+uint64(k))
		idx := make([]int, l.data.Len())
		for i := range idx {
			idx[i] = rng.IntN(l.data.Len())
		}
		opt := &learn.SGD{LR: l.cfg.LR, Momentum: l.cfg.Momentum, WeightDecay: l.cfg.WeightDecay}
		d, _, err := l.train(job, round, arch, base, l.data.Subset(idx), opt, 2+uint64(k))
		if err != nil {
			return nil, err
		}
		vecs[k] = d
	}
	out, err := a.Craft(aggregate.AttackInput{Honest: vecs, F: f, Rule: rule, Rand: l.roundRand(job, round, 1<<7)})
	if err != nil {
		return nil, fmt.Errorf("node: attack %s: %w", attack, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("node: attack %s crafted nothing", attack)
	}
	return out[0], nil
}
