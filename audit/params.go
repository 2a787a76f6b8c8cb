package audit

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/mfn/mfn/aggregate"
)

// FormatRuleParams returns the canonical parameter string a result leaf
// records: "key=value" pairs for every non-zero field of p, joined by ",",
// keys in ascending order. Integers are decimal, floats the shortest
// decimal that reads back to the same float64 (strconv 'g', -1). Keys:
//
//	bucket_size clip_norm clusters f fraction iters m nu seed tau tol
//
// (aggregate.Params' fields in snake case). The zero Params gives "".
func FormatRuleParams(p aggregate.Params) string {
	var parts []string
	add := func(k, v string) { parts = append(parts, k+"="+v) }
	fl := func(k string, v float64) {
		if v != 0 {
			add(k, strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	in := func(k string, v int) {
		if v != 0 {
			add(k, strconv.Itoa(v))
		}
	}
	in("bucket_size", p.BucketSize)
	fl("clip_norm", p.ClipNorm)
	in("clusters", p.Clusters)
	in("f", p.F)
	fl("fraction", p.Fraction)
	in("iters", p.Iters)
	in("m", p.M)
	fl("nu", p.Nu)
	if p.Seed != 0 {
		add("seed", strconv.FormatUint(p.Seed, 10))
	}
	fl("tau", p.Tau)
	fl("tol", p.Tol)
	return strings.Join(parts, ",")
}

// ParseRuleParams parses a string written by FormatRuleParams. It accepts
// only the canonical form (known keys, ascending, each once, non-zero
// finite values, canonical numbers); anything else fails with an error
// wrapping ErrMalformed (ErrTooLarge over MaxRuleParamsLen).
func ParseRuleParams(s string) (aggregate.Params, error) {
	var p aggregate.Params
	if len(s) > MaxRuleParamsLen {
		return p, fmt.Errorf("audit: rule params %d bytes, limit %d: %w", len(s), MaxRuleParamsLen, ErrTooLarge)
	}
	if s == "" {
		return p, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, fmt.Errorf("audit: rule params: %q is not key=value: %w", kv, ErrMalformed)
		}
		var err error
		fl := func(dst *float64) {
			var f float64
			if f, err = strconv.ParseFloat(v, 64); err == nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
				err = fmt.Errorf("not finite")
			}
			*dst = f
		}
		in := func(dst *int) {
			var n int64
			n, err = strconv.ParseInt(v, 10, 32)
			*dst = int(n)
		}
		switch k {
		case "bucket_size":
			in(&p.BucketSize)
		case "clip_norm":
			fl(&p.ClipNorm)
		case "clusters":
			in(&p.Clusters)
		case "f":
			in(&p.F)
		case "fraction":
			fl(&p.Fraction)
		case "iters":
			in(&p.Iters)
		case "m":
			in(&p.M)
		case "nu":
			fl(&p.Nu)
		case "seed":
			p.Seed, err = strconv.ParseUint(v, 10, 64)
		case "tau":
			fl(&p.Tau)
		case "tol":
			fl(&p.Tol)
		default:
			return p, fmt.Errorf("audit: rule params: unknown key %q: %w", k, ErrMalformed)
		}
		if err != nil {
			return p, fmt.Errorf("audit: rule params: %s=%q: %v: %w", k, v, err, ErrMalformed)
		}
	}
	if FormatRuleParams(p) != s {
		return p, fmt.Errorf("audit: rule params %q are not canonical (want %q): %w", s, FormatRuleParams(p), ErrMalformed)
	}
	return p, nil
}
