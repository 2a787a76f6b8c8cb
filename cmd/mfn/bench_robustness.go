package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/learn"
)

func init() { registerBenchCommand(newBenchRobustnessCmd) }

const benchRobustnessLong = `robustness runs the Byzantine-robustness protocol
(../shared/spec/ROBUSTNESS_BENCH.md) in one process: for every combination of
heterogeneity, Byzantine count f, aggregation rule (optionally preceded by
pre-steps, e.g. nnm+trimmed-mean) and attack, it simulates a federation of
--honest honest clients plus f Byzantine ones for --rounds rounds and records
the final test accuracy. Byzantine clients see the honest updates of the
round (the standard, strongest assumption); with f = 0 only the attack "none"
runs.

Cells are independent and deterministic: the same flags and seed give the
same accuracies. Each finished cell is appended to --results (JSON lines), and
a rerun with the same --results skips the cells already there, so an
interrupted run (Ctrl-C keeps every finished cell) resumes where it stopped.

The table on stdout has one row per (setting, f, rule) and one column per
attack, plus the worst case over attacks (mean over seeds). --json writes all
cells as an array of {dataset, model, heterogeneity, alpha, honest, f, rule,
pre, attack, seed, accuracy}; --png draws one heat map per setting of the
worst case over attacks, rules by f.

Rules are aggregate's names (fedavg, krum, multi-krum, median, trimmed-mean,
bulyan, geometric-median, centered-clipping, hierarchical-krum) with
"+"-separated pre-steps in front (nnm, bucketing, static-clipping). Attacks are
aggregate's attack names with optional parameters after colons, e.g.
gaussian:sigma=200 or ipm:eps=0.5; label-flip trains Byzantine clients on
labels y → classes−1−y.

--quick is the CI-sized run: softmax on a 20,000-image MNIST subset, IID and
Dirichlet α = 0.5, f ∈ {0, 1, 3}, 10 honest clients, the main rules and
attacks, 10 rounds of 30 local steps, one seed; flags given explicitly still
override it.`

const benchRobustnessExample = `  mfn bench robustness --quick
  mfn bench robustness --quick --results quick.jsonl --json quick.json --png quick.png
  mfn bench robustness --model mlp --heterogeneity iid,dirichlet,extreme --alpha 1,0.5,0.1 \
      --f 0,1,2,3,4 --rules fedavg,krum,nnm+trimmed-mean --attacks alie,ipm:eps=0.5,label-flip \
      --rounds 200 --seeds 3 --results full.jsonl`

// robustnessOptions are the parsed flags of "bench robustness".
type robustnessOptions struct {
	dataset, model   string
	hetero           []string
	alphas           []float64
	extremeLabels    int
	honest           int
	fs               []int
	rules, attacks   []string
	rounds, seeds    int
	seed             uint64
	lr, momentum, wd float64
	batch            int
	localSteps       int
	localEpochs      int
	hidden           int
	trainSize        int
	testSize         int
	mfnPerRegime     int
	dataDir          string
	quick            bool
	results          string
	jsonPath         string
	pngPath          string
	workers          int
	clipNorm         float64
	ccTau            float64
	ccIters          int
	gmIters          int
	bucketSize       int
}

// quickDefaults are the values --quick gives to flags not set explicitly.
var quickDefaults = map[string]string{
	"dataset":       "mnist",
	"model":         "softmax",
	"heterogeneity": "iid,dirichlet",
	"alpha":         "0.5",
	"honest":        "10",
	"f":             "0,1,3",
	"rules":         "fedavg,krum,median,trimmed-mean,nnm+trimmed-mean",
	"attacks":       "sign-flip,gaussian:sigma=200,label-flip,alie,ipm:eps=0.5",
	"rounds":        "10",
	"seeds":         "1",
	"lr":            "0.02",
	"local-steps":   "30",
	"train-size":    "20000",
	"test-size":     "5000",
}

