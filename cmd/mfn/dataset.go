package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/mfn/mfn/sim"
)

func init() { registerCommand(newDatasetCmd) }

const datasetLong = `dataset runs many MFN simulations and writes one row per simulation: the
sample id, its seed, its parameters, the 18 features, the run metrics
(growth events, Turing activations, clamped cells) and the history-based
Lyapunov estimate. The format follows the extension of --out: .csv or
.parquet.

Every simulation flag is shared with "mfn sim" and accepts a sweep:
  0.18            a fixed value
  0.1,0.2,0.24    a list; each sample picks one value uniformly at random
  0.05:0.24       a range; each sample draws uniformly from [min, max]
                  (integers: every value in min..max equally likely)
--turing, --jitter and --boundary take values or lists, not ranges; since
they accept lists, they need a value ("--jitter true", "--jitter true,false").
--da, --di, --ra and --ri take one value for the whole dataset (they are
not columns of the output).

Sample i gets the seed SplitMix64(S, i) — the (i+1)-th output of SplitMix64
started at --seed S — and draws its parameters from generators derived from
that seed, so the file is identical for any --workers count and sample i
can be re-run alone with "mfn sim --seed <its seed>" and its parameters.

A progress bar is drawn on stderr when stderr is a terminal. The file is
written to a temporary name in the same folder and renamed when complete, so
an interrupted run (Ctrl-C) leaves no partial file.`

const datasetExample = `  mfn dataset --samples 1000 --out data.csv
  mfn dataset --samples 500 --seed 7 --alpha 0.05:0.24 --spike-probability 0.2:0.9 \
      --jitter true,false --boundary periodic,neumann --out sweep.parquet`

// sweepFlags are the simulation flags of "mfn sim" in their sweep form.
// The reaction-diffusion constants are single values: they are not dataset
// columns, so a sweep over them could not be read back from the file.
type sweepFlags struct {
	gridSize, steps, alpha, spikeProbability, turing, turingThreshold,
	jitter, jitterVar, boundary string
	da, di, ra, ri float64
}

// addSweepFlags defines the simulation flags with the names and ranges of
// "mfn sim", as strings accepting sweeps; defaults are sim.DefaultConfig's.
func addSweepFlags(fs *pflag.FlagSet) *sweepFlags {
	d := sim.DefaultDatasetSpec()
	f := &sweepFlags{}
	const sw = "; a value, a list a,b,c or a range min:max"
	const ls = "; a value or a list a,b"
	fs.StringVar(&f.gridSize, "grid-size", d.GridSize.String(), "grid side N (N×N cells), in [4, 1024]"+sw)
	fs.StringVar(&f.steps, "steps", d.Steps.String(), "simulation steps, ≥ 1"+sw)
	fs.StringVar(&f.alpha, "alpha", d.Alpha.String(), "field diffusion coefficient, in [0.05, 0.24] (CFL: < 0.25)"+sw)
	fs.StringVar(&f.spikeProbability, "spike-probability", d.SpikeProbability.String(), "per-step probability of a growth event, in [0, 1]"+sw)
	fs.StringVar(&f.turing, "turing", d.TuringEnabled.String(), "run the Turing activator-inhibitor step (true/false)"+ls)
	fs.StringVar(&f.turingThreshold, "turing-threshold", d.TuringThreshold.String(), "activator threshold θ, in [0.5, 0.95]"+sw)
	fs.StringVar(&f.jitter, "jitter", d.QuantumJitter.String(), "add Gaussian jitter to the field every step (true/false)"+ls)
	fs.StringVar(&f.jitterVar, "jitter-var", d.JitterVar.String(), "jitter variance σ² in V², in [0, 0.01]"+sw)
	fs.StringVar(&f.boundary, "boundary", d.Boundary.String(), "boundary rule: periodic, neumann or dirichlet"+ls)
	const fixed = " (one value for the whole dataset)"
	fs.Float64Var(&f.da, "da", d.Base.Da, "activator diffusion D_a, in [0.01, 0.25)"+fixed)
	fs.Float64Var(&f.di, "di", d.Base.Di, "inhibitor diffusion D_i, in [0.01, 0.25)"+fixed)
	fs.Float64Var(&f.ra, "ra", d.Base.Ra, "activator reaction rate r_a, in [0.001, 0.1]"+fixed)
	fs.Float64Var(&f.ri, "ri", d.Base.Ri, "inhibitor reaction rate r_i, in [0.001, 0.1]"+fixed)
	return f
}

// sweepParamFlags maps dataset column names to the flags that set them.
var sweepParamFlags = map[string]string{
	"grid_size": "grid-size", "steps": "steps", "alpha": "alpha", "spike_probability": "spike-probability",
	"turing_enabled": "turing", "turing_threshold": "turing-threshold", "quantum_jitter": "jitter",
	"jitter_var": "jitter-var", "boundary": "boundary",
}

