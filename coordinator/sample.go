package coordinator

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/privacy"
)

// Node sampling and adaptive clipping of DP jobs (dp.sample_rate < 1,
// dp.adaptive_clip). See privacy/sample.go for the sample's definition
// and docs/PRIVACY.md for why the leader cannot steer it.
//
// Opening a round of a sampled job, the leader computes the round's seed
// privacy.SampleSeed(secret, job, round, base hash) and the sample of the
// enrolled (not revoked) nodes, and writes both, with the population, in
// the open-round entry. Apply recomputes them from the replicated state
// (the same nodes, secret and base) and refuses an entry that differs, so
// every member holds the same sample and a leader cannot record another.
// The round is announced to the sampled nodes only; Submit refuses others
// (ErrNotSampled, checked in checkUpdate).

// sampled reports whether j draws a sample of nodes each round.
func (j *jobState) sampled() bool {
	p := j.Job.Privacy
	return p != nil && p.SampleRate < 1
}

// adaptive reports whether j adapts its clip each round.
func (j *jobState) adaptive() bool {
	return j.Job.Privacy != nil && j.Job.Spec.DP != nil && j.Job.Spec.DP.AdaptiveClip != nil
}

// roundSample computes round's sample seed, sample and population from
// the state (f.mu held).
func (f *fsm) roundSample(j *jobState, round uint64, base Hash) (Hash, []string, int) {
	ids := make([]string, 0, len(f.nodes))
	for id, n := range f.nodes {
		if !n.Revoked {
			ids = append(ids, id)
		}
	}
	seed := privacy.SampleSeed(j.DPSecret, j.Job.Spec.ID, round, base)
	return Hash(seed), privacy.Sample(seed, ids, j.Job.Privacy.SampleRate), len(ids)
}

// sampleFor fills in the sample fields of a sampled job's open-round
// command (nothing for other jobs).
func (f *fsm) sampleFor(cmd *openRoundCmd) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[cmd.Job]
	if !ok || !j.sampled() {
		return
	}
	seed, sample, pop := f.roundSample(j, cmd.Round, cmd.BaseHash)
	cmd.SampleSeed, cmd.Sample, cmd.Population = &seed, sample, pop
}

// checkOpenSample checks an open-round entry's sample against the state
// and returns the round's sample fields (f.mu held).
func (f *fsm) checkOpenSample(j *jobState, c *openRoundCmd) (*Hash, []string, int, error) {
	if !j.sampled() {
		if c.SampleSeed != nil || c.Sample != nil || c.Population != 0 {
			return nil, nil, 0, fmt.Errorf("%w: job %s round %d: a sample for a job without node sampling", ErrInvalid, c.Job, c.Round)
		}
		return nil, nil, 0, nil
	}
	if c.SampleSeed == nil {
		return nil, nil, 0, fmt.Errorf("%w: job %s round %d: node sampling needs the round's sample", ErrInvalid, c.Job, c.Round)
	}
	seed, sample, pop := f.roundSample(j, c.Round, c.BaseHash)
	if seed != *c.SampleSeed || pop != c.Population || !slices.Equal(sample, c.Sample) {
		return nil, nil, 0, fmt.Errorf("%w: job %s round %d: the entry's sample (%d of %d nodes) is not the state's (%d of %d)",
			ErrStale, c.Job, c.Round, len(c.Sample), c.Population, len(sample), pop)
	}
	return &seed, sample, pop, nil
}

// checkSampled refuses a node outside r's sample (rounds without a sample
// admit every node).
func checkSampled(j *jobState, r *Round, node string) error {
	if r.SampleSeed == nil {
		return nil
	}
	if _, ok := slices.BinarySearch(r.Sample, node); !ok {
		return fmt.Errorf("%w: job %s round %d was announced to %d sampled nodes (rate %v), not to %s",
			ErrNotSampled, j.Job.Spec.ID, r.Number, len(r.Sample), j.Job.Privacy.SampleRate, node)
	}
	return nil
}

