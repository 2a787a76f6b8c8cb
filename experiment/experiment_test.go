package experiment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenConfig is the configuration whose outputs were recorded in
// testdata/golden_*.txt|json by "mfn bench robustness" before the engine
// moved into this package (same flags: --dataset mfn --mfn-per-regime 40
// --heterogeneity iid,dirichlet,extreme --alpha 0.5 --honest 5 --f 0,1
// --rules fedavg,median,nnm+trimmed-mean,centered-clipping --attacks
// gaussian:sigma=200,label-flip,alie --rounds 4 --local-steps 10 --batch 16
// --lr 0.05 --seeds 2).
func goldenConfig() Config {
	c := DefaultConfig()
	c.Dataset = "mfn"
	c.MFNPerRegime = 40
	c.Heterogeneity = []string{"iid", "dirichlet", "extreme"}
	c.Alphas = []float64{0.5}
	c.Honest = 5
	c.Fs = []int{0, 1}
	c.Rules = []string{"fedavg", "median", "nnm+trimmed-mean", "centered-clipping"}
	c.Attacks = []string{"gaussian:sigma=200", "label-flip", "alie"}
	c.Rounds = 4
	c.LocalSteps = 10
	c.Batch = 16
	c.LR = 0.05
	c.Seeds = 2
	return c
}

// TestGoldenOutputs checks that the engine reproduces, byte for byte, the
// table and JSON the command printed before the move.
func TestGoldenOutputs(t *testing.T) {
	c := goldenConfig()
	for _, workers := range []int{1, 2} {
		c.Workers = workers
		out, err := Run(context.Background(), c, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if out.Total != 96 || len(out.Records) != 96 || out.Interrupted != nil {
			t.Fatalf("total %d, records %d, interrupted %v", out.Total, len(out.Records), out.Interrupted)
		}
		var table, js bytes.Buffer
		if err := WriteTable(&table, c, out.Records); err != nil {
			t.Fatal(err)
		}
		if err := WriteJSON(&js, out.Records); err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string][]byte{"golden_table.txt": table.Bytes(), "golden_cells.json": js.Bytes()} {
			want, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("workers %d: %s differs:\n%s", workers, name, got)
			}
		}
	}
}

func TestCellsOrderAndCount(t *testing.T) {
	c := DefaultConfig()
	c.Heterogeneity = []string{"iid", "dirichlet"}
	c.Alphas = []float64{1, 0.1}
	c.Fs = []int{0, 2}
	c.Rules = []string{"fedavg", "krum"}
	c.Attacks = []string{"none", "alie", "sign-flip"}
	c.Seeds = 2
	c.Seed = 7
	cells := c.Cells()
	// 3 settings × (f=0: 2 rules × 1 × 2 seeds + f=2: 2 rules × 2 attacks × 2 seeds)
	if len(cells) != 3*(4+8) {
		t.Fatalf("%d cells", len(cells))
	}
	if cells[0] != (Cell{"iid", 0, 0, "fedavg", "none", 7, ""}) || cells[1].Seed != 8 {
		t.Errorf("first cells %+v %+v", cells[0], cells[1])
	}
	if last := cells[len(cells)-1]; last != (Cell{"dirichlet", 0.1, 2, "krum", "sign-flip", 8, ""}) {
		t.Errorf("last cell %+v", last)
	}
	seen := map[string]bool{}
	setup := c.Setup()
	for _, cell := range cells {
		k := c.Key(cell, setup)
		if seen[k] {
			t.Fatalf("duplicate key %s", k)
		}
		seen[k] = true
	}
}

func TestValidateNamesField(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"honest", func(c *Config) { c.Honest = 0 }},
		{"dataset", func(c *Config) { c.Dataset = "cifar" }},
		{"rules", func(c *Config) { c.Rules = []string{"nosuchrule"} }},
		{"rules", func(c *Config) { c.Rules = []string{"fedavg+fedavg"} }},
		{"attacks", func(c *Config) { c.Attacks = []string{"gaussian:sigma=x"} }},
		{"attacks", func(c *Config) { c.Attacks = []string{"none"} }},
		{"alpha", func(c *Config) { c.Alphas = []float64{0} }},
		{"lr", func(c *Config) { c.LR = math.NaN() }},
		{"momentum", func(c *Config) { c.Momentum = 1 }},
		{"heterogeneity", func(c *Config) { c.Heterogeneity = []string{"wild"} }},
	} {
		c := DefaultConfig()
		tc.edit(&c)
		err := c.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
}

