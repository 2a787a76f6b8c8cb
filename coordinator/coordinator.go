package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/time/rate"

	"github.com/mfn/mfn/audit"
)

// Config configures one coordinator member. Fields marked required must be
// set; the others have the documented zero-value behaviour.
type Config struct {
	// ID is the member's Raft server id (required, [A-Za-z0-9._-]{1,64}).
	ID string
	// Origin is the cluster's origin string: the first line of its audit
	// checkpoints and the origin nodes sign into their statements
	// (required, the same on every member).
	Origin string
	// RaftAddr, QUICAddr and HTTPAddr are the member's advertised
	// addresses. RaftAddr must equal the transport's LocalAddr. The others
	// are what NotLeaderError and Status tell clients; empty is allowed.
	RaftAddr string
	QUICAddr string
	HTTPAddr string
	// PublicKey is the member's Ed25519 identity (registered in the
	// replicated member list; peers pin it on the Raft transport).
	PublicKey ed25519.PublicKey
	// PeerKeys, when set, follows the replicated member list: keys of
	// registered members are added (the Raft transport accepts joined
	// members), keys of removed members are taken out at once, on every
	// member, whatever the static list said (see syncTrust).
	PeerKeys *PeerKeys
	// Prober checks that a new voter is reachable on its Raft address,
	// and holds its key, before AddVoter adds it; nil means no check.
	// mfn coordinator sets the TLSStreamLayer.
	Prober Prober
	// ProbeTimeout bounds that check; zero means 5 s.
	ProbeTimeout time.Duration

	// Storage and Transport are required; the coordinator owns them from
	// New on and closes them in Close.
	Storage   *Storage
	Transport raft.Transport
	// Raft tunes the consensus timings; nil means raft.DefaultConfig().
	// LocalID, Logger and NotifyCh are set by New.
	Raft *raft.Config

	// Opener opens sealed envelopes (required for Submit and for closing
	// rounds that hold updates).
	Opener Opener
	// Rules builds aggregation rules; nil means DefaultRules.
	Rules RuleFactory
	// Evaluator scores new models; nil means rounds record no accuracy.
	Evaluator Evaluator
	// LogVerifier is the cluster log key's verifier (required): replicas
	// accept only checkpoints it verifies.
	LogVerifier note.Verifier
	// LogSigner signs audit checkpoints with the cluster log key; nil
	// means this member commits no checkpoints when it leads (proof
	// bundles then stay unavailable). Every member normally has it.
	LogSigner note.Signer
	// Announcer pushes round announcements; nil means none are pushed
	// (nodes can still ask with OpenRounds).
	Announcer Announcer

	// Logger receives the member's logs (raft's included); nil discards.
	Logger *slog.Logger
	// Registry receives the Prometheus metrics; nil means unregistered.
	Registry prometheus.Registerer
	// Clock returns the current time; nil means time.Now. Only the
	// leader reads it, and what it reads goes into commands.
	Clock func() time.Time

	// Tick is the round engine's polling period; zero means 100 ms.
	Tick time.Duration
	// ApplyTimeout bounds one Raft apply; zero means 10 s.
	ApplyTimeout time.Duration
	// CheckpointInterval is the longest time the leader waits before
	// checkpointing new audit leaves; zero means 1 s. A round's close is
	// always followed by a checkpoint.
	CheckpointInterval time.Duration
	// NodeRate and NodeBurst limit each node's submissions (token bucket);
	// zero means 5 per second with a burst of 10.
	NodeRate  rate.Limit
	NodeBurst int
	// MaxSealedBytes bounds a sealed envelope; zero means 64 MiB.
	MaxSealedBytes int
	// MaxUpdateBytes bounds the encoded float32 update of a new job
	// (UpdateBytes(dim)); CreateJob refuses a larger one naming the
	// limit. Zero means DefaultMaxUpdateBytes; at most
	// MaxUpdateBytesLimit.
	MaxUpdateBytes int64
	// MinRoundDeadline is the shortest round_deadline CreateJob accepts;
	// zero means DefaultMinRoundDeadline (1 s). Shorter rounds cannot
	// gather updates from nodes across a network, and a deadline given as
	// a bare number of nanoseconds would fail every round.
	MinRoundDeadline time.Duration
	// CacheFloats bounds the leader's cache of decoded updates of open
	// rounds (floats); beyond it updates are re-opened at close. Zero
	// means 2^26 (512 MiB).
	CacheFloats int

	// MemberKey is the member's Ed25519 private key (its public half must
	// be PublicKey). With it the member attests rounds (attest.go): as
	// leader it appends each closed round's result leaf to the audit log,
	// and every member re-derives each closed round and cosigns the
	// checkpoint covering its result leaf, or records a signed dissent.
	// Nil means rounds close without result leaves and this member
	// attests nothing.
	MemberKey ed25519.PrivateKey
	// SendAttestation delivers this member's attestation to the leader
	// when it is a follower (in-process clusters call the leader's
	// SubmitAttestation; mfn coordinator posts it to the leader's
	// AttestPath). Nil means a follower's attestations are only logged.
	SendAttestation func(ctx context.Context, a *Attestation) error
	// AttestQuorum (with MemberKey) turns on the strong form
	// (attest_quorum.go): as leader this member seals rounds for
	// attestation and closes one only once a quorum of the registered
	// members (itself included) submitted a derivation matching its own;
	// a mismatching quorum or AttestTimeout fails the round. Every member
	// of the cluster must run a version that knows the seal's attest
	// field.
	AttestQuorum bool
	// AttestTimeout bounds how long a leader waits for a quorum of
	// matching derivations of a sealed round before failing it; zero
	// means 2 minutes.
	AttestTimeout time.Duration
	// ArchiveDir, if set (with MemberKey), is where this member writes
	// each closed round's audit round archive (archive.go), keeping the
	// newest ArchiveKeep (zero means 8).
	ArchiveDir  string
	ArchiveKeep int
}

