package analyze

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"

	"github.com/mfn/mfn/learn"
)

// ErrImportanceConfig is wrapped by errors about an ImportanceConfig; the
// message names the field and its valid range.
var ErrImportanceConfig = errors.New("analyze: invalid importance configuration")

// MaxImportanceRows bounds the rows used to train and test the model of a
// permutation importance; larger tables are subsampled (seeded).
const MaxImportanceRows = 20000

// MaxClasses bounds the classes of a label column.
const MaxClasses = 50

// ImportanceConfig sets how the model behind a permutation importance is
// trained and tested. Zero values mean the documented defaults.
type ImportanceConfig struct {
	Model        string  // "softmax" (default) or "mlp"
	Hidden       int     // MLP hidden units; zero means 32, valid [1, 1024]
	Epochs       int     // passes over the training rows; zero means 100, valid [1, 10000]
	LR           float64 // SGD learning rate (momentum 0.9); zero means 0.1, valid (0, 10]
	Repeats      int     // permutations per feature; zero means 5, valid [1, 100]
	TestFraction float64 // share of rows held out; zero means 0.3, valid (0, 1)
	Bins         int     // quantile classes of a continuous label; zero means 3, valid [2, MaxClasses]
	Seed         uint64  // seeds the split, the model, training and permutations
}

func (c ImportanceConfig) withDefaults() ImportanceConfig {
	if c.Model == "" {
		c.Model = "softmax"
	}
	if c.Hidden == 0 {
		c.Hidden = 32
	}
	if c.Epochs == 0 {
		c.Epochs = 100
	}
	if c.LR == 0 {
		c.LR = 0.1
	}
	if c.Repeats == 0 {
		c.Repeats = 5
	}
	if c.TestFraction == 0 {
		c.TestFraction = 0.3
	}
	if c.Bins == 0 {
		c.Bins = 3
	}
	return c
}

// Validate returns an error wrapping ErrImportanceConfig naming the first
// bad field (after defaults are applied).
func (c ImportanceConfig) Validate() error {
	c = c.withDefaults()
	bad := func(f string, v any, r string) error {
		return fmt.Errorf("%w: %s %v must be %s", ErrImportanceConfig, f, v, r)
	}
	switch {
	case c.Model != "softmax" && c.Model != "mlp":
		return bad("Model", strconv.Quote(c.Model), "softmax or mlp")
	case c.Hidden < 1 || c.Hidden > 1024:
		return bad("Hidden", c.Hidden, "in [1, 1024]")
	case c.Epochs < 1 || c.Epochs > 10000:
		return bad("Epochs", c.Epochs, "in [1, 10000]")
	case !(c.LR > 0 && c.LR <= 10):
		return bad("LR", c.LR, "in (0, 10]")
	case c.Repeats < 1 || c.Repeats > 100:
		return bad("Repeats", c.Repeats, "in [1, 100]")
	case !(c.TestFraction > 0 && c.TestFraction < 1):
		return bad("TestFraction", c.TestFraction, "in (0, 1)")
	case c.Bins < 2 || c.Bins > MaxClasses:
		return bad("Bins", c.Bins, fmt.Sprintf("in [2, %d]", MaxClasses))
	}
	return nil
}

// Labels turns a column into class labels: a Bool or Category column's
// values, a numeric column with at most bins distinct values its values,
// and any other numeric column its quantile bin (bins classes of about
// equal size; ties may merge bins). Classes that no row takes are dropped.
// Returns y (one class per row) and the class names. Errors wrap
// ErrTooFew when fewer than 2 classes remain, ErrNoColumn for an Other
// column.
func Labels(c *Column, bins int) (y []int, classes []string, err error) {
	if c.Kind == Other {
		return nil, nil, fmt.Errorf("%w: %q has too many distinct text values to be a label", ErrNoColumn, c.Name)
	}
	raw := make([]int, len(c.Values))
	var names []string
	distinct := slices.Compact(slices.Sorted(slices.Values(c.Values)))
	switch {
	case c.Discrete():
		for i, v := range c.Values {
			raw[i] = int(v)
		}
		names = c.Levels
	case len(distinct) <= bins:
		for i, v := range c.Values {
			raw[i], _ = slices.BinarySearch(distinct, v)
		}
		for _, v := range distinct {
			names = append(names, strconv.FormatFloat(v, 'g', 6, 64))
		}
	default:
		sorted := slices.Sorted(slices.Values(c.Values))
		edges := make([]float64, bins-1)
		for k := range edges {
			edges[k] = sorted[(k+1)*len(sorted)/bins]
		}
		for i, v := range c.Values {
			raw[i] = sort.SearchFloat64s(edges, math.Nextafter(v, math.Inf(1))) // bins are [lo, hi)
		}
		lo := sorted[0]
		for k := range bins {
			hi := sorted[len(sorted)-1]
			op := "]"
			if k < bins-1 {
				hi, op = edges[k], ")"
			}
			names = append(names, fmt.Sprintf("[%.4g, %.4g%s", lo, hi, op))
			lo = hi
		}
	}
	// Drop classes nobody takes and renumber.
	used := map[int]int{}
	var keep []int
	for _, r := range raw {
		if _, ok := used[r]; !ok {
			used[r] = 0
			keep = append(keep, r)
		}
	}
	slices.Sort(keep)
	for i, r := range keep {
		used[r] = i
		classes = append(classes, names[r])
	}
	if len(classes) < 2 {
		return nil, nil, fmt.Errorf("%w: label %q takes only %d value(s); a label needs at least 2", ErrTooFew, c.Name, len(classes))
	}
	if len(classes) > MaxClasses {
		return nil, nil, fmt.Errorf("%w: label %q has %d classes, more than %d", ErrImportanceConfig, c.Name, len(classes), MaxClasses)
	}
	y = make([]int, len(raw))
	for i, r := range raw {
		y[i] = used[r]
	}
	return y, classes, nil
}

