package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/console"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/internal/e2e"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/privacy"
	"github.com/mfn/mfn/serveropt"
)

func init() { registerCommand(newDemoCmd) }

const demoLong = `demo runs a whole MFN federation on this machine, with the real components,
and shows it working:

  - a coordinator cluster of 3 members replicating with Raft over mutual-TLS
    TCP on 127.0.0.1, each with its own bbolt store in a temporary directory
    and its own QUIC listener (the members run inside this process; ports are
    chosen free);
  - 10 edge nodes, each simulating its own MFN fields (a site-specific mix of
    the four regimes) and training a small model on them; 2 of them are
    Byzantine and send crafted updates (ALIE by default);
  - a training job of 20 rounds combined with a robust rule (trimmed mean by
    default), with a live table of every round: updates used and rejected,
    Byzantine updates that got through, the global model's accuracy on the
    cluster's held-out test set, and the leader;
  - the leader killed once mid-run (its Raft connections cut, its QUIC
    server closed, no leadership hand-over): a new leader is elected, the
    nodes find it and the job goes on;
  - at the end the audit log is exported and verified offline (every
    checkpoint signature, every node signature, the Merkle tree and the
    consistency of successive checkpoints), and every update a node saw
    acknowledged is looked up in it.

The summary compares the final accuracy with a FedAvg reference: the same
job, on the same data and seeds, without the Byzantine nodes, computed in
this process. --json writes the summary for scripts. Ctrl-C stops everything
and removes the temporary directory (--keep DIR keeps keys, node states,
Raft data and the audit export in DIR instead).

Your own data: --data FILE (CSV, Parquet, .npy/.npz, IDX, a folder of MFN
fields) federates that file instead of simulated fields. A seeded
--test-fraction of its rows is kept by the cluster to measure the global
model and never given to a node; the rest is dealt to the nodes by
--partition (iid, or dirichlet:ALPHA for label-skewed sites), each node
loading its share from a file in its own state directory. --model picks
the job's model (softmax, mlp:H1,H2,..., cnn:mnist). The summary adds the
centralized reference: the same model trained on the nodes' pooled
training rows with the same budget, measured on the same test part.
--model-out writes the final global model as an mfn-model/1 file for
mfn predict.

--optimizer NAME[:k=v,...] gives the job a server optimizer applied after
the rule (fedavgm, fedadam, fedyogi, fedadagrad; keys lr, beta1, beta2,
tau, momentum): the model moves by its step on each round's aggregate,
and its state is replicated, so the leader's crash does not reset it.

--hold keeps the cluster running after the summary until Ctrl-C: every
coordinator serves its operator API and the web console on 127.0.0.1 (a
port chosen free) with an operator API key made for this run, and the
demo prints a one-time console login link (valid once, for minutes) to
the leader; --json then adds it as console_url, written before the hold.

The command fails (exit 1) if an acknowledged update is missing from the
audit log, counted twice, or the audit log does not verify.`

const demoExample = `  mfn demo
  mfn demo --no-chaos --rounds 10
  mfn demo --attack gaussian --rule fedavg         # watch a non-robust rule suffer
  mfn demo --rule nnm+krum --byzantine 3 --json summary.json
  mfn demo --rounds 5 --hold                       # then open the printed console link; Ctrl-C stops
  mfn demo --dp-epsilon 8                          # local DP at every node; prints the ε spent
  mfn demo --dp-epsilon 8 --dp-sample-rate 0.5 --nodes 20   # each round goes to a secret sample of about half the nodes
  mfn demo --optimizer fedadam:lr=0.01             # FedAdam after the trimmed mean
  mfn demo --keep demo-out && mfn audit verify-log demo-out/audit --log-key @demo-out/log.vkey
  mfn demo --rounds 5 --trace-file spans.jsonl    # one JSON span per line from every coordinator and node
  mfn demo --otlp-endpoint http://127.0.0.1:4318   # send the spans to Jaeger or any OTLP/HTTP collector
  mfn demo --data site.csv --label-column diagnosis --classes benign,malignant \
    --partition dirichlet:0.5 --model mlp:16 --model-out model.json`

type demoFlags struct {
	nodes, byzantine, rounds int
	attack, rule             string
	noChaos, hold            bool
	jsonPath, keep, logPath  string
	seed                     uint64
	samples, hidden          int
	deadline, timeout        time.Duration
	trace                    traceFlags
	// Your own data (--data and its options).
	data, labelColumn, partition, model, modelOut string
	featureColumns, classes                       []string
	dropInvalid                                   bool
	testFraction                                  float64
	dpEpsilon                                     float64
	dpSampleRate                                  float64
	optimizer                                     string
}