func newBenchRobustnessCmd(env *cmdEnv) *cobra.Command {
	o := &robustnessOptions{}
	c := &cobra.Command{
		Use:     "robustness",
		Short:   "Run the Byzantine-robustness protocol (rules × attacks × heterogeneity)",
		Long:    benchRobustnessLong,
		Example: benchRobustnessExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.quick {
				for name, v := range quickDefaults {
					if !cmd.Flags().Changed(name) {
						if err := cmd.Flags().Set(name, v); err != nil {
							return err
						}
					}
				}
			}
			return runBenchRobustness(env, o)
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.dataset, "dataset", "mnist", "data set: mnist, fashion (Debian dataset-fashion-mnist) or mfn (MFN regime task)")
	fl.StringVar(&o.model, "model", "softmax", "model: softmax or mlp (784-64-10 on MNIST)")
	fl.StringSliceVar(&o.hetero, "heterogeneity", []string{"iid", "dirichlet", "extreme"}, "client data distributions: iid, dirichlet (one per --alpha), extreme")
	fl.Float64SliceVar(&o.alphas, "alpha", []float64{1, 0.5, 0.1}, "Dirichlet concentrations α > 0 (smaller is more heterogeneous)")
	fl.IntVar(&o.extremeLabels, "extreme-labels", 1, "labels per honest client in the extreme setting (1 or 2)")
	fl.IntVar(&o.honest, "honest", 10, "honest clients (1..1000)")
	fl.IntSliceVar(&o.fs, "f", []int{0, 1, 2, 3, 4}, "Byzantine client counts (0..1000)")
	fl.StringSliceVar(&o.rules, "rules", []string{"fedavg", "krum", "multi-krum", "median", "trimmed-mean", "bulyan", "geometric-median", "centered-clipping", "hierarchical-krum", "nnm+trimmed-mean", "bucketing+krum", "nnm+static-clipping+trimmed-mean"}, "aggregation pipelines: [pre+...+]rule")
	fl.StringSliceVar(&o.attacks, "attacks", []string{"sign-flip", "gaussian", "gaussian:sigma=200", "label-flip", "alie", "ipm:eps=0.1", "ipm:eps=0.5", "mimic", "opt-alie", "opt-ipm", "min-max", "min-sum", "inf", "nan"}, "attacks run for every f > 0: name[:key=value]...")
	fl.IntVar(&o.rounds, "rounds", 200, "federated rounds (1..100000)")
	fl.IntVar(&o.seeds, "seeds", 3, "seeds per cell (1..1000); seed values are --seed, --seed+1, ...")
	fl.Uint64Var(&o.seed, "seed", 1, "first seed")
	fl.Float64Var(&o.lr, "lr", 0.02, "client learning rate (> 0)")
	fl.Float64Var(&o.momentum, "momentum", 0.9, "client momentum in [0,1), kept across rounds per client")
	fl.Float64Var(&o.wd, "weight-decay", 1e-4, "L2 weight decay (≥ 0)")
	fl.IntVar(&o.batch, "batch", 32, "minibatch size (1..100000)")
	fl.IntVar(&o.localSteps, "local-steps", 30, "minibatch steps per client per round (0 means use --local-epochs)")
	fl.IntVar(&o.localEpochs, "local-epochs", 1, "local epochs per round when --local-steps is 0")
	fl.IntVar(&o.hidden, "hidden", 64, "MLP hidden units (1..10000)")
	fl.IntVar(&o.trainSize, "train-size", 0, "training samples used (a fixed random subset; 0 means all)")
	fl.IntVar(&o.testSize, "test-size", 0, "test samples used (the first ones; 0 means all)")
	fl.IntVar(&o.mfnPerRegime, "mfn-per-regime", 300, "simulations per regime for --dataset mfn (10..100000)")
	fl.StringVar(&o.dataDir, "data-dir", "", "directory with the IDX files (default: the GoMNIST module for mnist, "+learn.FashionMNISTDir+" for fashion)")
	fl.BoolVar(&o.quick, "quick", false, "CI-sized run (see above); explicit flags override its values")
	fl.StringVar(&o.results, "results", "", "JSON-lines file of finished cells; existing cells are skipped (resume)")
	fl.StringVar(&o.jsonPath, "json", "", "write all cells as a JSON array to this file")
	fl.StringVar(&o.pngPath, "png", "", "write the worst-case heat maps to this PNG file")
	fl.Float64Var(&o.clipNorm, "clip-norm", 2, "static-clipping's norm bound C (> 0)")
	fl.Float64Var(&o.ccTau, "cc-tau", 1, "centered-clipping's radius τ (> 0)")
	fl.IntVar(&o.ccIters, "cc-iters", 1, "centered-clipping's iterations L (1..100)")
	fl.IntVar(&o.gmIters, "gm-iters", 8, "geometric-median's maximum smoothed-Weiszfeld iterations (1..1000)")
	fl.IntVar(&o.bucketSize, "bucket-size", 2, "bucketing's bucket size s (1..1000)")
	fl.IntVar(&o.workers, "workers", 0, "goroutines training clients (0 means GOMAXPROCS; results do not depend on it)")
	return c
}

// robustnessCell identifies one federation run.
type robustnessCell struct {
	hetero string  // iid, dirichlet, extreme
	alpha  float64 // dirichlet only
	f      int
	rule   string // full pipeline spec
	attack string
	seed   uint64
}

