// Package aggregate combines the model updates of many clients into one,
// so that a minority of lying (Byzantine) clients cannot wreck the result,
// and provides the attacks used to test that claim.
//
// # Rules
//
// A Rule takes n update vectors of one length d and their weights and
// returns the aggregate with a Report of which inputs were used or
// rejected, and the rule's per-input scores, for the audit log:
//
//	rule, err := aggregate.New("krum", aggregate.Params{F: 2})
//	agg, report, err := rule.Aggregate(updates, nil)
//
// The rules are FedAvg (weighted mean, not robust), Krum, MultiKrum,
// Median (coordinate-wise), TrimmedMean, Bulyan, GeometricMedian (smoothed
// Weiszfeld), CenteredClipping (stateful: it starts from the previous
// aggregate) and HierarchicalKrum (the original MFN implementation's).
// Each documents its parameters, its requirement on n and f (for example
// Krum needs n > 2f+2) and whether it uses the weights; a violated
// requirement is a *RequirementError that says which and why.
//
// # Malformed inputs
//
// Before any rule runs, each vector of the wrong length (the most common
// length wins), containing NaN or ±Inf, or whose squared norm overflows is
// dropped and listed in Report.Rejected with the reason (see Screen). It
// never reaches the aggregate, and requirements are checked against the
// number of vectors that remain.
//
// # Pre-steps and pipelines
//
// NNM (nearest-neighbour mixing), Bucketing and StaticClipping transform
// the inputs before any rule. A Pipeline chains them and is itself a Rule:
//
//	rule, err := aggregate.ParsePipeline("nnm+static-clipping+trimmed-mean",
//		aggregate.Params{F: 3, ClipNorm: 2})
//
// Its Report still speaks of the caller's inputs: see Pipeline for how
// indices are mapped through the steps.
//
// # Attacks
//
// An Attack crafts the Byzantine updates of one round from what the
// Byzantine clients see — every honest update, under the standard
// strongest assumption. NewAttack builds them by name: sign flip,
// Gaussian, label flip (a data-level attack carried out by the training
// harness), ALIE, IPM, mimic, Opt-ALIE and Opt-IPM (line search against
// the rule), min-max and min-sum (bisection), and Inf/NaN vectors.
//
// # Speed
//
// Distance-based rules (Krum, Multi-Krum, Bulyan, NNM, hierarchical Krum)
// share one pairwise-distance engine: the Gram matrix computed in
// cache-sized blocks of coordinates by an AVX2+FMA kernel (with a portable
// fallback, package internal/vec), on all cores. The coordinate-wise rules
// transpose blocks of coordinates; with the vector kernels and n ≤ 256 the
// median and trimmed mean sort four coordinates at once with a branch-free
// sorting network, otherwise they use quickselect. The geometric median and
// centered clipping read the inputs once per iteration. Work is always split into a fixed partition summed in a
// fixed order, so the same inputs give bit-identical results whatever
// GOMAXPROCS is. docs/BENCHMARKS.md has the figures.
//
// # Randomness
//
// Bucketing and HierarchicalKrum draw from a *rand.Rand (math/rand/v2) the
// caller injects; the registry seeds it from Params.Seed. Nothing in this
// package reads global random state.
package aggregate
