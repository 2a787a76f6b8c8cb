package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/load"
	"github.com/mfn/mfn/node"
)

func init() { registerCommand(newLoadCmd) }

const loadLong = `load drives a coordinator cluster with many virtual nodes and reports what
it sustained, like a Locust run against the operator API plus the node
protocol.

Each virtual node is a real enrolled identity (an Ed25519 key derived from
--seed and the job id, enrolled through the API) with its own QUIC
connection; for every round the job announces it builds an update of --dim
float32 values (seeded random, ±0.01), signs and seals it to every
coordinator as "mfn node" does, and submits it. --byzantine of them send
attack updates instead (--attack sign-flip: negated ×10; large: ×10^4).
--ramp spreads the connections over a duration; --hold keeps them all open,
idle, for a while after the last round and reports what the members hold
then (RSS), e.g. --nodes 10000 --dim 1000 --ramp 2m --hold 1m.
--api-readers users read the
cluster status, jobs, the job and its rounds in a loop, and
--api-subscribers hold WebSocket event subscriptions, alongside.

Target: --local N starts an N-member cluster inside this process on
127.0.0.1 (Raft over mutual TLS, bbolt files in a temporary directory, QUIC
and plain-HTTP API listeners; per-node submission limits lifted), or
--cluster FILE (a node's cluster file) with --server URL of a member's API
(repeat it for every member whose /metrics should be read; members that
registered their HTTP address in the cluster are found anyway) and an
operator --api-key drives an existing cluster.

The report gives acks/s, MB/s of sealed updates, ack latency p50/p90/p99,
round close latency (the round's last acknowledgement to its committed
result, seen as a round_closed event) p50/p99, errors by type, the
coordinators' peak RSS and CPU per ack (their /metrics; for --local this
process, which also runs the load generator), and an audit check: the job's
leaves are read back through the API and every acknowledged update must be
there exactly once (lost, duplicated). --json writes it (atomically).

A progress line is shown on stderr (redrawn on a terminal, one line every
--progress otherwise). Ctrl-C stops the nodes and still prints the report of
what ran (exit 1). Exit 1 also when an acknowledged update is lost or
duplicated.`

const loadExample = `  mfn load --local 3 --nodes 100 --dim 10000 --rounds 3
  mfn load --local 3 --nodes 1000 --dim 100000 --rounds 3 --json load.json
  mfn load --cluster cluster.txt --server $S --api-key $KEY --nodes 10000 --dim 1000 --rounds 2 --ramp 2m --hold 1m
  mfn load --local 3 --nodes 50 --byzantine 5 --attack large --rule trimmed-mean --api-readers 8 --api-subscribers 4
  mfn load --cluster cluster.txt --server http://10.0.0.1:8080,http://10.0.0.2:8080,http://10.0.0.3:8080 --api-key $KEY --nodes 500 --ramp 30s`

type loadFlags struct {
	local                          int
	clusterFile, apiKey, job       string
	servers                        []string
	nodes, byzantine, dim, rounds  int
	submitters                     int
	rule, attack                   string
	ramp, deadline, timeout, every time.Duration
	hold                           time.Duration
	concurrency, readers, subs     int
	seed                           uint64
	jsonPath, logPath              string
}

