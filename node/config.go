package node

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// Task names. A job's task (announced by the coordinators) must equal the
// node's data task for the node to take part.
const (
	TaskMFNRegime = "mfn-regime" // the MFN regime task (package learn, on sim)
	TaskMNIST     = "mnist"      // an IID partition of MNIST, for benchmarks
)

// Config configures one edge node. Build it from DefaultConfig and change
// what differs; Validate names the first bad field.
type Config struct {
	// NodeID is the id the node is enrolled under; empty means
	// crypto.NodeID of the identity's public key.
	NodeID string
	// IdentityDir holds the node's keys (mfn keygen --role node). Ignored
	// when Identity is set.
	IdentityDir string
	// Identity is the node's key material; nil means load IdentityDir.
	Identity *crypto.Identity
	// Cluster lists the coordinators (addresses, pinned keys, age
	// recipients); required.
	Cluster *Cluster
	// StateDir keeps the cached dataset and the record of acknowledged
	// submissions (required; created if missing).
	StateDir string

	// Data is the node's local data.
	Data DataConfig
	// Train is the local training per round.
	Train TrainConfig

	// Byzantine, when not empty, names an attack from aggregate.AttackNames:
	// the node crafts its updates with it instead of training honestly.
	Byzantine string
	// AttackHonest is how many honest updates a Byzantine node simulates
	// from its own data (bootstrap resamples) as the "honest updates" an
	// attack needs; zero means 4.
	AttackHonest int
	// AttackF is the number of colluding Byzantine nodes the attack
	// assumes (ALIE's z depends on it); zero means 1.
	AttackF int
	// AttackRule is the aggregation rule the adaptive attacks (opt-alie,
	// opt-ipm, min-max, min-sum) optimise against, as the node cannot see
	// the job's; empty means "trimmed-mean".
	AttackRule string

	// Seed drives every random choice of the node: data generation (with
	// Data.Seed), minibatch order, attack noise, backoff jitter.
	Seed uint64
	// BackoffMin and BackoffMax bound the jittered exponential backoff
	// between reconnection attempts; zero means 200 ms and 10 s. While
	// the cluster is only between leaders (members answer but none leads,
	// or a member is catching up) the wait is capped at LeaderWait.
	BackoffMin, BackoffMax time.Duration
	// LeaderWait caps the backoff while an election is under way, so the
	// node finds the new leader soon after it is elected; zero means 1 s.
	LeaderWait time.Duration
	// DialTimeout bounds one connection attempt to the coordinators
	// (QUIC handshake and Hello); zero means 2 s. A dead coordinator
	// costs this much at most, as all are dialled at once.
	DialTimeout time.Duration
	// LeaderCheck is how long a connection may carry no announcement
	// before the node asks its coordinator again, on a fresh connection,
	// who leads: a leader that stepped down without dying announces
	// nothing, and a member restarted at the same address answers with
	// another instance id. Zero means 2 s.
	LeaderCheck time.Duration
	// Protocol tunes the QUIC protocol. Zero fields mean the protocol's
	// defaults, except IdleTimeout: zero means DefaultIdleTimeout (3 s),
	// with keep-alives every third of it, so that a connection to a
	// coordinator that died or froze ends within seconds, in-flight
	// requests included, instead of after the request timeout.
	Protocol protocol.Config
	// Dialer opens connections; nil means QUIC with the node's identity
	// and the cluster's pinned keys (tests pass a protocol.MemNetwork
	// dialer).
	Dialer protocol.Dialer

	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Registry receives the node's Prometheus metrics; nil means none.
	Registry prometheus.Registerer
	// TracerProvider receives the node's spans (node.round, node.train,
	// node.seal, node.submit; see docs/TRACING.md); nil means no tracing,
	// at no cost.
	TracerProvider trace.TracerProvider
	// Progress, when set, is called while the local dataset is simulated
	// (done of total simulations).
	Progress func(done, total int)
	// OnEvent, when set, is called synchronously for every notable event
	// (connection, submission, skip); it must not block for long.
	OnEvent func(Event)
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time

	// RoundCheck, when set, makes Run verify beside the rounds what the
	// cluster did with each acknowledged update (roundcheck.go); nil
	// means no such check.
	RoundCheck *RoundCheckConfig
}

