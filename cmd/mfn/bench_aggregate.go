package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mfn/mfn/aggregate"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() { registerBenchCommand(newBenchAggregateCmd) }

// benchAggregateRow is one line of the timing table (and of --json).
type benchAggregateRow struct {
	Rule     string  `json:"rule"`
	N        int     `json:"n"`
	D        int     `json:"d"`
	F        int     `json:"f"`
	Repeat   int     `json:"repeat"`
	MedianMS float64 `json:"median_ms"`
	MinMS    float64 `json:"min_ms"`
	Float32  bool    `json:"float32,omitempty"`
	Error    string  `json:"error,omitempty"`
}

// benchAggregateMaxValues bounds n·d so that a typo cannot ask for tens of GiB.
const benchAggregateMaxValues = 200_000_000

func newBenchAggregateCmd(env *cmdEnv) *cobra.Command {
	var (
		ns, ds    []int
		rules     []string
		repeat    int
		seed      uint64
		fFlag     int
		clipNorm  float64
		jsonPath  string
		float32s  bool
		defaultRs = append(slices.Clone(aggregate.RuleNames), "nnm+trimmed-mean")
	)
	c := &cobra.Command{
		Use:   "aggregate",
		Short: "Time the robust aggregation rules across client counts and dimensions",
		Long: `aggregate times each requested rule (or pipeline such as "nnm+krum") on n
standard-normal update vectors of length d, drawn from a seeded generator,
for every combination of --n and --d. Each rule runs --repeat times; the
table gives the median and the fastest wall time in milliseconds. f is n/5
unless --f is set. A rule whose requirement fails for some n (Bulyan needs
n ≥ 4f+3) gets its error in the last column instead of a time.

The timings use the same code as the coordinator (package aggregate), so
they show what a round costs on this machine. The Go benchmarks in
./aggregate (go test -bench) are the reference figures; see
docs/BENCHMARKS.md.

With --float32 the vectors are float32, as updates arrive on the wire, and
are aggregated with aggregate.AggregateFloat32: fedavg, krum, multi-krum,
median, trimmed-mean, bulyan, geometric-median and centered-clipping read
them in place with the float32 kernels; hierarchical-krum and pipelines (nnm,
bucketing, static-clipping, then fedavg, krum, multi-krum, median or
trimmed-mean) read them in place block by block and widen each block to
float64; other pipelines get a float64 copy.`,
		Example: `  mfn bench aggregate
  mfn bench aggregate --n 50,100 --d 100000 --rules krum,trimmed-mean,nnm+krum --repeat 5
  mfn bench aggregate --n 10 --d 1000 --json timings.json
  mfn bench aggregate --n 100 --d 100000 --rules krum,median --float32`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if repeat < 1 {
				return usagef("--repeat %d: want ≥ 1", repeat)
			}
			for _, n := range ns {
				if n < 1 {
					return usagef("--n %d: want ≥ 1", n)
				}
				for _, d := range ds {
					if d < 1 {
						return usagef("--d %d: want ≥ 1", d)
					}
					if int64(n)*int64(d) > benchAggregateMaxValues {
						return usagef("--n %d × --d %d = %d values: want ≤ %d", n, d, int64(n)*int64(d), benchAggregateMaxValues)
					}
				}
			}
			if len(ns) == 0 || len(ds) == 0 || len(rules) == 0 {
				return usagef("--n, --d and --rules each need at least one value")
			}
			if fFlag < -1 {
				return usagef("--f %d: want ≥ 0 (or -1 for n/5)", fFlag)
			}
			for _, r := range rules {
				if _, err := aggregate.ParsePipeline(r, aggregate.Params{ClipNorm: clipNorm}); err != nil {
					if errors.Is(err, aggregate.ErrUnknownName) || errors.Is(err, aggregate.ErrInvalidParam) {
						return usagef("--rules %q: %v", r, err)
					}
					return err
				}
			}
			progress := benchAggregateIsTerminal(env.stderr)
			total := len(ns) * len(ds) * len(rules)
			var rows []benchAggregateRow
			for _, n := range ns {
				for _, d := range ds {
					x := benchAggregateVectors(n, d, seed)
					f := n / 5
					if fFlag >= 0 {
						f = fFlag
					}
					for _, name := range rules {
						if err := env.ctx.Err(); err != nil {
							return err
						}
						if progress {
							fmt.Fprintf(env.stderr, "\r\033[K[%d/%d] %s n=%d d=%d", len(rows)+1, total, name, n, d)
						}
						row := benchAggregateTime(name, x, n, d, f, repeat, seed, clipNorm, float32s)
						rows = append(rows, row)
					}
				}
			}
			if progress {
				fmt.Fprint(env.stderr, "\r\033[K")
			}
			if err := writeBenchAggregateTable(env.stdout, rows); err != nil {
				return err
			}
			if jsonPath != "" {
				b, err := json.MarshalIndent(rows, "", "  ")
				if err != nil {
					return err
				}
				b = append(b, '\n')
				if jsonPath == "-" {
					_, err = env.stdout.Write(b)
					return err
				}
				return os.WriteFile(jsonPath, b, 0o644)
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.IntSliceVar(&ns, "n", []int{10, 50, 100}, "client counts n (comma-separated, each ≥ 1)")
	fl.IntSliceVar(&ds, "d", []int{10000, 100000}, "update dimensions d (comma-separated, each ≥ 1; n·d ≤ 2e8)")
	fl.StringSliceVar(&rules, "rules", defaultRs, "rules or pipelines to time, e.g. krum,nnm+trimmed-mean (known: "+strings.Join(aggregate.RuleNames, ", ")+"; pre-steps: "+strings.Join(aggregate.PreStepNames, ", ")+")")
	fl.IntVar(&repeat, "repeat", 3, "timed runs per rule and size (≥ 1)")
	fl.Uint64Var(&seed, "seed", 1, "seed of the input vectors and of randomised rules")
	fl.IntVar(&fFlag, "f", -1, "Byzantine count f given to the rules (-1 means n/5)")
	fl.Float64Var(&clipNorm, "clip-norm", 1, "norm bound of the static-clipping pre-step (> 0)")
	fl.BoolVar(&float32s, "float32", false, "time float32 inputs through aggregate.AggregateFloat32 instead of float64 ones")
	fl.StringVar(&jsonPath, "json", "", `also write the rows as a JSON array to this file ("-" for stdout)`)
	return c
}

// benchAggregateVectors returns n standard-normal vectors of length d in one block.
func benchAggregateVectors(n, d int, seed uint64) [][]float64 {
	r := rand.New(rand.NewPCG(seed, uint64(n)<<32|uint64(d)))
	buf := make([]float64, n*d)
	for i := range buf {
		buf[i] = r.NormFloat64()
	}
	x := make([][]float64, n)
	for i := range x {
		x[i] = buf[i*d : (i+1)*d : (i+1)*d]
	}
	return x
}

// benchAggregateTime builds the rule afresh and times repeat aggregations of x.
// With f32 the vectors are rounded to float32 and aggregated with
// aggregate.AggregateFloat32.
func benchAggregateTime(name string, x [][]float64, n, d, f, repeat int, seed uint64, clipNorm float64, f32 bool) benchAggregateRow {
	row := benchAggregateRow{Rule: name, N: n, D: d, F: f, Repeat: repeat, Float32: f32}
	rule, err := aggregate.ParsePipeline(name, aggregate.Params{F: f, Seed: seed, ClipNorm: clipNorm})
	if err != nil {
		row.Error = err.Error()
		return row
	}
	run := func() error { _, _, err := rule.Aggregate(x, nil); return err }
	if f32 {
		x32 := make([][]float32, len(x))
		for i, v := range x {
			x32[i] = make([]float32, len(v))
			for k, e := range v {
				x32[i][k] = float32(e)
			}
		}
		run = func() error { _, _, err := aggregate.AggregateFloat32(rule, x32, nil); return err }
	}
	times := make([]time.Duration, 0, repeat)
	for i := 0; i < repeat; i++ {
		start := time.Now()
		err := run()
		el := time.Since(start)
		if err != nil {
			row.Error = err.Error()
			return row
		}
		times = append(times, el)
	}
	slices.Sort(times)
	mid := times[len(times)/2]
	if len(times)%2 == 0 {
		mid = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	row.MedianMS = float64(mid.Microseconds()) / 1000
	row.MinMS = float64(times[0].Microseconds()) / 1000
	return row
}

func writeBenchAggregateTable(w io.Writer, rows []benchAggregateRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rule\tn\td\tf\tmedian ms\tmin ms\t")
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t-\t-\t  %s\n", r.Rule, r.N, r.D, r.F, r.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.3f\t%.3f\t\n", r.Rule, r.N, r.D, r.F, r.MedianMS, r.MinMS)
	}
	return tw.Flush()
}

func benchAggregateIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
