package viz

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// FigureOptions sets the size of an exploration figure. Zero values mean
// the figure's own default size (given with each function) at 96 dpi.
type FigureOptions struct {
	WidthPx, HeightPx int
	DPI               int
}

func (o FigureOptions) withDefaults(w, h int) FigureOptions {
	if o.WidthPx <= 0 {
		o.WidthPx = w
	}
	if o.HeightPx <= 0 {
		o.HeightPx = h
	}
	if o.DPI <= 0 {
		o.DPI = 96
	}
	return o
}

// MaxFigurePixels bounds the size of one exploration figure (64 Mpixel,
// 256 MiB of RGBA), whatever the options ask for.
const MaxFigurePixels = 64 << 20

// newCanvas returns a white canvas of the option's size.
func newCanvas(o FigureOptions) (*vgimg.Canvas, error) {
	if int64(o.WidthPx)*int64(o.HeightPx) > MaxFigurePixels {
		return nil, fmt.Errorf("%w: %d×%d pixels, more than %d", ErrTooLarge, o.WidthPx, o.HeightPx, MaxFigurePixels)
	}
	dpi := vg.Length(o.DPI)
	w, h := vg.Length(o.WidthPx)*vg.Inch/dpi, vg.Length(o.HeightPx)*vg.Inch/dpi
	return vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(o.DPI), vgimg.UseBackgroundColor(color.White)), nil
}

// drawGrid lays plots out on a rows×cols grid of area (nil entries stay
// empty) and returns the data canvases of the drawn plots.
func drawGrid(area draw.Canvas, plots []*plot.Plot, cols int) {
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
		for c := range cols {
			if k := r*cols + c; k < len(plots) {
				grid[r][c] = plots[k]
			}
		}
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4}
	canvases := plot.Align(grid, tiles, area)
	for r := range grid {
		for c := range grid[r] {
			if grid[r][c] != nil {
				grid[r][c].Draw(canvases[r][c])
			}
		}
	}
}

// writePNG encodes the canvas as PNG.
func writePNG(w io.Writer, c *vgimg.Canvas) error {
	_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(w)
	return err
}

// shrinkFonts makes a plot's text smaller for dense grids of panels.
func shrinkFonts(p *plot.Plot, size vg.Length) {
	p.Title.TextStyle.Font.Size = size * 1.15
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = size
		a.Tick.Label.Font.Size = size * 0.9
	}
	p.Legend.TextStyle.Font.Size = size
}

// linePoints returns a line with points of the given colour.
func linePoints(xys plotter.XYs, c color.Color) (*plotter.Line, *plotter.Scatter, error) {
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return nil, nil, err
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	s.Color = c
	s.Shape = draw.CircleGlyph{}
	s.Radius = vg.Points(2.5)
	return l, s, nil
}

// vLine is a dashed vertical line at X over the plot's y range.
type vLine struct {
	X     float64
	Color color.Color
}

func (v vLine) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	x := trX(v.X)
	c.StrokeLine2(draw.LineStyle{Color: v.Color, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}},
		x, c.Min.Y, x, c.Max.Y)
}

// finiteRange returns the range of the finite values of v (0, 1 if none),
// widened when it is a single point.
func finiteRange(v []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			lo, hi = min(lo, x), max(hi, x)
		}
	}
	if lo > hi {
		return 0, 1
	}
	return widen(lo, hi)
}
