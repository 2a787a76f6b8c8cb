package viz

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/mfn/mfn/sim"
)

// PatternThresholdMV is the potential above which a cell counts as active
// in the binary pattern panel: MFN_MODEL's low threshold, −60 mV.
const PatternThresholdMV = -60.0

// Summary is what the statistics panel prints. Features are always shown;
// Metrics and Config only when set (a history read from a file has neither).
type Summary struct {
	Title    string // first line of the panel, e.g. the input's name
	Features sim.Features
	Metrics  *sim.Metrics
	Lyapunov *float64
	Config   *sim.Config
}

// DashboardOptions sets the image size. Zero values mean 1800×1500 pixels
// at 96 dpi.
type DashboardOptions struct {
	WidthPx, HeightPx int
	DPI               int
}

func (o DashboardOptions) withDefaults() DashboardOptions {
	if o.WidthPx <= 0 {
		o.WidthPx = 1800
	}
	if o.HeightPx <= 0 {
		o.HeightPx = 1500
	}
	if o.DPI <= 0 {
		o.DPI = 96
	}
	return o
}

// MinDashboardPx is the smallest width and height Dashboard draws at the
// default 96 DPI (at other DPIs the same size in inches). Below about 260
// pixels of height the panels get a negative size and the rasteriser never
// finishes, so smaller sizes are refused with ErrTooSmall.
const MinDashboardPx = 300

// ErrTooSmall is returned by Dashboard for a size below MinDashboardPx.
var ErrTooSmall = errors.New("viz: dashboard too small")

// Dashboard renders h and s as one PNG image (see the package
// documentation for the layout) and writes it to w. It returns an error if
// the size is below MinDashboardPx (wrapping ErrTooSmall), a panel cannot be
// built or w fails.
func Dashboard(w io.Writer, h History, s Summary, o DashboardOptions) error {
	d := o.withDefaults()
	if d.WidthPx*96 < MinDashboardPx*d.DPI || d.HeightPx*96 < MinDashboardPx*d.DPI {
		return fmt.Errorf("%w: %d×%d pixels at %d DPI, want at least %d×%d at 96 DPI",
			ErrTooSmall, d.WidthPx, d.HeightPx, d.DPI, MinDashboardPx, MinDashboardPx)
	}
	c, _, err := renderDashboard(h, s, o)
	if err != nil {
		return err
	}
	_, err = vgimg.PngCanvas{Canvas: c}.WriteTo(w)
	return err
}

// colorBarWidth is the strip at the right of the dashboard that holds the
// colour bar of the three field maps.
const colorBarWidth = 1.1 * vg.Inch