func newLoadCmd(env *cmdEnv) *cobra.Command {
	var f loadFlags
	c := &cobra.Command{
		Use:     "load",
		Short:   "Load-test a coordinator cluster with many virtual nodes and API users, and report",
		Long:    loadLong,
		Example: loadExample,
		Args:    cobra.NoArgs,
		RunE:    func(*cobra.Command, []string) error { return runLoad(env, &f) },
	}
	d := load.DefaultConfig()
	fl := c.Flags()
	fl.IntVar(&f.local, "local", 0, fmt.Sprintf("start a local cluster of this many members (1-%d) in this process", load.MaxLocalMembers))
	fl.StringVar(&f.clusterFile, "cluster", "", "cluster file of an existing cluster (as for mfn node); needs --server and --api-key")
	fl.StringSliceVar(&f.servers, "server", nil, "URL of a member's HTTP API for --cluster, e.g. http://10.0.0.1:8080; repeat (or comma-separate) to scrape every member's /metrics (the first takes the writes)")
	fl.StringVar(&f.apiKey, "api-key", "", "operator API key for --cluster (enrols nodes, creates the job)")
	fl.StringVar(&f.job, "job", "", "id of the job to create (default load-<seed>-<unix time>)")
	fl.IntVar(&f.nodes, "nodes", d.Nodes, fmt.Sprintf("virtual nodes (1-%d)", load.MaxNodes))
	fl.IntVar(&f.submitters, "submitters", 0, fmt.Sprintf("how many of the nodes submit updates (0 = all, at most %d: the updates one round's result can name); the others hold idle connections", audit.MaxResultEntries))
	fl.IntVar(&f.byzantine, "byzantine", 0, "how many of the nodes send attack updates (0 to nodes-1)")
	fl.StringVar(&f.attack, "attack", d.Attack, "the Byzantine nodes' updates: "+strings.Join(load.Attacks, ", "))
	fl.IntVar(&f.dim, "dim", d.Dim, fmt.Sprintf("float32 parameters per update (1-%d)", load.MaxDim))
	fl.IntVar(&f.rounds, "rounds", d.Rounds, fmt.Sprintf("rounds of the job (1-%d)", load.MaxRounds))
	fl.StringVar(&f.rule, "rule", d.Rule, "aggregation rule or pipeline: "+strings.Join(aggregate.RuleNames, ", "))
	fl.DurationVar(&f.ramp, "ramp", 0, "connect the nodes evenly over this duration (0 to 1h)")
	fl.DurationVar(&f.hold, "hold", 0, "after the last round keep every node connected and idle this long, then report the members' RSS (0 to 24h)")
	fl.IntVar(&f.concurrency, "concurrency", d.Concurrency, fmt.Sprintf("updates sealed or submitted at once (1-%d; lowered to keep them within %d MiB)", load.MaxConcurrency, load.MaxInflightBytes>>20))
	fl.IntVar(&f.readers, "api-readers", 0, fmt.Sprintf("concurrent operator-API readers (0-%d)", load.MaxAPIReaders))
	fl.IntVar(&f.subs, "api-subscribers", 0, fmt.Sprintf("concurrent WebSocket event subscribers (0-%d)", load.MaxSubscribers))
	fl.DurationVar(&f.deadline, "round-deadline", d.RoundDeadline, "soft deadline of each round (100ms-24h); rounds close once every node submitted")
	fl.DurationVar(&f.timeout, "timeout", d.Timeout, "stop after this long and report what ran (> 0)")
	fl.DurationVar(&f.every, "progress", 2*time.Second, "progress line period when stderr is not a terminal (100ms-1h)")
	fl.Uint64Var(&f.seed, "seed", d.Seed, "seed of the node keys and update values")
	fl.StringVar(&f.jsonPath, "json", "", "write the report as JSON to this file (atomically)")
	fl.StringVar(&f.logPath, "log", "", "write the local cluster's JSON logs to this file")
	return c
}

// submitting is the number of nodes that submit: --submitters, or every
// node when it is 0.
func (f *loadFlags) submitting() int {
	if f.submitters == 0 {
		return f.nodes
	}
	return f.submitters
}

