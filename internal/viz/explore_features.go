package viz

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/mfn/mfn/analyze"
)

// FeatureHistograms draws one histogram per feature of the report, 4 per
// row (default 1600×1400 pixels), each titled with the feature's name,
// mean and standard deviation. A constant feature gets a single bar.
func FeatureHistograms(w io.Writer, t *analyze.Table, r *analyze.FeatureReport, bins int, o FigureOptions) error {
	o = o.withDefaults(1600, 1400)
	img, err := newCanvas(o)
	if err != nil {
		return err
	}
	if bins < 1 {
		bins = 20
	}
	var plots []*plot.Plot
	for j, name := range r.Features {
		c, err := t.Column(name)
		if err != nil {
			return err
		}
		st := r.Stats[j]
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s (μ %.3g, σ %.3g)", name, st.Mean, st.Std)
		if st.Constant {
			p.Title.Text = fmt.Sprintf("%s (constant %.4g)", name, st.Mean)
		}
		p.Y.Label.Text = "rows"
		b := bins
		if st.Constant {
			b = 1
		}
		h, err := plotter.NewHist(plotter.Values(c.Values), b)
		if err != nil {
			return fmt.Errorf("viz: histogram of %s: %w", name, err)
		}
		h.FillColor = color.RGBA{R: 70, G: 110, B: 180, A: 255}
		h.LineStyle.Width = 0
		p.Add(h)
		shrinkFonts(p, vg.Points(8))
		plots = append(plots, p)
	}
	drawGrid(draw.New(img), plots, 4)
	return writePNG(w, img)
}

// namedTicks labels integer positions 0..len−1 with names; flip puts
// position 0 at the top (for the rows of a heat map).
type namedTicks struct {
	names []string
	flip  bool
}

func (n namedTicks) Ticks(_, _ float64) []plot.Tick {
	ticks := make([]plot.Tick, len(n.names))
	for i, s := range n.names {
		v := float64(i)
		if n.flip {
			v = float64(len(n.names) - 1 - i)
		}
		ticks[i] = plot.Tick{Value: v, Label: s}
	}
	return ticks
}

// CorrelationHeatmap draws the report's correlation matrix on a blue–red
// scale from −1 to 1 with its colour bar (default 1200×1050 pixels);
// undefined entries (constant features) are grey, and with at most 20
// features each cell shows its value.
func CorrelationHeatmap(w io.Writer, r *analyze.FeatureReport, o FigureOptions) error {
	o = o.withDefaults(1200, 1050)
	img, err := newCanvas(o)
	if err != nil {
		return err
	}
	names := r.Correlation.Names
	d := len(names)
	v := make([]float64, d*d)
	for i := range d {
		for j := range d {
			v[i*d+j] = float64(r.Correlation.Values[i][j])
		}
	}
	cm := moreland.SmoothBlueRed()
	cm.SetMin(-1)
	cm.SetMax(1)
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Pearson correlation of %d features over %d rows (grey: constant)", d, r.Rows)
	hm := plotter.NewHeatMap(fieldGrid{v: v, n: d, k: max(1, (rasterCells+d-1)/d)}, cm.Palette(255))
	hm.Min, hm.Max = -1, 1
	hm.NaN = color.RGBA{R: 210, G: 210, B: 210, A: 255}
	hm.Rasterized = true
	p.Add(noGlyphs{hm})
	p.X.Tick.Marker = namedTicks{names: names}
	p.Y.Tick.Marker = namedTicks{names: names, flip: true}
	p.X.Tick.Label.Rotation = math.Pi / 2
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	if d <= 20 {
		var xys plotter.XYs
		var labels []string
		for i := range d {
			for j := range d {
				x := v[i*d+j]
				if math.IsNaN(x) {
					continue
				}
				xys = append(xys, plotter.XY{X: float64(j), Y: float64(d - 1 - i)})
				labels = append(labels, fmt.Sprintf("%.2f", x))
			}
		}
		if len(xys) > 0 {
			lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
			if err != nil {
				return err
			}
			for i := range lb.TextStyle {
				lb.TextStyle[i].Font.Size = vg.Points(7)
				lb.TextStyle[i].XAlign = draw.XCenter
				lb.TextStyle[i].YAlign = draw.YCenter
			}
			p.Add(lb)
		}
	}
	dc := draw.New(img)
	const bar = 1.0 * vg.Inch
	p.Draw(draw.Crop(dc, 0, -bar, 0, 0))
	cb := plot.New()
	cb.HideX()
	cb.Title.Text = "r"
	cb.Add(&plotter.ColorBar{ColorMap: cm, Vertical: true})
	width := dc.Max.X - dc.Min.X
	height := dc.Max.Y - dc.Min.Y
	cb.Draw(draw.Crop(dc, width-bar, -vg.Millimeter*2, height/4, -height/4))
	return writePNG(w, img)
}

