package main

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/provision"
	"github.com/mfn/mfn/serveropt"
)

// ---- nodes ----

func newCtlNodesCmd(env *cmdEnv, o *ctlOpts) *cobra.Command {
	c := &cobra.Command{
		Use:   "nodes",
		Short: "Enroll, revoke and list edge nodes",
		Long: `nodes manages the edge nodes allowed to submit updates. enroll registers a
node's Ed25519 public key (operator), revoke bars it from then on (its earlier
updates stay; operator), list shows them all (reader).`,
		Example: "  mfn ctl nodes enroll --identity ./node1\n  mfn ctl nodes revoke 3f2a9c1b0d4e5f6a7b8c9d0e\n  mfn ctl nodes list",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var id, pubText, identity, kit string
	enroll := &cobra.Command{
		Use:   "enroll",
		Short: "Enroll a node by its public key (operator)",
		Long: `enroll registers a node. Give its key with --public-key ("mfn-ed25519:<base64>",
as "mfn keygen" prints it) or --identity DIR (the node's identity directory;
only signing.pub is read). --id defaults to the id derived from the key.`,
		Example: "  mfn ctl nodes enroll --identity ./node1\n  mfn ctl nodes enroll --id site-a --public-key mfn-ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			var key api.PublicKey
			switch {
			case kit != "" && (pubText != "" || identity != ""):
				return usagef("--kit gives the key: not with --public-key or --identity")
			case kit != "":
				kitID, kitKey, err := provision.ReadSiteKit(kit)
				if err != nil {
					return usagef("--kit %s: %v", kit, err)
				}
				pub, _ := crypto.ParsePublicKey(kitKey)
				key, id = api.PublicKey(pub), cmp.Or(id, kitID)
			case pubText != "" && identity != "":
				return usagef("give --public-key or --identity, not both")
			case pubText != "":
				pub, err := crypto.ParsePublicKey(pubText)
				if err != nil {
					return usagef("--public-key: %v", err)
				}
				key = api.PublicKey(pub)
			case identity != "":
				pi, err := crypto.LoadPublicIdentity(identity)
				if err != nil {
					return usagef("--identity %s: %v", identity, err)
				}
				key = api.PublicKey(pi.SigningKey)
			default:
				return usagef("--public-key or --identity is required")
			}
			if id == "" {
				id = crypto.NodeID([]byte(key))
			}
			cl, err := o.client()
			if err != nil {
				return err
			}
			n, err := cl.EnrollNode(env.ctx, id, key)
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, n)
			}
			txt, _ := n.PublicKey.MarshalText()
			fmt.Fprintf(env.stdout, "enrolled node %s %s\n", n.ID, txt)
			return nil
		},
	}
	enroll.Flags().StringVar(&id, "id", "", "node id, 1-64 characters of [A-Za-z0-9._-] (default: derived from the key)")
	enroll.Flags().StringVar(&pubText, "public-key", "", `the node's public key "mfn-ed25519:<base64>"`)
	enroll.Flags().StringVar(&identity, "identity", "", "the node's identity directory (reads signing.pub)")
	enroll.Flags().StringVar(&kit, "kit", "", "a site kit from mfn provision (reads its id and public key, checked against its manifest)")

	revoke := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke a node (operator)",
		Long:    "revoke bars the node ID from submitting and closes its connections. Updates it made before stay.",
		Example: "  mfn ctl nodes revoke site-a",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			n, err := cl.RevokeNode(env.ctx, args[0])
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, n)
			}
			fmt.Fprintf(env.stdout, "revoked node %s at %s\n", n.ID, fmtTime(n.RevokedAt))
			return nil
		},
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List enrolled nodes",
		Long:    "list prints every enrolled node, revoked ones included.",
		Example: "  mfn ctl nodes list --json",
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			ns, err := cl.Nodes(env.ctx)
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, api.NodeList{Nodes: ns})
			}
			tw := table(env.stdout)
			fmt.Fprintln(tw, "ID\tSTATE\tENROLLED\tPUBLIC KEY")
			for _, n := range ns {
				state := "active"
				if n.Revoked {
					state = "revoked " + fmtTime(n.RevokedAt)
				}
				txt, _ := n.PublicKey.MarshalText()
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.ID, state, fmtTime(n.EnrolledAt), txt)
			}
			return tw.Flush()
		},
	}
	c.AddCommand(enroll, revoke, list)
	return c
}

