package clustertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
)

// PollInterval is how often the wait helpers ask the cluster again. The
// API limits each key to 20 requests per second and route, so one poller
// per key and member stays well inside it.
const PollInterval = 100 * time.Millisecond

// requestTimeout bounds one HTTP request: a member frozen with SIGSTOP
// accepts connections (the kernel does) but never answers.
const requestTimeout = 3 * time.Second

var httpClient = &http.Client{Timeout: requestTimeout}

// API returns a client of member m's HTTP API authenticating with key.
// Each request times out after a few seconds.
func (c *Cluster) API(m *Member, key string) *api.Client {
	cl, err := api.NewClient("http://"+m.HTTPAddr, key, httpClient)
	if err != nil {
		// HTTPAddr comes from a net.Listener: always a valid host:port.
		panic(err)
	}
	return cl
}

// Live returns the members whose process runs and is not stopped.
func (c *Cluster) Live() []*Member {
	var out []*Member
	for _, m := range c.Members {
		if m.Running() && !m.Stopped() {
			out = append(out, m)
		}
	}
	return out
}

// Poll calls fn every PollInterval until it reports done, and returns
// the error fn returned with done (nil for success). While fn reports not
// done its error is only remembered: when ctx ends first, Poll fails with
// an error naming what was awaited and that last error.
func Poll(ctx context.Context, what string, fn func() (done bool, err error)) error {
	var last error
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		done, err := fn()
		if done {
			return err
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("clustertest: waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("clustertest: waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// Ready asks member m's /readyz once: nil for 200 with ready true, an
// *api.Error (status 503) for not ready, or a transport error.
func (c *Cluster) Ready(ctx context.Context, m *Member) (api.Readiness, error) {
	r, err := c.API(m, "").Ready(ctx)
	if err == nil && !r.Ready {
		err = fmt.Errorf("clustertest: %s: /readyz answered 200 with ready=false", m.ID)
	}
	return r, err
}

// WaitReady waits until every given member (all if none given) answers
// /readyz with 200.
func (c *Cluster) WaitReady(ctx context.Context, members ...*Member) error {
	if len(members) == 0 {
		members = c.Members
	}
	for _, m := range members {
		err := Poll(ctx, m.ID+" ready", func() (bool, error) {
			_, err := c.Ready(ctx, m)
			return err == nil, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Status returns member m's view of the cluster (GET /v1/cluster).
func (c *Cluster) Status(ctx context.Context, m *Member) (coordinator.Status, error) {
	return c.API(m, c.ReaderKey).Cluster(ctx)
}

// Leader waits until one of the given members (the live ones if none
// given) reports itself the leader, and returns it with its status. A
// leader is a member whose own status says state Leader and leader id
// itself.
func (c *Cluster) Leader(ctx context.Context, among ...*Member) (*Member, coordinator.Status, error) {
	var leader *Member
	var st coordinator.Status
	err := Poll(ctx, "a leader", func() (bool, error) {
		cands := among
		if len(cands) == 0 {
			cands = c.Live()
		}
		var errs []error
		for _, m := range cands {
			s, err := c.Status(ctx, m)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if s.State == "Leader" && s.LeaderID == m.ID {
				leader, st = m, s
				return true, nil
			}
		}
		return false, errors.Join(errs...)
	})
	return leader, st, err
}

// WaitLeader waits for a leader among the live members other than
// exclude and reports how long that took from start.
func (c *Cluster) WaitLeader(ctx context.Context, start time.Time, exclude *Member) (*Member, time.Duration, error) {
	m, _, err := c.Leader(ctx, c.Others(exclude)...)
	return m, time.Since(start), err
}

// Write runs a write against the leader's API with key until it
// succeeds, fails with a client error (4xx other than 429), or ctx ends.
// The leader found last is tried first; after a failure other than 429 the
// leader is looked up again. Every write of the API is idempotent or
// answers a retry with 409, so a write whose answer was lost may be sent
// again.
func (c *Cluster) Write(ctx context.Context, what, key string, fn func(cl *api.Client) error) error {
	return Poll(ctx, what, func() (bool, error) {
		c.mu.Lock()
		l := c.leader
		c.mu.Unlock()
		if l == nil || !l.Running() || l.Stopped() {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var err error
			l, _, err = c.Leader(lctx)
			cancel()
			if err != nil {
				return false, err
			}
			c.mu.Lock()
			c.leader = l
			c.mu.Unlock()
		}
		err := fn(c.API(l, key))
		var ae *api.Error
		isAE := errors.As(err, &ae)
		switch {
		case err == nil:
			return true, nil
		case isAE && ae.Status == http.StatusTooManyRequests:
		case isAE && ae.Status/100 == 4:
			return true, fmt.Errorf("%s: %w", what, err)
		default:
			c.mu.Lock()
			c.leader = nil
			c.mu.Unlock()
		}
		return false, err
	})
}

// CreateJob creates a job through the leader's API.
func (c *Cluster) CreateJob(ctx context.Context, spec coordinator.JobSpec) (coordinator.Job, error) {
	var job coordinator.Job
	err := c.Write(ctx, "create job "+spec.ID, c.OperatorKeys[0], func(cl *api.Client) error {
		var err error
		job, err = cl.CreateJob(ctx, spec)
		return err
	})
	return job, err
}

// Round returns a round as the leader knows it; any live member answers
// (reads that must be current are forwarded to the leader).
func (c *Cluster) Round(ctx context.Context, job string, n uint64) (coordinator.Round, error) {
	var errs []error
	for _, m := range c.Live() {
		r, err := c.API(m, c.ReaderKey).Round(ctx, job, n)
		if err == nil {
			return r, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", m.ID, err))
	}
	return coordinator.Round{}, errors.Join(errs...)
}

// WaitRound polls a round until ok accepts it.
func (c *Cluster) WaitRound(ctx context.Context, job string, n uint64, what string, ok func(coordinator.Round) bool) (coordinator.Round, error) {
	var r coordinator.Round
	err := Poll(ctx, fmt.Sprintf("job %s round %d %s", job, n, what), func() (bool, error) {
		var err error
		r, err = c.Round(ctx, job, n)
		if err != nil {
			return false, err
		}
		return ok(r), nil
	})
	return r, err
}

// WaitCaughtUp waits until member m has applied at least index and serves
// a latest audit checkpoint equal to want (when want is non-empty).
func (c *Cluster) WaitCaughtUp(ctx context.Context, m *Member, index uint64, want api.Checkpoint) (coordinator.Status, error) {
	var st coordinator.Status
	err := Poll(ctx, fmt.Sprintf("%s to apply index %d", m.ID, index), func() (bool, error) {
		var err error
		st, err = c.Status(ctx, m)
		if err != nil {
			return false, err
		}
		if st.AppliedIndex < index {
			return false, fmt.Errorf("%s applied %d < %d", m.ID, st.AppliedIndex, index)
		}
		if want.Note == "" {
			return true, nil
		}
		cp, err := c.API(m, c.AuditorKey).Checkpoint(ctx)
		if err != nil {
			return false, err
		}
		if cp.Note != want.Note {
			return false, fmt.Errorf("%s serves checkpoint size %d, want %d", m.ID, cp.Size, want.Size)
		}
		return true, nil
	})
	return st, err
}