// Validate checks the configuration and names the first bad field.
func (c *Config) Validate() error {
	switch {
	case !idPattern.MatchString(c.ID):
		return fmt.Errorf("coordinator: Config.ID %q must be 1-64 characters of [A-Za-z0-9._-]", c.ID)
	case c.Origin == "":
		return fmt.Errorf("coordinator: Config.Origin must not be empty")
	case c.LogVerifier == nil:
		return fmt.Errorf("coordinator: Config.LogVerifier is nil")
	case c.Storage == nil:
		return errNoStorage
	case c.Transport == nil:
		return fmt.Errorf("coordinator: Config.Transport is nil")
	case c.RaftAddr == "":
		return fmt.Errorf("coordinator: Config.RaftAddr must not be empty")
	case c.MemberKey != nil && (len(c.MemberKey) != ed25519.PrivateKeySize || !bytes.Equal(c.MemberKey.Public().(ed25519.PublicKey), c.PublicKey)):
		return fmt.Errorf("coordinator: Config.MemberKey is not the private key of Config.PublicKey")
	case c.AttestQuorum && c.MemberKey == nil:
		return fmt.Errorf("coordinator: Config.AttestQuorum needs Config.MemberKey")
	case c.AttestTimeout < 0 || c.ArchiveKeep < 0:
		return fmt.Errorf("coordinator: Config.AttestTimeout and ArchiveKeep must be ≥ 0")
	case c.ArchiveDir != "" && c.MemberKey == nil:
		return fmt.Errorf("coordinator: Config.ArchiveDir needs Config.MemberKey (archives are written by the attester)")
	case c.PublicKey != nil && len(c.PublicKey) != ed25519.PublicKeySize:
		return fmt.Errorf("coordinator: Config.PublicKey has %d bytes, want %d", len(c.PublicKey), ed25519.PublicKeySize)
	case c.Tick < 0 || c.ApplyTimeout < 0 || c.CheckpointInterval < 0 || c.ProbeTimeout < 0:
		return fmt.Errorf("coordinator: Config.Tick, ApplyTimeout, CheckpointInterval and ProbeTimeout must be ≥ 0")
	case c.MaxUpdateBytes < 0 || c.MaxUpdateBytes > MaxUpdateBytesLimit:
		return fmt.Errorf("coordinator: Config.MaxUpdateBytes %d must be in [0, %d]", c.MaxUpdateBytes, MaxUpdateBytesLimit)
	case c.NodeRate < 0 || c.NodeBurst < 0 || c.MaxSealedBytes < 0 || c.CacheFloats < 0 || c.MinRoundDeadline < 0:
		return fmt.Errorf("coordinator: Config.NodeRate, NodeBurst, MaxSealedBytes, CacheFloats and MinRoundDeadline must be ≥ 0")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = discardLogger
	}
	if c.Rules == nil {
		c.Rules = DefaultRules
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Tick == 0 {
		c.Tick = 100 * time.Millisecond
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Second
	}
	if c.NodeRate == 0 {
		c.NodeRate = 5
	}
	if c.NodeBurst == 0 {
		c.NodeBurst = 10
	}
	if c.MaxSealedBytes == 0 {
		c.MaxSealedBytes = 64 << 20
	}
	if c.MaxUpdateBytes == 0 {
		c.MaxUpdateBytes = DefaultMaxUpdateBytes
	}
	if c.CacheFloats == 0 {
		c.CacheFloats = 1 << 26
	}
	if c.AttestTimeout == 0 {
		c.AttestTimeout = 2 * time.Minute
	}
	if c.ArchiveKeep == 0 {
		c.ArchiveKeep = 8
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = 5 * time.Second
	}
	if c.MinRoundDeadline == 0 {
		c.MinRoundDeadline = DefaultMinRoundDeadline
	}
}

// Coordinator is one member of the coordinator cluster: the Raft node, its
// replicated state, and, while it leads, the round engine and the update
// ingest. All methods are safe for concurrent use.
type Coordinator struct {
	cfg        Config
	logger     *slog.Logger
	fsm        *fsm
	raft       *raft.Raft
	events     *broker
	metrics    *metrics
	cache      *updateCache
	spillState // streamed updates' spill directory (ingest_stream.go)

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	wake     chan struct{}
	notify   chan bool
	observer *raft.Observer
	obsCh    chan raft.Observation
	stop     chan struct{}
	wg       sync.WaitGroup
	// attestQ holds the closed rounds this member has yet to attest
	// (nil without Config.MemberKey).
	attestQ    chan *attestTask
	attestOnce sync.Once
	attestM    *attestationMetrics
	closed     atomic.Bool

	// derivs shares each round's derivation between the attester and
	// the leader's close (attest_quorum.go); prefetchQ holds accepted
	// updates a follower opens ahead (attest_prefetch.go).
	derivs    derivCache
	prefetchQ chan prefetchKey

	// leading is set while this member leads and has applied every entry
	// of earlier terms (the engine's barrier); Submit waits for it.
	leading  atomic.Bool
	closeErr error

	// raftDown is closed once Raft has shut down: a future it has not
	// answered by then never will be (see wait).
	raftDown chan struct{}

	quicConns  atomic.Pointer[func() int]
	announcerV atomic.Pointer[Announcer]
	disconnect atomic.Pointer[func(ed25519.PublicKey) int]
	closeMu    sync.Mutex
	// memberMu serialises membership changes (AddVoter, RemoveServer)
	// with the new leader's reconciliation, which would otherwise remove
	// the record of a member being added between its registration and
	// its configuration change.
	memberMu sync.Mutex
	// reconciled is set once this member, as leader, has reconciled the
	// member list with the Raft configuration (tests wait for it).
	reconciled atomic.Bool
	// crossSiteAnnounced: jobs whose final model this member announced
	// for cross-site evaluation (crosssite.go).
	crossSiteAnnounced sync.Map
}

// New starts a member from its storage: with existing Raft state it
// rejoins its cluster; without, it waits to be bootstrapped (Bootstrap) or
// added by a leader (AddVoter).
func New(cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Coordinator{
		cfg:      cfg,
		logger:   cfg.Logger.With("member", cfg.ID),
		events:   newBroker(),
		cache:    newUpdateCache(cfg.CacheFloats),
		limiters: map[string]*rate.Limiter{},
		wake:     make(chan struct{}, 1),
		notify:   make(chan bool, 16),
		obsCh:    make(chan raft.Observation, 16),
		stop:     make(chan struct{}),
		raftDown: make(chan struct{}),
	}
	var err error
	c.fsm, err = newFSM(cfg.Origin, cfg.LogVerifier, c.applied)
	if err != nil {
		return nil, err
	}
	c.fsm.restored = c.syncTrust
	blobDir := ""
	if cfg.Storage.Dir != "" {
		blobDir = filepath.Join(cfg.Storage.Dir, blobDirName)
	}
	c.fsm.setBlobDir(blobDir, c.logger) // blob.go
	if cfg.MemberKey != nil {
		c.attestQ = make(chan *attestTask, attestQueue)
		c.fsm.attest = c.enqueueAttest
	}
	if cfg.AttestQuorum {
		c.prefetchQ = make(chan prefetchKey, prefetchQueue)
	}
	if l, ok := cfg.Prober.(interface{ SetMemberInfo(Member) }); ok {
		l.SetMemberInfo(Member{ID: cfg.ID, RaftAddr: cfg.RaftAddr, QUICAddr: cfg.QUICAddr, HTTPAddr: cfg.HTTPAddr})
	}
	rc := raft.DefaultConfig()
	if cfg.Raft != nil {
		cp := *cfg.Raft
		rc = &cp
	}
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = newHclog(c.logger, "raft", hclog.Info)
	rc.NotifyCh = c.notify
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("coordinator: raft config: %w", err)
	}
	r, err := raft.NewRaft(rc, c.fsm, cfg.Storage.Logs, cfg.Storage.Stable, cfg.Storage.Snapshots, cfg.Transport)
	if err != nil {
		c.fsm.closeBlobs()
		return nil, fmt.Errorf("coordinator: start raft: %w", err)
	}
	c.raft = r
	if cfg.Announcer != nil {
		c.SetAnnouncer(cfg.Announcer)
	}
	c.metrics, err = newMetrics(cfg.Registry, c)
	if err != nil {
		r.Shutdown()
		return nil, fmt.Errorf("coordinator: metrics: %w", err)
	}
	c.observer = raft.NewObserver(c.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(c.observer)
	c.wg.Add(2)
	go c.watchLeadership()
	go c.watchObservations()
	if c.attestQ != nil {
		c.attestMetrics()
		c.wg.Add(1)
		go c.attester()
	}
	if c.prefetchQ != nil {
		c.wg.Add(1)
		go c.prefetcher()
	}
	return c, nil
}

// applied is the FSM's publish hook: it runs on every replica after each
// applied entry.
func (c *Coordinator) applied(evs []Event) {
	for _, e := range evs {
		switch e.Kind {
		case EventMemberRegistered, EventMemberRemoved:
			c.syncTrust()
		case EventRoundClosed, EventRoundFailed:
			c.cache.dropRound(e.Job, e.Round)
			if e.Kind == EventRoundFailed && c.IsLeader() {
				c.retract(e.Job, e.Round) // a stop, archive or delete ends the round outside the engine
			}
		case EventNodeRevoked:
			c.disconnectNode(e.Node)
		case EventRoundDerived:
			c.poke() // the leader may have its quorum now
		case EventUpdateAccepted:
			c.queuePrefetch(e)
		}
	}
	c.events.publish(evs)
}

// Bootstrap makes this member start a new cluster whose voters are
// servers (which must include this member). It does nothing when the
// member already has Raft state (a restart), so a member started with the
// same flags every time is safe.
func (c *Coordinator) Bootstrap(servers []raft.Server) error {
	has, err := c.cfg.Storage.HasState()
	if err != nil {
		return err
	}
	if has {
		return nil
	}
	if !slices.ContainsFunc(servers, func(s raft.Server) bool { return s.ID == raft.ServerID(c.cfg.ID) }) {
		return fmt.Errorf("%w: bootstrap servers do not include this member %s", ErrInvalid, c.cfg.ID)
	}
	err = c.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("coordinator: bootstrap: %w", err)
	}
	return nil
}

