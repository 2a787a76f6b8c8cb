package experiment

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/learn"
)

// Config is one robustness experiment: the data, the model, the grid of
// settings × f × rules × attacks × seeds, and the training
// hyper-parameters shared by every cell. DefaultConfig gives the full
// protocol's values; Validate names the first bad field.
type Config struct {
	// Dataset is "mnist", "fashion" (Debian's dataset-fashion-mnist),
	// "mfn" (the MFN regime task) or "file" (Data).
	Dataset string
	// Data is a site-style data file or folder (any format package
	// sitedata reads) for Dataset "file": its rows are split into train
	// and test by TestFraction with a fixed seed, the same for every cell.
	Data string
	// LabelColumn names Data's label column; empty means "label".
	LabelColumn string
	// Classes is Data's class list (labels are mapped by it); empty means
	// integer labels 0..K−1.
	Classes []string
	// TestFraction is the share of Data held out for testing; zero means
	// 0.2.
	TestFraction float64
	// Model is "softmax", "mlp" (one hidden layer of Hidden units) or any
	// learn.ParseArch spec ("mlp:128,64", "cnn:mnist").
	Model string
	// Heterogeneity lists the client data distributions: "iid",
	// "dirichlet" (one setting per Alphas value) and "extreme".
	Heterogeneity []string
	Alphas        []float64
	// ExtremeLabels is the number of labels per client (1 or 2) in the
	// extreme setting.
	ExtremeLabels int
	// Honest is the number of honest clients.
	Honest int
	// Fs lists the Byzantine client counts.
	Fs []int
	// Rules are aggregation pipelines "[pre+...+]rule" in aggregate's
	// names; Attacks are "name[:key=value]..." (see ParseAttackSpec).
	Rules, Attacks []string
	// Rounds per federation; Seeds cells per combination, with seeds
	// Seed, Seed+1, ...
	Rounds, Seeds int
	Seed          uint64
	// LR, Momentum and WeightDecay configure every client's SGD.
	LR, Momentum, WeightDecay float64
	// Batch is the minibatch size; LocalSteps the steps per round (zero
	// means LocalEpochs epochs).
	Batch, LocalSteps, LocalEpochs int
	// Hidden is the MLP's hidden width.
	Hidden int
	// TrainSize and TestSize cut the data (a fixed random training subset,
	// the first test samples); zero means all.
	TrainSize, TestSize int
	// MFNPerRegime is the simulations per regime for Dataset "mfn".
	MFNPerRegime int
	// DataDir holds the IDX files; empty means the GoMNIST module for
	// mnist and learn.FashionMNISTDir for fashion.
	DataDir string
	// Reference also trains, for each seed, the same model on the pooled
	// training data with the budget of the Honest clients
	// (learn.CentralizedReference); Run reports the mean accuracy.
	Reference bool
	// Workers bounds the goroutines training clients; zero means
	// GOMAXPROCS. Results do not depend on it.
	Workers int
	// Parameters of individual pipeline steps.
	ClipNorm   float64 // static-clipping's bound C
	CCTau      float64 // centered-clipping's radius τ
	CCIters    int     // centered-clipping's iterations L
	GMIters    int     // geometric-median's Weiszfeld iterations
	BucketSize int     // bucketing's bucket size s
	// DP lists the privacy settings ("none", "central:EPS", "local:EPS",
	// see ParseDP); each is one more axis value of the grid. Empty means
	// no DP axis: every node takes part in every round, as before.
	DP []string
	// SampleRate is the per-round Poisson sampling rate q of the DP cells
	// (zero means 1); DPClip the clipping norm C; DPDelta the δ (zero
	// means 1e-5).
	SampleRate, DPClip, DPDelta float64
	// Optimizer is a server optimizer applied after the rule
	// ("fedadam:lr=0.01", serveropt.Parse); empty means none (the model
	// moves by the aggregate, plain FedAvg). Not combined with DP.
	Optimizer string
}

