// Package experiment is the engine of the Byzantine-robustness protocol
// (shared/spec/ROBUSTNESS_BENCH.md) behind "mfn bench robustness": it
// expands a Config into cells — one per (heterogeneity setting, Byzantine
// count f, aggregation pipeline, attack, seed) — runs each cell as an
// in-process federation (learn.RunFederation) and summarises the final
// test accuracies as a table, a JSON array or heat maps.
//
// # Cells and determinism
//
// Config.Cells lists every cell in a stable order: setting, f, rule,
// attack, seed. A cell's result depends only on the Config and the cell:
// the client partition is drawn from the cell's seed, the data set (and its
// subset when Config.TrainSize is set) from fixed seeds shared by every
// cell, so the same Config gives the same accuracies bit for bit, whatever
// Config.Workers is.
//
// # Data and models
//
// Config.Dataset picks MNIST, Fashion-MNIST, the MFN regime task, or
// "file": a site-style file read by package sitedata (Config.Data, its
// label column and class list), split into train and test with a fixed
// seed (Config.TestFraction); the test part is never given to a client.
// Config.Model is "softmax", "mlp" (Config.Hidden units) or any
// learn.ParseArch spec such as "mlp:128,64" or "cnn:mnist".
//
// # Results files and resuming
//
// Run appends every finished cell as one JSON line (Record) to
// RunOptions.Results and skips the cells already present, matched by Key:
// the cell plus a fingerprint (Config.Setup, CellSetup) of every
// hyper-parameter its accuracy depends on, so a results file is never
// resumed with different parameters. An interrupted run (ctx cancelled)
// keeps every finished cell and reports ErrInterrupted-wrapped context
// errors in Outcome.Interrupted.
//
// # Reports
//
// WriteTable renders one table per setting (rows f × rule, columns
// attacks plus the worst case over attacks, means over seeds); WriteJSON
// the finished cells as an array; WritePNG one heat map per setting of the
// worst case over attacks. A failed cell (a rule's requirement such as
// Krum's n > 2f+2 not met) is kept with a NaN accuracy and shown as n/a.
//
// # Differential privacy
//
// Config.DP adds a privacy axis: each value ("none", "central:EPS",
// "local:EPS"; ParseDP) is one more cell per combination, run by an
// in-package loop that mirrors learn.RunFederation (at "none" and q = 1 it
// gives the same model bit for bit) with three additions: Poisson sampling
// of every node, honest or Byzantine, at Config.SampleRate q per round
// (a seeded draw); clipping to Config.DPClip C; and discrete Gaussian noise
// from package privacy — local: z·C on each honest update at the node
// (privacy.Local), central: the server clips every received update and
// fedavg becomes the DP-FedAvg mean (sum + z·C noise, ÷ q·n,
// privacy.Central); other rules aggregate the clipped updates and get
// z·C/(q·n) noise on their output, which is reported but is not a proven
// guarantee (RecordDP.Covered false). z is privacy.NoiseMultiplier for the
// target ε over Config.Rounds at q and Config.DPDelta; each Record carries
// RecordDP with z, the ε spent at q and at q = 1 (how MFN's coordinators
// account today), the mean nodes per round and the share of clipped
// updates, and WriteTable ends with one summary line per DP setting. With
// q < 1 the rule is built for a high quantile of the sampled Byzantine
// count (ruleF). Noise comes from ChaCha8 streams seeded by (seed, round,
// node), so DP cells are deterministic for any Workers too. Without
// Config.DP nothing changes: same cells, keys, tables and files.
//
// # Server optimizers
//
// Config.Optimizer ("fedadam:lr=0.01", serveropt.Parse) applies a server
// optimizer after the rule in every cell: the rule is wrapped so that what
// learn.RunFederation adds to the model is serveropt.Advance's increment
// on the robust aggregate (the model serveropt.Step gives, bit for bit),
// and adaptive attacks that probe the rule are handed the inner rule, so
// probing never moves the optimizer's state. The resolved optimizer is in
// every Record and in Setup (so in the keys); without it, Setup, keys and
// files are as before. It is not combined with Config.DP.
//
// # Errors
//
// Config.Validate returns a *ConfigError naming the offending field by its
// flag name (for example "honest"), so that a command can report it as a
// usage error.
package experiment
