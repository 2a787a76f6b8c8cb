package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/privacy"
)

// The round engine runs on the leader only. Every Tick (or when poked by
// an accepted update or a new job) it walks the running jobs:
//
//	no round, or the last one ended  → OpenRound (next number, base = latest model)
//	open, updates ≥ max              → SealRound, then close
//	open, deadline passed, ≥ min     → SealRound, then close
//	open, hard deadline passed       → FailRound
//	closing                          → aggregate and CloseRound (or FailRound)
//
// Every decision is a Raft entry carrying the leader's clock reading, and
// deadlines are absolute times in the replicated state, so a new leader
// picks up every round exactly where the old one left it. SealRound stops
// intake before aggregation: the result is computed over exactly the
// updates committed before the seal, and CloseRound is rejected as stale
// if the round's update count differs.

// lead runs the leader's duties until ctx ends (leadership lost).
func (c *Coordinator) lead(ctx context.Context) {
	c.logger.Info("leading")
	defer c.logger.Info("no longer leading")
	// Apply every entry of earlier terms before deciding anything.
	for {
		err := c.wait(c.raft.Barrier(c.cfg.ApplyTimeout))
		if err == nil {
			break
		}
		c.logger.Warn("barrier after election", errAttr(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.cfg.Tick):
		}
	}
	c.leading.Store(true)
	defer c.leading.Store(false)
	c.resetAttestWaits()
	c.registerSelf(ctx)
	c.reconcileMembers(ctx)
	learned := make(chan struct{})
	go func() { // dials members: must not delay the rounds
		defer close(learned)
		c.learnMembers(ctx)
	}()
	defer func() { <-learned }()
	c.announceOpen()
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	lastCP := time.Now()
	for {
		ended := c.step(ctx)
		if c.checkpointDue(ended, lastCP) {
			if err := c.checkpoint(ctx); err != nil {
				c.logger.Warn("checkpoint", errAttr(err))
			} else {
				lastCP = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
		}
	}
}

// registerSelf records this member's addresses in the replicated member
// list if they are missing or changed, so NotLeaderError can point here.
func (c *Coordinator) registerSelf(ctx context.Context) {
	me := Member{ID: c.cfg.ID, RaftAddr: c.cfg.RaftAddr, QUICAddr: c.cfg.QUICAddr, HTTPAddr: c.cfg.HTTPAddr, PublicKey: c.cfg.PublicKey}
	if cur, ok := c.fsm.member(c.cfg.ID); ok && cur.RaftAddr == me.RaftAddr && cur.QUICAddr == me.QUICAddr &&
		cur.HTTPAddr == me.HTTPAddr && bytes.Equal(cur.PublicKey, me.PublicKey) {
		return
	}
	if _, err := c.propose(ctx, cmdRegisterMember, &registerMemberCmd{Member: me}); err != nil {
		c.logger.Warn("register self", errAttr(err))
	}
}

// step advances every running job by at most one transition and reports
// whether a round ended.
func (c *Coordinator) step(ctx context.Context) (ended bool) {
	for _, j := range c.fsm.jobList() {
		if ctx.Err() != nil {
			return ended
		}
		if j.State != JobRunning {
			c.crossSiteStep(j) // crosssite.go
			continue
		}
		e, err := c.stepJob(ctx, j)
		if err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrStale) {
			c.logger.Warn("round engine", slog.String("job", j.Spec.ID), errAttr(err))
		}
		ended = ended || e
	}
	return ended
}

func (c *Coordinator) stepJob(ctx context.Context, j Job) (ended bool, err error) {
	if stopped, err := c.stopDisputed(ctx, j); stopped {
		return true, err
	}
	r, ok := c.fsm.roundSummary(j.Spec.ID, j.Rounds)
	now := c.now()
	switch {
	case !ok || r.State == RoundClosed || r.State == RoundFailed:
		if j.Completed >= uint64(j.Spec.Rounds) {
			return false, nil
		}
		if err := c.checkBudget(ctx, j, now); err != nil {
			return false, err
		}
		return false, c.openRound(ctx, j, now)
	case r.State == RoundOpen:
		spec := j.Spec
		full := r.Updates >= spec.MaxUpdates
		due := !now.Before(r.Deadline) && r.Updates >= spec.MinUpdates
		if full || due {
			if _, err := c.propose(ctx, cmdSealRound, &sealRoundCmd{Job: spec.ID, Round: r.Number, At: now, Attest: c.cfg.AttestQuorum}); err != nil {
				return false, err
			}
			c.retract(spec.ID, r.Number)
			return true, c.closeRound(ctx, j, r.Number)
		}
		if !now.Before(r.HardDeadline) {
			reason := fmt.Sprintf("%d of %d required updates by the hard deadline", r.Updates, spec.MinUpdates)
			return true, c.failRound(ctx, j, r.Number, reason)
		}
		return false, nil
	case r.State == RoundClosing:
		return true, c.closeRound(ctx, j, r.Number)
	}
	return false, nil
}