// DefaultConfig returns the full protocol: every rule and attack, three
// settings of heterogeneity, f = 0..4, 200 rounds, 3 seeds.
func DefaultConfig() Config {
	return Config{
		Dataset:       "mnist",
		Model:         "softmax",
		Heterogeneity: []string{"iid", "dirichlet", "extreme"},
		Alphas:        []float64{1, 0.5, 0.1},
		ExtremeLabels: 1,
		Honest:        10,
		Fs:            []int{0, 1, 2, 3, 4},
		Rules: []string{"fedavg", "krum", "multi-krum", "median", "trimmed-mean", "bulyan", "geometric-median",
			"centered-clipping", "hierarchical-krum", "nnm+trimmed-mean", "bucketing+krum", "nnm+static-clipping+trimmed-mean"},
		Attacks: []string{"sign-flip", "gaussian", "gaussian:sigma=200", "label-flip", "alie", "ipm:eps=0.1", "ipm:eps=0.5",
			"mimic", "opt-alie", "opt-ipm", "min-max", "min-sum", "inf", "nan"},
		Rounds:       200,
		Seeds:        3,
		Seed:         1,
		LR:           0.02,
		Momentum:     0.9,
		WeightDecay:  1e-4,
		Batch:        32,
		LocalSteps:   30,
		LocalEpochs:  1,
		Hidden:       64,
		MFNPerRegime: 300,
		ClipNorm:     2,
		CCTau:        1,
		CCIters:      1,
		GMIters:      8,
		BucketSize:   2,
		DPClip:       1,
	}
}

// ErrConfig is wrapped by every *ConfigError.
var ErrConfig = errors.New("experiment: invalid configuration")

// ConfigError reports an invalid Config field. Field is the field's flag
// name ("honest", "local-steps", ...); Detail says what is wrong, starting
// with the bad value, e.g. `0: want 1..1000`.
type ConfigError struct {
	Field  string
	Detail string
}

func (e *ConfigError) Error() string { return "experiment: " + e.Field + " " + e.Detail }

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

func bad(field, format string, args ...any) error {
	return &ConfigError{Field: field, Detail: fmt.Sprintf(format, args...)}
}

// Validate returns a *ConfigError for the first invalid field. Every rule
// and attack name is resolved, so that a typo fails before hours of work.
func (c Config) Validate() error {
	switch {
	case c.Dataset != "mnist" && c.Dataset != "fashion" && c.Dataset != "mfn" && c.Dataset != "file":
		return bad("dataset", "%q: want mnist, fashion, mfn or file", c.Dataset)
	case (c.Dataset == "file") != (c.Data != ""):
		return bad("data", "%q: a data file goes with dataset file, and dataset file needs one", c.Data)
	case !(c.TestFraction >= 0 && c.TestFraction < 1):
		return bad("test-fraction", "%v: want [0,1) (0 means 0.2)", c.TestFraction)
	case c.Model != "mlp" && !validSpec(c.Model):
		return bad("model", "%q: want softmax, mlp, mlp:H1,H2,... or cnn:mnist", c.Model)
	case c.Honest < 1 || c.Honest > 1000:
		return bad("honest", "%d: want 1..1000", c.Honest)
	case c.Rounds < 1 || c.Rounds > 100000:
		return bad("rounds", "%d: want 1..100000", c.Rounds)
	case c.Seeds < 1 || c.Seeds > 1000:
		return bad("seeds", "%d: want 1..1000", c.Seeds)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return bad("lr", "%v: want a positive number", c.LR)
	case !(c.Momentum >= 0 && c.Momentum < 1):
		return bad("momentum", "%v: want [0,1)", c.Momentum)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return bad("weight-decay", "%v: want ≥ 0", c.WeightDecay)
	case c.Batch < 1 || c.Batch > 100000:
		return bad("batch", "%d: want 1..100000", c.Batch)
	case c.LocalSteps < 0 || c.LocalSteps > 1000000:
		return bad("local-steps", "%d: want 0..1000000", c.LocalSteps)
	case c.LocalSteps == 0 && (c.LocalEpochs < 1 || c.LocalEpochs > 10000):
		return bad("local-epochs", "%d: want 1..10000 when --local-steps is 0", c.LocalEpochs)
	case c.Hidden < 1 || c.Hidden > 10000:
		return bad("hidden", "%d: want 1..10000", c.Hidden)
	case c.TrainSize < 0 || c.TestSize < 0:
		return bad("train-size", "and --test-size must be ≥ 0")
	case c.MFNPerRegime < 10 || c.MFNPerRegime > 100000:
		return bad("mfn-per-regime", "%d: want 10..100000", c.MFNPerRegime)
	case c.ExtremeLabels < 1 || c.ExtremeLabels > 2:
		return bad("extreme-labels", "%d: want 1 or 2", c.ExtremeLabels)
	case !(c.ClipNorm > 0) || math.IsInf(c.ClipNorm, 0):
		return bad("clip-norm", "%v: want a positive number", c.ClipNorm)
	case !(c.CCTau > 0) || math.IsInf(c.CCTau, 0):
		return bad("cc-tau", "%v: want a positive number", c.CCTau)
	case c.CCIters < 1 || c.CCIters > 100:
		return bad("cc-iters", "%d: want 1..100", c.CCIters)
	case c.GMIters < 1 || c.GMIters > 1000:
		return bad("gm-iters", "%d: want 1..1000", c.GMIters)
	case c.BucketSize < 1 || c.BucketSize > 1000:
		return bad("bucket-size", "%d: want 1..1000", c.BucketSize)
	case c.Workers < 0:
		return bad("workers", "%d: want ≥ 0", c.Workers)
	case len(c.Fs) == 0:
		return bad("f", "needs at least one value")
	case len(c.Rules) == 0:
		return bad("rules", "needs at least one value")
	case len(c.Heterogeneity) == 0:
		return bad("heterogeneity", "needs at least one value")
	}
	if err := c.validateDP(); err != nil {
		return err
	}
	if err := c.validateOptimizer(); err != nil {
		return err
	}
	for _, h := range c.Heterogeneity {
		if h != "iid" && h != "dirichlet" && h != "extreme" {
			return bad("heterogeneity", "%q: want iid, dirichlet or extreme", h)
		}
		if h == "dirichlet" && len(c.Alphas) == 0 {
			return bad("heterogeneity", "dirichlet needs at least one --alpha")
		}
	}
	for _, a := range c.Alphas {
		if !(a > 0) || math.IsInf(a, 0) {
			return bad("alpha", "%v: want a positive number", a)
		}
	}
	for _, f := range c.Fs {
		if f < 0 || f > 1000 {
			return bad("f", "%d: want 0..1000", f)
		}
	}
	if slices.ContainsFunc(c.Fs, func(f int) bool { return f > 0 }) && len(RealAttacks(c.Attacks)) == 0 {
		return bad("attacks", "has no attack other than none, but f > 0 needs one")
	}
	for _, r := range c.Rules {
		if _, err := c.NewRule(r, 1, 1); err != nil && !errors.Is(err, aggregate.ErrRequirement) {
			return bad("rules", "%q: %v", r, err)
		}
	}
	for _, a := range RealAttacks(c.Attacks) {
		if _, _, err := NewAttack(a); err != nil {
			return bad("attacks", "%q: %v", a, err)
		}
	}
	return nil
}

