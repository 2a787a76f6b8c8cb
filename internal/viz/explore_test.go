package viz

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/mfn/mfn/analyze"
)

func TestBoxView(t *testing.T) {
	t.Parallel()
	// 5×5 mask, one active cell at (0, 3); edge 2 tiles the top-left 4×4.
	mask := make([]bool, 25)
	mask[0*5+3] = true
	got := BoxView(mask, 5, 2)
	want := []float64{
		0, 0, 1, 2, 3,
		0, 0, 1, 1, 3,
		0, 0, 0, 0, 3,
		0, 0, 0, 0, 3,
		3, 3, 3, 3, 3,
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("BoxView =\n%v\nwant\n%v", got, want)
		}
	}
	// An active cell outside the tiling stays active.
	mask[24] = true
	if v := BoxView(mask, 5, 2)[24]; v != boxActive {
		t.Errorf("active cell outside the tiling: %v", v)
	}
}

// decodeSize checks that draw writes a PNG of w×h pixels.
func decodeSize(t *testing.T, name string, w, h int, draw func(io.Writer) error) {
	t.Helper()
	var buf bytes.Buffer
	if err := draw(&buf); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("%s: %v, want %d×%d", name, b, w, h)
	}
}

func TestExploreFigures(t *testing.T) {
	t.Parallel()
	h := blobHistory(4, 24)
	rep, err := analyze.Fractal(context.Background(), h.V, []int{4, 24, 24}, 4, 24, analyze.DefaultFractalConfig(), analyze.DefaultSweepMV())
	if err != nil {
		t.Fatal(err)
	}
	o := FigureOptions{WidthPx: 600, HeightPx: 400}
	last := h.Frame(3)
	decodeSize(t, "boxes", 600, 400, func(w io.Writer) error { return BoxCounting(w, last, 24, rep.Fit, o) })
	decodeSize(t, "fit", 600, 400, func(w io.Writer) error { return BoxFitPlot(w, rep.Fit, o) })
	decodeSize(t, "threshold", 600, 400, func(w io.Writer) error { return ThresholdPlot(w, rep.Sweep, -60, o) })
	decodeSize(t, "time", 600, 400, func(w io.Writer) error { return TimePlot(w, rep.OverTime, -60, o) })

	csv := "D_box,V_mean,k,grp,x\n1.2,-60,1,a,0.1\n1.5,-55,1,b,0.2\n1.1,-62,1,a,0.3\n1.9,-50,1,b,0.4\n1.4,-58,1,a,0.5\n1.8,-52,1,b,0.6\n"
	tb, err := analyze.ReadCSV(strings.NewReader(csv), analyze.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	fr, err := analyze.AnalyzeFeatures(context.Background(), tb, analyze.FeatureConfig{Features: []string{"D_box", "V_mean", "k", "x"},
		Label: "grp", Importance: analyze.ImportanceConfig{Epochs: 5, TestFraction: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(fr.Correlation.Values[2][2])) {
		t.Errorf("constant column k: correlation %v, want NaN", fr.Correlation.Values[2][2])
	}
	decodeSize(t, "histograms", 600, 400, func(w io.Writer) error { return FeatureHistograms(w, tb, fr, 5, o) })
	decodeSize(t, "correlation", 600, 400, func(w io.Writer) error { return CorrelationHeatmap(w, fr, o) })
	for _, by := range []string{"", "grp", "x"} {
		decodeSize(t, "pca "+by, 600, 400, func(w io.Writer) error { return PCAScatter(w, tb, fr, by, o) })
	}
	decodeSize(t, "importance", 600, 400, func(w io.Writer) error { return ImportanceChart(w, fr.Importance, o) })
	// Defaults apply to zero options.
	decodeSize(t, "fit default", 900, 700, func(w io.Writer) error { return BoxFitPlot(w, rep.Fit, FigureOptions{}) })
}

func TestExploreFigureTooLarge(t *testing.T) {
	t.Parallel()
	err := BoxFitPlot(io.Discard, analyze.BoxFit{}, FigureOptions{WidthPx: 20000, HeightPx: 20000})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("20000×20000: %v, want ErrTooLarge", err)
	}
}
