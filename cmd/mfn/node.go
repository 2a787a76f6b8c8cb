package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
	mfncrypto "github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/internal/telemetry"
	"github.com/mfn/mfn/node"
)

func init() { registerCommand(newNodeCmd) }

const nodeLong = `node runs an MFN edge node: it simulates its site's MFN fields once (cached
in --state-dir), then takes part in every training round the coordinator
cluster announces: it fetches the global model (hash-checked), trains it on
its local data, signs and seals the update to every coordinator, submits it
over QUIC and records the acknowledgement (Raft log index, audit leaf index)
in --state-dir before moving on. A restarted node never submits twice for a
round.

What the node needs:
  --identity DIR   its keys, from "mfn keygen --role node --out DIR"; the
                   cluster must have enrolled signing.pub under --id
  --cluster FILE   the coordinators: one line per member
                     coordinator ID HOST:PORT mfn-ed25519:KEY age1RECIPIENT
                   (the Ed25519 key from the member's signing.pub, which
                   the node pins, and the age recipient from its age.pub,
                   which updates are sealed to), optionally a line
                     origin NAME
                   pinning the cluster origin (the audit log key's name)
  --state-dir DIR  where the dataset cache and the acknowledgements live

The node connects to all coordinators at once and keeps the connection of the
leader (a follower names it); when the leader or the network goes away it
reconnects with jittered exponential backoff and resumes the open round.

Local data: --task mfn-regime (default) simulates --samples runs whose
regimes follow --regime-mix (weights of quiet, noisy-spiking, mild-jitter,
neumann-spiking); --task mnist uses part --partition of an IID split of
MNIST into --partitions parts. --holdout of the data is kept out of training
to report local accuracy.

Your own data: --data FILE trains on the site's file instead (CSV or
Parquet with a --label-column and feature columns, .npy/.npz, MNIST-style
IDX pairs, or a folder of recorded MFN fields with labels.csv). Labels are
mapped by --classes (index = class id), not by order of appearance.
Features are standardised with this site's statistics (--standardize).
The file is checked when the node starts: a NaN, Inf, empty or ragged row
stops it naming the row and column (--drop-invalid drops and counts such
rows). Each announced job is checked against the file: a model whose input
size is not the file's feature count, or whose output size is not its
class count, is refused with an error naming the file, the column and the
sizes, and nothing is submitted. With --data the node joins the jobs of
--task when the flag is given, otherwise every job whose model fits. The
rows never leave the node; only updates do.

--byzantine ATTACK makes this node send crafted updates (for experiments):
label-flip trains on flipped labels; the other attacks are fed honest
updates the node simulates from its own data (bootstrap resamples).

Verified outcomes: with --verify-rounds the node checks, beside its
rounds, what the cluster did with each update it acknowledged, as "mfn
node rounds" does: every --verify-every (and soon after the next round of
a job is announced) it fetches, from --verify-server's HTTP API with an
auditor key (--verify-api-key or MFN_VERIFY_API_KEY), its update leaf's
and the round's result leaf's proof bundles and checks them against a
checkpoint signed by the audit log key (--log-key) and, with
--member-keys, cosigned by a majority of the members. A settled round
(used, rejected, not-input or missing; no-result and unverified after 10
tries, a round still running spending none) is logged once (INFO for used and rejected with the reason, ERROR
for missing and unverified) and counted in
mfn_node_round_outcomes_total{outcome}; mfn_node_round_last_verified{job}
is the last round of a job whose signed result verified. Nothing the
server says is taken on trust.

Logs are JSON on stderr; --http-addr serves /metrics (Prometheus) and
/healthz. SIGINT or SIGTERM stops the node cleanly.`

