package experiment

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Record is one finished cell, as a line of a results file.
type Record struct {
	Dataset       string  `json:"dataset"`
	Model         string  `json:"model"`
	Heterogeneity string  `json:"heterogeneity"`
	Alpha         float64 `json:"alpha"`
	Honest        int     `json:"honest"`
	F             int     `json:"f"`
	Rule          string  `json:"rule"`
	Pre           string  `json:"pre"`
	Attack        string  `json:"attack"`
	Seed          uint64  `json:"seed"`
	// Accuracy is the final test accuracy; NaN (JSON null) when the cell
	// failed.
	Accuracy float64 `json:"accuracy"`
	// Setup fingerprints the training hyper-parameters, so that a results
	// file is never resumed with different ones.
	Setup         string  `json:"setup"`
	ByzantineUsed float64 `json:"byzantine_used"`
	Seconds       float64 `json:"seconds"`
	Error         string  `json:"error,omitempty"`
	// DP is set for the cells of a DP axis (Config.DP).
	DP *RecordDP `json:"dp,omitempty"`
	// Optimizer is the resolved server optimizer (Config.Optimizer), empty
	// without one.
	Optimizer string `json:"optimizer,omitempty"`
}

// RecordDP is the privacy of one DP cell: its setting, the noise it ran
// with and the budget it spent.
type RecordDP struct {
	// Spec is the canonical DPSpec ("none", "central:8", "local:3").
	Spec string `json:"spec"`
	// SampleRate q, Clip C, Delta δ; NoiseMultiplier z solved for the
	// target ε over the run's rounds at q (0 for none).
	SampleRate      float64 `json:"sample_rate"`
	Clip            float64 `json:"clip"`
	Delta           float64 `json:"delta"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	// Epsilon is privacy.Epsilon(q, z, rounds, δ); EpsilonQ1 the same z
	// accounted at q = 1 (the coordinators' accounting today). Both 0
	// for none.
	Epsilon   float64 `json:"epsilon"`
	EpsilonQ1 float64 `json:"epsilon_q1"`
	// Covered is false when the ε is not a proven guarantee for the
	// cell's pipeline: central mode with a rule other than fedavg.
	Covered bool `json:"covered"`
	// MeanParticipants is the mean number of nodes sampled per round;
	// ClippedFraction the share of honest updates longer than C;
	// SkippedRounds the rounds that left the model unchanged.
	MeanParticipants float64 `json:"mean_participants"`
	ClippedFraction  float64 `json:"clipped_fraction"`
	SkippedRounds    int     `json:"skipped_rounds"`
}

// jsonCell is one element of WriteJSON's array.
type jsonCell struct {
	Dataset       string    `json:"dataset"`
	Model         string    `json:"model"`
	Heterogeneity string    `json:"heterogeneity"`
	Alpha         float64   `json:"alpha"`
	Honest        int       `json:"honest"`
	F             int       `json:"f"`
	Rule          string    `json:"rule"`
	Pre           string    `json:"pre"`
	Attack        string    `json:"attack"`
	Seed          uint64    `json:"seed"`
	Accuracy      float64   `json:"accuracy"`
	DP            *RecordDP `json:"dp,omitempty"`
	Optimizer     string    `json:"optimizer,omitempty"`
}

// MarshalJSON writes a failed cell's accuracy as null (JSON has no NaN).
func (r Record) MarshalJSON() ([]byte, error) {
	type plain Record
	type withNull struct {
		plain
		Accuracy *float64 `json:"accuracy"`
	}
	w := withNull{plain: plain(r)}
	if !math.IsNaN(r.Accuracy) {
		w.Accuracy = &r.Accuracy
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads null accuracy back as NaN.
func (r *Record) UnmarshalJSON(b []byte) error {
	type plain Record
	var w struct {
		plain
		Accuracy *float64 `json:"accuracy"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Record(w.plain)
	r.Accuracy = math.NaN()
	if w.Accuracy != nil {
		r.Accuracy = *w.Accuracy
	}
	return nil
}

