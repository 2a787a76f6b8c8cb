package viz

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"math"
	"slices"
	"testing"

	"golang.org/x/image/font/sfnt"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/mfn/mfn/sim"
)

// blobHistory is a T×N×N history at −70 mV with a Gaussian bump centred in
// the top-left quadrant (row n/4, column n/4) that grows to +40 mV above
// rest by the last step.
func blobHistory(t, n int) History {
	v := make([]float64, t*n*n)
	cr, cc, w := float64(n)/4, float64(n)/4, float64(n)/8
	for s := range t {
		amp := 0.040 * float64(s+1) / float64(t)
		for r := range n {
			for c := range n {
				d2 := (float64(r)-cr)*(float64(r)-cr) + (float64(c)-cc)*(float64(c)-cc)
				v[(s*n+r)*n+c] = -0.070 + amp*math.Exp(-d2/(2*w*w))
			}
		}
	}
	h, err := NewHistory(v, []int{t, n, n})
	if err != nil {
		panic(err)
	}
	return h
}

func constantHistory(t, n int) History {
	v := make([]float64, t*n*n)
	for i := range v {
		v[i] = -0.070
	}
	return History{T: t, N: n, V: v}
}

func TestNewHistory(t *testing.T) {
	t.Parallel()
	if h, err := NewHistory(make([]float64, 16), []int{4, 4}); err != nil || h.T != 1 || h.N != 4 {
		t.Errorf("2-D field: %+v %v", h, err)
	}
	if h, err := NewHistory(make([]float64, 3*9), []int{3, 3, 3}); err != nil || h.T != 3 || h.N != 3 {
		t.Errorf("3-D history: %+v %v", h, err)
	}
	for _, c := range []struct {
		n     int
		shape []int
	}{
		{4, []int{4}}, {12, []int{3, 4}}, {24, []int{2, 3, 4}}, {0, []int{0, 4, 4}},
		{1, []int{1, 1}}, {15, []int{4, 4}}, {16, []int{1, 1, 4, 4}}, {0, []int{}},
	} {
		if _, err := NewHistory(make([]float64, c.n), c.shape); !errors.Is(err, ErrShape) {
			t.Errorf("shape %v with %d values: err %v, want ErrShape", c.shape, c.n, err)
		}
	}
	v := make([]float64, 2*9)
	v[9+5] = math.NaN()
	_, err := NewHistory(v, []int{2, 3, 3})
	var nf *NonFiniteError
	if !errors.As(err, &nf) || nf.Step != 1 || nf.Row != 1 || nf.Col != 2 {
		t.Errorf("NaN: err %v, want step 1 cell (1, 2)", err)
	}
	v[9+5] = math.Inf(-1)
	if _, err := NewHistory(v, []int{2, 3, 3}); !errors.As(err, &nf) {
		t.Errorf("-Inf: err %v", err)
	}
}

func TestGradientMagnitude(t *testing.T) {
	t.Parallel()
	// V = 2 mV per column: |∇V| = 2 everywhere (one-sided at the edges too).
	n := 5
	f := make([]float64, n*n)
	for r := range n {
		for c := range n {
			f[r*n+c] = 0.002 * float64(c)
		}
	}
	for i, g := range gradientMagnitude(f, n) {
		if math.Abs(g-2) > 1e-9 {
			t.Fatalf("cell %d: |∇V| = %v, want 2", i, g)
		}
	}
	// V = r² (mV): numpy.gradient gives 1 at row 0 (one-sided), 2r inside, 2n−3 at the last row.
	for r := range n {
		for c := range n {
			f[r*n+c] = 0.001 * float64(r*r)
		}
	}
	g := gradientMagnitude(f, n)
	want := []float64{1, 2, 4, 6, 7}
	for r := range n {
		if math.Abs(g[r*n+2]-want[r]) > 1e-9 {
			t.Errorf("row %d: %v, want %v", r, g[r*n+2], want[r])
		}
	}
}