const nodeExample = `  mfn keygen --role node --out keys/site-07
  mfn node --id site-07 --identity keys/site-07 --cluster cluster.txt \
    --state-dir state/site-07 --samples 200 --regime-mix 4,1,1,1 --http-addr 127.0.0.1:9107
  # the same, tracing every round to an OTLP/HTTP collector (Jaeger, ...)
  mfn node --id site-07 --identity keys/site-07 --cluster cluster.txt \
    --state-dir state/site-07 --otlp-endpoint http://127.0.0.1:4318

  # the same, verifying every round's outcome against the signed audit log
  mfn node --id site-07 --identity keys/site-07 --cluster cluster.txt \
    --state-dir state/site-07 --http-addr 127.0.0.1:9107 --verify-rounds \
    --verify-server https://c1:8080 --verify-pin "$(cat c1/signing.pub)" \
    --verify-api-key $AUDITOR_KEY --log-key @log.vkey --member-keys peers.txt

  # a site with its own table (30 features, labels benign/malignant)
  mfn node --id site-07 --identity keys/site-07 --cluster cluster.txt \
    --state-dir state/site-07 --data site.csv --label-column diagnosis --classes benign,malignant

  # cluster.txt
  origin mfn.example/cluster-1
  coordinator c1 10.0.0.1:4431 mfn-ed25519:Zm9v... age1qy...
  coordinator c2 10.0.0.2:4431 mfn-ed25519:YmFy... age1xz...
  coordinator c3 10.0.0.3:4431 mfn-ed25519:YmF6... age1ab...`

type nodeFlags struct {
	id, identity, cluster, stateDir string
	task, regimeMix, mnistDir       string
	samples, gridSize, steps        int
	dataSeed, seed                  uint64
	holdout                         float64
	workers                         int
	partition, partitions           int
	epochs, batch                   int
	lr, momentum, weightDecay       float64
	byzantine, attackRule           string
	attackF, attackHonest           int
	backoffMin, backoffMax          time.Duration
	dialTimeout                     time.Duration
	httpAddr, logLevel              string
	trace                           traceFlags
	// The site's own data file (--data and its options).
	data, labelColumn, standardize string
	stats                          string // --stats: reference statistics for --standardize job
	featureColumns, classes        []string
	dropInvalid, taskSet           bool
	// --verify-rounds and its options.
	verifyRounds bool
	verify       ctlOpts    // --verify-server, --verify-api-key, --verify-timeout, --verify-ca, --verify-pin
	verifyTrust  auditFlags // --log-key
	memberKeys   string
	verifyEvery  time.Duration
}

