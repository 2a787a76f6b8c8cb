package analyze

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// ErrTooFew is wrapped when an analysis has too few rows or usable columns.
var ErrTooFew = errors.New("analyze: too few rows or columns")

// Float is a float64 that encodes NaN (an undefined value, such as the
// correlation of a constant column) as JSON null.
type Float float64

// MarshalJSON writes the number, or null for NaN or ±Inf.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number, or null as NaN.
func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	*f = Float(v)
	return err
}

// ColumnStats summarises one column.
type ColumnStats struct {
	Name   string  `json:"name"`
	Count  int     `json:"count"`
	Mean   float64 `json:"mean"`
	Std    float64 `json:"std"` // sample standard deviation (n−1); 0 for fewer than 2 values
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
	// Constant is true when every value is the same; such a column has
	// no correlation and is left out of the PCA.
	Constant bool `json:"constant"`
}

// Describe summarises the values x of the column called name. An empty x
// gives zero statistics and Constant true.
func Describe(name string, x []float64) ColumnStats {
	s := ColumnStats{Name: name, Count: len(x), Constant: true}
	if len(x) == 0 {
		return s
	}
	sorted := slices.Clone(x)
	slices.Sort(sorted)
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	s.Median = stat.Quantile(0.5, stat.LinInterp, sorted, nil)
	s.Constant = s.Min == s.Max
	if len(x) < 2 {
		s.Mean = x[0]
		return s
	}
	s.Mean, s.Std = stat.MeanStdDev(x, nil)
	if s.Constant {
		s.Mean, s.Std = x[0], 0
	}
	return s
}

// Correlation returns the Pearson correlation matrix of the columns
// (each a slice of the same length). The diagonal is 1, except that every
// entry involving a constant column is NaN (undefined). It returns an error
// wrapping ErrTooFew for fewer than 2 rows, and panics if the columns have
// different lengths (a programming error).
func Correlation(cols [][]float64) ([][]float64, error) {
	d := len(cols)
	if d == 0 || len(cols[0]) < 2 {
		return nil, fmt.Errorf("%w: correlation needs at least 2 rows", ErrTooFew)
	}
	constant := make([]bool, d)
	for j, c := range cols {
		if len(c) != len(cols[0]) {
			panic("analyze: Correlation columns of different lengths")
		}
		constant[j] = slices.Min(c) == slices.Max(c)
	}
	out := make([][]float64, d)
	for i := range out {
		out[i] = make([]float64, d)
	}
	for i := range d {
		for j := i; j < d; j++ {
			v := math.NaN()
			switch {
			case constant[i] || constant[j]:
			case i == j:
				v = 1
			default:
				v = max(-1, min(1, stat.Correlation(cols[i], cols[j], nil)))
			}
			out[i][j], out[j][i] = v, v
		}
	}
	return out, nil
}

// PCAResult is a principal component analysis.
type PCAResult struct {
	// Columns are the columns analysed; Excluded the constant ones left
	// out (they carry no variance and cannot be standardised).
	Columns  []string `json:"columns"`
	Excluded []string `json:"excluded"`
	// Standardized: every column was centred and divided by its sample
	// standard deviation first, so the analysis is of the correlation
	// matrix and the variances sum to the number of columns.
	Standardized bool `json:"standardized"`
	// Variance[k] is the variance of the scores on component k (sample,
	// n−1), in decreasing order; Explained[k] its share of the total.
	Variance  []float64 `json:"variance"`
	Explained []float64 `json:"explained_variance_ratio"`
	// Components[k][j] is the weight of Columns[j] in component k, a unit
	// vector; the sign is chosen so that its largest-magnitude weight is
	// positive.
	Components [][]float64 `json:"components"`
	// Scores[i] holds row i's coordinates on the first two components
	// (the second is 0 when only one column is analysed).
	Scores [][2]float64 `json:"-"`
}

// PCA runs a principal component analysis (gonum's stat.PC) of the named
// columns, optionally standardised. Constant columns are excluded. Errors
// wrap ErrTooFew when fewer than 2 rows or no non-constant column remain.
func PCA(names []string, cols [][]float64, standardize bool) (*PCAResult, error) {
	r := &PCAResult{Standardized: standardize, Columns: []string{}, Excluded: []string{}}
	var use [][]float64
	for j, c := range cols {
		if len(c) < 2 || slices.Min(c) == slices.Max(c) {
			r.Excluded = append(r.Excluded, names[j])
			continue
		}
		r.Columns = append(r.Columns, names[j])
		use = append(use, c)
	}
	if len(use) == 0 {
		return nil, fmt.Errorf("%w: PCA needs at least 2 rows and a non-constant column", ErrTooFew)
	}
	n, d := len(use[0]), len(use)
	x := mat.NewDense(n, d, nil)
	for j, c := range use {
		m, s := stat.MeanStdDev(c, nil)
		if !standardize {
			s = 1
		}
		for i, v := range c {
			x.Set(i, j, (v-m)/s)
		}
	}
	var pc stat.PC
	if !pc.PrincipalComponents(x, nil) {
		return nil, fmt.Errorf("analyze: PCA did not converge")
	}
	r.Variance = pc.VarsTo(nil)
	total := 0.0
	for _, v := range r.Variance {
		total += v
	}
	var vecs mat.Dense
	pc.VectorsTo(&vecs)
	_, k := vecs.Dims()
	r.Explained = make([]float64, len(r.Variance))
	for i, v := range r.Variance {
		if total > 0 {
			r.Explained[i] = v / total
		}
	}
	r.Components = make([][]float64, k)
	for c := range k {
		v := mat.Col(nil, c, &vecs)
		big := 0
		for j := range v {
			if math.Abs(v[j]) > math.Abs(v[big]) {
				big = j
			}
		}
		if v[big] < 0 {
			for j := range v {
				v[j] = -v[j]
			}
		}
		r.Components[c] = v
	}
	// x is centred (and scaled); scores are its projections.
	r.Scores = make([][2]float64, n)
	for i := range n {
		row := x.RawRowView(i)
		for c := 0; c < min(2, k); c++ {
			s := 0.0
			for j, w := range r.Components[c] {
				s += w * row[j]
			}
			r.Scores[i][c] = s
		}
	}
	return r, nil
}
