// Package node is the MFN edge agent: the program a data site runs to take
// part in federated training without ever sending its data anywhere.
//
// A node simulates its own MFN fields (package sim, through learn's regime
// task), keeps them in its state directory, and for every training round
// the coordinator cluster announces it fetches the global model, trains it
// on its local data, signs and seals the resulting update to the
// coordinators (package crypto) and submits it over QUIC (package
// protocol). The cluster's acknowledgement — the Raft log index and the
// audit leaf of the update — is written to the state directory before the
// node moves on.
//
//	cluster, _ := node.LoadCluster("cluster.txt")
//	cfg := node.DefaultConfig()
//	cfg.IdentityDir, cfg.StateDir, cfg.Cluster = "keys/site-7", "state/site-7", cluster
//	a, err := node.New(cfg)
//	err = a.Run(ctx) // until ctx is cancelled
//
// # The cluster file
//
// A node must know, before its first connection, where the coordinators
// are, which keys their TLS certificates must carry (the node pins them and
// refuses any other server) and which age recipients its updates are
// sealed to. ParseCluster reads all three from one text file:
//
//	origin mfn.example/cluster-1
//	coordinator c1 10.0.0.1:4431 mfn-ed25519:<signing.pub of c1> age1<age.pub of c1>
//	coordinator c2 10.0.0.2:4431 mfn-ed25519:... age1...
//	coordinator c3 10.0.0.3:4431 mfn-ed25519:... age1...
//
// Every update is sealed to every listed coordinator, so any of them can
// open it after a leader change.
//
// # Local data
//
// The regime task's samples are the 18 features of one simulation each,
// labelled by the parameter regime it was drawn from; a site's regime mix
// (Proportions) makes federations heterogeneous. Features are standardised
// with the task's reference statistics (ReferenceStandardizer), computed
// by every site and evaluator from the same fixed-seed simulations, so
// sites agree on the input scale without sharing data. The simulated set is
// cached in StateDir/dataset-v1.bin (versioned, keyed by the data
// configuration, SHA-256 checksummed, written atomically) and reused on
// restart. A fraction (HoldOut, mfn node --holdout, default 0.2, chosen by
// a permutation seeded from the data seed) is kept out of training. After
// training, the node measures its model's mean loss on the training split
// and accuracy on the held-out split (Evaluate, eval.go) and signs them in
// the update's statement (crypto statement version 2); the coordinators
// aggregate them per round (docs/METRICS.md). EvalData (evaldata.go) scores
// global models on a labelled file at the coordinators (--eval-data).
//
// A job may declare a data schema, announced as the "schema" metadata
// (schema.go): before training, the node checks its feature count, class
// list and standardisation against it and refuses a mismatch naming the
// file, the column and the mismatch, submitting nothing. A node whose file
// has categorical labels and no class list waits for a job whose schema
// lists the classes and loads its file with that list (NeedsClasses).
//
// A site with its own data sets DataConfig.File (site.go): the node reads
// the file where it is through package sitedata (CSV, Parquet, .npy/.npz,
// IDX pairs, a folder of recorded MFN fields), standardises it with its
// own statistics (or the job's), never caches or copies it, and splits off
// the held-out part with DataConfig.Seed. A bad row stops the node naming
// the row and column (or is dropped and counted with DropInvalid). Every
// announced job is checked against the file (jobArch): the model's input
// size must be the file's feature count and its output size the class
// count, or the round is skipped with an error wrapping ErrTask and a
// *sitedata.SchemaError naming the file, the column and the sizes — the
// node submits nothing for a job its data does not fit.
//
// # Rounds, acknowledgements and restarts
//
// For each announced round the node checks its State: a round with an
// acknowledgement record is skipped. Otherwise it fetches the base model
// (hash-checked against the announcement), trains with a random source
// derived from (seed, job, round), seals the update, and writes it as
// "pending" before submitting. The answer decides:
//
//   - acknowledged: the Record (job, round, log index, leaf index, update
//     hash) is written durably, then the pending file removed;
//   - duplicate: an earlier attempt was stored but its acknowledgement was
//     lost; recorded as such (success, indexes unknown);
//   - not leader: the node redials the leader named in the answer;
//   - round closed, bad request, unauthorized: the round is given up;
//   - rate limited, unavailable: retried after the advised delay.
//
// Client momentum (the SGD velocity that carries over between rounds of a
// job) is written to StateDir/momentum/<hex job>.bin after each round's
// training, atomically and checksummed, and restored when the node trains
// the job again after a restart, so a restarted node trains the same
// updates as one that never stopped.
//
// A node killed between submission and record finds the pending file on
// restart and submits the very same bytes again; the cluster recognises
// them and answers with the original acknowledgement, so no round is ever
// submitted twice with different contents, and none is counted twice. The
// same happens when the leader died before answering and the round closed
// meanwhile: before taking part in a later round of the job, the node
// settles every older pending update this way (the cluster recognises a
// stored update before it looks at the round's state); a "round closed"
// answer then means the update was never stored, and it is dropped.
//
// # Leaders and failures
//
// The node dials the coordinators in turn. A coordinator that does not
// lead names the leader in its Hello answer (or in a "not leader" error)
// and the node goes there: only the leader pushes round announcements.
//
// A dead or frozen leader is noticed fast: the QUIC connection sends
// keep-alives every second and dies after 3 s without an answer
// (Protocol.IdleTimeout, DefaultIdleTimeout), which also ends a submission
// in flight; its pending update is then submitted, byte for byte, to the
// next leader. Reconnection uses jittered exponential backoff (BackoffMin
// to BackoffMax, from the seeded source), capped at LeaderWait (1 s) while
// the members answer but none leads yet, so the node finds a new leader
// about a second after Raft elects it (in 1–3 s). The node then resumes
// the round that is open, since a new subscription first delivers the open
// rounds.
//
// A connection that carries no announcement for LeaderCheck (2 s) is
// checked with a fresh Hello to the same address. The answer (protocol
// Version2) names the leader, its Raft term and the answering server's
// instance id: another leader address means the leadership moved; the
// same address from another instance means that coordinator restarted and
// leads again, so the node's own connection reaches a process that is
// gone; either way the node redials at once.
//
// With Config.TracerProvider set, each round is a trace: node.round with
// node.train, node.seal and node.submit under it; the submit span's W3C
// traceparent travels with the update (protocol.WithTraceParent, outside
// the sealed envelope) so the coordinator's ingest spans join the same
// trace. See docs/TRACING.md.
//
// A coordinator that has just restarted and not caught up with the
// cluster answers "not ready" (protocol.CodeNotReady) for keys it does not
// know yet, instead of refusing them: the node retries within LeaderWait,
// preferably at another member, and keeps the long back-off and the
// "refused" event for real refusals (ErrRefused: not enrolled, revoked).
//
// The log says what the node waits for: "looking for the leader" (with the
// addresses dialled), "member is catching up", "connected to the leader;
// waiting for round announcements", "round announced", "leader moved",
// "coordinator restarted at the same address" and "backing off" with the
// time it retries (until), the reason and the error.
//
// # Byzantine nodes
//
// For experiments and demonstrations, Config.Byzantine names an attack of
// package aggregate. Such a node follows the protocol exactly but sends a
// crafted update: "label-flip" trains on flipped labels; the other attacks
// need the round's honest updates, which a real node cannot see, so the
// node approximates them by AttackHonest honest updates of its own, each
// trained from the round's model on a bootstrap resample of its local data.
// That underestimates the spread between honest sites (one site's resamples
// agree more than different sites do), so these attacks are weaker than the
// omniscient versions that learn.RunFederation simulates.
//
// # Observability
//
// Logs go to Config.Logger (log/slog); metrics to Config.Registry:
// mfn_node_rounds_participated_total, mfn_node_submissions_total{result},
// mfn_node_train_seconds, mfn_node_local_accuracy_ratio{model},
// mfn_node_train_loss, mfn_node_connected and mfn_node_reconnects_total. Config.OnEvent
// receives the same steps as Events, for programs that drive nodes.
package node