// FeatureImportance is the accuracy lost when one feature is shuffled.
type FeatureImportance struct {
	Feature string  `json:"feature"`
	Drop    float64 `json:"accuracy_drop"` // baseline − mean accuracy with the feature permuted
	Std     float64 `json:"std"`           // population std of the drop over the repeats
}

// ImportanceResult is a permutation feature importance.
type ImportanceResult struct {
	Label     string   `json:"label"`
	Classes   []string `json:"classes"`
	Model     string   `json:"model"`
	TrainRows int      `json:"train_rows"`
	TestRows  int      `json:"test_rows"`
	// TrainAccuracy and Baseline are the model's accuracy on the training
	// and the held-out rows; Chance the share of the most common class
	// among the held-out rows.
	TrainAccuracy float64 `json:"train_accuracy"`
	Baseline      float64 `json:"test_accuracy"`
	Chance        float64 `json:"chance_accuracy"`
	// Features in decreasing order of Drop (ties in input order).
	Features []FeatureImportance `json:"features"`
}

// PermutationImportance trains a learn model (cfg.Model) to predict y
// (classes labels) from the feature columns, on a seeded random split of
// the rows (standardised with the training statistics), and measures for
// each feature how much the held-out accuracy drops when that feature's
// held-out values are permuted (Breiman 2001; the model is not
// retrained). Tables beyond MaxImportanceRows rows are subsampled. ctx is
// checked between epochs' worth of work. Errors: ErrImportanceConfig,
// ErrTooFew (fewer than 2 training or 1 test row per split), learn's
// ErrDiverged.
func PermutationImportance(ctx context.Context, names []string, cols [][]float64, y []int, classes []string, cfg ImportanceConfig) (*ImportanceResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	d := len(cols)
	if d == 0 || len(names) != d {
		return nil, fmt.Errorf("%w: no feature columns", ErrTooFew)
	}
	n := len(y)
	for j := range cols {
		if len(cols[j]) != n {
			panic("analyze: PermutationImportance columns and labels of different lengths")
		}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d666e2d696d70)) // "mfn-imp"
	idx := rng.Perm(n)
	if len(idx) > MaxImportanceRows {
		idx = idx[:MaxImportanceRows]
	}
	nTest := int(math.Round(cfg.TestFraction * float64(len(idx))))
	if nTest < 1 || len(idx)-nTest < 2 {
		return nil, fmt.Errorf("%w: %d rows cannot be split into training and test rows", ErrTooFew, n)
	}
	build := func(rows []int) *learn.Dataset {
		ds := &learn.Dataset{X: make([]float64, len(rows)*d), Y: make([]int, len(rows)), Dim: d, Classes: len(classes)}
		for k, i := range rows {
			for j := range d {
				ds.X[k*d+j] = cols[j][i]
			}
			ds.Y[k] = y[i]
		}
		return ds
	}
	test, train := build(idx[:nTest]), build(idx[nTest:])
	if err := train.Validate(); err != nil {
		return nil, err
	}
	learn.Standardize(train, test)
	m, err := learn.NewModel(learn.Arch{Kind: cfg.Model, Dim: d, Hidden: cfg.Hidden, Classes: len(classes)}, rng)
	if err != nil {
		return nil, err
	}
	opt := &learn.SGD{LR: cfg.LR, Momentum: 0.9}
	// Train in chunks of epochs so that cancellation is prompt.
	for done := 0; done < cfg.Epochs; done += 10 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := learn.TrainLocal(m, train, learn.LocalConfig{Epochs: min(10, cfg.Epochs-done)}, opt, rng); err != nil {
			return nil, fmt.Errorf("analyze: training the %s model: %w", cfg.Model, err)
		}
	}
	res := &ImportanceResult{Label: "", Classes: classes, Model: cfg.Model, TrainRows: train.Len(), TestRows: test.Len()}
	res.TrainAccuracy, _ = learn.Accuracy(m, train)
	res.Baseline, _ = learn.Accuracy(m, test)
	counts := test.LabelCounts()
	res.Chance = float64(slices.Max(counts)) / float64(test.Len())
	perm := &learn.Dataset{X: make([]float64, len(test.X)), Y: test.Y, Dim: d, Classes: test.Classes}
	col := make([]float64, test.Len())
	for j := range d {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		drops := make([]float64, cfg.Repeats)
		for r := range drops {
			copy(perm.X, test.X)
			for i := range col {
				col[i] = test.X[i*d+j]
			}
			rng.Shuffle(len(col), func(a, b int) { col[a], col[b] = col[b], col[a] })
			for i, v := range col {
				perm.X[i*d+j] = v
			}
			acc, _ := learn.Accuracy(m, perm)
			drops[r] = res.Baseline - acc
		}
		mu := mean(drops)
		sd := 0.0
		for _, v := range drops {
			sd += (v - mu) * (v - mu)
		}
		res.Features = append(res.Features, FeatureImportance{Feature: names[j], Drop: mu, Std: math.Sqrt(sd / float64(len(drops)))})
	}
	sort.SliceStable(res.Features, func(a, b int) bool { return res.Features[a].Drop > res.Features[b].Drop })
	return res, nil
}