// robustnessRecord is one finished cell, as a line of --results.
type robustnessRecord struct {
	Dataset       string  `json:"dataset"`
	Model         string  `json:"model"`
	Heterogeneity string  `json:"heterogeneity"`
	Alpha         float64 `json:"alpha"`
	Honest        int     `json:"honest"`
	F             int     `json:"f"`
	Rule          string  `json:"rule"`
	Pre           string  `json:"pre"`
	Attack        string  `json:"attack"`
	Seed          uint64  `json:"seed"`
	Accuracy      float64 `json:"accuracy"`
	// Setup fingerprints the training hyper-parameters, so that a results
	// file is never resumed with different ones.
	Setup         string  `json:"setup"`
	ByzantineUsed float64 `json:"byzantine_used"`
	Seconds       float64 `json:"seconds"`
	Error         string  `json:"error,omitempty"`
}

// jsonCell is one element of the --json array.
type jsonCell struct {
	Dataset       string  `json:"dataset"`
	Model         string  `json:"model"`
	Heterogeneity string  `json:"heterogeneity"`
	Alpha         float64 `json:"alpha"`
	Honest        int     `json:"honest"`
	F             int     `json:"f"`
	Rule          string  `json:"rule"`
	Pre           string  `json:"pre"`
	Attack        string  `json:"attack"`
	Seed          uint64  `json:"seed"`
	Accuracy      float64 `json:"accuracy"`
}

func (o *robustnessOptions) validate() error {
	switch {
	case o.dataset != "mnist" && o.dataset != "fashion" && o.dataset != "mfn":
		return usagef("--dataset %q: want mnist, fashion or mfn", o.dataset)
	case o.model != "softmax" && o.model != "mlp":
		return usagef("--model %q: want softmax or mlp", o.model)
	case o.honest < 1 || o.honest > 1000:
		return usagef("--honest %d: want 1..1000", o.honest)
	case o.rounds < 1 || o.rounds > 100000:
		return usagef("--rounds %d: want 1..100000", o.rounds)
	case o.seeds < 1 || o.seeds > 1000:
		return usagef("--seeds %d: want 1..1000", o.seeds)
	case !(o.lr > 0) || math.IsInf(o.lr, 0):
		return usagef("--lr %v: want a positive number", o.lr)
	case !(o.momentum >= 0 && o.momentum < 1):
		return usagef("--momentum %v: want [0,1)", o.momentum)
	case !(o.wd >= 0) || math.IsInf(o.wd, 0):
		return usagef("--weight-decay %v: want ≥ 0", o.wd)
	case o.batch < 1 || o.batch > 100000:
		return usagef("--batch %d: want 1..100000", o.batch)
	case o.localSteps < 0 || o.localSteps > 1000000:
		return usagef("--local-steps %d: want 0..1000000", o.localSteps)
	case o.localSteps == 0 && (o.localEpochs < 1 || o.localEpochs > 10000):
		return usagef("--local-epochs %d: want 1..10000 when --local-steps is 0", o.localEpochs)
	case o.hidden < 1 || o.hidden > 10000:
		return usagef("--hidden %d: want 1..10000", o.hidden)
	case o.trainSize < 0 || o.testSize < 0:
		return usagef("--train-size and --test-size must be ≥ 0")
	case o.mfnPerRegime < 10 || o.mfnPerRegime > 100000:
		return usagef("--mfn-per-regime %d: want 10..100000", o.mfnPerRegime)
	case o.extremeLabels < 1 || o.extremeLabels > 2:
		return usagef("--extreme-labels %d: want 1 or 2", o.extremeLabels)
	case !(o.clipNorm > 0) || math.IsInf(o.clipNorm, 0):
		return usagef("--clip-norm %v: want a positive number", o.clipNorm)
	case !(o.ccTau > 0) || math.IsInf(o.ccTau, 0):
		return usagef("--cc-tau %v: want a positive number", o.ccTau)
	case o.ccIters < 1 || o.ccIters > 100:
		return usagef("--cc-iters %d: want 1..100", o.ccIters)
	case o.gmIters < 1 || o.gmIters > 1000:
		return usagef("--gm-iters %d: want 1..1000", o.gmIters)
	case o.bucketSize < 1 || o.bucketSize > 1000:
		return usagef("--bucket-size %d: want 1..1000", o.bucketSize)
	case o.workers < 0:
		return usagef("--workers %d: want ≥ 0", o.workers)
	case len(o.fs) == 0 || len(o.rules) == 0 || len(o.hetero) == 0:
		return usagef("--f, --rules and --heterogeneity need at least one value")
	}
	for _, h := range o.hetero {
		if h != "iid" && h != "dirichlet" && h != "extreme" {
			return usagef("--heterogeneity %q: want iid, dirichlet or extreme", h)
		}
		if h == "dirichlet" && len(o.alphas) == 0 {
			return usagef("--heterogeneity dirichlet needs at least one --alpha")
		}
	}
	for _, a := range o.alphas {
		if !(a > 0) || math.IsInf(a, 0) {
			return usagef("--alpha %v: want a positive number", a)
		}
	}
	for _, f := range o.fs {
		if f < 0 || f > 1000 {
			return usagef("--f %d: want 0..1000", f)
		}
	}
	if slices.ContainsFunc(o.fs, func(f int) bool { return f > 0 }) && len(robustAttacks(o.attacks)) == 0 {
		return usagef("--attacks: f > 0 needs at least one attack other than none")
	}
	// Every name must resolve before hours of work start.
	for _, r := range o.rules {
		if _, err := newRobustRule(o, r, 1, 1); err != nil && !errors.Is(err, aggregate.ErrRequirement) {
			return usagef("--rules %q: %v", r, err)
		}
	}
	for _, a := range robustAttacks(o.attacks) {
		if _, _, err := newRobustAttack(a); err != nil {
			return usagef("--attacks %q: %v", a, err)
		}
	}
	return nil
}