func newDemoCmd(env *cmdEnv) *cobra.Command {
	var f demoFlags
	c := &cobra.Command{
		Use:     "demo",
		Short:   "Run a complete federation locally: 3 coordinators, 10 nodes, Byzantine attackers, a leader crash, an audit",
		Long:    demoLong,
		Example: demoExample,
		Args:    cobra.NoArgs,
		RunE:    func(*cobra.Command, []string) error { return runDemo(env, &f) },
	}
	d := e2e.DefaultOptions()
	fl := c.Flags()
	f.trace.register(fl)
	fl.IntVar(&f.nodes, "nodes", d.Nodes, "number of edge nodes (1-100)")
	fl.IntVar(&f.byzantine, "byzantine", d.Byzantine, "how many of the nodes are Byzantine (0 to nodes-1)")
	fl.StringVar(&f.attack, "attack", d.Attack, "the Byzantine nodes' attack: "+strings.Join(aggregate.AttackNames, ", "))
	fl.StringVar(&f.rule, "rule", d.Rule, "aggregation rule or pipeline: "+strings.Join(aggregate.RuleNames, ", ")+" (pre-steps: nnm+, bucketing+, static-clipping+)")
	fl.IntVar(&f.rounds, "rounds", d.Rounds, "training rounds (1-10000)")
	fl.BoolVar(&f.noChaos, "no-chaos", false, "do not kill the leader mid-run")
	fl.BoolVar(&f.hold, "hold", false, "keep the cluster running after the summary until Ctrl-C, and print a one-time web console login link")
	fl.StringVar(&f.jsonPath, "json", "", "write the summary as JSON to this file")
	fl.StringVar(&f.keep, "keep", "", "keep everything (keys, states, raft data, audit export) in this new or empty directory")
	fl.StringVar(&f.logPath, "log", "", "write the components' JSON logs to this file")
	fl.Uint64Var(&f.seed, "seed", d.Seed, "seed of the data, training and attacks")
	fl.IntVar(&f.samples, "samples", d.Samples, "local simulations per node (2-100000)")
	fl.IntVar(&f.hidden, "hidden", d.Hidden, "hidden units of the MLP (0: softmax regression)")
	fl.DurationVar(&f.deadline, "round-deadline", 10*time.Second, "soft deadline of each round (rounds close early once every node submitted)")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up if the job has not finished after this long")
	fl.StringVar(&f.data, "data", "", "federate this file (.csv, .parquet, .npy, .npz, IDX, folder of MFN fields) instead of simulated fields")
	fl.StringVar(&f.labelColumn, "label-column", "label", "label column of a --data table")
	fl.StringSliceVar(&f.featureColumns, "feature-columns", nil, "feature columns of a --data table (default: every column but the label)")
	fl.StringSliceVar(&f.classes, "classes", nil, "class list of --data, index = class id (default: integer labels 0..K-1)")
	fl.BoolVar(&f.dropInvalid, "drop-invalid", false, "drop --data rows with NaN, Inf, empty or unparsable values instead of failing")
	fl.StringVar(&f.partition, "partition", "iid", "how --data's training rows are dealt to the nodes: iid or dirichlet:ALPHA")
	fl.StringVar(&f.model, "model", "", "model for --data: softmax, mlp:H1,H2,... or cnn:mnist (default: mlp:--hidden, softmax if 0)")
	fl.Float64Var(&f.testFraction, "test-fraction", 0.2, "fraction of --data kept by the cluster as the test part (0 to 1, exclusive)")
	fl.StringVar(&f.modelOut, "model-out", "", "with --data: write the final global model to this file (mfn-model/1, for mfn predict)")
	fl.Float64Var(&f.dpEpsilon, "dp-epsilon", 0, "train with local differential privacy: target ε over --rounds (clip 0.5, δ 1e-5; 0: no DP)")
	fl.Float64Var(&f.dpSampleRate, "dp-sample-rate", 1, "with --dp-epsilon: announce each round to a secret random sample of the nodes, each with this probability, in (0, 1]")
	fl.StringVar(&f.optimizer, "optimizer", "", "the job's server optimizer after the rule: NAME[:k=v,...], NAME fedavgm, fedadam, fedyogi or fedadagrad, keys lr, beta1, beta2, tau, momentum (default none)")
	return c
}

