package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/internal/telemetry"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/privacy"
	"github.com/mfn/mfn/protocol"
)

// Errors a node reports through events and logs; Run itself only fails
// for local problems (state directory, data).
var (
	// ErrRefused: the cluster refused the node's key at the handshake or
	// at Hello — it is not enrolled, or it was revoked, or the node id
	// does not match the key. The node keeps retrying with backoff, as an
	// operator may enroll it later.
	ErrRefused = errors.New("node: the cluster refused this node's key (not enrolled, revoked, or wrong node id)")
	// ErrNoLeader: every reachable coordinator answered, but none knows a
	// leader (an election is under way, or a quorum is lost).
	ErrNoLeader = errors.New("node: no coordinator knows a leader")
	// ErrOrigin: a coordinator announced another cluster origin than the
	// cluster file pins.
	ErrOrigin = errors.New("node: coordinator reports another cluster origin")
	// ErrNotReady: a coordinator has just restarted and has not caught up
	// with the cluster, so it does not know this node's key yet. Unlike
	// ErrRefused it says nothing about the key; the node retries soon.
	ErrNotReady = errors.New("node: the coordinator is catching up and does not know this node yet")
)

// EventKind names what happened in an Event.
type EventKind string

// Event kinds.
const (
	EventDataReady    EventKind = "data_ready"   // local data loaded or simulated
	EventConnected    EventKind = "connected"    // subscribed at the leader (Addr)
	EventDisconnected EventKind = "disconnected" // the connection ended (Err says why)
	EventRefused      EventKind = "refused"      // the cluster refused the key (Err)
	EventSkipped      EventKind = "skipped"      // an announced round was not trained (Result/Err say why)
	EventSubmitted    EventKind = "submitted"    // a submission got an answer (Result; Record when stored)
)

// Event is one notable step of the agent, for Config.OnEvent.
type Event struct {
	Kind   EventKind
	Job    string
	Round  uint64
	Addr   string  // coordinator address concerned
	Result string  // for EventSubmitted and EventSkipped: one of the Result constants or a reason
	Record *Record // for acknowledged or duplicate submissions: what was recorded
	// LocalAccuracy is the trained model's accuracy on the held-out split
	// (honest nodes with a held-out split; else -1).
	LocalAccuracy float64
	Err           error
}

// Agent is one running edge node. Create it with New, run it with Run.
type Agent struct {
	cfg     Config
	id      *crypto.Identity
	nodeID  string
	state   *State
	dialer  protocol.Dialer
	metrics *metrics
	log     *slog.Logger
	attack  aggregate.Rule // the rule adaptive attacks aim at
	tracer  trace.Tracer   // nil: tracing off
	checker *roundChecker  // nil: no round check (Config.RoundCheck)

	mu      sync.Mutex
	learner *Learner
	hold    *learn.Dataset
	leader  string // last address known to lead
	// momentum lists the jobs whose recorded momentum buffer has been
	// restored into the learner (or found absent).
	momentum map[string]bool
	// evaluated lists the jobs whose final model this run has reported a
	// cross-site evaluation of (evalreport.go).
	evaluated map[string]bool
}

// New checks cfg, loads the identity and opens the state directory. It
// does no network I/O and no simulation (Run does).
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	id := cfg.Identity
	if id == nil {
		var err error
		if id, err = crypto.LoadIdentity(cfg.IdentityDir); err != nil {
			return nil, fmt.Errorf("node: identity %s: %w", cfg.IdentityDir, err)
		}
	}
	a := &Agent{cfg: cfg, id: id, nodeID: cfg.NodeID, log: cfg.Logger}
	if a.nodeID == "" {
		a.nodeID = id.NodeID()
	}
	a.log = a.log.With("node", a.nodeID)
	var err error
	if a.state, err = OpenState(cfg.StateDir); err != nil {
		return nil, err
	}
	if a.metrics, err = newMetrics(cfg.Registry); err != nil {
		return nil, fmt.Errorf("node: metrics: %w", err)
	}
	if cfg.TracerProvider != nil {
		a.tracer = cfg.TracerProvider.Tracer(telemetry.TracerNode)
	}
	a.dialer = cfg.Dialer
	if a.dialer == nil {
		pid, err := protocol.NewIdentity(id.SigningKey)
		if err != nil {
			return nil, err
		}
		a.dialer = &protocol.QUICDialer{TLS: protocol.ClientConfig(pid, cfg.Cluster.PinnedKeys()), Config: cfg.Protocol}
	}
	if cfg.RoundCheck != nil {
		a.checker = newRoundChecker(*cfg.RoundCheck, a.nodeID, a.state, a.metrics, a.log, cfg.Clock)
	}
	if cfg.Byzantine != "" {
		if a.attack, err = aggregate.New(cfg.AttackRule, aggregate.Params{F: cfg.AttackF}); err != nil {
			return nil, fmt.Errorf("node: Config.AttackRule: %w", err)
		}
	}
	return a, nil
}