// ---- jobs ----

// jobFlags are the flags of "jobs create": the fields of coordinator.JobSpec.
type jobFlags struct {
	id, task, rule, onFailure, initialModel string
	optimizer                               string
	dim, rounds, minUpdates, maxUpdates     int
	shape                                   []int
	roundDeadline, hardDeadline             time.Duration
	rs                                      coordinator.RuleSpec
	schema                                  schemaFlags // schemaflags.go
	dp                                      dpFlags     // ctl_jobs_dp.go
}

// spec builds and checks the job spec, naming the flag of the first bad
// value.
func (f *jobFlags) spec() (coordinator.JobSpec, error) {
	switch {
	case f.id == "":
		return coordinator.JobSpec{}, usagef("--id is required: the job's id, 1-64 characters of [A-Za-z0-9._-]")
	case f.task == "":
		return coordinator.JobSpec{}, usagef("--task must not be empty")
	case f.dim < 1 || f.dim > 1<<27:
		return coordinator.JobSpec{}, usagef("--dim %d: must be in [1, 2^27] (the number of model parameters)", f.dim)
	case f.rounds < 1 || f.rounds > 1_000_000:
		return coordinator.JobSpec{}, usagef("--rounds %d: must be in [1, 1000000]", f.rounds)
	case f.minUpdates < 1:
		return coordinator.JobSpec{}, usagef("--min-updates %d: must be ≥ 1", f.minUpdates)
	case f.maxUpdates < f.minUpdates || f.maxUpdates > audit.MaxResultEntries:
		return coordinator.JobSpec{}, usagef("--max-updates %d: must be in [--min-updates=%d, %d] (the most updates a round's result can name)", f.maxUpdates, f.minUpdates, audit.MaxResultEntries)
	case f.roundDeadline <= 0:
		return coordinator.JobSpec{}, usagef("--round-deadline %v: must be > 0", f.roundDeadline)
	case f.hardDeadline != 0 && f.hardDeadline < f.roundDeadline:
		return coordinator.JobSpec{}, usagef("--hard-deadline %v: must be 0 (3 × --round-deadline) or ≥ --round-deadline %v", f.hardDeadline, f.roundDeadline)
	case f.onFailure != "continue" && f.onFailure != "stop":
		return coordinator.JobSpec{}, usagef("--on-failure %q: must be continue or stop", f.onFailure)
	case f.rs.F < 0:
		return coordinator.JobSpec{}, usagef("--f %d: must be ≥ 0", f.rs.F)
	}
	rs := f.rs
	rs.Name = f.rule
	if _, err := aggregate.New(rs.Name, rs.Params()); err != nil {
		return coordinator.JobSpec{}, usagef("--rule %q with its parameters: %v", rs.Name, err)
	}
	spec := coordinator.JobSpec{
		ID: f.id, Task: f.task, Dim: f.dim, Shape: f.shape, Rule: rs, Rounds: f.rounds,
		MinUpdates: f.minUpdates, MaxUpdates: f.maxUpdates,
		RoundDeadline: coordinator.Duration(f.roundDeadline), HardDeadline: coordinator.Duration(f.hardDeadline),
		OnFailure: coordinator.OnFailure(f.onFailure),
	}
	if f.optimizer != "" {
		o, err := serveropt.Parse(f.optimizer)
		if err != nil {
			return spec, usagef("--optimizer %q: %v", f.optimizer, strings.TrimPrefix(err.Error(), "serveropt: invalid optimizer: "))
		}
		spec.Optimizer = &o
	}
	if f.initialModel != "" {
		data, err := os.ReadFile(f.initialModel)
		if err != nil {
			return spec, usagef("--initial-model: %v", err)
		}
		if len(data) != 8*f.dim {
			return spec, usagef("--initial-model %s: %d bytes, want 8 × --dim = %d (little-endian float64)", f.initialModel, len(data), 8*f.dim)
		}
		spec.InitialModel = make(coordinator.Params, f.dim)
		for i := range spec.InitialModel {
			v := math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return spec, usagef("--initial-model %s: value %d is %v", f.initialModel, i, v)
			}
			spec.InitialModel[i] = v
		}
	}
	var err error
	if spec.Schema, err = f.schema.schema(); err != nil {
		return spec, err
	}
	spec.CrossSiteEval = f.schema.crossSite
	if spec.DP, err = f.dp.config(); err != nil {
		return spec, err
	}
	if err := spec.Validate(); err != nil {
		return spec, usagef("%v", strings.TrimPrefix(err.Error(), "coordinator: invalid request: "))
	}
	return spec, nil
}