// robustAttacks drops "none" (which only runs with f = 0).
func robustAttacks(attacks []string) []string {
	var out []string
	for _, a := range attacks {
		if a != "none" {
			out = append(out, a)
		}
	}
	return out
}

// setup fingerprints the training hyper-parameters a cell's result
// depends on beyond its key; cellSetup adds the rule's own parameters.
func (o *robustnessOptions) setup() string {
	s := fmt.Sprintf("rounds=%d lr=%g mom=%g wd=%g batch=%d steps=%d epochs=%d train=%d test=%d",
		o.rounds, o.lr, o.momentum, o.wd, o.batch, o.localSteps, o.localEpochs, o.trainSize, o.testSize)
	if o.model == "mlp" {
		s += fmt.Sprintf(" hidden=%d", o.hidden)
	}
	if slices.Contains(o.hetero, "extreme") {
		s += fmt.Sprintf(" extreme-labels=%d", o.extremeLabels)
	}
	if o.dataset == "mfn" {
		s += fmt.Sprintf(" per-regime=%d", o.mfnPerRegime)
	}
	return s
}

// cellSetup is setup plus the parameters of the steps in the pipeline
// spec, so that changing --cc-tau, say, only invalidates the
// centered-clipping cells of a results file.
func (o *robustnessOptions) cellSetup(setup, spec string) string {
	for _, part := range strings.Split(spec, "+") {
		switch strings.TrimSpace(part) {
		case "centered-clipping":
			setup += fmt.Sprintf(" tau=%g L=%d", o.ccTau, o.ccIters)
		case "geometric-median":
			setup += fmt.Sprintf(" gm-iters=%d", o.gmIters)
		case "static-clipping":
			setup += fmt.Sprintf(" clip=%g", o.clipNorm)
		case "bucketing":
			setup += fmt.Sprintf(" s=%d", o.bucketSize)
		}
	}
	return setup
}

// cells lists every run in a stable order: setting, f, rule, attack, seed.
func (o *robustnessOptions) cells() []robustnessCell {
	type setting struct {
		h string
		a float64
	}
	var settings []setting
	for _, h := range o.hetero {
		if h == "dirichlet" {
			for _, a := range o.alphas {
				settings = append(settings, setting{h, a})
			}
			continue
		}
		settings = append(settings, setting{h, 0})
	}
	var out []robustnessCell
	for _, s := range settings {
		for _, f := range o.fs {
			attacks := []string{"none"}
			if f > 0 {
				attacks = robustAttacks(o.attacks)
			}
			for _, r := range o.rules {
				for _, a := range attacks {
					for k := 0; k < o.seeds; k++ {
						out = append(out, robustnessCell{s.h, s.a, f, r, a, o.seed + uint64(k)})
					}
				}
			}
		}
	}
	return out
}

func (o *robustnessOptions) key(c robustnessCell, setup string) string {
	return fmt.Sprintf("%s|%s|%s|%g|%d|%d|%s|%s|%d|%s", o.dataset, o.model, c.hetero, c.alpha, o.honest, c.f, c.rule, c.attack, c.seed, o.cellSetup(setup, c.rule))
}

func recordKey(r robustnessRecord) string {
	rule := r.Rule
	if r.Pre != "" {
		rule = r.Pre + "+" + r.Rule
	}
	return fmt.Sprintf("%s|%s|%s|%g|%d|%d|%s|%s|%d|%s", r.Dataset, r.Model, r.Heterogeneity, r.Alpha, r.Honest, r.F, rule, r.Attack, r.Seed, r.Setup)
}