// Close shuts the member down: a leader first hands its leadership to
// another voter (bounded by ctx), then Raft stops and the transport and
// storage are closed. Close is idempotent.
func (c *Coordinator) Close(ctx context.Context) error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed.Swap(true) {
		return c.closeErr
	}
	if c.raft.State() == raft.Leader && c.voterCount() > 1 {
		done := make(chan error, 1)
		go func() { done <- c.raft.LeadershipTransfer().Error() }()
		select {
		case err := <-done:
			if err != nil {
				c.logger.Warn("leadership transfer", errAttr(err))
			}
		case <-ctx.Done():
			c.logger.Warn("leadership transfer abandoned", errAttr(ctx.Err()))
		}
	}
	close(c.stop)
	err := c.raft.Shutdown().Error()
	close(c.raftDown)
	c.raft.DeregisterObserver(c.observer)
	c.wg.Wait()
	if cl, ok := c.cfg.Transport.(io.Closer); ok {
		err = errors.Join(err, cl.Close())
	}
	err = errors.Join(err, c.cfg.Storage.Close())
	c.fsm.closeBlobs()
	c.events.close()
	c.closeErr = err
	return err
}

// ---- leadership ----

func (c *Coordinator) watchLeadership() {
	defer c.wg.Done()
	type term struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var cur *term
	stopLeading := func() {
		if cur != nil {
			cur.cancel()
			<-cur.done
			cur = nil
		}
	}
	defer stopLeading()
	for {
		select {
		case <-c.stop:
			return
		case leader := <-c.notify:
			if leader && cur == nil {
				ctx, cancel := context.WithCancel(context.Background())
				cur = &term{cancel: cancel, done: make(chan struct{})}
				go func(done chan struct{}) {
					defer close(done)
					c.lead(ctx)
				}(cur.done)
			} else if !leader {
				stopLeading()
			}
		}
	}
}

