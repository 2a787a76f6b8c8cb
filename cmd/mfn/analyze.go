package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/analyze"
	"github.com/mfn/mfn/internal/npy"
	"github.com/mfn/mfn/internal/viz"
)

func init() { registerCommand(newAnalyzeCmd) }

const analyzeLong = `analyze answers the questions of the exploration notebooks with figures
(PNG) and a JSON file of every number:

  mfn analyze features DATASET   distributions, correlations, PCA and
                                 permutation importance of a dataset
                                 written by "mfn dataset" (.csv or .parquet)
  mfn analyze fractal FIELD.npy  box counting step by step, the log–log fit,
                                 D against the threshold and D over time, of
                                 a field or history written by "mfn sim --out"

docs/EXPLORE.md walks through both with their figures.`

func newAnalyzeCmd(env *cmdEnv) *cobra.Command {
	c := &cobra.Command{
		Use:     "analyze features|fractal",
		Short:   "Explore a dataset's features or a field's fractal dimension (PNG figures + JSON)",
		Long:    analyzeLong,
		Example: "  mfn analyze features data.csv --color-by boundary --label quantum_jitter --out figs\n  mfn analyze fractal run.npy --threshold -55 --out figs --json fractal.json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("analyze needs a subcommand: features or fractal (see mfn analyze --help)")
		},
	}
	c.AddCommand(newAnalyzeFeaturesCmd(env), newAnalyzeFractalCmd(env))
	return c
}

// analyzeOutputs writes figures and the JSON file of one analysis.
type analyzeOutputs struct {
	ctx      context.Context
	dir      string // --out
	jsonPath string // --json; "-" is standard output
	stdout   io.Writer
	written  []string
}

// prepare creates the output folder.
func (o *analyzeOutputs) prepare() error {
	if o.dir == "" {
		return usagef("--out must name a folder for the figures")
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return usagef("--out %s: %v", o.dir, err)
	}
	return nil
}

