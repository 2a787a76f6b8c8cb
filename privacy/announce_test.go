package privacy

import (
	"errors"
	"strings"
	"testing"
)

func TestAnnouncedRoundTrip(t *testing.T) {
	for _, a := range []Announced{{ModeLocal, 1, 1.1}, {ModeCentral, 0.05, 3.0000000000000004}, {ModeLocal, 1e-300, 1e300}} {
		s := a.Encode()
		b, err := ParseAnnounced(s)
		if err != nil || b != a {
			t.Fatalf("%+v → %q → %+v, %v", a, s, b, err)
		}
	}
	if s := (Announced{ModeLocal, 1, 1.1}).Encode(); s != "local;clip=1;z=1.1" {
		t.Fatalf("encoding %q", s)
	}
	for s, field := range map[string]string{
		"":                          "dp",
		"local;clip=1":              "dp",
		"global;clip=1;z=1":         "dp.mode",
		"local;clip=0;z=1":          "dp.clip",
		"local;clip=NaN;z=1":        "dp.clip",
		"local;c=1;z=1":             "dp.clip",
		"local;clip=1;z=-1":         "dp.noise_multiplier",
		"local;clip=1;z=+Inf":       "dp.noise_multiplier",
		"local;clip=1;z=1;extra=2":  "dp",
		strings.Repeat("x", 300):    "dp",
		"local;clip=1;noise=1":      "dp.noise_multiplier",
		"central;clip=1e999;z=1":    "dp.clip",
		"local;clip=1;z=0x1p-2000":  "dp.noise_multiplier",
		"local;clip=1;z=1 ":         "dp.noise_multiplier",
		"local ;clip=1;z=1":         "dp.mode",
		"local;clip=1;z=1;":         "dp",
		"local;clip=1;z=1e-400":     "dp.noise_multiplier",
		"LOCAL;clip=1;z=1":          "dp.mode",
		"local;clip=-0;z=1":         "dp.clip",
		"local;clip=1;z=1\x00":      "dp.noise_multiplier",
		"local;clip=1;z=":           "dp.noise_multiplier",
		"local;clip=;z=1":           "dp.clip",
		"local;clip=1e-400;z=1":     "dp.clip",
		"local;clip=1;z=1;z=2":      "dp",
		"local;;":                   "dp.clip",
		";clip=1;z=1":               "dp.mode",
		"local;clip=1,5;z=1":        "dp.clip",
		"central;clip=1;z=infinity": "dp.noise_multiplier",
	} {
		_, err := ParseAnnounced(s)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%.50q: error %v, want a FieldError naming %s", s, err, field)
		}
	}
}

func FuzzAnnounced(f *testing.F) {
	f.Add("local;clip=1;z=1.1")
	f.Add("central;clip=0.5;z=2")
	f.Add("local;clip=1;z=")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAnnounced(s)
		if err != nil {
			return
		}
		b, err := ParseAnnounced(a.Encode())
		if err != nil || b != a {
			t.Fatalf("%q parsed to %+v, which re-encodes to %q → %+v, %v", s, a, a.Encode(), b, err)
		}
	})
}