// renderDashboard draws the dashboard and also returns the data areas of the
// 3×3 panels (row-major, top row first), which tests use to find pixels.
func renderDashboard(h History, s Summary, o DashboardOptions) (*vgimg.Canvas, [][]draw.Canvas, error) {
	o = o.withDefaults()
	dpi := vg.Length(o.DPI)
	width, height := vg.Length(o.WidthPx)*vg.Inch/dpi, vg.Length(o.HeightPx)*vg.Inch/dpi
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(o.DPI), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)

	lo, hi := h.rangeMV()
	fieldMap := moreland.SmoothBlueRed()
	fieldMap.SetMin(lo)
	fieldMap.SetMax(hi)
	fieldPal := fieldMap.Palette(255)

	mid, last := h.T/2, h.T-1
	p := [3][3]*plot.Plot{}
	p[0][0] = heatPlot("V at step 1 (mV)", scaled(h.Frame(0), 1e3), h.N, fieldPal, lo, hi)
	p[0][1] = heatPlot(fmt.Sprintf("V at step %d (mV)", mid+1), scaled(h.Frame(mid), 1e3), h.N, fieldPal, lo, hi)
	p[0][2] = heatPlot(fmt.Sprintf("V at step %d (mV)", last+1), scaled(h.Frame(last), 1e3), h.N, fieldPal, lo, hi)

	grad := gradientMagnitude(h.Frame(last), h.N)
	gmax := 0.0
	for _, g := range grad {
		gmax = max(gmax, g)
	}
	gradMap := moreland.ExtendedBlackBody()
	glo, ghi := widen(0, gmax)
	gradMap.SetMin(glo)
	gradMap.SetMax(ghi)
	p[1][0] = heatPlot(gradientTitle(last+1, gmax), grad, h.N, gradMap.Palette(255), glo, ghi)

	final := h.Frame(last)
	pattern := make([]float64, len(final))
	for i, v := range final {
		if v*1e3 > PatternThresholdMV {
			pattern[i] = 1
		}
	}
	binary := palette.Palette(fixedPalette{color.RGBA{R: 30, G: 30, B: 40, A: 255}, color.RGBA{R: 250, G: 210, B: 60, A: 255}})
	p[1][1] = heatPlot(fmt.Sprintf("V > %g mV at step %d", PatternThresholdMV, last+1), pattern, h.N, binary, 0, 1)

	hist, err := histogramPlot(final, last+1)
	if err != nil {
		return nil, nil, err
	}
	p[1][2] = hist

	ts, err := timeSeriesPlots(h)
	if err != nil {
		return nil, nil, err
	}
	p[2][0], p[2][1] = ts[0], ts[1]
	p[2][2] = statsPlot(s)

	rows := make([][]*plot.Plot, 3)
	for r := range rows {
		rows[r] = p[r][:]
	}
	tiles := draw.Tiles{Rows: 3, Cols: 3, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4}
	main := draw.Crop(dc, 0, -colorBarWidth, 0, 0)
	canvases := plot.Align(rows, tiles, main)
	data := make([][]draw.Canvas, 3)
	for r := range rows {
		for c := range rows[r] {
			rows[r][c].Draw(canvases[r][c])
			data[r] = append(data[r], rows[r][c].DataCanvas(canvases[r][c]))
		}
	}

	bar := plot.New()
	bar.Title.Text = "mV"
	bar.HideX()
	bar.Add(&plotter.ColorBar{ColorMap: fieldMap, Vertical: true})
	barArea := draw.Crop(dc, width-colorBarWidth, -vg.Millimeter*2, height*2/3+vg.Millimeter*8, -vg.Millimeter*6)
	bar.Draw(barArea)
	return img, data, nil
}

// gradientTitle is the gradient panel's title. It is written in words: the
// plot font (Liberation Sans) has no ∇, which would be drawn as a box.
func gradientTitle(step int, maxMVPerCell float64) string {
	return fmt.Sprintf("Gradient magnitude of V at step %d (max %.3g mV/cell)", step, maxMVPerCell)
}

// scaled returns v multiplied by k in a new slice.
func scaled(v []float64, k float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * k
	}
	return out
}

// rasterCells is the minimum side, in raster cells, of a heat map image.
// vgimg scales the raster smoothly, which would blur the edges of large
// cells; repeating each cell k×k times first confines the blur to a sliver
// at each cell edge.
const rasterCells = 400

// fieldGrid adapts an N×N row-major frame to plotter.GridXYZ, each cell
// repeated k×k times, so that row 0 is drawn at the top as images are read.
// Plot coordinates run from −0.5 to N−0.5, cell centres at integers.
type fieldGrid struct {
	v    []float64
	n, k int
}

func (g fieldGrid) Dims() (c, r int)   { return g.n * g.k, g.n * g.k }
func (g fieldGrid) Z(c, r int) float64 { return g.v[(g.n-1-r/g.k)*g.n+c/g.k] }
func (g fieldGrid) X(c int) float64    { return (float64(c)+0.5)/float64(g.k) - 0.5 }
func (g fieldGrid) Y(r int) float64    { return (float64(r)+0.5)/float64(g.k) - 0.5 }