func printJob(env *cmdEnv, j coordinator.Job) {
	s := j.Spec
	fmt.Fprintf(env.stdout, "job %s: %s", s.ID, j.State)
	if j.Reason != "" {
		fmt.Fprintf(env.stdout, " (%s)", j.Reason)
	}
	fmt.Fprintf(env.stdout, "\n  task %s, dim %d, rule %s (f=%d)\n", s.Task, s.Dim, s.Rule.Name, s.Rule.F)
	if s.Optimizer != nil {
		fmt.Fprintf(env.stdout, "  server optimizer %s\n", s.Optimizer)
	}
	fmt.Fprintf(env.stdout, "  rounds: %d of %d done, %d failed, %d opened\n", j.Completed, s.Rounds, j.Failed, j.Rounds)
	fmt.Fprintf(env.stdout, "  updates per round: %d..%d, deadline %v", s.MinUpdates, s.MaxUpdates, time.Duration(s.RoundDeadline))
	if s.HardDeadline != 0 {
		fmt.Fprintf(env.stdout, " (hard %v)", time.Duration(s.HardDeadline))
	}
	onf := s.OnFailure
	if onf == "" {
		onf = coordinator.OnFailureContinue
	}
	fmt.Fprintf(env.stdout, ", on failure %s\n", onf)
	fmt.Fprintf(env.stdout, "  model version %d, hash %s\n  created %s\n", j.ModelVersion, j.ModelHash, fmtTime(j.CreatedAt))
	fmt.Fprint(env.stdout, privacyLine(j))
}

// privacyLine is a DP job's budget line of "jobs get" ("" without DP).
func privacyLine(j coordinator.Job) string {
	p := j.Privacy
	if p == nil {
		return ""
	}
	limit := "no max_epsilon"
	if p.MaxEpsilon > 0 {
		limit = fmt.Sprintf("max_epsilon %.4g", p.MaxEpsilon)
	}
	return fmt.Sprintf("  privacy (%s DP): ε spent %.4g of %s, δ %g (z %.4g, clip %g, q %g, %d rounds composed)\n",
		p.Mode, p.EpsilonSpent, limit, p.Delta, p.NoiseMultiplier, p.Clip, p.SampleRate, p.Accountant.Steps())
}

