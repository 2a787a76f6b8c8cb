package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mfn/mfn/internal/npy"
	"github.com/mfn/mfn/internal/viz"
	"github.com/mfn/mfn/sim"
)

func init() { registerCommand(newVizCmd) }

const vizLong = `viz draws a field history, either simulated from the simulation flags
(the same as "mfn sim") or read with --in from a NumPy .npy file holding a
T×N×N history in volts (an N×N field counts as one step), float64 or
float32, as written by "mfn sim --history --out".

--mode dashboard writes one PNG: the field at the first, middle and last
step as heat maps on one colour scale (with its colour bar), the gradient
magnitude, the binary pattern above −60 mV, the histogram of the final
potentials, the mean ± std and the active fraction over time, and a panel
with the 18 features (and, for a simulation, its configuration, metrics and
Lyapunov estimate).

--mode animation writes an animated GIF with one frame per step (or every
k-th step with --every, always ending on the final step), the field drawn with one palette and one value
range for the whole run and a colour bar labelled in mV.

The output is written to a temporary file and renamed into place, so an
interrupted or failed run leaves no partial image.`

const vizExample = `  mfn viz --mode dashboard --out analysis.png
  mfn viz --mode animation --steps 200 --every 2 --jitter --out evolution.gif
  mfn sim --history --out run.npy && mfn viz --in run.npy --out run.png`

// vizMaxInputBytes bounds the history to draw, read or simulated: 1 GiB.
const vizMaxInputBytes = 1 << 30

func newVizCmd(env *cmdEnv) *cobra.Command {
	var (
		mode, out, in string
		every         int
		width, height int
	)
	c := &cobra.Command{
		Use:     "viz --mode dashboard|animation --out FILE",
		Short:   "Draw a simulation as a PNG dashboard or a GIF animation",
		Long:    vizLong,
		Example: vizExample,
		Args:    cobra.NoArgs,
	}
	fs := c.Flags()
	fs.StringVar(&mode, "mode", "dashboard", "dashboard (PNG) or animation (GIF)")
	fs.StringVar(&out, "out", "", "output file: .png for dashboard, .gif for animation (required)")
	fs.StringVar(&in, "in", "", "read the history from this .npy file instead of simulating")
	fs.IntVar(&every, "every", 1, "animation: keep every k-th step, ≥ 1")
	fs.IntVar(&width, "width", 1800, "dashboard width in pixels, in [300, 8000]")
	fs.IntVar(&height, "height", 1500, "dashboard height in pixels, in [300, 8000]")
	sf := addSimFlags(fs)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		wantExt := map[string]string{"dashboard": ".png", "animation": ".gif"}[mode]
		switch {
		case wantExt == "":
			return usagef("--mode %q: must be dashboard or animation", mode)
		case out == "":
			return usagef("--out is required: a %s file name for --mode %s", wantExt, mode)
		case !strings.EqualFold(filepath.Ext(out), wantExt):
			return usagef("--out %s: --mode %s writes a %s file", out, mode, wantExt)
		case every < 1:
			return usagef("--every %d: must be ≥ 1", every)
		case width < viz.MinDashboardPx || width > 8000:
			return usagef("--width %d: must be in [%d, 8000]", width, viz.MinDashboardPx)
		case height < viz.MinDashboardPx || height > 8000:
			return usagef("--height %d: must be in [%d, 8000]", height, viz.MinDashboardPx)
		}
		h, summary, err := vizInput(env.ctx, cmd.Flags(), sf, in)
		if err != nil {
			return err
		}
		err = writeAtomically(env.ctx, out, func(w io.Writer) error {
			if mode == "dashboard" {
				return viz.Dashboard(w, h, summary, viz.DashboardOptions{WidthPx: width, HeightPx: height})
			}
			return viz.Animation(w, h, viz.AnimationOptions{Every: every})
		})
		if err != nil {
			return err
		}
		if mode == "animation" {
			fmt.Fprintf(env.stdout, "wrote %s: %d frames of a %d×%d field\n", out, viz.AnimationFrames(h, viz.AnimationOptions{Every: every}), h.N, h.N)
		} else {
			fmt.Fprintf(env.stdout, "wrote %s: %d steps of a %d×%d field\n", out, h.T, h.N, h.N)
		}
		return nil
	}
	return c
}

// vizSimFlags are the flags addSimFlags defines; with --in none may be set.
var vizSimFlags = []string{"grid-size", "steps", "alpha", "spike-probability", "turing", "turing-threshold",
	"jitter", "jitter-var", "da", "di", "ra", "ri", "boundary", "seed"}

// vizInput returns the history to draw and its statistics, read from the
// .npy file in or simulated from the simulation flags.
func vizInput(ctx context.Context, fs *pflag.FlagSet, sf *simFlags, in string) (viz.History, viz.Summary, error) {
	if in == "" {
		cfg, err := sf.config()
		if err != nil {
			return viz.History{}, viz.Summary{}, err
		}
		if bytes := int64(cfg.Steps) * int64(cfg.GridSize) * int64(cfg.GridSize) * 8; bytes > vizMaxInputBytes {
			return viz.History{}, viz.Summary{}, usagef("--steps %d with --grid-size %d: the history would take %d MiB, more than the %d MiB limit; use fewer steps",
				cfg.Steps, cfg.GridSize, bytes>>20, vizMaxInputBytes>>20)
		}
		res, err := sim.SimulateContext(ctx, cfg, true)
		if err != nil {
			return viz.History{}, viz.Summary{}, err
		}
		h, err := viz.NewHistory(res.History, []int{res.Steps, res.N, res.N})
		if err != nil {
			return viz.History{}, viz.Summary{}, err
		}
		return h, viz.Summary{Title: "simulation", Features: res.Features, Metrics: &res.Metrics,
			Lyapunov: &res.Lyapunov, Config: &cfg}, nil
	}
	for _, name := range vizSimFlags {
		if onCommandLine(fs, name) {
			return viz.History{}, viz.Summary{}, usagef("--%s: simulation flags cannot be combined with --in", name)
		}
	}
	h, err := readHistoryFile(in)
	if err != nil {
		return viz.History{}, viz.Summary{}, err
	}
	feats, err := sim.ExtractFeatures(h.V, h.T, h.N)
	if err != nil {
		return viz.History{}, viz.Summary{}, fmt.Errorf("%s: features: %w", in, err)
	}
	lyap := sim.HistoryLyapunov(h.V, h.T, h.N)
	return h, viz.Summary{Title: filepath.Base(in), Features: feats, Lyapunov: &lyap}, nil
}

// readHistoryFile reads a T×N×N or N×N .npy file as a history.
func readHistoryFile(path string) (viz.History, error) {
	f, err := os.Open(path)
	if err != nil {
		return viz.History{}, usagef("--in: %v", err)
	}
	defer f.Close()
	data, shape, err := npy.Read(f, vizMaxInputBytes)
	if err != nil {
		return viz.History{}, fmt.Errorf("--in %s: %w", path, err)
	}
	h, err := viz.NewHistory(data, shape)
	if err != nil {
		return viz.History{}, fmt.Errorf("--in %s: %w", path, err)
	}
	return h, nil
}
