package main

import (
	"strings"
	"testing"

	"github.com/mfn/mfn/coordinator"
)

func TestRoundPrivacyLines(t *testing.T) {
	if got := roundPrivacyLines(coordinator.Round{Number: 1}); got != "" {
		t.Fatalf("a round without DP: %q", got)
	}
	seed := coordinator.Hash{0xab}
	r := coordinator.Round{SampleSeed: &seed, Sample: []string{"a", "b", "c"}, Population: 60, Clip: 0.5,
		ClipStep: &coordinator.ClipStep{Fraction: 0.625, Next: 0.4875}}
	want := "  sample: 3 of 60 enrolled nodes (seed ab" + strings.Repeat("0", 62) + ")\n" +
		"  clip 0.5, noisy unclipped fraction 0.625, next clip 0.4875\n"
	if got := roundPrivacyLines(r); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
