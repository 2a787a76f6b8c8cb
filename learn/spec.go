package learn

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseArch reads a model spec for inputs of dim features and classes
// classes:
//
//	softmax            multinomial logistic regression
//	mlp                one hidden layer of 64 ReLU units
//	mlp:H1,H2,...      hidden ReLU layers of H1, H2, ... units (1..100000 each, at most MaxHiddenLayers)
//	cnn:mnist          conv–pool–conv–pool–dense for 28×28 images (see CNN)
//
// Errors wrap ErrArch and quote the spec.
func ParseArch(spec string, dim, classes int) (Arch, error) {
	a := Arch{Dim: dim, Classes: classes}
	kind, arg, hasArg := strings.Cut(strings.TrimSpace(spec), ":")
	switch {
	case kind == "softmax" && !hasArg:
		a.Kind = "softmax"
	case kind == "mlp":
		a.Kind = "mlp"
		if !hasArg {
			a.Hidden = 64
			break
		}
		parts := strings.Split(arg, ",")
		if len(parts) > MaxHiddenLayers {
			return Arch{}, fmt.Errorf("%w: spec %q: %d hidden layers, at most %d", ErrArch, spec, len(parts), MaxHiddenLayers)
		}
		for i, p := range parts {
			h, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || h < 1 || h > 100000 {
				return Arch{}, fmt.Errorf("%w: spec %q: hidden width %q (want 1..100000)", ErrArch, spec, p)
			}
			if i == 0 {
				a.Hidden = h
			} else {
				a.Deeper[i-1] = h
			}
		}
	case kind == "cnn" && arg == "mnist":
		a.Kind = "cnn"
	default:
		return Arch{}, fmt.Errorf("%w: spec %q (want softmax, mlp:H1,H2,... or cnn:mnist)", ErrArch, spec)
	}
	if err := a.Validate(); err != nil {
		return Arch{}, fmt.Errorf("spec %q: %w", spec, err)
	}
	return a, nil
}

// Spec returns the spec string ParseArch reads back into a (with the same
// Dim and Classes).
func (a Arch) Spec() string {
	switch a.Kind {
	case "mlp":
		w := a.widths()
		parts := make([]string, 0, len(w)-2)
		for _, h := range w[1 : len(w)-1] {
			parts = append(parts, strconv.Itoa(h))
		}
		return "mlp:" + strings.Join(parts, ",")
	case "cnn":
		return "cnn:mnist"
	}
	return a.Kind
}