// DataConfig describes the node's local data.
type DataConfig struct {
	// Task is TaskMFNRegime or TaskMNIST.
	Task string
	// Samples is the number of local samples: simulations for the regime
	// task, the partition size cap for MNIST (zero: the whole partition).
	Samples int
	// Proportions is the site's regime mix (one non-negative weight per
	// regime of learn.MFNRegimes, not all zero); nil means equal.
	Proportions []float64
	// GridSize and Steps set the simulation size; zero means the task's
	// reference (32 and 48). Every site of a federation must use the same.
	GridSize, Steps int
	// Seed selects the site's simulations (or MNIST partition order).
	Seed uint64
	// HoldOut is the fraction of local samples kept out of training to
	// measure local accuracy; zero means 0.2, negative means none.
	HoldOut float64
	// Workers bounds concurrent simulations; zero means GOMAXPROCS.
	Workers int
	// MNISTDir is the MNIST directory; empty means the GoMNIST module's.
	MNISTDir string
	// Partition and Partitions select part Partition (0-based) of an IID
	// split of MNIST's training set into Partitions parts.
	Partition, Partitions int
	// File, when its Path is set, is the site's own data file, used
	// instead of the Task's built-in data (see FileData); Task then names
	// the jobs the node joins, empty meaning any whose model fits the file.
	File FileData
}

// TrainConfig is the local training of one round.
type TrainConfig struct {
	Epochs      int     // passes over the local training split (≥ 1)
	Batch       int     // minibatch size (≥ 1)
	LR          float64 // learning rate (> 0)
	Momentum    float64 // heavy-ball momentum in [0, 1); the buffer persists across rounds
	WeightDecay float64 // L2 weight decay (≥ 0)
}

// Failover timings used for zero Config fields. Raft elects a new leader
// in 1–3 s; with these a node notices a dead leader within
// DefaultIdleTimeout and polls for its successor every LeaderWait at most.
const (
	DefaultIdleTimeout = 3 * time.Second
	DefaultDialTimeout = 2 * time.Second
	DefaultLeaderCheck = 2 * time.Second
	DefaultLeaderWait  = time.Second
)

// DefaultConfig returns a node configuration for the MFN regime task with
// 80 local simulations, equal regime proportions and 2 epochs per round.
// Cluster, StateDir and an identity must still be set.
func DefaultConfig() Config {
	return Config{
		Data:  DataConfig{Task: TaskMFNRegime, Samples: 80, Seed: 1},
		Train: TrainConfig{Epochs: 2, Batch: 16, LR: 0.05, Momentum: 0.9},
		Seed:  1,
	}
}

// Validate checks the configuration and names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Identity == nil && c.IdentityDir == "":
		return fmt.Errorf("node: Config.IdentityDir is empty: the node needs its keys (mfn keygen --role node)")
	case c.Cluster == nil:
		return fmt.Errorf("node: Config.Cluster is nil: the node needs the coordinators' addresses and keys")
	case c.StateDir == "":
		return fmt.Errorf("node: Config.StateDir is empty")
	case len(c.NodeID) > crypto.MaxNodeIDLen:
		return fmt.Errorf("node: Config.NodeID is %d bytes, at most %d", len(c.NodeID), crypto.MaxNodeIDLen)
	case c.BackoffMin < 0 || c.BackoffMax < 0 || (c.BackoffMax > 0 && c.BackoffMin > c.BackoffMax):
		return fmt.Errorf("node: Config.BackoffMin %v and BackoffMax %v must be ≥ 0 with min ≤ max", c.BackoffMin, c.BackoffMax)
	case c.LeaderCheck < 0 || c.DialTimeout < 0 || c.LeaderWait < 0:
		return fmt.Errorf("node: Config.LeaderCheck %v, DialTimeout %v and LeaderWait %v must be ≥ 0", c.LeaderCheck, c.DialTimeout, c.LeaderWait)
	case c.AttackHonest < 0 || c.AttackF < 0:
		return fmt.Errorf("node: Config.AttackHonest %d and AttackF %d must be ≥ 0", c.AttackHonest, c.AttackF)
	}
	if c.RoundCheck != nil {
		if err := c.RoundCheck.Validate(); err != nil {
			return err
		}
	}
	if c.Byzantine != "" && !slices.Contains(aggregate.AttackNames, c.Byzantine) {
		return fmt.Errorf("node: Config.Byzantine %q is not an attack; valid: %v", c.Byzantine, aggregate.AttackNames)
	}
	if err := c.Cluster.Validate(); err != nil {
		return fmt.Errorf("node: Config.Cluster: %w", err)
	}
	if err := c.Data.Validate(); err != nil {
		return err
	}
	if err := c.Train.Validate(); err != nil {
		return err
	}
	return c.Protocol.Validate()
}

