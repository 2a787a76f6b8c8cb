package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/internal/npy"
	"github.com/mfn/mfn/sim"
)

func init() {
	registerCommand(newSimCmd)
	registerCommand(newFeaturesCmd)
	registerCommand(newNernstCmd)
	registerCommand(newIFSCmd)
}

// featureUnits describes each feature for the human-readable table.
var featureUnits = [sim.NumFeatures]string{
	"box-counting dimension of V > −60 mV",
	"R² of the box-counting fit",
	"mV, last frame", "mV, last frame", "mV, last frame", "mV, last frame",
	"skewness, last frame", "excess kurtosis, last frame",
	"mV per step, mean |ΔV|", "mV per step, max |ΔV|",
	"steps to quasi-stationarity (T if never)",
	"mV² per step, slope of Σ V²",
	"fraction of cells above −60 mV",
	"components above −60 mV", "components above −50 mV", "components above −40 mV",
	"cells, largest component above −60 mV",
	"cells, std of component sizes above −60 mV",
}

const simLong = `sim runs one MFN field simulation and prints its summary and the 18
features.

The model (see the sim package documentation): an N×N potential field V
starts near −70 mV; every step a growth event may add a spike to one random
cell, V diffuses (5-point Laplacian), an activator–inhibitor Turing system
depolarises cells whose activator exceeds θ, optional Gaussian jitter is
added, and V is clamped to [−95, 40] mV. The features describe the final
field (fractal dimension, statistics, clusters) and the whole run (rates of
change, stabilisation, energy trend). The same flags and seed always give
the same, bit-identical run.

--json prints one JSON object {config, metrics, lyapunov, features}.
--out FILE.npy saves the final field (N×N, volts) as a NumPy array, or with
--history the field after every step (steps×N×N). The file is written to a
temporary name and renamed when complete, so an interrupted run leaves no
partial file.`

func newSimCmd(env *cmdEnv) *cobra.Command {
	var asJSON, history bool
	var out string
	c := &cobra.Command{
		Use:   "sim",
		Short: "Run one MFN field simulation and print its features",
		Long:  simLong,
		Example: `  mfn sim
  mfn sim --grid-size 32 --steps 40 --alpha 0.1 --spike-probability 0.9 --jitter --seed 7
  mfn sim --json --boundary neumann
  mfn sim --steps 100 --history --out run.npy`,
		Args: cobra.NoArgs,
	}
	sf := addSimFlags(c.Flags())
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object instead of the table")
	c.Flags().StringVar(&out, "out", "", "write the final field (or with --history the whole history) to this .npy file")
	c.Flags().BoolVar(&history, "history", false, "with --out, save the field after every step (steps×N×N)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := sf.config()
		if err != nil {
			return err
		}
		if out != "" && !strings.EqualFold(filepath.Ext(out), ".npy") {
			return usagef("--out %q: must end in .npy", out)
		}
		if history && out == "" {
			return usagef("--history needs --out FILE.npy")
		}
		res, err := sim.SimulateContext(env.ctx, cfg, history)
		if errors.Is(err, sim.ErrHistoryTooLarge) {
			return usagef("--history with --steps %d and --grid-size %d: %d×%d×%d values exceed the limit of %d; lower --steps or --grid-size",
				cfg.Steps, cfg.GridSize, cfg.Steps, cfg.GridSize, cfg.GridSize, sim.MaxHistoryValues)
		}
		if err != nil {
			return err
		}
		if out != "" {
			data, shape := res.Field, []int{res.N, res.N}
			if history {
				data, shape = res.History, []int{res.Steps, res.N, res.N}
			}
			if err := writeNPYAtomic(env.ctx, out, data, shape); err != nil {
				return err
			}
		}
		if asJSON {
			return printSimJSON(env.stdout, cfg, res)
		}
		printSimSummary(env.stdout, cfg, res, out, history)
		return nil
	}
	return c
}

func printSimJSON(w io.Writer, cfg sim.Config, res *sim.Result) error {
	type metricsJSON struct {
		GrowthEvents      int `json:"growth_events"`
		TuringActivations int `json:"turing_activations"`
		ClampedCells      int `json:"clamped_cells"`
	}
	doc := struct {
		Config   configJSON   `json:"config"`
		Metrics  metricsJSON  `json:"metrics"`
		Lyapunov float64      `json:"lyapunov"`
		Features sim.Features `json:"features"`
	}{
		Config:   newConfigJSON(cfg),
		Metrics:  metricsJSON{res.Metrics.GrowthEvents, res.Metrics.TuringActivations, res.Metrics.ClampedCells},
		Lyapunov: res.Lyapunov,
		Features: res.Features,
	}
	return printJSONIndent(w, doc)
}

