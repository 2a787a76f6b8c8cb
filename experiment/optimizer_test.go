package experiment

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

func optimizerConfig() Config {
	c := goldenConfig()
	c.Heterogeneity = []string{"dirichlet"}
	c.Fs = []int{0, 1}
	c.Rules = []string{"trimmed-mean"}
	c.Attacks = []string{"alie", "opt-alie"}
	c.Seeds = 1
	c.Rounds = 3
	return c
}

// FedAvgM with momentum 0 and lr 1 is plain FedAvg: the same accuracy,
// bit for bit, as the run without an optimizer.
func TestOptimizerFedAvgMZeroIsPlain(t *testing.T) {
	plain := optimizerConfig()
	avgm := plain
	avgm.Optimizer = "fedavgm:lr=1,momentum=0"
	a, err := Run(context.Background(), plain, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(context.Background(), avgm, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Records) != 3 || len(b.Records) != 3 {
		t.Fatalf("%d and %d records, want 3", len(a.Records), len(b.Records))
	}
	for i := range a.Records {
		ra, rb := a.Records[i], b.Records[i]
		if ra.Error != "" || rb.Error != "" {
			t.Fatalf("cell %d failed: %q %q", i, ra.Error, rb.Error)
		}
		if math.Float64bits(ra.Accuracy) != math.Float64bits(rb.Accuracy) {
			t.Errorf("cell %d (%s): accuracy %v with fedavgm β=0 η=1, %v without", i, ra.Attack, rb.Accuracy, ra.Accuracy)
		}
		if rb.Optimizer != "fedavgm:lr=1,momentum=0" || ra.Optimizer != "" {
			t.Errorf("cell %d: optimizer fields %q %q", i, ra.Optimizer, rb.Optimizer)
		}
		if ra.Setup == rb.Setup || !strings.Contains(rb.Setup, " opt=fedavgm:lr=1,momentum=0") {
			t.Errorf("cell %d: setups %q and %q must differ by the optimizer", i, ra.Setup, rb.Setup)
		}
	}
}

// An adaptive optimizer changes the model (it is really applied), its
// cells do not depend on Workers (the adaptive attack probes the inner
// rule, never the optimizer's state), and an adaptive attack runs.
func TestOptimizerAdamDeterministic(t *testing.T) {
	c := optimizerConfig()
	c.Optimizer = "fedadam:lr=0.05"
	var first []float64
	var adam *Outcome
	for _, w := range []int{1, 2} {
		c.Workers = w
		out, err := Run(context.Background(), c, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		adam = out
		var accs []float64
		for _, r := range out.Records {
			if r.Error != "" {
				t.Fatalf("%s: %s", r.Attack, r.Error)
			}
			accs = append(accs, r.Accuracy)
		}
		if first == nil {
			first = accs
			continue
		}
		for i := range accs {
			if math.Float64bits(accs[i]) != math.Float64bits(first[i]) {
				t.Fatalf("workers %d: cell %d accuracy %v, workers 1 gave %v", w, i, accs[i], first[i])
			}
		}
	}
	var table bytes.Buffer
	if err := WriteTable(&table, c, adam.Records); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), ", 5 honest, server optimizer fedadam:lr=0.05,beta1=0.9,beta2=0.99,tau=0.001 (final") {
		t.Errorf("the table does not name the optimizer:\n%s", table.String())
	}
	plain := optimizerConfig()
	out, err := Run(context.Background(), plain, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	same := true
	for i, r := range out.Records {
		same = same && r.Accuracy == first[i]
	}
	if same {
		t.Errorf("fedadam gave exactly the accuracies of plain FedAvg in every cell: %v", first)
	}
}

func TestOptimizerValidate(t *testing.T) {
	for opt, want := range map[string]string{
		"adam":          "optimizer",
		"fedadam:lr=-1": "optimizer",
	} {
		c := optimizerConfig()
		c.Optimizer = opt
		var ce *ConfigError
		if err := c.Validate(); !errors.As(err, &ce) || ce.Field != want {
			t.Errorf("optimizer %q: %v, want a ConfigError for %s", opt, err, want)
		}
	}
	c := optimizerConfig()
	c.Optimizer = "fedadam"
	c.DP = []string{"none"}
	var ce *ConfigError
	if err := c.Validate(); !errors.As(err, &ce) || ce.Field != "optimizer" {
		t.Errorf("optimizer with dp: %v", err)
	}
}