func newCtlJobsCmd(env *cmdEnv, o *ctlOpts) *cobra.Command {
	c := &cobra.Command{
		Use:   "jobs",
		Short: "Create, list, show and stop training jobs",
		Long: `jobs manages federated training jobs. create starts one (operator): the leader
opens its first round at once. stop ends a running job (operator); its open
round fails with the reason. list and get show progress (reader).`,
		Example: "  mfn ctl jobs create --id j1 --dim 76 --rule trimmed-mean --fraction 0.1 --rounds 10 --min-updates 4 --max-updates 8 --round-deadline 1m\n  mfn ctl jobs list\n  mfn ctl jobs get j1\n  mfn ctl jobs stop j1 --reason \"bad data\"",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	jf := &jobFlags{}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a training job (operator)",
		Long: `create submits a job spec built from the flags (see coordinator.JobSpec). The
rule is any name "mfn bench aggregate" knows, or a pipeline such as
nnm+krum; its parameters are --f, --m, --tau, --iters, --nu, --tol,
--bucket-size, --clip-norm, --clusters, --fraction and --rule-seed (zero
means the rule's default). The spec is checked locally first, so mistakes
exit 2 without contacting the server. --initial-model FILE gives model
version 0 as 8 × dim bytes of little-endian float64 (default zeros).
--optimizer applies a server optimizer after the rule (Reddi et al. 2021:
fedavgm, fedadam, fedyogi, fedadagrad, with lr, beta1, beta2, tau or
momentum, e.g. fedadam:lr=0.01): the model then moves by the optimizer's
step on the aggregate; its state is replicated with the job.
--dp local|central gives the job differential privacy (DP-FedAvg): every
update is clipped to --dp-clip and Gaussian noise of --dp-noise-multiplier
× clip is added at each node (local) or by the leader to the aggregate
(central); --dp-target-epsilon solves the multiplier for the job's rounds
instead, --dp-delta is required, --dp-max-epsilon stops the job before it
would overspend, --dp-sample-rate announces each round to a random share of
the nodes (see "mfn privacy" and docs/PRIVACY.md).`,
		Example: "  mfn ctl jobs create --id j1 --task mfn-regime --dim 76 --rule krum --f 1 --rounds 5 --min-updates 3 --max-updates 5 --round-deadline 30s\n" +
			"  mfn ctl jobs create --id p1 --dim 76 --rounds 50 --dp central --dp-clip 1 --dp-target-epsilon 8 --dp-delta 1e-5 --dp-sample-rate 0.1",
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			spec, err := jf.spec()
			if err != nil {
				return err
			}
			cl, err := o.client()
			if err != nil {
				return err
			}
			j, err := cl.CreateJob(env.ctx, spec)
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, j)
			}
			printJob(env, j)
			return nil
		},
	}
	fl := create.Flags()
	fl.StringVar(&jf.id, "id", "", "job id, 1-64 characters of [A-Za-z0-9._-] (required)")
	fl.StringVar(&jf.task, "task", "mfn-regime", "learning task name (the evaluator's key)")
	fl.IntVar(&jf.dim, "dim", 0, "number of model parameters, [1, 2^27] (required)")
	fl.IntSliceVar(&jf.shape, "shape", nil, "optional layer shape, e.g. 18,4 (informative)")
	fl.StringVar(&jf.rule, "rule", "fedavg", "aggregation rule or pipeline, e.g. krum, trimmed-mean, nnm+krum")
	fl.IntVar(&jf.rs.F, "f", 0, "number of Byzantine updates the rule tolerates, ≥ 0")
	fl.IntVar(&jf.rs.M, "m", 0, "rule parameter m (multi-Krum selection size)")
	fl.Float64Var(&jf.rs.Tau, "tau", 0, "rule parameter tau (centered clipping radius)")
	fl.IntVar(&jf.rs.Iters, "iters", 0, "rule parameter iters (iterative rules)")
	fl.Float64Var(&jf.rs.Nu, "nu", 0, "rule parameter nu (geometric median smoothing)")
	fl.Float64Var(&jf.rs.Tol, "tol", 0, "rule parameter tol (convergence tolerance)")
	fl.IntVar(&jf.rs.BucketSize, "bucket-size", 0, "bucketing pre-aggregation bucket size")
	fl.Float64Var(&jf.rs.ClipNorm, "clip-norm", 0, "clipping pre-aggregation norm")
	fl.IntVar(&jf.rs.Clusters, "clusters", 0, "rule parameter clusters (clustering rules)")
	fl.Float64Var(&jf.rs.Fraction, "fraction", 0, "rule parameter fraction (trimmed mean)")
	fl.Uint64Var(&jf.rs.Seed, "rule-seed", 0, "seed of randomised rules (bucketing)")
	fl.IntVar(&jf.rounds, "rounds", 10, "successful rounds to run, [1, 1000000]")
	fl.IntVar(&jf.minUpdates, "min-updates", 1, "updates a round needs to close after its deadline, ≥ 1")
	fl.IntVar(&jf.maxUpdates, "max-updates", 10, "updates that close a round at once, [min-updates, 3000]")
	fl.DurationVar(&jf.roundDeadline, "round-deadline", time.Minute, "soft deadline of each round, > 0")
	fl.DurationVar(&jf.hardDeadline, "hard-deadline", 0, "a round below --min-updates fails after this; 0 means 3 × --round-deadline")
	fl.StringVar(&jf.onFailure, "on-failure", "continue", "what a failed round does to the job: continue or stop")
	fl.StringVar(&jf.initialModel, "initial-model", "", "file of model version 0: 8 × dim bytes of little-endian float64")
	fl.StringVar(&jf.optimizer, "optimizer", "", "server optimizer after the rule: fedavgm, fedadam, fedyogi or fedadagrad[:lr=..,beta1=..,beta2=..,tau=..,momentum=..] (default none: the model moves by the aggregate)")
	jf.schema.register(fl)
	jf.dp.register(fl)

	list := &cobra.Command{
		Use:     "list",
		Short:   "List jobs",
		Long:    "list prints every job with its state and progress.",
		Example: "  mfn ctl jobs list",
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			js, err := cl.Jobs(env.ctx)
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, api.JobList{Jobs: js})
			}
			tw := table(env.stdout)
			fmt.Fprintln(tw, "ID\tSTATE\tTASK\tRULE\tROUNDS\tFAILED\tMODEL")
			for _, j := range js {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d\tv%d\n", j.Spec.ID, j.State, j.Spec.Task, j.Spec.Rule.Name,
					j.Completed, j.Spec.Rounds, j.Failed, j.ModelVersion)
			}
			return tw.Flush()
		},
	}
	get := &cobra.Command{
		Use:     "get JOB",
		Aliases: []string{"show"},
		Short:   "Show one job",
		Long:    "get (or show) prints a job's spec and progress, and a DP job's privacy budget.",
		Example: "  mfn ctl jobs get j1 --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			j, err := cl.Job(env.ctx, args[0])
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, j)
			}
			printJob(env, j)
			return nil
		},
	}
	var reason string
	stop := &cobra.Command{
		Use:     "stop JOB",
		Short:   "Stop a running job (operator)",
		Long:    "stop ends a running job; its open round fails with the reason. Stopping an ended job changes nothing.",
		Example: `  mfn ctl jobs stop j1 --reason "switching rule"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			j, err := cl.StopJob(env.ctx, args[0], reason)
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, j)
			}
			fmt.Fprintf(env.stdout, "job %s: %s (%s)\n", j.Spec.ID, j.State, j.Reason)
			return nil
		},
	}
	stop.Flags().StringVar(&reason, "reason", "", "why the job is stopped (recorded; default names the API key)")
	c.AddCommand(create, list, get, stop)
	c.AddCommand(newCtlJobsRemoveCmds(env, o)...)
	c.AddCommand(newCtlJobsMetricsCmd(env, o)) // ctl_jobs_metrics.go
	return c
}

// ---- rounds ----

func newCtlRoundsCmd(env *cmdEnv, o *ctlOpts) *cobra.Command {
	c := &cobra.Command{
		Use:   "rounds",
		Short: "List a job's rounds or show one with its updates",
		Long: `rounds shows training rounds (reader). list JOB prints each round's state and
result; get JOB ROUND adds every accepted update: whether the rule used it,
why not, and the rule's score.`,
		Example: "  mfn ctl rounds list j1\n  mfn ctl rounds get j1 3",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	list := &cobra.Command{
		Use:     "list JOB",
		Short:   "List a job's rounds",
		Long:    "list prints each round of JOB with its state, updates and result. The API serves rounds in pages;\nlist asks for every page (1,000 rounds each) in turn.",
		Example: "  mfn ctl rounds list j1",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			rs, err := cl.Rounds(env.ctx, args[0])
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, api.RoundList{Rounds: rs})
			}
			tw := table(env.stdout)
			fmt.Fprintln(tw, "ROUND\tSTATE\tUPDATES\tUSED\tREJECTED\tMODEL\tACCURACY\tENDED")
			for _, r := range rs {
				used, rej, model, acc := "-", "-", "-", "-"
				if res := r.Result; res != nil {
					used, rej, model = fmt.Sprint(res.Used), fmt.Sprint(res.Rejected), fmt.Sprintf("v%d", res.ModelVersion)
					if res.Accuracy != nil {
						acc = fmt.Sprintf("%.4f", *res.Accuracy)
					}
				}
				state := string(r.State)
				if r.FailReason != "" {
					state += ": " + r.FailReason
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Number, state, len(r.Updates), used, rej, model, acc, fmtTime(r.EndedAt))
			}
			return tw.Flush()
		},
	}
	get := &cobra.Command{
		Use:     "get JOB ROUND",
		Short:   "Show one round with per-update outcomes",
		Long:    "get prints round ROUND of JOB and each accepted update with its outcome, reason and score.",
		Example: "  mfn ctl rounds get j1 3 --json",
		Args:    cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			n, err := parseUint(args[1], "ROUND")
			if err != nil {
				return err
			}
			cl, err := o.client()
			if err != nil {
				return err
			}
			r, err := cl.Round(env.ctx, args[0], n)
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, r)
			}
			fmt.Fprintf(env.stdout, "job %s round %d: %s", r.Job, r.Number, r.State)
			if r.FailReason != "" {
				fmt.Fprintf(env.stdout, " (%s)", r.FailReason)
			}
			fmt.Fprintf(env.stdout, "\n  base model v%d %s\n  opened %s, deadline %s, hard deadline %s, ended %s\n",
				r.BaseVersion, r.BaseHash, fmtTime(r.OpenedAt), fmtTime(r.Deadline), fmtTime(r.HardDeadline), fmtTime(r.EndedAt))
			fmt.Fprint(env.stdout, roundPrivacyLines(r))
			if res := r.Result; res != nil {
				fmt.Fprintf(env.stdout, "  result: model v%d %s, rule %s, %d used, %d rejected, aggregation %.3fs",
					res.ModelVersion, res.ModelHash, res.Rule, res.Used, res.Rejected, res.AggregationSeconds)
				if res.Accuracy != nil {
					fmt.Fprintf(env.stdout, ", accuracy %.4f", *res.Accuracy)
				}
				fmt.Fprintln(env.stdout)
			}
			tw := table(env.stdout)
			fmt.Fprintln(tw, "NODE\tUSED\tSCORE\tREASON\tSAMPLES\tLEAF\tACCEPTED")
			for _, u := range r.Updates {
				score := "-"
				if u.Score != nil {
					score = fmt.Sprintf("%.6g", *u.Score)
				}
				used := "no"
				if u.Used {
					used = "yes"
				}
				if r.State == coordinator.RoundOpen || r.State == coordinator.RoundClosing {
					used = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", u.Node, used, score, dash(u.Reason), u.Samples, u.LeafIndex, fmtTime(u.AcceptedAt))
			}
			return tw.Flush()
		},
	}
	c.AddCommand(list, get)
	return c
}

