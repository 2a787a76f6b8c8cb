package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/mfn/mfn/audit"
)

// RoundCheckConfig makes a running node verify, beside its rounds, what
// the cluster did with each update it acknowledged (CheckRounds), and
// export the settled outcomes as metrics (mfn_node_round_outcomes_total,
// mfn_node_round_last_verified) and log lines.
type RoundCheckConfig struct {
	// Source answers result leaves and proof bundles (the HTTP API with
	// an auditor key); required. Nothing it says is trusted unproven.
	Source RoundSource
	// Verifier is the audit log key's verifier; required.
	Verifier note.Verifier
	// Members, when not empty, are the coordinator members' keys: a
	// majority of them must have cosigned each result's checkpoint.
	Members audit.MemberKeys
	// Every is the time between checks; zero means 30 s. A check also
	// runs soon after the node sees a new round of a job it took part in
	// announced (its earlier rounds are then closed).
	Every time.Duration
	// Timeout bounds each request to Source; zero means 30 s.
	Timeout time.Duration
	// MaxTries is how many checks a record that has no result yet or
	// does not verify gets before it is counted as that last outcome;
	// zero means 10. Checks of a round that has not ended do not count
	// when Source is a RoundEndSource, for MaxWait after the record's
	// acknowledgement.
	MaxTries int
	// MaxWait bounds how long after its acknowledgement a record's checks
	// may be spared because the source says its round still runs; zero
	// means 24 h.
	MaxWait time.Duration
}

// RoundEndSource is a RoundSource that also tells whether a round has
// ended (closed or failed). When the round check's Source implements it,
// a check of a round that has not ended yet (no result, or a proof not
// yet available) spends none of its record's tries, for at most
// RoundCheckConfig.MaxWait: a long round is not counted as no-result
// while it runs.
type RoundEndSource interface {
	RoundSource
	RoundEnded(ctx context.Context, job string, round uint64) (bool, error)
}

// Defaults of RoundCheckConfig's zero fields.
const (
	DefaultRoundCheckEvery    = 30 * time.Second
	DefaultRoundCheckTimeout  = 30 * time.Second
	DefaultRoundCheckMaxTries = 10
	DefaultRoundCheckMaxWait  = 24 * time.Hour
)

// Validate names the first bad field.
func (c *RoundCheckConfig) Validate() error {
	switch {
	case c.Source == nil:
		return errors.New("node: Config.RoundCheck.Source is nil: the node needs a source of proof bundles to verify its rounds")
	case c.Verifier == nil:
		return errors.New("node: Config.RoundCheck.Verifier is nil: the node needs the audit log key to verify its rounds")
	case c.Every < 0 || c.Timeout < 0 || c.MaxTries < 0 || c.MaxWait < 0:
		return fmt.Errorf("node: Config.RoundCheck.Every %v, Timeout %v, MaxTries %d and MaxWait %v must be ≥ 0", c.Every, c.Timeout, c.MaxTries, c.MaxWait)
	}
	return nil
}

func (c RoundCheckConfig) withDefaults() RoundCheckConfig {
	if c.Every == 0 {
		c.Every = DefaultRoundCheckEvery
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultRoundCheckTimeout
	}
	if c.MaxTries == 0 {
		c.MaxTries = DefaultRoundCheckMaxTries
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultRoundCheckMaxWait
	}
	return c
}

// settledOutcome reports outcomes that no later check changes: the
// signed result of the round says it (or the round's result omits the
// update, which is final too).
func settledOutcome(o string) bool {
	switch o {
	case OutcomeUsed, OutcomeRejected, OutcomeNotInput, OutcomeMissing:
		return true
	}
	return false
}

// roundChecker runs CheckRounds on the node's acknowledged records that
// are not settled yet, one check at a time. What it has settled lives in
// memory (a restarted node verifies its records again); it is bounded by
// the node's own records.
type roundChecker struct {
	cfg   RoundCheckConfig
	node  string
	state *State
	m     *metrics
	log   *slog.Logger
	now   func() time.Time
	kick  chan struct{} // a check is wanted soon (buffered, 1)

	mu      sync.Mutex
	settled map[roundKey]string // outcome counted
	tries   map[roundKey]int    // checks of an unsettled record so far
	last    map[string]uint64   // job → last verified round
}

func newRoundChecker(cfg RoundCheckConfig, node string, state *State, m *metrics, log *slog.Logger, now func() time.Time) *roundChecker {
	rc := &roundChecker{
		cfg: cfg.withDefaults(), node: node, state: state, m: m, log: log.With("component", "round-check"), now: now,
		kick: make(chan struct{}, 1), settled: map[roundKey]string{}, tries: map[roundKey]int{}, last: map[string]uint64{},
	}
	for _, o := range []string{OutcomeUsed, OutcomeRejected, OutcomeNotInput, OutcomeMissing, OutcomeNoResult, OutcomeUnverified} {
		m.roundOutcomes.WithLabelValues(o).Add(0)
	}
	return rc
}