// splitPipeline returns the pre-steps ("nnm+clipping") and the final rule.
func splitPipeline(spec string) (pre, rule string) {
	i := strings.LastIndex(spec, "+")
	if i < 0 {
		return "", spec
	}
	return spec[:i], spec[i+1:]
}

func runBenchRobustness(env *cmdEnv, o *robustnessOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	setup := o.setup()
	done := map[string]robustnessRecord{}
	var resultsFile *os.File
	if o.results != "" {
		prev, err := readRobustnessResults(o.results)
		if err != nil {
			return err
		}
		for _, r := range prev {
			done[recordKey(r)] = r
		}
		if resultsFile, err = os.OpenFile(o.results, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			return err
		}
		defer resultsFile.Close()
	}
	cells := o.cells()
	var todo []robustnessCell
	for _, c := range cells {
		if _, ok := done[o.key(c, setup)]; !ok {
			todo = append(todo, c)
		}
	}
	fmt.Fprintf(env.stderr, "bench robustness: %d cells, %d already in %s, %d to run\n",
		len(cells), len(cells)-len(todo), orDash(o.results), len(todo))

	var data *robustData
	if len(todo) > 0 {
		var err error
		if data, err = loadRobustData(env.ctx, o); err != nil {
			return err
		}
	}
	progress, bar := newRobustProgress(env.stderr, len(todo))
	var interrupted error
	for _, c := range todo {
		if err := env.ctx.Err(); err != nil {
			interrupted = err
			break
		}
		rec, err := runRobustCell(env.ctx, o, data, c, setup)
		if err != nil {
			if env.ctx.Err() != nil {
				interrupted = env.ctx.Err()
				break
			}
			return err
		}
		done[o.key(c, setup)] = rec
		if resultsFile != nil {
			line, _ := json.Marshal(rec)
			if _, err := resultsFile.Write(append(line, '\n')); err != nil {
				return fmt.Errorf("--results %s: %w", o.results, err)
			}
		}
		if bar != nil {
			bar.Increment()
		}
	}
	if progress != nil {
		if interrupted != nil {
			bar.Abort(false)
		}
		progress.Wait()
	}
	var recs []robustnessRecord
	for _, c := range cells {
		if r, ok := done[o.key(c, setup)]; ok {
			recs = append(recs, r)
		}
	}
	if err := writeRobustTable(env.stdout, o, recs); err != nil {
		return err
	}
	if o.jsonPath != "" {
		if err := writeRobustJSON(o.jsonPath, recs); err != nil {
			return err
		}
	}
	if o.pngPath != "" {
		if err := writeRobustPNG(o.pngPath, o, recs); err != nil {
			return err
		}
	}
	if interrupted != nil {
		return fmt.Errorf("interrupted after %d of %d cells (%v); finished cells are kept%s",
			len(recs), len(cells), interrupted, resumeHint(o.results))
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func resumeHint(results string) string {
	if results == "" {
		return " only in this output (use --results FILE to resume)"
	}
	return "; rerun with --results " + results + " to resume"
}

func newRobustProgress(w io.Writer, total int) (*mpb.Progress, *mpb.Bar) {
	f, ok := w.(*os.File)
	if !ok || total == 0 || !term.IsTerminal(int(f.Fd())) {
		return nil, nil
	}
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
	bar := p.AddBar(int64(total),
		mpb.PrependDecorators(decor.Name("cells "), decor.CountersNoUnit("%d/%d")),
		mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Name(" eta "), decor.AverageETA(decor.ET_STYLE_GO)),
	)
	return p, bar
}

// readRobustnessResults reads a --results file; a missing file is empty.
// A truncated last line (the process died mid-write) is ignored.
func readRobustnessResults(path string) ([]robustnessRecord, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []robustnessRecord
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
		var r robustnessRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			pending = fmt.Errorf("--results %s: line %d: %v", path, line, err)
			continue
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--results %s: %w", path, err)
	}
	return out, nil
}

// robustData holds the standardised splits shared by every cell.
type robustData struct {
	train, test *learn.Dataset
}

