package serveropt

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// MaxDim bounds the state's dimension (the coordinator's job dim bound,
// 2^27): a decoder never allocates more than 2 × 8 × MaxDim bytes, and
// only after checking the input holds that many.
const MaxDim = 1 << 27

// ErrState is wrapped by every error about a malformed encoded State.
var ErrState = errors.New("serveropt: invalid optimizer state")

// ErrStep is wrapped by the errors of Step (a dimension mismatch, a
// non-finite aggregate or result).
var ErrStep = errors.New("serveropt: step")

// State is an optimizer's state between rounds: the number of steps
// taken, the first moment m (FedAvgM's momentum buffer) and, for the
// adaptive methods, the second moment v. It is a value: Step returns a
// new State and never changes the one it is given, so a State may be
// shared by readers.
type State struct {
	Steps uint64
	M     []float64
	V     []float64 // nil for FedAvgM
}

// NewState returns the zero state of spec's optimizer for dim parameters
// (m = 0, v = 0; Reddi et al. Algorithm 2 with v₋₁ = 0, which the τ in
// the denominator keeps well defined).
func NewState(spec Spec, dim int) *State {
	st := &State{M: make([]float64, dim)}
	if adaptive(spec.Name) {
		st.V = make([]float64, dim)
	}
	return st
}

// Dim is the number of parameters the state is for.
func (st *State) Dim() int { return len(st.M) }

// Step applies one server step: delta is the round's aggregate (the
// robust rule's output, the "pseudo-gradient" Δ), x the current model.
// It returns the next state and the new model; neither input is changed.
// spec must be resolved (Spec.Resolved) and valid; st nil means the zero
// state. With resolved η, β1, β2, τ, β (momentum):
//
//	FedAvgM:    m ← β·m + Δ;                    x ← x + η·m
//	FedAdam:    m ← β1·m + (1−β1)·Δ;  v ← β2·v + (1−β2)·Δ²
//	FedYogi:    m as Adam;            v ← v − (1−β2)·Δ²·sign(v − Δ²)
//	FedAdagrad: m as Adam;            v ← v + Δ²
//	adaptive:   x ← x + η·m / (√v + τ)
//
// Every product is rounded to float64 before it is added (explicit
// conversions forbid fused multiply-adds), so the result is the same bits
// on every platform: replicas of a coordinator cluster agree exactly.
// Errors wrap ErrStep.
func Step(spec Spec, st *State, x, delta []float64) (*State, []float64, error) {
	if len(delta) != len(x) {
		return nil, nil, fmt.Errorf("%w: aggregate has %d values, model %d", ErrStep, len(delta), len(x))
	}
	next, inc, err := Advance(spec, st, delta)
	if err != nil {
		return nil, nil, err
	}
	model := inc // reused: model[i] = x[i] + inc[i]
	for i := range model {
		model[i] = x[i] + inc[i]
		if math.IsNaN(model[i]) || math.IsInf(model[i], 0) {
			return nil, nil, fmt.Errorf("%w: new model parameter %d is %v", ErrStep, i, model[i])
		}
	}
	return next, model, nil
}

// Advance is Step without the model: it returns the next state and the
// increment η·m (FedAvgM) or η·m/(√v+τ), which Step adds to x. A
// simulation that adds the increment to its model itself gets the same
// bits as Step. Errors wrap ErrStep.
func Advance(spec Spec, st *State, delta []float64) (*State, []float64, error) {
	dim := len(delta)
	if st == nil {
		st = NewState(spec, dim)
	}
	if st.Dim() != dim || (adaptive(spec.Name) != (st.V != nil)) || (st.V != nil && len(st.V) != dim) {
		return nil, nil, fmt.Errorf("%w: state for %d parameters does not fit %s with %d", ErrStep, st.Dim(), spec.Name, dim)
	}
	for i, d := range delta {
		if math.IsNaN(d) || math.IsInf(d, 0) {
			return nil, nil, fmt.Errorf("%w: aggregate value %d is %v", ErrStep, i, d)
		}
	}
	next := &State{Steps: st.Steps + 1, M: make([]float64, dim)}
	inc := make([]float64, dim)
	eta := spec.LR
	if spec.Name == FedAvgM {
		beta := val(spec.Momentum)
		for i, d := range delta {
			m := float64(beta*st.M[i]) + d
			next.M[i] = m
			inc[i] = float64(eta * m)
		}
	} else {
		b1, b2, tau := val(spec.Beta1), val(spec.Beta2), spec.Tau
		next.V = make([]float64, dim)
		for i, d := range delta {
			m := float64(b1*st.M[i]) + float64((1-b1)*d)
			d2 := float64(d * d)
			v := st.V[i]
			switch spec.Name {
			case FedAdam:
				v = float64(b2*v) + float64((1-b2)*d2)
			case FedYogi:
				v -= float64(float64((1-b2)*d2) * sign(v-d2))
			case FedAdagrad:
				v += d2
			}
			next.M[i], next.V[i] = m, v
			inc[i] = float64(eta*m) / (math.Sqrt(v) + tau)
		}
	}
	for i := range next.M {
		if math.IsInf(next.M[i], 0) || math.IsInf(inc[i], 0) || math.IsNaN(inc[i]) || (next.V != nil && math.IsInf(next.V[i], 0)) {
			return nil, nil, fmt.Errorf("%w: state value %d overflows", ErrStep, i)
		}
	}
	return next, inc, nil
}