// errBudgetStop is checkBudget's answer once it has ended the job.
var errBudgetStop = fmt.Errorf("%w: privacy budget exhausted, job ended", ErrStale)

// checkBudget refuses to open a DP job's next round when one more step
// of the accountant would take ε past the job's limit: the job ends as
// failed with the accountant's figures as its reason, so it stops before
// it overspends rather than after.
func (c *Coordinator) checkBudget(ctx context.Context, j Job, now time.Time) error {
	p := j.Privacy
	if p == nil || p.MaxEpsilon == 0 || p.Accountant == nil {
		return nil
	}
	_, err := p.Accountant.CheckNext(p.SampleRate, p.NoiseMultiplier, p.Delta, p.MaxEpsilon)
	if err == nil {
		return nil
	}
	reason := fmt.Sprintf("privacy budget: round %d not opened: %v", j.Rounds+1, err)
	if _, perr := c.propose(ctx, cmdStopJob, &stopJobCmd{ID: j.Spec.ID, Reason: reason, At: now, Fail: true}); perr != nil {
		return perr
	}
	c.logger.Warn("job ended by its privacy budget", slog.String("job", j.Spec.ID), slog.String("reason", reason))
	return errBudgetStop
}

func (c *Coordinator) openRound(ctx context.Context, j Job, now time.Time) error {
	cmd := &openRoundCmd{
		Job: j.Spec.ID, Round: j.Rounds + 1, BaseVersion: j.ModelVersion, BaseHash: j.ModelHash,
		OpenedAt: now, Deadline: now.Add(time.Duration(j.Spec.RoundDeadline)), HardDeadline: now.Add(j.Spec.hardDeadline()),
	}
	c.fsm.sampleFor(cmd)
	if _, err := c.propose(ctx, cmdOpenRound, cmd); err != nil {
		return err
	}
	c.logger.Info("round opened", slog.String("job", cmd.Job), slog.Uint64("round", cmd.Round), slog.Time("deadline", cmd.Deadline))
	if cmd.SampleSeed != nil && len(cmd.Sample) < j.Spec.MinUpdates {
		// The round could never close: fail it now rather than at its hard
		// deadline (the next round draws a new sample).
		return c.failRound(ctx, j, cmd.Round, fmt.Sprintf("the sample holds %d of %d nodes, fewer than min_updates %d (rate %v)",
			len(cmd.Sample), cmd.Population, j.Spec.MinUpdates, j.Privacy.SampleRate))
	}
	if cmd.SampleSeed != nil && len(cmd.Sample) > j.Spec.MaxUpdates {
		c.logger.Warn("the round's sample exceeds max_updates: sampled nodes beyond it will find the round full",
			slog.String("job", cmd.Job), slog.Uint64("round", cmd.Round), slog.Int("sample", len(cmd.Sample)), slog.Int("max_updates", j.Spec.MaxUpdates))
	}
	c.announce(j, cmd.Round, cmd.BaseVersion, cmd.BaseHash, cmd.Deadline, cmd.HardDeadline)
	return nil
}

func (c *Coordinator) announce(j Job, round, baseVersion uint64, baseHash Hash, deadline, hard time.Time) {
	a := c.announcer()
	if a == nil {
		return
	}
	a.Announce(Announcement{
		Job: j.Spec.ID, Round: round, Task: j.Spec.Task, Dim: j.Spec.Dim, Shape: j.Spec.Shape,
		BaseVersion: baseVersion, BaseHash: baseHash, Deadline: deadline, HardDeadline: hard,
		MinUpdates: j.Spec.MinUpdates, MaxUpdates: j.Spec.MaxUpdates, DP: announcedDP(j), Schema: j.Spec.Schema.Encode(),
		Nodes: c.fsm.sampleKeys(j.Spec.ID, round),
	})
}

// announcedDP is the "dp" metadata of a DP job's announcements: the mode,
// clip and resolved noise multiplier (privacy.Announced); "" without DP.
func announcedDP(j Job) string {
	p := j.Privacy
	if p == nil {
		return ""
	}
	return privacy.Announced{Mode: p.Mode, Clip: p.Clip, NoiseMultiplier: p.NoiseMultiplier}.Encode()
}

