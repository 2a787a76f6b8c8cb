package privacy

import (
	"fmt"
	"math"
)

// maxCountNoise bounds AdaptiveClip.CountNoise so that the count's noise
// grid (step ≤ CountNoise/16384) is at most 1/2 and the centred count,
// a multiple of 1/2, lies on it exactly.
const maxCountNoise = 8192

// AdaptiveClip adapts the clipping norm each round towards a target
// quantile of the update norms (Andrew, Thakkar, McMahan and Ramaswamy
// 2021, "Differentially private learning with adaptive clipping"). Each
// participant reports one bit, b_i = 1 if its update norm was at most
// Clip; the leader adds Gaussian noise to the centred sum Σ(b_i − ½),
// estimates the fraction unclipped b̄ = noisy/m + ½ with m the expected
// count, and takes the geometric step
//
//	Clip ← Clip · exp(−LearningRate · (b̄ − TargetQuantile)).
//
// Too many unclipped updates (b̄ above the target) shrink the clip; too
// few grow it. The bits are private data too, so the update's noise must
// leave room for them: see UpdateNoiseMultiplier. It is meant for central
// mode (in local mode the coordinator would see every node's bit in the
// clear).
type AdaptiveClip struct {
	// Clip is the current clipping norm (finite, > 0); Update changes it.
	Clip float64
	// TargetQuantile is the fraction of updates that should be unclipped,
	// in (0, 1); Andrew et al. use 0.5 (the median norm).
	TargetQuantile float64
	// LearningRate is the geometric step size η > 0; Andrew et al. use 0.2.
	LearningRate float64
	// CountNoise is the standard deviation σ_b of the noise on the count,
	// in (0, 8192]; Andrew et al. suggest m/20 for m expected participants.
	CountNoise float64
}

// Validate checks every field. Errors: a *ParamError naming clip,
// target_quantile, learning_rate or count_noise.
func (a *AdaptiveClip) Validate() error {
	if err := checkClip(a.Clip); err != nil {
		return err
	}
	if !(a.TargetQuantile > 0 && a.TargetQuantile < 1) {
		return &ParamError{Param: "target_quantile", Value: a.TargetQuantile, Want: "in (0, 1)"}
	}
	if !(a.LearningRate > 0) || math.IsInf(a.LearningRate, 1) {
		return &ParamError{Param: "learning_rate", Value: a.LearningRate, Want: "finite and > 0"}
	}
	if !(a.CountNoise > 0 && a.CountNoise <= maxCountNoise) {
		return &ParamError{Param: "count_noise", Value: a.CountNoise, Want: fmt.Sprintf("in (0, %d]", maxCountNoise)}
	}
	return nil
}

// Update takes one round's counts, unclipped of participants updates
// within the clip, and the expected count m; it draws the count's noise
// from src (exact discrete Gaussian, as Gaussian.AddTo), moves Clip and
// returns the noisy fraction b̄ it used. Errors: from Validate; a
// *ParamError naming participants (< 0 or < unclipped or unclipped < 0)
// or expected_count (< 1). On error Clip is unchanged.
func (a *AdaptiveClip) Update(unclipped, participants int, expectedCount float64, src Source) (fraction float64, err error) {
	if err := a.Validate(); err != nil {
		return 0, err
	}
	if unclipped < 0 || participants < unclipped {
		return 0, &ParamError{Param: "participants", Value: float64(participants), Want: fmt.Sprintf("≥ unclipped (%d) ≥ 0", unclipped)}
	}
	if !(expectedCount >= 1) || math.IsInf(expectedCount, 1) {
		return 0, &ParamError{Param: "expected_count", Value: expectedCount, Want: "finite and ≥ 1"}
	}
	g, err := NewGaussian(a.CountNoise)
	if err != nil {
		return 0, err
	}
	centred := []float64{float64(unclipped) - float64(participants)/2}
	if err := g.AddTo(centred, src); err != nil {
		return 0, err
	}
	fraction = centred[0]/expectedCount + 0.5
	next := a.Clip * math.Exp(-a.LearningRate*(fraction-a.TargetQuantile))
	if !(next > 0) || math.IsInf(next, 1) {
		return 0, fmt.Errorf("privacy: adaptive clip step from %v gives %v", a.Clip, next)
	}
	a.Clip = next
	return fraction, nil
}

// UpdateNoiseMultiplier returns the noise multiplier z_Δ the update sum
// needs so that a round of adaptive clipping (the sum with noise z_Δ·Clip
// and the centred count with noise σ_b = countNoise) is exactly as private
// as one Gaussian mechanism with noise multiplier z, the figure the
// accountant is given:
//
//	z_Δ = (z^−2 − (2σ_b)^−2)^−1/2.
//
// Why: one node moves the sum by at most Clip and the centred count by at
// most ½; scaled by their noises the pair moves by at most
// √(1/z_Δ² + 1/(2σ_b)²) in a space with unit Gaussian noise, which is
// 1/z. (Andrew et al. 2021 state the same relation.) Errors: a
// *ParamError naming noise_multiplier, or count_noise when 2σ_b ≤ z (the
// count alone would spend the whole budget).
func UpdateNoiseMultiplier(z, countNoise float64) (float64, error) {
	if err := checkNoise(z); err != nil {
		return 0, err
	}
	if !(2*countNoise > z) || math.IsInf(countNoise, 1) {
		return 0, &ParamError{Param: "count_noise", Value: countNoise, Want: fmt.Sprintf("finite and > z/2 = %v", z/2)}
	}
	return 1 / math.Sqrt(1/(z*z)-1/(4*countNoise*countNoise)), nil
}
