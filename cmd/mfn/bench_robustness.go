package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/mfn/mfn/experiment"
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

--data runs the protocol on your own file (any format "mfn node --data"
reads), split into train and test with a fixed seed (--test-fraction); the
test part is never given to a client.

--optimizer NAME[:k=v,...] applies a server optimizer after the rule in
every cell (fedavgm, fedadam, fedyogi or fedadagrad, Reddi et al. 2021;
keys lr, beta1, beta2, tau, momentum): the model moves by its step on the
robust aggregate. Adaptive attacks still probe the rule itself. Not with
--dp.

--dp adds a privacy axis (client-level DP-FedAvg, docs/ROBUSTNESS.md "Robust +
private"): "none" (no noise), "central:EPS" (the server clips every update to
--dp-clip C and adds Gaussian noise z·C/(q·n) to the aggregate) or
"local:EPS" (each honest node clips and adds z·C to its own update). z is the
smallest noise multiplier whose ε over --rounds rounds at sample rate
--sample-rate q and --dp-delta δ is at most EPS (privacy.NoiseMultiplier).
With --dp every node (honest or Byzantine) takes part in a round with
probability q (a seeded draw); a summary after the tables gives z, the ε
spent at q and at q = 1 (the figure against the coordinators), the nodes
per round and the share of clipped updates. Central noise covers fedavg only;
with a robust rule it is reported but not a proven guarantee.