func printJSONIndent(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func printSimSummary(w io.Writer, cfg sim.Config, res *sim.Result, out string, history bool) {
	fmt.Fprintf(w, "MFN simulation\n%s\n\n", describeConfig(cfg))
	m := res.Metrics
	fmt.Fprintf(w, "growth events      %d\n", m.GrowthEvents)
	fmt.Fprintf(w, "Turing activations %d\n", m.TuringActivations)
	fmt.Fprintf(w, "clamped cells      %d\n", m.ClampedCells)
	fmt.Fprintf(w, "Lyapunov (history) %.6g\n", res.Lyapunov)
	f := res.Features
	fmt.Fprintf(w, "final field        %.3f mV mean, %.3f mV std, [%.3f, %.3f] mV\n\n",
		f[sim.FVMean], f[sim.FVStd], f[sim.FVMin], f[sim.FVMax])
	printFeatureTable(w, f)
	if out != "" {
		what := fmt.Sprintf("final field (%d×%d)", res.N, res.N)
		if history {
			what = fmt.Sprintf("history (%d×%d×%d)", res.Steps, res.N, res.N)
		}
		fmt.Fprintf(w, "\nwrote %s to %s\n", what, out)
	}
}

func printFeatureTable(w io.Writer, f sim.Features) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tfeature\tvalue\tmeaning")
	for i, name := range sim.FeatureNames {
		fmt.Fprintf(tw, "%d\t%s\t%.6g\t%s\n", i+1, name, f[i], featureUnits[i])
	}
	tw.Flush()
}

// writeNPYAtomic writes data as a .npy file at path through a temporary
// file in the same folder, renamed into place only when complete; if ctx
// is cancelled or anything fails, the temporary file is removed.
func writeNPYAtomic(ctx context.Context, path string, data []float64, shape []int) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := npy.Write(tmp, data, shape); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

const featuresLong = `features computes the 18 MFN features of a field or a field history and
prints them as one JSON object whose keys are exactly the feature names, in
their fixed order.

PATH is either
  - a NumPy .npy file of float64 or float32 values in volts: a 2-D N×N field
    or a 3-D steps×N×N history (as written by "mfn sim --out"), or
  - a JSON case file with "shape" ([T,N,N] or [N,N]) and
    "history_f64le_b64" (the array in C order as little-endian float64,
    base64), the format of the reference golden data.
Static features use the last frame; the temporal ones (dV_mean, dV_max,
T_stable, E_trend) the whole history, and are 0 for a single field. A NaN or
infinite value in the input is an error.`

// maxFeaturesInput bounds the size of a features input file.
const maxFeaturesInput = 1 << 30

func newFeaturesCmd(env *cmdEnv) *cobra.Command {
	return &cobra.Command{
		Use:   "features PATH",
		Short: "Compute the 18 features of a field (.npy or golden JSON case)",
		Long:  featuresLong,
		Example: `  mfn sim --steps 100 --history --out run.npy && mfn features run.npy
  mfn features ../shared/golden/features/snapshot-s11.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			data, steps, n, err := readFieldFile(path)
			if err != nil {
				return err
			}
			f, err := sim.ExtractFeatures(data, steps, n)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			return printJSONIndent(env.stdout, f)
		},
	}
}

// readFieldFile reads a .npy array or a golden JSON case and returns the
// values with their (steps, N).
func readFieldFile(path string) (data []float64, steps, n int, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, err
	}
	defer fh.Close()
	var shape []int
	switch strings.ToLower(filepath.Ext(path)) {
	case ".npy":
		data, shape, err = npy.Read(fh, maxFeaturesInput)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%s: %w", path, err)
		}
	case ".json":
		data, shape, err = readGoldenCase(io.LimitReader(fh, 2*maxFeaturesInput))
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%s: %w", path, err)
		}
	default:
		return nil, 0, 0, usagef("%s: unknown extension; want .npy or .json", path)
	}
	switch {
	case len(shape) == 2 && shape[0] == shape[1] && shape[0] > 0:
		steps, n = 1, shape[0]
	case len(shape) == 3 && shape[1] == shape[2] && shape[0] > 0 && shape[1] > 0:
		steps, n = shape[0], shape[1]
	default:
		return nil, 0, 0, fmt.Errorf("%s: shape %v: want a square N×N field or a T×N×N history", path, shape)
	}
	if len(data) != steps*n*n {
		return nil, 0, 0, fmt.Errorf("%s: %d values for shape %v", path, len(data), shape)
	}
	return data, steps, n, nil
}

// readGoldenCase decodes the reference's JSON case format.
func readGoldenCase(r io.Reader) ([]float64, []int, error) {
	var c struct {
		Shape   []int  `json:"shape"`
		History string `json:"history_f64le_b64"`
	}
	if err := json.NewDecoder(r).Decode(&c); err != nil {
		return nil, nil, fmt.Errorf("not a JSON case file: %w", err)
	}
	if len(c.Shape) == 0 || c.History == "" {
		return nil, nil, errors.New(`JSON case file needs "shape" and "history_f64le_b64"`)
	}
	total := 1
	for _, d := range c.Shape {
		if d <= 0 || total > math.MaxInt32/d {
			return nil, nil, fmt.Errorf("bad shape %v", c.Shape)
		}
		total *= d
	}
	raw, err := base64.StdEncoding.DecodeString(c.History)
	if err != nil {
		return nil, nil, fmt.Errorf("history_f64le_b64: %w", err)
	}
	if len(raw) != 8*total {
		return nil, nil, fmt.Errorf("history_f64le_b64 holds %d bytes, shape %v needs %d", len(raw), c.Shape, 8*total)
	}
	data := make([]float64, total)
	for i := range data {
		data[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return data, c.Shape, nil
}

const nernstLong = `nernst prints the Nernst equilibrium potential of an ion,
E = (R·T)/(z·F) · ln(c_out / c_in), with R = 8.314 J/(mol·K) and
F = 96485.33212 C/mol. Concentrations are in mol/L and are raised to at least
1e-6 mol/L before the logarithm. The defaults are potassium at body
temperature (5 mM outside, 140 mM inside, 310 K): about −89.0 mV.`

func newNernstCmd(env *cmdEnv) *cobra.Command {
	var z int
	var cOut, cIn, temp float64
	var asJSON bool
	c := &cobra.Command{
		Use:   "nernst",
		Short: "Print the Nernst equilibrium potential of an ion",
		Long:  nernstLong,
		Example: `  mfn nernst                                  # K+: −89.0 mV
  mfn nernst --z 1 --c-out 0.145 --c-in 0.012    # Na+
  mfn nernst --z 2 --c-out 0.002 --c-in 1e-7 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := sim.Nernst(z, cOut, cIn, temp)
			if err != nil {
				return simFlagError(err)
			}
			if asJSON {
				return printJSONIndent(env.stdout, struct {
					Z           int     `json:"z"`
					COut        float64 `json:"c_out"`
					CIn         float64 `json:"c_in"`
					Temperature float64 `json:"temperature_k"`
					EVolts      float64 `json:"e_volts"`
					EMillivolts float64 `json:"e_mv"`
				}{z, cOut, cIn, temp, e, e * 1000})
			}
			fmt.Fprintf(env.stdout, "E = %.2f mV  (z = %d, c_out = %g M, c_in = %g M, T = %g K)\n", e*1000, z, cOut, cIn, temp)
			return nil
		},
	}
	c.Flags().IntVar(&z, "z", 1, "ion valence: one of -2, -1, 1, 2")
	c.Flags().Float64Var(&cOut, "c-out", 0.005, "extracellular concentration, mol/L (clamped to ≥ 1e-6)")
	c.Flags().Float64Var(&cIn, "c-in", 0.140, "intracellular concentration, mol/L (clamped to ≥ 1e-6)")
	c.Flags().Float64Var(&temp, "temperature", sim.BodyTemperatureK, "temperature in kelvin, in [273, 320]")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