func newNodeCmd(env *cmdEnv) *cobra.Command {
	var f nodeFlags
	c := &cobra.Command{
		Use:     "node",
		Short:   "Run an edge node: simulate local data, train and submit updates for every round",
		Long:    nodeLong,
		Example: nodeExample,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			f.taskSet = c.Flags().Changed("task")
			return runNode(env, &f)
		},
	}
	d := node.DefaultConfig()
	fl := c.Flags()
	f.trace.register(fl)
	fl.StringVar(&f.id, "id", "", "node id the cluster enrolled this key under (empty: derived from the public key)")
	fl.StringVar(&f.identity, "identity", "", "directory of the node's keys (mfn keygen --role node)")
	fl.StringVar(&f.cluster, "cluster", "", "cluster file listing the coordinators' QUIC addresses, Ed25519 keys and age recipients")
	fl.StringVar(&f.stateDir, "state-dir", "", "directory for the dataset cache and the acknowledgement records (created if missing)")
	fl.StringVar(&f.task, "task", d.Data.Task, "local data: mfn-regime or mnist")
	fl.IntVar(&f.samples, "samples", d.Data.Samples, "local simulations (mfn-regime), or the partition size cap (mnist, 0 = all)")
	fl.StringVar(&f.regimeMix, "regime-mix", "1,1,1,1", "weights of the four regimes in the site's data (quiet, noisy-spiking, mild-jitter, neumann-spiking)")
	fl.IntVar(&f.gridSize, "grid-size", 32, "simulated grid side (every site of a federation must use the same)")
	fl.IntVar(&f.steps, "steps", 48, "simulation steps (every site of a federation must use the same)")
	fl.Uint64Var(&f.dataSeed, "data-seed", d.Data.Seed, "seed of the site's simulations (or partition order)")
	fl.Float64Var(&f.holdout, "holdout", 0.2, "fraction of local samples held out to measure local accuracy (0 to 0.9; 0 = none)")
	fl.IntVar(&f.workers, "workers", 0, "concurrent simulations (0 = all cores)")
	fl.StringVar(&f.mnistDir, "mnist-dir", "", "MNIST directory for --task mnist (empty: the GoMNIST module's)")
	fl.IntVar(&f.partition, "partition", 0, "which part of MNIST this node holds (0-based, --task mnist)")
	fl.IntVar(&f.partitions, "partitions", 1, "into how many parts MNIST is split (--task mnist)")
	fl.IntVar(&f.epochs, "epochs", d.Train.Epochs, "local epochs per round (1-10000)")
	fl.IntVar(&f.batch, "batch", d.Train.Batch, "minibatch size (≥ 1)")
	fl.Float64Var(&f.lr, "lr", d.Train.LR, "learning rate (0 to 100]")
	fl.Float64Var(&f.momentum, "momentum", d.Train.Momentum, "SGD momentum [0, 1); the buffer persists across rounds")
	fl.Float64Var(&f.weightDecay, "weight-decay", 0, "L2 weight decay (≥ 0)")
	fl.StringVar(&f.byzantine, "byzantine", "", "send crafted updates with this attack (experiments only): "+strings.Join(aggregate.AttackNames, ", "))
	fl.IntVar(&f.attackF, "attack-f", 1, "number of colluding Byzantine nodes the attack assumes")
	fl.IntVar(&f.attackHonest, "attack-honest", 4, "honest updates a Byzantine node simulates from its own data")
	fl.StringVar(&f.attackRule, "attack-rule", "trimmed-mean", "rule the adaptive attacks (opt-alie, opt-ipm, min-max, min-sum) optimise against")
	fl.Uint64Var(&f.seed, "seed", d.Seed, "seed of training, attacks and backoff jitter")
	fl.DurationVar(&f.backoffMin, "backoff-min", 200*time.Millisecond, "first reconnection delay")
	fl.DurationVar(&f.backoffMax, "backoff-max", 10*time.Second, "longest reconnection delay")
	fl.DurationVar(&f.dialTimeout, "dial-timeout", node.DefaultDialTimeout, "bound on one connection attempt (QUIC handshake and hello)")
	fl.StringVar(&f.httpAddr, "http-addr", "", "host:port serving /metrics and /healthz (empty: none)")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.StringVar(&f.data, "data", "", "the site's own data: .csv, .parquet, .npy, .npz, IDX images or a folder of MFN fields (instead of --task's built-in data)")
	fl.StringVar(&f.labelColumn, "label-column", "label", "label column of a --data table")
	fl.StringSliceVar(&f.featureColumns, "feature-columns", nil, "feature columns of a --data table, in order (default: every column but the label)")
	fl.StringSliceVar(&f.classes, "classes", nil, "class list of --data, index = class id (default: integer labels 0..K-1)")
	fl.BoolVar(&f.dropInvalid, "drop-invalid", false, "drop --data rows with NaN, Inf, empty or unparsable values and report the count (default: refuse the file)")
	fl.StringVar(&f.standardize, "standardize", node.StandardizeSite, "scaling of --data features: site (this site's mean and std), none, or job (the job's reference statistics, --stats)")
	fl.StringVar(&f.stats, "stats", "", `JSON file {"mean":[...],"std":[...]}: the job's reference statistics, for --standardize job`)
	fl.BoolVar(&f.verifyRounds, "verify-rounds", false, "verify, beside the rounds, each acknowledged update's outcome against the signed audit log (needs --verify-server, --verify-api-key, --log-key)")
	fl.StringVar(&f.verify.server, "verify-server", "", "--verify-rounds: URL of any coordinator member's HTTP API (env MFN_VERIFY_SERVER)")
	fl.StringVar(&f.verify.apiKey, "verify-api-key", "", "--verify-rounds: API key with the auditor role, sent as X-API-Key (env MFN_VERIFY_API_KEY)")
	fl.DurationVar(&f.verify.timeout, "verify-timeout", node.DefaultRoundCheckTimeout, "--verify-rounds: timeout of each request to --verify-server, > 0")
	fl.StringVar(&f.verify.ca, "verify-ca", "", "--verify-rounds: PEM file of the CA certificates that sign --verify-server's HTTPS certificate")
	fl.StringSliceVar(&f.verify.pins, "verify-pin", nil, "--verify-rounds: trust an HTTPS --verify-server whose certificate carries one of these coordinator keys (mfn-ed25519:<base64>, repeatable)")
	fl.StringVar(&f.verifyTrust.logKey, "log-key", "", `--verify-rounds: the audit log's verifier key "<name>+<hash>+<keydata>", or @FILE to read it`)
	fl.StringVar(&f.memberKeys, "member-keys", "", `--verify-rounds: file of coordinator member keys ("<member id> mfn-ed25519:<base64>" per line): require a majority of them to have cosigned each result's checkpoint`)
	fl.DurationVar(&f.verifyEvery, "verify-every", node.DefaultRoundCheckEvery, "--verify-rounds: time between checks of the rounds not settled yet, > 0")
	c.AddCommand(newNodeAcksCmd(env), newNodeRoundsCmd(env)) // node_rounds.go
	return c
}

