package coordinator

import (
	"log/slog"
)

// In the strong form (attest_quorum.go) every member derives a sealed
// round before the leader may close it, so a follower that opened the
// round's sealed envelopes only then would add their decryption to the
// round's close. Instead each follower opens every accepted update as it
// applies it, off the apply path (one goroutine, a queue of
// prefetchQueue updates; beyond it the update is opened at derivation),
// into its cache of decoded updates (Config.CacheFloats bounds it, as on
// the leader, which caches the updates it accepts itself). The cache
// drops a round's updates when the round ends.

// prefetchQueue bounds the accepted updates waiting to be opened.
const prefetchQueue = 1024

type prefetchKey struct {
	job   string
	round uint64
	node  string
}

// queuePrefetch is called for each applied EventUpdateAccepted; it never
// blocks.
func (c *Coordinator) queuePrefetch(e Event) {
	if c.prefetchQ == nil || c.IsLeader() {
		return
	}
	select {
	case c.prefetchQ <- prefetchKey{e.Job, e.Round, e.Node}:
	default:
	}
}

// prefetcher opens queued updates until the member closes.
func (c *Coordinator) prefetcher() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case k := <-c.prefetchQ:
			c.prefetch(k)
		}
	}
}

func (c *Coordinator) prefetch(k prefetchKey) {
	u, dim, ok := c.fsm.pendingUpdate(k.job, k.round, k.node)
	if !ok || c.cfg.Opener == nil || dim > StreamDeriveDim {
		return // a big round is opened as a stream when it is derived
	}
	if _, hit := c.cache.get(k.job, k.round, k.node, u.UpdateHash); hit {
		return
	}
	env, err := c.openUpdate(u, dim) // blob.go
	if err != nil || env.UpdateHash != u.UpdateHash || env.Node != u.Node || len(env.Update) != dim {
		// Derivation opens it again and records why it cannot be used.
		c.logger.Debug("update not prefetched", slog.String("job", k.job), slog.Uint64("round", k.round), slog.String("node", k.node))
		return
	}
	c.cache.put(k.job, k.round, k.node, u.UpdateHash, env.Update)
}

// pendingUpdate returns node's update of an open or sealed round (its
// sealed body shared, never written) and the job's dimension.
func (f *fsm) pendingUpdate(job string, round uint64, node string) (Update, int, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[job]
	if !ok {
		return Update{}, 0, false
	}
	r := j.round(round)
	if r == nil || (r.State != RoundOpen && r.State != RoundClosing) {
		return Update{}, 0, false
	}
	for _, u := range r.Updates {
		if u.Node == node && (len(u.Sealed) > 0 || u.Body != nil) {
			return u, j.Job.Spec.Dim, true
		}
	}
	return Update{}, 0, false
}