const ifsLong = `ifs generates a random iterated function system of similarity maps
(scale in [0.2, 0.5], random rotation, translation in [−1, 1]²), plays the
chaos game from (0, 0) and prints the Lyapunov exponent, the mean of
ln|det J| over the applied maps. A negative exponent means the system is
contractive; for the default 4 maps it is typically about −2.1. The same
seed gives the same system and points.`

func newIFSCmd(env *cmdEnv) *cobra.Command {
	var transforms, points int
	var seed uint64
	var asJSON bool
	c := &cobra.Command{
		Use:     "ifs",
		Short:   "Generate an IFS fractal and print its Lyapunov exponent",
		Long:    ifsLong,
		Example: "  mfn ifs\n  mfn ifs --transforms 6 --points 50000 --seed 3 --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rng := rand.New(rand.NewPCG(seed, 0x6d666e2d696673)) // "mfn-ifs"
			f, err := sim.NewIFS(transforms, rng)
			if err != nil {
				return simFlagError(err)
			}
			pts, lyap, err := f.Iterate(points, rng)
			if err != nil {
				return simFlagError(err)
			}
			minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
			for _, p := range pts {
				minX, maxX = math.Min(minX, p[0]), math.Max(maxX, p[0])
				minY, maxY = math.Min(minY, p[1]), math.Max(maxY, p[1])
			}
			if asJSON {
				return printJSONIndent(env.stdout, struct {
					Transforms int              `json:"transforms"`
					Points     int              `json:"points"`
					Seed       uint64           `json:"seed"`
					Lyapunov   float64          `json:"lyapunov"`
					Maps       []sim.Similarity `json:"maps"`
					Bounds     [4]float64       `json:"bounds"`
				}{transforms, points, seed, lyap, f.Maps, [4]float64{minX, minY, maxX, maxY}})
			}
			kind := "contractive"
			if lyap >= 0 {
				kind = "not contractive"
			}
			fmt.Fprintf(env.stdout, "IFS with %d maps, %d points, seed %d\n", transforms, points, seed)
			fmt.Fprintf(env.stdout, "Lyapunov exponent %.4f (%s)\n", lyap, kind)
			fmt.Fprintf(env.stdout, "attractor bounds  x [%.4f, %.4f], y [%.4f, %.4f]\n", minX, maxX, minY, maxY)
			return nil
		},
	}
	c.Flags().IntVar(&transforms, "transforms", sim.DefaultIFSTransforms, "number of maps, in [2, 8]")
	c.Flags().IntVar(&points, "points", sim.DefaultIFSPoints, "chaos-game iterations, in [1000, 100000]")
	c.Flags().Uint64Var(&seed, "seed", 0, "random seed")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}