const nodeAcksLong = `acks lists the acknowledgements a node recorded in its state directory:
for every round it took part in, the job, the round, the Raft log index and
the audit log leaf that hold its update, and the update's SHA-256. The leaf
index is what proves the update is in the audit log:

  mfn ctl audit bundle LEAF --out leaf.json
  mfn audit verify --bundle leaf.json --log-key @log.vkey

A "duplicate" record is a round whose acknowledgement was lost and that the
cluster reported as already stored; its indexes are unknown (0).`

func newNodeAcksCmd(env *cmdEnv) *cobra.Command {
	var stateDir string
	var asJSON bool
	c := &cobra.Command{
		Use:     "acks",
		Short:   "List the acknowledged updates recorded in a node's state directory",
		Long:    nodeAcksLong,
		Example: "  mfn node acks --state-dir state/site-07\n  mfn node acks --state-dir state/site-07 --json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if stateDir == "" {
				return usagef("--state-dir is required: the node's state directory")
			}
			if fi, err := os.Stat(stateDir); err != nil || !fi.IsDir() {
				return usagef("--state-dir %s: not a directory", stateDir)
			}
			st, err := node.OpenState(stateDir)
			if err != nil {
				return err
			}
			recs := st.Records()
			if asJSON {
				if recs == nil {
					recs = []node.Record{}
				}
				enc := json.NewEncoder(env.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(recs)
			}
			tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tROUND\tLOG INDEX\tLEAF\tUPDATE SHA-256\tACKED BY\tAT")
			for _, r := range recs {
				log, leaf := strconv.FormatUint(r.LogIndex, 10), strconv.FormatUint(r.LeafIndex, 10)
				if r.Duplicate {
					log, leaf = "duplicate", "-"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Job, r.Round, log, leaf, r.UpdateHash, r.Coordinator, r.AckedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&stateDir, "state-dir", "", "the node's state directory")
	c.Flags().BoolVar(&asJSON, "json", false, "print the records as a JSON array")
	return c
}

// parseMix parses "4,1,1,1".
func parseMix(s string) ([]float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) != node.NumRegimes {
		return nil, fmt.Errorf("want %d comma-separated weights, got %d", node.NumRegimes, len(parts))
	}
	out := make([]float64, len(parts))
	sum := 0.0
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(v >= 0) || v > 1e9 {
			return nil, fmt.Errorf("weight %q must be a number ≥ 0", p)
		}
		out[i] = v
		sum += v
	}
	if sum == 0 {
		return nil, errors.New("weights must not all be zero")
	}
	return out, nil
}

