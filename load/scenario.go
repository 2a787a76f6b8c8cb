package load

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
)

// reader is one operator-API user: it reads the cluster status, the job
// list, the job and its rounds in turn, pausing ReaderPause between
// requests, until ctx ends.
func (e *engine) reader(ctx context.Context, i int) {
	for n := i; ctx.Err() == nil; n++ {
		t0 := time.Now()
		var err error
		switch n % 4 {
		case 0:
			_, err = e.api.Cluster(ctx)
		case 1:
			_, err = e.api.Jobs(ctx)
		case 2:
			_, err = e.api.Job(ctx, e.cfg.JobID)
		case 3:
			_, err = e.api.Rounds(ctx, e.cfg.JobID)
		}
		lat := time.Since(t0)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			e.fail(apiErrKind(ErrKindAPIRead, err))
		} else {
			e.mu.Lock()
			if len(e.apiLat) < maxAPISamples {
				e.apiLat = append(e.apiLat, lat)
			}
			e.mu.Unlock()
		}
		if !sleepCtx(ctx, e.cfg.ReaderPause) {
			return
		}
	}
}

// apiErrKind names an API failure: base, then "_" and the HTTP status
// (429, 503, ...) or "_unreachable".
func apiErrKind(base string, err error) string {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return fmt.Sprintf("%s_%d", base, ae.Status)
	case errors.Is(err, api.ErrUnreachable):
		return base + "_unreachable"
	}
	return base
}

// maxAPISamples bounds the kept API latency samples.
const maxAPISamples = 1 << 20

// subscriber holds a WebSocket subscription to the job's events and
// counts them; it resubscribes (after a pause) when the stream ends.
func (e *engine) subscriber(ctx context.Context) {
	for ctx.Err() == nil {
		s, err := e.api.Events(ctx, nil, e.cfg.JobID)
		if err != nil {
			if ctx.Err() == nil {
				e.fail(ErrKindEvents)
			}
			sleepCtx(ctx, time.Second)
			continue
		}
		for {
			if _, err := s.Next(ctx); err != nil {
				if ctx.Err() == nil {
					e.fail(ErrKindEvents)
				}
				break
			}
			e.mu.Lock()
			e.apiEvents++
			e.mu.Unlock()
		}
		s.Close()
		sleepCtx(ctx, time.Second)
	}
}

// monitor samples the coordinators' resources once a second.
type monitor struct {
	e    *engine
	urls []string // members' API base URLs; empty with SelfMetrics

	mu       sync.Mutex
	peakRSS  int64
	peaks    map[string]int64 // per member (URL) or "self"
	cpuFirst map[string]float64
	cpuLast  map[string]float64
	// lastRSS is each member's latest reading; cpuFrozen stops cpuLast
	// (the CPU per acknowledgement covers the rounds, not a Hold).
	lastRSS   map[string]int64
	cpuFrozen bool
	scraped   bool
	// leader is the last leader id seen, changes how often it changed.
	leader  string
	changes int
}

// watchLeader reads the cluster status and counts leader changes (a
// change to "no leader" and back to the same member counts as none).
func (m *monitor) watchLeader(ctx context.Context) {
	st, err := m.e.api.Cluster(ctx)
	if err != nil || st.LeaderID == "" {
		return
	}
	if st.Leader != nil && st.Leader.QUICAddr != "" {
		m.e.setLeader(st.Leader.QUICAddr)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != "" && st.LeaderID != m.leader {
		m.changes++
	}
	m.leader = st.LeaderID
}

func (m *monitor) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.sample(ctx)
		}
	}
}

func (m *monitor) record(key string, s ProcessSample) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cpuFirst == nil {
		m.cpuFirst, m.cpuLast, m.peaks, m.lastRSS = map[string]float64{}, map[string]float64{}, map[string]int64{}, map[string]int64{}
	}
	m.peaks[key] = max(m.peaks[key], s.RSS)
	m.lastRSS[key] = s.RSS
	if _, ok := m.cpuFirst[key]; !ok {
		m.cpuFirst[key] = s.CPUSecs
	}
	if !m.cpuFrozen {
		m.cpuLast[key] = s.CPUSecs
	}
	m.peakRSS = max(m.peakRSS, s.RSS)
	m.scraped = true
}

func (m *monitor) sample(ctx context.Context) {
	m.watchLeader(ctx)
	if m.e.tgt.SelfMetrics {
		if s, err := selfSample(); err == nil {
			m.record("self", s)
		} else {
			m.e.fail(ErrKindMetrics)
		}
		return
	}
	for _, u := range m.urls {
		s, err := scrape(ctx, m.e.hc, u)
		if err != nil {
			if ctx.Err() == nil {
				m.e.fail(ErrKindMetrics)
			}
			continue
		}
		m.record(u, s)
	}
}

// freezeCPU ends the window of cpu.
func (m *monitor) freezeCPU() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cpuFrozen = true
}

// rssNow returns a copy of every member's latest RSS reading.
func (m *monitor) rssNow() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int64, len(m.lastRSS))
	for k, v := range m.lastRSS {
		out[k] = v
	}
	return out
}

// cpu is the CPU seconds the coordinators used between the first and
// last samples, summed over members.
func (m *monitor) cpu() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sum float64
	for k, last := range m.cpuLast {
		sum += max(0, last-m.cpuFirst[k])
	}
	return sum
}

func (m *monitor) source() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case !m.scraped:
		return ""
	case m.e.tgt.SelfMetrics:
		return "this process (local cluster and load generator together)"
	}
	return "/metrics of " + strings.Join(m.urls, ", ")
}

// metricsURLs lists the members' API URLs to scrape: the target's, and
// the HTTP addresses the cluster status gives, with the target's scheme.
func metricsURLs(t Target, st coordinator.Status) []string {
	if t.SelfMetrics {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(u string) {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	scheme := "http"
	if u, err := url.Parse(t.API[0]); err == nil {
		scheme = u.Scheme
	}
	hosts := map[string]bool{}
	for _, a := range t.API {
		if u, err := url.Parse(a); err == nil {
			hosts[u.Host] = true
		}
		add(strings.TrimSuffix(a, "/"))
	}
	for _, m := range st.Members {
		if m.HTTPAddr != "" && !hosts[m.HTTPAddr] {
			add(scheme + "://" + m.HTTPAddr)
		}
	}
	return out
}
