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
// # Rejected inputs and the Byzantine budget
//
// A rule's f bounds the number of faulty inputs, whatever their fault. An
// input rejected as malformed is provably faulty, and it is gone: it
// cannot also hide among the valid inputs. So each rejection consumes one
// unit of the budget, and the rule runs on the n valid inputs with the
// effective f
//
//	f_eff = max(0, f − rejected)
//
// where rejected counts every input dropped by the screening, including
// those a distance-based or coordinate-wise rule finds non-finite during
// its own first pass. With 10 honest inputs and 4 NaN ones, Krum
// configured with f = 4 runs as Krum with f = 0 on the 10 (n > 2·0+2)
// instead of failing because 10 is not > 2·4+2; with 2 NaN and 2 crafted
// outliers it runs with f = 2 and still excludes the outliers.
//
// f_eff is what every rule with an f uses, both in its requirement and in
// the algorithm: Krum's and Multi-Krum's n−f−2 neighbours, Multi-Krum's
// default M = n−f (an explicit M is kept; see MultiKrum), the median's
// check, the trimmed mean's values dropped per side, Bulyan's θ and β,
// NNM's n−f neighbours. HierarchicalKrum, configured with a fraction,
// subtracts the rejected inputs from the count that fraction stands for.
// In a Pipeline the screening happens once, and NNM and the final rule see
// the same rejected count. A *RequirementError reports the configured f
// (F), the effective f (FEff) and the number rejected, and states the
// requirement with the effective f.
//
// The accounting is sound only if f counts every faulty input: an honest
// client whose training diverged to NaN is a fault and uses up budget like
// a Byzantine one. FedAvg, GeometricMedian and CenteredClipping have no f
// and are unaffected.
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
// # Float32 inputs
//
// Updates travel as float32. AggregateFloat32 aggregates [][]float32
// without a float64 copy when the rule is a SourceRule (fedavg, krum,
// multi-krum, median, trimmed-mean, bulyan, geometric-median,
// centered-clipping): the kernels read
// float32 and accumulate in float64 (products of float32 values are exact
// in float64), except the Gram matrix of Krum, Multi-Krum and Bulyan, which
// multiplies and adds in float32 lanes over runs of at most 512
// coordinates and sums the runs in float64; pairs closer than 10⁻³ of
// their squared norms are recomputed exactly, so every distance is within
// ~10⁻³ relative. The median and the trimmed mean (and Bulyan, given the
// same selection) give bit for bit what Aggregate gives on the widened
// values. Hierarchical Krum is also a SourceRule: it widens each block
// to float64 as it reads it and gives Aggregate's bits. So is a
// Pipeline: with this package's pre-steps and FedAvg, Krum, Multi-Krum,
// median or trimmed mean it runs block by block on recipes over the
// inputs (see Pipeline.AggregateSource); with other parts it makes a
// float64 copy.
//
// # Big rounds
//
// A Source yields blocks of coordinates of each update (from memory, a
// file, a blob store). A SourceRule's AggregateSource reads it block by
// block: its memory is a few cache-sized blocks per core, the n×n distance
// matrix and the result, whatever d is, and its result is bit-identical to
// the same call on the updates in memory (Float32Rows), for any
// GOMAXPROCS.
//
// # Randomness
//
// Bucketing and HierarchicalKrum draw from a *rand.Rand (math/rand/v2) the
// caller injects; the registry seeds it from Params.Seed. Nothing in this
// package reads global random state.
package aggregate
