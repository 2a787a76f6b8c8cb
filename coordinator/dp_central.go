package coordinator

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/privacy"
)

// centralRule names the aggregate of a central DP round.
const centralRule = "fedavg+central-dp"

// centralResult is a central DP round's aggregate and what its result
// leaf commits to.
type centralResult struct {
	mean   []float64
	report aggregate.Report
	// commitment is the result leaf's noise commitment: SHA-256 of the
	// round's noise seed, followed, with adaptive clipping, by the IEEE
	// 754 bits (big-endian) of the step's noisy fraction and next clip.
	commitment []byte
	step       *ClipStep
}

// centralRound is the aggregate of a central DP job's round, a pure
// function of the replicated state (job, round, the job's secret) and the
// opened updates, so that the leader and every attesting member (and an
// auditor once the secret is shown) derive the same bits:
//
//   - the clip C is the job's (with adaptive clipping: the round's, fixed
//     when it opened);
//   - the denominator m is the number of updates, or with node sampling
//     the expected count q·population (privacy.ExpectedCount), which does
//     not depend on who took part;
//   - with adaptive clipping the count of updates within C gets noise σ_b
//     from its own seed and moves the clip (clipStep), and the sum gets
//     the noise multiplier z_Δ = privacy.UpdateNoiseMultiplier(z, σ_b), so
//     that the pair spends what one step at z does;
//   - the mean is DP-FedAvg's (centralMean): each update clipped to C, the
//     exact sum plus discrete Gaussian noise z·C from ChaCha8 seeded by
//     privacy.DeriveSeed(secret, job, round), divided by m.
func centralRound(j Job, r Round, secret []byte, vecs [][]float64) (centralResult, error) {
	p := j.Privacy
	if len(secret) != dpSecretLen {
		return centralResult{}, fmt.Errorf("job %s has no noise secret", j.Spec.ID)
	}
	clip := p.Clip
	if r.Clip > 0 {
		clip = r.Clip
	}
	expected := float64(len(vecs))
	if r.SampleSeed != nil {
		expected = privacy.ExpectedCount(p.SampleRate, r.Population)
	}
	z := p.NoiseMultiplier
	var out centralResult
	if j.Spec.DP != nil && j.Spec.DP.AdaptiveClip != nil {
		var err error
		if z, err = privacy.UpdateNoiseMultiplier(z, j.Spec.DP.AdaptiveClip.CountNoise); err != nil {
			return centralResult{}, err
		}
		step, err := clipStep(j, secret, r.Number, clip, expected, vecs)
		if err != nil {
			return centralResult{}, fmt.Errorf("adaptive clip: %w", err)
		}
		out.step = &step
	}
	mean, rep, err := centralMean(clip, z, expected, secret, j.Spec.ID, r.Number, vecs)
	if err != nil {
		return centralResult{}, err
	}
	out.mean, out.report = mean, rep
	seed := privacy.DeriveSeed(secret, j.Spec.ID, r.Number)
	h := sha256.Sum256(seed[:])
	out.commitment = h[:]
	if out.step != nil {
		out.commitment = binary.BigEndian.AppendUint64(out.commitment, math.Float64bits(out.step.Fraction))
		out.commitment = binary.BigEndian.AppendUint64(out.commitment, math.Float64bits(out.step.Next))
	}
	return out, nil
}

// centralMean is DP-FedAvg's mean of the n updates, each clipped to clip,
// with discrete Gaussian noise of standard deviation z·clip on the sum,
// drawn from ChaCha8 seeded by privacy.DeriveSeed(secret, job, round), and
// divided by expected. The noise protects the sum (sensitivity clip under
// adding or removing one node); dividing by a count the replicated state
// shows anyway, or by the expected count, is post-processing.
func centralMean(clip, z, expected float64, secret []byte, job string, round uint64, vecs [][]float64) ([]float64, aggregate.Report, error) {
	mech, err := privacy.NewCentral(clip, z, expected)
	if err != nil {
		return nil, aggregate.Report{}, err
	}
	mean, _, err := mech.Mean(vecs, privacy.NewSeededSource(privacy.DeriveSeed(secret, job, round)))
	if err != nil {
		return nil, aggregate.Report{}, err
	}
	rep := aggregate.Report{Rule: centralRule, Used: make([]int, len(vecs))}
	for i := range rep.Used {
		rep.Used[i] = i
	}
	return mean, rep, nil
}
