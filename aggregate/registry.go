package aggregate

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Params configures rules and pre-steps built by name. Each field says
// which rules read it; a zero field selects the documented default.
type Params struct {
	// F is the number of Byzantine inputs tolerated: krum, multi-krum,
	// median (requirement only), trimmed-mean, bulyan, nnm. Inputs rejected
	// as malformed count against it (see "Rejected inputs and the
	// Byzantine budget" in the package documentation).
	F int
	// M is how many inputs multi-krum averages; zero means n−f.
	M int
	// Tau is centered-clipping's radius; zero means 100.
	Tau float64
	// Iters is centered-clipping's L (zero means 1) and geometric-median's
	// maximum number of iterations (zero means 8).
	Iters int
	// Nu is geometric-median's smoothing; zero means 1e-6.
	Nu float64
	// Tol is geometric-median's relative tolerance; zero means 1e-6.
	Tol float64
	// BucketSize is bucketing's S; zero means 2.
	BucketSize int
	// ClipNorm is static-clipping's bound C; it must be > 0 when
	// static-clipping is used.
	ClipNorm float64
	// Clusters is hierarchical-krum's cluster count; zero means ⌈√n⌉.
	Clusters int
	// Fraction is hierarchical-krum's Byzantine fraction; zero means 0.2
	// (the reference's default).
	Fraction float64
	// Seed seeds the generators of bucketing and hierarchical-krum (each
	// gets its own stream); the same seed gives the same shuffles.
	Seed uint64
}

// RuleNames lists the names New accepts, in a stable order.
var RuleNames = []string{
	"fedavg", "krum", "multi-krum", "median", "trimmed-mean", "bulyan",
	"geometric-median", "centered-clipping", "hierarchical-krum",
}

// PreStepNames lists the names NewPreStep accepts.
var PreStepNames = []string{"nnm", "bucketing", "static-clipping"}

// New builds the rule called name with parameters p. It fails with
// ErrUnknownName for a name not in RuleNames and with a *ParamError for an
// out-of-range parameter. A name containing "+" is parsed as a pipeline
// (see ParsePipeline).
func New(name string, p Params) (Rule, error) {
	if strings.Contains(name, "+") {
		return ParsePipeline(name, p)
	}
	switch name {
	case "fedavg":
		return FedAvg{}, nil
	case "krum":
		return NewKrum(p.F)
	case "multi-krum":
		return NewMultiKrum(p.F, p.M)
	case "median":
		return NewMedian(p.F)
	case "trimmed-mean":
		return NewTrimmedMean(p.F)
	case "bulyan":
		return NewBulyan(p.F)
	case "geometric-median":
		return NewGeometricMedian(p.Nu, p.Iters, p.Tol)
	case "centered-clipping":
		return NewCenteredClipping(p.Tau, p.Iters)
	case "hierarchical-krum":
		frac := p.Fraction
		if frac == 0 {
			frac = 0.2
		}
		return NewHierarchicalKrum(p.Clusters, frac, rand.New(rand.NewPCG(p.Seed, 0x686b72756d)))
	}
	return nil, fmt.Errorf("%w: rule %q (known: %s)", ErrUnknownName, name, strings.Join(RuleNames, ", "))
}

// NewPreStep builds the pre-step called name with parameters p; it fails
// like New.
func NewPreStep(name string, p Params) (PreStep, error) {
	switch name {
	case "nnm":
		return NewNNM(p.F)
	case "bucketing":
		return NewBucketing(p.BucketSize, rand.New(rand.NewPCG(p.Seed, 0x6275636b)))
	case "static-clipping":
		return NewStaticClipping(p.ClipNorm)
	}
	return nil, fmt.Errorf("%w: pre-step %q (known: %s)", ErrUnknownName, name, strings.Join(PreStepNames, ", "))
}

// ParsePipeline builds a rule from a "+"-separated spec such as
// "nnm+bucketing+krum": every part but the last is a pre-step, the last a
// rule. A spec without "+" returns the plain rule (not wrapped).
func ParsePipeline(spec string, p Params) (Rule, error) {
	parts := strings.Split(strings.TrimSpace(spec), "+")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	last := parts[len(parts)-1]
	if len(parts) == 1 {
		return New(last, p)
	}
	rule, err := New(last, p)
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", spec, err)
	}
	pl := &Pipeline{Rule: rule}
	for _, name := range parts[:len(parts)-1] {
		s, err := NewPreStep(name, p)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: %w", spec, err)
		}
		pl.Pre = append(pl.Pre, s)
	}
	return pl, nil
}
