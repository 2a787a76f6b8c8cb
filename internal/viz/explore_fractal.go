package viz

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/mfn/mfn/analyze"
)

// Cell classes of the box-counting panels.
const (
	boxEmpty    = 0 // inactive cell in a box with no active cell
	boxOccupied = 1 // inactive cell in a box that counts
	boxActive   = 2 // active cell
	boxOutside  = 3 // outside the k·s square that is tiled
)

var boxPalette = fixedPalette{
	color.RGBA{R: 30, G: 30, B: 40, A: 255},    // empty box
	color.RGBA{R: 90, G: 130, B: 200, A: 255},  // occupied box
	color.RGBA{R: 250, G: 210, B: 60, A: 255},  // active cell
	color.RGBA{R: 200, G: 200, B: 200, A: 255}, // not covered
}

// BoxView returns, for box edge s on an n×n mask, each cell's class as the
// box-counting panel colours it: 2 active, 1 inactive in an occupied box,
// 0 inactive in an empty box, 3 outside the tiled k·s × k·s square.
func BoxView(mask []bool, n, s int) []float64 {
	out := make([]float64, n*n)
	k := 0
	if s > 0 {
		k = n / s
	}
	for r := range n {
		for c := range n {
			switch {
			case mask[r*n+c]:
				out[r*n+c] = boxActive
			case r >= k*s || c >= k*s:
				out[r*n+c] = boxOutside
			}
		}
	}
	for br := range k {
		for bc := range k {
			occ := false
			for r := br * s; r < (br+1)*s && !occ; r++ {
				for c := bc * s; c < (bc+1)*s; c++ {
					if mask[r*n+c] {
						occ = true
						break
					}
				}
			}
			if !occ {
				continue
			}
			for r := br * s; r < (br+1)*s; r++ {
				for c := bc * s; c < (bc+1)*s; c++ {
					if out[r*n+c] == boxEmpty {
						out[r*n+c] = boxOccupied
					}
				}
			}
		}
	}
	return out
}

// boxLines draws the edges of the k×k tiling of boxes of edge s over a
// heat map of an n×n grid drawn by heatPlot, where image row r sits at plot
// y = n−1−r and column c at x = c.
type boxLines struct{ s, k, n int }

func (b boxLines) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	sty := draw.LineStyle{Color: color.RGBA{R: 0, G: 0, B: 0, A: 150}, Width: vg.Points(0.6)}
	top := float64(b.n) - 0.5 // plot y of the top edge of row 0
	span := float64(b.k * b.s)
	for m := 0; m <= b.k; m++ {
		e := float64(m * b.s)
		c.StrokeLine2(sty, trX(e-0.5), trY(top), trX(e-0.5), trY(top-span))
		c.StrokeLine2(sty, trX(-0.5), trY(top-e), trX(span-0.5), trY(top-e))
	}
}

func lnInv(s int) float64 { return math.Log(1 / float64(s)) }
func lnf(c int) float64   { return math.Log(float64(c)) }

// BoxCounting draws the box counting of one field step by step (default
// width 1500 pixels, 3 panels a row, the height keeping the panels about
// square): the field in mV, then for each box edge of fit
// the binary pattern at the fit's threshold with the tiling, occupied
// boxes tinted and the count in the title. frame is N×N volts.
func BoxCounting(w io.Writer, frame []float64, n int, fit analyze.BoxFit, o FigureOptions) error {
	cols := 3
	if len(fit.Scales) <= 3 {
		cols = 2
	}
	rows := (len(fit.Scales) + cols) / cols
	width := o.WidthPx
	if width <= 0 {
		width = 1500
	}
	o = o.withDefaults(width, width/cols*rows*21/20)
	img, err := newCanvas(o)
	if err != nil {
		return err
	}
	mv := scaled(frame, 1e3)
	lo, hi := finiteRange(mv)
	cm := moreland.SmoothBlueRed()
	cm.SetMin(lo)
	cm.SetMax(hi)
	field := heatPlot(fmt.Sprintf("V (mV), %.3g to %.3g", lo, hi), mv, n, cm.Palette(255), lo, hi)
	plots := []*plot.Plot{field}
	mask := analyze.Mask(frame, fit.ThresholdMV)
	for _, sc := range fit.Scales {
		view := BoxView(mask, n, sc.Size)
		p := heatPlot("", view, n, palette.Palette(boxPalette), 0, 3)
		// Lines between boxes of one or two cells would hide the pattern.
		if k := n / sc.Size; k > 0 && sc.Size >= 3 {
			p.Add(boxLines{s: sc.Size, k: k, n: n})
		}
		p.Title.Text = fmt.Sprintf("s = %d: %d of %d boxes occupied", sc.Size, sc.Count, sc.Boxes)
		plots = append(plots, p)
	}
	for _, p := range plots {
		shrinkFonts(p, vg.Points(9))
	}
	drawGrid(draw.New(img), plots, cols)
	return writePNG(w, img)
}