func (c *Coordinator) watchObservations() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case o := <-c.obsCh:
			lo, ok := o.Data.(raft.LeaderObservation)
			if !ok {
				continue
			}
			c.events.publish([]Event{{Kind: EventLeaderChanged, Member: string(lo.LeaderID), At: time.Now(),
				Detail: string(lo.LeaderAddr)}})
		}
	}
}

// IsLeader reports whether this member currently leads.
func (c *Coordinator) IsLeader() bool { return c.raft.State() == raft.Leader }

// notLeader builds the NotLeaderError for this member's view.
func (c *Coordinator) notLeader() error {
	addr, id := c.raft.LeaderWithID()
	e := &NotLeaderError{LeaderID: string(id), RaftAddr: string(addr)}
	if m, ok := c.fsm.member(string(id)); ok && id != "" {
		e.QUICAddr, e.HTTPAddr = m.QUICAddr, m.HTTPAddr
	}
	return e
}

// Leader returns the current leader's id and addresses as this member
// knows them; ok is false when no leader is known.
func (c *Coordinator) Leader() (Member, bool) {
	addr, id := c.raft.LeaderWithID()
	if id == "" {
		return Member{}, false
	}
	m, ok := c.fsm.member(string(id))
	if !ok {
		m = Member{ID: string(id)}
	}
	m.RaftAddr = string(addr)
	return m, true
}