// pixelRect converts a plot canvas to the image rectangle it covers.
func pixelRect(c draw.Canvas, dpi, heightPx int) image.Rectangle {
	k := float64(dpi) / float64(vg.Inch)
	x0, x1 := int(math.Ceil(float64(c.Min.X)*k)), int(float64(c.Max.X)*k)
	y0, y1 := heightPx-int(float64(c.Max.Y)*k), heightPx-int(math.Ceil(float64(c.Min.Y)*k))
	return image.Rect(x0+1, y0+1, x1-1, y1-1)
}

func distinctColors(img image.Image, r image.Rectangle) int {
	seen := map[color.RGBA]bool{}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			seen[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)] = true
		}
	}
	return len(seen)
}

// topTwoShare is the fraction of r covered by its two most frequent colours.
func topTwoShare(img image.Image, r image.Rectangle) float64 {
	count := map[color.RGBA]int{}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			count[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	a, b := 0, 0
	for _, n := range count {
		if n > a {
			a, b = n, a
		} else if n > b {
			b = n
		}
	}
	return float64(a+b) / float64(r.Dx()*r.Dy())
}

func rgb(img image.Image, x, y int) (r, g, b int) {
	c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
	return int(c.R), int(c.G), int(c.B)
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	h := blobHistory(12, 32)
	feat := sim.Features{}
	feat[sim.FVMean] = -69.5
	met := sim.Metrics{GrowthEvents: 3}
	// renderDashboard is what Dashboard encodes; it also reports where the
	// panels' data areas are.
	c, areas, err := renderDashboard(h, Summary{Title: "blob", Features: feat, Metrics: &met}, DashboardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("output is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1800 || b.Dy() != 1500 {
		t.Fatalf("image is %v, want 1800×1500", b)
	}
	final := pixelRect(areas[0][2], 96, 1500)
	if n := distinctColors(img, final); n < 20 {
		t.Errorf("final-field heat map has %d colours, want a gradient", n)
	}
	// The bump sits at row n/4, column n/4: top-left of the map, drawn red;
	// the bottom-right corner stays at rest, drawn blue.
	bx, by := final.Min.X+final.Dx()*(32/4)/32+final.Dx()/64, final.Min.Y+final.Dy()*(32/4)/32+final.Dy()/64
	if r, _, b := rgb(img, bx, by); r <= b+50 {
		t.Errorf("bump pixel (%d,%d) is not red: r=%d b=%d", bx, by, r, b)
	}
	if r, _, b := rgb(img, final.Max.X-3, final.Max.Y-3); b <= r {
		t.Errorf("rest pixel is not blue: r=%d b=%d", r, b)
	}
	// The first step's bump is small against the shared scale: mostly blue.
	first := pixelRect(areas[0][0], 96, 1500)
	if r, _, b := rgb(img, first.Min.X+first.Dx()/4, first.Min.Y+first.Dy()/4); b <= r {
		t.Errorf("step-1 bump already red on the shared scale: r=%d b=%d", r, b)
	}
	// The binary pattern is two colours but for a sliver of blending at the
	// cell edges, where the raster is scaled.
	if share := topTwoShare(img, pixelRect(areas[1][1], 96, 1500)); share < 0.95 {
		t.Errorf("binary pattern: the two main colours cover %.3f of the area, want ≥ 0.95", share)
	}
}

func TestDashboardConstantField(t *testing.T) {
	t.Parallel()
	h := constantHistory(3, 16)
	o := DashboardOptions{WidthPx: 900, HeightPx: 750, DPI: 72}
	var buf bytes.Buffer
	if err := Dashboard(&buf, h, Summary{}, o); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	_, areas, err := renderDashboard(h, Summary{}, o)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 900 || b.Dy() != 750 {
		t.Fatalf("image is %v, want 900×750", b)
	}
	for _, a := range []draw.Canvas{areas[0][0], areas[0][2], areas[1][1]} {
		if n := distinctColors(img, pixelRect(a, 72, 750)); n != 1 {
			t.Errorf("a constant field's map has %d colours, want 1", n)
		}
	}
}

func TestAnimation(t *testing.T) {
	t.Parallel()
	h := blobHistory(10, 16)
	for _, c := range []struct {
		every, frames int
	}{{0, 10}, {1, 10}, {3, 4}, {4, 4}, {10, 2}, {50, 2}} {
		var buf bytes.Buffer
		o := AnimationOptions{Every: c.every}
		if err := Animation(&buf, h, o); err != nil {
			t.Fatal(err)
		}
		g, err := gif.DecodeAll(&buf)
		if err != nil {
			t.Fatalf("every %d: not a GIF: %v", c.every, err)
		}
		if len(g.Image) != c.frames || AnimationFrames(h, o) != c.frames {
			t.Errorf("every %d: %d frames (AnimationFrames %d), want %d", c.every, len(g.Image), AnimationFrames(h, o), c.frames)
		}
		wantW := animMargin + 16*16 + animBarGap + animBarW + animLabelGap + animLabelW + animMargin
		wantH := animMargin + animTitleH + 16*16 + animMargin
		if g.Config.Width != wantW || g.Config.Height != wantH {
			t.Errorf("every %d: %d×%d, want %d×%d", c.every, g.Config.Width, g.Config.Height, wantW, wantH)
		}
		for i, f := range g.Image {
			if f.Bounds().Dx() != wantW || f.Bounds().Dy() != wantH {
				t.Errorf("frame %d is %v", i, f.Bounds())
			}
			if len(f.Palette) != 256 || !samePalette(f.Palette, g.Image[0].Palette) {
				t.Errorf("frame %d palette differs from frame 0", i)
			}
		}
	}

	var buf bytes.Buffer
	if err := Animation(&buf, h, AnimationOptions{}); err != nil {
		t.Fatal(err)
	}
	g, _ := gif.DecodeAll(&buf)
	top := animMargin + animTitleH
	scale := 16
	bump := func(f *image.Paletted) uint8 { return f.ColorIndexAt(animMargin+4*scale+scale/2, top+4*scale+scale/2) }
	rest := func(f *image.Paletted) uint8 { return f.ColorIndexAt(animMargin+15*scale, top+15*scale) }
	last, first := g.Image[len(g.Image)-1], g.Image[0]
	if bump(last) != 255 {
		t.Errorf("last frame's bump has palette index %d, want the top colour 255", bump(last))
	}
	if rest(last) != animPalFirst || rest(first) != animPalFirst {
		t.Errorf("resting cells have indices %d/%d, want the bottom colour %d", rest(first), rest(last), animPalFirst)
	}
	if bump(first) >= bump(last) || bump(first) <= animPalFirst {
		t.Errorf("bump index should grow from frame 0 (%d) to the last (%d)", bump(first), bump(last))
	}
	// The colour bar runs from the top colour down to the bottom colour.
	barX := animMargin + 16*scale + animBarGap + 2
	if i := last.ColorIndexAt(barX, top); i != 255 {
		t.Errorf("colour bar top index %d", i)
	}
	if i := last.ColorIndexAt(barX, top+16*scale-1); i != animPalFirst {
		t.Errorf("colour bar bottom index %d", i)
	}
	if g.Delay[0] != 8 {
		t.Errorf("delay %d, want 8", g.Delay[0])
	}
}

func samePalette(a, b color.Palette) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		r1, g1, b1, a1 := a[i].RGBA()
		r2, g2, b2, a2 := b[i].RGBA()
		if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
			return false
		}
	}
	return true
}