--quick is the CI-sized run: softmax on a 20,000-image MNIST subset, IID and
Dirichlet α = 0.5, f ∈ {0, 1, 3}, 10 honest clients, the main rules and
attacks, 10 rounds of 30 local steps, one seed; flags given explicitly still
override it.`

const benchRobustnessExample = `  mfn bench robustness --quick
  mfn bench robustness --quick --data site.csv --label-column diagnosis --classes benign,malignant --model mlp:32
  mfn bench robustness --quick --results quick.jsonl --json quick.json --png quick.png
  mfn bench robustness --dataset fashion --heterogeneity dirichlet --alpha 0.5 --f 0,2 --rules trimmed-mean \
      --attacks alie --rounds 30 --train-size 20000 --optimizer fedadam --reference
  mfn bench robustness --dataset mfn --honest 12 --f 0,2 --rules fedavg,trimmed-mean \
      --attacks alie --dp none,central:8,local:8 --rounds 20 --seeds 1
  mfn bench robustness --model mlp --heterogeneity iid,dirichlet,extreme --alpha 1,0.5,0.1 \
      --f 0,1,2,3,4 --rules fedavg,krum,nnm+trimmed-mean --attacks alie,ipm:eps=0.5,label-flip \
      --rounds 200 --seeds 3 --results full.jsonl`

// robustnessOptions are the parsed flags of "bench robustness": the
// experiment plus where its outputs go.
type robustnessOptions struct {
	experiment.Config
	quick    bool
	results  string
	jsonPath string
	pngPath  string
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
	o := &robustnessOptions{Config: experiment.DefaultConfig()}
	c := &cobra.Command{
		Use:     "robustness",
		Short:   "Run the Byzantine-robustness protocol (rules × attacks × heterogeneity)",
		Long:    benchRobustnessLong,
		Example: benchRobustnessExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A data file is the data set unless --dataset says otherwise
			// (set before --quick, which would otherwise pick mnist).
			if o.Data != "" && !cmd.Flags().Changed("dataset") {
				if err := cmd.Flags().Set("dataset", "file"); err != nil {
					return err
				}
			}
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
	fl.StringVar(&o.Dataset, "dataset", "mnist", "data set: mnist, fashion (Debian dataset-fashion-mnist), mfn (MFN regime task) or file (--data)")
	fl.StringVar(&o.Data, "data", "", "your own data: .csv, .parquet, .npz, IDX images or a folder of MFN fields (implies --dataset file)")
	fl.StringVar(&o.LabelColumn, "label-column", "label", "label column of --data")
	fl.StringSliceVar(&o.Classes, "classes", nil, "class list of --data (labels are mapped by it; default: integer labels 0..K-1)")
	fl.Float64Var(&o.TestFraction, "test-fraction", 0.2, "share of --data held out for testing, split with a fixed seed (0..1)")
	fl.StringVar(&o.Model, "model", "softmax", "model: softmax, mlp (one hidden layer of --hidden units), mlp:H1,H2,... or cnn:mnist")
	fl.StringSliceVar(&o.Heterogeneity, "heterogeneity", []string{"iid", "dirichlet", "extreme"}, "client data distributions: iid, dirichlet (one per --alpha), extreme")
	fl.Float64SliceVar(&o.Alphas, "alpha", []float64{1, 0.5, 0.1}, "Dirichlet concentrations α > 0 (smaller is more heterogeneous)")
	fl.IntVar(&o.ExtremeLabels, "extreme-labels", 1, "labels per honest client in the extreme setting (1 or 2)")
	fl.IntVar(&o.Honest, "honest", 10, "honest clients (1..1000)")
	fl.IntSliceVar(&o.Fs, "f", []int{0, 1, 2, 3, 4}, "Byzantine client counts (0..1000)")
	fl.StringSliceVar(&o.Rules, "rules", []string{"fedavg", "krum", "multi-krum", "median", "trimmed-mean", "bulyan", "geometric-median", "centered-clipping", "hierarchical-krum", "nnm+trimmed-mean", "bucketing+krum", "nnm+static-clipping+trimmed-mean"}, "aggregation pipelines: [pre+...+]rule")
	fl.StringSliceVar(&o.Attacks, "attacks", []string{"sign-flip", "gaussian", "gaussian:sigma=200", "label-flip", "alie", "ipm:eps=0.1", "ipm:eps=0.5", "mimic", "opt-alie", "opt-ipm", "min-max", "min-sum", "inf", "nan"}, "attacks run for every f > 0: name[:key=value]...")
	fl.IntVar(&o.Rounds, "rounds", 200, "federated rounds (1..100000)")
	fl.IntVar(&o.Seeds, "seeds", 3, "seeds per cell (1..1000); seed values are --seed, --seed+1, ...")
	fl.Uint64Var(&o.Seed, "seed", 1, "first seed")
	fl.Float64Var(&o.LR, "lr", 0.02, "client learning rate (> 0)")
	fl.Float64Var(&o.Momentum, "momentum", 0.9, "client momentum in [0,1), kept across rounds per client")
	fl.Float64Var(&o.WeightDecay, "weight-decay", 1e-4, "L2 weight decay (≥ 0)")
	fl.IntVar(&o.Batch, "batch", 32, "minibatch size (1..100000)")
	fl.IntVar(&o.LocalSteps, "local-steps", 30, "minibatch steps per client per round (0 means use --local-epochs)")
	fl.IntVar(&o.LocalEpochs, "local-epochs", 1, "local epochs per round when --local-steps is 0")
	fl.IntVar(&o.Hidden, "hidden", 64, "MLP hidden units (1..10000)")
	fl.IntVar(&o.TrainSize, "train-size", 0, "training samples used (a fixed random subset; 0 means all)")
	fl.IntVar(&o.TestSize, "test-size", 0, "test samples used (the first ones; 0 means all)")
	fl.IntVar(&o.MFNPerRegime, "mfn-per-regime", 300, "simulations per regime for --dataset mfn (10..100000)")
	fl.StringVar(&o.DataDir, "data-dir", "", "directory with the IDX files (default: the GoMNIST module for mnist, "+learn.FashionMNISTDir+" for fashion)")
	fl.BoolVar(&o.quick, "quick", false, "CI-sized run (see above); explicit flags override its values")
	fl.StringVar(&o.results, "results", "", "JSON-lines file of finished cells; existing cells are skipped (resume)")
	fl.StringVar(&o.jsonPath, "json", "", "write all cells as a JSON array to this file")
	fl.StringVar(&o.pngPath, "png", "", "write the worst-case heat maps to this PNG file")
	fl.Float64Var(&o.ClipNorm, "clip-norm", 2, "static-clipping's norm bound C (> 0)")
	fl.Float64Var(&o.CCTau, "cc-tau", 1, "centered-clipping's radius τ (> 0)")
	fl.IntVar(&o.CCIters, "cc-iters", 1, "centered-clipping's iterations L (1..100)")
	fl.IntVar(&o.GMIters, "gm-iters", 8, "geometric-median's maximum smoothed-Weiszfeld iterations (1..1000)")
	fl.IntVar(&o.BucketSize, "bucket-size", 2, "bucketing's bucket size s (1..1000)")
	fl.BoolVar(&o.Reference, "reference", false, "also train the model on the pooled training data with the same budget and print its accuracy")
	fl.StringSliceVar(&o.DP, "dp", nil, "differential-privacy axis: none, central:EPS, local:EPS (target ε over --rounds); empty: no DP axis")
	fl.Float64Var(&o.SampleRate, "sample-rate", 1, "with --dp: each node takes part in a round with this probability q, (0,1]")
	fl.Float64Var(&o.DPClip, "dp-clip", 1, "with --dp: clipping norm C of every update (> 0)")
	fl.Float64Var(&o.DPDelta, "dp-delta", 1e-5, "with --dp: the δ of (ε, δ)-DP, (0,1)")
	fl.IntVar(&o.Workers, "workers", 0, "goroutines training clients (0 means GOMAXPROCS; results do not depend on it)")
	fl.StringVar(&o.Optimizer, "optimizer", "", "server optimizer after the rule: fedavgm, fedadam, fedyogi or fedadagrad[:lr=..,beta1=..,beta2=..,tau=..,momentum=..] (default none: plain FedAvg step)")
	return c
}

func runBenchRobustness(env *cmdEnv, o *robustnessOptions) error {
	var progress *mpb.Progress
	var bar *mpb.Bar
	out, err := experiment.Run(env.ctx, o.Config, experiment.RunOptions{
		Results: o.results,
		Start: func(total, done, todo int) {
			fmt.Fprintf(env.stderr, "bench robustness: %d cells, %d already in %s, %d to run\n",
				total, done, orDash(o.results), todo)
			progress, bar = newRobustProgress(env.stderr, todo)
		},
		Finished: func(experiment.Record) {
			if bar != nil {
				bar.Increment()
			}
		},
	})
	if progress != nil {
		if out == nil || out.Interrupted != nil {
			bar.Abort(false)
		}
		progress.Wait()
	}
	if err != nil {
		var ce *experiment.ConfigError
		if errors.As(err, &ce) {
			return usagef("--%s %s", ce.Field, ce.Detail)
		}
		return err
	}
	if o.Reference && !math.IsNaN(out.Reference) {
		fmt.Fprintf(env.stdout, "# centralized reference (same model and budget on the pooled training data, mean over seeds): %.4f\n\n", out.Reference)
	}
	if err := experiment.WriteTable(env.stdout, o.Config, out.Records); err != nil {
		return err
	}
	// The files are written even after Ctrl-C (the finished cells are
	// kept), so the writes are not tied to the command's context; they are
	// still atomic.
	if o.jsonPath != "" {
		err := writeAtomically(context.Background(), o.jsonPath, func(w io.Writer) error {
			return experiment.WriteJSON(w, out.Records)
		})
		if err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	if o.pngPath != "" {
		err := writeAtomically(context.Background(), o.pngPath, func(w io.Writer) error {
			return experiment.WritePNG(w, out.Records)
		})
		if err != nil {
			return fmt.Errorf("--png %s: %w", o.pngPath, err)
		}
	}
	if out.Interrupted != nil {
		return fmt.Errorf("interrupted after %d of %d cells (%v); finished cells are kept%s",
			len(out.Records), out.Total, out.Interrupted, resumeHint(o.results))
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