// NodeID returns the id the node submits under.
func (a *Agent) NodeID() string { return a.nodeID }

// State returns the node's durable submission record.
func (a *Agent) State() *State { return a.state }

func (a *Agent) emit(e Event) {
	if a.cfg.OnEvent != nil {
		a.cfg.OnEvent(e)
	}
}

// PrepareData loads the node's local data (from the cache in the state
// directory, or by simulating and caching it) and splits off the held-out
// part. Run calls it; calling it first only moves the work earlier.
func (a *Agent) PrepareData(ctx context.Context) error {
	a.mu.Lock()
	ready := a.learner != nil
	a.mu.Unlock()
	if ready {
		return nil
	}
	start := time.Now()
	data, cached, err := loadData(WithSimObserver(ctx, a.metrics.sim.observe), a.cfg.Data, a.cfg.StateDir, a.cfg.Progress)
	if err != nil {
		if a.awaitClasses(err) { // schema.go
			return nil
		}
		return fmt.Errorf("node: local data: %w", err)
	}
	train, hold := splitHoldOut(data, a.cfg.Data.HoldOut, a.cfg.Data.Seed)
	a.mu.Lock()
	a.learner = NewLearner(train, a.cfg.Train, a.cfg.Seed)
	a.hold = hold
	a.mu.Unlock()
	a.log.Info("local data ready", "task", a.cfg.Data.Task, "samples", data.Len(), "train", train.Len(),
		"held_out", holdLen(hold), "label_counts", fmt.Sprint(data.LabelCounts()), "from_cache", cached,
		"seconds", time.Since(start).Seconds())
	a.emit(Event{Kind: EventDataReady})
	return nil
}

func holdLen(d *learn.Dataset) int {
	if d == nil {
		return 0
	}
	return d.Len()
}

// Run takes part in the federation until ctx is done: it prepares the
// local data, connects to the leader, and trains and submits an update for
// every announced round it has not submitted yet. Connection failures are
// retried forever with jittered exponential backoff (capped at LeaderWait
// while the cluster is only between leaders). Run returns nil after ctx is
// done, or an error for a local failure it cannot get past (the data
// cannot be built, the state directory cannot be written).
func (a *Agent) Run(ctx context.Context) error {
	if a.checker != nil {
		// The round check runs beside the rounds and ends with Run.
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.checker.run(cctx)
		}()
		defer func() {
			cancel()
			<-done
		}()
	}
	if err := a.PrepareData(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	rng := newRand(a.cfg.Seed, 0xbac0ff)
	failures := 0
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return nil
		}
		if attempt > 0 {
			a.metrics.reconnects.Inc()
		}
		ls, err := a.connect(ctx, attempt)
		if err == nil {
			var served bool
			served, err = a.session(ctx, ls)
			ls.c.Close()
			a.metrics.connected.Set(0)
			var fe *fatalError
			if errors.As(err, &fe) {
				return fe.err
			}
			if ctx.Err() != nil {
				return nil
			}
			a.emit(Event{Kind: EventDisconnected, Addr: ls.addr, Err: err})
			a.log.Warn("disconnected from the leader", "addr", ls.addr, "err", err)
			if served {
				failures = 0
			}
			var re *redirectError
			if errors.As(err, &re) {
				a.log.Info("redialling at once", "addr", re.addr, "reason", re.reason())
				continue // redial at once, the leader's address is known
			}
		} else if errors.Is(err, ErrRefused) {
			a.emit(Event{Kind: EventRefused, Err: err})
			a.log.Error("refused by the cluster: enroll this node's key (signing.pub) or check it was not revoked", "node_id", a.nodeID, "err", err)
		} else {
			a.log.Warn("no leader reachable", "err", err)
		}
		failures++
		wait, why := a.backoff(failures, rng), waitReason(err)
		if between(err) {
			// Members answer but none leads yet, or one is catching up:
			// an election takes seconds, so look again soon.
			wait = min(wait, a.cfg.LeaderWait)
		}
		a.log.Info("backing off", "until", a.cfg.Clock().Add(wait).UTC().Format(time.RFC3339Nano), "wait", wait,
			"reason", why, "attempt", failures, "err", err)
		if !sleepCtx(ctx, wait) {
			return nil
		}
	}
}

