package load

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// Error kinds counted in Report.Errors.
const (
	ErrKindEnroll       = "enroll"
	ErrKindDial         = "dial"
	ErrKindSubscribe    = "subscribe"
	ErrKindSeal         = "seal"
	ErrKindNotLeader    = "submit_not_leader"
	ErrKindRateLimited  = "submit_rate_limited"
	ErrKindUnavailable  = "submit_unavailable"
	ErrKindRoundClosed  = "submit_round_closed"
	ErrKindRejected     = "submit_rejected"
	ErrKindTimeout      = "submit_timeout"
	ErrKindSubmit       = "submit_other"
	ErrKindAPIRead      = "api_read" // with _<status> or _unreachable from the readers
	ErrKindEvents       = "api_events"
	ErrKindMetrics      = "metrics"
	ErrKindRoundFailed  = "round_failed"
	ErrKindAudit        = "audit"
	ErrKindNotSubmitted = "not_submitted"
	ErrKindGaveUp       = "node_gave_up"
)

// maxSubmitTries bounds the attempts of one update (rate limited,
// unavailable, leader changes).
const maxSubmitTries = 8

// maxEnrollTries bounds the attempts of one enrolment answered 429 or
// 503: a cluster's API rate limit (20 requests/s per key by default)
// paces enrolment, it does not fail it.
const maxEnrollTries = 60

// maxReconnects bounds a node's reconnections.
const maxReconnects = 10

// engine is one run's shared state.
type engine struct {
	cfg    Config
	tgt    Target
	hc     *http.Client
	api    *api.Client
	slots  chan struct{} // updates in flight
	leader atomic.Pointer[string]

	start     time.Time
	connected atomic.Int64
	ackedN    atomic.Int64
	bytes     atomic.Int64
	errN      atomic.Int64
	round     atomic.Uint64
	closedN   atomic.Int64
	// unconfirmed counts updates whose fate this process cannot know: a
	// transport failure, then the round closed or the run ended.
	unconfirmed atomic.Int64
	// reconnects counts reconnections (it varies reconnectDelay's draws).
	reconnects atomic.Int64

	mu         sync.Mutex
	errs       map[string]int
	acks       []AckRecord
	ackLat     []time.Duration
	lastAck    map[uint64]time.Time // round → its last acknowledgement
	closedAt   map[uint64]time.Time // round → when its result was seen
	firstAnn   time.Time
	lastAckAt  time.Time
	sealedSize int
	apiLat     []time.Duration
	apiEvents  int
}

func (e *engine) fail(kind string) {
	e.errN.Add(1)
	e.mu.Lock()
	e.errs[kind]++
	e.mu.Unlock()
}

