package e2e

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/internal/telemetry"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/node"
	"github.com/mfn/mfn/privacy"
	"github.com/mfn/mfn/serveropt"
)

// JobID is the id of the federation's training job.
const JobID = "demo"

// Origin is the demo cluster's origin (the audit log key's name).
const Origin = "mfn.demo/cluster"

// Options configures a federation run. DefaultOptions gives the demo's.
type Options struct {
	Members   int    // coordinators (≥ 1)
	Nodes     int    // edge nodes (≥ 1)
	Byzantine int    // how many of the nodes are Byzantine (< Nodes)
	Attack    string // their attack (aggregate.AttackNames)
	Rule      string // the job's aggregation rule or pipeline (aggregate.New)
	Rounds    int    // rounds of the job (≥ 1)
	// Chaos kills the leader once, after round ChaosAfter closed (zero
	// means half of Rounds).
	Chaos      bool
	ChaosAfter int
	// Samples is each node's number of local simulations, TestPerRegime
	// the size of the cluster's held-out test set per regime.
	Samples       int
	TestPerRegime int
	// Hidden is the MLP's hidden width; zero means softmax regression.
	Hidden int
	Train  node.TrainConfig
	// RoundDeadline is each round's soft deadline; zero means 10 s. Rounds
	// close as soon as every node submitted; the deadline matters when
	// updates are missing, and it bounds how long a new leader's
	// announcement of an open round reaches nodes that subscribe late.
	RoundDeadline time.Duration
	// Seed drives data, training and attacks.
	Seed uint64
	// Dir is the working directory (keys, data directories, node state,
	// audit export); empty means a new temporary directory, removed at the
	// end unless Keep.
	Dir  string
	Keep bool
	// Reference computes the FedAvg reference accuracy (honest nodes only,
	// in process, same data and seeds).
	Reference bool
	// Timeout bounds the training (zero means 10 minutes).
	Timeout time.Duration
	// Log receives the components' JSON logs; nil discards them.
	Log io.Writer
	// OnRound is called when a round of the job ends.
	OnRound func(RoundReport)
	// OnStage is called as the run moves through its stages.
	OnStage func(stage string)
	// OnProgress reports the local data simulation (done of total).
	OnProgress func(done, total int)
	// OnLeaderKilled is called when the chaos kill happens.
	OnLeaderKilled func(id string)
	// Tracing, when set, gives each component its tracer provider
	// (service telemetry.ServiceCoordinator or ServiceNode, and its id);
	// nil means no tracing.
	Tracing func(service, id string) trace.TracerProvider

	// Data, when set, federates this file (any format package sitedata
	// reads) instead of the simulated regime task: a TestFraction part
	// (zero means 0.2, split with Seed) is kept by the cluster to measure
	// the global model and never given to a node; the rest is dealt to
	// the nodes by Partition ("iid", the default, or "dirichlet:ALPHA"),
	// each node loading its share from a file in its own state directory.
	// LabelColumn, FeatureColumns, Classes and DropInvalid say how to read
	// the file (see sitedata.Options). Samples and TestPerRegime are then
	// unused.
	Data           string
	LabelColumn    string
	FeatureColumns []string
	Classes        []string
	DropInvalid    bool
	Partition      string
	TestFraction   float64
	// Model is the job's model spec (learn.ParseArch) for Data; empty
	// means softmax, or mlp:Hidden when Hidden > 0.
	Model string
	// ModelOut, when set with Data, receives the final global model as an
	// mfn-model/1 file (usable with mfn predict).
	ModelOut string
	// DP, when set, is the job's dp block (docs/PRIVACY.md); the summary
	// then reports the job's privacy with the ε spent.
	DP *privacy.Config
	// Optimizer, when set, is the job's server optimizer (package
	// serveropt), applied after the rule.
	Optimizer *serveropt.Spec

	// Hold keeps the cluster running after the summary: Run mints a
	// one-time console login link on the leader (Summary.ConsoleURL),
	// calls OnHold with the summary, and returns it once ctx is done
	// (with a nil error: cancelling ctx is how a hold ends).
	Hold   bool
	OnHold func(*Summary)
}