// between reports errors of a cluster that is only between leaders: no
// member knows a leader, the named leader did not answer as one, or a
// member is catching up.
func between(err error) bool {
	return errors.Is(err, ErrNoLeader) || errors.Is(err, ErrNotReady) || errors.Is(err, protocol.CodeNotLeader)
}

// waitReason names what the node waits for, for its logs.
func waitReason(err error) string {
	switch {
	case err == nil:
		return "session ended"
	case errors.Is(err, ErrRefused):
		return "key refused by the cluster (not enrolled or revoked)"
	case errors.Is(err, ErrNotReady):
		return "a member is catching up and does not know this node yet"
	case errors.Is(err, ErrNoLeader), errors.Is(err, protocol.CodeNotLeader):
		return "leader unknown (election under way?)"
	case errors.Is(err, ErrOrigin):
		return "a coordinator reports another cluster origin"
	}
	return "no coordinator reachable"
}

// backoff is the wait before reconnection attempt n ≥ 1: exponential from
// BackoffMin, capped at BackoffMax, with "equal jitter" (half fixed, half
// uniform) so that many nodes do not reconnect in lockstep.
func (a *Agent) backoff(n int, rng *rand.Rand) time.Duration {
	d := a.cfg.BackoffMin
	for i := 1; i < n && d < a.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, a.cfg.BackoffMax)
	return d/2 + time.Duration(rng.Int64N(int64(d/2)+1))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fatalError ends Run: a local failure retrying cannot fix.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// redirectError ends a session to redial the leader at addr.
type redirectError struct {
	addr string
	// restarted: addr is the session's own address, now served by a new
	// process (another instance id) that leads again.
	restarted bool
}

func (e *redirectError) Error() string {
	if e.restarted {
		return "the coordinator at " + e.addr + " restarted and leads again"
	}
	return "leader is at " + e.addr
}

func (e *redirectError) reason() string {
	if e.restarted {
		return "coordinator restarted"
	}
	return "leader moved"
}

// dialHello connects to addr and says Hello.
func (a *Agent) dialHello(ctx context.Context, addr string) (*protocol.Client, *protocol.HelloAck, error) {
	c, err := protocol.Dial(ctx, a.dialer, addr, a.cfg.Protocol)
	if err != nil {
		return nil, nil, classify(err)
	}
	ack, err := c.Hello(ctx, &protocol.Hello{NodeID: a.nodeID, ClientInfo: "mfn-node"})
	if err != nil {
		c.Close()
		return nil, nil, classify(err)
	}
	if a.cfg.Cluster.Origin != "" && ack.ClusterOrigin != a.cfg.Cluster.Origin {
		c.Close()
		return nil, nil, fmt.Errorf("%w: %s says %q, the cluster file pins %q", ErrOrigin, addr, ack.ClusterOrigin, a.cfg.Cluster.Origin)
	}
	return c, ack, nil
}

