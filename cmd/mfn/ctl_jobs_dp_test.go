package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/privacy"
)

func TestPrivacyLine(t *testing.T) {
	if got := privacyLine(coordinator.Job{}); got != "" {
		t.Fatalf("job without DP: %q", got)
	}
	acc := new(privacy.Accountant)
	if err := acc.Compose(1, 2, 3); err != nil {
		t.Fatal(err)
	}
	eps, _, err := acc.Epsilon(1e-5)
	if err != nil {
		t.Fatal(err)
	}
	j := coordinator.Job{Privacy: &coordinator.JobPrivacy{Mode: privacy.ModeLocal, NoiseMultiplier: 2, Clip: 1, SampleRate: 1,
		Delta: 1e-5, MaxEpsilon: 8, Accountant: acc, EpsilonSpent: eps}}
	got := privacyLine(j)
	for _, want := range []string{"local DP", fmt.Sprintf("ε spent %.4g of", eps), "max_epsilon 8", "δ 1e-05", "3 rounds composed"} {
		if !strings.Contains(got, want) {
			t.Errorf("line %q lacks %q", got, want)
		}
	}
	j.Privacy.MaxEpsilon = 0
	if got := privacyLine(j); !strings.Contains(got, "no max_epsilon") {
		t.Errorf("line %q lacks the missing limit", got)
	}
}
