// Package serveropt implements the server optimizers of Reddi et al.,
// "Adaptive Federated Optimization" (ICLR 2021): FedAvgM, FedAdam,
// FedYogi and FedAdagrad. A coordinator applies one after the robust
// aggregation rule, treating the round's aggregate Δ (the rule's output,
// a mean-like combination of the nodes' deltas) as a pseudo-gradient:
// instead of x ← x + Δ (plain FedAvg) the model moves by
//
//	FedAvgM:    m ← β·m + Δ;                    x ← x + η·m
//	FedAdam:    m ← β1·m + (1−β1)·Δ;  v ← β2·v + (1−β2)·Δ²
//	FedYogi:    m as Adam;            v ← v − (1−β2)·Δ²·sign(v − Δ²)
//	FedAdagrad: m as Adam;            v ← v + Δ²
//	adaptive:   x ← x + η·m / (√v + τ)
//
// per coordinate, with m and v starting at zero and no bias correction
// (as in the paper's Algorithm 2). FedAvgM with β = 0 and η = 1 is plain
// FedAvg. An adaptive method's first step is (1−β1)Δ·η/((1−β1)|Δ|+τ)·…
// ≈ η·sign(Δ) per coordinate for Adam and Yogi (|Δ| ≫ τ), so η is the
// size of a parameter's change per round, not a multiplier of Δ.
//
// # Spec
//
// Spec is the JSON block a job names ({"name": "fedadam", "lr": 0.01,
// "beta1": 0.9, "beta2": 0.99, "tau": 0.001}); Parse reads the text form
// "fedadam:lr=0.01,tau=1e-3" of command-line flags. Validate names the bad
// field; Resolved fills in the defaults (β1 0.9, β2 0.99, τ 10⁻³, FedAvgM
// momentum 0.9 and η 1; η 0.01 for Adam and Yogi, 0.1 for Adagrad).
//
// # Determinism
//
// Step is a pure float64 function of (spec, state, model, aggregate):
// every product is rounded before it is added (explicit float64
// conversions forbid the fused multiply-add a compiler may otherwise
// emit, e.g. on arm64), and math.Sqrt is correctly rounded, so every
// replica of a coordinator cluster computes the same bits. State is a
// value (Step returns a new one), its binary encoding (MarshalBinary) is
// canonical and restores every bit, and its decoder never panics on
// untrusted bytes (FuzzUnmarshalState).
//
// # Memory
//
// The state holds m and, for the adaptive methods, v: 2 × dim float64 (16
// bytes per parameter; 16 MiB for a million parameters), plus the new
// model and the next state while a step runs.
package serveropt