// classify marks the errors that mean "this key is not welcome".
func classify(err error) error {
	var te *quic.TransportError
	switch {
	case errors.Is(err, protocol.CodeNotReady):
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	case errors.Is(err, protocol.CodeUnauthorized):
		return fmt.Errorf("%w: %w", ErrRefused, err)
	case errors.As(err, &te) && te.Remote && te.ErrorCode.IsCryptoError():
		// The server aborted the TLS handshake: with pinned server keys
		// already checked on our side, that is its client-key check.
		return fmt.Errorf("%w: %w", ErrRefused, err)
	case strings.Contains(err.Error(), "rejected client key"):
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return err
}

// connectGrace is how long connect waits for the members still dialling
// once a majority has answered without a leader.
const connectGrace = 300 * time.Millisecond

// leaderSession is a connection to a coordinator that said it leads.
type leaderSession struct {
	c      *protocol.Client
	addr   string
	origin string
	ack    *protocol.HelloAck // its Hello answer: instance and term (Version2)
}

// connect finds the leader. It dials every coordinator at once (so a dead
// member costs no handshake timeout), keeps the connection of the one that
// says it leads and closes the others; if none does but one names the
// leader, it dials that address. The last known leader address is dialled
// too when it is not in the cluster file.
func (a *Agent) connect(ctx context.Context, attempt int) (*leaderSession, error) {
	addrs := a.cfg.Cluster.Addrs()
	order := make([]string, 0, len(addrs)+1)
	for i := range addrs {
		order = append(order, addrs[(i+attempt)%len(addrs)])
	}
	a.mu.Lock()
	if a.leader != "" && !slices.Contains(order, a.leader) {
		order = append(order, a.leader)
	}
	a.mu.Unlock()
	a.log.Info("looking for the leader", "dialing", order, "timeout", a.cfg.DialTimeout, "attempt", attempt)
	type result struct {
		addr string
		c    *protocol.Client
		ack  *protocol.HelloAck
		err  error
	}
	results := make(chan result, len(order))
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	for _, addr := range order {
		go func() {
			c, ack, err := a.dialHello(dctx, addr)
			results <- result{addr, c, ack, err}
		}()
	}
	// drain closes the connections of the dials still running.
	drain := func(left int) {
		go func() {
			for range left {
				if r := <-results; r.c != nil {
					r.c.Close()
				}
			}
		}()
	}
	var errs []error
	var refusal error
	failed := map[string]bool{}
	pending := map[string]bool{}
	for _, addr := range order {
		pending[addr] = true
	}
	hint := ""
	// Once a majority has answered and none leads, the others are given
	// connectGrace, not the whole DialTimeout: a dead member would
	// otherwise hold every attempt of an election for DialTimeout.
	quorum := len(addrs)/2 + 1
	var grace <-chan time.Time
	answered := 0
collect:
	for answered < len(order) {
		var r result
		select {
		case r = <-results:
		case <-grace:
			left := slices.Sorted(maps.Keys(pending))
			a.log.Info("a majority answered without a leader; not waiting for the rest", "waiting_on", left)
			drain(len(left))
			errs = append(errs, fmt.Errorf("no answer yet from %v: %w", left, ErrNoLeader))
			break collect
		}
		answered++
		delete(pending, r.addr)
		if grace == nil && answered >= quorum {
			t := time.NewTimer(connectGrace)
			defer t.Stop()
			grace = t.C
		}
		switch {
		case r.err != nil:
			// A refusal from one member is kept, not returned at once: a
			// follower that has not yet applied the node's enrolment
			// refuses a key the leader already accepts.
			if (errors.Is(r.err, ErrRefused) || errors.Is(r.err, ErrOrigin)) && refusal == nil {
				refusal = r.err
			}
			if errors.Is(r.err, ErrNotReady) {
				a.log.Info("member is catching up; it does not know this node yet", "addr", r.addr)
			}
			failed[r.addr] = true
			errs = append(errs, fmt.Errorf("%s: %w", r.addr, r.err))
		case r.ack.LeaderHint == r.addr:
			drain(len(order) - answered)
			a.setLeader(r.addr)
			return &leaderSession{c: r.c, addr: r.addr, origin: r.ack.ClusterOrigin, ack: r.ack}, nil
		default:
			r.c.Close()
			if r.ack.LeaderHint == "" {
				errs = append(errs, fmt.Errorf("%s: %w", r.addr, ErrNoLeader))
			} else if hint == "" {
				hint = r.ack.LeaderHint
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if refusal != nil && hint == "" && !slices.ContainsFunc(errs, func(e error) bool { return errors.Is(e, ErrNotReady) }) {
		// Every member that answered refused the key; one that is still
		// catching up may not know it yet, so that is not final.
		a.setLeader("")
		return nil, refusal
	}
	if hint != "" && !failed[hint] && !slices.Contains(order, hint) {
		// A follower names a leader we do not know by that address (it
		// advertises a name the cluster file spells otherwise): go
		// there. Its key is pinned all the same. A hint naming an
		// address that just failed is stale: the followers have not yet
		// noticed their leader's death, and the next attempt will see
		// the new one.
		a.log.Info("dialing the leader a member named", "addr", hint)
		hctx, hcancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
		c, ack, err := a.dialHello(hctx, hint)
		hcancel()
		if err == nil && ack.LeaderHint != "" {
			a.setLeader(hint)
			return &leaderSession{c: c, addr: hint, origin: ack.ClusterOrigin, ack: ack}, nil
		}
		if err == nil {
			c.Close()
			err = ErrNoLeader
		}
		if errors.Is(err, ErrRefused) {
			return nil, err
		}
		errs = append(errs, fmt.Errorf("%s (named leader): %w", hint, err))
	} else if hint != "" {
		errs = append(errs, fmt.Errorf("the coordinators name %s as leader, which did not answer as one: %w", hint, ErrNoLeader))
	}
	a.setLeader("")
	return nil, errors.Join(errs...)
}

func (a *Agent) setLeader(addr string) {
	a.mu.Lock()
	a.leader = addr
	a.mu.Unlock()
}

// session serves one connection: subscribe, handle announcements, and
// check now and then that the coordinator still leads. served reports
// whether the subscription was established.
func (a *Agent) session(ctx context.Context, ls *leaderSession) (served bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, addr, origin := ls.c, ls.addr, ls.origin
	ch, err := c.Subscribe(sctx)
	if err != nil {
		return false, err
	}
	a.metrics.connected.Set(1)
	a.log.Info("connected to the leader; waiting for round announcements", "addr", addr, "origin", origin,
		"term", ls.ack.Term, "instance", ls.ack.Instance, "protocol", c.Version())
	a.emit(Event{Kind: EventConnected, Addr: addr})
	check := time.NewTicker(a.cfg.LeaderCheck)
	defer check.Stop()
	quiet := true // no announcement since the last check
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case ann, ok := <-ch:
			if !ok {
				return true, fmt.Errorf("subscription at %s ended: %w", addr, connEnded(c))
			}
			quiet = false
			a.log.Info("round announced", "job", ann.JobID, "round", ann.Round, "deadline", ann.Deadline, "addr", addr)
			if a.checker != nil {
				a.checker.announced(ann.JobID, ann.Round) // the job's earlier rounds are closed
			}
			if err := a.handle(sctx, c, addr, origin, ann); err != nil {
				return true, err
			}
		case <-check.C:
			if !quiet {
				quiet = true
				continue
			}
			if err := a.checkLeader(ctx, ls); err != nil {
				return true, err
			}
		}
	}
}

// connEnded says why a connection ended, if it has.
func connEnded(c *protocol.Client) error {
	select {
	case <-c.Done():
		return errors.New("connection closed (peer gone or idle timeout)")
	default:
		return errors.New("stream closed")
	}
}

// checkLeader asks the session's coordinator, on a fresh connection, who
// leads, and compares the answer with the session's: another leader
// address means the leadership moved; the same address from another server
// instance means the coordinator restarted (and leads again), so the
// session's connection reaches a process that is gone; a newer term from
// the same instance means it lost and regained the lead, which its
// announcements on this connection survive.
func (a *Agent) checkLeader(ctx context.Context, ls *leaderSession) error {
	// The probe may wait DialTimeout for a dead coordinator; the session's
	// own connection may end sooner (idle timeout), and that ends the
	// probe too.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ls.c.Done():
			cancel()
		case <-pctx.Done():
		}
	}()
	ack, err := a.probe(pctx, ls.addr)
	if err != nil {
		if ctx.Err() == nil && pctx.Err() != nil {
			return fmt.Errorf("connection to %s ended during the leader check: %w", ls.addr, connEnded(ls.c))
		}
		return fmt.Errorf("leader check at %s: %w", ls.addr, err)
	}
	switch {
	case ack.LeaderHint == "":
		return fmt.Errorf("%s: %w", ls.addr, ErrNoLeader)
	case ack.LeaderHint != ls.addr:
		a.log.Warn("leader moved", "from", ls.addr, "to", ack.LeaderHint, "term", ack.Term)
		return &redirectError{addr: ack.LeaderHint}
	case ack.Instance != "" && ls.ack.Instance != "" && ack.Instance != ls.ack.Instance:
		a.log.Warn("coordinator restarted at the same address; the session's connection is stale",
			"addr", ls.addr, "old_instance", ls.ack.Instance, "new_instance", ack.Instance, "term", ack.Term)
		return &redirectError{addr: ls.addr, restarted: true}
	case ack.Term > ls.ack.Term:
		a.log.Info("same leader in a newer term", "addr", ls.addr, "old_term", ls.ack.Term, "term", ack.Term)
		ls.ack = ack
	}
	return nil
}

