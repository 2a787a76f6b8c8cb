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
// "krum needs n > 2f+2 = 8, got n = 7 valid inputs (f = 3)".
type RequirementError struct {
	// Rule is the rule's name.
	Rule string
	// N is the number of valid inputs (after rejecting malformed ones).
	N int
	// F is the rule's assumed number of Byzantine inputs.
	F int
	// Need states the requirement, e.g. "n > 2f+2 = 8".
	Need string
}

func (e *RequirementError) Error() string {
	return fmt.Sprintf("aggregate: %s needs %s, got n = %d valid inputs (f = %d)", e.Rule, e.Need, e.N, e.F)
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