// announced tells the checker that job's round was announced: if the
// node has an unsettled record of an earlier round of job, that round is
// closed and a check is due. It never blocks.
func (rc *roundChecker) announced(job string, round uint64) {
	due := false
	for _, r := range rc.state.Records() {
		if r.Job == job && r.Round < round && !r.Duplicate && !rc.isSettled(roundKey{r.Job, r.Round}) {
			due = true
			break
		}
	}
	if !due {
		return
	}
	select {
	case rc.kick <- struct{}{}:
	default:
	}
}

func (rc *roundChecker) isSettled(k roundKey) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	_, ok := rc.settled[k]
	return ok
}

// run checks at once, then every Every and when kicked, until ctx ends.
func (rc *roundChecker) run(ctx context.Context) {
	t := time.NewTicker(rc.cfg.Every)
	defer t.Stop()
	for {
		rc.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-rc.kick:
		}
	}
}

// pass checks every unsettled record once, oldest job and round first.
func (rc *roundChecker) pass(ctx context.Context) {
	src := timeoutSource{rc.cfg.Source, rc.cfg.Timeout}
	for _, r := range rc.state.Records() {
		k := roundKey{r.Job, r.Round}
		if r.Duplicate || rc.isSettled(k) {
			// A duplicate record's leaf is unknown: nothing to verify.
			continue
		}
		if ctx.Err() != nil {
			return
		}
		checks := CheckRounds(ctx, rc.node, []Record{r}, src, rc.cfg.Verifier, rc.cfg.Members)
		if len(checks) != 1 || ctx.Err() != nil {
			return // stopped: the record stays unsettled
		}
		c := checks[0]
		spend := true
		es, ok := rc.cfg.Source.(RoundEndSource)
		if ok && (c.Outcome == OutcomeNoResult || c.Outcome == OutcomeUnverified) && rc.now().Sub(r.AckedAt) < rc.cfg.MaxWait {
			// A round still running spends no try (while MaxWait lasts).
			rctx, cancel := context.WithTimeout(ctx, rc.cfg.Timeout)
			ended, err := es.RoundEnded(rctx, r.Job, r.Round)
			cancel()
			spend = err != nil || ended
		}
		rc.record(k, c, spend)
	}
}

// record counts c when it is settled, or when k has had its tries; spend
// is false for a check that does not count as a try.
func (rc *roundChecker) record(k roundKey, c RoundCheck, spend bool) {
	rc.mu.Lock()
	if spend {
		rc.tries[k]++
	}
	tries := rc.tries[k]
	if !settledOutcome(c.Outcome) && tries < rc.cfg.MaxTries {
		rc.mu.Unlock()
		rc.log.Debug("round not settled yet; will check again", "job", c.Job, "round", c.Round, "outcome", c.Outcome,
			"err", c.Error, "tries", tries, "max_tries", rc.cfg.MaxTries)
		return
	}
	delete(rc.tries, k)
	rc.settled[k] = c.Outcome
	verified := settledOutcome(c.Outcome)
	newLast := false
	if verified {
		if l, ok := rc.last[c.Job]; !ok || c.Round > l {
			rc.last[c.Job], newLast = c.Round, true
		}
	}
	rc.mu.Unlock()

	rc.m.roundOutcomes.WithLabelValues(c.Outcome).Inc()
	if newLast {
		rc.m.lastVerified.WithLabelValues(c.Job).Set(float64(c.Round))
	}
	attrs := []any{"job", c.Job, "round", c.Round, "outcome", c.Outcome, "leaf_index", c.LeafIndex}
	if c.ResultLeaf != nil {
		attrs = append(attrs, "result_leaf", *c.ResultLeaf, "checkpoint", c.Checkpoint, "rule", c.Rule)
	}
	if c.Reason != "" {
		attrs = append(attrs, "reason", c.Reason)
	}
	if c.Score != nil {
		attrs = append(attrs, "score", strconv.FormatFloat(*c.Score, 'g', -1, 64))
	}
	switch c.Outcome {
	case OutcomeUsed, OutcomeRejected, OutcomeNotInput:
		rc.log.Info("round verified", attrs...)
	case OutcomeMissing:
		rc.log.Error("round verified: the signed result omits this node's acknowledged update", attrs...)
	case OutcomeUnverified:
		rc.log.Error("round not verified", append(attrs, "err", c.Error, "tries", tries)...)
	default: // no-result after its tries
		rc.log.Warn("round has no signed result", append(attrs, "tries", tries)...)
	}
}

// outcomes returns the settled outcome of each record checked so far.
func (rc *roundChecker) outcomes() map[roundKey]string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[roundKey]string, len(rc.settled))
	for k, v := range rc.settled {
		out[k] = v
	}
	return out
}

// timeoutSource bounds each request of a RoundSource.
type timeoutSource struct {
	src RoundSource
	d   time.Duration
}

func (s timeoutSource) ResultLeaf(ctx context.Context, job string, round uint64) (uint64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.src.ResultLeaf(ctx, job, round)
}

func (s timeoutSource) Bundle(ctx context.Context, leaf uint64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.src.Bundle(ctx, leaf)
}