// Validate names the first bad field of d.
func (d DataConfig) Validate() error {
	switch {
	case d.File.Path != "":
		if err := d.File.validate(); err != nil {
			return err
		}
	case d.Task == TaskMFNRegime:
		if d.Samples < 2 {
			return fmt.Errorf("node: Config.Data.Samples %d must be ≥ 2 for %s", d.Samples, d.Task)
		}
		if d.Proportions != nil {
			if len(d.Proportions) != NumRegimes {
				return fmt.Errorf("node: Config.Data.Proportions has %d values, want %d (one per regime)", len(d.Proportions), NumRegimes)
			}
			var sum float64
			for i, p := range d.Proportions {
				if !(p >= 0) || p > 1e9 {
					return fmt.Errorf("node: Config.Data.Proportions[%d] = %v must be ≥ 0", i, p)
				}
				sum += p
			}
			if sum <= 0 {
				return fmt.Errorf("node: Config.Data.Proportions must not all be zero")
			}
		}
		if d.GridSize < 0 || d.GridSize == 1 || d.GridSize > 1024 || d.Steps < 0 || d.Steps > 100000 {
			return fmt.Errorf("node: Config.Data.GridSize %d (2..1024) or Steps %d (1..100000) out of range", d.GridSize, d.Steps)
		}
	case d.Task == TaskMNIST:
		if d.Samples < 0 {
			return fmt.Errorf("node: Config.Data.Samples %d must be ≥ 0 for %s", d.Samples, d.Task)
		}
		if d.Partitions < 1 || d.Partition < 0 || d.Partition >= d.Partitions {
			return fmt.Errorf("node: Config.Data.Partition %d must be in [0, Partitions=%d)", d.Partition, d.Partitions)
		}
	default:
		return fmt.Errorf("node: Config.Data.Task %q must be %s or %s", d.Task, TaskMFNRegime, TaskMNIST)
	}
	if d.HoldOut >= 0.9 {
		return fmt.Errorf("node: Config.Data.HoldOut %v must be < 0.9", d.HoldOut)
	}
	if d.Workers < 0 {
		return fmt.Errorf("node: Config.Data.Workers %d must be ≥ 0", d.Workers)
	}
	return nil
}

// Validate names the first bad field of t.
func (t TrainConfig) Validate() error {
	switch {
	case t.Epochs < 1 || t.Epochs > 10000:
		return fmt.Errorf("node: Config.Train.Epochs %d must be in [1, 10000]", t.Epochs)
	case t.Batch < 1:
		return fmt.Errorf("node: Config.Train.Batch %d must be ≥ 1", t.Batch)
	case !(t.LR > 0) || t.LR > 100:
		return fmt.Errorf("node: Config.Train.LR %v must be in (0, 100]", t.LR)
	case !(t.Momentum >= 0) || t.Momentum >= 1:
		return fmt.Errorf("node: Config.Train.Momentum %v must be in [0, 1)", t.Momentum)
	case !(t.WeightDecay >= 0):
		return fmt.Errorf("node: Config.Train.WeightDecay %v must be ≥ 0", t.WeightDecay)
	}
	return nil
}

func (c *Config) withDefaults() Config {
	cp := *c
	if cp.AttackHonest == 0 {
		cp.AttackHonest = 4
	}
	if cp.AttackF == 0 {
		cp.AttackF = 1
	}
	if cp.AttackRule == "" {
		cp.AttackRule = "trimmed-mean"
	}
	if cp.BackoffMin == 0 {
		cp.BackoffMin = 200 * time.Millisecond
	}
	if cp.BackoffMax == 0 {
		cp.BackoffMax = 10 * time.Second
	}
	if cp.BackoffMin > cp.BackoffMax {
		cp.BackoffMin = cp.BackoffMax
	}
	if cp.DialTimeout == 0 {
		cp.DialTimeout = DefaultDialTimeout
	}
	if cp.LeaderCheck == 0 {
		cp.LeaderCheck = DefaultLeaderCheck
	}
	if cp.LeaderWait == 0 {
		cp.LeaderWait = DefaultLeaderWait
	}
	if cp.Protocol.IdleTimeout == 0 {
		cp.Protocol.IdleTimeout = DefaultIdleTimeout
	}
	if cp.Logger == nil {
		cp.Logger = slog.New(slog.DiscardHandler)
	}
	if cp.Clock == nil {
		cp.Clock = time.Now
	}
	if cp.Data.HoldOut == 0 {
		cp.Data.HoldOut = 0.2
	}
	return cp
}

// newRand returns a PCG source for one purpose of the node; stream
// separates purposes so that they never share random numbers.
func newRand(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}