func TestAnimationTooLarge(t *testing.T) {
	t.Parallel()
	h := constantHistory(60, 8)
	err := Animation(&bytes.Buffer{}, h, AnimationOptions{Scale: 400})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("err %v, want ErrTooLarge", err)
	}
}

// TestAnimationEndsOnFinalStep: whatever Every, the last frame is the final
// step's render, pixel for pixel the last frame of the full animation.
func TestAnimationEndsOnFinalStep(t *testing.T) {
	t.Parallel()
	h := blobHistory(10, 16)
	decode := func(every int) *gif.GIF {
		t.Helper()
		var buf bytes.Buffer
		if err := Animation(&buf, h, AnimationOptions{Every: every}); err != nil {
			t.Fatal(err)
		}
		g, err := gif.DecodeAll(&buf)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	full := decode(1)
	final := full.Image[len(full.Image)-1]
	if bytes.Equal(final.Pix, full.Image[len(full.Image)-2].Pix) {
		t.Fatal("the blob history's last two steps render alike; the test cannot tell them apart")
	}
	for _, every := range []int{2, 4, 6, 9, 10, 50} {
		g := decode(every)
		last := g.Image[len(g.Image)-1]
		if !bytes.Equal(last.Pix, final.Pix) {
			t.Errorf("every %d: the last frame is not the final step", every)
		}
		if !bytes.Equal(g.Image[0].Pix, full.Image[0].Pix) {
			t.Errorf("every %d: the first frame is not the first step", every)
		}
	}
	for _, c := range []struct {
		t, every int
		want     []int
	}{{10, 1, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}, {10, 3, []int{0, 3, 6, 9}}, {10, 4, []int{0, 4, 8, 9}}, {1, 5, []int{0}}, {10, 20, []int{0, 9}}} {
		if got := animationSteps(c.t, c.every); !slices.Equal(got, c.want) {
			t.Errorf("animationSteps(%d, %d) = %v, want %v", c.t, c.every, got, c.want)
		}
	}
}

// missingGlyphs returns the runes of s that fnt cannot draw (glyph index
// 0, the "missing glyph" box).
func missingGlyphs(t *testing.T, fnt font.Font, s string) []rune {
	t.Helper()
	face := font.DefaultCache.Lookup(fnt, fnt.Size)
	if face.Face == nil {
		t.Fatalf("no face for the font %v", fnt)
	}
	var buf sfnt.Buffer
	var missing []rune
	for _, r := range s {
		if r == ' ' {
			continue
		}
		i, err := face.Face.GlyphIndex(&buf, r)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			missing = append(missing, r)
		}
	}
	return missing
}

