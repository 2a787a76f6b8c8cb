package main

import (
	"bytes"
	"context"
	"errors"
	"image/gif"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfn/mfn/internal/npy"
)

func TestVizDashboardFromSimulation(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "analysis.png")
	code, stdout, stderr := runDatasetCLI(t, context.Background(), "viz", "--mode", "dashboard", "--grid-size", "24",
		"--steps", "12", "--spike-probability", "0.9", "--jitter", "--width", "900", "--height", "750", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "12 steps of a 24×24 field") {
		t.Errorf("stdout %q", stdout)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 900 || b.Dy() != 750 {
		t.Errorf("image %v, want 900×750", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %v, want only the PNG", entries)
	}
}

func TestVizAnimationFrames(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		every, frames string
		want          int
	}{{"1", "10", 10}, {"3", "10", 4}, {"4", "10", 4}, {"20", "10", 2}} {
		out := filepath.Join(dir, "evolution.gif")
		code, _, stderr := runDatasetCLI(t, context.Background(), "viz", "--mode", "animation", "--grid-size", "16",
			"--steps", c.frames, "--every", c.every, "--jitter", "--out", out)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		g, err := gif.DecodeAll(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("not a GIF: %v", err)
		}
		if len(g.Image) != c.want {
			t.Errorf("--every %s: %d frames, want %d", c.every, len(g.Image), c.want)
		}
		if g.Config.Width < 16*16 || g.Config.Height < 16*16 {
			t.Errorf("GIF %d×%d smaller than the 256-pixel field", g.Config.Width, g.Config.Height)
		}
		// An active run changes the field between the first and last frame.
		if c.want > 1 && bytes.Equal(g.Image[0].Pix, g.Image[len(g.Image)-1].Pix) {
			t.Errorf("first and last frames are identical")
		}
	}
}

func writeNPY(t *testing.T, path string, data []float64, shape []int) {
	t.Helper()
	var buf bytes.Buffer
	if err := npy.Write(&buf, data, shape); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rampHistory(steps, n int) []float64 {
	v := make([]float64, steps*n*n)
	for i := range v {
		v[i] = -0.070 + 0.03*float64(i%(n*n))/float64(n*n)*float64(i/(n*n)+1)/float64(steps)
	}
	return v
}

func TestVizFromNPY(t *testing.T) {
	dir := t.TempDir()
	hist := filepath.Join(dir, "h.npy")
	writeNPY(t, hist, rampHistory(6, 8), []int{6, 8, 8})
	field := filepath.Join(dir, "f.npy")
	writeNPY(t, field, rampHistory(1, 8), []int{8, 8})

	out := filepath.Join(dir, "h.gif")
	if code, _, stderr := runDatasetCLI(t, context.Background(), "viz", "--mode", "animation", "--in", hist, "--out", out); code != 0 {
		t.Fatalf("history: exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(out)
	if g, err := gif.DecodeAll(bytes.NewReader(b)); err != nil || len(g.Image) != 6 {
		t.Errorf("history animation: err %v", err)
	}
	out = filepath.Join(dir, "f.png")
	if code, stdout, stderr := runDatasetCLI(t, context.Background(), "viz", "--in", field, "--width", "600", "--height", "500", "--out", out); code != 0 || !strings.Contains(stdout, "1 steps of a 8×8") {
		t.Fatalf("field: exit %d: %s %s", code, stdout, stderr)
	}
}

func TestVizBadInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.npy")
	writeNPY(t, good, rampHistory(2, 8), []int{2, 8, 8})
	raw, _ := os.ReadFile(good)
	nan := rampHistory(2, 8)
	nan[64+9] = math.NaN()
	files := map[string][]byte{
		"text.npy":      []byte("hello, not numpy\n"),
		"truncated.npy": raw[:len(raw)-8],
		"empty.npy":     nil,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeNPY(t, filepath.Join(dir, "nan.npy"), nan, []int{2, 8, 8})
	writeNPY(t, filepath.Join(dir, "rank1.npy"), make([]float64, 8), []int{8})
	writeNPY(t, filepath.Join(dir, "rect.npy"), make([]float64, 2*8*4), []int{2, 8, 4})
	cases := []struct {
		file, want string
		code       int
	}{
		{"text.npy", "not a .npy file", exitFailure},
		{"truncated.npy", "expected 1024 bytes, got 1016", exitFailure},
		{"empty.npy", "expected 8 bytes, got 0", exitFailure},
		{"nan.npy", "step 1, cell (1, 1)", exitFailure},
		{"rank1.npy", "1 dimensions", exitFailure},
		{"rect.npy", "not square", exitFailure},
		{"missing.npy", "no such file", exitUsage},
	}
	for _, c := range cases {
		out := filepath.Join(dir, "out.png")
		code, _, stderr := runDatasetCLI(t, context.Background(), "viz", "--in", filepath.Join(dir, c.file), "--out", out)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d stderr %q; want exit %d mentioning %q", c.file, code, stderr, c.code, c.want)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: output written despite the error", c.file)
		}
	}
}
