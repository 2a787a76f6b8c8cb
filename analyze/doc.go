// Package analyze answers the questions of the MFN exploration notebooks
// (feature analysis and fractal exploration) as numbers; internal/viz draws
// them and "mfn analyze" writes both.
//
// # Fractal exploration
//
// The D_box feature thresholds the last frame of a field at −60 mV and
// estimates the box-counting (Minkowski–Bouligand) dimension of the
// active cells from box edges s = 2, 4, 7, 16, 32 (the reference
// implementation's sizes for N ≥ 64): with k = N/s, the top-left k·s
// square is tiled with k×k boxes, the boxes holding an active cell are
// counted, and D is the least-squares slope of ln(count) against ln(1/s)
// over the sizes with a non-zero count (MFN_MODEL.md §4). This package
// shows every step of that computation and lets both choices vary:
//
//   - Mask thresholds a frame (strictly above, in volts, exactly as the
//     feature extractor compares).
//   - BoxCount returns the count at every scale and the fit (D, R², the
//     intercept); FieldFit does both for a frame and a FractalConfig.
//   - ThresholdSweep repeats the fit for several thresholds; OverTime for
//     every frame of a history; Fractal bundles the three for a history.
//
// D and R² come from sim.BoxDimension itself and the counts from
// sim.BoxCounts, so with DefaultFractalConfig the results equal the D_box
// and D_r2 features bit for bit; the tests check this on the reference
// implementation's golden cases and on known fractals (a filled square has
// D = 2, a line 1, the Sierpinski carpet log 8 / log 3).
//
// # Feature analysis
//
// A Table is a data set read column by column from CSV (ReadCSV, kinds
// inferred) or Parquet (ReadParquet), as "mfn dataset" writes it, within
// Limits on bytes, rows, columns, cells and text levels. AnalyzeFeatures
// computes, for the feature columns:
//
//   - Describe: count, mean, sample std, min, median, max, constancy;
//   - Correlation: the Pearson matrix, NaN (JSON null) where a column is
//     constant;
//   - PCA: gonum's stat.PC on the standardised non-constant columns:
//     variances, explained-variance ratios, unit components with a fixed
//     sign, and each row's scores on the first two components;
//   - PermutationImportance (when a label column is given): a softmax or
//     MLP model of package learn is trained on a seeded split of the rows
//     to predict the label (Labels turns bool, text, few-valued or
//     continuous columns into classes), and each feature's importance is
//     the held-out accuracy lost when that feature is shuffled (Breiman
//     2001), averaged over repeats.
//
// Everything is deterministic: the only randomness (split, initial
// weights, minibatches, permutations) comes from ImportanceConfig.Seed.
//
// # Errors
//
// ErrTable for malformed or oversized input, ErrNoColumn for a missing or
// unsuitable column, ErrTooFew for too few rows, classes or columns,
// ErrFractalConfig and ErrImportanceConfig naming the bad field, ErrField
// for a field of the wrong shape or with NaN/Inf. The package never prints
// and never panics on input bytes.
package analyze