// config checks the flags and builds the run's configuration.
func (f *loadFlags) config() (load.Config, error) {
	c := load.DefaultConfig()
	switch {
	case f.local != 0 && f.clusterFile != "":
		return c, usagef("--local and --cluster are exclusive: start a local cluster or drive an existing one")
	case f.local == 0 && f.clusterFile == "":
		return c, usagef("--local N or --cluster FILE is required")
	case f.local < 0 || f.local > load.MaxLocalMembers:
		return c, usagef("--local %d must be in [1, %d]", f.local, load.MaxLocalMembers)
	case f.clusterFile != "" && len(f.servers) == 0:
		return c, usagef("--server is required with --cluster: the URL of a member's HTTP API")
	case f.clusterFile != "" && f.apiKey == "":
		return c, usagef("--api-key is required with --cluster: an operator key")
	case f.local != 0 && (len(f.servers) > 0 || f.apiKey != ""):
		return c, usagef("--server and --api-key are for --cluster; --local makes its own")
	case f.nodes < 1 || f.nodes > load.MaxNodes:
		return c, usagef("--nodes %d must be in [1, %d]", f.nodes, load.MaxNodes)
	case f.submitters < 0 || f.submitters > f.nodes:
		return c, usagef("--submitters %d must be in [0, --nodes=%d] (0 means all)", f.submitters, f.nodes)
	case f.dim < 1 || f.dim > load.MaxDim:
		return c, usagef("--dim %d must be in [1, %d]", f.dim, load.MaxDim)
	case f.rounds < 1 || f.rounds > load.MaxRounds:
		return c, usagef("--rounds %d must be in [1, %d]", f.rounds, load.MaxRounds)
	case f.nodes*f.rounds > load.MaxUpdates:
		return c, usagef("--nodes %d × --rounds %d = %d must be at most %d", f.nodes, f.rounds, f.nodes*f.rounds, load.MaxUpdates)
	case f.submitting() > audit.MaxResultEntries:
		return c, usagef("--nodes %d: at most %d nodes may submit in one round (the updates a round's result can name); add --submitters %d, the other nodes then hold idle connections", f.nodes, audit.MaxResultEntries, audit.MaxResultEntries)
	case f.byzantine < 0 || f.byzantine >= f.submitting():
		return c, usagef("--byzantine %d must be in [0, %d] (the submitting nodes less one)", f.byzantine, f.submitting()-1)
	case f.ramp < 0 || f.ramp > load.MaxRamp:
		return c, usagef("--ramp %v must be in [0, %v]", f.ramp, load.MaxRamp)
	case f.hold < 0 || f.hold > load.MaxHold:
		return c, usagef("--hold %v must be in [0, %v]", f.hold, load.MaxHold)
	case f.concurrency < 1 || f.concurrency > load.MaxConcurrency:
		return c, usagef("--concurrency %d must be in [1, %d]", f.concurrency, load.MaxConcurrency)
	case f.readers < 0 || f.readers > load.MaxAPIReaders:
		return c, usagef("--api-readers %d must be in [0, %d]", f.readers, load.MaxAPIReaders)
	case f.subs < 0 || f.subs > load.MaxSubscribers:
		return c, usagef("--api-subscribers %d must be in [0, %d]", f.subs, load.MaxSubscribers)
	case f.deadline < 100*time.Millisecond || f.deadline > 24*time.Hour:
		return c, usagef("--round-deadline %v must be in [100ms, 24h]", f.deadline)
	case f.timeout <= 0:
		return c, usagef("--timeout %v must be > 0", f.timeout)
	case f.every < 100*time.Millisecond || f.every > time.Hour:
		return c, usagef("--progress %v must be in [100ms, 1h]", f.every)
	case f.byzantine > 0 && !slices.Contains(load.Attacks, f.attack):
		return c, usagef("--attack %q must be one of %s", f.attack, strings.Join(load.Attacks, ", "))
	}
	if _, err := aggregate.New(f.rule, aggregate.Params{F: f.byzantine}); err != nil {
		return c, usagef("--rule %q: %v", f.rule, err)
	}
	job := f.job
	if job == "" {
		job = fmt.Sprintf("load-%d-%d", f.seed, time.Now().Unix())
	}
	c.JobID, c.Nodes, c.Byzantine, c.Attack, c.Dim, c.Rounds, c.Rule = job, f.nodes, f.byzantine, f.attack, f.dim, f.rounds, f.rule
	c.Ramp, c.Concurrency, c.APIReaders, c.Subscribers = f.ramp, f.concurrency, f.readers, f.subs
	c.Hold, c.Submitters = f.hold, f.submitters
	c.RoundDeadline, c.Timeout, c.Seed = f.deadline, f.timeout, f.seed
	if err := c.Validate(); err != nil {
		return c, usagef("--job %q: %v", job, strings.TrimPrefix(err.Error(), "load: "))
	}
	return c, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runLoad(env *cmdEnv, f *loadFlags) error {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	var tgt load.Target
	if f.clusterFile != "" {
		cl, err := node.LoadCluster(f.clusterFile)
		if err != nil {
			return usagef("--cluster %s: %v", f.clusterFile, err)
		}
		tgt = load.Target{API: f.servers, APIKey: f.apiKey, Cluster: cl}
		if err := tgt.Validate(); err != nil {
			return usagef("--server: %v", strings.TrimPrefix(err.Error(), "load: "))
		}
	}
	var logger *slog.Logger
	if f.logPath != "" {
		lf, err := os.Create(f.logPath)
		if err != nil {
			return usagef("--log %s: %v", f.logPath, err)
		}
		defer lf.Close()
		logger = slog.New(slog.NewJSONHandler(lf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if f.local > 0 {
		fmt.Fprintf(env.stderr, "starting a %d-member cluster on 127.0.0.1\n", f.local)
		l, err := load.StartLocal(env.ctx, f.local, "", logger)
		if err != nil {
			return err
		}
		defer l.Close()
		tgt = l.Target
	}
	tty := isTerminal(env.stderr)
	var mu sync.Mutex
	cfg.ProgressEvery = f.every
	if tty {
		cfg.ProgressEvery = 250 * time.Millisecond
	}
	cfg.Progress = func(p load.Progress) {
		line := fmt.Sprintf("%6.1fs  connected %d/%d  round %d (%d closed)  acked %d/%d  %.1f MB  errors %d",
			p.Elapsed.Seconds(), p.Connected, cfg.Nodes, p.Round, p.Closed, p.Acked, cfg.SubmittingNodes()*cfg.Rounds, float64(p.Bytes)/1e6, p.Errors)
		mu.Lock()
		defer mu.Unlock()
		if tty {
			fmt.Fprintf(env.stderr, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(env.stderr, line)
		}
	}
	fmt.Fprintf(env.stderr, "job %s: %d nodes (%d Byzantine), dim %d, %d rounds of %s\n",
		cfg.JobID, cfg.Nodes, cfg.Byzantine, cfg.Dim, cfg.Rounds, cfg.Rule)
	rep, err := load.Run(env.ctx, cfg, tgt)
	if tty {
		mu.Lock()
		fmt.Fprintln(env.stderr)
		mu.Unlock()
	}
	if err != nil {
		if env.ctx.Err() != nil {
			return errors.New("load interrupted before the job started")
		}
		return err
	}
	rep.Print(env.stdout)
	if f.jsonPath != "" {
		if err := rep.WriteJSON(f.jsonPath); err != nil {
			return err
		}
	}
	var problems []string
	if rep.Interrupted {
		problems = append(problems, "interrupted before the job ended")
	}
	if rep.Lost > 0 {
		problems = append(problems, fmt.Sprintf("%d acknowledged updates are missing from the audit log", rep.Lost))
	}
	if rep.Duplicated > 0 {
		problems = append(problems, fmt.Sprintf("%d (node, round) pairs are in the audit log more than once", rep.Duplicated))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
