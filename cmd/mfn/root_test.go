package main

import (
	"testing"

	"github.com/spf13/pflag"
)

func TestNameValueSources(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.Int("steps", 1, "")
	fs.Int("steps-max", 1, "")
	fs.Int64("seed", 1, "")
	fs.Float64("alpha", 0.1, "")
	if err := fs.Parse([]string{"--steps-max", "10", "--seed", "5"}); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"steps": "1", "alpha": "0.30"} {
		if err := fs.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	_ = fs.SetAnnotation("steps", flagSourceAnnotation, []string{"environment", "MFN_STEPS=1", "1"})
	_ = fs.SetAnnotation("alpha", flagSourceAnnotation, []string{"config", "alpha = 0.3 in c.toml", "0.30"})
	for _, tc := range []struct{ in, want string }{
		{"--steps 1 out of range", "MFN_STEPS=1 (--steps) out of range"},
		{"--steps=1 out of range", "MFN_STEPS=1 (--steps) out of range"},
		// A longer value or a longer flag name is not the same token.
		{"--steps 10 and --steps-max 10", "--steps (from MFN_STEPS=1) 10 and --steps-max 10"},
		{"--steps: too many", "--steps (from MFN_STEPS=1): too many"},
		// The value as the flag prints it (0.3) and as it was written (0.30).
		{"--alpha 0.3 out of range", "alpha = 0.3 in c.toml (--alpha) out of range"},
		{"--alpha 0.30 out of range", "alpha = 0.3 in c.toml (--alpha) out of range"},
		{`--alpha "0.30" is odd`, "alpha = 0.3 in c.toml (--alpha) is odd"},
		{`--alpha: "0.30": not a number`, "alpha = 0.3 in c.toml (--alpha): not a number"},
		// Typed flags are left alone.
		{"--seed 5 is odd", "--seed 5 is odd"},
	} {
		if got := nameValueSources(fs, tc.in); got != tc.want {
			t.Errorf("nameValueSources(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