// Run drives tgt with cfg's load: it enrolls cfg.Nodes fresh identities,
// creates job cfg.JobID, lets every node submit one sealed update per
// announced round over its own QUIC connection, runs the API scenario
// alongside, and when the job ends (or ctx is cancelled, or cfg.Timeout
// passes) checks the acknowledgements against the audit log and returns
// the report. A cancelled or timed-out run still returns its report
// (Interrupted set) with a nil error; errors are returned only when the
// run could not start (bad config, enrolment or job creation refused).
func Run(ctx context.Context, cfg Config, tgt Target) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := tgt.Validate(); err != nil {
		return nil, err
	}
	if cfg.ProgressEvery == 0 {
		cfg.ProgressEvery = time.Second
	}
	hc := tgt.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	ac, err := api.NewClient(tgt.API[0], tgt.APIKey, hc)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	e := &engine{cfg: cfg, tgt: tgt, hc: hc, api: ac, slots: make(chan struct{}, cfg.inflight()),
		errs: map[string]int{}, lastAck: map[uint64]time.Time{}, closedAt: map[uint64]time.Time{}}
	rep := &Report{Nodes: cfg.Nodes, Byzantine: cfg.Byzantine, Dim: cfg.Dim, Rounds: cfg.Rounds, Rule: cfg.Rule,
		Job: cfg.JobID, Seed: cfg.Seed, APIReaders: cfg.APIReaders, APIEventSubs: cfg.Subscribers}

	runCtx, cancelRun := context.WithTimeout(ctx, cfg.Timeout)
	defer cancelRun()

	ids, err := nodeIdentities(cfg)
	if err != nil {
		return nil, err
	}
	if err := e.enroll(runCtx, ids); err != nil {
		return nil, err
	}
	status, err := ac.Cluster(runCtx)
	if err != nil {
		return nil, fmt.Errorf("load: cluster status: %w", err)
	}
	if status.Leader != nil && status.Leader.QUICAddr != "" {
		e.setLeader(status.Leader.QUICAddr)
	}
	firstLeaf := status.AuditSize
	metricURLs := metricsURLs(tgt, status)

	// Watchers: round results, metrics, the API scenario. They stop with
	// watchCtx, after the nodes.
	watchCtx, stopWatch := context.WithCancel(runCtx)
	var wwg sync.WaitGroup
	defer func() { stopWatch(); wwg.Wait() }()
	evs, err := ac.Events(runCtx, []string{string(coordinator.EventRoundClosed), string(coordinator.EventRoundFailed)}, cfg.JobID)
	if err != nil {
		e.fail(ErrKindEvents)
	} else {
		wwg.Add(1)
		go func() { defer wwg.Done(); defer evs.Close(); e.watchRounds(watchCtx, evs) }()
	}
	mon := &monitor{e: e, urls: metricURLs}
	mon.sample(watchCtx) // the baseline
	wwg.Add(1)
	go func() { defer wwg.Done(); mon.run(watchCtx) }()

	spec := coordinator.JobSpec{ID: cfg.JobID, Task: "load", Dim: cfg.Dim,
		Rule: coordinator.RuleSpec{Name: cfg.Rule, F: cfg.Byzantine}, Rounds: cfg.Rounds,
		MinUpdates: 1, MaxUpdates: cfg.submitters(), RoundDeadline: coordinator.Duration(cfg.RoundDeadline)}
	if _, err := ac.CreateJob(runCtx, spec); err != nil {
		return nil, fmt.Errorf("load: create job %s: %w", cfg.JobID, err)
	}
	e.start = time.Now()
	for i := range cfg.APIReaders {
		wwg.Add(1)
		go func() { defer wwg.Done(); e.reader(watchCtx, i) }()
	}
	for range cfg.Subscribers {
		wwg.Add(1)
		go func() { defer wwg.Done(); e.subscriber(watchCtx) }()
	}
	if cfg.Progress != nil {
		wwg.Add(1)
		go func() { defer wwg.Done(); e.progress(watchCtx) }()
	}

	// The nodes, until the job ends.
	nodeCtx, stopNodes := context.WithCancel(runCtx)
	var nwg sync.WaitGroup
	for i, id := range ids {
		nwg.Add(1)
		go func() {
			defer nwg.Done()
			if cfg.Ramp > 0 && !sleepCtx(nodeCtx, time.Duration(int64(cfg.Ramp)*int64(i)/int64(cfg.Nodes))) {
				return
			}
			(&vnode{e: e, idx: i, id: id, byz: i < cfg.submitters() && i >= cfg.submitters()-cfg.Byzantine}).run(nodeCtx)
		}()
	}
	job := e.waitJob(runCtx)
	if cfg.Hold > 0 && job.State != coordinator.JobRunning && job.State != "" {
		e.hold(runCtx, mon, rep)
	}
	stopNodes()
	nwg.Wait()
	rep.Interrupted = job.State == coordinator.JobRunning || job.State == ""

	// Report what ran, even after an interruption (with a fresh context
	// bounded in time).
	fctx, cancelF := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancelF()
	mon.sample(fctx)
	e.roundsFromAPI(fctx, rep)
	stopWatch()
	wwg.Wait()
	e.fill(rep, mon)
	e.checkAudit(fctx, rep, firstLeaf)
	e.mu.Lock()
	rep.Errors = maps(e.errs)
	e.mu.Unlock()
	return rep, nil
}

// holdSettle bounds the wait for every node to be connected before a
// hold starts.
const holdSettle = 30 * time.Second