// config turns the flags into a node configuration; every error is a
// usage error naming the flag.
func (f *nodeFlags) config() (node.Config, slog.Level, error) {
	var lvl slog.Level
	cfg := node.DefaultConfig()
	if err := f.trace.validate(); err != nil {
		return cfg, lvl, err
	}
	switch {
	case f.identity == "":
		return cfg, lvl, usagef("--identity is required: the directory of this node's keys (create it with mfn keygen --role node --out DIR)")
	case f.cluster == "":
		return cfg, lvl, usagef("--cluster is required: the file listing the coordinators (see mfn node --help)")
	case f.stateDir == "":
		return cfg, lvl, usagef("--state-dir is required: where the node keeps its data cache and acknowledgements")
	case f.data != "" && f.standardize != node.StandardizeSite && f.standardize != node.StandardizeNone:
		return cfg, lvl, usagef("--standardize %q must be site or none", f.standardize)
	case f.data == "" && f.task != node.TaskMFNRegime && f.task != node.TaskMNIST:
		return cfg, lvl, usagef("--task %q must be %s or %s", f.task, node.TaskMFNRegime, node.TaskMNIST)
	case f.holdout < 0 || f.holdout >= 0.9:
		return cfg, lvl, usagef("--holdout %v must be in [0, 0.9)", f.holdout)
	case f.gridSize < 2 || f.gridSize > 1024:
		return cfg, lvl, usagef("--grid-size %d must be in [2, 1024]", f.gridSize)
	case f.steps < 1 || f.steps > 100000:
		return cfg, lvl, usagef("--steps %d must be in [1, 100000]", f.steps)
	case f.attackF < 1 || f.attackHonest < 2:
		return cfg, lvl, usagef("--attack-f %d must be ≥ 1 and --attack-honest %d ≥ 2", f.attackF, f.attackHonest)
	case f.backoffMin <= 0 || f.backoffMax < f.backoffMin:
		return cfg, lvl, usagef("--backoff-min %v must be > 0 and ≤ --backoff-max %v", f.backoffMin, f.backoffMax)
	case f.dialTimeout <= 0:
		return cfg, lvl, usagef("--dial-timeout %v must be > 0", f.dialTimeout)
	case f.workers < 0:
		return cfg, lvl, usagef("--workers %d must be ≥ 0", f.workers)
	case f.task == node.TaskMFNRegime && (f.samples < 2 || f.samples > 1000000):
		return cfg, lvl, usagef("--samples %d must be in [2, 1000000] for --task mfn-regime", f.samples)
	case f.task == node.TaskMNIST && (f.partitions < 1 || f.partition < 0 || f.partition >= f.partitions):
		return cfg, lvl, usagef("--partition %d must be in [0, --partitions=%d)", f.partition, f.partitions)
	case f.task == node.TaskMNIST && f.samples < 0:
		return cfg, lvl, usagef("--samples %d must be ≥ 0 for --task mnist (0 = the whole partition)", f.samples)
	case f.epochs < 1 || f.epochs > 10000:
		return cfg, lvl, usagef("--epochs %d must be in [1, 10000]", f.epochs)
	case f.batch < 1:
		return cfg, lvl, usagef("--batch %d must be ≥ 1", f.batch)
	case !(f.lr > 0) || f.lr > 100:
		return cfg, lvl, usagef("--lr %v must be in (0, 100]", f.lr)
	case !(f.momentum >= 0) || f.momentum >= 1:
		return cfg, lvl, usagef("--momentum %v must be in [0, 1)", f.momentum)
	case !(f.weightDecay >= 0):
		return cfg, lvl, usagef("--weight-decay %v must be ≥ 0", f.weightDecay)
	}
	if f.byzantine != "" && !slices.Contains(aggregate.AttackNames, f.byzantine) {
		return cfg, lvl, usagef("--byzantine %q: must be one of %s", f.byzantine, strings.Join(aggregate.AttackNames, ", "))
	}
	if _, err := aggregate.New(f.attackRule, aggregate.Params{F: f.attackF}); f.byzantine != "" && err != nil {
		return cfg, lvl, usagef("--attack-rule %q: %v", f.attackRule, err)
	}
	if f.httpAddr != "" {
		if _, _, err := net.SplitHostPort(f.httpAddr); err != nil {
			return cfg, lvl, usagef("--http-addr %q: must be host:port: %v", f.httpAddr, err)
		}
	}
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return cfg, lvl, usagef("--log-level %q: must be debug, info, warn or error", f.logLevel)
	}
	mix, err := parseMix(f.regimeMix)
	if err != nil {
		return cfg, lvl, usagef("--regime-mix %q: %v", f.regimeMix, err)
	}
	cl, err := node.LoadCluster(f.cluster)
	if err != nil {
		return cfg, lvl, usagef("--cluster: %v", err)
	}
	id, err := mfncrypto.LoadIdentity(f.identity)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return cfg, lvl, usagef("--identity %s: no node keys there (%v); create them with mfn keygen --role node --out %s", f.identity, err, f.identity)
	case err != nil:
		return cfg, lvl, usagef("--identity %s: %v", f.identity, err)
	case id.Role != mfncrypto.RoleNode:
		return cfg, lvl, usagef("--identity %s: is a %s identity; a node needs its own keys (mfn keygen --role node)", f.identity, id.Role)
	}
	cfg.NodeID, cfg.Identity, cfg.IdentityDir, cfg.Cluster, cfg.StateDir = f.id, id, f.identity, cl, f.stateDir
	cfg.Data = node.DataConfig{
		Task: f.task, Samples: f.samples, Proportions: mix, GridSize: f.gridSize, Steps: f.steps, Seed: f.dataSeed,
		HoldOut: f.holdout, Workers: f.workers, MNISTDir: f.mnistDir, Partition: f.partition, Partitions: f.partitions,
	}
	if f.data != "" {
		if _, err := os.Stat(f.data); err != nil {
			return cfg, lvl, usagef("--data %s: %v", f.data, err)
		}
		// With its own file the node joins jobs of --task when given,
		// otherwise any job whose model fits the file.
		cfg.Data = node.DataConfig{Seed: f.dataSeed, HoldOut: f.holdout, Workers: f.workers, File: node.FileData{
			Path: f.data, LabelColumn: f.labelColumn, FeatureColumns: f.featureColumns, Classes: f.classes,
			DropInvalid: f.dropInvalid, Standardize: f.standardize,
		}}
		if f.stats != "" || f.standardize == node.StandardizeJob {
			if f.stats == "" || f.standardize != node.StandardizeJob {
				return cfg, lvl, usagef("--stats and --standardize job go together")
			}
			st, err := readStats(f.stats)
			if err != nil {
				return cfg, lvl, usagef("--stats %s: %v", f.stats, err)
			}
			cfg.Data.File.Mean, cfg.Data.File.Std = st.Mean, st.Std
		}
		if f.taskSet {
			cfg.Data.Task = f.task
		}
	}
	if f.holdout == 0 {
		cfg.Data.HoldOut = -1
	}
	cfg.Train = node.TrainConfig{Epochs: f.epochs, Batch: f.batch, LR: f.lr, Momentum: f.momentum, WeightDecay: f.weightDecay}
	cfg.Byzantine, cfg.AttackF, cfg.AttackHonest, cfg.AttackRule = f.byzantine, f.attackF, f.attackHonest, f.attackRule
	cfg.Seed, cfg.BackoffMin, cfg.BackoffMax, cfg.DialTimeout = f.seed, f.backoffMin, f.backoffMax, f.dialTimeout
	// The remaining checks (samples, epochs, lr, ...) are the library's;
	// its messages name the Config field, which maps to the flag.
	if err := cfg.Data.Validate(); err != nil {
		return cfg, lvl, asUsage(err)
	}
	if err := cfg.Train.Validate(); err != nil {
		return cfg, lvl, asUsage(err)
	}
	if cfg.RoundCheck, err = f.roundCheck(); err != nil {
		return cfg, lvl, err
	}
	return cfg, lvl, nil
}