// DefaultOptions is the demo: 3 coordinators, 10 nodes of which 2 run
// ALIE, 20 rounds of the MFN regime task under trimmed mean, the leader
// killed once.
func DefaultOptions() Options {
	return Options{
		Members: 3, Nodes: 10, Byzantine: 2, Attack: "alie", Rule: "trimmed-mean", Rounds: 20,
		Chaos: true, Samples: 60, TestPerRegime: 50, Hidden: 16,
		Train: node.TrainConfig{Epochs: 1, Batch: 16, LR: 0.05, Momentum: 0.9},
		Seed:  1, Reference: true,
	}
}

// Validate names the first bad option.
func (o *Options) Validate() error {
	switch {
	case o.Members < 1 || o.Members > 7:
		return fmt.Errorf("e2e: Members %d must be in [1, 7]", o.Members)
	case o.Nodes < 1 || o.Nodes > 100:
		return fmt.Errorf("e2e: Nodes %d must be in [1, 100]", o.Nodes)
	case o.Byzantine < 0 || o.Byzantine >= o.Nodes:
		return fmt.Errorf("e2e: Byzantine %d must be in [0, Nodes=%d)", o.Byzantine, o.Nodes)
	case o.Rounds < 1 || o.Rounds > 10000:
		return fmt.Errorf("e2e: Rounds %d must be in [1, 10000]", o.Rounds)
	case o.Data == "" && (o.Samples < 2 || o.TestPerRegime < 1):
		return fmt.Errorf("e2e: Samples %d must be ≥ 2 and TestPerRegime %d ≥ 1", o.Samples, o.TestPerRegime)
	case o.Hidden < 0:
		return fmt.Errorf("e2e: Hidden %d must be ≥ 0", o.Hidden)
	case o.ChaosAfter < 0 || o.ChaosAfter >= o.Rounds && o.Chaos && o.ChaosAfter != 0:
		return fmt.Errorf("e2e: ChaosAfter %d must be in [0, Rounds=%d)", o.ChaosAfter, o.Rounds)
	case o.Data != "" && (o.TestFraction < 0 || o.TestFraction >= 1):
		return fmt.Errorf("e2e: TestFraction %v must be in [0, 1)", o.TestFraction)
	case o.Data == "" && (o.Model != "" || o.ModelOut != ""):
		return fmt.Errorf("e2e: Model and ModelOut need Data (the regime task's model is set by Hidden)")
	case o.Chaos && o.Members < 3:
		return fmt.Errorf("e2e: Chaos needs at least 3 members (a quorum must survive), have %d", o.Members)
	}
	if o.Data != "" {
		if _, err := learn.ParsePartition(o.partition()); err != nil {
			return fmt.Errorf("e2e: Partition: %w", err)
		}
	}
	if o.Byzantine > 0 && !slices.Contains(aggregate.AttackNames, o.Attack) {
		return fmt.Errorf("e2e: Attack %q is not one of %v", o.Attack, aggregate.AttackNames)
	}
	rule, err := aggregate.New(o.Rule, aggregate.Params{F: o.Byzantine})
	if err != nil {
		return fmt.Errorf("e2e: Rule %q: %w", o.Rule, err)
	}
	// Rules state their requirement on n and f (Krum needs n > 2f+2, ...):
	// try the rule on as many vectors as there are nodes.
	probe := make([][]float64, o.Nodes)
	for i := range probe {
		probe[i] = []float64{float64(i), 1}
	}
	if _, _, err := rule.Aggregate(probe, nil); errors.Is(err, aggregate.ErrRequirement) {
		return fmt.Errorf("e2e: Rule %q with %d nodes and f = %d Byzantine: %w", o.Rule, o.Nodes, o.Byzantine, err)
	}
	return o.Train.Validate()
}

// RoundReport is one ended round of the job, for the live table.
type RoundReport struct {
	Round    uint64
	Failed   bool
	Reason   string // why it failed
	Updates  int    // updates the round held
	Used     int    // used by the rule
	Rejected int    // rejected by the rule
	// ByzantineUsed counts the Byzantine nodes' updates the rule used.
	ByzantineUsed int
	Accuracy      float64 // global test accuracy after the round (NaN if unknown)
	Leader        string  // member leading when the round ended
	Elapsed       time.Duration
}