func TestParseAttackSpec(t *testing.T) {
	name, p, err := ParseAttackSpec("ipm:eps=0.5:mimic-index=3")
	if err != nil || name != "ipm" || p.Eps != 0.5 || p.MimicIndex != 3 {
		t.Fatalf("%q %+v %v", name, p, err)
	}
	for _, bad := range []string{"ipm:eps", "gaussian:sigma=NaN", "x:mimic-index=1.5", "x:colour=1"} {
		if _, _, err := ParseAttackSpec(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, flip, err := NewAttack("label-flip"); err != nil || !flip {
		t.Errorf("label-flip: flip %v err %v", flip, err)
	}
}

// TestResumeAndInterrupt runs part of a grid, cancels, then resumes from
// the results file and checks that only the missing cells run and that
// the failed cell (Krum needs n > 2f+2) round-trips as NaN.
func TestResumeAndInterrupt(t *testing.T) {
	c := DefaultConfig()
	c.Dataset, c.MFNPerRegime = "mfn", 20
	c.Heterogeneity = []string{"iid"}
	c.Honest = 3 // Krum needs n > 2f+2: runs at f = 0, fails at f = 1
	c.Fs = []int{0, 1}
	c.Rules = []string{"median", "krum"}
	c.Attacks = []string{"gaussian"}
	c.Rounds, c.LocalSteps, c.Seeds = 2, 2, 1
	results := filepath.Join(t.TempDir(), "r.jsonl")

	ctx, cancel := context.WithCancel(context.Background())
	ran := 0
	out, err := Run(ctx, c, RunOptions{Results: results, Finished: func(Record) {
		ran++
		if ran == 2 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Interrupted == nil || len(out.Records) != 2 || out.Total != 4 {
		t.Fatalf("interrupted %v, %d records of %d", out.Interrupted, len(out.Records), out.Total)
	}
	var start [3]int
	out, err = Run(context.Background(), c, RunOptions{Results: results, Start: func(total, done, todo int) {
		start = [3]int{total, done, todo}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if start != [3]int{4, 2, 2} || len(out.Records) != 4 || out.Interrupted != nil {
		t.Fatalf("start %v, records %d", start, len(out.Records))
	}
	recs, err := ReadResults(results)
	if err != nil || len(recs) != 4 {
		t.Fatalf("ReadResults: %d, %v", len(recs), err)
	}
	failed := 0
	for _, r := range recs {
		if r.Rule == "krum" && r.F == 1 {
			failed++
			if !math.IsNaN(r.Accuracy) || r.Error == "" {
				t.Errorf("krum f=1: accuracy %v error %q", r.Accuracy, r.Error)
			}
		} else if !(r.Accuracy >= 0 && r.Accuracy <= 1) {
			t.Errorf("%s f=%d: accuracy %v", r.Rule, r.F, r.Accuracy)
		}
	}
	if failed != 1 {
		t.Errorf("%d failed krum cells", failed)
	}
	var table bytes.Buffer
	if err := WriteTable(&table, c, recs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "n/a") {
		t.Errorf("table lacks n/a:\n%s", table.String())
	}
	var png bytes.Buffer
	if err := WritePNG(&png, recs); err != nil || !bytes.HasPrefix(png.Bytes(), []byte("\x89PNG")) {
		t.Errorf("png: %v", err)
	}
	if err := WritePNG(&png, nil); !errors.Is(err, ErrNoCells) {
		t.Errorf("empty png: %v", err)
	}
}

func TestReadResultsTruncatedLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	good := `{"dataset":"mfn","accuracy":null,"seed":1}`
	if err := os.WriteFile(path, []byte(good+"\n"+`{"dataset":"mf`), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadResults(path)
	if err != nil || len(recs) != 1 || !math.IsNaN(recs[0].Accuracy) || recs[0].Seed != 1 {
		t.Fatalf("%+v %v", recs, err)
	}
	if err := os.WriteFile(path, []byte("garbage\n"+good+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResults(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad first line: %v", err)
	}
}

// TestDataFile runs the protocol on a CSV file: three separable classes
// named by strings, an MLP given by spec.
func TestDataFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "blobs.csv")
	var b strings.Builder
	b.WriteString("f0,f1,f2,species\n")
	names := []string{"ant", "bee", "cat"}
	for i := 0; i < 300; i++ {
		k := i % 3
		// centres 0, 4, 8 on every axis, with a deterministic wobble
		w := float64(i%7) / 10
		fmt.Fprintf(&b, "%g,%g,%g,%s\n", 4*float64(k)+w, 4*float64(k)-w, 4*float64(k)+w/2, names[k])
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Dataset, c.Data, c.LabelColumn = "file", path, "species"
	c.Classes = []string{"cat", "bee", "ant"}
	c.Model = "mlp:16,8"
	c.Heterogeneity = []string{"iid"}
	c.Honest = 4
	c.Fs = []int{0}
	c.Rules = []string{"fedavg"}
	c.Rounds, c.LocalSteps, c.Seeds, c.LR = 5, 10, 1, 0.05
	out, err := Run(context.Background(), c, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := out.Records[0]
	if r.Dataset != "file:blobs.csv" || r.Error != "" || r.Accuracy < 0.95 {
		t.Errorf("record %+v", r)
	}
	if !math.IsNaN(out.Reference) {
		t.Errorf("reference %v without Config.Reference", out.Reference)
	}
	c.Reference = true
	if out, err = Run(context.Background(), c, RunOptions{}); err != nil || !(out.Reference >= 0.95) {
		t.Errorf("centralized reference %v, %v", out.Reference, err)
	}
	c.Reference = false
	// Without a class list labels must be integers: "ant" is not one.
	c.Classes = nil
	if _, err := Run(context.Background(), c, RunOptions{}); err == nil || !strings.Contains(err.Error(), `column "species"`) {
		t.Errorf("string labels without classes: %v", err)
	}
	c.Classes = []string{"cat", "bee", "ant"}
	c.Model = "cnn:mnist" // 3 features are no 28×28 image
	var ce *ConfigError
	if _, err := Run(context.Background(), c, RunOptions{}); !errors.As(err, &ce) || ce.Field != "model" {
		t.Errorf("cnn on 3 features: %v", err)
	}
	c.Model, c.Data = "softmax", ""
	if err := c.Validate(); !errors.As(err, &ce) || ce.Field != "data" {
		t.Errorf("file without data: %v", err)
	}
}
