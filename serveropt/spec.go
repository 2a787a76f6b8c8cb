package serveropt

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The optimizer names.
const (
	FedAvgM    = "fedavgm"
	FedAdam    = "fedadam"
	FedYogi    = "fedyogi"
	FedAdagrad = "fedadagrad"
)

// Names lists the optimizers in documentation order.
var Names = []string{FedAvgM, FedAdam, FedYogi, FedAdagrad}

// Defaults (Reddi et al. 2021, §5 and Appendix: β1 = 0.9, β2 = 0.99,
// τ = 10⁻³; FedAvgM as in Hsu et al. 2019: server momentum 0.9 at server
// learning rate 1). The adaptive methods' server learning rate is the step
// per coordinate of their first round (see the package doc), so it is of
// the order of a model parameter's change per round: 0.01 for Adam and
// Yogi; Adagrad's first step is (1−β1)·η, hence 0.1.
const (
	DefaultBeta1       = 0.9
	DefaultBeta2       = 0.99
	DefaultTau         = 1e-3
	DefaultMomentum    = 0.9
	DefaultLRAvgM      = 1.0
	DefaultLRAdaptive  = 0.01
	DefaultLRAdagrad   = 0.1
	maxLR              = 1e6
	minTau, maxTau     = 1e-12, 1e3
	maxSpecStringBytes = 256
)

// ErrSpec is wrapped by every error about an invalid Spec.
var ErrSpec = errors.New("serveropt: invalid optimizer")

// Spec names a server optimizer and its hyper-parameters. In JSON (a job
// spec's "optimizer" block):
//
//	{"name": "fedadam", "lr": 0.01, "beta1": 0.9, "beta2": 0.99, "tau": 0.001}
//	{"name": "fedavgm", "lr": 1, "momentum": 0.9}
//
// A zero LR or Tau, or an absent Beta1, Beta2 or Momentum, means the
// default (Resolved fills them in); the pointers let 0 be given for β1,
// β2 and the momentum, where it is a meaningful value. Parameters that
// the named optimizer does not use must be absent.
type Spec struct {
	// Name is fedavgm, fedadam, fedyogi or fedadagrad.
	Name string `json:"name"`
	// LR is the server learning rate η (> 0).
	LR float64 `json:"lr,omitempty"`
	// Beta1 is the first-moment decay β1 ∈ [0,1) of the adaptive methods.
	Beta1 *float64 `json:"beta1,omitempty"`
	// Beta2 is the second-moment decay β2 ∈ [0,1) of FedAdam and FedYogi.
	Beta2 *float64 `json:"beta2,omitempty"`
	// Tau is the adaptivity τ (> 0) of the adaptive methods.
	Tau float64 `json:"tau,omitempty"`
	// Momentum is FedAvgM's server momentum β ∈ [0,1).
	Momentum *float64 `json:"momentum,omitempty"`
}

func ptr(v float64) *float64 { return &v }

func val(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

func bad(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrSpec, field, fmt.Sprintf(format, args...))
}

// adaptive reports whether name keeps a second moment.
func adaptive(name string) bool { return name == FedAdam || name == FedYogi || name == FedAdagrad }

// Validate returns an error naming the first bad field ("optimizer.name",
// "optimizer.lr", ...) and its valid range; it wraps ErrSpec.
func (s Spec) Validate() error {
	switch s.Name {
	case FedAvgM, FedAdam, FedYogi, FedAdagrad:
	default:
		return bad("optimizer.name", "%q: want %s", s.Name, strings.Join(Names, ", "))
	}
	unit := func(field string, p *float64) error {
		if p != nil && !(*p >= 0 && *p < 1) {
			return bad(field, "%v: want [0,1)", *p)
		}
		return nil
	}
	switch {
	case !(s.LR >= 0 && s.LR <= maxLR):
		return bad("optimizer.lr", "%v: want (0, %g] (0 means the default)", s.LR, float64(maxLR))
	case s.Tau != 0 && !(s.Tau >= minTau && s.Tau <= maxTau):
		return bad("optimizer.tau", "%v: want [%g, %g] (0 means the default)", s.Tau, minTau, maxTau)
	}
	if err := unit("optimizer.beta1", s.Beta1); err != nil {
		return err
	}
	if err := unit("optimizer.beta2", s.Beta2); err != nil {
		return err
	}
	if err := unit("optimizer.momentum", s.Momentum); err != nil {
		return err
	}
	if s.Name == FedAvgM {
		switch {
		case s.Beta1 != nil:
			return bad("optimizer.beta1", "is not a parameter of fedavgm (its momentum is optimizer.momentum)")
		case s.Beta2 != nil:
			return bad("optimizer.beta2", "is not a parameter of fedavgm")
		case s.Tau != 0:
			return bad("optimizer.tau", "is not a parameter of fedavgm")
		}
		return nil
	}
	switch {
	case s.Momentum != nil:
		return bad("optimizer.momentum", "is a parameter of fedavgm only (%s has optimizer.beta1)", s.Name)
	case s.Name == FedAdagrad && s.Beta2 != nil:
		return bad("optimizer.beta2", "is not a parameter of fedadagrad (it sums squares)")
	}
	return nil
}