// Summary is the outcome of a run (the demo's --json output).
type Summary struct {
	RoundsCompleted         int     `json:"rounds_completed"`
	FinalAccuracy           float64 `json:"final_accuracy"`
	FedAvgReferenceAccuracy float64 `json:"fedavg_reference_accuracy"`
	LeaderChanges           int     `json:"leader_changes"`
	AcknowledgedUpdates     int     `json:"acknowledged_updates"`
	UpdatesInLog            int     `json:"updates_in_log"`
	LostUpdates             int     `json:"lost_updates"`
	DuplicateUpdates        int     `json:"duplicate_updates"`
	AuditVerified           bool    `json:"audit_verified"`
	ByzantineNodes          int     `json:"byzantine_nodes"`
	Rule                    string  `json:"rule"`
	// Optimizer is the job's server optimizer as stored (defaults
	// filled in), empty without one.
	Optimizer string `json:"optimizer,omitempty"`

	Attack         string  `json:"attack"`
	Nodes          int     `json:"nodes"`
	Rounds         int     `json:"rounds"`
	RoundsFailed   int     `json:"rounds_failed"`
	ByzantineUsed  int     `json:"byzantine_updates_used"`
	Checkpoints    int     `json:"checkpoints"`
	KilledLeader   string  `json:"killed_leader,omitempty"`
	FailoverSecs   float64 `json:"failover_seconds,omitempty"`
	TrainingSecs   float64 `json:"training_seconds"`
	TotalSecs      float64 `json:"total_seconds"`
	AuditError     string  `json:"audit_error,omitempty"`
	AuditDir       string  `json:"audit_dir,omitempty"`
	LogVerifierKey string  `json:"log_verifier_key,omitempty"`
	ChanceAccuracy float64 `json:"chance_accuracy"`
	// RoundsAttested counts the rounds whose result leaf every member
	// re-derived and cosigned.
	RoundsAttested int `json:"rounds_attested"`

	// With Options.Data: the file, the partition, the model spec, the
	// rows of the held-out test part (where FinalAccuracy is measured) and
	// the centralized reference (learn.CentralizedReference: the same
	// model trained on the nodes' pooled training rows with the same
	// budget), and the model file written (Options.ModelOut).
	DataFile                     string   `json:"data_file,omitempty"`
	Partition                    string   `json:"partition,omitempty"`
	Model                        string   `json:"model,omitempty"`
	TestSamples                  int      `json:"test_samples,omitempty"`
	CentralizedReferenceAccuracy *float64 `json:"centralized_reference_accuracy,omitempty"`
	ModelFile                    string   `json:"model_file,omitempty"`
	// Privacy is the DP job's privacy (ε spent) when Options.DP is set.
	Privacy *coordinator.JobPrivacy `json:"privacy,omitempty"`
	// ConsoleURL is, with Options.Hold, a one-time login link to the web
	// console of the leader (valid once, for minutes).
	ConsoleURL string `json:"console_url,omitempty"`
}

