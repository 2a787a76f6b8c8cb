// Package privacy gives MFN's federated training client-level
// differential privacy (DP-FedAvg, McMahan et al. 2018): a privacy
// accountant, an exact Gaussian noise sampler, and the clipping and noise
// mechanisms, as library functions the node and the coordinator call.
//
// # What is protected
//
// The unit of privacy is a node: the guarantee covers everything a node's
// update depends on, its whole data set. A training job is (ε, δ)-DP if
// adding or removing one node changes the probability of any outcome by at
// most a factor e^ε, except with probability δ. To get there, every update
// is clipped to L2 norm C (so one node can move the sum by at most C), the
// sum gets Gaussian noise of standard deviation z·C (z is the noise
// multiplier), and each round only a random fraction q of the nodes takes
// part (which amplifies privacy, as long as who took part stays secret).
//
// # Accounting
//
// Epsilon returns the ε after T rounds:
//
//	eps, order, err := privacy.Epsilon(q, z, T, delta)
//
// It computes the Rényi DP of the sampled Gaussian mechanism at each
// order of the grid Orders (Mironov, Talwar and Zhang 2019: a finite
// binomial sum for integer orders, a convergent series for fractional
// ones, both in log space), multiplies by T (RDP composes by addition) and
// converts each order to (ε, δ) with Balle et al. 2020, keeping the best.
// NoiseMultiplier solves the inverse problem by bisection:
//
//	z, err := privacy.NoiseMultiplier(8, q, T, 1e-5) // smallest z with ε ≤ 8
//
// An Accountant tracks a running job whose parameters may change. Its
// state is the list of (q, z, steps) events, not float sums, and its JSON
// is canonical, so it can live in replicated state:
//
//	var a privacy.Accountant
//	_ = a.Compose(q, z, 1) // after each round
//	spent, _, _ := a.Epsilon(delta)
//	next, _, _ := a.EpsilonAfter(delta, []privacy.Event{{SampleRate: q, NoiseMultiplier: z, Steps: 1}})
//	// refuse the round if next > max_epsilon
//
// Config is a job's DP settings (the job spec's dp block): Validate names
// the bad field, Resolve derives z from a target ε, and
// Accountant.CheckNext refuses the round that would pass the limit with a
// *BudgetError.
//
// The figures agree with published ones (Opacus, TF-Privacy) and with a
// numerical integration of the definition; see DESIGN.md.
//
// # Node sampling
//
// SampleSeed derives a round's seed from a job's secret, the job, the
// round and its base model hash; Sampled decides each node independently
// with probability q from SHA-256(seed ‖ node id), and Sample lists the
// sampled nodes of a population. VerifySampleFS checks an exported audit
// log: every update leaf of a job came from a node its round sampled.
//
// # Noise
//
// Gaussian draws noise that is exact in floating point: a discrete
// Gaussian (Canonne, Kamath and Steinke 2020) on a power-of-two grid
// about σ/2^15 fine, sampled with integer arithmetic only from a Source of
// uniform 64-bit words. Naive floating-point samplers leak the input
// through the gaps in their output (Mironov 2012); this one's output is
// exactly the discrete Gaussian centred on the rounded input. The noise is
// a deterministic function of the Source: NewCryptoSource reads
// crypto/rand (noise nobody can re-derive), NewSeededSource gives a
// ChaCha8 stream from a seed (noise every cluster member can re-derive,
// with DeriveSeed giving each round its own seed).
//
// # Mechanisms
//
// ClipL2 scales an update to norm at most C. Local is the local mode: the
// node clips, rounds and adds noise z·C before sealing, so not even the
// coordinators see its raw update. Central is the central mode: the leader
// prepares (clips and rounds) every update, sums them, adds noise z·C on
// the sum from a seeded source and divides by the expected number of
// participants, a public constant; the mean carries noise z·C/m.
// AdaptiveClip moves C each round towards a quantile of the update norms
// (Andrew et al. 2021) from a noisy count of unclipped updates, and
// UpdateNoiseMultiplier splits the budget between that count and the sum.
//
// # Robust aggregation
//
// In local mode any robust rule is post-processing of private updates and
// keeps the guarantee. In central mode the noise is calibrated to a sum in
// which one node's prepared update moves the result by at most C; rules
// that compare updates with one another (Krum, median, trimmed mean, NNM)
// have a larger sensitivity and are not covered. DESIGN.md explains which
// pipelines compose and why.
//
// # Errors
//
// A parameter out of range is a *ParamError naming it (Param is
// "sample_rate", "noise_multiplier", "steps", "delta", …) and wraps
// ErrInvalidParameter; a bad coordinate is a *CoordinateError with its
// index. Nothing in the package prints, exits or panics on bad input.
package privacy