// Resolved returns s with every default filled in (after Validate).
// Coordinators store the resolved spec in the job, so that a later change
// of a default never changes how a replayed log applies.
func (s Spec) Resolved() Spec {
	r := Spec{Name: s.Name, LR: s.LR, Tau: s.Tau}
	switch s.Name {
	case FedAvgM:
		if r.LR == 0 {
			r.LR = DefaultLRAvgM
		}
		r.Momentum = ptr(DefaultMomentum)
		if s.Momentum != nil {
			r.Momentum = ptr(*s.Momentum)
		}
		r.Tau = 0
		return r
	case FedAdagrad:
		if r.LR == 0 {
			r.LR = DefaultLRAdagrad
		}
	default:
		if r.LR == 0 {
			r.LR = DefaultLRAdaptive
		}
		r.Beta2 = ptr(DefaultBeta2)
		if s.Beta2 != nil {
			r.Beta2 = ptr(*s.Beta2)
		}
	}
	if r.Tau == 0 {
		r.Tau = DefaultTau
	}
	r.Beta1 = ptr(DefaultBeta1)
	if s.Beta1 != nil {
		r.Beta1 = ptr(*s.Beta1)
	}
	return r
}

// String is the text form Parse reads: "name:lr=…,beta1=…" with the
// fields that are set, in a fixed order.
func (s Spec) String() string {
	var kv []string
	f := func(k string, v float64) { kv = append(kv, k+"="+strconv.FormatFloat(v, 'g', -1, 64)) }
	if s.LR != 0 {
		f("lr", s.LR)
	}
	if s.Momentum != nil {
		f("momentum", *s.Momentum)
	}
	if s.Beta1 != nil {
		f("beta1", *s.Beta1)
	}
	if s.Beta2 != nil {
		f("beta2", *s.Beta2)
	}
	if s.Tau != 0 {
		f("tau", s.Tau)
	}
	if len(kv) == 0 {
		return s.Name
	}
	return s.Name + ":" + strings.Join(kv, ",")
}

// Parse reads "NAME[:key=value,...]" (keys lr, beta1, beta2, tau,
// momentum), e.g. "fedadam:lr=0.03,tau=1e-3" or "fedavgm:momentum=0.9",
// and validates it. Errors wrap ErrSpec and name the key.
func Parse(text string) (Spec, error) {
	if len(text) > maxSpecStringBytes {
		return Spec{}, bad("optimizer", "is %d bytes long, at most %d", len(text), maxSpecStringBytes)
	}
	name, args, _ := strings.Cut(strings.TrimSpace(text), ":")
	s := Spec{Name: strings.ToLower(strings.TrimSpace(name))}
	if args != "" {
		seen := map[string]bool{}
		for _, kv := range strings.Split(args, ",") {
			k, v, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			if !ok {
				return Spec{}, bad("optimizer", "parameter %q: want key=value", kv)
			}
			if seen[k] {
				return Spec{}, bad("optimizer."+k, "given twice")
			}
			seen[k] = true
			x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return Spec{}, bad("optimizer."+k, "%q: want a finite number", v)
			}
			switch k {
			case "lr":
				s.LR = x
			case "beta1":
				s.Beta1 = ptr(x)
			case "beta2":
				s.Beta2 = ptr(x)
			case "tau":
				s.Tau = x
			case "momentum":
				s.Momentum = ptr(x)
			default:
				return Spec{}, bad("optimizer", "unknown parameter %q (want lr, beta1, beta2, tau or momentum)", k)
			}
		}
	}
	if s.LR == 0 && strings.Contains(args, "lr=") {
		return Spec{}, bad("optimizer.lr", "0: want > 0")
	}
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}