// probe asks addr, on a fresh connection, who leads.
func (a *Agent) probe(ctx context.Context, addr string) (*protocol.HelloAck, error) {
	pctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	c, ack, err := a.dialHello(pctx, addr)
	if err != nil {
		return nil, err
	}
	c.Close()
	return ack, nil
}

// handle takes part in one announced round.
func (a *Agent) handle(ctx context.Context, c *protocol.Client, addr, origin string, ann *protocol.RoundAnnouncement) error {
	job, round := ann.JobID, ann.Round
	log := a.log.With("job", job, "round", round)
	skip := func(reason string, err error) error {
		log.Info("round skipped", "reason", reason, "err", err)
		a.emit(Event{Kind: EventSkipped, Job: job, Round: round, Addr: addr, Result: reason, Err: err})
		return nil
	}
	if ann.Metadata["eval"] == "final" {
		return a.crossSiteEval(ctx, c, addr, origin, ann, log) // evalreport.go
	}
	if err := a.reconcile(ctx, c, addr, job, round, log); err != nil {
		return err
	}
	if _, ok := a.state.Acked(job, round); ok {
		return skip("already submitted", nil)
	}
	if err := a.cfg.Data.acceptsTask(ann.Metadata["task"]); err != nil {
		return skip("task mismatch", err)
	}
	if err := a.checkSchema(ctx, ann.Metadata); err != nil { // schema.go
		return skip("schema mismatch", err)
	}
	baseHex := hex.EncodeToString(ann.BaseHash[:])
	p, err := a.state.loadPending(job, round)
	if err != nil {
		return &fatalError{err}
	}
	if p != nil && p.BaseHash != baseHex {
		if err := a.state.dropPending(job, round); err != nil {
			return &fatalError{err}
		}
		p = nil
	}
	ctx, span := a.startSpan(ctx, "node.round", attribute.String("mfn.job", job), attribute.Int64("mfn.round", int64(round)))
	defer span.End()
	accuracy := -1.0
	if p == nil {
		p, accuracy, err = a.build(ctx, c, origin, ann, log)
		if err != nil {
			var fe *fatalError
			if errors.As(err, &fe) || isConnErr(err) {
				return err
			}
			return skip("cannot train", err)
		}
	} else {
		log.Info("resubmitting the pending update of an earlier run")
		span.AddEvent("resubmitting the pending update of an earlier run")
	}
	err = a.submit(ctx, c, addr, p, accuracy, log)
	endSpan(span, err)
	return err
}

