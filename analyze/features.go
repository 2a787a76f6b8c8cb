package analyze

import (
	"context"
	"fmt"

	"github.com/mfn/mfn/sim"
)

// FeatureConfig says what AnalyzeFeatures looks at.
type FeatureConfig struct {
	// Features are the numeric columns analysed. Nil means every one of
	// the 18 sim.FeatureNames that the table holds.
	Features []string
	// ColorBy names the column that colours the PCA scatter; it is only
	// checked here (it must exist and not be Other). Empty: none.
	ColorBy string
	// Label names the column the importance model predicts (see Labels);
	// empty skips the permutation importance. The label column is never
	// one of its own predictors.
	Label      string
	Importance ImportanceConfig
}

// Matrix is a square matrix with named rows and columns.
type Matrix struct {
	Names  []string  `json:"names"`
	Values [][]Float `json:"values"`
}

// FeatureReport holds every number of a feature analysis.
type FeatureReport struct {
	Rows        int               `json:"rows"`
	Features    []string          `json:"features"`
	Stats       []ColumnStats     `json:"stats"`
	Correlation Matrix            `json:"correlation"`
	PCA         *PCAResult        `json:"pca"`
	ColorBy     string            `json:"color_by,omitempty"`
	Importance  *ImportanceResult `json:"importance,omitempty"`
}

// numericColumns returns the table's columns named by names, which must be
// numeric (Bool counts as numeric 0/1). Errors wrap ErrNoColumn naming
// the first missing or non-numeric column.
func (t *Table) numericColumns(names []string) ([][]float64, error) {
	out := make([][]float64, len(names))
	for j, name := range names {
		c, err := t.Column(name)
		if err != nil {
			return nil, err
		}
		if c.Kind != Numeric && c.Kind != Bool {
			return nil, fmt.Errorf("%w: %q is a %s column, not numeric", ErrNoColumn, name, c.Kind)
		}
		out[j] = c.Values
	}
	return out, nil
}

// AnalyzeFeatures describes the feature columns of t: per-column
// statistics, the Pearson correlation matrix, a standardised PCA and, when
// cfg.Label is set, the permutation importance of each feature for
// predicting it. Errors: ErrNoColumn naming a missing or unsuitable
// column, ErrTooFew for fewer than 2 rows or no usable feature, the errors
// of PermutationImportance.
func AnalyzeFeatures(ctx context.Context, t *Table, cfg FeatureConfig) (*FeatureReport, error) {
	names := cfg.Features
	if names == nil {
		for _, f := range sim.FeatureNames {
			if _, err := t.Column(f); err == nil {
				names = append(names, f)
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%w: the table has none of the 18 feature columns (D_box, D_r2, ...)", ErrNoColumn)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no feature columns chosen", ErrTooFew)
	}
	if t.Rows < 2 {
		return nil, fmt.Errorf("%w: %d rows; the analysis needs at least 2", ErrTooFew, t.Rows)
	}
	cols, err := t.numericColumns(names)
	if err != nil {
		return nil, err
	}
	if cfg.ColorBy != "" {
		c, err := t.Column(cfg.ColorBy)
		if err != nil {
			return nil, err
		}
		if c.Kind == Other {
			return nil, fmt.Errorf("%w: %q has too many distinct text values to colour by", ErrNoColumn, cfg.ColorBy)
		}
	}
	r := &FeatureReport{Rows: t.Rows, Features: names, ColorBy: cfg.ColorBy}
	for j, name := range names {
		r.Stats = append(r.Stats, Describe(name, cols[j]))
	}
	corr, err := Correlation(cols)
	if err != nil {
		return nil, err
	}
	r.Correlation = Matrix{Names: names, Values: make([][]Float, len(corr))}
	for i, row := range corr {
		r.Correlation.Values[i] = make([]Float, len(row))
		for j, v := range row {
			r.Correlation.Values[i][j] = Float(v)
		}
	}
	if r.PCA, err = PCA(names, cols, true); err != nil {
		return nil, err
	}
	if cfg.Label == "" {
		return r, nil
	}
	lc, err := t.Column(cfg.Label)
	if err != nil {
		return nil, err
	}
	y, classes, err := Labels(lc, cfg.Importance.withDefaults().Bins)
	if err != nil {
		return nil, err
	}
	var pn []string
	var pc [][]float64
	for j, name := range names {
		if name != cfg.Label {
			pn, pc = append(pn, name), append(pc, cols[j])
		}
	}
	if len(pn) == 0 {
		return nil, fmt.Errorf("%w: no feature left to predict %q from", ErrTooFew, cfg.Label)
	}
	if r.Importance, err = PermutationImportance(ctx, pn, pc, y, classes, cfg.Importance); err != nil {
		return nil, err
	}
	r.Importance.Label = cfg.Label
	return r, nil
}
