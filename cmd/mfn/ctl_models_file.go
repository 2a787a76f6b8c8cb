package main

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/sitedata"
)

// formatModelFile is "models get --format model": an mfn-model/1 file.
const formatModelFile = "model"

// modelFileFlags are what a model file needs beyond the job: class names
// and the input scaling of a site's training file.
type modelFileFlags struct {
	data, labelColumn, standardize string
	featureColumns, classes        []string
}

func (f *modelFileFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.data, "data", "", "with --format model: a site's training file, for feature names and scaling (as mfn node --data reads it)")
	fl.StringVar(&f.labelColumn, "label-column", sitedata.DefaultLabelColumn, "with --data: its label column")
	fl.StringSliceVar(&f.featureColumns, "feature-columns", nil, "with --data: its feature columns (default: every column but the label)")
	fl.StringSliceVar(&f.classes, "classes", nil, "with --format model: class names in class-id order (default 0..K-1)")
	fl.StringVar(&f.standardize, "standardize", "site", "with --data: the nodes' scaling, site (--data's mean and std go into the file) or none")
}

func (f *modelFileFlags) check() error {
	if f.standardize != "site" && f.standardize != "none" {
		return usagef("--standardize %q: must be site or none", f.standardize)
	}
	seen := map[string]bool{}
	for _, c := range f.classes {
		if c == "" || seen[c] {
			return usagef("--classes: empty or repeated class %q", c)
		}
		seen[c] = true
	}
	return nil
}

// writeJobModelFile downloads a model version (hash-checked), builds its
// mfn-model/1 file and writes it to out.
func writeJobModelFile(env *cmdEnv, cl *api.Client, job, version, out string, f *modelFileFlags) error {
	j, err := cl.Job(env.ctx, job)
	if err != nil {
		return ctlError(cl, err)
	}
	var inputs, classes int
	var features []string
	var std *learn.Standardizer
	schema := j.Spec.Schema // the job's data schema: its class list by default
	if len(f.classes) == 0 && schema != nil && len(schema.Classes) > 0 {
		f.classes = schema.Classes
	}
	if f.data != "" {
		opt := sitedata.Options{LabelColumn: f.labelColumn, FeatureColumns: f.featureColumns, Schema: sitedata.Schema{Classes: f.classes}}
		if f.standardize == "site" {
			opt.Schema.Standardize = sitedata.StandardizeSite
		}
		l, err := sitedata.Load(f.data, opt)
		if err != nil {
			return usagef("--data %s: %v", f.data, err)
		}
		inputs, classes, features, std = l.Data.Dim, l.Data.Classes, l.Features, l.Stats
	}
	if len(f.classes) > 0 {
		classes = len(f.classes)
	}
	if schema != nil {
		inputs, std = schemaModelFile(schema, inputs, std) // schemamodelfile.go
	}
	arch, err := learn.ArchForJob(j.Spec.Shape, j.Spec.Dim, inputs, classes)
	if err != nil {
		return usagef("job %s (shape %v, dim %d): %v", job, j.Spec.Shape, j.Spec.Dim, err)
	}
	names := f.classes
	if len(names) == 0 {
		for k := range arch.Classes {
			names = append(names, strconv.Itoa(k))
		}
	}
	if len(names) != arch.Classes {
		return usagef("--classes has %d names, the job's model has %d classes", len(names), arch.Classes)
	}
	var buf bytes.Buffer
	hash, _, err := cl.ModelParams(env.ctx, job, version, api.FormatFloat64, &buf)
	if err != nil {
		return ctlError(cl, err)
	}
	if got, err := modelHashOf(buf.Bytes(), api.FormatFloat64); err != nil || got != hash {
		return fmt.Errorf("downloaded model hash %s differs from the server's %s (%v); nothing written", got, hash, err)
	}
	params, err := paramsOf(buf.Bytes())
	if err != nil {
		return err
	}
	mf := &learn.ModelFile{Format: learn.ModelFileFormat, Spec: arch.Spec(), Dim: arch.Dim, Classes: names, Features: features, Params: params}
	if std != nil {
		mf.Mean, mf.Std = std.Mean, std.Std
	}
	var file bytes.Buffer
	if err := learn.WriteModelFile(&file, mf); err != nil {
		return fmt.Errorf("job %s model %s: %w", job, version, err)
	}
	if err := writeOutput(env.stdout, out, file.Bytes()); err != nil {
		return err
	}
	scaling := "no scaling"
	switch {
	case schemaScalesByJob(schema):
		scaling = "the job's reference scaling"
	case std != nil:
		scaling = "scaling of " + f.data
	}
	fmt.Fprintf(env.stderr, "wrote %s: model file (%s, %d inputs, %d classes, %s), model hash %s\n", out, arch.Spec(), arch.Dim, arch.Classes, scaling, hash)
	return nil
}