// reconcile settles the pending updates of job's rounds before round: an
// update submitted to a leader that died before answering may have been
// stored, and its round closed since. Sending the same sealed bytes again
// gets the original acknowledgement (the cluster recognises a stored
// update before it looks at the round's state), which is then recorded; a
// "round closed" answer means it was never stored, and it is dropped.
func (a *Agent) reconcile(ctx context.Context, c *protocol.Client, addr, job string, round uint64, log *slog.Logger) error {
	rounds, err := a.state.pendingRounds(job)
	if err != nil {
		return &fatalError{err}
	}
	for _, r := range rounds {
		if r >= round {
			break
		}
		p, err := a.state.loadPending(job, r)
		if err != nil {
			return &fatalError{err}
		}
		if p == nil {
			continue
		}
		if _, ok := a.state.Acked(job, r); ok {
			if err := a.state.dropPending(job, r); err != nil {
				return &fatalError{err}
			}
			continue
		}
		log.Info("settling the pending update of an earlier round", "pending_round", r)
		if err := a.submit(ctx, c, addr, p, -1, log.With("pending_round", r)); err != nil {
			return err
		}
	}
	return nil
}

// isConnErr reports errors that call for a new connection rather than
// skipping the round.
func isConnErr(err error) bool {
	var pe *protocol.ProtocolError
	if errors.As(err, &pe) {
		return pe.Code == protocol.CodeNotLeader || pe.Code == protocol.CodeUnavailable || pe.Code == protocol.CodeInternal
	}
	return !errors.Is(err, protocol.ErrHashMismatch) && !errors.Is(err, ErrTask) && !errors.Is(err, learn.ErrDiverged) &&
		!errors.Is(err, crypto.ErrMalformed)
}

// build fetches the base model, trains (or crafts) the update, seals it and
// stores it as pending.
func (a *Agent) build(ctx context.Context, c *protocol.Client, origin string, ann *protocol.RoundAnnouncement, log *slog.Logger) (*pending, float64, error) {
	dim := 0
	if s := ann.Metadata["dim"]; s != "" {
		if v, err := strconv.Atoi(s); err == nil && v > 0 {
			dim = v
		}
	}
	tctx, train := a.startSpan(ctx, "node.train")
	t, accuracy, err := a.train(tctx, c, dim, ann, log)
	endSpan(train, err)
	if err != nil {
		return nil, -1, err
	}
	_, seal := a.startSpan(ctx, "node.seal")
	p, err := a.seal(t, origin, ann)
	if err == nil {
		seal.SetAttributes(attribute.String("mfn.update_hash", p.pending.UpdateHash), attribute.Int("mfn.sealed_bytes", len(p.pending.Sealed)))
	}
	endSpan(seal, err)
	if err != nil {
		return nil, -1, err
	}
	log.Info("update ready", "arch", p.arch.Kind, "params", len(p.delta), "byzantine", a.cfg.Byzantine,
		"local_accuracy", accuracy, "train_seconds", p.trainTime.Seconds())
	return p.pending, accuracy, nil
}

// trained is an update between training and sealing.
type trained struct {
	arch      learn.Arch
	delta     []float64
	learner   *Learner
	trainTime time.Duration
	// metrics, when set, are signed in a version 2 statement (eval.go).
	metrics *roundMetrics
	pending *pending // set by seal
}

