package aggregate

import (
	"errors"
	"fmt"
)

// Sentinel errors callers can branch on with errors.Is.
var (
	// ErrRequirement: the rule cannot run with this many valid inputs for
	// its f. The concrete error is a *RequirementError.
	ErrRequirement = errors.New("aggregate: requirement not met")
	// ErrNoValidInputs: every input was rejected (or none was given).
	ErrNoValidInputs = errors.New("aggregate: no valid inputs")
	// ErrInvalidParam: a rule, pre-step or attack parameter is out of range.
	// The concrete error is a *ParamError.
	ErrInvalidParam = errors.New("aggregate: invalid parameter")
	// ErrBadArguments: the arguments to Aggregate are inconsistent (weights
	// of the wrong length).
	ErrBadArguments = errors.New("aggregate: bad arguments")
	// ErrUnknownName: New, NewPreStep, ParsePipeline or NewAttack was given
	// a name that is not registered.
	ErrUnknownName = errors.New("aggregate: unknown name")
	// ErrDataLevel: the attack acts on training data, not on update vectors
	// (label flip); the training harness must carry it out.
	ErrDataLevel = errors.New("aggregate: data-level attack")
	// ErrNeedRule: an adaptive attack was crafted without AttackInput.Rule.
	ErrNeedRule = errors.New("aggregate: adaptive attack needs the rule under attack")
	// ErrNeedRand: a randomised attack was crafted without AttackInput.Rand.
	ErrNeedRand = errors.New("aggregate: randomised attack needs AttackInput.Rand")
)

// RequirementError says which requirement a rule's configuration violates
// for the number of valid inputs it received, e.g.
// "krum needs n > 2f+2 = 8, got n = 7 valid inputs (f = 3)". Requirements
// are stated with the effective f, the configured f less the inputs
// rejected as malformed (see "Rejected inputs and the Byzantine budget" in
// the package documentation); when some were rejected the message says
// so: "krum needs n > 2f+2 = 4, got n = 3 valid inputs (f = 1: configured
// f = 3 less 2 rejected inputs)".
type RequirementError struct {
	// Rule is the rule's (or pre-step's) name.
	Rule string
	// N is the number of valid inputs (after rejecting malformed ones).
	N int
	// F is the rule's configured number of Byzantine inputs.
	F int
	// FEff is the effective f the requirement was checked with:
	// max(0, F − Rejected). The message shows it when Rejected > 0.
	FEff int
	// Rejected is the number of inputs rejected as malformed before the
	// rule ran.
	Rejected int
	// Need states the requirement with the effective f, e.g.
	// "n > 2f+2 = 8".
	Need string
}

func (e *RequirementError) Error() string {
	if e.Rejected == 0 {
		return fmt.Sprintf("aggregate: %s needs %s, got n = %d valid inputs (f = %d)", e.Rule, e.Need, e.N, e.F)
	}
	noun := "inputs"
	if e.Rejected == 1 {
		noun = "input"
	}
	return fmt.Sprintf("aggregate: %s needs %s, got n = %d valid inputs (f = %d: configured f = %d less %d rejected %s)",
		e.Rule, e.Need, e.N, e.FEff, e.F, e.Rejected, noun)
}

// Unwrap returns ErrRequirement.
func (e *RequirementError) Unwrap() error { return ErrRequirement }

// ParamError names a parameter that is out of range and why.
type ParamError struct {
	// Owner is the rule, pre-step or attack the parameter belongs to.
	Owner string
	// Param is the parameter's name as in Params or AttackParams (e.g. "F").
	Param string
	// Value is the offending value.
	Value any
	// Want states the valid range, e.g. "≥ 0".
	Want string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("aggregate: %s: %s = %v, want %s", e.Owner, e.Param, e.Value, e.Want)
}

// Unwrap returns ErrInvalidParam.
func (e *ParamError) Unwrap() error { return ErrInvalidParam }

func paramErr(owner, param string, value any, want string) error {
	return &ParamError{Owner: owner, Param: param, Value: value, Want: want}
}

func checkF(owner string, f int) error {
	if f < 0 {
		return paramErr(owner, "F", f, "≥ 0")
	}
	return nil
}