// figure renders one PNG into the output folder, atomically.
func (o *analyzeOutputs) figure(name string, draw func(io.Writer) error) error {
	path := filepath.Join(o.dir, name)
	if err := writeAtomically(o.ctx, path, draw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	o.written = append(o.written, path)
	fmt.Fprintf(o.stdout, "wrote %s\n", path)
	return nil
}

// json writes v as indented JSON to --json (atomically) or standard output.
func (o *analyzeOutputs) json(v any) error {
	if o.jsonPath == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if o.jsonPath == "-" {
		_, err := o.stdout.Write(b)
		return err
	}
	if err := writeAtomically(o.ctx, o.jsonPath, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return err
	}
	fmt.Fprintf(o.stdout, "wrote %s\n", o.jsonPath)
	return nil
}

const analyzeFeaturesLong = `analyze features reads a dataset written by "mfn dataset" (.csv or
.parquet; any table with a header and numeric feature columns works) and
writes into --out:

  features_histograms.png   one histogram per feature
  features_correlation.png  the Pearson correlation matrix as a heat map
  features_pca.png          the rows on the first two principal components
                            of the standardised features, coloured by
                            --color-by (a column of the table)
  features_importance.png   with --label: permutation importance, the
                            held-out accuracy lost when one feature is
                            shuffled, for a model of package learn
                            (--model softmax or mlp) trained to predict the
                            label column (a bool or text column's values, a
                            numeric column's values if at most --bins
                            distinct, else its --bins quantile classes)

--json PATH (or - for standard output) writes every number: per-feature
count, mean, sample std, min, median, max; the correlation matrix (null
where a feature is constant); the PCA's variances, explained-variance
ratios and components; the importances with the model's accuracy.

The features are the 18 MFN features present in the table, or --features.
Constant features (all cluster features of a quiet run) are reported as
such, shown as grey in the heat map and left out of the PCA. Training is
seeded by --seed: the same file and flags give the same numbers.
Limits: the file at most 256 MiB, 1,000,000 rows, 256 columns; the
importance model uses at most 20,000 rows (a seeded subsample).`

func newAnalyzeFeaturesCmd(env *cmdEnv) *cobra.Command {
	var (
		out, jsonPath, colorBy, label, model, features string
		epochs, repeats, bins, hidden, histBins        int
		testFraction, lr                               float64
		seed                                           uint64
	)
	c := &cobra.Command{
		Use:   "features DATASET",
		Short: "Histograms, correlations, PCA and permutation importance of a dataset",
		Long:  analyzeFeaturesLong,
		Example: `  mfn dataset --samples 200 --alpha 0.05:0.24 --jitter true,false --out data.csv
  mfn analyze features data.csv --color-by quantum_jitter --label alpha --out figs --json features.json`,
		Args: cobra.ExactArgs(1),
	}
	fs := c.Flags()
	fs.StringVar(&out, "out", ".", "folder for the PNG figures (created if missing)")
	fs.StringVar(&jsonPath, "json", "", "write every number as JSON to this file (- for standard output)")
	fs.StringVar(&features, "features", "", "comma-separated feature columns (default: the 18 MFN features in the table)")
	fs.StringVar(&colorBy, "color-by", "", "column that colours the PCA scatter (e.g. boundary, quantum_jitter, alpha)")
	fs.StringVar(&label, "label", "", "column the importance model predicts; empty skips the importance")
	fs.StringVar(&model, "model", "softmax", "importance model: softmax or mlp")
	fs.IntVar(&hidden, "hidden", 32, "mlp hidden units, in [1, 1024]")
	fs.IntVar(&epochs, "epochs", 100, "training epochs of the importance model, in [1, 10000]")
	fs.Float64Var(&lr, "lr", 0.1, "SGD learning rate (momentum 0.9), in (0, 10]")
	fs.IntVar(&repeats, "repeats", 5, "permutations per feature, in [1, 100]")
	fs.IntVar(&bins, "bins", 3, "classes of a continuous label (quantiles), in [2, 50]")
	fs.Float64Var(&testFraction, "test-fraction", 0.3, "share of rows held out to measure accuracy, in (0, 1)")
	fs.Uint64Var(&seed, "seed", 1, "seed of the split, the model and the permutations")
	fs.IntVar(&histBins, "hist-bins", 20, "bins of each histogram, in [1, 200]")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		// Zero means "default" in analyze.ImportanceConfig; on the command
		// line it is out of range.
		for _, f := range []struct {
			name string
			v    float64
			rng  string
		}{{"hidden", float64(hidden), "[1, 1024]"}, {"epochs", float64(epochs), "[1, 10000]"}, {"lr", lr, "(0, 10]"},
			{"repeats", float64(repeats), "[1, 100]"}, {"bins", float64(bins), "[2, 50]"}, {"test-fraction", testFraction, "(0, 1)"}} {
			if !(f.v > 0) {
				return usagef("--%s %v must be in %s", f.name, f.v, f.rng)
			}
		}
		icfg := analyze.ImportanceConfig{Model: model, Hidden: hidden, Epochs: epochs, LR: lr, Repeats: repeats,
			TestFraction: testFraction, Bins: bins, Seed: seed}
		if err := importanceFlagError(icfg.Validate()); err != nil {
			return err
		}
		if histBins < 1 || histBins > 200 {
			return usagef("--hist-bins %d: must be in [1, 200]", histBins)
		}
		cfg := analyze.FeatureConfig{ColorBy: colorBy, Label: label, Importance: icfg}
		if features != "" {
			for _, f := range strings.Split(features, ",") {
				cfg.Features = append(cfg.Features, strings.TrimSpace(f))
			}
		}
		path := args[0]
		t, err := analyze.ReadTableFile(path, analyze.Limits{})
		if err != nil {
			return datasetError(path, err)
		}
		rep, err := analyze.AnalyzeFeatures(env.ctx, t, cfg)
		if err != nil {
			return featureError(path, err)
		}
		o := &analyzeOutputs{ctx: env.ctx, dir: out, jsonPath: jsonPath, stdout: env.stdout}
		if err := o.prepare(); err != nil {
			return err
		}
		figs := []struct {
			name string
			draw func(io.Writer) error
		}{
			{"features_histograms.png", func(w io.Writer) error { return viz.FeatureHistograms(w, t, rep, histBins, viz.FigureOptions{}) }},
			{"features_correlation.png", func(w io.Writer) error { return viz.CorrelationHeatmap(w, rep, viz.FigureOptions{}) }},
			{"features_pca.png", func(w io.Writer) error { return viz.PCAScatter(w, t, rep, colorBy, viz.FigureOptions{}) }},
		}
		if rep.Importance != nil {
			figs = append(figs, struct {
				name string
				draw func(io.Writer) error
			}{"features_importance.png", func(w io.Writer) error { return viz.ImportanceChart(w, rep.Importance, viz.FigureOptions{}) }})
		}
		for _, f := range figs {
			if err := o.figure(f.name, f.draw); err != nil {
				return err
			}
		}
		printFeatureSummary(o.stdout, path, rep)
		return o.json(struct {
			Input   string   `json:"input"`
			Figures []string `json:"figures"`
			*analyze.FeatureReport
		}{path, o.written, rep})
	}
	return c
}