// train fetches the base model and trains (or crafts) the update.
func (a *Agent) train(ctx context.Context, c *protocol.Client, dim int, ann *protocol.RoundAnnouncement, log *slog.Logger) (*trained, float64, error) {
	raw, err := c.FetchModel(ctx, ann.JobID, ann.BaseVersion, ann.BaseHash)
	if err != nil {
		return nil, -1, fmt.Errorf("fetch model %s v%d: %w", ann.JobID, ann.BaseVersion, err)
	}
	base, err := crypto.DecodeUpdate(raw, dim)
	if err != nil {
		return nil, -1, fmt.Errorf("decode model %s v%d: %w", ann.JobID, ann.BaseVersion, err)
	}
	arch, err := a.jobArch(ann.Metadata, len(base))
	if err != nil {
		return nil, -1, err
	}
	a.mu.Lock()
	l, hold := a.learner, a.hold
	a.mu.Unlock()
	if hold != nil {
		if m, err := learn.NewModel(arch, newRand(0, 0)); err == nil {
			copy(m.Params(), base)
			if acc, err := learn.Accuracy(m, hold); err == nil {
				a.metrics.accuracy.WithLabelValues("global").Set(acc)
			}
		}
	}
	if err := a.restoreMomentum(l, ann.JobID, log); err != nil {
		return nil, -1, err
	}
	start := time.Now()
	var delta []float64
	var rm *roundMetrics
	accuracy := -1.0
	if a.cfg.Byzantine != "" {
		delta, err = l.Craft(a.cfg.Byzantine, ann.JobID, ann.Round, arch, base, a.cfg.AttackHonest, a.cfg.AttackF, int(ann.MaxUpdates), a.attack)
	} else {
		var m learn.Model
		delta, m, err = l.Update(ann.JobID, ann.Round, arch, base)
		if err == nil {
			if v, ok := measure(m, l.data, hold); ok {
				rm = &v
				a.metrics.trainLoss.Set(v.trainLoss)
				if v.holdoutSamples > 0 {
					accuracy = v.holdoutAccuracy
					a.metrics.accuracy.WithLabelValues("local").Set(accuracy)
				}
			}
		}
	}
	a.metrics.trainSecs.Observe(time.Since(start).Seconds())
	if err == nil {
		err = privatize(ann.Metadata, delta, privacy.NewCryptoSource()) // local DP (train.go)
	}
	if err != nil {
		return nil, -1, err
	}
	return &trained{arch: arch, delta: delta, learner: l, trainTime: time.Since(start), metrics: rm}, accuracy, nil
}

// seal signs and encrypts a trained update and stores it as pending (then
// the momentum buffer, in that order).
func (a *Agent) seal(t *trained, origin string, ann *protocol.RoundAnnouncement) (*trained, error) {
	l := t.learner
	upd := crypto.EncodeUpdate(t.delta, crypto.Float32)
	stmt := &crypto.Statement{
		Origin: origin, JobID: ann.JobID, Round: ann.Round, NodeID: a.nodeID,
		BaseModelHash: ann.BaseHash, SampleCount: uint64(l.Samples()), Time: a.cfg.Clock().UTC(),
	}
	if m := t.metrics; m != nil {
		stmt.Version = crypto.StatementVersionMetrics
		stmt.TrainLoss, stmt.HoldoutAccuracy, stmt.HoldoutSamples = m.trainLoss, m.holdoutAccuracy, m.holdoutSamples
	}
	sealed, err := crypto.Seal(stmt, upd, a.id.SigningKey, a.cfg.Cluster.Recipients())
	if err != nil {
		return nil, &fatalError{fmt.Errorf("node: seal: %w", err)}
	}
	p := &pending{
		Job: ann.JobID, Round: ann.Round, BaseHash: hex.EncodeToString(ann.BaseHash[:]),
		UpdateHash: hex.EncodeToString(stmt.UpdateHash[:]), Samples: stmt.SampleCount, Sealed: sealed,
	}
	if err := a.state.savePending(p); err != nil {
		return nil, &fatalError{err}
	}
	if v := l.Velocity(ann.JobID); v != nil {
		// After the pending update: a node killed in between resubmits
		// that update and trains its next round from the momentum of the
		// round before, never from a velocity applied twice.
		if err := a.state.SaveMomentum(ann.JobID, ann.Round, v); err != nil {
			return nil, &fatalError{err}
		}
	}
	t.pending = p
	return t, nil
}

// restoreMomentum loads job's recorded momentum buffer into l once per
// run, so that a restarted node carries its client momentum on. A damaged
// file is reported and training starts from zero velocity, as a first
// round would: a wrong momentum is worse than none.
func (a *Agent) restoreMomentum(l *Learner, job string, log *slog.Logger) error {
	a.mu.Lock()
	done := a.momentum[job]
	if a.momentum == nil {
		a.momentum = map[string]bool{}
	}
	a.momentum[job] = true
	a.mu.Unlock()
	if done {
		return nil
	}
	round, v, ok, err := a.state.LoadMomentum(job)
	switch {
	case errors.Is(err, ErrStateFile):
		log.Warn("momentum file damaged; training from zero velocity", "err", err)
	case err != nil:
		return &fatalError{err}
	case ok:
		l.SetVelocity(job, v)
		log.Info("momentum restored", "from_round", round, "values", len(v))
	}
	return nil
}