// WriteJSON writes the successful cells of recs as an indented JSON array
// of {dataset, model, heterogeneity, alpha, honest, f, rule, pre, attack,
// seed, accuracy}, followed by a newline.
func WriteJSON(w io.Writer, recs []Record) error {
	out := []jsonCell{}
	for _, r := range recs {
		if r.Error != "" {
			continue
		}
		out = append(out, jsonCell{r.Dataset, r.Model, r.Heterogeneity, r.Alpha, r.Honest, r.F, r.Rule, r.Pre, r.Attack, r.Seed, r.Accuracy, r.DP, r.Optimizer})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// group is one setting (dataset, model, heterogeneity, α) of the summary:
// per (f, rule, attack) the accuracies over seeds.
type group struct {
	title string
	fs    []int
	rules []string
	// acc[f][rule][attack] = accuracies over seeds (NaN for failed cells)
	acc map[int]map[string]map[string][]float64
}

func groupRecords(recs []Record) []*group {
	var groups []*group
	byTitle := map[string]*group{}
	for _, r := range recs {
		title := fmt.Sprintf("%s %s %s", r.Dataset, r.Model, r.Heterogeneity)
		if r.Heterogeneity == "dirichlet" {
			title += fmt.Sprintf(" α=%g", r.Alpha)
		}
		title += fmt.Sprintf(", %d honest", r.Honest)
		if r.Optimizer != "" {
			title += ", server optimizer " + r.Optimizer
		}
		g := byTitle[title]
		if g == nil {
			g = &group{title: title, acc: map[int]map[string]map[string][]float64{}}
			byTitle[title] = g
			groups = append(groups, g)
		}
		rule := r.Rule
		if r.Pre != "" {
			rule = r.Pre + "+" + r.Rule
		}
		if r.DP != nil {
			rule += " @" + r.DP.Spec
		}
		if !slices.Contains(g.fs, r.F) {
			g.fs = append(g.fs, r.F)
		}
		if !slices.Contains(g.rules, rule) {
			g.rules = append(g.rules, rule)
		}
		if g.acc[r.F] == nil {
			g.acc[r.F] = map[string]map[string][]float64{}
		}
		if g.acc[r.F][rule] == nil {
			g.acc[r.F][rule] = map[string][]float64{}
		}
		g.acc[r.F][rule][r.Attack] = append(g.acc[r.F][rule][r.Attack], r.Accuracy)
	}
	for _, g := range groups {
		slices.Sort(g.fs)
	}
	return groups
}

// mean returns the mean of xs, NaN if any is NaN or xs is empty.
func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// worst returns, for (f, rule), the minimum over attacks of the mean
// accuracy over seeds; NaN when any attack's cell failed (the rule cannot
// run there) or nothing was run.
func (g *group) worst(f int, rule string) float64 {
	m := g.acc[f][rule]
	if len(m) == 0 {
		return math.NaN()
	}
	w := math.Inf(1)
	for _, xs := range m {
		v := mean(xs)
		if math.IsNaN(v) {
			return math.NaN()
		}
		w = min(w, v)
	}
	return w
}

func fmtAcc(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", v)
}

// WriteTable writes one table per setting of recs: a row per (f, rule), a
// column per attack of c.Attacks (plus "none" and the worst case over
// attacks), each the mean accuracy over seeds; "-" where no cell ran and
// "n/a" where a cell failed.
func WriteTable(w io.Writer, c Config, recs []Record) error {
	groups := groupRecords(recs)
	attacks := RealAttacks(c.Attacks)
	for gi, g := range groups {
		if gi > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "# %s (final test accuracy, mean over seeds; n/a: rule requirement not met or run failed)\n", g.title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "f\trule\tnone\t")
		for _, a := range attacks {
			fmt.Fprintf(tw, "%s\t", a)
		}
		fmt.Fprint(tw, "worst\t\n")
		for _, f := range g.fs {
			for _, rule := range g.rules {
				m := g.acc[f][rule]
				if m == nil {
					continue
				}
				fmt.Fprintf(tw, "%d\t%s\t", f, rule)
				for _, a := range append([]string{"none"}, attacks...) {
					if xs, ok := m[a]; ok {
						fmt.Fprintf(tw, "%s\t", fmtAcc(mean(xs)))
					} else {
						fmt.Fprint(tw, "-\t")
					}
				}
				fmt.Fprintf(tw, "%s\t\n", fmtAcc(g.worst(f, rule)))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return writeDPSummary(w, recs)
}

// heatGrid adapts one group's worst-case matrix to plotter.GridXYZ:
// columns are f values, rows rules (first rule on top).
type heatGrid struct {
	g *group
}

func (h heatGrid) Dims() (c, r int) { return len(h.g.fs), len(h.g.rules) }
func (h heatGrid) Z(c, r int) float64 {
	return h.g.worst(h.g.fs[c], h.g.rules[len(h.g.rules)-1-r])
}
func (h heatGrid) X(c int) float64 { return float64(c) }
func (h heatGrid) Y(r int) float64 { return float64(r) }
func (h heatGrid) Min() float64    { return 0 }
func (h heatGrid) Max() float64    { return 1 }

// ErrNoCells is returned by WritePNG when there is nothing to draw.
var ErrNoCells = errors.New("experiment: no finished cells to draw")

// WritePNG draws one heat map per setting of recs (the worst case over
// attacks, rules by f; high accuracy blue, collapse red, failed cells
// grey) and writes it as PNG. ErrNoCells when recs is empty.
func WritePNG(w io.Writer, recs []Record) error {
	groups := groupRecords(recs)
	if len(groups) == 0 {
		return ErrNoCells
	}
	cmap := moreland.SmoothBlueRed()
	cmap.SetMin(0)
	cmap.SetMax(1)
	pal := cmap.Palette(64)
	// Reverse so that high accuracy is blue and collapse is red.
	cols := slices.Clone(pal.Colors())
	slices.Reverse(cols)
	rev := paletteColors(cols)
	var plots [][]*plot.Plot
	maxRules := 0
	for _, g := range groups {
		p := plot.New()
		p.Title.Text = "worst case over attacks: " + g.title
		p.X.Label.Text = "Byzantine clients f"
		hm := plotter.NewHeatMap(heatGrid{g}, rev)
		hm.NaN = color.Gray{Y: 200}
		p.Add(hm)
		var xy plotter.XYLabels
		for c := range g.fs {
			for r := range g.rules {
				xy.XYs = append(xy.XYs, plotter.XY{X: float64(c), Y: float64(r)})
				xy.Labels = append(xy.Labels, fmtAcc(heatGrid{g}.Z(c, r)))
			}
		}
		labels, err := plotter.NewLabels(xy)
		if err != nil {
			return err
		}
		for i := range labels.TextStyle {
			labels.TextStyle[i].XAlign = draw.XCenter
			labels.TextStyle[i].YAlign = draw.YCenter
		}
		p.Add(labels)
		var xt, yt []plot.Tick
		for c, f := range g.fs {
			xt = append(xt, plot.Tick{Value: float64(c), Label: strconv.Itoa(f)})
		}
		for r := range g.rules {
			yt = append(yt, plot.Tick{Value: float64(r), Label: g.rules[len(g.rules)-1-r]})
		}
		p.X.Tick.Marker = plot.ConstantTicks(xt)
		p.Y.Tick.Marker = plot.ConstantTicks(yt)
		p.X.Min, p.X.Max = -0.5, float64(len(g.fs))-0.5
		p.Y.Min, p.Y.Max = -0.5, float64(len(g.rules))-0.5
		plots = append(plots, []*plot.Plot{p})
		maxRules = max(maxRules, len(g.rules))
	}
	width := vg.Length(260 + 70*maxFs(groups))
	height := vg.Length(len(groups)) * vg.Length(90+28*maxRules)
	img := vgimg.New(width, height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadTop: 4, PadBottom: 4, PadLeft: 12, PadRight: 8, PadX: 4, PadY: 12}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	_, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w)
	return err
}

func maxFs(groups []*group) int {
	m := 0
	for _, g := range groups {
		m = max(m, len(g.fs))
	}
	return m
}

// paletteColors is a palette.Palette over a fixed colour list.
type paletteColors []color.Color

func (p paletteColors) Colors() []color.Color { return p }
