package privacy

import (
	"errors"
	"fmt"
)

// ErrInvalidParameter is wrapped by every *ParamError: a parameter of an
// accountant, sampler or mechanism outside its valid range.
var ErrInvalidParameter = errors.New("privacy: invalid parameter")

// ErrUnreachable means no noise multiplier reaches the requested ε: the
// target lies below the smallest ε the order grid can certify for that δ
// (see EpsilonFloor), or needs a noise multiplier above MaxNoiseMultiplier.
var ErrUnreachable = errors.New("privacy: target epsilon unreachable")

// ErrTooManyEvents means an Accountant already holds MaxEvents distinct
// (sample rate, noise multiplier) pairs; see Accountant.Compose.
var ErrTooManyEvents = errors.New("privacy: too many distinct accounting events")

// ErrOutOfRange means a value is too large for the noise grid: a
// coordinate divided by the grid step does not fit in 52 bits, so adding
// noise on the grid could not be exact. The *CoordinateError names it.
var ErrOutOfRange = errors.New("privacy: value out of range for the noise grid")

// ParamError names a parameter, its value and its valid range.
// Param uses the names of the command-line flags' underlying quantities:
// "sample_rate", "noise_multiplier", "steps", "delta", "target_epsilon",
// "order", "clip", "expected_count", "target_quantile", "learning_rate",
// "count_noise", "sigma".
type ParamError struct {
	Param string  // the parameter's name, e.g. "sample_rate"
	Value float64 // the rejected value
	Want  string  // the valid range, e.g. "in (0, 1]"
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("privacy: %s = %v: must be %s", e.Param, e.Value, e.Want)
}

// Unwrap returns ErrInvalidParameter.
func (e *ParamError) Unwrap() error { return ErrInvalidParameter }

// CoordinateError is an error about one coordinate of a vector.
type CoordinateError struct {
	Index int     // the coordinate's index
	Value float64 // its value
	Err   error   // ErrOutOfRange or ErrInvalidParameter
}

func (e *CoordinateError) Error() string {
	return fmt.Sprintf("privacy: coordinate %d = %v: %v", e.Index, e.Value, e.Err)
}

// Unwrap returns the cause.
func (e *CoordinateError) Unwrap() error { return e.Err }
