package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/mfn/mfn/coordinator"
)

// monitor watches the job from outside, as an operator's dashboard would:
// it polls the live members for ended rounds, checkpoints and the leader,
// and carries out the chaos kill.
type monitor struct {
	cl  *cluster
	o   Options
	byz map[string]bool

	mu  sync.Mutex
	cps map[uint64]coordinator.Checkpoint
}

func newMonitor(cl *cluster, o Options, byz map[string]bool) *monitor {
	return &monitor{cl: cl, o: o, byz: byz, cps: map[uint64]coordinator.Checkpoint{}}
}

func newRand(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// maxFailedInRow rounds failing one after the other end the run: the job
// cannot make progress (a rule whose requirement is not met, nodes gone).
const maxFailedInRow = 3

// pollInterval is how often the monitor looks at the cluster.
const pollInterval = 50 * time.Millisecond

// run watches until the job has ended and every ended round is reported.
func (m *monitor) run(ctx context.Context, start time.Time) (*Summary, error) {
	sum := &Summary{}
	reported := map[uint64]bool{}
	lastLeader := ""
	chaosDone := !m.o.Chaos
	failedInRow := 0
	var killedAt time.Time
	killed := ""
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		if time.Since(start) > m.o.Timeout {
			return nil, fmt.Errorf("e2e: the job did not finish within %v (%d rounds completed)", m.o.Timeout, sum.RoundsCompleted)
		}
		leaderID := ""
		if l := m.cl.leader(); l != nil {
			leaderID = l.id
			if lastLeader != "" && l.id != lastLeader {
				sum.LeaderChanges++
			}
			lastLeader = l.id
			if killed != "" && sum.FailoverSecs == 0 && l.id != killed {
				sum.FailoverSecs = time.Since(killedAt).Seconds()
			}
		}
		r := m.cl.any()
		if r == nil {
			return nil, fmt.Errorf("e2e: no live coordinator")
		}
		m.collectCheckpoint(r.coord)
		rounds, err := r.coord.ListRounds(JobID)
		if err != nil {
			continue
		}
		for _, rd := range rounds {
			if reported[rd.Number] || (rd.State != coordinator.RoundClosed && rd.State != coordinator.RoundFailed) {
				continue
			}
			reported[rd.Number] = true
			rep := m.report(rd, leaderID, time.Since(start))
			if rep.Failed {
				sum.RoundsFailed++
				failedInRow++
				if failedInRow >= maxFailedInRow {
					return nil, fmt.Errorf("e2e: %d rounds in a row failed, the last because %s", failedInRow, rep.Reason)
				}
			} else {
				failedInRow = 0
				sum.RoundsCompleted++
			}
			sum.ByzantineUsed += rep.ByzantineUsed
			if m.o.OnRound != nil {
				m.o.OnRound(rep)
			}
			if !chaosDone && !rep.Failed && int(rd.Number) >= m.o.ChaosAfter {
				if l := m.cl.leader(); l != nil {
					chaosDone, killed, killedAt = true, l.id, time.Now()
					sum.KilledLeader = l.id
					if m.o.OnLeaderKilled != nil {
						m.o.OnLeaderKilled(l.id)
					}
					m.cl.kill(l)
				}
			}
		}
		j, err := r.coord.GetJob(JobID)
		if err != nil || j.State == coordinator.JobRunning {
			continue
		}
		if len(reported) >= int(j.Rounds) {
			return sum, nil
		}
	}
}

func (m *monitor) report(rd coordinator.Round, leader string, elapsed time.Duration) RoundReport {
	rep := RoundReport{Round: rd.Number, Failed: rd.State == coordinator.RoundFailed, Reason: rd.FailReason,
		Updates: len(rd.Updates), Accuracy: math.NaN(), Leader: leader, Elapsed: elapsed}
	for _, u := range rd.Updates {
		if u.Used && m.byz[u.Node] {
			rep.ByzantineUsed++
		}
	}
	if res := rd.Result; res != nil {
		rep.Used, rep.Rejected = res.Used, res.Rejected
		if res.Accuracy != nil {
			rep.Accuracy = *res.Accuracy
		}
	}
	return rep
}

func (m *monitor) collectCheckpoint(c *coordinator.Coordinator) {
	cp, err := c.LatestCheckpoint()
	if err != nil {
		return
	}
	m.mu.Lock()
	if _, ok := m.cps[cp.Size]; !ok {
		m.cps[cp.Size] = cp
	}
	m.mu.Unlock()
}

// finalCheckpoint waits until a checkpoint covers the whole audit log.
func (m *monitor) finalCheckpoint(ctx context.Context) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if r := m.cl.any(); r != nil {
			m.collectCheckpoint(r.coord)
			if cp, err := r.coord.LatestCheckpoint(); err == nil && cp.Size == r.coord.AuditSize() {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("e2e: no checkpoint covers the whole audit log after 20 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// checkpoints returns the collected checkpoints, smallest first.
func (m *monitor) checkpoints() []coordinator.Checkpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]coordinator.Checkpoint, 0, len(m.cps))
	for _, cp := range m.cps {
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b coordinator.Checkpoint) int {
		switch {
		case a.Size < b.Size:
			return -1
		case a.Size > b.Size:
			return 1
		}
		return 0
	})
	return out
}
