package sim

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
)

// Default box-counting parameters of the reference feature extractor.
const (
	DefaultMinBox    = 2 // smallest box edge, cells
	DefaultNumScales = 5 // number of geometrically spaced box sizes
)

// boxSizesJSON is the reference's table of box sizes for the default
// parameters, keyed by the largest box. NumPy computes them as
// np.unique(np.geomspace(2, max, 5).astype(int)); its floating point makes
// the list irregular (for max = 32 it is [2, 4, 7, 16, 32]: 7 where 8 was
// meant) and Go's math.Pow rounds differently, so the list is tabulated
// rather than recomputed.
//
//go:embed box_sizes.json
var boxSizesJSON []byte

var defaultBoxTable = sync.OnceValue(func() map[int][]int {
	var doc struct {
		MinBox    int              `json:"min_box_size"`
		NumScales int              `json:"num_scales"`
		Sizes     map[string][]int `json:"sizes_by_max_box"`
	}
	if err := json.Unmarshal(boxSizesJSON, &doc); err != nil {
		panic("sim: embedded box_sizes.json: " + err.Error())
	}
	if doc.MinBox != DefaultMinBox || doc.NumScales != DefaultNumScales {
		panic("sim: embedded box_sizes.json has unexpected parameters")
	}
	t := make(map[int][]int, len(doc.Sizes))
	for k, v := range doc.Sizes {
		m, err := strconv.Atoi(k)
		if err != nil {
			panic("sim: embedded box_sizes.json: bad key " + k)
		}
		t[m] = v
	}
	return t
})

// BoxSizes returns the box edges used to estimate the box-counting
// dimension of an n×n grid. The largest box is
// max(minBox, min(minBox·2^(numScales−1), n/2 if n ≥ 4 else n)).
// For the default parameters (minBox 2, 5 scales) the sizes come from the
// reference table (see the package doc); for any other parameters they are
// minBox·(max/minBox)^(k/(numScales−1)) for k = 0..numScales−1, rounded down,
// with duplicates removed. It returns an error if minBox < 1 or numScales < 2.
func BoxSizes(n, minBox, numScales int) ([]int, error) {
	if minBox < 1 {
		return nil, fmt.Errorf("box counting: min box %d must be ≥ 1", minBox)
	}
	if numScales < 2 || numScales > 62 {
		return nil, fmt.Errorf("box counting: number of scales %d must be in [2, 62]", numScales)
	}
	maxBox := minBox << (numScales - 1)
	lim := n
	if n >= 4 {
		lim = n / 2
	}
	maxBox = min(maxBox, lim)
	maxBox = max(maxBox, minBox)
	if minBox == DefaultMinBox && numScales == DefaultNumScales {
		if s, ok := defaultBoxTable()[maxBox]; ok {
			return append([]int(nil), s...), nil
		}
	}
	ratio := float64(maxBox) / float64(minBox)
	sizes := make([]int, 0, numScales)
	for k := range numScales {
		v := float64(minBox) * math.Pow(ratio, float64(k)/float64(numScales-1))
		sizes = append(sizes, int(math.Floor(v)))
	}
	sort.Ints(sizes)
	out := sizes[:0]
	for i, s := range sizes {
		if i == 0 || s != sizes[i-1] {
			out = append(out, s)
		}
	}
	return out, nil
}

// BoxDimension estimates the box-counting (Minkowski–Bouligand) dimension
// of the active cells of an n×n row-major mask using the given box edges.
// For each edge s with k = n/s > 0 it covers the top-left k·s × k·s square
// with k×k boxes and counts those holding an active cell; sizes with a zero
// count are dropped. The dimension is the least-squares slope of
// ln(count) against ln(1/s); r2 is the fit's coefficient of determination
// clamped to [0, 1] (0 when all counts are equal). With fewer than two
// usable sizes both results are 0. The slope is not clamped: saturated
// masks can give slightly more than 2.
func BoxDimension(mask []bool, n int, sizes []int) (dim, r2 float64) {
	if len(mask) != n*n {
		panic(fmt.Sprintf("sim: BoxDimension mask has %d cells, want %d", len(mask), n*n))
	}
	var xs, ys [64]float64
	m := 0
	for _, s := range sizes {
		if s <= 0 {
			continue
		}
		k := n / s
		if k == 0 {
			continue
		}
		c := countBoxes(mask, n, s, k)
		if c > 0 && m < len(xs) {
			xs[m] = math.Log(1.0 / float64(s))
			ys[m] = math.Log(float64(c))
			m++
		}
	}
	if m < 2 {
		return 0, 0
	}
	return fitLine(xs[:m], ys[:m])
}

// countBoxes counts the occupied boxes of edge s in the top-left k·s square.
func countBoxes(mask []bool, n, s, k int) int {
	count := 0
	for bi := range k {
		for bj := range k {
			if boxOccupied(mask, n, bi*s, bj*s, s) {
				count++
			}
		}
	}
	return count
}

func boxOccupied(mask []bool, n, r0, c0, s int) bool {
	for r := r0; r < r0+s; r++ {
		row := mask[r*n+c0 : r*n+c0+s]
		for _, b := range row {
			if b {
				return true
			}
		}
	}
	return false
}

// fitLine fits y = slope·x + c by least squares and returns the slope and
// R² = 1 − SS_res/SS_tot clamped to [0, 1] (0 when SS_tot is 0).
func fitLine(xs, ys []float64) (slope, r2 float64) {
	nf := float64(len(xs))
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/nf, sy/nf
	var sxx, sxy float64
	for i := range xs {
		dx := xs[i] - mx
		sxx += float64(dx * dx)
		sxy += float64(dx * (ys[i] - my))
	}
	if sxx == 0 {
		return 0, 0
	}
	slope = sxy / sxx
	icept := my - float64(slope*mx)
	var ssRes, ssTot float64
	for i := range xs {
		p := float64(slope*xs[i]) + icept
		ssRes += float64((ys[i] - p) * (ys[i] - p))
		ssTot += float64((ys[i] - my) * (ys[i] - my))
	}
	if ssTot > 0 {
		r2 = 1 - ssRes/ssTot
	}
	return slope, min(max(r2, 0), 1)
}