// Run starts the coordinator cluster and the nodes, runs the job to its
// end (killing the leader once with Chaos), exports and verifies the audit
// log, and returns the summary. Everything it started is stopped, and a
// temporary Dir removed, before it returns — also when ctx is cancelled,
// in which case it returns ctx.Err().
func Run(ctx context.Context, o Options) (_ *Summary, err error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.RoundDeadline == 0 {
		o.RoundDeadline = 10 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Chaos && o.ChaosAfter == 0 {
		o.ChaosAfter = max(1, o.Rounds/2)
	}
	stage := func(s string) {
		if o.OnStage != nil {
			o.OnStage(s)
		}
	}
	start := time.Now()
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "mfn-demo-*"); err != nil {
			return nil, err
		}
		if !o.Keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	logger := slog.New(slog.NewJSONHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// Keys: coordinators, the audit log key, nodes.
	stage("keys")
	coordKeys := make([]*crypto.Identity, o.Members)
	for i := range coordKeys {
		if coordKeys[i], err = crypto.GenerateIdentity(crypto.RoleCoordinator, crand.Reader); err != nil {
			return nil, err
		}
	}
	skey, vkey, err := audit.GenerateLogKey(Origin, crand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := audit.NewLogSigner(skey)
	if err != nil {
		return nil, err
	}
	verifier, err := audit.NewLogVerifier(vkey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "log.vkey"), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	nodeKeys := make([]*crypto.Identity, o.Nodes)
	for i := range nodeKeys {
		if nodeKeys[i], err = crypto.GenerateIdentity(crypto.RoleNode, crand.Reader); err != nil {
			return nil, err
		}
	}

	// Data: every node's local simulations (cached in its state dir, where
	// its agent finds them), and the cluster's held-out test set.
	stage("data")
	arch := learn.Arch{Kind: "softmax", Dim: 18, Classes: node.NumRegimes}
	if o.Hidden > 0 {
		arch = learn.Arch{Kind: "mlp", Dim: 18, Hidden: o.Hidden, Classes: node.NumRegimes}
	}
	task := node.TaskMFNRegime
	var file *fileSetup
	if o.Data != "" {
		if file, err = setupFile(o, dir); err != nil {
			return nil, err
		}
		arch, task = file.arch, DataTask
	}
	nodeData := make([]node.DataConfig, o.Nodes)
	trains := make([]*learn.Dataset, o.Nodes)
	total := o.Nodes * o.Samples
	for i := range o.Nodes {
		nodeData[i] = siteData(o, i)
		if file != nil {
			nodeData[i] = file.nodeData[i]
		}
		base := i * o.Samples
		progress := func(done, tot int) {
			if o.OnProgress != nil {
				// Count the node's own simulations, not the reference set.
				o.OnProgress(base+min(done, o.Samples), total)
			}
		}
		if trains[i], _, err = node.LocalData(ctx, nodeData[i], nodeDir(dir, i), progress); err != nil {
			return nil, fmt.Errorf("e2e: node %d data: %w", i+1, err)
		}
	}
	var test *learn.Dataset
	if file != nil {
		test = file.test
	} else if test, err = node.RegimeTestSet(ctx, 0, 0, o.TestPerRegime, o.Seed^0x7e57, 0); err != nil {
		return nil, err
	}
	eval := &evaluator{task: task, arch: arch, test: test}

	// The cluster.
	stage("cluster")
	cl, err := startCluster(ctx, clusterConfig{n: o.Members, dir: dir, origin: Origin, keys: coordKeys,
		signer: signer, verifier: verifier, evaluator: eval, logger: logger, tracing: o.Tracing})
	if err != nil {
		return nil, err
	}
	defer cl.close()
	leader, err := cl.waitLeader(ctx, 30*time.Second)
	if err != nil {
		return nil, err
	}
	names := make([]string, o.Nodes)
	known := audit.NodeKeys{}
	for i, k := range nodeKeys {
		names[i] = fmt.Sprintf("site-%02d", i+1)
		known[names[i]] = k.PublicKey()
		if err := leader.coord.EnrollNode(ctx, names[i], k.PublicKey()); err != nil {
			return nil, fmt.Errorf("e2e: enroll %s: %w", names[i], err)
		}
	}
	clusterFile := &node.Cluster{Origin: Origin}
	for _, m := range cl.members {
		clusterFile.Members = append(clusterFile.Members, node.Member{ID: m.id, QUICAddr: m.quic, PublicKey: m.key.PublicKey(), Recipient: m.key.Recipient()})
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.txt"), clusterFile.Format(), 0o644); err != nil {
		return nil, err
	}

	// The nodes.
	stage("nodes")
	nctx, stopNodes := context.WithCancel(ctx)
	var nwg sync.WaitGroup
	agents := make([]*node.Agent, o.Nodes)
	nodeErrs := make([]error, o.Nodes)
	defer func() {
		stopNodes()
		nwg.Wait()
	}()
	byzantine := map[string]bool{}
	for i := range o.Nodes {
		cfg := node.DefaultConfig()
		cfg.NodeID, cfg.Identity, cfg.Cluster, cfg.StateDir = names[i], nodeKeys[i], clusterFile, nodeDir(dir, i)
		cfg.Data, cfg.Train, cfg.Seed = nodeData[i], o.Train, nodeSeed(o, i)
		cfg.BackoffMin, cfg.BackoffMax, cfg.LeaderCheck, cfg.DialTimeout = 100*time.Millisecond, 2*time.Second, 3*time.Second, 2*time.Second
		cfg.Logger = logger.With("component", "node")
		if o.Tracing != nil {
			cfg.TracerProvider = o.Tracing(telemetry.ServiceNode, names[i])
		}
		if i >= o.Nodes-o.Byzantine {
			cfg.Byzantine, cfg.AttackF, cfg.AttackRule = o.Attack, o.Byzantine, ruleForAttack(o.Rule)
			byzantine[names[i]] = true
		}
		if agents[i], err = node.New(cfg); err != nil {
			return nil, fmt.Errorf("e2e: node %s: %w", names[i], err)
		}
		nwg.Add(1)
		go func() {
			defer nwg.Done()
			nodeErrs[i] = agents[i].Run(nctx)
		}()
	}

	// The job.
	stage("job")
	initial := make([]float64, arch.NumParams())
	if arch.Kind != "softmax" {
		m, err := learn.NewModel(arch, newRand(o.Seed, 0x1417))
		if err != nil {
			return nil, err
		}
		copy(initial, m.Params())
	}
	spec := coordinator.JobSpec{
		ID: JobID, Task: task, Dim: arch.NumParams(), Shape: shapeOf(arch),
		Rule:   coordinator.RuleSpec{Name: o.Rule, F: o.Byzantine, Seed: o.Seed},
		Rounds: o.Rounds, MinUpdates: max(1, o.Nodes-o.Nodes/3), MaxUpdates: o.Nodes,
		RoundDeadline: coordinator.Duration(o.RoundDeadline), HardDeadline: coordinator.Duration(6 * o.RoundDeadline),
		OnFailure: coordinator.OnFailureContinue, InitialModel: initial, DP: o.DP, Optimizer: o.Optimizer,
	}
	if o.DP != nil && o.DP.Rate() < 1 {
		// Node sampling: about q·Nodes nodes per round; ask for 2 standard
		// deviations fewer so that few rounds fail for a small sample.
		m := o.DP.Rate() * float64(o.Nodes)
		spec.MinUpdates = max(1, int(m-2*math.Sqrt(m*(1-o.DP.Rate()))))
	}
	if spec.MinUpdates <= 2*o.Byzantine {
		spec.MinUpdates = min(o.Nodes, 2*o.Byzantine+1)
	}
	if err := createJob(ctx, cl, spec); err != nil {
		return nil, err
	}
	stage("training")
	trainStart := time.Now()
	mon := newMonitor(cl, o, byzantine)
	sum, err := mon.run(ctx, trainStart)
	if err != nil {
		return nil, err
	}
	sum.TrainingSecs = time.Since(trainStart).Seconds()

	// Give the nodes a moment to record the last acknowledgements (an ack
	// travels and is written to disk after the update is applied, which can
	// be after the round closed), then stop them and count.
	settle(ctx, cl, agents)
	stopNodes()
	nwg.Wait()
	for i, e := range nodeErrs {
		if e != nil {
			return nil, fmt.Errorf("e2e: node %s: %w", names[i], e)
		}
	}
	stage("audit")
	if err := mon.finalCheckpoint(ctx); err != nil {
		return nil, err
	}
	reader := cl.any()
	if reader == nil {
		return nil, errors.New("e2e: no live member left")
	}
	sum.RoundsAttested = waitAttested(ctx, reader.coord, cl.live(), 30*time.Second)
	if err := countUpdates(sum, reader.coord, agents); err != nil {
		return nil, err
	}
	auditDir := filepath.Join(dir, "audit")
	sum.Checkpoints = len(mon.checkpoints())
	// Export format 2 with the members' keys: verify-log checks every
	// round's result leaf and its members' cosignatures too.
	if err := reader.coord.ExportAudit(auditDir); err != nil {
		return nil, err
	}
	if rep, err := audit.VerifyLogDir(auditDir, verifier, known); err != nil {
		sum.AuditError = err.Error()
	} else {
		sum.AuditVerified = rep.Leaves-uint64(rep.Results) == uint64(sum.UpdatesInLog)
		if !sum.AuditVerified {
			sum.AuditError = fmt.Sprintf("export verified %d update leaves, the cluster holds %d", rep.Leaves-uint64(rep.Results), sum.UpdatesInLog)
		}
	}
	if o.Keep || o.Dir != "" {
		sum.AuditDir, sum.LogVerifierKey = auditDir, filepath.Join(dir, "log.vkey")
	}
	if m, err := reader.coord.LatestModel(JobID); err == nil {
		if acc, ok, err := eval.Evaluate(task, m.Params); err == nil && ok {
			sum.FinalAccuracy = acc
		}
		if file != nil && o.ModelOut != "" {
			if err := writeModel(o.ModelOut, file, m.Params); err != nil {
				return nil, err
			}
			sum.ModelFile = o.ModelOut
		}
	}
	if j, err := reader.coord.GetJob(JobID); err == nil {
		sum.Privacy = j.Privacy
		if j.Spec.Optimizer != nil {
			sum.Optimizer = j.Spec.Optimizer.String()
		}
	}
	sum.FedAvgReferenceAccuracy = math.NaN()
	if o.Reference {
		stage("reference")
		if sum.FedAvgReferenceAccuracy, err = reference(o, arch, initial, trains, eval); err != nil {
			return nil, err
		}
	}
	sum.ByzantineNodes, sum.Rule, sum.Attack, sum.Nodes, sum.Rounds = o.Byzantine, o.Rule, o.Attack, o.Nodes, o.Rounds
	if o.Byzantine == 0 {
		sum.Attack = "none"
	}
	sum.ChanceAccuracy = 1 / float64(arch.Classes)
	if file != nil {
		stage("centralized")
		acc, err := centralized(ctx, o, arch, trains, test)
		if err != nil {
			return nil, fmt.Errorf("e2e: centralized reference: %w", err)
		}
		sum.CentralizedReferenceAccuracy = &acc
		sum.DataFile, sum.Partition, sum.Model, sum.TestSamples = o.Data, o.partition(), arch.Spec(), test.Len()
	}
	sum.TotalSecs = time.Since(start).Seconds()
	if o.Hold {
		if err := hold(ctx, cl, sum, o.OnHold); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

func nodeDir(dir string, i int) string {
	return filepath.Join(dir, "nodes", fmt.Sprintf("site-%02d", i+1))
}

func nodeSeed(o Options, i int) uint64 { return o.Seed*1000 + uint64(i) + 1 }

// siteData gives node i a regime mix dominated by regime i mod 4 (4:1:1:1),
// so the federation is heterogeneous.
func siteData(o Options, i int) node.DataConfig {
	props := make([]float64, node.NumRegimes)
	for r := range props {
		props[r] = 1
	}
	props[i%node.NumRegimes] = 4
	return node.DataConfig{Task: node.TaskMFNRegime, Samples: o.Samples, Proportions: props, Seed: nodeSeed(o, i)}
}

// ruleForAttack is the rule adaptive attacks aim at: the job's own rule
// without its pre-steps (the node knows the cluster's published rule).
func ruleForAttack(rule string) string {
	for i := len(rule) - 1; i >= 0; i-- {
		if rule[i] == '+' {
			return rule[i+1:]
		}
	}
	return rule
}

func createJob(ctx context.Context, cl *cluster, spec coordinator.JobSpec) error {
	deadline := time.Now().Add(30 * time.Second)
	retried := false
	for {
		l, err := cl.waitLeader(ctx, 30*time.Second)
		if err != nil {
			return err
		}
		_, err = l.coord.CreateJob(ctx, spec)
		// A "not leader" answer can come after the entry was committed (the
		// leader stepped down before it saw the apply): the retry then
		// finds the job this run created. No other run shares the cluster.
		if retried && errors.Is(err, coordinator.ErrExists) {
			return nil
		}
		if err == nil || !errors.Is(err, coordinator.ErrNotLeader) || time.Now().After(deadline) {
			return err
		}
		retried = true
	}
}

// evaluator scores models of the job's task on the held-out test set.
type evaluator struct {
	task string
	arch learn.Arch
	test *learn.Dataset
	mu   sync.Mutex
}

func (e *evaluator) Evaluate(task string, params []float64) (float64, bool, error) {
	if task != e.task {
		return 0, false, nil
	}
	if len(params) != e.arch.NumParams() {
		return 0, false, fmt.Errorf("e2e: model of %d parameters, the job's %s has %d", len(params), e.arch.Spec(), e.arch.NumParams())
	}
	m, err := learn.NewModel(e.arch, newRand(0, 0))
	if err != nil {
		return 0, false, err
	}
	copy(m.Params(), params)
	e.mu.Lock()
	defer e.mu.Unlock()
	acc, err := learn.Accuracy(m, e.test)
	return acc, err == nil, err
}

// reference runs the same job in process with plain FedAvg over the honest
// nodes only: the same data, initial model, training and seeds (each
// node's Learner is rebuilt as its agent built it).
func reference(o Options, arch learn.Arch, initial []float64, trains []*learn.Dataset, eval *evaluator) (float64, error) {
	honest := o.Nodes - o.Byzantine
	learners := make([]*node.Learner, honest)
	for i := range learners {
		learners[i] = node.NewLearner(trains[i], o.Train, nodeSeed(o, i))
	}
	fedavg, err := aggregate.New("fedavg", aggregate.Params{})
	if err != nil {
		return 0, err
	}
	global := slices.Clone(initial)
	for r := 1; r <= o.Rounds; r++ {
		deltas := make([][]float64, honest)
		weights := make([]float64, honest)
		for i, l := range learners {
			d, _, err := l.Update(JobID, uint64(r), arch, global)
			if err != nil {
				return 0, fmt.Errorf("e2e: reference round %d node %d: %w", r, i+1, err)
			}
			deltas[i], weights[i] = d, float64(l.Samples())
		}
		agg, _, err := fedavg.Aggregate(deltas, weights)
		if err != nil {
			return 0, err
		}
		for j := range global {
			global[j] += agg[j]
		}
	}
	acc, _, err := eval.Evaluate(eval.task, global)
	return acc, err
}

// settle waits, at most 5 s, until the nodes have recorded as many
// acknowledgements of the job as the cluster holds updates.
func settle(ctx context.Context, cl *cluster, agents []*node.Agent) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m := cl.any()
		if m == nil {
			return
		}
		rounds, err := m.coord.ListRounds(JobID)
		if err != nil {
			return
		}
		stored := 0
		for _, r := range rounds {
			stored += len(r.Updates)
		}
		recorded := 0
		for _, a := range agents {
			for _, r := range a.State().Records() {
				if r.Job == JobID {
					recorded++
				}
			}
		}
		if recorded >= stored {
			return
		}
		time.Sleep(pollInterval)
	}
}

// countUpdates compares what the nodes recorded with the audit log.
func countUpdates(sum *Summary, c *coordinator.Coordinator, agents []*node.Agent) error {
	cp, err := c.LatestCheckpoint()
	if err != nil {
		return err
	}
	type key struct {
		round uint64
		node  string
	}
	inLog := map[key][]uint64{}
	for i := uint64(0); i < cp.Size; i++ {
		b, err := c.Leaf(i)
		if err != nil {
			return err
		}
		if audit.IsResultLeaf(b) {
			continue // a round's result, checked by verify-log
		}
		l, err := audit.ParseLeaf(b)
		if err != nil {
			return fmt.Errorf("e2e: audit leaf %d: %w", i, err)
		}
		if l.JobID != JobID {
			continue
		}
		sum.UpdatesInLog++
		k := key{l.Round, l.NodeID}
		inLog[k] = append(inLog[k], i)
	}
	for _, leaves := range inLog {
		sum.DuplicateUpdates += len(leaves) - 1
	}
	for _, a := range agents {
		for _, r := range a.State().Records() {
			if r.Job != JobID {
				continue
			}
			sum.AcknowledgedUpdates++
			leaves := inLog[key{r.Round, a.NodeID()}]
			if len(leaves) == 0 || (!r.Duplicate && !slices.Contains(leaves, r.LeafIndex)) {
				sum.LostUpdates++
			}
		}
	}
	return nil
}

// waitAttested waits, at most d, until every live member has attested
// (cosigned or dissented) each round recorded with a result leaf, and
// returns the number of rounds every registered member cosigned.
func waitAttested(ctx context.Context, c *coordinator.Coordinator, live []*member, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		rounds, err := c.ListRounds(JobID)
		members := len(c.MemberKeys())
		all, done := 0, err == nil
		for _, r := range rounds {
			if r.Result == nil || r.Result.ResultLeaf == nil {
				continue
			}
			if len(r.Attested) == members {
				all++
			}
			for _, m := range live {
				if !slices.Contains(r.Attested, m.id) && !slices.ContainsFunc(r.Dissents, func(x coordinator.Dissent) bool { return x.Member == m.id }) {
					done = false
				}
			}
		}
		if done || time.Now().After(deadline) {
			return all
		}
		select {
		case <-ctx.Done():
			return all
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// partition is o.Partition, "iid" when empty.
func (o *Options) partition() string {
	if o.Partition == "" {
		return "iid"
	}
	return o.Partition
}