// roundPrivacyLines describes a DP round's node sample and adaptive clip
// ("" for other rounds).
func roundPrivacyLines(r coordinator.Round) string {
	var b strings.Builder
	if r.SampleSeed != nil {
		fmt.Fprintf(&b, "  sample: %d of %d enrolled nodes (seed %s)\n", len(r.Sample), r.Population, *r.SampleSeed)
	}
	if r.Clip > 0 {
		fmt.Fprintf(&b, "  clip %g", r.Clip)
		if st := r.ClipStep; st != nil {
			fmt.Fprintf(&b, ", noisy unclipped fraction %.4g, next clip %.6g", st.Fraction, st.Next)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ---- models ----

func newCtlModelsCmd(env *cmdEnv, o *ctlOpts) *cobra.Command {
	c := &cobra.Command{
		Use:   "models",
		Short: "Show or download a job's model versions",
		Long: `models get JOB VERSION shows a model version's metadata (VERSION is a number
or "latest"); with --out FILE it downloads the parameters and checks them
against the model hash. --format float64 (default) writes 8 × dim bytes of
little-endian float64; --format update writes crypto's update encoding
(header, then the values), whose SHA-256 is the model hash; --format model
(the default when --out ends in .json) writes a model file ("mfn-model/1",
learn.ModelFile) that "mfn predict --model FILE --data new.csv" reads.

A model file also needs what the job does not hold: the class names
(--classes, in class-id order; default 0..K-1) and the input scaling the
nodes trained with. --data FILE names a site's training file (read as
"mfn node --data" reads it, with --label-column and --feature-columns):
its feature names go into the model file and, with --standardize site
(the nodes' default), its mean and standard deviation, the statistics that
site's node applied. The model is the one the job announces: its layer
shape (softmax or an MLP), or for jobs without one inferred from the
parameter count and --data's feature and class counts (cnn:mnist too).`,
		Example: "  mfn ctl models get j1 latest\n  mfn ctl models get j1 5 --out model-v5.f64",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var out, format string
	var mf modelFileFlags
	get := &cobra.Command{
		Use:   "get JOB VERSION",
		Short: "Show a model version, or download it with --out",
		Long: `get prints a model version's metadata, or with --out FILE downloads its
parameters (hash-checked): --format float64 (8 × dim bytes of little-endian
float64), update (crypto's update encoding), or model, the default for an
--out ending in .json: a model file ("mfn-model/1") for "mfn predict".

A model file needs what the job does not hold: --classes (names in class-id
order; default 0..K-1) and, with --data, a site's training file read as
"mfn node --data" reads it, whose feature names and (--standardize site,
the nodes' default) mean and standard deviation go into the file. The
model is the one the job announces (its --shape), or for a job without a
shape the one its parameter count gives for --data's features and classes.
A job that declares a data schema gives the class list (--classes must
then match it) and its scaling: none, site (--data needed) or job (the
schema's reference mean and std go into the file).`,
		Example: "  mfn ctl models get j1 latest --out model.f64\n  mfn ctl models get j1 latest --out model.json --data site.csv --label-column diagnosis --classes benign,malignant",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("format") && strings.HasSuffix(strings.ToLower(out), ".json") {
				format = formatModelFile
			}
			job, version := args[0], args[1]
			if version != "latest" {
				if _, err := parseUint(version, "VERSION"); err != nil {
					return usagef("VERSION %q: want a non-negative integer or latest", version)
				}
			}
			if format != api.FormatFloat64 && format != api.FormatUpdate && format != formatModelFile {
				return usagef("--format %q: must be float64, update or model", format)
			}
			if format == formatModelFile {
				if out == "" {
					return usagef("--format model needs --out FILE")
				}
				if err := mf.check(); err != nil {
					return err
				}
			}
			cl, err := o.client()
			if err != nil {
				return err
			}
			if out == "" {
				m, err := cl.Model(env.ctx, job, version)
				if err != nil {
					return ctlError(cl, err)
				}
				if o.asJSON {
					return printJSON(env.stdout, m)
				}
				fmt.Fprintf(env.stdout, "job %s model v%d (from round %d): dim %d, hash %s", m.Job, m.Version, m.Round, m.Dim, m.Hash)
				if m.Pruned {
					fmt.Fprint(env.stdout, " (parameters pruned)")
				}
				fmt.Fprintln(env.stdout)
				return nil
			}
			if format == formatModelFile {
				return writeJobModelFile(env, cl, job, version, out, &mf)
			}
			var buf bytes.Buffer
			hash, n, err := cl.ModelParams(env.ctx, job, version, format, &buf)
			if err != nil {
				return ctlError(cl, err)
			}
			got, err := modelHashOf(buf.Bytes(), format)
			if err != nil {
				return fmt.Errorf("downloaded model: %v", err)
			}
			if got != hash {
				return fmt.Errorf("downloaded model hash %s differs from the server's %s; nothing written", got, hash)
			}
			if err := writeOutput(env.stdout, out, buf.Bytes()); err != nil {
				return err
			}
			fmt.Fprintf(env.stderr, "wrote %s: %d bytes (%s), model hash %s\n", out, n, format, hash)
			return nil
		},
	}
	get.Flags().StringVar(&out, "out", "", "download the parameters to FILE")
	get.Flags().StringVar(&format, "format", api.FormatFloat64, "format with --out: float64, update or model (mfn-model/1 JSON; the default for a .json --out)")
	mf.register(get)
	c.AddCommand(get)
	return c
}

// modelHashOf computes the model hash of downloaded parameters.
func modelHashOf(data []byte, format string) (string, error) {
	if format == api.FormatUpdate {
		p, err := crypto.DecodeUpdate(data, 1<<27)
		if err != nil {
			return "", err
		}
		return coordinator.ModelHash(p).String(), nil
	}
	p, err := paramsOf(data)
	if err != nil {
		return "", err
	}
	return coordinator.ModelHash(p).String(), nil
}

// paramsOf decodes 8 × n bytes of little-endian float64.
func paramsOf(data []byte) (coordinator.Params, error) {
	if len(data)%8 != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of float64", len(data))
	}
	p := make(coordinator.Params, len(data)/8)
	for i := range p {
		p[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
	}
	return p, nil
}