// validSpec reports whether spec parses as a model for some data; the
// input dimension is checked against the data when it is loaded.
func validSpec(spec string) bool {
	_, err := learn.ParseArch(spec, 784, 10)
	return err == nil
}

// Arch is the model of c for inputs of dim features and classes classes.
func (c Config) Arch(dim, classes int) (learn.Arch, error) {
	if c.Model == "mlp" {
		return learn.Arch{Kind: "mlp", Dim: dim, Hidden: c.Hidden, Classes: classes}, nil
	}
	return learn.ParseArch(c.Model, dim, classes)
}

// DatasetName is the data set as records and tables name it: Dataset, or
// "file:NAME" for a data file.
func (c Config) DatasetName() string {
	if c.Dataset == "file" {
		return "file:" + filepath.Base(c.Data)
	}
	return c.Dataset
}

func (c Config) testFraction() float64 {
	if c.TestFraction == 0 {
		return 0.2
	}
	return c.TestFraction
}

// RealAttacks drops "none" (which only runs with f = 0).
func RealAttacks(attacks []string) []string {
	var out []string
	for _, a := range attacks {
		if a != "none" {
			out = append(out, a)
		}
	}
	return out
}

// Setup fingerprints the training hyper-parameters a cell's result
// depends on beyond its key; CellSetup adds the rule's own parameters.
func (c Config) Setup() string {
	s := fmt.Sprintf("rounds=%d lr=%g mom=%g wd=%g batch=%d steps=%d epochs=%d train=%d test=%d",
		c.Rounds, c.LR, c.Momentum, c.WeightDecay, c.Batch, c.LocalSteps, c.LocalEpochs, c.TrainSize, c.TestSize)
	if c.Model == "mlp" {
		s += fmt.Sprintf(" hidden=%d", c.Hidden)
	}
	if slices.Contains(c.Heterogeneity, "extreme") {
		s += fmt.Sprintf(" extreme-labels=%d", c.ExtremeLabels)
	}
	if c.Dataset == "mfn" {
		s += fmt.Sprintf(" per-regime=%d", c.MFNPerRegime)
	}
	if len(c.DP) > 0 {
		s += c.dpSetup()
	}
	s += c.optimizerSetup()
	if c.Dataset == "file" {
		s += fmt.Sprintf(" label=%q classes=%q test-fraction=%g", c.LabelColumn, strings.Join(c.Classes, ","), c.testFraction())
	}
	return s
}