// printFeatureSummary prints the headline numbers of a feature analysis.
func printFeatureSummary(w io.Writer, path string, r *analyze.FeatureReport) {
	constant := 0
	for _, s := range r.Stats {
		if s.Constant {
			constant++
		}
	}
	fmt.Fprintf(w, "%s: %d rows, %d features (%d constant)\n", path, r.Rows, len(r.Features), constant)
	if p := r.PCA; len(p.Explained) > 0 {
		two := p.Explained[0]
		if len(p.Explained) > 1 {
			two += p.Explained[1]
		}
		fmt.Fprintf(w, "PCA: PC1 explains %.1f%%, PC1+PC2 %.1f%% of the variance of %d features\n", 100*p.Explained[0], 100*two, len(p.Columns))
	}
	if imp := r.Importance; imp != nil {
		fmt.Fprintf(w, "importance for %s (%s): test accuracy %.3f (chance %.3f)\n", imp.Label, imp.Model, imp.Baseline, imp.Chance)
		for _, f := range imp.Features[:min(5, len(imp.Features))] {
			fmt.Fprintf(w, "  %-18s accuracy drop %.3f ± %.3f\n", f.Feature, f.Drop, f.Std)
		}
	}
}

// importanceFlagError maps an ImportanceConfig error to its flag.
func importanceFlagError(err error) error {
	if err == nil {
		return nil
	}
	flags := map[string]string{"Model": "--model", "Hidden": "--hidden", "Epochs": "--epochs", "LR": "--lr",
		"Repeats": "--repeats", "TestFraction": "--test-fraction", "Bins": "--bins"}
	msg := strings.TrimPrefix(err.Error(), analyze.ErrImportanceConfig.Error()+": ")
	for field, flag := range flags {
		if rest, ok := strings.CutPrefix(msg, field+" "); ok {
			return usagef("%s %s", flag, rest)
		}
	}
	return asUsage(err)
}

// datasetError reports a dataset that cannot be read: a missing or
// malformed file is the user's input (exit 2).
func datasetError(path string, err error) error {
	if errors.Is(err, analyze.ErrTable) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		return usagef("DATASET %s: %v", path, err)
	}
	return fmt.Errorf("DATASET %s: %w", path, err)
}

// featureError names the flag behind an analysis error.
func featureError(path string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, analyze.ErrNoColumn) || errors.Is(err, analyze.ErrTooFew):
		return usagef("%s: %s (check --features, --color-by and --label)", path, msg)
	case errors.Is(err, analyze.ErrImportanceConfig):
		return importanceFlagError(err)
	}
	return err
}