// hold waits for the ramp to have started every node (and up to
// holdSettle for them to be connected), then keeps the
// nodes connected and idle for cfg.Hold (or until ctx ends), sampling how
// many stay subscribed once a second, and records the members' RSS at
// its end. The CPU per acknowledgement stops counting at its start.
func (e *engine) hold(ctx context.Context, mon *monitor, rep *Report) {
	if rest := e.cfg.Ramp - time.Since(e.start); rest > 0 && !sleepCtx(ctx, rest) {
		return
	}
	// The last nodes of the ramp may still be connecting: give them up
	// to holdSettle.
	for settle := time.Now(); int(e.connected.Load()) < e.cfg.Nodes && time.Since(settle) < holdSettle; {
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return
		}
	}
	mon.freezeCPU()
	start := time.Now()
	held := int(e.connected.Load())
	t := time.NewTicker(time.Second)
	defer t.Stop()
	end := time.NewTimer(e.cfg.Hold)
	defer end.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end.C:
			break loop
		case <-t.C:
			held = min(held, int(e.connected.Load()))
		}
	}
	held = min(held, int(e.connected.Load()))
	mon.sample(context.WithoutCancel(ctx))
	rep.HoldSeconds = time.Since(start).Seconds()
	rep.HeldConnections = held
	rep.HoldRSS = mon.rssNow()
	for _, v := range rep.HoldRSS {
		rep.HoldMaxRSS = max(rep.HoldMaxRSS, v)
	}
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// nodeIdentities derives the nodes' Ed25519 keys from the seed and the job
// id (so reruns against one cluster enroll new keys, and equal runs equal
// keys).
func nodeIdentities(cfg Config) ([]*crypto.Identity, error) {
	h := sha256.Sum256(binary.LittleEndian.AppendUint64([]byte("mfn-load-keys\x00"+cfg.JobID+"\x00"), cfg.Seed))
	rng := rand.NewChaCha8(h)
	ids := make([]*crypto.Identity, cfg.Nodes)
	for i := range ids {
		id, err := crypto.GenerateIdentity(crypto.RoleNode, rng)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

// enroll enrolls every identity through the API, 16 at a time, retrying
// rate-limited and unavailable answers (each counted) a bounded number of
// times with backoff up to 1.6 s.
func (e *engine) enroll(ctx context.Context, ids []*crypto.Identity) error {
	const workers = 16
	next := atomic.Int64{}
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) || ctx.Err() != nil {
					return
				}
				var err error
				for try := 0; try < maxEnrollTries; try++ {
					_, err = e.api.EnrollNode(ctx, ids[i].NodeID(), api.PublicKey(ids[i].PublicKey()))
					var ae *api.Error
					if err == nil || !errors.As(err, &ae) || (ae.Status != http.StatusTooManyRequests && ae.Status != http.StatusServiceUnavailable) {
						break
					}
					e.fail(apiErrKind(ErrKindEnroll, err))
					if !sleepCtx(ctx, 100*time.Millisecond<<min(try, 4)) {
						break
					}
				}
				if err != nil {
					e.fail(apiErrKind(ErrKindEnroll, err))
					errc <- fmt.Errorf("load: enroll node %d (%s): %w", i, ids[i].NodeID(), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return ctx.Err()
}

func (e *engine) setLeader(addr string) { e.leader.Store(&addr) }

// reconnectRate is the pace, in connections per second, at which the
// nodes of a run spread their reconnections after a subscription ends
// (typically all at once, when the leader moves): a new leader then
// faces at most about this many handshakes per second instead of every
// node's at the same instant, which on a loaded machine timed out
// handshakes and started a storm of retries.
const reconnectRate = 200

// reconnectDelay is node idx's wait before reconnecting: uniform in
// [0, Nodes/reconnectRate s), drawn from PCG seeded by the run's seed,
// the node and the run's count of reconnections so far (timing, like
// every timing of a run, is not reproducible; the bytes are).
func (e *engine) reconnectDelay(idx int) time.Duration {
	spread := time.Duration(e.cfg.Nodes) * time.Second / reconnectRate
	if spread <= 0 {
		return 0
	}
	n := e.reconnects.Add(1)
	r := rand.New(rand.NewPCG(e.cfg.Seed^0x7265636f6e6e, uint64(idx)<<32^uint64(n)))
	return time.Duration(r.Int64N(int64(spread)))
}

// leaderAddr is the QUIC address nodes dial: the last known leader, else
// the first member.
func (e *engine) leaderAddr() string {
	if p := e.leader.Load(); p != nil && *p != "" {
		return *p
	}
	return e.tgt.Cluster.Members[0].QUICAddr
}

// waitJob polls the job until it ends or ctx is done, and returns its
// last known state.
func (e *engine) waitJob(ctx context.Context) coordinator.Job {
	var last coordinator.Job
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		j, err := e.api.Job(ctx, e.cfg.JobID)
		if err == nil {
			last = j
			if j.State != coordinator.JobRunning {
				return j
			}
		}
		select {
		case <-ctx.Done():
			return last
		case <-t.C:
		}
	}
}

// watchRounds records when each round's result was seen.
func (e *engine) watchRounds(ctx context.Context, s *api.EventStream) {
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				e.fail(ErrKindEvents)
			}
			return
		}
		now := time.Now()
		e.mu.Lock()
		if _, ok := e.closedAt[ev.Round]; !ok && ev.Job == e.cfg.JobID {
			e.closedAt[ev.Round] = now
			if ev.Kind == coordinator.EventRoundClosed {
				e.closedN.Add(1)
			}
		}
		e.mu.Unlock()
	}
}