// wait returns the future's error, or raft.ErrRaftShutdown once Raft has
// shut down without answering it: an entry handed to the FSM goroutine
// just before shutdown is never answered, and waiting for it would hang
// Close.
func (c *Coordinator) wait(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-c.raftDown:
		select {
		case err := <-done:
			return err
		default:
			return raft.ErrRaftShutdown
		}
	}
}

// propose commits one command through Raft and returns its apply result.
// It fails with a *NotLeaderError on a follower, or if leadership is lost
// before the entry is known committed (the entry may still commit: callers
// that retry must be idempotent, as every command here is).
func (c *Coordinator) propose(ctx context.Context, t commandType, body any) (*applyResult, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if c.raft.State() != raft.Leader {
		return nil, c.notLeader()
	}
	b, err := encodeCommand(t, body)
	if err != nil {
		return nil, err
	}
	timeout := c.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d); left < timeout {
			timeout = max(left, time.Millisecond)
		}
	}
	f := c.raft.Apply(b, timeout)
	if err := c.wait(f); err != nil {
		return nil, c.applyErr(t, err)
	}
	res, ok := f.Response().(*applyResult)
	if !ok {
		return nil, fmt.Errorf("coordinator: apply %v: unexpected response %T", t, f.Response())
	}
	return res, res.err
}

