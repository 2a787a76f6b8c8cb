package sim

import (
	"errors"
	"math"
	"math/rand/v2"
)

// Ranges of the IFS parameters.
const (
	DefaultIFSTransforms = 4
	MinIFSTransforms     = 2
	MaxIFSTransforms     = 8
	DefaultIFSPoints     = 10000
	MinIFSPoints         = 1000
	MaxIFSPoints         = 100000
)

// ErrNilRand is returned when a required *rand.Rand is nil.
var ErrNilRand = errors.New("sim: nil random source")

// Similarity is one contractive affine map of an IFS:
// (x, y) ↦ (A·x + B·y + E, C·x + D·y + F), a rotation by φ scaled by s,
// so (A, B, C, D) = (s cos φ, −s sin φ, s sin φ, s cos φ).
type Similarity struct {
	A, B, C, D, E, F float64
}

// Apply maps a point.
func (m Similarity) Apply(p [2]float64) [2]float64 {
	return [2]float64{float64(m.A*p[0]) + float64(m.B*p[1]) + m.E, float64(m.C*p[0]) + float64(m.D*p[1]) + m.F}
}

// Det is the Jacobian determinant A·D − B·C (= s² for a similarity).
func (m Similarity) Det() float64 { return float64(m.A*m.D) - float64(m.B*m.C) }

// IFS is an iterated function system of similarity maps, chosen uniformly
// at random at each iteration (the "chaos game").
type IFS struct {
	Maps []Similarity
}

// NewIFS draws numTransforms random similarities: scale s ~ U(0.2, 0.5),
// angle φ ~ U(0, 2π), translation e, f ~ U(−1, 1), in that order per map.
// Errors: numTransforms outside [2, 8] (wrapping ErrInvalidConfig), nil rng.
func NewIFS(numTransforms int, rng *rand.Rand) (*IFS, error) {
	if numTransforms < MinIFSTransforms || numTransforms > MaxIFSTransforms {
		return nil, &ConfigError{Field: "transforms", Value: numTransforms, Range: "in [2, 8]"}
	}
	if rng == nil {
		return nil, ErrNilRand
	}
	f := &IFS{Maps: make([]Similarity, numTransforms)}
	for k := range f.Maps {
		s := 0.2 + float64(0.3*rng.Float64())
		phi := 2 * math.Pi * rng.Float64()
		e := -1 + float64(2*rng.Float64())
		ff := -1 + float64(2*rng.Float64())
		sin, cos := math.Sincos(phi)
		f.Maps[k] = Similarity{A: s * cos, B: -s * sin, C: s * sin, D: s * cos, E: e, F: ff}
	}
	return f, nil
}

// Iterate plays the chaos game for numPoints iterations from (0, 0) and
// returns the point after each iteration together with the Lyapunov
// exponent: the mean of ln|det| of the applied maps over the iterations
// whose |det| exceeds 1e-10 (0 if none). A negative exponent means the
// system is contractive. Errors: numPoints outside [1000, 100000]
// (wrapping ErrInvalidConfig), nil rng, an IFS without maps.
func (f *IFS) Iterate(numPoints int, rng *rand.Rand) (points [][2]float64, lyapunov float64, err error) {
	if numPoints < MinIFSPoints || numPoints > MaxIFSPoints {
		return nil, 0, &ConfigError{Field: "points", Value: numPoints, Range: "in [1000, 100000]"}
	}
	if rng == nil {
		return nil, 0, ErrNilRand
	}
	if len(f.Maps) == 0 {
		return nil, 0, &ConfigError{Field: "transforms", Value: 0, Range: "in [2, 8]"}
	}
	points = make([][2]float64, numPoints)
	var p [2]float64
	sum, count := 0.0, 0
	for k := range points {
		m := f.Maps[rng.IntN(len(f.Maps))]
		p = m.Apply(p)
		points[k] = p
		if det := math.Abs(m.Det()); det > 1e-10 {
			sum += math.Log(det)
			count++
		}
	}
	if count > 0 {
		lyapunov = sum / float64(count)
	}
	return points, lyapunov, nil
}

// GenerateIFS draws an IFS of numTransforms maps (see NewIFS) and iterates
// it numPoints times (see Iterate) with the same random source.
func GenerateIFS(numTransforms, numPoints int, rng *rand.Rand) (points [][2]float64, lyapunov float64, err error) {
	if numPoints < MinIFSPoints || numPoints > MaxIFSPoints {
		return nil, 0, &ConfigError{Field: "points", Value: numPoints, Range: "in [1000, 100000]"}
	}
	f, err := NewIFS(numTransforms, rng)
	if err != nil {
		return nil, 0, err
	}
	return f.Iterate(numPoints, rng)
}