func TestDashboardTitlesHaveGlyphs(t *testing.T) {
	t.Parallel()
	titleFont := plot.New().Title.TextStyle.Font
	// The check can fail: the font has no ∇ (the old title was "|∇V| …").
	if m := missingGlyphs(t, titleFont, "|∇V|"); !slices.Equal(m, []rune{'∇'}) {
		t.Fatalf("missing glyphs of |∇V| = %q, want [∇]", m)
	}
	for _, title := range []string{gradientTitle(200, 1.25e-3), gradientTitle(1, 0), "± std"} {
		if m := missingGlyphs(t, titleFont, title); len(m) > 0 {
			t.Errorf("%q has runes the font cannot draw: %q", title, m)
		}
	}
	// The statistics panel's monospaced lines.
	mono := font.Font{Typeface: "Liberation", Variant: "Mono", Size: 11}
	if m := missingGlyphs(t, mono, "θ=0.75 σ²=0.001"); len(m) > 0 {
		t.Errorf("the statistics font cannot draw %q", m)
	}
}

// TestDashboardSmallest: the smallest allowed size renders (it used to hang
// in the rasteriser at 300×250), and a smaller one is refused at once.
func TestDashboardSmallest(t *testing.T) {
	t.Parallel()
	h := blobHistory(3, 8)
	var buf bytes.Buffer
	if err := Dashboard(&buf, h, Summary{}, DashboardOptions{WidthPx: MinDashboardPx, HeightPx: MinDashboardPx}); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != MinDashboardPx || b.Dy() != MinDashboardPx {
		t.Fatalf("image is %v", b)
	}
	for _, o := range []DashboardOptions{{WidthPx: 300, HeightPx: 250}, {WidthPx: 250, HeightPx: 300}, {WidthPx: 300, HeightPx: 300, DPI: 200}} {
		if err := Dashboard(io.Discard, h, Summary{}, o); !errors.Is(err, ErrTooSmall) {
			t.Errorf("%+v: err = %v, want ErrTooSmall", o, err)
		}
	}
}