func (f *demoFlags) options() (e2e.Options, error) {
	o := e2e.DefaultOptions()
	switch {
	case f.nodes < 1 || f.nodes > 100:
		return o, usagef("--nodes %d must be in [1, 100]", f.nodes)
	case f.byzantine < 0 || f.byzantine >= f.nodes:
		return o, usagef("--byzantine %d must be in [0, --nodes-1=%d]", f.byzantine, f.nodes-1)
	case f.rounds < 1 || f.rounds > 10000:
		return o, usagef("--rounds %d must be in [1, 10000]", f.rounds)
	case f.samples < 2 || f.samples > 100000:
		return o, usagef("--samples %d must be in [2, 100000]", f.samples)
	case f.hidden < 0 || f.hidden > 4096:
		return o, usagef("--hidden %d must be in [0, 4096]", f.hidden)
	case f.deadline < 100*time.Millisecond || f.deadline > time.Hour:
		return o, usagef("--round-deadline %v must be in [100ms, 1h]", f.deadline)
	case f.timeout <= 0:
		return o, usagef("--timeout %v must be > 0", f.timeout)
	}
	if err := f.trace.validate(); err != nil {
		return o, err
	}
	if f.byzantine > 0 && !slices.Contains(aggregate.AttackNames, f.attack) {
		return o, usagef("--attack %q: must be one of %s", f.attack, strings.Join(aggregate.AttackNames, ", "))
	}
	if _, err := aggregate.New(f.rule, aggregate.Params{F: f.byzantine}); err != nil {
		return o, usagef("--rule %q: %v", f.rule, err)
	}
	probe := e2e.DefaultOptions()
	probe.Nodes, probe.Byzantine, probe.Rule, probe.Attack = f.nodes, f.byzantine, f.rule, f.attack
	if err := probe.Validate(); err != nil {
		return o, usagef("--rule %q with --nodes %d and --byzantine %d: %v", f.rule, f.nodes, f.byzantine, err)
	}
	if f.data != "" {
		if _, err := os.Stat(f.data); err != nil {
			return o, usagef("--data %s: %v", f.data, err)
		}
		if !(f.testFraction > 0 && f.testFraction < 1) {
			return o, usagef("--test-fraction %v must be in (0, 1)", f.testFraction)
		}
		if _, err := learn.ParsePartition(f.partition); err != nil {
			return o, usagef("--partition %q: must be iid or dirichlet:ALPHA with ALPHA > 0", f.partition)
		}
		if f.model != "" {
			if _, err := learn.ParseArch(f.model, 784, 10); err != nil {
				return o, usagef("--model %q: must be softmax, mlp:H1,H2,... or cnn:mnist", f.model)
			}
		}
		o.Data, o.LabelColumn, o.FeatureColumns, o.Classes, o.DropInvalid = f.data, f.labelColumn, f.featureColumns, f.classes, f.dropInvalid
		o.Partition, o.Model, o.TestFraction, o.ModelOut = f.partition, f.model, f.testFraction, f.modelOut
	} else if f.model != "" || f.modelOut != "" {
		return o, usagef("--model and --model-out need --data (the simulated task's model is set by --hidden)")
	}
	if !(f.dpSampleRate > 0 && f.dpSampleRate <= 1) {
		return o, usagef("--dp-sample-rate %v: must be in (0, 1]", f.dpSampleRate)
	}
	if f.dpSampleRate != 1 && f.dpEpsilon == 0 {
		return o, usagef("--dp-sample-rate needs --dp-epsilon")
	}
	if f.optimizer != "" {
		spec, err := serveropt.Parse(f.optimizer)
		if err != nil {
			return o, usagef("--optimizer %q: %v", f.optimizer, strings.TrimPrefix(err.Error(), "serveropt: invalid optimizer: "))
		}
		o.Optimizer = &spec
	}
	if f.dpEpsilon != 0 {
		dp := &privacy.Config{Mode: privacy.ModeLocal, Clip: 0.5, TargetEpsilon: f.dpEpsilon, Delta: 1e-5}
		if f.dpSampleRate != 1 {
			dp.SampleRate = f.dpSampleRate
		}
		if err := dp.Validate(); err != nil {
			return o, usagef("--dp-epsilon %v: %v", f.dpEpsilon, err)
		}
		if _, err := privacy.NoiseMultiplier(f.dpEpsilon, dp.Rate(), f.rounds, dp.Delta); err != nil {
			return o, usagef("--dp-epsilon %v over --rounds %d: %v", f.dpEpsilon, f.rounds, err)
		}
		o.DP = dp
	}
	if f.keep != "" {
		entries, err := os.ReadDir(f.keep)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return o, usagef("--keep %s: %v", f.keep, err)
		}
		if len(entries) > 0 {
			return o, usagef("--keep %s: directory is not empty", f.keep)
		}
		o.Dir, o.Keep = f.keep, true
	}
	o.Nodes, o.Byzantine, o.Attack, o.Rule, o.Rounds = f.nodes, f.byzantine, f.attack, f.rule, f.rounds
	o.Chaos = !f.noChaos && o.Rounds >= 2
	o.Seed, o.Samples, o.Hidden, o.RoundDeadline, o.Timeout = f.seed, f.samples, f.hidden, f.deadline, f.timeout
	o.Hold = f.hold
	return o, nil
}