func sign(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// ---- encoding ----

// stateMagic starts an encoded State; the byte after it is the format
// version (1), then a flags byte (bit 0: V present), the step count and
// the dimension as little-endian uint64, then M and (if present) V as
// little-endian IEEE-754 float64.
const (
	stateMagic   = "MFNOPT"
	stateVersion = 1
	headerLen    = len(stateMagic) + 2 + 16
)

// MarshalBinary encodes st (see stateMagic); the encoding is canonical:
// equal states encode to equal bytes, and UnmarshalBinary restores every
// bit.
func (st *State) MarshalBinary() ([]byte, error) {
	n := len(st.M)
	hasV := st.V != nil
	if hasV && len(st.V) != n {
		return nil, fmt.Errorf("%w: m has %d values, v %d", ErrState, n, len(st.V))
	}
	size := headerLen + 8*n
	if hasV {
		size += 8 * n
	}
	b := make([]byte, 0, size)
	b = append(b, stateMagic...)
	b = append(b, stateVersion)
	flags := byte(0)
	if hasV {
		flags = 1
	}
	b = append(b, flags)
	b = binary.LittleEndian.AppendUint64(b, st.Steps)
	b = binary.LittleEndian.AppendUint64(b, uint64(n))
	for _, v := range st.M {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	for _, v := range st.V {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b, nil
}

// UnmarshalBinary decodes MarshalBinary's form. It never panics and
// allocates only after checking that the input's length matches its
// header; it refuses dimensions above MaxDim, unknown versions or flags,
// non-finite values and a negative second moment. Errors wrap ErrState.
func (st *State) UnmarshalBinary(b []byte) error {
	if len(b) < headerLen || string(b[:len(stateMagic)]) != stateMagic {
		return fmt.Errorf("%w: not an encoded optimizer state", ErrState)
	}
	p := b[len(stateMagic):]
	if p[0] != stateVersion {
		return fmt.Errorf("%w: format version %d, want %d", ErrState, p[0], stateVersion)
	}
	flags := p[1]
	if flags > 1 {
		return fmt.Errorf("%w: unknown flags %#x", ErrState, flags)
	}
	steps := binary.LittleEndian.Uint64(p[2:])
	n64 := binary.LittleEndian.Uint64(p[10:])
	if n64 > MaxDim {
		return fmt.Errorf("%w: dimension %d above %d", ErrState, n64, MaxDim)
	}
	n := int(n64)
	vecs := 1 + int(flags)
	body := b[headerLen:]
	if len(body) != 8*n*vecs {
		return fmt.Errorf("%w: %d bytes of values, want %d for dimension %d", ErrState, len(body), 8*n*vecs, n)
	}
	read := func(off int) ([]float64, error) {
		out := make([]float64, n)
		for i := range out {
			v := math.Float64frombits(binary.LittleEndian.Uint64(body[off+8*i:]))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%w: value %d is %v", ErrState, i, v)
			}
			out[i] = v
		}
		return out, nil
	}
	m, err := read(0)
	if err != nil {
		return err
	}
	var v []float64
	if flags == 1 {
		if v, err = read(8 * n); err != nil {
			return err
		}
		for i, x := range v {
			if x < 0 {
				return fmt.Errorf("%w: second moment %d is negative", ErrState, i)
			}
		}
	}
	*st = State{Steps: steps, M: m, V: v}
	return nil
}

// MarshalJSON encodes st as the base64 of MarshalBinary (exact and
// compact, like the coordinator's parameter vectors).
func (st *State) MarshalJSON() ([]byte, error) {
	b, err := st.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

// UnmarshalJSON decodes MarshalJSON's form.
func (st *State) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: %v", ErrState, err)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrState, err)
	}
	return st.UnmarshalBinary(raw)
}

// CheckFor reports whether st fits spec's optimizer and dim parameters.
func (st *State) CheckFor(spec Spec, dim int) error {
	if st.Dim() != dim || adaptive(spec.Name) != (st.V != nil) {
		return fmt.Errorf("%w: state for %d parameters (second moment %t) does not fit %s with %d", ErrState, st.Dim(), st.V != nil, spec.Name, dim)
	}
	return nil
}