// sampleKeys returns the public keys of a sampled round's nodes, the
// audience of its announcement; nil (everyone) for other rounds.
func (f *fsm) sampleKeys(job string, round uint64) []ed25519.PublicKey {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[job]
	if !ok {
		return nil
	}
	r := j.round(round)
	if r == nil || r.SampleSeed == nil {
		return nil
	}
	keys := make([]ed25519.PublicKey, 0, len(r.Sample))
	for _, id := range r.Sample {
		if n, ok := f.nodes[id]; ok && !n.Revoked {
			keys = append(keys, ed25519.PublicKey(slices.Clone(n.PublicKey)))
		}
	}
	return keys
}

// checkClipStep checks a close-round entry's adaptive clipping step:
// required exactly for jobs with adaptive clipping, finite, next clip > 0,
// and, when the entry has a result leaf (res), equal to the step the
// leaf's noise commitment ends with — the leaf is what members re-derive
// and cosign, so the clip Apply moves to is the attested one.
func checkClipStep(j *jobState, c *closeRoundCmd, res *audit.ResultLeaf) error {
	if j.adaptive() && c.ClipStep != nil && res != nil {
		n := res.NoiseCommitment
		if len(n) < 16 || binary.BigEndian.Uint64(n[len(n)-16:]) != math.Float64bits(c.ClipStep.Fraction) ||
			binary.BigEndian.Uint64(n[len(n)-8:]) != math.Float64bits(c.ClipStep.Next) {
			return fmt.Errorf("%w: job %s round %d: clip step %+v is not the one in the result leaf", ErrInvalid, c.Job, c.Round, *c.ClipStep)
		}
	}
	switch {
	case !j.adaptive() && c.ClipStep != nil:
		return fmt.Errorf("%w: job %s round %d: a clip step for a job without adaptive clipping", ErrInvalid, c.Job, c.Round)
	case !j.adaptive():
		return nil
	case c.ClipStep == nil:
		return fmt.Errorf("%w: job %s round %d: adaptive clipping needs the round's clip step", ErrInvalid, c.Job, c.Round)
	case !finite(c.ClipStep.Fraction) || !(c.ClipStep.Next > 0) || math.IsInf(c.ClipStep.Next, 1):
		return fmt.Errorf("%w: job %s round %d: clip step %+v", ErrInvalid, c.Job, c.Round, *c.ClipStep)
	}
	return nil
}

// clipSeedSuffix separates the adaptive clipping count's noise from the
// update noise: its seed is privacy.DeriveSeed(secret, job+clipSeedSuffix,
// round) (job ids never contain a NUL byte).
const clipSeedSuffix = "\x00adaptive-clip-count"

// clipStep is round's adaptive clipping step over the updates vecs with
// clip C: the count of updates within C, noised with the job's count noise
// σ_b from the round's count seed, divided by expected (privacy.AdaptiveClip).
func clipStep(j Job, secret []byte, round uint64, clip, expected float64, vecs [][]float64) (ClipStep, error) {
	a := j.Spec.DP.AdaptiveClip
	ac := privacy.AdaptiveClip{Clip: clip, TargetQuantile: a.TargetQuantile, LearningRate: a.LearningRate, CountNoise: a.CountNoise}
	unclipped := 0
	for _, v := range vecs {
		n, err := privacy.L2Norm(v)
		if err != nil {
			return ClipStep{}, err
		}
		if n <= clip {
			unclipped++
		}
	}
	src := privacy.NewSeededSource(privacy.DeriveSeed(secret, j.Spec.ID+clipSeedSuffix, round))
	frac, err := ac.Update(unclipped, len(vecs), expected, src)
	if err != nil {
		return ClipStep{}, err
	}
	return ClipStep{Fraction: frac, Next: ac.Clip}, nil
}
