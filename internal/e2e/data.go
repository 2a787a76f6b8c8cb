package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/node"
	"github.com/mfn/mfn/sitedata"
)

// DataTask is the task name of a job on a user's file (Options.Data).
const DataTask = "site-data"

// fileSetup is a federation over a user's file: the test part kept by the
// cluster, each node's share written as its own file, and the job's
// reference statistics.
type fileSetup struct {
	arch      learn.Arch
	test      *learn.Dataset // standardised with std
	std       learn.Standardizer
	classes   []string
	features  []string
	nodeData  []node.DataConfig
	trainRows int
}

// setupFile loads o.Data, deals it as the demo does with a file: a seeded
// train/test split (the test part never reaches a node), reference
// statistics fitted on the training part (the job's standardisation, so
// every site scales inputs alike), and the training part partitioned
// across the nodes by o.Partition. Node i's share is written as CSV into
// its state directory, from which its agent loads it as any site loads its
// own file.
func setupFile(o Options, dir string) (*fileSetup, error) {
	l, err := sitedata.Load(o.Data, sitedata.Options{LabelColumn: o.LabelColumn, FeatureColumns: o.FeatureColumns,
		DropInvalid: o.DropInvalid, Schema: sitedata.Schema{Classes: o.Classes}})
	if err != nil {
		return nil, err
	}
	d := l.Data
	classes := o.Classes
	if len(classes) == 0 {
		for c := range d.Classes {
			classes = append(classes, strconv.Itoa(c))
		}
	}
	spec := o.Model
	if spec == "" {
		spec = "softmax"
		if o.Hidden > 0 {
			spec = fmt.Sprintf("mlp:%d", o.Hidden)
		}
	}
	arch, err := learn.ParseArch(spec, d.Dim, d.Classes)
	if err != nil {
		return nil, fmt.Errorf("e2e: Model: %w", err)
	}
	part, err := learn.ParsePartition(o.partition())
	if err != nil {
		return nil, fmt.Errorf("e2e: Partition: %w", err)
	}
	frac := o.TestFraction
	if frac == 0 {
		frac = 0.2
	}
	train, test, err := learn.SplitTrainTest(d, frac, newRand(o.Seed, 0x5e57)) // "test"
	if err != nil {
		return nil, fmt.Errorf("e2e: %s: %w", o.Data, err)
	}
	std := learn.FitStandardizer(train)
	std.Apply(test)
	shares, err := learn.PartitionDataset(train, part, o.Nodes, newRand(o.Seed, 0x9a27)) // "part"
	if err != nil {
		return nil, fmt.Errorf("e2e: partition %s of %d training rows over %d nodes: %w", part, train.Len(), o.Nodes, err)
	}
	fs := &fileSetup{arch: arch, test: test, std: std, classes: classes, features: l.Features, trainRows: train.Len()}
	for i, s := range shares {
		nd := nodeDir(dir, i)
		if err := os.MkdirAll(nd, 0o700); err != nil {
			return nil, err
		}
		path := filepath.Join(nd, "data.csv")
		if err := writeCSV(path, s, l.Features, classes); err != nil {
			return nil, err
		}
		fs.nodeData = append(fs.nodeData, node.DataConfig{Task: DataTask, Seed: nodeSeed(o, i), File: node.FileData{
			Path: path, FeatureColumns: l.Features, Classes: classes,
			Standardize: node.StandardizeJob, Mean: std.Mean, Std: std.Std,
		}})
	}
	return fs, nil
}

// writeCSV writes d with a header of the feature names and "label", the
// labels as class names; %g of float64 reads back bit for bit.
func writeCSV(path string, d *learn.Dataset, names, classes []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.WriteString(strings.Join(quoteAll(names), ",") + ",label\n")
	for i, y := range d.Y {
		for _, v := range d.X[i*d.Dim : (i+1)*d.Dim] {
			w.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
			w.WriteByte(',')
		}
		w.WriteString(quote(classes[y]) + "\n")
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = quote(v)
	}
	return out
}

// quote writes a CSV field, quoted when it holds a comma, quote or newline.
func quote(s string) string {
	if strings.ContainsAny(s, ",\"\n\r") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

// shapeOf is the job's announced layer shape of arch (nil for the CNN,
// which nodes infer from the parameter count).
func shapeOf(arch learn.Arch) []int {
	switch arch.Kind {
	case "softmax":
		return []int{arch.Dim, arch.Classes}
	case "mlp":
		s := []int{arch.Dim, arch.Hidden}
		for _, h := range arch.Deeper {
			if h == 0 {
				break
			}
			s = append(s, h)
		}
		return append(s, arch.Classes)
	}
	return nil
}

// centralized trains the job's model on the nodes' pooled training rows
// with the federation's budget (learn.CentralizedReference).
func centralized(ctx context.Context, o Options, arch learn.Arch, trains []*learn.Dataset, test *learn.Dataset) (float64, error) {
	pooled := &learn.Dataset{Dim: arch.Dim, Classes: arch.Classes}
	for _, t := range trains {
		pooled.X = append(pooled.X, t.X...)
		pooled.Y = append(pooled.Y, t.Y...)
	}
	cfg := learn.FederationConfig{Arch: arch, Rounds: o.Rounds, Local: learn.LocalConfig{Epochs: o.Train.Epochs, Batch: o.Train.Batch},
		LR: o.Train.LR, Momentum: o.Train.Momentum, WeightDecay: o.Train.WeightDecay, Seed: o.Seed}
	return learn.CentralizedReference(ctx, cfg, len(trains), pooled, test)
}

// writeModel writes the final global model as an mfn-model/1 file,
// atomically (temporary file renamed over path).
func writeModel(path string, fs *fileSetup, params []float64) error {
	mf := &learn.ModelFile{Format: learn.ModelFileFormat, Spec: fs.arch.Spec(), Dim: fs.arch.Dim, Classes: fs.classes,
		Features: fs.features, Mean: fs.std.Mean, Std: fs.std.Std, Params: params}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	err = learn.WriteModelFile(tmp, mf)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("e2e: write model %s: %w", path, err)
	}
	return nil
}
