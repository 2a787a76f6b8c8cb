package sim

import (
	"errors"
	"math/rand/v2"
)

var errPending = errors.New("sim: not implemented yet")

// Metrics counts the events of one run.
type Metrics struct {
	GrowthEvents      int // steps in which a spike was added
	TuringActivations int // cell-steps in which the activator exceeded θ
	ClampedCells      int // cell-steps in which V was clamped to [−95, 40] mV
}

// Result is the outcome of Simulate.
type Result struct {
	N, Steps int
	Field    []float64 // final V, N*N row-major, volts
	History  []float64 // Steps*N*N when requested, else nil
	Metrics  Metrics
	Lyapunov float64  // history-based Lyapunov estimate, see HistoryLyapunov
	Features Features // the 18 features over the whole run
}

// Simulate runs the field simulation.
func Simulate(cfg Config, withHistory bool) (*Result, error) { return nil, errPending }

// ExtractFeatures computes the 18 features of a history.
func ExtractFeatures(history []float64, steps, n int) (Features, error) {
	return Features{}, errPending
}

// Nernst returns the Nernst potential in volts.
func Nernst(z int, cOut, cIn, temperatureK float64) (float64, error) { return 0, errPending }

// IFS is a set of similarity maps.
type IFS struct{}

// GenerateIFS generates IFS points and their Lyapunov exponent.
func GenerateIFS(numTransforms, numPoints int, rng *rand.Rand) ([][2]float64, float64, error) {
	return nil, 0, errPending
}

// HistoryLyapunov is the field-history Lyapunov estimate.
func HistoryLyapunov(history []float64, steps, n int) float64 { return 0 }