// roundCheck turns --verify-rounds and its options into the node's round
// check (nil without --verify-rounds); every error is a usage error
// naming the flag.
func (f *nodeFlags) roundCheck() (*node.RoundCheckConfig, error) {
	if !f.verifyRounds {
		return nil, nil
	}
	switch {
	case f.verify.server == "":
		return nil, usagef("--verify-rounds needs --verify-server: the URL of any coordinator member's HTTP API, e.g. https://c1:8080")
	case f.verify.apiKey == "":
		return nil, usagef("--verify-rounds needs --verify-api-key (or MFN_VERIFY_API_KEY): an API key with the auditor role")
	case f.verifyTrust.logKey == "":
		return nil, usagef("--verify-rounds needs --log-key: the audit log's verifier key, or @FILE")
	case f.verify.timeout <= 0:
		return nil, usagef("--verify-timeout %v must be > 0", f.verify.timeout)
	case f.verifyEvery <= 0:
		return nil, usagef("--verify-every %v must be > 0", f.verifyEvery)
	case f.verify.ca != "" && len(f.verify.pins) > 0:
		return nil, usagef("--verify-ca and --verify-pin are exclusive: choose one way to trust --verify-server")
	}
	verifier, _, err := f.verifyTrust.load()
	if err != nil {
		return nil, err
	}
	var members audit.MemberKeys
	if f.memberKeys != "" {
		keys, err := readKeysFile(f.memberKeys)
		if err != nil {
			return nil, usagef("--member-keys: %v", err)
		}
		members = audit.MemberKeys(keys)
	}
	cl, err := f.verify.client()
	if err != nil {
		// The shared client flags' messages name ctl's flags.
		var ue *usageError
		if errors.As(err, &ue) {
			return nil, usagef("%s", verifyFlagNames.Replace(ue.Error()))
		}
		return nil, err
	}
	return &node.RoundCheckConfig{Source: verifySource{apiRoundSource{cl}}, Verifier: verifier, Members: members,
		Every: f.verifyEvery, Timeout: f.verify.timeout}, nil
}