// maxRetries bounds the rate-limited and unavailable retries of one
// submission on one connection.
const maxRetries = 8

// submit sends a pending update until it is answered for good, and
// records an acknowledgement before returning.
func (a *Agent) submit(ctx context.Context, c *protocol.Client, addr string, p *pending, accuracy float64, log *slog.Logger) error {
	ctx, span := a.startSpan(ctx, spanSubmit, attribute.String("mfn.job", p.Job), attribute.Int64("mfn.round", int64(p.Round)),
		attribute.String("mfn.update_hash", p.UpdateHash), attribute.String("mfn.coordinator", addr))
	err := a.submitLoop(ctx, c, addr, p, accuracy, log, span)
	endSpan(span, err)
	return err
}

func (a *Agent) submitLoop(ctx context.Context, c *protocol.Client, addr string, p *pending, accuracy float64, log *slog.Logger, span trace.Span) error {
	ev := Event{Kind: EventSubmitted, Job: p.Job, Round: p.Round, Addr: addr, LocalAccuracy: accuracy}
	count := func(result string) {
		a.metrics.submissions.WithLabelValues(result).Inc()
		span.AddEvent("answer", trace.WithAttributes(attribute.String("mfn.result", result)))
	}
	if tp := telemetry.TraceParent(ctx); tp != "" {
		ctx = protocol.WithTraceParent(ctx, tp)
	}
	for try := 0; ; try++ {
		ack, err := c.SubmitSealed(ctx, p.Job, p.Round, p.Sealed) // streamed when over a frame
		var pe *protocol.ProtocolError
		errors.As(err, &pe)
		switch {
		case err == nil, errors.Is(err, protocol.CodeDuplicate):
			r := Record{Job: p.Job, Round: p.Round, BaseHash: p.BaseHash, UpdateHash: p.UpdateHash, Samples: p.Samples,
				Byzantine: a.cfg.Byzantine, Coordinator: addr, AckedAt: a.cfg.Clock().UTC()}
			result := ResultAcked
			if err == nil {
				r.LogIndex, r.LeafIndex = ack.LogIndex, ack.LeafIndex
			} else {
				r.Duplicate, result = true, ResultDuplicate
			}
			if err := a.state.RecordAck(r); err != nil {
				return &fatalError{fmt.Errorf("node: record acknowledgement of %s round %d: %w", p.Job, p.Round, err)}
			}
			count(result)
			a.metrics.rounds.Inc()
			log.Info("update acknowledged", "result", result, "log_index", r.LogIndex, "leaf_index", r.LeafIndex, "update_hash", r.UpdateHash)
			ev.Result, ev.Record = result, &r
			a.emit(ev)
			return nil
		case errors.Is(err, protocol.CodeNotLeader):
			count(ResultNotLeader)
			ev.Result, ev.Err = ResultNotLeader, err
			a.emit(ev)
			if pe != nil && pe.LeaderAddr != "" && pe.LeaderAddr != addr {
				a.setLeader(pe.LeaderAddr)
				return &redirectError{addr: pe.LeaderAddr}
			}
			a.setLeader("")
			return err
		case errors.Is(err, protocol.CodeRoundClosed), errors.Is(err, protocol.CodeBadRequest),
			errors.Is(err, protocol.CodeNotFound), errors.Is(err, protocol.CodeUnauthorized):
			result := ResultRejected
			if errors.Is(err, protocol.CodeRoundClosed) {
				result = ResultRoundClosed
			}
			count(result)
			if derr := a.state.dropPending(p.Job, p.Round); derr != nil {
				return &fatalError{derr}
			}
			log.Warn("update refused", "result", result, "err", err)
			ev.Result, ev.Err = result, err
			a.emit(ev)
			return nil
		case (errors.Is(err, protocol.CodeRateLimited) || errors.Is(err, protocol.CodeUnavailable) ||
			errors.Is(err, protocol.CodeInternal)) && try < maxRetries:
			count(ResultRetry)
			wait := 200 * time.Millisecond << min(try, 5)
			if pe != nil && pe.RetryAfter > 0 {
				wait = min(pe.RetryAfter, 30*time.Second)
			}
			if !sleepCtx(ctx, wait) {
				return ctx.Err()
			}
		default:
			count(ResultError)
			ev.Result, ev.Err = ResultError, err
			a.emit(ev)
			return err
		}
	}
}