func loadRobustData(ctx context.Context, o *robustnessOptions) (*robustData, error) {
	var train, test *learn.Dataset
	var err error
	switch o.dataset {
	case "mnist":
		dir := o.dataDir
		if dir == "" {
			if dir, err = learn.MNISTDir(ctx); err != nil {
				return nil, err
			}
		}
		train, test, err = learn.LoadMNIST(dir)
	case "fashion":
		dir := o.dataDir
		if dir == "" {
			dir = learn.FashionMNISTDir
		}
		train, test, err = learn.LoadFashionMNIST(dir)
		if errors.Is(err, learn.ErrNotInstalled) {
			return nil, fmt.Errorf("--dataset fashion: %w (install Debian's dataset-fashion-mnist or pass --data-dir)", err)
		}
	case "mfn":
		// A fixed data seed: every cell and seed shares the same samples.
		train, test, err = learn.MFNRegimeTask(ctx, learn.RegimeTaskConfig{}, o.mfnPerRegime, rand.New(rand.NewPCG(0, 0x6d666e)))
	}
	if err != nil {
		return nil, err
	}
	if o.trainSize > 0 && o.trainSize < train.Len() {
		// A fixed subset (seed 0), the same for every cell and seed.
		perm := rand.New(rand.NewPCG(0, 0x7a1)).Perm(train.Len())
		train = train.Subset(perm[:o.trainSize])
	}
	if o.testSize > 0 && o.testSize < test.Len() {
		test = test.Subset(seqInts(o.testSize))
	}
	if train.Len() < o.honest {
		return nil, usagef("--train-size %d: fewer samples than --honest %d clients", train.Len(), o.honest)
	}
	learn.Standardize(train, test)
	return &robustData{train: train, test: test}, nil
}