const analyzeFractalLong = `analyze fractal reads a field (N×N) or a history (T×N×N) in volts from a
.npy file, as written by "mfn sim --out" (with --history for the whole run),
and shows how its box-counting dimension D arises. Into --out it writes:

  fractal_boxes.png      the field, then the binary pattern V > --threshold
                         at each box size s: the grid of s×s boxes, the
                         occupied ones tinted, the count in each title
  fractal_fit.png        ln(count) against ln(1/s), the least-squares line;
                         its slope is D, with the fit's R²
  fractal_threshold.png  D, R² and the active fraction against the
                         threshold (--sweep)
  fractal_time.png       for a history: D, R² and the active fraction at
                         every step

The last frame is the one analysed (as the D_box feature does).
--threshold is in mV (default −60, the feature's); --scales lists the box
edges in cells (default: the feature's sizes for the grid, [2 4 7 16 32]
for N ≥ 64, taken from the reference implementation). With both at their
defaults D and R² equal the D_box and D_r2 features exactly.
--sweep takes a list of thresholds (a,b,c) or a range lo:hi:step in mV.
--json PATH (or - for standard output) writes every number.`

func newAnalyzeFractalCmd(env *cmdEnv) *cobra.Command {
	var (
		out, jsonPath, scales, sweep string
		threshold                    float64
	)
	c := &cobra.Command{
		Use:   "fractal FIELD.npy",
		Short: "Box counting step by step, the log–log fit, D against threshold and over time",
		Long:  analyzeFractalLong,
		Example: `  mfn sim --grid-size 64 --steps 60 --spike-probability 0.9 --jitter --history --out run.npy
  mfn analyze fractal run.npy --out figs --json fractal.json
  mfn analyze fractal run.npy --threshold -50 --scales 1,2,4,8,16 --sweep -80:0:2 --out figs`,
		Args: cobra.ExactArgs(1),
	}
	fs := c.Flags()
	fs.StringVar(&out, "out", ".", "folder for the PNG figures (created if missing)")
	fs.StringVar(&jsonPath, "json", "", "write every number as JSON to this file (- for standard output)")
	fs.Float64Var(&threshold, "threshold", analyze.DefaultThresholdMV, "activity threshold in mV: a cell is active when V is above it; in [-1000, 1000]")
	fs.StringVar(&scales, "scales", "", "box edges in cells, increasing, e.g. 1,2,4,8,16 (default: the D_box feature's sizes)")
	fs.StringVar(&sweep, "sweep", "-90:30:5", "thresholds of the sweep in mV: a list a,b,c or a range lo:hi:step")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if math.IsNaN(threshold) || threshold < -1000 || threshold > 1000 {
			return usagef("--threshold %v: must be in [-1000, 1000] mV", threshold)
		}
		sizes, err := parseScales(scales)
		if err != nil {
			return err
		}
		sweepMV, err := parseSweep(sweep)
		if err != nil {
			return err
		}
		path := args[0]
		h, shape, err := readAnalyzeField(path)
		if err != nil {
			return err
		}
		for _, s := range sizes {
			if s > h.N {
				return usagef("--scales %d: a box edge must be at most the grid side %d of %s", s, h.N, path)
			}
		}
		cfg := analyze.FractalConfig{ThresholdMV: threshold, Sizes: sizes}
		rep, err := analyze.Fractal(env.ctx, h.V, shape, h.T, h.N, cfg, sweepMV)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		o := &analyzeOutputs{ctx: env.ctx, dir: out, jsonPath: jsonPath, stdout: env.stdout}
		if err := o.prepare(); err != nil {
			return err
		}
		last := h.Frame(h.T - 1)
		if err := o.figure("fractal_boxes.png", func(w io.Writer) error {
			return viz.BoxCounting(w, last, h.N, rep.Fit, viz.FigureOptions{})
		}); err != nil {
			return err
		}
		if err := o.figure("fractal_fit.png", func(w io.Writer) error { return viz.BoxFitPlot(w, rep.Fit, viz.FigureOptions{}) }); err != nil {
			return err
		}
		if err := o.figure("fractal_threshold.png", func(w io.Writer) error {
			return viz.ThresholdPlot(w, rep.Sweep, threshold, viz.FigureOptions{})
		}); err != nil {
			return err
		}
		if len(rep.OverTime) > 0 {
			if err := o.figure("fractal_time.png", func(w io.Writer) error {
				return viz.TimePlot(w, rep.OverTime, threshold, viz.FigureOptions{})
			}); err != nil {
				return err
			}
		}
		fmt.Fprintf(o.stdout, "%s: %d×%d field, step %d of %d, threshold %g mV\n", path, h.N, h.N, rep.Frame, rep.Steps, threshold)
		for _, s := range rep.Fit.Scales {
			fmt.Fprintf(o.stdout, "  s=%-4d %6d of %6d boxes occupied\n", s.Size, s.Count, s.Boxes)
		}
		fmt.Fprintf(o.stdout, "D = %.6f, R² = %.6f, active fraction %.4f\n", rep.Fit.D, rep.Fit.R2, rep.Fit.ActiveFraction)
		return o.json(struct {
			Input   string   `json:"input"`
			Figures []string `json:"figures"`
			*analyze.FractalReport
		}{path, o.written, rep})
	}
	return c
}