// noGlyphs hides HeatMap.GlyphBoxes, which returns one box per raster cell
// and would dominate layout time; the data range already spans whole cells.
type noGlyphs struct{ h *plotter.HeatMap }

func (g noGlyphs) Plot(c draw.Canvas, p *plot.Plot)            { g.h.Plot(c, p) }
func (g noGlyphs) DataRange() (xmin, xmax, ymin, ymax float64) { return g.h.DataRange() }

// fixedPalette is a palette.Palette of given colours.
type fixedPalette []color.Color

func (p fixedPalette) Colors() []color.Color { return p }

func heatPlot(title string, v []float64, n int, pal palette.Palette, lo, hi float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	hm := plotter.NewHeatMap(fieldGrid{v: v, n: n, k: max(1, (rasterCells+n-1)/n)}, pal)
	hm.Min, hm.Max = lo, hi
	hm.Rasterized = true
	p.Add(noGlyphs{hm})
	p.X.Label.Text = "column"
	p.Y.Label.Text = "row"
	p.Y.Tick.Marker = flippedTicks{n}
	return p
}

// flippedTicks labels the y axis of a heat map with image row numbers (row 0
// at the top) although plot coordinates grow upwards.
type flippedTicks struct{ n int }

func (f flippedTicks) Ticks(lo, hi float64) []plot.Tick {
	top := float64(f.n - 1)
	ticks := plot.DefaultTicks{}.Ticks(top-hi, top-lo) // in row numbers
	for i := range ticks {
		ticks[i].Value = top - ticks[i].Value
	}
	return ticks
}

