// Package sim is the MFN (MyceliumFractalNet) numerical model: a
// reaction–diffusion simulation of a mycelium-like membrane-potential field,
// the 18 features extracted from it, the Nernst potential and an IFS
// fractal with its Lyapunov exponent. Every edge node runs it on its own
// data; the features are what the federated models learn from.
//
// It reproduces the reference Python/NumPy implementation described in
// MFN_MODEL.md: feature extraction to within a few units in the last place
// (the golden tests require 1e-9), and the simulation statistically (its
// random stream differs from NumPy's, so runs are compared by the
// distribution of their features over 1000 seeds).
//
// # The field
//
// The state is an N×N grid of potentials V in volts, starting at
// Normal(−70 mV, 5 mV) per cell, with an activator a and an inhibitor i
// starting Uniform(0, 0.1). Each step, in this order:
//
//  1. Growth event: with probability SpikeProbability one uniformly chosen
//     cell gains Normal(20 mV, 5 mV).
//  2. Diffusion: V ← V + α·∇²V with the 5-point Laplacian
//     ∇²u = u[i+1,j] + u[i−1,j] + u[i,j+1] + u[i,j−1] − 4u[i,j];
//     explicit Euler is stable for α < 1/4, hence α ≤ 0.24.
//  3. Turing morphogenesis: a' = a + D_a∇²a + r_a(a(1−a) − i) and
//     i' = i + D_i∇²i + r_i(a − i), both from the values before the step;
//     every cell with a' > θ is depolarised by 5 mV; a', i' are clamped to
//     [0, 1].
//  4. Jitter (optional): V += Normal(0, σ²) per cell.
//  5. Ion clamp: V is held in [−95 mV, +40 mV].
//
// The Boundary decides what lies outside the grid: Periodic wraps around,
// Neumann copies the edge cell (no flux), Dirichlet reads zero.
//
// Simulate returns the final field, optionally the history (the field
// after every step), event counts, a Lyapunov estimate and the features,
// all computed while stepping, so memory does not grow with the number of
// steps unless the history is requested.
//
//	cfg := sim.DefaultConfig()
//	cfg.Steps, cfg.Seed = 100, 42
//	res, err := sim.Simulate(cfg, false)
//	if err != nil { ... }
//	fmt.Println(res.Features.Map()["V_mean"]) // ≈ −69.9 mV
//
// With the default parameters the activator decays (once i tracks a,
// a(1−a) − i ≈ −a² < 0), so it never crosses θ and the field stays near
// −70 mV: the fractal and cluster features are 0. High spike rates with
// jitter (the "active" regime, e.g. 32×32, 40 steps, α 0.1, spike
// probability 0.9, jitter on) produce the clustered fields those features
// describe. Because a and i are not part of the Result and influence V only
// through a' > θ, Simulate skips the Turing update when a bound on the
// activator's growth proves that no cell can cross θ during the run; the
// output is bit-identical either way.
//
// # Determinism
//
// A run depends only on its Config: the initial V and the growth events
// come from one PCG stream seeded with Config.Seed, the initial activator
// and inhibitor from a second, and the jitter of row r in step t from a
// PCG stream whose seed is derived from (Seed, t, r). On
// grids of 128 and more rows are shared between two goroutines; partial
// sums are always combined in row order, so the result is bit-identical for
// any GOMAXPROCS.
//
// # Features
//
// ExtractFeatures (and Simulate) compute, in FeatureNames order:
//
//   - D_box, D_r2: box-counting dimension of the cells above −60 mV and the
//     R² of its log–log fit. Box sizes for an N×N grid come from the
//     reference's table (box_sizes.json, embedded): NumPy's
//     geomspace(2, max, 5).astype(int) gives [2, 4, 7, 16, 32] for N ≥ 64,
//     not the powers of two one might expect, and the table keeps that.
//   - V_min, V_max, V_mean, V_std, V_skew, V_kurt: population statistics of
//     the last frame in mV (kurtosis is excess kurtosis).
//   - dV_mean, dV_max: mean and maximum of |V_t − V_{t−1}| in mV.
//   - T_stable: the first step of a run of 10 steps whose |ΔV| has a spatial
//     std below 0.001 mV; T if none.
//   - E_trend: least-squares slope of Σ V_t² (mV²) against t.
//   - f_active and the clusters: the fraction of cells above −60 mV and the
//     4-connected components above −60, −50 and −40 mV, with the largest
//     component and the std of the sizes at −60 mV.
//
// Means and moments use NumPy's pairwise summation order, so they agree
// with the reference to the last bit or nearly.
//
// # Nernst and IFS
//
// Nernst gives the equilibrium potential E = RT/(zF)·ln(c_out/c_in); for
// potassium (5 mM out, 140 mM in, 310 K) it is −89.0 mV. GenerateIFS plays
// the chaos game with random similarity maps of scale 0.2–0.5; its Lyapunov
// exponent, the mean ln|det| of the applied maps, is about 2·E[ln s] ≈ −2.16.
// HistoryLyapunov is the analogous estimate for a field history: the mean
// of ln‖V_t − V_{t−1}‖₂.
//
// # Errors
//
// Config.Validate returns a *ConfigError naming the parameter (e.g.
// "grid_size") and its valid range; it wraps ErrInvalidConfig. A run that
// produces NaN returns an *UnstableError with the step number (wrapping
// ErrUnstable and ErrNonFinite). ExtractFeatures rejects input containing
// NaN or ±Inf with a *NonFiniteError that locates the value.
package sim
