package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mfn/mfn/internal/npy"
)

// fractalJSON is the part of "mfn analyze fractal --json" the tests read.
type fractalJSON struct {
	Fit struct {
		D, R2          float64
		ActiveFraction float64 `json:"active_fraction"`
	} `json:"fit"`
	Figures []string `json:"figures"`
}

// TestAnalyzeFractalMatchesSimFeature: with the defaults, the command's D
// and R² are the D_box and D_r2 that "mfn sim" reports for the same run.
func TestAnalyzeFractalMatchesSimFeature(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run.npy")
	code, simOut, stderr := runDatasetCLI(t, context.Background(), "sim", "--grid-size", "48", "--steps", "20",
		"--spike-probability", "0.9", "--jitter", "--seed", "8", "--history", "--out", run, "--json")
	if code != 0 {
		t.Fatalf("sim: exit %d: %s", code, stderr)
	}
	var sim struct {
		Features map[string]float64 `json:"features"`
	}
	if err := json.Unmarshal([]byte(simOut), &sim); err != nil {
		t.Fatalf("sim --json: %v", err)
	}
	code, out, stderr := runDatasetCLI(t, context.Background(), "analyze", "fractal", run, "--out", dir, "--json", "-")
	if code != 0 {
		t.Fatalf("analyze: exit %d: %s", code, stderr)
	}
	var got fractalJSON
	if err := json.Unmarshal([]byte(out[findJSON(out):]), &got); err != nil {
		t.Fatalf("analyze --json -: %v\n%s", err, out)
	}
	if got.Fit.D != sim.Features["D_box"] || got.Fit.R2 != sim.Features["D_r2"] || got.Fit.ActiveFraction != sim.Features["f_active"] {
		t.Errorf("analyze D %v R² %v active %v; sim D_box %v D_r2 %v f_active %v", got.Fit.D, got.Fit.R2, got.Fit.ActiveFraction,
			sim.Features["D_box"], sim.Features["D_r2"], sim.Features["f_active"])
	}
	if sim.Features["D_box"] == 0 {
		t.Error("D_box is 0: the comparison has no teeth; use a busier run")
	}
	if len(got.Figures) != 4 {
		t.Fatalf("figures %v, want 4", got.Figures)
	}
	for _, f := range got.Figures {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(fh); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		fh.Close()
	}
}

// findJSON returns the offset of the JSON object in out: "--json -"
// prints the object after the lines naming the figures.
func findJSON(out string) int {
	for i := range out {
		if out[i] == '{' && (i == 0 || out[i-1] == '\n') {
			return i
		}
	}
	return len(out)
}

// TestAnalyzeFractalGolden: the reference implementation's D_box and D_r2
// through the command, for a history and a single field (package analyze
// checks every golden case; drawing the figures is what costs time here).
func TestAnalyzeFractalGolden(t *testing.T) {
	var paths []string
	for _, name := range []string{"history-c1-s11.json", "snapshot-s22.json"} {
		if p := filepath.Join(sharedDir(), "golden", "features", name); fileExists(p) {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		t.Skip("golden data not available")
	}
	dir := t.TempDir()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Shape    []int              `json:"shape"`
			History  string             `json:"history_f64le_b64"`
			Features map[string]float64 `json:"features"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(c.History)
		h := make([]float64, len(raw)/8)
		for i := range h {
			h[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		field := filepath.Join(dir, "f.npy")
		f, err := os.Create(field)
		if err != nil {
			t.Fatal(err)
		}
		if err := npy.Write(f, h, c.Shape); err != nil {
			t.Fatal(err)
		}
		f.Close()
		code, out, stderr := runDatasetCLI(t, context.Background(), "analyze", "fractal", field, "--out", dir, "--json", "-")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", p, code, stderr)
		}
		var got fractalJSON
		if err := json.Unmarshal([]byte(out[findJSON(out):]), &got); err != nil {
			t.Fatal(err)
		}
		for _, k := range []struct {
			got  float64
			name string
		}{{got.Fit.D, "D_box"}, {got.Fit.R2, "D_r2"}} {
			if want := c.Features[k.name]; math.Abs(k.got-want) > 1e-9*math.Max(1, math.Abs(want)) {
				t.Errorf("%s: %s %v, reference %v", filepath.Base(p), k.name, k.got, want)
			}
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestAnalyzeInterrupted: a cancelled run (Ctrl-C) writes nothing.
func TestAnalyzeInterrupted(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run.npy")
	if code, _, stderr := runDatasetCLI(t, context.Background(), "sim", "--grid-size", "16", "--steps", "5", "--history", "--out", run); code != 0 {
		t.Fatalf("sim: %s", stderr)
	}
	data := filepath.Join(dir, "data.csv")
	if code, _, stderr := runDatasetCLI(t, context.Background(), "dataset", "--samples", "20", "--grid-size", "8", "--steps", "4",
		"--jitter", "true,false", "--out", data); code != 0 {
		t.Fatalf("dataset: %s", stderr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, args := range [][]string{
		{"analyze", "fractal", run, "--out", filepath.Join(dir, "f"), "--json", filepath.Join(dir, "f.json")},
		{"analyze", "features", data, "--label", "quantum_jitter", "--out", filepath.Join(dir, "g"), "--json", filepath.Join(dir, "g.json")},
	} {
		code, _, stderr := runDatasetCLI(t, ctx, args...)
		if code != exitFailure {
			t.Errorf("%v: exit %d (%s), want %d", args[:2], code, stderr, exitFailure)
		}
	}
	for _, name := range []string{"f", "f.json", "g", "g.json"} {
		if fileExists(filepath.Join(dir, name)) {
			t.Errorf("interrupted run left %s", name)
		}
	}
}