// CellSetup is setup plus the parameters of the steps in the pipeline
// spec, so that changing CCTau, say, only invalidates the
// centered-clipping cells of a results file.
func (c Config) CellSetup(setup, spec string) string {
	for _, part := range strings.Split(spec, "+") {
		switch strings.TrimSpace(part) {
		case "centered-clipping":
			setup += fmt.Sprintf(" tau=%g L=%d", c.CCTau, c.CCIters)
		case "geometric-median":
			setup += fmt.Sprintf(" gm-iters=%d", c.GMIters)
		case "static-clipping":
			setup += fmt.Sprintf(" clip=%g", c.ClipNorm)
		case "bucketing":
			setup += fmt.Sprintf(" s=%d", c.BucketSize)
		}
	}
	return setup
}

// Cell identifies one federation run.
type Cell struct {
	Heterogeneity string  // iid, dirichlet, extreme
	Alpha         float64 // dirichlet only
	F             int
	Rule          string // full pipeline spec
	Attack        string
	Seed          uint64
	// DP is the cell's DPSpec in canonical form; empty without a DP axis.
	DP string
}

// Cells lists every run in a stable order: setting, f, rule, DP setting,
// attack, seed.
// With f = 0 only the attack "none" runs.
func (c Config) Cells() []Cell {
	type setting struct {
		h string
		a float64
	}
	var settings []setting
	for _, h := range c.Heterogeneity {
		if h == "dirichlet" {
			for _, a := range c.Alphas {
				settings = append(settings, setting{h, a})
			}
			continue
		}
		settings = append(settings, setting{h, 0})
	}
	dps := []string{""}
	if len(c.DP) > 0 {
		dps = dps[:0]
		for _, d := range c.DP {
			if spec, err := ParseDP(d); err == nil {
				dps = append(dps, spec.String())
			}
		}
	}
	var out []Cell
	for _, s := range settings {
		for _, f := range c.Fs {
			attacks := []string{"none"}
			if f > 0 {
				attacks = RealAttacks(c.Attacks)
			}
			for _, r := range c.Rules {
				for _, dp := range dps {
					for _, a := range attacks {
						for k := 0; k < c.Seeds; k++ {
							out = append(out, Cell{s.h, s.a, f, r, a, c.Seed + uint64(k), dp})
						}
					}
				}
			}
		}
	}
	return out
}

// Key identifies cell under setup (Config.Setup); it equals RecordKey of
// the cell's Record.
func (c Config) Key(cell Cell, setup string) string {
	k := fmt.Sprintf("%s|%s|%s|%g|%d|%d|%s|%s|%d|%s", c.DatasetName(), c.Model, cell.Heterogeneity, cell.Alpha, c.Honest,
		cell.F, cell.Rule, cell.Attack, cell.Seed, c.CellSetup(setup, cell.Rule))
	if cell.DP != "" {
		k += "|dp=" + cell.DP
	}
	return k
}

// RecordKey is the Key of the cell r records.
func RecordKey(r Record) string {
	rule := r.Rule
	if r.Pre != "" {
		rule = r.Pre + "+" + r.Rule
	}
	k := fmt.Sprintf("%s|%s|%s|%g|%d|%d|%s|%s|%d|%s", r.Dataset, r.Model, r.Heterogeneity, r.Alpha, r.Honest, r.F, rule, r.Attack, r.Seed, r.Setup)
	if r.DP != nil {
		k += "|dp=" + r.DP.Spec
	}
	return k
}

// SplitPipeline returns the pre-steps ("nnm+clipping") and the final rule.
func SplitPipeline(spec string) (pre, rule string) {
	i := strings.LastIndex(spec, "+")
	if i < 0 {
		return "", spec
	}
	return spec[:i], spec[i+1:]
}