// roundsFromAPI counts the job's ended rounds and fills in the close
// time of any whose event was missed from the round's EndedAt.
func (e *engine) roundsFromAPI(ctx context.Context, rep *Report) {
	rounds, err := e.api.Rounds(ctx, e.cfg.JobID)
	if err != nil {
		e.fail(ErrKindAPIRead)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range rounds {
		switch r.State {
		case coordinator.RoundClosed:
			rep.RoundsClosed++
		case coordinator.RoundFailed:
			rep.RoundsFailed++
			e.errs[ErrKindRoundFailed]++
		default:
			continue
		}
		if _, ok := e.closedAt[r.Number]; !ok && !r.EndedAt.IsZero() {
			e.closedAt[r.Number] = r.EndedAt
		}
	}
}

// fill computes the report's figures from the samples.
func (e *engine) fill(rep *Report, mon *monitor) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rep.Acked = len(e.acks)
	rep.Unconfirmed = int(e.unconfirmed.Load())
	rep.BytesSent = e.bytes.Load()
	rep.SealedBytes = e.sealedSize
	if !e.firstAnn.IsZero() && e.lastAckAt.After(e.firstAnn) {
		rep.Seconds = e.lastAckAt.Sub(e.firstAnn).Seconds()
		rep.AcksPerSecond = float64(rep.Acked) / rep.Seconds
		rep.BytesPerSecond = float64(rep.BytesSent) / rep.Seconds
	}
	rep.AckP50ms, rep.AckP90ms, rep.AckP99ms = latencies(e.ackLat)
	var closes []time.Duration
	for r, last := range e.lastAck {
		if at, ok := e.closedAt[r]; ok {
			closes = append(closes, max(0, at.Sub(last)))
		}
	}
	rep.RoundCloseP50ms, _, rep.RoundCloseP99ms = latencies(closes)
	rep.APIRequests = len(e.apiLat)
	rep.APIP50ms, _, rep.APIP99ms = latencies(e.apiLat)
	rep.APIEvents = e.apiEvents
	rep.MetricsSource = mon.source()
	rep.CoordinatorMaxRSS, rep.CoordinatorCPUSecs = mon.peakRSS, mon.cpu()
	mon.mu.Lock()
	rep.CoordinatorPeakRSS = make(map[string]int64, len(mon.peaks))
	for k, v := range mon.peaks {
		rep.CoordinatorPeakRSS[k] = v
	}
	rep.LeaderChanges = mon.changes
	mon.mu.Unlock()
	if rep.Acked > 0 {
		rep.CoordinatorCPUPerAck = rep.CoordinatorCPUSecs * 1e3 / float64(rep.Acked)
	}
}

// checkAudit reads the job's part of the audit log through the API,
// once a checkpoint covers every acknowledged leaf, and counts lost and
// duplicated updates.
func (e *engine) checkAudit(ctx context.Context, rep *Report, first uint64) {
	rep.Lost, rep.Duplicated = -1, -1
	e.mu.Lock()
	acks := slices.Clone(e.acks)
	e.mu.Unlock()
	need := first
	for _, a := range acks {
		if !a.Duplicate {
			need = max(need, a.Leaf+1)
		}
	}
	var size uint64
	for {
		cp, err := e.api.Checkpoint(ctx)
		if err == nil && cp.Size >= need {
			size = cp.Size
			break
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			e.fail(ErrKindAudit)
			return
		}
	}
	var leaves [][]byte
	for next := first; next < size; {
		page, err := e.api.Leaves(ctx, next, size)
		if err != nil || page.Start != next || len(page.Leaves) == 0 {
			e.fail(ErrKindAudit)
			return
		}
		leaves = append(leaves, page.Leaves...)
		next += uint64(len(page.Leaves))
	}
	c, err := CheckLog(e.cfg.JobID, first, leaves, acks)
	if err != nil {
		e.fail(ErrKindAudit)
		return
	}
	rep.InLog, rep.Lost, rep.Duplicated = c.InLog, c.Lost, c.Duplicated
}

func (e *engine) progress(ctx context.Context) {
	t := time.NewTicker(e.cfg.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.cfg.Progress(Progress{Elapsed: time.Since(e.start), Connected: int(e.connected.Load()),
				Acked: int(e.ackedN.Load()), Bytes: e.bytes.Load(), Errors: int(e.errN.Load()),
				Round: e.round.Load(), Closed: int(e.closedN.Load())})
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// classify names the error kind of a failed submission.
func classify(err error) string {
	switch {
	case errors.Is(err, protocol.CodeNotLeader):
		return ErrKindNotLeader
	case errors.Is(err, protocol.CodeRateLimited):
		return ErrKindRateLimited
	case errors.Is(err, protocol.CodeUnavailable):
		return ErrKindUnavailable
	case errors.Is(err, protocol.CodeRoundClosed):
		return ErrKindRoundClosed
	case errors.Is(err, protocol.CodeBadRequest), errors.Is(err, protocol.CodeNotFound), errors.Is(err, protocol.CodeUnauthorized):
		return ErrKindRejected
	case errors.Is(err, context.DeadlineExceeded):
		return ErrKindTimeout
	}
	return ErrKindSubmit
}
