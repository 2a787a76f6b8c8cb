// Package sitedata reads a data site's own files into a learn.Dataset and
// checks them against the schema a training job declares, so that a node
// trains on what it measured and refuses, with an error naming the file,
// the column and the mismatch, data that does not fit the job.
//
// # Formats
//
// Load picks the reader from the path (DetectFormat):
//
//   - CSV (.csv) and Parquet (.parquet) tables: one label column
//     (Options.LabelColumn, default "label") and feature columns
//     (Options.FeatureColumns, default every other column in file order);
//   - NumPy: a .npz archive holding X (n×k, or n×d1×d2… for images) and
//     y (n); or a .npy X with its labels in Options.Labels (a .npy vector
//     or a text file with one label a line);
//   - MNIST-style IDX pairs (train-images-idx3-ubyte[.gz] with its
//     labels file, found by name or given in Options.Labels), pixels
//     scaled to [0, 1]; Debian's dataset-fashion-mnist package installs
//     Fashion-MNIST in this form under /usr/share/datasets/fashion-mnist
//     (learn.FashionMNISTDir), e.g. Load of
//     /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz;
//   - a folder of recorded MFN potential fields: .npy files of N×N or
//     T×N×N values in volts, as "mfn sim --out" writes, and a labels.csv
//     with columns file and label; each field becomes one row of the 18
//     features of sim.ExtractFeatures.
//
// # Schema
//
// A Schema declares the feature count (or input shape), the class list and
// the standardisation. Labels are mapped to classes by their text through
// the class list ("cat" → its index; a numeric 3 → class "3"), never by
// order of appearance, so every site numbers classes alike. Without a
// class list labels must be integers 0..K−1. Standardisation is either
// per site (statistics of the loaded rows, Loaded.Stats) or per job
// (reference statistics declared in the schema, the same at every site).
//
// # Invalid rows
//
// A row with the wrong number of fields, an empty, non-numeric, NaN or
// infinite value, or a bad label is a *RowError naming the file, the row
// (and line) and the column. With Options.DropInvalid such rows are
// skipped and counted in Loaded.Dropped instead. A label outside the
// class list is a *SchemaError: the site's data does not fit the job.
//
// # Limits
//
// Files are a site's own, but they are still parsed as untrusted bytes:
// no input panics (the parsers are fuzzed), and Options.MaxValues (default
// DefaultMaxValues, 2^27 values = 1 GiB) bounds rows × features before
// binary arrays are allocated and while table rows accumulate. Integer
// labels without a class list are bounded below 65,536.
//
// # Splits and partitions
//
// learn.SplitTrainTest makes the deterministic, seeded train/test split;
// learn.ParsePartition and learn.PartitionDataset deal a training set to
// clients IID or by Dirichlet(α) label proportions.
package sitedata