// applyErr maps a Raft future's error for a command of type t.
func (c *Coordinator) applyErr(t commandType, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return c.notLeader()
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	}
	return fmt.Errorf("coordinator: apply %v: %w", t, err)
}

// ---- Go API ----

// MemberStatus is one member in Status.
type MemberStatus struct {
	Member
	Suffrage string `json:"suffrage"` // Voter, Nonvoter, Staging
	Leader   bool   `json:"leader"`
}

// Status describes the cluster as this member sees it.
type Status struct {
	ID           string         `json:"id"`
	State        string         `json:"state"` // Follower, Candidate, Leader, Shutdown
	Term         uint64         `json:"term"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	LastIndex    uint64         `json:"last_index"`
	LastContact  time.Time      `json:"last_contact,omitzero"`
	LeaderID     string         `json:"leader_id,omitempty"`
	Leader       *Member        `json:"leader,omitempty"`
	Members      []MemberStatus `json:"members"`
	AuditSize    uint64         `json:"audit_size"`
}

// Status returns the member's view of the cluster. It never fails; a
// member without configuration reports no members.
func (c *Coordinator) Status() Status {
	s := Status{
		ID: c.cfg.ID, State: c.raft.State().String(), Term: c.raft.CurrentTerm(),
		CommitIndex: c.raft.CommitIndex(), AppliedIndex: c.raft.AppliedIndex(), LastIndex: c.raft.LastIndex(),
		LastContact: c.raft.LastContact(), AuditSize: c.fsm.treeSize(),
	}
	if m, ok := c.Leader(); ok {
		s.LeaderID, s.Leader = m.ID, &m
	}
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			m, ok := c.fsm.member(string(srv.ID))
			if !ok {
				m = Member{ID: string(srv.ID)}
			}
			m.RaftAddr = string(srv.Address)
			s.Members = append(s.Members, MemberStatus{Member: m, Suffrage: srv.Suffrage.String(), Leader: m.ID == s.LeaderID})
		}
	}
	slices.SortFunc(s.Members, func(a, b MemberStatus) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return s
}

// Ready reports whether the member belongs to a cluster that has a leader.
func (c *Coordinator) Ready() bool {
	if c.closed.Load() {
		return false
	}
	_, id := c.raft.LeaderWithID()
	return id != ""
}

// Linearize returns once this member is the leader, has confirmed it with
// a quorum, and has applied every committed entry: a read after it sees
// every write acknowledged before it. Followers get a *NotLeaderError.
func (c *Coordinator) Linearize(ctx context.Context) error {
	if c.raft.State() != raft.Leader {
		return c.notLeader()
	}
	if err := c.wait(c.raft.VerifyLeader()); err != nil {
		return c.notLeader()
	}
	if err := c.wait(c.raft.Barrier(c.cfg.ApplyTimeout)); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return c.notLeader()
		}
		return fmt.Errorf("coordinator: barrier: %w", err)
	}
	return ctx.Err()
}

// EnrollNode enrolls an edge node with its Ed25519 public key. Enrolling
// the same id with the same key again succeeds and changes nothing; the id
// with a different key gives ErrExists; a key that another node holds, or
// that was revoked (under any id), gives a *KeyInUseError (wrapping
// ErrExists) naming the holder. Leader only.
func (c *Coordinator) EnrollNode(ctx context.Context, id string, key ed25519.PublicKey) error {
	if err := validID("node", id); err != nil {
		return err
	}
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: node %s: public key has %d bytes, want %d", ErrInvalid, id, len(key), ed25519.PublicKeySize)
	}
	_, err := c.propose(ctx, cmdEnrollNode, &enrollNodeCmd{ID: id, PublicKey: key, At: c.now(), KeyUnique: true})
	return err
}

// RevokeNode revokes a node: its connections are refused from then on and
// its later updates rejected (updates already accepted stay). Leader only.
func (c *Coordinator) RevokeNode(ctx context.Context, id string) error {
	_, err := c.propose(ctx, cmdRevokeNode, &revokeNodeCmd{ID: id, At: c.now()})
	return err
}

// ListNodes returns the enrolled nodes (revoked ones included), by id.
func (c *Coordinator) ListNodes() []Node { return c.fsm.nodeList() }

// NodeKey returns an enrolled, non-revoked node's key (ErrUnknownNode,
// ErrRevoked otherwise). It is the lookup for envelope verification.
func (c *Coordinator) NodeKey(id string) (ed25519.PublicKey, error) { return c.fsm.nodeKey(id) }

// NodeByKey returns the id of the enrolled, non-revoked node with this
// key; the QUIC server's client certificate check.
func (c *Coordinator) NodeByKey(key ed25519.PublicKey) (string, bool) { return c.fsm.nodeByKey(key) }

// CreateJob creates a training job; the leader opens its first round on
// its next tick. Beyond JobSpec.Validate, a new job's float32 update must
// be at most Config.MaxUpdateBytes (dim at most MaxStreamedDim; updates
// over a protocol frame are streamed) and its round_deadline at least
// Config.MinRoundDeadline (ErrInvalid naming the limit). Leader only.
func (c *Coordinator) CreateJob(ctx context.Context, spec JobSpec) (Job, error) {
	if err := spec.Validate(); err != nil {
		return Job{}, err
	}
	if err := checkNewJob(spec, c.cfg.MinRoundDeadline, c.cfg.MaxUpdateBytes); err != nil {
		return Job{}, err
	}
	if err := checkStreamDerivable(spec, c.cfg.Rules); err != nil { // derive_big.go
		return Job{}, err
	}
	if spec.MaxFailedRounds == 0 {
		// Filled in here, not in Apply: jobs created before the limit
		// existed (zero in their entry) replay without it.
		spec.MaxFailedRounds = DefaultMaxFailedRounds
	}
	resolveOptimizer(&spec)
	if c.cfg.Rules != nil {
		if _, err := c.cfg.Rules(spec.Rule); err != nil {
			return Job{}, fmt.Errorf("%w: job %s: rule: %v", ErrInvalid, spec.ID, err)
		}
	}
	z, secret, err := resolveDP(spec)
	if err != nil {
		return Job{}, err
	}
	if _, err := c.propose(ctx, cmdCreateJob, &createJobCmd{Spec: spec, At: c.now(), NoiseMultiplier: z, DPSecret: secret}); err != nil {
		return Job{}, err
	}
	c.poke()
	j, _ := c.fsm.job(spec.ID)
	return j, nil
}

// ListJobs returns every job, by id.
func (c *Coordinator) ListJobs() []Job { return c.fsm.jobList() }

// GetJob returns one job (ErrNotFound).
func (c *Coordinator) GetJob(id string) (Job, error) {
	j, ok := c.fsm.job(id)
	if !ok {
		return Job{}, fmt.Errorf("%w: job %s", ErrNotFound, id)
	}
	return j, nil
}

// StopJob stops a running job; its open round fails with the reason.
// Stopping an ended job changes nothing. Leader only.
func (c *Coordinator) StopJob(ctx context.Context, id, reason string) error {
	_, err := c.propose(ctx, cmdStopJob, &stopJobCmd{ID: id, Reason: reason, At: c.now()})
	return err
}

// ArchiveJob ends a job (a running job's open round fails with the
// reason) and frees its models' parameters on every member; the job, its
// rounds and its model hashes stay readable (state archived). Archiving
// twice changes nothing; ErrNotFound for an unknown job. Leader only.
func (c *Coordinator) ArchiveJob(ctx context.Context, id, reason string) error {
	_, err := c.propose(ctx, cmdDeleteJob, &deleteJobCmd{ID: id, Archive: true, Reason: reason, At: c.now()})
	return err
}

// DeleteJob ends a job like ArchiveJob, then removes it, its rounds and
// its models from the state on every member (its audit leaves stay, and
// its id cannot be used again). Deleting twice changes nothing;
// ErrNotFound for an unknown job. Leader only.
func (c *Coordinator) DeleteJob(ctx context.Context, id, reason string) error {
	_, err := c.propose(ctx, cmdDeleteJob, &deleteJobCmd{ID: id, Reason: reason, At: c.now()})
	return err
}

// ListRounds returns a job's rounds in order, each with its updates'
// outcomes (without sealed bodies).
func (c *Coordinator) ListRounds(job string) ([]Round, error) { return c.fsm.roundList(job) }

// GetRound returns one round with per-update outcomes and reasons.
func (c *Coordinator) GetRound(job string, round uint64) (Round, error) {
	return c.fsm.round(job, round, false)
}

// Model returns a model version with its parameters (ErrNotFound;
// ErrModelPruned for versions whose parameters are no longer kept, with
// the metadata filled in).
func (c *Coordinator) Model(job string, version uint64) (Model, error) {
	return c.fsm.model(job, version)
}

// LatestModel returns a job's latest model version.
func (c *Coordinator) LatestModel(job string) (Model, error) {
	j, ok := c.fsm.job(job)
	if !ok {
		return Model{}, fmt.Errorf("%w: job %s", ErrNotFound, job)
	}
	return c.fsm.model(job, j.ModelVersion)
}

// Subscribe returns a channel of events and a function that ends the
// subscription (closing the channel). Slow subscribers lose events rather
// than slowing the cluster. The channel is closed when the member closes.
func (c *Coordinator) Subscribe() (<-chan Event, func()) { return c.events.subscribe() }

// now returns the leader's clock, in UTC without monotonic reading, so it
// encodes canonically into commands.
func (c *Coordinator) now() time.Time { return c.cfg.Clock().UTC().Round(0) }

// poke wakes the round engine.
func (c *Coordinator) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// LatestCheckpoint returns the newest signed audit checkpoint (an error
// wrapping audit.ErrNoCheckpoint before the first).
func (c *Coordinator) LatestCheckpoint() (Checkpoint, error) { return c.fsm.latestCheckpoint() }

// Checkpoints returns every signed audit checkpoint, oldest first.
func (c *Coordinator) Checkpoints() ([]Checkpoint, error) { return c.fsm.checkpoints() }

// Bundle returns the self-contained inclusion proof of an audit leaf under
// the newest checkpoint (errors wrap audit.ErrRange for no such leaf,
// audit.ErrNoCheckpoint when no checkpoint covers it yet).
func (c *Coordinator) Bundle(leaf uint64) (*audit.Bundle, error) { return c.fsm.bundle(leaf) }

// Consistency returns the RFC 6962 consistency proof from the tree of size
// from to the tree of size to (audit.ErrRange unless from ≤ to ≤ size).
func (c *Coordinator) Consistency(from, to uint64) ([][]byte, error) {
	return c.fsm.consistency(from, to)
}

// Leaf returns the encoded audit leaf at index (audit.ErrRange).
func (c *Coordinator) Leaf(index uint64) ([]byte, error) { return c.fsm.leaf(index) }

// AuditSize returns the number of leaves in the audit log.
func (c *Coordinator) AuditSize() uint64 { return c.fsm.treeSize() }