// announceOpen re-announces every open round (a new leader's nodes have
// just reconnected to it).
func (c *Coordinator) announceOpen() {
	an := c.announcer()
	if an == nil {
		return
	}
	for _, a := range c.OpenRounds() {
		an.Announce(a)
	}
}

// retract withdraws the announcement of a round that ended.
func (c *Coordinator) retract(job string, round uint64) {
	if r, ok := c.announcer().(Retracter); ok {
		r.Retract(job, round)
	}
}

// OpenRounds returns an announcement for every round currently open, by
// job id; a node that connects asks for them.
func (c *Coordinator) OpenRounds() []Announcement {
	var out []Announcement
	for _, j := range c.fsm.jobList() {
		if j.State != JobRunning {
			continue
		}
		r, ok := c.fsm.roundSummary(j.Spec.ID, j.Rounds)
		if !ok || r.State != RoundOpen {
			continue
		}
		out = append(out, Announcement{
			Job: j.Spec.ID, Round: r.Number, Task: j.Spec.Task, Dim: j.Spec.Dim, Shape: j.Spec.Shape,
			BaseVersion: r.BaseVersion, BaseHash: r.BaseHash, Deadline: r.Deadline, HardDeadline: r.HardDeadline,
			MinUpdates: j.Spec.MinUpdates, MaxUpdates: j.Spec.MaxUpdates, DP: announcedDP(j), Schema: j.Spec.Schema.Encode(),
			Nodes: c.fsm.sampleKeys(j.Spec.ID, r.Number),
		})
	}
	return append(out, c.crossSiteOpen()...) // crosssite.go
}

func (c *Coordinator) failRound(ctx context.Context, j Job, round uint64, reason string) error {
	if _, err := c.propose(ctx, cmdFailRound, &failRoundCmd{Job: j.Spec.ID, Round: round, Reason: reason, At: c.now()}); err != nil {
		return err
	}
	c.retract(j.Spec.ID, round)
	c.metrics.rounds.WithLabelValues("failed").Inc()
	c.logger.Warn("round failed", slog.String("job", j.Spec.ID), slog.Uint64("round", round), slog.String("reason", reason))
	return nil
}

// closeRound aggregates a sealed round and commits its result, or fails
// the round when the rule cannot run.
func (c *Coordinator) closeRound(ctx context.Context, j Job, round uint64) error {
	start := time.Now()
	// A derived strong-form round needs no sealed bodies while it waits.
	// A big round's bodies are read in place by deriveStream, never cloned.
	r, err := c.fsm.round(j.Spec.ID, round, !useStreamDerive(j) && !c.derivs.done(j.Spec.ID, round))
	if err != nil {
		return err
	}
	base, err := c.fsm.model(j.Spec.ID, r.BaseVersion)
	if err != nil {
		return fmt.Errorf("coordinator: job %s round %d base model: %w", j.Spec.ID, round, err)
	}
	var d derivation
	if r.Attest {
		var wait bool
		if d, wait, err = c.quorumDerivation(ctx, j, r, base.Params); wait || err != nil {
			return err
		}
	} else if useStreamDerive(j) {
		d = c.deriveStream(j, r, base.Params) // derive_big.go
	} else {
		vector := func(u Update) ([]float64, error) { return c.updateVector(j, round, u) }
		d = deriveRound(c.cfg.Origin, j, r, base.Params, c.cfg.Rules, c.fsm.dpSecret(j.Spec.ID), vector)
	}
	if d.fail != "" {
		return c.failRound(ctx, j, round, d.fail)
	}
	model, outcomes, result := d.model, d.outcomes, d.result
	result.ModelVersion = j.ModelVersion + 1
	used, rejected := result.Used, result.Rejected
	c.evaluate(j, model, &result) // evaluation.go
	aggSeconds := time.Since(start).Seconds()
	if r.Attest {
		aggSeconds += d.seconds // derived before this step (attest_quorum.go)
	}
	result.AggregationSeconds = aggSeconds
	now := c.now()
	cmd := &closeRoundCmd{Job: j.Spec.ID, Round: round, Updates: len(r.Updates), Outcomes: outcomes, Model: model, Result: result, At: now}
	if c.cfg.MemberKey != nil || r.Attest {
		cmd.ResultLeaf = d.leaf
	}
	cmd.ClipStep = d.clipStep
	if d.aggregate != nil { // every replica recomputes the model (optimizer.go)
		cmd.Aggregate, cmd.Model = d.aggregate, nil
	}
	// A big model or aggregate goes in as a blob first (blob.go).
	if cmd.ModelBlob, err = c.proposeParamsBlob(ctx, j.Spec.ID, round, cmd.Model); err != nil {
		return err
	} else if cmd.ModelBlob != nil {
		cmd.Model = nil
	}
	if cmd.AggregateBlob, err = c.proposeParamsBlob(ctx, j.Spec.ID, round, cmd.Aggregate); err != nil {
		return err
	} else if cmd.AggregateBlob != nil {
		cmd.Aggregate = nil
	}
	if _, err := c.propose(ctx, cmdCloseRound, cmd); err != nil {
		return err
	}
	c.derivs.shed(j.Spec.ID, round) // the model is in the state now
	c.metrics.aggregation.Observe(aggSeconds)
	c.metrics.roundDuration.Observe(now.Sub(r.OpenedAt).Seconds())
	c.metrics.rounds.WithLabelValues("closed").Inc()
	c.logger.Info("round closed", slog.String("job", j.Spec.ID), slog.Uint64("round", round),
		slog.Uint64("model_version", result.ModelVersion), slog.Int("used", used), slog.Int("rejected", rejected))
	return nil
}

