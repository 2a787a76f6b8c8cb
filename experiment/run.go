package experiment

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/sitedata"
)

// Data holds the standardised splits shared by every cell.
type Data struct {
	Train, Test *learn.Dataset
}

// LoadData reads (or, for "mfn", simulates) c's data set, cuts it to
// TrainSize/TestSize and standardises both splits with the training
// statistics. The MFN task and the training subset use fixed seeds, so
// every cell and seed shares the same samples. A training set smaller than
// Honest is a *ConfigError for "train-size".
func LoadData(ctx context.Context, c Config) (*Data, error) {
	var train, test *learn.Dataset
	var err error
	switch c.Dataset {
	case "mnist":
		dir := c.DataDir
		if dir == "" {
			if dir, err = learn.MNISTDir(ctx); err != nil {
				return nil, err
			}
		}
		train, test, err = learn.LoadMNIST(dir)
	case "fashion":
		dir := c.DataDir
		if dir == "" {
			dir = learn.FashionMNISTDir
		}
		train, test, err = learn.LoadFashionMNIST(dir)
		if errors.Is(err, learn.ErrNotInstalled) {
			return nil, fmt.Errorf("dataset fashion: %w (install Debian's dataset-fashion-mnist or pass --data-dir)", err)
		}
	case "mfn":
		// A fixed data seed: every cell and seed shares the same samples.
		train, test, err = learn.MFNRegimeTask(ctx, learn.RegimeTaskConfig{}, c.MFNPerRegime, rand.New(rand.NewPCG(0, 0x6d666e)))
	case "file":
		var l *sitedata.Loaded
		if l, err = sitedata.Load(c.Data, sitedata.Options{LabelColumn: c.LabelColumn, Schema: sitedata.Schema{Classes: c.Classes}}); err != nil {
			return nil, err
		}
		// A fixed split seed: the test part is the same for every cell
		// and never given to a client.
		train, test, err = learn.SplitTrainTest(l.Data, c.testFraction(), rand.New(rand.NewPCG(0, 0x5e1)))
	default:
		return nil, bad("dataset", "%q: want mnist, fashion, mfn or file", c.Dataset)
	}
	if err != nil {
		return nil, err
	}
	if c.TrainSize > 0 && c.TrainSize < train.Len() {
		// A fixed subset (seed 0), the same for every cell and seed.
		perm := rand.New(rand.NewPCG(0, 0x7a1)).Perm(train.Len())
		train = train.Subset(perm[:c.TrainSize])
	}
	if c.TestSize > 0 && c.TestSize < test.Len() {
		test = test.Subset(seqInts(c.TestSize))
	}
	if _, err := c.Arch(train.Dim, train.Classes); err != nil {
		return nil, bad("model", "%q on %d features, %d classes: %v", c.Model, train.Dim, train.Classes, err)
	}
	if train.Len() < c.Honest {
		return nil, bad("train-size", "%d: fewer samples than --honest %d clients", train.Len(), c.Honest)
	}
	learn.Standardize(train, test)
	return &Data{Train: train, Test: test}, nil
}

