package load

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/node"
)

// Limits of a run. They bound what the load generator itself holds: one
// identity and one QUIC connection per node, and at most Concurrency
// updates being built or submitted at once (each ≈ 16 bytes per
// parameter while built: float64 values, float32 encoding, sealed copy).
const (
	MaxNodes       = 20000
	MaxDim         = 1 << 27 // the cluster's own limit on a job's dim
	MaxRounds      = 10000
	MaxConcurrency = 4096
	MaxAPIReaders  = 1000
	MaxSubscribers = 1000
	MaxRamp        = time.Hour
	MaxHold        = 24 * time.Hour
	// MaxUpdates bounds Nodes × Rounds: the run keeps a record and a
	// latency sample (≈ 60 bytes) per acknowledged update.
	MaxUpdates = 10_000_000
	// MaxInflightBytes bounds the memory of updates in flight: the
	// effective concurrency is lowered to fit it.
	MaxInflightBytes = 2 << 30
)

// Attacks lists the Byzantine nodes' update kinds: "sign-flip" sends the
// honest values negated and scaled by 10; "large" sends values 10^4 times
// the honest scale.
var Attacks = []string{"sign-flip", "large"}

// Config describes a run. DefaultConfig gives the defaults; JobID has
// none and must be set.
type Config struct {
	// JobID is the job the run creates (1–64 characters of [A-Za-z0-9._-]).
	JobID string
	// Nodes virtual nodes, of which Byzantine send Attack updates.
	Nodes int
	// Submitters is how many of the nodes submit updates (the first ones);
	// the others only connect and subscribe, idle connections the cluster
	// holds. Zero means Nodes. A round can name at most
	// audit.MaxResultEntries updates, so more submitters are refused.
	Submitters int
	Byzantine  int
	Attack     string
	// Dim is the number of float32 parameters of every update.
	Dim int
	// Rounds is the job's number of rounds; Rule its aggregation rule
	// (rule.f is set to Byzantine).
	Rounds int
	Rule   string
	// Ramp spreads the nodes' connections evenly over this duration (zero
	// connects them all at once).
	Ramp time.Duration
	// Hold keeps every node connected and subscribed, idle, for this long
	// after the job's last round, while the members' resources are still
	// sampled (Report.HoldSeconds, HeldConnections, HoldRSS): how much a
	// cluster spends holding Nodes connections between rounds.
	Hold time.Duration
	// Concurrency bounds the updates being sealed or submitted at once.
	Concurrency int
	// APIReaders run concurrent REST reads (cluster status, jobs, the
	// job, its rounds) back to back with ReaderPause between requests;
	// Subscribers hold WebSocket event subscriptions to the job.
	APIReaders  int
	Subscribers int
	ReaderPause time.Duration
	// RoundDeadline is the job's soft round deadline; a round closes as
	// soon as every node submitted.
	RoundDeadline time.Duration
	// Timeout bounds the whole run; the report covers what ran.
	Timeout time.Duration
	// Seed makes node keys and update values reproducible.
	Seed uint64
	// Progress, if set, is called every ProgressEvery (zero means 1 s)
	// from its own goroutine.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// DefaultConfig is 100 nodes, d = 10,000, 3 rounds of fedavg.
func DefaultConfig() Config {
	return Config{
		Nodes: 100, Dim: 10000, Rounds: 3, Rule: "fedavg", Attack: "sign-flip",
		Concurrency: 64, ReaderPause: 50 * time.Millisecond,
		RoundDeadline: 10 * time.Minute, Timeout: 30 * time.Minute, Seed: 1,
	}
}

// Validate names the first bad field and its valid range.
func (c *Config) Validate() error {
	switch {
	case c.JobID == "" || len(c.JobID) > 64:
		return fmt.Errorf("load: JobID %q must have 1-64 characters", c.JobID)
	case c.Nodes < 1 || c.Nodes > MaxNodes:
		return fmt.Errorf("load: Nodes %d must be in [1, %d]", c.Nodes, MaxNodes)
	case c.Submitters < 0 || c.Submitters > c.Nodes:
		return fmt.Errorf("load: Submitters %d must be in [0, Nodes=%d] (0 means Nodes)", c.Submitters, c.Nodes)
	case c.Byzantine > 0 && !slices.Contains(Attacks, c.Attack):
		return fmt.Errorf("load: Attack %q must be one of %v", c.Attack, Attacks)
	case c.Dim < 1 || c.Dim > MaxDim:
		return fmt.Errorf("load: Dim %d must be in [1, %d]", c.Dim, MaxDim)
	case c.Rounds < 1 || c.Rounds > MaxRounds:
		return fmt.Errorf("load: Rounds %d must be in [1, %d]", c.Rounds, MaxRounds)
	case c.Nodes*c.Rounds > MaxUpdates:
		return fmt.Errorf("load: Nodes × Rounds = %d must be at most %d", c.Nodes*c.Rounds, MaxUpdates)
	case c.submitters() > audit.MaxResultEntries:
		return fmt.Errorf("load: %d submitting nodes exceed the %d updates one round's result can name (audit.MaxResultEntries): set Submitters (--submitters) to at most %d; the other nodes then hold idle connections", c.submitters(), audit.MaxResultEntries, audit.MaxResultEntries)
	case c.Byzantine < 0 || c.Byzantine >= c.submitters():
		return fmt.Errorf("load: Byzantine %d must be in [0, Submitters-1=%d]", c.Byzantine, c.submitters()-1)
	case c.Rule == "":
		return errors.New("load: Rule must not be empty")
	case c.Ramp < 0 || c.Ramp > MaxRamp:
		return fmt.Errorf("load: Ramp %v must be in [0, %v]", c.Ramp, MaxRamp)
	case c.Hold < 0 || c.Hold > MaxHold:
		return fmt.Errorf("load: Hold %v must be in [0, %v]", c.Hold, MaxHold)
	case c.Concurrency < 1 || c.Concurrency > MaxConcurrency:
		return fmt.Errorf("load: Concurrency %d must be in [1, %d]", c.Concurrency, MaxConcurrency)
	case c.APIReaders < 0 || c.APIReaders > MaxAPIReaders:
		return fmt.Errorf("load: APIReaders %d must be in [0, %d]", c.APIReaders, MaxAPIReaders)
	case c.Subscribers < 0 || c.Subscribers > MaxSubscribers:
		return fmt.Errorf("load: Subscribers %d must be in [0, %d]", c.Subscribers, MaxSubscribers)
	case c.ReaderPause < 0 || c.ReaderPause > time.Minute:
		return fmt.Errorf("load: ReaderPause %v must be in [0, 1m]", c.ReaderPause)
	case c.RoundDeadline < 100*time.Millisecond || c.RoundDeadline > 24*time.Hour:
		return fmt.Errorf("load: RoundDeadline %v must be in [100ms, 24h]", c.RoundDeadline)
	case c.Timeout <= 0:
		return fmt.Errorf("load: Timeout %v must be > 0", c.Timeout)
	case c.ProgressEvery < 0:
		return fmt.Errorf("load: ProgressEvery %v must be ≥ 0", c.ProgressEvery)
	}
	return nil
}

// SubmittingNodes is the number of nodes that submit updates:
// Submitters, or Nodes when it is zero.
func (c *Config) SubmittingNodes() int { return c.submitters() }

func (c *Config) submitters() int {
	if c.Submitters == 0 {
		return c.Nodes
	}
	return c.Submitters
}

// inflight is the effective number of updates in flight: Concurrency
// lowered so that they fit MaxInflightBytes. A streamed update
// (vstream.go) takes streamedUpdateBytes whatever its size.
func (c *Config) inflight() int {
	per := int64(c.Dim) * 16
	if streamed(c.Dim) {
		per = streamedUpdateBytes
	}
	return int(max(1, min(int64(c.Concurrency), MaxInflightBytes/per)))
}

// Target is the cluster a run drives.
type Target struct {
	// API lists base URLs of members' HTTP APIs ("http://host:port");
	// API[0] takes the writes (a follower forwards them to the leader).
	API []string
	// APIKey is an operator key (enrolment and job creation need it).
	APIKey string
	// Cluster gives the members' QUIC addresses, pinned keys and age
	// recipients, as a node's cluster file does.
	Cluster *node.Cluster
	// HTTPClient is used for the API and /metrics; nil means a client
	// with a 30 s timeout.
	HTTPClient *http.Client
	// SelfMetrics reads the coordinators' resources from this process
	// (a Local cluster) instead of their /metrics.
	SelfMetrics bool
}

// Validate checks that the target is complete.
func (t *Target) Validate() error {
	if len(t.API) == 0 {
		return errors.New("load: Target.API: no API URL")
	}
	for _, a := range t.API {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("load: Target.API %q is not an http(s)://host:port URL", a)
		}
	}
	if t.Cluster == nil {
		return errors.New("load: Target.Cluster is nil")
	}
	return t.Cluster.Validate()
}

// Progress is a snapshot of a running load.
type Progress struct {
	Elapsed   time.Duration
	Connected int   // nodes with a live subscription
	Acked     int   // acknowledged updates
	Bytes     int64 // sealed bytes acknowledged
	Errors    int   // errors of any kind
	Round     uint64
	Closed    int // rounds closed
}