// updateVector returns the decoded update of an accepted update: from the
// leader's cache when it accepted it itself, else by opening the sealed
// envelope again (a new leader).
func (c *Coordinator) updateVector(j Job, round uint64, u Update) ([]float64, error) {
	if v, ok := c.cache.get(j.Spec.ID, round, u.Node, u.UpdateHash); ok {
		return v, nil
	}
	if c.cfg.Opener == nil {
		return nil, errors.New("cannot open: no opener configured")
	}
	env, err := c.openUpdate(u, j.Spec.Dim) // blob.go: from the entry or the blob file
	if err != nil {
		return nil, fmt.Errorf("cannot open: %v", err)
	}
	if env.UpdateHash != u.UpdateHash || env.Node != u.Node {
		return nil, errors.New("cannot open: envelope does not match its record")
	}
	if len(env.Update) != j.Spec.Dim {
		return nil, fmt.Errorf("update has %d values, dim is %d", len(env.Update), j.Spec.Dim)
	}
	return env.Update, nil
}

// ---- checkpoints ----

func (c *Coordinator) checkpointDue(roundEnded bool, last time.Time) bool {
	if c.cfg.LogSigner == nil {
		return false
	}
	size, cpSize := c.fsm.treeSize(), c.fsm.lastCheckpointSize()
	if size == 0 || size == cpSize {
		return false
	}
	return roundEnded || time.Since(last) >= c.cfg.CheckpointInterval
}

// checkpoint signs the current audit tree head with the log key and
// commits it, so that every replica serves the same checkpoints.
func (c *Coordinator) checkpoint(ctx context.Context) error {
	size := c.fsm.treeSize()
	root, err := c.fsm.treeRoot(size)
	if err != nil {
		return err
	}
	signed, err := audit.SignCheckpoint(c.cfg.LogSigner, c.cfg.Origin, size, root[:])
	if err != nil {
		return fmt.Errorf("coordinator: sign checkpoint: %w", err)
	}
	_, err = c.propose(ctx, cmdCheckpoint, &checkpointCmd{Note: signed})
	return err
}

// ---- leader-local cache of decoded updates ----

type cacheKey struct {
	job   string
	round uint64
	node  string
}

type cachedUpdate struct {
	hash Hash
	vec  []float64
}

// updateCache keeps the decoded updates the leader accepted, so closing a
// round does not decrypt them again. It is bounded in floats; it is only
// an optimisation (a new leader re-opens the sealed envelopes).
type updateCache struct {
	mu     sync.Mutex
	limit  int
	floats int
	m      map[cacheKey]cachedUpdate
}

func newUpdateCache(limit int) *updateCache {
	return &updateCache{limit: limit, m: map[cacheKey]cachedUpdate{}}
}

func (uc *updateCache) put(job string, round uint64, node string, h Hash, vec []float64) {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	k := cacheKey{job, round, node}
	if _, ok := uc.m[k]; ok || uc.floats+len(vec) > uc.limit {
		return
	}
	uc.m[k] = cachedUpdate{hash: h, vec: vec}
	uc.floats += len(vec)
}

func (uc *updateCache) get(job string, round uint64, node string, h Hash) ([]float64, bool) {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	e, ok := uc.m[cacheKey{job, round, node}]
	if !ok || e.hash != h {
		return nil, false
	}
	return e.vec, true
}

func (uc *updateCache) dropRound(job string, round uint64) {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	for k, e := range uc.m {
		if k.job == job && k.round <= round {
			uc.floats -= len(e.vec)
			delete(uc.m, k)
		}
	}
}
