package privacy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxAnnouncedLen bounds the announced DP parameters a node parses.
const MaxAnnouncedLen = 256

// Announced is what a node must know of a job's DP settings to train for
// it: the mode, the clip C and the noise multiplier z the coordinators
// resolved. Coordinators put Encode's string in the round announcement's
// "dp" metadata; in local mode the node privatizes its update with
// NewLocal(Clip, NoiseMultiplier) before sealing it.
type Announced struct {
	Mode            Mode
	Clip            float64
	NoiseMultiplier float64
}

// Encode returns "MODE;clip=C;z=Z" with Go's shortest exact float
// spelling, e.g. "local;clip=1;z=1.1".
func (a Announced) Encode() string {
	return fmt.Sprintf("%s;clip=%s;z=%s", a.Mode,
		strconv.FormatFloat(a.Clip, 'g', -1, 64), strconv.FormatFloat(a.NoiseMultiplier, 'g', -1, 64))
}

// ParseAnnounced decodes what Encode wrote, strictly: at most
// MaxAnnouncedLen bytes, mode local or central, clip and z finite and > 0
// (NewLocal then checks z·C against the sampler's range). Errors are *FieldError naming the bad
// part ("dp", "dp.clip", "dp.noise_multiplier").
func ParseAnnounced(s string) (Announced, error) {
	if len(s) > MaxAnnouncedLen {
		return Announced{}, &FieldError{"dp", fmt.Sprintf("%d bytes, limit %d", len(s), MaxAnnouncedLen)}
	}
	parts := strings.Split(s, ";")
	if len(parts) != 3 {
		return Announced{}, &FieldError{"dp", fmt.Sprintf("%.40q: want MODE;clip=C;z=Z", s)}
	}
	a := Announced{Mode: Mode(parts[0])}
	if a.Mode != ModeLocal && a.Mode != ModeCentral {
		return Announced{}, &FieldError{"dp.mode", fmt.Sprintf("%.20q: must be local or central", parts[0])}
	}
	num := func(part, key, field string) (float64, error) {
		v, ok := strings.CutPrefix(part, key+"=")
		if !ok {
			return 0, &FieldError{field, fmt.Sprintf("%.40q: want %s=NUMBER", part, key)}
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0) || math.IsInf(f, 1) {
			return 0, &FieldError{field, fmt.Sprintf("%.40q: must be finite and > 0", v)}
		}
		return f, nil
	}
	var err error
	if a.Clip, err = num(parts[1], "clip", "dp.clip"); err != nil {
		return Announced{}, err
	}
	if a.NoiseMultiplier, err = num(parts[2], "z", "dp.noise_multiplier"); err != nil {
		return Announced{}, err
	}
	if checkClip(a.Clip) != nil {
		return Announced{}, &FieldError{"dp.clip", fmt.Sprintf("%v: out of range", a.Clip)}
	}
	if checkNoise(a.NoiseMultiplier) != nil {
		return Announced{}, &FieldError{"dp.noise_multiplier", fmt.Sprintf("%v: out of range", a.NoiseMultiplier)}
	}
	return a, nil
}