func seqInts(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// runRobustCell runs one federation. Rule or attack failures (a rule's
// requirement not met for this f, ...) are recorded in the cell, not
// returned; only cancellation and setup bugs are errors.
func runRobustCell(ctx context.Context, o *robustnessOptions, data *robustData, c robustnessCell, setup string) (robustnessRecord, error) {
	pre, ruleName := splitPipeline(c.rule)
	rec := robustnessRecord{
		Dataset: o.dataset, Model: o.model, Heterogeneity: c.hetero, Alpha: c.alpha,
		Honest: o.honest, F: c.f, Rule: ruleName, Pre: pre, Attack: c.attack, Seed: c.seed, Setup: o.cellSetup(setup, c.rule),
	}
	start := time.Now()
	fail := func(err error) (robustnessRecord, error) {
		rec.Error = err.Error()
		rec.Accuracy = math.NaN()
		rec.Seconds = time.Since(start).Seconds()
		return rec, nil
	}
	rng := rand.New(rand.NewPCG(c.seed, 0xda7a))
	var parts [][]int
	var err error
	switch c.hetero {
	case "iid":
		parts, err = learn.PartitionIID(data.train.Len(), o.honest, rng)
	case "dirichlet":
		parts, err = learn.PartitionDirichlet(data.train.Y, data.train.Classes, o.honest, c.alpha, 1, rng)
	case "extreme":
		parts, err = learn.PartitionExtreme(data.train.Y, data.train.Classes, o.honest, o.extremeLabels, rng)
	}
	if err != nil {
		return fail(err)
	}
	clients := make([]*learn.Dataset, len(parts))
	for i, p := range parts {
		clients[i] = data.train.Subset(p)
	}
	rule, err := newRobustRule(o, c.rule, c.f, c.seed)
	if err != nil {
		return fail(err)
	}
	fed := learn.Federation{
		Config: learn.FederationConfig{
			Arch:   learn.Arch{Kind: o.model, Dim: data.train.Dim, Hidden: o.hidden, Classes: data.train.Classes},
			Rounds: o.rounds,
			Local:  learn.LocalConfig{Steps: o.localSteps, Epochs: o.localEpochs, Batch: o.batch},
			LR:     o.lr, Momentum: o.momentum, WeightDecay: o.wd,
			Workers: o.workers,
			Seed:    c.seed,
		},
		Clients: clients, Test: data.test, Rule: rule, Byzantine: c.f,
	}
	if c.f > 0 {
		att, flip, err := newRobustAttack(c.attack)
		if err != nil {
			return fail(err)
		}
		fed.Attack, fed.FlipLabels = att, flip
		if flip {
			classes := data.train.Classes
			fed.FlipLabel = func(y int) int { return aggregate.FlipLabel(y, classes) }
		}
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

// MarshalJSON writes a failed cell's accuracy as null (JSON has no NaN).
func (r robustnessRecord) MarshalJSON() ([]byte, error) {
	type plain robustnessRecord
	type withNull struct {
		plain
		Accuracy *float64 `json:"accuracy"`
	}
	w := withNull{plain: plain(r)}
	if !math.IsNaN(r.Accuracy) {
		w.Accuracy = &r.Accuracy
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads null accuracy back as NaN.
func (r *robustnessRecord) UnmarshalJSON(b []byte) error {
	type plain robustnessRecord
	var w struct {
		plain
		Accuracy *float64 `json:"accuracy"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = robustnessRecord(w.plain)
	r.Accuracy = math.NaN()
	if w.Accuracy != nil {
		r.Accuracy = *w.Accuracy
	}
	return nil
}

func writeRobustJSON(path string, recs []robustnessRecord) error {
	out := []jsonCell{}
	for _, r := range recs {
		if r.Error != "" {
			continue
		}
		out = append(out, jsonCell{r.Dataset, r.Model, r.Heterogeneity, r.Alpha, r.Honest, r.F, r.Rule, r.Pre, r.Attack, r.Seed, r.Accuracy})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	// Written even after Ctrl-C (the finished cells are kept), so the write
	// itself is not tied to the command's context; it is still atomic.
	err = writeAtomically(context.Background(), path, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	return nil
}

// robustGroup is one setting (dataset, model, heterogeneity, α) of the
// summary: per (f, rule, attack) the mean accuracy over seeds.
type robustGroup struct {
	title string
	fs    []int
	rules []string
	// acc[f][rule][attack] = accuracies over seeds (NaN for failed cells)
	acc map[int]map[string]map[string][]float64
}

func groupRobust(o *robustnessOptions, recs []robustnessRecord) []*robustGroup {
	var groups []*robustGroup
	byTitle := map[string]*robustGroup{}
	for _, r := range recs {
		title := fmt.Sprintf("%s %s %s", r.Dataset, r.Model, r.Heterogeneity)
		if r.Heterogeneity == "dirichlet" {
			title += fmt.Sprintf(" α=%g", r.Alpha)
		}
		title += fmt.Sprintf(", %d honest", r.Honest)
		g := byTitle[title]
		if g == nil {
			g = &robustGroup{title: title, acc: map[int]map[string]map[string][]float64{}}
			byTitle[title] = g
			groups = append(groups, g)
		}
		rule := r.Rule
		if r.Pre != "" {
			rule = r.Pre + "+" + r.Rule
		}
		if !slices.Contains(g.fs, r.F) {
			g.fs = append(g.fs, r.F)
		}
		if !slices.Contains(g.rules, rule) {
			g.rules = append(g.rules, rule)
		}
		if g.acc[r.F] == nil {
			g.acc[r.F] = map[string]map[string][]float64{}
		}
		if g.acc[r.F][rule] == nil {
			g.acc[r.F][rule] = map[string][]float64{}
		}
		g.acc[r.F][rule][r.Attack] = append(g.acc[r.F][rule][r.Attack], r.Accuracy)
	}
	for _, g := range groups {
		slices.Sort(g.fs)
	}
	return groups
}

// mean returns the mean of xs, NaN if any is NaN or xs is empty.
func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// worst returns, for (f, rule), the minimum over attacks of the mean
// accuracy over seeds; NaN when any attack's cell failed (the rule cannot
// run there) or nothing was run.
func (g *robustGroup) worst(f int, rule string) float64 {
	m := g.acc[f][rule]
	if len(m) == 0 {
		return math.NaN()
	}
	w := math.Inf(1)
	for _, xs := range m {
		v := mean(xs)
		if math.IsNaN(v) {
			return math.NaN()
		}
		w = min(w, v)
	}
	return w
}

func fmtAcc(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", v)
}

func writeRobustTable(w io.Writer, o *robustnessOptions, recs []robustnessRecord) error {
	groups := groupRobust(o, recs)
	attacks := robustAttacks(o.attacks)
	for gi, g := range groups {
		if gi > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "# %s (final test accuracy, mean over seeds; n/a: rule requirement not met or run failed)\n", g.title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "f\trule\tnone\t")
		for _, a := range attacks {
			fmt.Fprintf(tw, "%s\t", a)
		}
		fmt.Fprint(tw, "worst\t\n")
		for _, f := range g.fs {
			for _, rule := range g.rules {
				m := g.acc[f][rule]
				if m == nil {
					continue
				}
				fmt.Fprintf(tw, "%d\t%s\t", f, rule)
				for _, a := range append([]string{"none"}, attacks...) {
					if xs, ok := m[a]; ok {
						fmt.Fprintf(tw, "%s\t", fmtAcc(mean(xs)))
					} else {
						fmt.Fprint(tw, "-\t")
					}
				}
				fmt.Fprintf(tw, "%s\t\n", fmtAcc(g.worst(f, rule)))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// heatGrid adapts one group's worst-case matrix to plotter.GridXYZ:
// columns are f values, rows rules (first rule on top).
type heatGrid struct {
	g *robustGroup
}

func (h heatGrid) Dims() (c, r int) { return len(h.g.fs), len(h.g.rules) }
func (h heatGrid) Z(c, r int) float64 {
	return h.g.worst(h.g.fs[c], h.g.rules[len(h.g.rules)-1-r])
}
func (h heatGrid) X(c int) float64 { return float64(c) }
func (h heatGrid) Y(r int) float64 { return float64(r) }
func (h heatGrid) Min() float64    { return 0 }
func (h heatGrid) Max() float64    { return 1 }

func writeRobustPNG(path string, o *robustnessOptions, recs []robustnessRecord) error {
	groups := groupRobust(o, recs)
	if len(groups) == 0 {
		return fmt.Errorf("--png %s: no finished cells to draw", path)
	}
	cmap := moreland.SmoothBlueRed()
	cmap.SetMin(0)
	cmap.SetMax(1)
	pal := cmap.Palette(64)
	// Reverse so that high accuracy is blue and collapse is red.
	cols := slices.Clone(pal.Colors())
	slices.Reverse(cols)
	rev := paletteColors(cols)
	var plots [][]*plot.Plot
	maxRules := 0
	for _, g := range groups {
		p := plot.New()
		p.Title.Text = "worst case over attacks: " + g.title
		p.X.Label.Text = "Byzantine clients f"
		hm := plotter.NewHeatMap(heatGrid{g}, rev)
		hm.NaN = color.Gray{Y: 200}
		p.Add(hm)
		var xy plotter.XYLabels
		for c := range g.fs {
			for r := range g.rules {
				xy.XYs = append(xy.XYs, plotter.XY{X: float64(c), Y: float64(r)})
				xy.Labels = append(xy.Labels, fmtAcc(heatGrid{g}.Z(c, r)))
			}
		}
		labels, err := plotter.NewLabels(xy)
		if err != nil {
			return err
		}
		for i := range labels.TextStyle {
			labels.TextStyle[i].XAlign = draw.XCenter
			labels.TextStyle[i].YAlign = draw.YCenter
		}
		p.Add(labels)
		var xt, yt []plot.Tick
		for c, f := range g.fs {
			xt = append(xt, plot.Tick{Value: float64(c), Label: strconv.Itoa(f)})
		}
		for r := range g.rules {
			yt = append(yt, plot.Tick{Value: float64(r), Label: g.rules[len(g.rules)-1-r]})
		}
		p.X.Tick.Marker = plot.ConstantTicks(xt)
		p.Y.Tick.Marker = plot.ConstantTicks(yt)
		p.X.Min, p.X.Max = -0.5, float64(len(g.fs))-0.5
		p.Y.Min, p.Y.Max = -0.5, float64(len(g.rules))-0.5
		plots = append(plots, []*plot.Plot{p})
		maxRules = max(maxRules, len(g.rules))
	}
	width := vg.Length(260 + 70*maxLen(groups))
	height := vg.Length(len(groups)) * vg.Length(90+28*maxRules)
	img := vgimg.New(width, height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadTop: 4, PadBottom: 4, PadLeft: 12, PadRight: 8, PadX: 4, PadY: 12}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	err := writeAtomically(context.Background(), path, func(w io.Writer) error {
		_, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("--png %s: %w", path, err)
	}
	return nil
}

func maxLen(groups []*robustGroup) int {
	m := 0
	for _, g := range groups {
		m = max(m, len(g.fs))
	}
	return m
}

// paletteColors is a palette.Palette over a fixed colour list.
type paletteColors []color.Color

func (p paletteColors) Colors() []color.Color { return p }

// newRobustRule builds the pipeline spec for f Byzantine clients; seed
// feeds the randomised steps (bucketing, hierarchical Krum).
func newRobustRule(o *robustnessOptions, spec string, f int, seed uint64) (aggregate.Rule, error) {
	p := aggregate.Params{F: f, Seed: seed, ClipNorm: o.clipNorm, Tau: o.ccTau, BucketSize: o.bucketSize}
	// Params.Iters is read by both centered-clipping (L) and
	// geometric-median (Weiszfeld iterations): set it for the final rule.
	_, rule := splitPipeline(spec)
	switch strings.TrimSpace(rule) {
	case "centered-clipping":
		p.Iters = o.ccIters
	case "geometric-median":
		p.Iters = o.gmIters
	}
	return aggregate.ParsePipeline(spec, p)
}

// newRobustAttack builds an attack from "name[:key=value]..."; flip is true
// for the data-level label flip, which the federation carries out itself.
func newRobustAttack(spec string) (att aggregate.Attack, flip bool, err error) {
	name, params, err := parseAttackSpec(spec)
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

// parseAttackSpec splits "name:key=value:..." into the name and its
// aggregate.AttackParams (keys sigma, eps, z, max-scale, mimic-index).
func parseAttackSpec(spec string) (string, aggregate.AttackParams, error) {
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