// verifySource is the source of mfn node rounds (node_rounds.go) that
// also says whether a round ended, so that a round still running spends
// none of its record's tries.
type verifySource struct{ apiRoundSource }

func (s verifySource) RoundEnded(ctx context.Context, job string, round uint64) (bool, error) {
	r, err := s.cl.Round(ctx, job, round)
	if err != nil {
		return false, err
	}
	return r.State == coordinator.RoundClosed || r.State == coordinator.RoundFailed, nil
}

// verifyFlagNames renames ctl's client flags to mfn node's.
var verifyFlagNames = strings.NewReplacer("--server", "--verify-server", "--ca", "--verify-ca", "--pin", "--verify-pin", "--timeout", "--verify-timeout")

func runNode(env *cmdEnv, f *nodeFlags) error {
	cfg, lvl, err := f.config()
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(env.stderr, &slog.HandlerOptions{Level: lvl}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Logger, cfg.Registry = logger, reg
	instance := cfg.NodeID
	if instance == "" {
		instance = cfg.Identity.NodeID()
	}
	tp, stopTracing, err := f.trace.start(telemetry.ServiceNode, instance, logger)
	if err != nil {
		return err
	}
	defer stopTracing()
	cfg.TracerProvider = tp.TracerProvider()
	lastTenth := -1
	cfg.Progress = func(done, total int) {
		if tenth := 10 * done / max(total, 1); tenth != lastTenth {
			lastTenth = tenth
			logger.Info("simulating local data", "done", done, "total", total)
		}
	}
	if cfg.Data.File.Path != "" {
		// Check the site's file before anything else: a file the node
		// cannot use stops it here, naming the row or column.
		l, err := node.LoadFile(env.ctx, cfg.Data)
		switch {
		case node.NeedsClasses(cfg.Data, err):
			// Categorical labels without --classes: the node maps them by
			// the class list of the first job whose schema has one.
		case err != nil:
			return fmt.Errorf("--data: %w", err)
		default:
			logger.Info("site data", "file", cfg.Data.File.Path, "rows", l.Data.Len(), "features", l.Data.Dim,
				"classes", l.Data.Classes, "label_counts", fmt.Sprint(l.Data.LabelCounts()), "dropped_invalid_rows", l.Dropped)
		}
	}
	a, err := node.New(cfg)
	if err != nil {
		if errors.Is(err, node.ErrStateFile) {
			return err
		}
		return asUsage(err)
	}
	var hsrv *http.Server
	if f.httpAddr != "" {
		ln, err := net.Listen("tcp", f.httpAddr)
		if err != nil {
			return fmt.Errorf("--http-addr %s: %w", f.httpAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		hsrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go hsrv.Serve(ln)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			hsrv.Shutdown(ctx)
		}()
	}
	logger.Info("node starting", "node", a.NodeID(), "coordinators", len(cfg.Cluster.Members), "state_dir", cfg.StateDir,
		"task", cfg.Data.Task, "byzantine", cfg.Byzantine, "recorded_rounds", len(a.State().Records()),
		"verify_rounds", f.verifyRounds)
	if err := a.Run(env.ctx); err != nil {
		return err
	}
	logger.Info("node stopped", "recorded_rounds", len(a.State().Records()))
	return nil
}