func seqInts(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// RunCell runs one federation. Rule or attack failures (a rule's
// requirement not met for this f, a diverged round) are recorded in the
// Record (Error set, Accuracy NaN), not returned; only cancellation and
// setup bugs are errors. setup is c.Setup().
func RunCell(ctx context.Context, c Config, data *Data, cell Cell, setup string) (Record, error) {
	pre, ruleName := SplitPipeline(cell.Rule)
	rec := Record{
		Dataset: c.DatasetName(), Model: c.Model, Heterogeneity: cell.Heterogeneity, Alpha: cell.Alpha,
		Honest: c.Honest, F: cell.F, Rule: ruleName, Pre: pre, Attack: cell.Attack, Seed: cell.Seed, Setup: c.CellSetup(setup, cell.Rule),
	}
	start := time.Now()
	fail := func(err error) (Record, error) {
		rec.Error = err.Error()
		rec.Accuracy = math.NaN()
		rec.Seconds = time.Since(start).Seconds()
		return rec, nil
	}
	rng := rand.New(rand.NewPCG(cell.Seed, 0xda7a))
	var parts [][]int
	var err error
	switch cell.Heterogeneity {
	case "iid":
		parts, err = learn.PartitionIID(data.Train.Len(), c.Honest, rng)
	case "dirichlet":
		parts, err = learn.PartitionDirichlet(data.Train.Y, data.Train.Classes, c.Honest, cell.Alpha, 1, rng)
	case "extreme":
		parts, err = learn.PartitionExtreme(data.Train.Y, data.Train.Classes, c.Honest, c.ExtremeLabels, rng)
	default:
		return rec, bad("heterogeneity", "%q: want iid, dirichlet or extreme", cell.Heterogeneity)
	}
	if err != nil {
		return fail(err)
	}
	clients := make([]*learn.Dataset, len(parts))
	for i, p := range parts {
		clients[i] = data.Train.Subset(p)
	}
	rule, err := c.NewRule(cell.Rule, c.ruleF(cell), cell.Seed)
	if err != nil {
		return fail(err)
	}
	arch, err := c.Arch(data.Train.Dim, data.Train.Classes)
	if err != nil {
		return rec, err
	}
	fed := learn.Federation{
		Config: learn.FederationConfig{
			Arch:   arch,
			Rounds: c.Rounds,
			Local:  learn.LocalConfig{Steps: c.LocalSteps, Epochs: c.LocalEpochs, Batch: c.Batch},
			LR:     c.LR, Momentum: c.Momentum, WeightDecay: c.WeightDecay,
			Workers: c.Workers,
			Seed:    cell.Seed,
		},
		Clients: clients, Test: data.Test, Rule: rule, Byzantine: cell.F,
	}
	if cell.F > 0 {
		att, flip, err := NewAttack(cell.Attack)
		if err != nil {
			return fail(err)
		}
		fed.Attack, fed.FlipLabels = att, flip
		if flip {
			classes := data.Train.Classes
			fed.FlipLabel = func(y int) int { return aggregate.FlipLabel(y, classes) }
		}
	}
	if cell.DP != "" {
		return runDPCell(ctx, c, fed, cell, rec, start, fail)
	}
	if spec, ok, err := c.parseOptimizer(); err != nil {
		return rec, err
	} else if ok {
		rec.Optimizer = spec.String()
		if fed.Attack != nil {
			fed.Attack = rawRuleAttack{inner: fed.Attack, rule: fed.Rule}
		}
		fed.Rule = &optimizerRule{inner: fed.Rule, spec: spec}
	}
	res, err := learn.RunFederation(ctx, fed)
	if err != nil {
		if ctx.Err() != nil {
			return rec, ctx.Err()
		}
		var re *learn.RoundError
		if errors.As(err, &re) {
			return fail(err)
		}
		return rec, err
	}
	rec.Accuracy = res.Accuracy
	rec.ByzantineUsed = res.ByzantineUsed
	rec.Seconds = math.Round(time.Since(start).Seconds()*1000) / 1000
	return rec, nil
}

// Reference returns the mean over c's seeds of learn.CentralizedReference:
// c's model trained on all of data.Train with the budget of c.Honest
// clients, evaluated on data.Test.
func Reference(ctx context.Context, c Config, data *Data) (float64, error) {
	arch, err := c.Arch(data.Train.Dim, data.Train.Classes)
	if err != nil {
		return 0, err
	}
	var sum float64
	for k := 0; k < c.Seeds; k++ {
		fc := learn.FederationConfig{
			Arch: arch, Rounds: c.Rounds,
			Local: learn.LocalConfig{Steps: c.LocalSteps, Epochs: c.LocalEpochs, Batch: c.Batch},
			LR:    c.LR, Momentum: c.Momentum, WeightDecay: c.WeightDecay,
			Seed: c.Seed + uint64(k),
		}
		acc, err := learn.CentralizedReference(ctx, fc, c.Honest, data.Train, data.Test)
		if err != nil {
			return 0, err
		}
		sum += acc
	}
	return sum / float64(c.Seeds), nil
}

// RunOptions are the optional parts of Run. The zero value runs every cell
// without a results file.
type RunOptions struct {
	// Results is a JSON-lines file of finished cells: cells already in it
	// are skipped, new ones appended as they finish. Empty means none.
	Results string
	// Start, if set, is called once before any cell runs with the number
	// of cells, those already in Results, and those to run.
	Start func(total, done, todo int)
	// Finished, if set, is called after each cell that ran.
	Finished func(Record)
}

// Outcome is what Run did.
type Outcome struct {
	// Records holds every finished cell (from Results or run now) in
	// Cells order.
	Records []Record
	// Total is len(Config.Cells()).
	Total int
	// Interrupted is the context's error when ctx was cancelled before
	// every cell ran; Records still holds the finished ones.
	Interrupted error
	// Reference is the mean over seeds of the centralized reference
	// accuracy when Config.Reference is set, NaN otherwise.
	Reference float64
}

// Run validates c, then runs every cell of c not already in opt.Results,
// appending each to it. Cancelling ctx stops after the running cell's
// round and returns the finished cells with Outcome.Interrupted set and a
// nil error. Errors: *ConfigError, unreadable results, data loading.
func Run(ctx context.Context, c Config, opt RunOptions) (*Outcome, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	setup := c.Setup()
	done := map[string]Record{}
	var resultsFile *os.File
	if opt.Results != "" {
		prev, err := ReadResults(opt.Results)
		if err != nil {
			return nil, err
		}
		for _, r := range prev {
			done[RecordKey(r)] = r
		}
		if resultsFile, err = os.OpenFile(opt.Results, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			return nil, err
		}
		defer resultsFile.Close()
	}
	cells := c.Cells()
	var todo []Cell
	for _, cell := range cells {
		if _, ok := done[c.Key(cell, setup)]; !ok {
			todo = append(todo, cell)
		}
	}
	if opt.Start != nil {
		opt.Start(len(cells), len(cells)-len(todo), len(todo))
	}
	var data *Data
	if len(todo) > 0 || c.Reference {
		var err error
		if data, err = LoadData(ctx, c); err != nil {
			return nil, err
		}
	}
	out := &Outcome{Total: len(cells), Reference: math.NaN()}
	if c.Reference {
		ref, err := Reference(ctx, c, data)
		if err != nil {
			if ctx.Err() != nil {
				out.Interrupted = ctx.Err()
				return out, nil
			}
			return nil, err
		}
		out.Reference = ref
	}
	for _, cell := range todo {
		if err := ctx.Err(); err != nil {
			out.Interrupted = err
			break
		}
		rec, err := RunCell(ctx, c, data, cell, setup)
		if err != nil {
			if ctx.Err() != nil {
				out.Interrupted = ctx.Err()
				break
			}
			return nil, err
		}
		done[c.Key(cell, setup)] = rec
		if resultsFile != nil {
			line, _ := json.Marshal(rec)
			if _, err := resultsFile.Write(append(line, '\n')); err != nil {
				return nil, fmt.Errorf("results %s: %w", opt.Results, err)
			}
		}
		if opt.Finished != nil {
			opt.Finished(rec)
		}
	}
	for _, cell := range cells {
		if r, ok := done[c.Key(cell, setup)]; ok {
			out.Records = append(out.Records, r)
		}
	}
	return out, nil
}

// ReadResults reads a results file; a missing file is empty. A truncated
// last line (the process died mid-write) is ignored; a bad line before
// the last is an error naming the line.
func ReadResults(path string) ([]Record, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	var pending error
	for sc.Scan() {
		line++
		if pending != nil {
			return nil, pending
		}
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			pending = fmt.Errorf("results %s: line %d: %v", path, line, err)
			continue
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("results %s: %w", path, err)
	}
	return out, nil
}

// NewRule builds the pipeline spec for f Byzantine clients with c's step
// parameters; seed feeds the randomised steps (bucketing, hierarchical
// Krum). Errors come from aggregate.ParsePipeline.
func (c Config) NewRule(spec string, f int, seed uint64) (aggregate.Rule, error) {
	p := aggregate.Params{F: f, Seed: seed, ClipNorm: c.ClipNorm, Tau: c.CCTau, BucketSize: c.BucketSize}
	// Params.Iters is read by both centered-clipping (L) and
	// geometric-median (Weiszfeld iterations): set it for the final rule.
	_, rule := SplitPipeline(spec)
	switch strings.TrimSpace(rule) {
	case "centered-clipping":
		p.Iters = c.CCIters
	case "geometric-median":
		p.Iters = c.GMIters
	}
	return aggregate.ParsePipeline(spec, p)
}

// NewAttack builds an attack from "name[:key=value]..."; flip is true for
// the data-level label flip, which the federation carries out itself (att
// is then nil).
func NewAttack(spec string) (att aggregate.Attack, flip bool, err error) {
	name, params, err := ParseAttackSpec(spec)
	if err != nil {
		return nil, false, err
	}
	if att, err = aggregate.NewAttack(name, params); err != nil {
		return nil, false, err
	}
	if _, ok := att.(aggregate.LabelFlip); ok {
		return nil, true, nil
	}
	return att, false, nil
}

// ParseAttackSpec splits "name:key=value:..." into the name and its
// aggregate.AttackParams (keys sigma, eps, z, max-scale, mimic-index).
// Values must be finite numbers; mimic-index a client index.
func ParseAttackSpec(spec string) (string, aggregate.AttackParams, error) {
	var p aggregate.AttackParams
	fields := strings.Split(spec, ":")
	for _, kv := range fields[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", p, fmt.Errorf("parameter %q: want key=value", kv)
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return "", p, fmt.Errorf("parameter %s=%q: want a finite number", k, v)
		}
		switch k {
		case "sigma":
			p.Sigma = x
		case "eps":
			p.Eps = x
		case "z":
			p.Z = x
		case "max-scale":
			p.MaxScale = x
		case "mimic-index":
			if x != math.Trunc(x) || x < 0 || x > 1e6 {
				return "", p, fmt.Errorf("parameter mimic-index=%v: want a client index", x)
			}
			p.MimicIndex = int(x)
		default:
			return "", p, fmt.Errorf("unknown parameter %q (want sigma, eps, z, max-scale or mimic-index)", k)
		}
	}
	return fields[0], p, nil
}