// BoxFitPlot draws the log–log fit of a box count (default 900×700
// pixels): ln(count) against ln(1/s) for the used scales, the fitted line,
// and D and R² in the title.
func BoxFitPlot(w io.Writer, fit analyze.BoxFit, o FigureOptions) error {
	o = o.withDefaults(900, 700)
	img, err := newCanvas(o)
	if err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Box counting at %g mV: D = %.4f, R² = %.4f", fit.ThresholdMV, fit.D, fit.R2)
	p.X.Label.Text = "ln(1/s)"
	p.Y.Label.Text = "ln(occupied boxes)"
	var pts plotter.XYs
	for _, s := range fit.Scales {
		if s.Used {
			pts = append(pts, plotter.XY{X: lnInv(s.Size), Y: lnf(s.Count)})
		}
	}
	if len(pts) > 0 {
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.Shape = draw.CircleGlyph{}
		sc.Radius = vg.Points(4)
		sc.Color = color.RGBA{R: 40, G: 90, B: 170, A: 255}
		p.Add(sc)
		p.Legend.Add("boxes", sc)
		labels := make([]string, len(pts))
		k := 0
		for _, s := range fit.Scales {
			if s.Used {
				labels[k] = fmt.Sprintf("  s=%d (%d)", s.Size, s.Count)
				k++
			}
		}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels})
		if err == nil {
			p.Add(lb)
		}
	}
	if len(pts) >= 2 {
		x0, x1 := pts[0].X, pts[len(pts)-1].X
		line, err := plotter.NewLine(plotter.XYs{{X: x0, Y: fit.D*x0 + fit.Intercept}, {X: x1, Y: fit.D*x1 + fit.Intercept}})
		if err != nil {
			return err
		}
		line.Color = color.RGBA{R: 200, G: 50, B: 50, A: 255}
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("fit: slope D = %.4f", fit.D), line)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	p.Draw(draw.New(img))
	return writePNG(w, img)
}

// ThresholdPlot draws the dimension (with R²) and the active fraction
// against the threshold (default 1400×600 pixels); a dashed line marks
// markMV, the threshold of the main fit.
func ThresholdPlot(w io.Writer, sweep []analyze.SweepPoint, markMV float64, o FigureOptions) error {
	o = o.withDefaults(1400, 600)
	img, err := newCanvas(o)
	if err != nil {
		return err
	}
	var d, r2, act plotter.XYs
	for _, s := range sweep {
		d = append(d, plotter.XY{X: s.ThresholdMV, Y: s.D})
		r2 = append(r2, plotter.XY{X: s.ThresholdMV, Y: s.R2})
		act = append(act, plotter.XY{X: s.ThresholdMV, Y: s.ActiveFraction})
	}
	p := plot.New()
	p.Title.Text = "Box-counting dimension against the threshold"
	p.X.Label.Text = "threshold (mV)"
	p.Y.Label.Text = "D, R²"
	q := plot.New()
	q.Title.Text = "Fraction of cells above the threshold"
	q.X.Label.Text = "threshold (mV)"
	q.Y.Label.Text = "fraction"
	q.Y.Min, q.Y.Max = 0, 1
	if len(sweep) > 0 {
		l, s, err := linePoints(d, color.RGBA{R: 40, G: 90, B: 170, A: 255})
		if err != nil {
			return err
		}
		l2, s2, err := linePoints(r2, color.RGBA{R: 150, G: 150, B: 150, A: 255})
		if err != nil {
			return err
		}
		p.Add(l, s, l2, s2)
		p.Legend.Add("D", l, s)
		p.Legend.Add("R²", l2, s2)
		la, sa, err := linePoints(act, color.RGBA{R: 40, G: 120, B: 60, A: 255})
		if err != nil {
			return err
		}
		q.Add(la, sa)
	}
	mark := vLine{X: markMV, Color: color.RGBA{R: 200, G: 50, B: 50, A: 255}}
	p.Add(mark, plotter.NewGrid())
	q.Add(mark, plotter.NewGrid())
	p.Legend.Top = true
	drawGrid(draw.New(img), []*plot.Plot{p, q}, 2)
	return writePNG(w, img)
}

// TimePlot draws the dimension (with R²) and the active fraction of every
// step of a history (default 1400×600 pixels).
func TimePlot(w io.Writer, pts []analyze.TimePoint, thresholdMV float64, o FigureOptions) error {
	o = o.withDefaults(1400, 600)
	img, err := newCanvas(o)
	if err != nil {
		return err
	}
	var d, r2, act plotter.XYs
	for _, t := range pts {
		x := float64(t.Step)
		d = append(d, plotter.XY{X: x, Y: t.D})
		r2 = append(r2, plotter.XY{X: x, Y: t.R2})
		act = append(act, plotter.XY{X: x, Y: t.ActiveFraction})
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Box-counting dimension over time (%g mV)", thresholdMV)
	p.X.Label.Text = "step"
	p.Y.Label.Text = "D, R²"
	q := plot.New()
	q.Title.Text = fmt.Sprintf("Fraction of cells above %g mV", thresholdMV)
	q.X.Label.Text = "step"
	q.Y.Label.Text = "fraction"
	q.Y.Min, q.Y.Max = 0, 1
	if len(pts) > 0 {
		l, err := plotter.NewLine(d)
		if err != nil {
			return err
		}
		l.Color, l.Width = color.RGBA{R: 40, G: 90, B: 170, A: 255}, vg.Points(1.5)
		l2, err := plotter.NewLine(r2)
		if err != nil {
			return err
		}
		l2.Color, l2.Width = color.RGBA{R: 150, G: 150, B: 150, A: 255}, vg.Points(1)
		p.Add(l, l2)
		p.Legend.Add("D", l)
		p.Legend.Add("R²", l2)
		la, err := plotter.NewLine(act)
		if err != nil {
			return err
		}
		la.Color, la.Width = color.RGBA{R: 40, G: 120, B: 60, A: 255}, vg.Points(1.5)
		q.Add(la)
	}
	p.Add(plotter.NewGrid())
	q.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	drawGrid(draw.New(img), []*plot.Plot{p, q}, 2)
	return writePNG(w, img)
}