func runDemo(env *cmdEnv, f *demoFlags) error {
	o, err := f.options()
	if err != nil {
		return err
	}
	if f.logPath != "" {
		lf, err := os.Create(f.logPath)
		if err != nil {
			return usagef("--log %s: %v", f.logPath, err)
		}
		defer lf.Close()
		o.Log = lf
	}
	// Every component gets its own tracer provider (service name and id
	// in its resource), all exporting to the same destinations.
	tp, stopTracing, err := f.trace.start("mfn-demo", "demo", slog.New(slog.NewTextHandler(env.stderr, nil)))
	if err != nil {
		return err
	}
	defer stopTracing()
	if tp.TracerProvider() != nil {
		o.Tracing = tp.For
	}
	out := env.stdout
	var mu sync.Mutex
	printf := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format, args...)
		mu.Unlock()
	}
	attack := "none"
	if o.Byzantine > 0 {
		attack = o.Attack
	}
	printf("MFN demo: %d coordinators, %d nodes (%d Byzantine, attack %s), rule %s, %d rounds, chaos %v\n",
		o.Members, o.Nodes, o.Byzantine, attack, o.Rule, o.Rounds, o.Chaos)
	lastPct := -1
	o.OnProgress = func(done, total int) {
		pct := 100 * done / max(total, 1)
		if pct/25 != lastPct/25 || done == total && lastPct != 100 {
			lastPct = pct
			printf("  simulating local data: %d/%d simulations\n", done, total)
		}
	}
	stages := map[string]string{
		"cluster":  "starting 3 coordinators (Raft over mutual TLS, bbolt, QUIC) on 127.0.0.1",
		"nodes":    "starting the nodes",
		"job":      "creating the job",
		"audit":    "exporting and verifying the audit log",
		"training": "training",
	}
	if o.Data != "" {
		stages["data"] = fmt.Sprintf("dealing %s to %d nodes (partition %s; %.0f%% of the rows kept as the test part)", o.Data, o.Nodes, o.Partition, 100*o.TestFraction)
		stages["centralized"] = "training the centralized reference (the nodes' pooled training rows, same model and budget)"
	}
	o.OnStage = func(s string) {
		if msg, ok := stages[s]; ok {
			printf("%s\n", msg)
		}
		if s == "training" {
			printf("\n%5s  %7s  %4s  %8s  %8s  %8s  %6s  %7s\n", "round", "updates", "used", "rejected", "byz-used", "accuracy", "leader", "time")
		}
	}
	o.OnRound = func(r e2e.RoundReport) {
		acc := "-"
		if !math.IsNaN(r.Accuracy) {
			acc = fmt.Sprintf("%.3f", r.Accuracy)
		}
		if r.Failed {
			printf("%5d  %7d  failed: %s  (leader %s, %.1fs)\n", r.Round, r.Updates, r.Reason, r.Leader, r.Elapsed.Seconds())
			return
		}
		printf("%5d  %7d  %4d  %8d  %8d  %8s  %6s  %6.1fs\n", r.Round, r.Updates, r.Used, r.Rejected, r.ByzantineUsed, acc, r.Leader, r.Elapsed.Seconds())
	}
	o.OnLeaderKilled = func(id string) {
		printf("  *** killing the leader %s: Raft connections cut, QUIC server closed, no hand-over ***\n", id)
	}
	// The summary and its JSON file: at the end, or with --hold before
	// the hold (with the console link).
	var reported bool
	var reportErr error
	report := func(sum *e2e.Summary) {
		reported = true
		mu.Lock()
		printDemoSummary(out, sum)
		mu.Unlock()
		if f.jsonPath != "" {
			reportErr = writeDemoJSON(f.jsonPath, sum)
		}
	}
	o.OnHold = func(sum *e2e.Summary) {
		report(sum)
		if reportErr != nil {
			printf("\nwriting %s failed: %v\n", f.jsonPath, reportErr)
		}
		printf("\nthe cluster keeps running; web console (one-time login link, valid once for %v):\n  %s\npress Ctrl-C to stop\n",
			console.DefaultTokenTTL, sum.ConsoleURL)
	}
	sum, err := e2e.Run(env.ctx, o)
	if err != nil {
		if env.ctx.Err() != nil {
			return fmt.Errorf("demo interrupted; every component was stopped and the temporary files removed")
		}
		return err
	}
	if !reported {
		report(sum)
	} else {
		printf("stopped: every component was stopped\n")
	}
	if reportErr != nil {
		return reportErr
	}
	var problems []string
	if !sum.AuditVerified {
		problems = append(problems, "the audit log did not verify: "+sum.AuditError)
	}
	if sum.LostUpdates > 0 {
		problems = append(problems, fmt.Sprintf("%d acknowledged updates are missing from the audit log", sum.LostUpdates))
	}
	if sum.DuplicateUpdates > 0 {
		problems = append(problems, fmt.Sprintf("%d updates are in the audit log twice", sum.DuplicateUpdates))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// writeDemoJSON writes the summary to path atomically.
func writeDemoJSON(path string, sum *e2e.Summary) error {
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomically(context.Background(), path, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

func printDemoSummary(w io.Writer, s *e2e.Summary) {
	fmt.Fprintf(w, "\nsummary\n")
	fmt.Fprintf(w, "  rounds completed        %d of %d (%d failed)\n", s.RoundsCompleted, s.Rounds, s.RoundsFailed)
	fmt.Fprintf(w, "  final accuracy          %.3f   (chance %.3f)\n", s.FinalAccuracy, s.ChanceAccuracy)
	fmt.Fprintf(w, "  FedAvg reference        %.3f   (same data and seeds, no Byzantine nodes)\n", s.FedAvgReferenceAccuracy)
	if s.CentralizedReferenceAccuracy != nil {
		fmt.Fprintf(w, "  centralized reference   %.3f   (%s on the pooled training rows, same budget; %d test rows of %s, partition %s)\n",
			*s.CentralizedReferenceAccuracy, s.Model, s.TestSamples, s.DataFile, s.Partition)
	}
	if s.ModelFile != "" {
		fmt.Fprintf(w, "  model file              %s  (use: mfn predict --model %s --data new.csv)\n", s.ModelFile, s.ModelFile)
	}
	fmt.Fprintf(w, "  Byzantine updates used  %d      (%d Byzantine nodes, attack %s, rule %s)\n", s.ByzantineUsed, s.ByzantineNodes, s.Attack, s.Rule)
	if s.Optimizer != "" {
		fmt.Fprintf(w, "  server optimizer        %s   (after the rule; the FedAvg reference has none)\n", s.Optimizer)
	}
	if s.KilledLeader != "" {
		fmt.Fprintf(w, "  leader changes          %d      (killed %s; new leader after %.1fs)\n", s.LeaderChanges, s.KilledLeader, s.FailoverSecs)
	} else {
		fmt.Fprintf(w, "  leader changes          %d\n", s.LeaderChanges)
	}
	if s.Privacy != nil {
		fmt.Fprint(w, privacyLine(coordinator.Job{Privacy: s.Privacy}))
	}
	fmt.Fprintf(w, "  acknowledged updates    %d\n", s.AcknowledgedUpdates)
	fmt.Fprintf(w, "  updates in audit log    %d      (lost %d, duplicated %d)\n", s.UpdatesInLog, s.LostUpdates, s.DuplicateUpdates)
	verified := "yes"
	if !s.AuditVerified {
		verified = "NO: " + s.AuditError
	}
	fmt.Fprintf(w, "  audit log verified      %s   (%d checkpoints)\n", verified, s.Checkpoints)
	fmt.Fprintf(w, "  rounds attested         %d of %d (result re-derived and cosigned by every member)\n", s.RoundsAttested, s.RoundsCompleted)
	if s.AuditDir != "" {
		fmt.Fprintf(w, "  audit export            %s  (verify: mfn audit verify-log %s --log-key @%s)\n", s.AuditDir, s.AuditDir, s.LogVerifierKey)
	}
	fmt.Fprintf(w, "  time                    %.1fs training, %.1fs in all\n", s.TrainingSecs, s.TotalSecs)
}
