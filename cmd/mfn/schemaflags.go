package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/mfn/mfn/coordinator"
)

// schemaFlags are the flags of "jobs create" that declare the job's data
// schema (coordinator.DataSchema).
type schemaFlags struct {
	features    int
	inputShape  []int
	classes     []string
	standardize string
	stats       string
	crossSite   bool
}

func (f *schemaFlags) register(fl *pflag.FlagSet) {
	fl.IntVar(&f.features, "features", 0, "schema: number of input features every site's data must have (0: not declared)")
	fl.IntSliceVar(&f.inputShape, "input-shape", nil, "schema: input shape, e.g. 28,28 (its product is the feature count)")
	fl.StringSliceVar(&f.classes, "classes", nil, "schema: class list, index = class id; nodes map their labels by it (e.g. red,green,blue)")
	fl.StringVar(&f.standardize, "standardize", "", "schema: input scaling every site must use: none, site (each site's own mean and std) or job (--stats)")
	fl.StringVar(&f.stats, "stats", "", `schema: JSON file {"mean":[...],"std":[...]} of the reference statistics for --standardize job`)
	fl.BoolVar(&f.crossSite, "cross-site-eval", false, "after the last round, every node evaluates the final model on its held-out data and reports it signed (mfn ctl jobs metrics)")
}

// schema returns the declared schema, nil when no flag declares one.
func (f *schemaFlags) schema() (*coordinator.DataSchema, error) {
	if f.features == 0 && len(f.inputShape) == 0 && len(f.classes) == 0 && f.standardize == "" && f.stats == "" {
		return nil, nil
	}
	d := &coordinator.DataSchema{Features: f.features, InputShape: f.inputShape, Classes: f.classes, Standardize: f.standardize}
	switch {
	case f.stats != "" && f.standardize != coordinator.SchemaStandardizeJob:
		return nil, usagef("--stats goes with --standardize job")
	case f.standardize == coordinator.SchemaStandardizeJob && f.stats == "":
		return nil, usagef("--standardize job needs --stats FILE, the reference mean and std")
	case f.stats != "":
		st, err := readStats(f.stats)
		if err != nil {
			return nil, usagef("--stats %s: %v", f.stats, err)
		}
		d.Mean, d.Std = st.Mean, st.Std
	}
	return d, nil
}

// statsFile is the JSON of reference statistics (--stats of "jobs create"
// and of "mfn node").
type statsFile struct {
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
}

// maxStatsFile bounds a --stats file (2^20 features as JSON decimals).
const maxStatsFile = 64 << 20

func readStats(path string) (statsFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return statsFile{}, err
	}
	if fi.Size() > maxStatsFile {
		return statsFile{}, fmt.Errorf("%d bytes, limit %d", fi.Size(), maxStatsFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return statsFile{}, err
	}
	var st statsFile
	if err := json.Unmarshal(data, &st); err != nil {
		return statsFile{}, err
	}
	if len(st.Mean) == 0 || len(st.Mean) != len(st.Std) {
		return statsFile{}, fmt.Errorf("mean and std must have the same, non-zero length (have %d and %d)", len(st.Mean), len(st.Std))
	}
	return st, nil
}