// readAnalyzeField reads an N×N or T×N×N .npy file; a missing or malformed
// file is a usage error naming it.
func readAnalyzeField(path string) (viz.History, []int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return viz.History{}, nil, usagef("FIELD %s: %v", path, err)
	}
	data, shape, err := npy.Read(bytes.NewReader(b), vizMaxInputBytes)
	if err != nil {
		return viz.History{}, nil, usagef("FIELD %s: %v", path, err)
	}
	h, err := viz.NewHistory(data, shape)
	if err != nil {
		return viz.History{}, nil, usagef("FIELD %s: %v (want N×N or T×N×N, as mfn sim --out writes)", path, err)
	}
	return h, shape, nil
}

// parseScales parses --scales: increasing integers ≥ 1, at most
// analyze.MaxScales; empty means nil (the feature's sizes).
func parseScales(text string) ([]int, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	parts := strings.Split(text, ",")
	if len(parts) > analyze.MaxScales {
		return nil, usagef("--scales %q: at most %d box edges", text, analyze.MaxScales)
	}
	var out []int
	for _, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 1 {
			return nil, usagef("--scales %q: %q is not an integer ≥ 1", text, p)
		}
		if len(out) > 0 && v <= out[len(out)-1] {
			return nil, usagef("--scales %q: box edges must be strictly increasing", text)
		}
		out = append(out, v)
	}
	if len(out) < 2 {
		return nil, usagef("--scales %q: a fit needs at least 2 box edges", text)
	}
	return out, nil
}

// parseSweep parses --sweep: a list a,b,c or a range lo:hi:step (mV), at
// most analyze.MaxSweep thresholds, each in [-1000, 1000].
func parseSweep(text string) ([]float64, error) {
	bad := func(why string) error {
		return usagef("--sweep %q: %s; give a list a,b,c or a range lo:hi:step of at most %d thresholds in [-1000, 1000] mV", text, why, analyze.MaxSweep)
	}
	var out []float64
	if parts := strings.Split(text, ":"); len(parts) == 3 {
		var v [3]float64
		for i, p := range parts {
			x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, bad(fmt.Sprintf("%q is not a number", p))
			}
			v[i] = x
		}
		if v[2] <= 0 || v[1] < v[0] {
			return nil, bad("the step must be > 0 and hi ≥ lo")
		}
		if (v[1]-v[0])/v[2] >= analyze.MaxSweep {
			return nil, bad("too many thresholds")
		}
		for k := 0; ; k++ {
			x := v[0] + float64(k)*v[2]
			if x > v[1]+1e-9*v[2] {
				break
			}
			out = append(out, x)
		}
	} else {
		for _, p := range strings.Split(text, ",") {
			x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, bad(fmt.Sprintf("%q is not a number", p))
			}
			out = append(out, x)
		}
	}
	if len(out) > analyze.MaxSweep {
		return nil, bad("too many thresholds")
	}
	for _, x := range out {
		if x < -1000 || x > 1000 {
			return nil, bad(fmt.Sprintf("%g is out of range", x))
		}
	}
	return out, nil
}