// spec parses the flags into a validated dataset spec. Errors are usage
// errors naming the flag and its valid range.
func (f *sweepFlags) spec(samples int, seed int64) (sim.DatasetSpec, error) {
	s := sim.DefaultDatasetSpec()
	s.Samples, s.Seed = samples, seed
	s.Base.Da, s.Base.Di, s.Base.Ra, s.Base.Ri = f.da, f.di, f.ra, f.ri
	var errs []error
	parse := func(err error) { errs = append(errs, err) }
	var err error
	s.GridSize, err = sim.ParseIntSweep("grid_size", f.gridSize)
	parse(err)
	s.Steps, err = sim.ParseIntSweep("steps", f.steps)
	parse(err)
	s.Alpha, err = sim.ParseFloatSweep("alpha", f.alpha)
	parse(err)
	s.SpikeProbability, err = sim.ParseFloatSweep("spike_probability", f.spikeProbability)
	parse(err)
	s.TuringEnabled, err = sim.ParseBoolSweep("turing_enabled", f.turing)
	parse(err)
	s.TuringThreshold, err = sim.ParseFloatSweep("turing_threshold", f.turingThreshold)
	parse(err)
	s.QuantumJitter, err = sim.ParseBoolSweep("quantum_jitter", f.jitter)
	parse(err)
	s.JitterVar, err = sim.ParseFloatSweep("jitter_var", f.jitterVar)
	parse(err)
	s.Boundary, err = sim.ParseBoundarySweep("boundary", f.boundary)
	parse(err)
	errs = append(errs, s.Validate())
	for _, err := range errs {
		if err != nil {
			return sim.DatasetSpec{}, sweepUsage(err)
		}
	}
	return s, nil
}

// sweepUsage rewrites a sweep or config error in terms of the flag.
func sweepUsage(err error) error {
	var se *sim.SweepError
	if errors.As(err, &se) {
		msg := fmt.Sprintf("--%s", sweepParamFlags[se.Param])
		if se.Text != "" {
			msg += fmt.Sprintf(" %q", se.Text)
		}
		msg += ": " + se.Reason
		if se.Range != "" {
			msg += "; valid: " + se.Range
		}
		return usagef("%s", msg)
	}
	var ce *sim.ConfigError
	if errors.As(err, &ce) {
		return usagef("--%s %v: must be %s", strings.ReplaceAll(ce.Field, "_", "-"), ce.Value, ce.Range)
	}
	return asUsage(err)
}

func newDatasetCmd(env *cmdEnv) *cobra.Command {
	var (
		samples, workers int
		seed             int64
		out              string
	)
	c := &cobra.Command{
		Use:     "dataset --out FILE.csv|FILE.parquet",
		Short:   "Generate a table of simulations and their features (CSV or Parquet)",
		Long:    datasetLong,
		Example: datasetExample,
		Args:    cobra.NoArgs,
	}
	fs := c.Flags()
	fs.IntVar(&samples, "samples", 100, "number of simulations (rows), ≥ 1")
	fs.Int64Var(&seed, "seed", 0, "master seed S; sample i's seed is derived from S and i")
	fs.IntVar(&workers, "workers", runtime.GOMAXPROCS(0), "simulations run in parallel, ≥ 1 (the output does not depend on it)")
	fs.StringVar(&out, "out", "", "output file; .csv or .parquet (required)")
	sf := addSweepFlags(fs)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if samples < 1 {
			return usagef("--samples %d: must be ≥ 1", samples)
		}
		if workers < 1 {
			return usagef("--workers %d: must be ≥ 1", workers)
		}
		if out == "" {
			return usagef("--out is required: a .csv or .parquet file name")
		}
		if _, err := sim.NewRowWriter(io.Discard, out); err != nil {
			return usagef("--out %s: the name must end in .csv or .parquet", out)
		}
		spec, err := sf.spec(samples, seed)
		if err != nil {
			return err
		}
		progress := newProgress(env, samples)
		err = writeDataset(env.ctx, spec, workers, out, progress.increment)
		progress.finish(err == nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "wrote %d rows to %s\n", samples, out)
		return nil
	}
	return c
}

// writeDataset generates spec into path atomically; onRow is called after
// each row is written.
func writeDataset(ctx context.Context, spec sim.DatasetSpec, workers int, path string, onRow func()) error {
	return writeAtomically(ctx, path, func(w io.Writer) error {
		rw, err := sim.NewRowWriter(w, path)
		if err != nil {
			return err
		}
		err = sim.GenerateDataset(ctx, spec, workers, func(r sim.Row) error {
			if err := rw.WriteRow(r); err != nil {
				return err
			}
			onRow()
			return nil
		})
		if err != nil {
			return err
		}
		return rw.Close()
	})
}

// writeAtomically writes path through a temporary file in the same folder
// and renames it into place only if write succeeds and ctx is still live; on
// any failure the temporary file is removed and path is left untouched. An
// interrupted run reports that no file was written. The file's mode is that
// of any new file under the process umask (0666 &^ umask).
func writeAtomically(ctx context.Context, path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := createOutputTemp(dir, base)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			if ctx.Err() != nil {
				err = fmt.Errorf("interrupted, %s not written: %w", path, err)
			}
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// progress draws a bar on stderr when stderr is a terminal and does nothing
// otherwise.
type progress struct {
	p   *mpb.Progress
	bar *mpb.Bar
}

func newProgress(env *cmdEnv, total int) *progress {
	f, ok := env.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{}
	}
	p := mpb.NewWithContext(env.ctx, mpb.WithOutput(env.stderr), mpb.WithWidth(48))
	bar := p.AddBar(int64(total),
		mpb.PrependDecorators(decor.Name("simulations "), decor.CountersNoUnit("%d/%d", decor.WCSyncWidth)),
		mpb.AppendDecorators(decor.Percentage(decor.WC{W: 5}), decor.Name("  eta "), decor.AverageETA(decor.ET_STYLE_GO)),
	)
	return &progress{p: p, bar: bar}
}

func (p *progress) increment() {
	if p.bar != nil {
		p.bar.Increment()
	}
}

// finish stops the bar (leaving it drawn if the run completed) and waits for
// the last render.
func (p *progress) finish(completed bool) {
	if p.p == nil {
		return
	}
	if !completed {
		p.bar.Abort(false)
	}
	p.p.Wait()
}