func histogramPlot(frame []float64, step int) (*plot.Plot, error) {
	vals := make(plotter.Values, len(frame))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, v := range frame {
		vals[i] = v * 1e3
		lo, hi = min(lo, vals[i]), max(hi, vals[i])
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Distribution of V at step %d", step)
	p.X.Label.Text = "V (mV)"
	p.Y.Label.Text = "cells"
	bins := 40
	if hi-lo < 1e-9 {
		bins = 1
	}
	hist, err := plotter.NewHist(vals, bins)
	if err != nil {
		return nil, fmt.Errorf("viz: histogram: %w", err)
	}
	hist.FillColor = color.RGBA{R: 70, G: 110, B: 180, A: 255}
	hist.LineStyle.Width = 0
	p.Add(hist)
	return p, nil
}

// timeSeriesPlots returns the mean ± std plot and the active-fraction plot.
func timeSeriesPlots(h History) ([2]*plot.Plot, error) {
	mean := make(plotter.XYs, h.T)
	std := make(plotter.XYs, h.T)
	active := make(plotter.XYs, h.T)
	for t := range h.T {
		m, s, a := frameStats(h.Frame(t), PatternThresholdMV)
		x := float64(t + 1)
		mean[t] = plotter.XY{X: x, Y: m}
		std[t] = plotter.XY{X: x, Y: s}
		active[t] = plotter.XY{X: x, Y: a}
	}
	var out [2]*plot.Plot
	p := plot.New()
	p.Title.Text = "Mean and std of V over time"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "mean V (mV)"
	ml, err := plotter.NewLine(mean)
	if err != nil {
		return out, fmt.Errorf("viz: mean line: %w", err)
	}
	ml.Color = color.RGBA{R: 200, G: 50, B: 50, A: 255}
	ml.Width = vg.Points(1.5)
	// The std is drawn as a band mean ± std, which keeps one y axis in mV.
	band := make(plotter.XYs, 0, 2*h.T)
	for t := range h.T {
		band = append(band, plotter.XY{X: mean[t].X, Y: mean[t].Y + std[t].Y})
	}
	for t := h.T - 1; t >= 0; t-- {
		band = append(band, plotter.XY{X: mean[t].X, Y: mean[t].Y - std[t].Y})
	}
	poly, err := plotter.NewPolygon(band)
	if err != nil {
		return out, fmt.Errorf("viz: std band: %w", err)
	}
	poly.Color = color.NRGBA{R: 200, G: 50, B: 50, A: 60}
	poly.LineStyle.Width = 0
	p.Add(poly, ml)
	p.Legend.Add("mean", ml)
	p.Legend.Add("± std", poly)
	p.Legend.Top = true
	p.Legend.Left = true
	out[0] = p

	q := plot.New()
	q.Title.Text = fmt.Sprintf("Fraction of cells above %g mV", PatternThresholdMV)
	q.X.Label.Text = "step"
	q.Y.Label.Text = "fraction"
	q.Y.Min, q.Y.Max = 0, 1
	al, err := plotter.NewLine(active)
	if err != nil {
		return out, fmt.Errorf("viz: active line: %w", err)
	}
	al.Color = color.RGBA{R: 40, G: 120, B: 60, A: 255}
	al.Width = vg.Points(1.5)
	q.Add(al)
	out[1] = q
	return out, nil
}

// statsPlot is an axis-less plot holding the statistics text.
func statsPlot(s Summary) *plot.Plot {
	p := plot.New()
	p.Title.Text = "Statistics"
	p.HideAxes()
	var lines []string
	if s.Title != "" {
		lines = append(lines, s.Title)
	}
	if s.Config != nil {
		c := s.Config
		lines = append(lines, fmt.Sprintf("N=%d steps=%d alpha=%g p_spike=%g", c.GridSize, c.Steps, c.Alpha, c.SpikeProbability),
			fmt.Sprintf("turing=%t θ=%g jitter=%t σ²=%g %s seed=%d", c.TuringEnabled, c.TuringThreshold, c.QuantumJitter, c.JitterVar, c.Boundary, c.Seed))
	}
	if s.Metrics != nil {
		lines = append(lines, fmt.Sprintf("growth events %d, Turing activations %d, clamped %d",
			s.Metrics.GrowthEvents, s.Metrics.TuringActivations, s.Metrics.ClampedCells))
	}
	if s.Lyapunov != nil {
		lines = append(lines, fmt.Sprintf("Lyapunov (history) %.4g", *s.Lyapunov))
	}
	for i := 0; i < sim.NumFeatures; i += 2 {
		lines = append(lines, fmt.Sprintf("%-17s %10.4g   %-17s %10.4g",
			sim.FeatureNames[i], s.Features[i], sim.FeatureNames[i+1], s.Features[i+1]))
	}
	p.Add(textPanel{lines: lines})
	return p
}

// textPanel is a plot.Plotter that writes lines of monospaced text from the
// top-left corner of its canvas, shrinking the font to fit.
type textPanel struct{ lines []string }

func (t textPanel) Plot(c draw.Canvas, _ *plot.Plot) {
	if len(t.lines) == 0 {
		return
	}
	size := vg.Points(11)
	sty := text.Style{
		Color:   color.Black,
		Font:    font.Font{Typeface: "Liberation", Variant: "Mono", Size: size},
		XAlign:  draw.XLeft,
		YAlign:  draw.YTop,
		Handler: plot.DefaultTextHandler,
	}
	avail := c.Max.Y - c.Min.Y
	for size > vg.Points(4) {
		sty.Font.Size = size
		wide := vg.Length(0)
		for _, l := range t.lines {
			wide = max(wide, sty.Width(l))
		}
		if sty.Height("Mg")*vg.Length(len(t.lines))*1.25 <= avail && wide <= c.Max.X-c.Min.X {
			break
		}
		size -= vg.Points(0.5)
	}
	lineH := sty.Height("Mg") * 1.25
	for i, l := range t.lines {
		c.FillText(sty, vg.Point{X: c.Min.X, Y: c.Max.Y - vg.Length(i)*lineH}, l)
	}
}