// PCAScatter draws every row on the first two principal components
// (default 1100×900 pixels), coloured by column colorBy of t when it is
// set: one colour per value of a Bool or Category column (with a legend),
// a blue–red scale for a numeric column (with its range in the legend).
func PCAScatter(w io.Writer, t *analyze.Table, r *analyze.FeatureReport, colorBy string, o FigureOptions) error {
	o = o.withDefaults(1100, 900)
	img, err := newCanvas(o)
	if err != nil {
		return err
	}
	pca := r.PCA
	pts := make(plotter.XYs, len(pca.Scores))
	for i, s := range pca.Scores {
		pts[i] = plotter.XY{X: s[0], Y: s[1]}
	}
	p := plot.New()
	ev := func(k int) float64 {
		if k < len(pca.Explained) {
			return 100 * pca.Explained[k]
		}
		return 0
	}
	p.Title.Text = fmt.Sprintf("PCA of %d standardised features", len(pca.Columns))
	p.X.Label.Text = fmt.Sprintf("PC1 (%.1f%% of variance)", ev(0))
	p.Y.Label.Text = fmt.Sprintf("PC2 (%.1f%% of variance)", ev(1))
	p.Add(plotter.NewGrid())
	glyph := func(sc *plotter.Scatter, c color.Color) {
		sc.Shape = draw.CircleGlyph{}
		sc.Radius = vg.Points(3)
		sc.Color = c
	}
	var col *analyze.Column
	if colorBy != "" {
		if col, err = t.Column(colorBy); err != nil {
			return err
		}
	}
	switch {
	case col == nil || col.Kind == analyze.Other:
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		glyph(sc, color.RGBA{R: 40, G: 90, B: 170, A: 200})
		p.Add(sc)
	case col.Discrete():
		groups := make([]plotter.XYs, len(col.Levels))
		for i, v := range col.Values {
			groups[int(v)] = append(groups[int(v)], pts[i])
		}
		for k, g := range groups {
			if len(g) == 0 {
				continue
			}
			sc, err := plotter.NewScatter(g)
			if err != nil {
				return err
			}
			glyph(sc, plotutil.Color(k))
			p.Add(sc)
			p.Legend.Add(fmt.Sprintf("%s = %s (%d)", colorBy, col.Levels[k], len(g)), sc)
		}
	default:
		lo, hi := finiteRange(col.Values)
		cm := moreland.SmoothBlueRed()
		cm.SetMin(lo)
		cm.SetMax(hi)
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		glyph(sc, color.Black)
		sc.GlyphStyleFunc = func(i int) draw.GlyphStyle {
			g := sc.GlyphStyle
			if c, err := cm.At(col.Values[i]); err == nil {
				g.Color = c
			}
			return g
		}
		p.Add(sc)
		loC, _ := cm.At(lo)
		hiC, _ := cm.At(hi)
		for _, e := range []struct {
			txt string
			c   color.Color
		}{{fmt.Sprintf("%s = %.4g", colorBy, lo), loC}, {fmt.Sprintf("%s = %.4g", colorBy, hi), hiC}} {
			s, _ := plotter.NewScatter(plotter.XYs{{}})
			glyph(s, e.c)
			p.Legend.Add(e.txt, s)
		}
	}
	p.Legend.Top = true
	p.Draw(draw.New(img))
	return writePNG(w, img)
}

// ImportanceChart draws the permutation importance as horizontal bars,
// most important at the top, with ± one standard deviation (default
// 1000×800 pixels).
func ImportanceChart(w io.Writer, imp *analyze.ImportanceResult, o FigureOptions) error {
	o = o.withDefaults(1000, 800)
	img, err := newCanvas(o)
	if err != nil {
		return err
	}
	n := len(imp.Features)
	vals := make(plotter.Values, n)
	names := make([]string, n)
	errs := make(plotter.XErrors, n)
	pts := make(plotter.XYs, n)
	for i, f := range imp.Features {
		k := n - 1 - i // most important at the top
		vals[k], names[k] = f.Drop, f.Feature
		errs[k] = struct{ Low, High float64 }{-f.Std, f.Std}
		pts[k] = plotter.XY{X: f.Drop, Y: float64(k)}
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Permutation importance for %s (%s, test accuracy %.3f, chance %.3f)",
		imp.Label, imp.Model, imp.Baseline, imp.Chance)
	p.X.Label.Text = "accuracy drop when the feature is shuffled"
	if n > 0 {
		bars, err := plotter.NewBarChart(vals, vg.Points(10))
		if err != nil {
			return err
		}
		bars.Horizontal = true
		bars.Color = color.RGBA{R: 70, G: 110, B: 180, A: 255}
		bars.LineStyle.Width = 0
		p.Add(bars)
		eb, err := plotter.NewXErrorBars(struct {
			plotter.XYer
			plotter.XErrorer
		}{pts, errs})
		if err == nil {
			p.Add(eb)
		}
		p.NominalY(names...)
	}
	p.Add(plotter.NewGrid())
	p.Draw(draw.New(img))
	return writePNG(w, img)
}
