package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/sim"
)

// Coordinator is what the API needs from a cluster member.
// *coordinator.Coordinator implements it; tests use fakes. Writes and
// Linearize return a *coordinator.NotLeaderError on a follower; the other
// errors wrap the coordinator's and audit's sentinel errors (see
// coordinator/errors.go), which the API maps to HTTP statuses.
type Coordinator interface {
	Status() coordinator.Status
	Ready() bool
	IsLeader() bool
	Leader() (coordinator.Member, bool)
	Linearize(ctx context.Context) error

	AddVoter(ctx context.Context, m coordinator.Member) error
	RemoveServer(ctx context.Context, id string) error

	EnrollNode(ctx context.Context, id string, key ed25519.PublicKey) error
	RevokeNode(ctx context.Context, id string) error
	ListNodes() []coordinator.Node

	CreateJob(ctx context.Context, spec coordinator.JobSpec) (coordinator.Job, error)
	ListJobs() []coordinator.Job
	GetJob(id string) (coordinator.Job, error)
	StopJob(ctx context.Context, id, reason string) error
	ListRounds(job string) ([]coordinator.Round, error)
	GetRound(job string, round uint64) (coordinator.Round, error)
	Model(job string, version uint64) (coordinator.Model, error)
	LatestModel(job string) (coordinator.Model, error)

	Subscribe() (<-chan coordinator.Event, func())

	LatestCheckpoint() (coordinator.Checkpoint, error)
	Bundle(leaf uint64) (*audit.Bundle, error)
	Consistency(from, to uint64) ([][]byte, error)
	Leaf(index uint64) ([]byte, error)
	AuditSize() uint64
}

// CheckpointLister is an optional ability of a Coordinator: every signed
// checkpoint so far, oldest first. With it GET /v1/audit/checkpoints (and so
// "mfn ctl audit export") serves the whole checkpoint history; without it,
// only the newest checkpoint.
type CheckpointLister interface {
	Checkpoints() ([]coordinator.Checkpoint, error)
}

// Compute configures the compute endpoints /v1/simulate and /v1/nernst.
type Compute struct {
	// Disabled turns both endpoints off (they answer 404).
	Disabled bool
	// MaxCellSteps bounds grid_size² × steps of one simulation; zero means
	// 2^22 (a 64×64 grid for 1,024 steps, or 256×256 for 64).
	MaxCellSteps int64
	// Concurrency is the number of simulations run at once; zero means 2.
	// Requests beyond it get 503 with Retry-After.
	Concurrency int
	// PerKey is the number of those slots one API key may hold at once,
	// so that one key hammering the endpoint cannot starve the others;
	// zero means max(1, Concurrency/2). Requests beyond it get 503 with
	// Retry-After.
	PerKey int
}

// Config configures the HTTP API of one coordinator member. Coordinator
// and Keys are required; every other field has the documented zero value.
type Config struct {
	// Coordinator is the member the API serves (required).
	Coordinator Coordinator
	// Keys are the API keys (required). Every member of a cluster should
	// have the same keys: a forwarded request is authenticated again by
	// the leader.
	Keys *KeyStore
	// Registry receives the API's HTTP metrics and is what /metrics serves
	// (the coordinator's metrics are normally registered there too); nil
	// means a private registry.
	Registry *prometheus.Registry
	// Logger receives the access log and errors (JSON recommended); nil
	// discards.
	Logger *slog.Logger
	// LogSampling bounds the access log lines of client errors per
	// client address.
	LogSampling LogSampling
	// RateLimit configures the per key and route token buckets.
	RateLimit RateLimit
	// MaxBodyBytes bounds a request body; zero means 8 MiB (a job spec may
	// carry an initial model).
	MaxBodyBytes int64
	// BodyTimeout bounds reading a request body once its header has
	// arrived; a client slower than this gets 408 and the connection is
	// closed. Zero means 30 s.
	BodyTimeout time.Duration
	// Compute configures /v1/simulate and /v1/nernst.
	Compute Compute
	// RequestTimeout bounds each call into the cluster (a write's Raft
	// commit, a linearizing barrier, a forwarded request); zero means 30 s.
	RequestTimeout time.Duration
	// ForwardClient sends requests forwarded to the leader; nil means a
	// client with RequestTimeout. It must not follow redirects.
	ForwardClient *http.Client
	// ForwardScheme is the scheme of the leader's HTTP address when that
	// address has none; empty means "http".
	ForwardScheme string
	// DownloadTimeout bounds writing one model download
	// (/v1/jobs/{id}/models/{version}/params), which the server's
	// WriteTimeout does not cover; zero means 5 minutes (a 16 MB model
	// at 64 KB/s).
	DownloadTimeout time.Duration
	// MaxSubscribers bounds the open /v1/events streams of this member;
	// zero means 256. Beyond it a new stream is refused with 503.
	MaxSubscribers int
	// MaxSubscribersPerKey bounds the open /v1/events streams of one API
	// key; zero means 16. Beyond it a new stream is refused with 429.
	MaxSubscribersPerKey int
	// EventPing is the WebSocket ping period of /v1/events; zero means 20 s.
	EventPing time.Duration
	// EventWriteTimeout bounds one event write and the wait for a pong; a
	// client slower than this is disconnected. Zero means 10 s.
	EventWriteTimeout time.Duration
	// CORSOrigins are the browser origins ("https://app.example.org")
	// whose pages may call the API cross-origin (cors.go); empty means
	// none: no CORS header is sent. No wildcard.
	CORSOrigins []string
	// Clock returns the current time (rate limits); nil means time.Now.
	Clock func() time.Time
	// NewRequestID makes an id for a request without a usable
	// X-Request-ID; nil means 16 random bytes from crypto/rand in hex.
	NewRequestID func() string
}

// Validate checks the configuration and names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Coordinator == nil:
		return errors.New("api: Config.Coordinator is nil")
	case c.Keys == nil:
		return errors.New("api: Config.Keys is nil (every /v1 request needs an API key)")
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("api: Config.MaxBodyBytes %d must be ≥ 0", c.MaxBodyBytes)
	case c.DownloadTimeout < 0:
		return fmt.Errorf("api: Config.DownloadTimeout %v must be ≥ 0", c.DownloadTimeout)
	case c.MaxSubscribers < 0 || c.MaxSubscribersPerKey < 0:
		return errors.New("api: Config.MaxSubscribers and MaxSubscribersPerKey must be ≥ 0")
	case c.LogSampling.Window < 0 || c.LogSampling.MaxClients < 0:
		return errors.New("api: Config.LogSampling.Window and MaxClients must be ≥ 0")
	case validateOrigins(c.CORSOrigins) != nil:
		return validateOrigins(c.CORSOrigins)
	case c.RateLimit.validate() != nil:
		return c.RateLimit.validate()
	case c.Compute.MaxCellSteps < 0 || c.Compute.Concurrency < 0 || c.Compute.PerKey < 0:
		return errors.New("api: Config.Compute.MaxCellSteps, Concurrency and PerKey must be ≥ 0")
	case c.RequestTimeout < 0 || c.EventPing < 0 || c.EventWriteTimeout < 0 || c.BodyTimeout < 0:
		return errors.New("api: Config.RequestTimeout, BodyTimeout, EventPing and EventWriteTimeout must be ≥ 0")
	case c.ForwardScheme != "" && c.ForwardScheme != "http" && c.ForwardScheme != "https":
		return fmt.Errorf("api: Config.ForwardScheme %q must be http or https", c.ForwardScheme)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.RateLimit = c.RateLimit.withDefaults()
	c.CORSOrigins = normalizeOrigins(c.CORSOrigins)
	c.LogSampling = c.LogSampling.withDefaults()
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 8 << 20
	}
	if c.Compute.MaxCellSteps == 0 {
		c.Compute.MaxCellSteps = 1 << 22
	}
	if c.Compute.Concurrency == 0 {
		c.Compute.Concurrency = 2
	}
	if c.Compute.PerKey == 0 {
		c.Compute.PerKey = max(1, c.Compute.Concurrency/2)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = 30 * time.Second
	}
	if c.ForwardScheme == "" {
		c.ForwardScheme = "http"
	}
	if c.ForwardClient == nil {
		c.ForwardClient = &http.Client{
			Timeout:       c.RequestTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.DownloadTimeout == 0 {
		c.DownloadTimeout = 5 * time.Minute
	}
	if c.MaxSubscribers == 0 {
		c.MaxSubscribers = 256
	}
	if c.MaxSubscribersPerKey == 0 {
		c.MaxSubscribersPerKey = 16
	}
	if c.EventPing == 0 {
		c.EventPing = 20 * time.Second
	}
	if c.EventWriteTimeout == 0 {
		c.EventWriteTimeout = 10 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.NewRequestID == nil {
		c.NewRequestID = randomID
	}
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// server is the API handler.
type server struct {
	cfg     Config
	c       Coordinator
	log     *slog.Logger
	mux     *http.ServeMux
	limiter *limiter
	metrics *httpMetrics
	sims    *simSlots
	// simulate runs one simulation (sim.SimulateContext; tests replace it).
	simulate func(ctx context.Context, cfg sim.Config) (*sim.Result, error)
	simStats *simStats // statistics of the runs /v1/simulate computed
	sampler  *logSampler
	subs     *subscriberSlots
	openapi  []byte // the OpenAPI document (openapi.go)
}

// New builds the HTTP API handler of one member (see the package
// documentation for the routes). It registers the HTTP metrics on
// cfg.Registry and fails if they are already registered there.
func New(cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &server{
		cfg:     cfg,
		c:       cfg.Coordinator,
		log:     cfg.Logger,
		mux:     http.NewServeMux(),
		limiter: newLimiter(cfg.RateLimit, cfg.Clock),
		sims:    &simSlots{total: cfg.Compute.Concurrency, perKeyMax: cfg.Compute.PerKey, perKey: map[string]int{}},
		simulate: func(ctx context.Context, c sim.Config) (*sim.Result, error) {
			return sim.SimulateContext(ctx, c, false)
		},
		sampler: newLogSampler(cfg.LogSampling),
		subs:    &subscriberSlots{perKey: map[string]int{}},
	}
	var err error
	if s.metrics, err = newHTTPMetrics(cfg.Registry); err != nil {
		return nil, fmt.Errorf("api: metrics: %w", err)
	}
	if s.simStats, err = newSimStats(cfg.Registry); err != nil {
		return nil, fmt.Errorf("api: metrics: %w", err)
	}
	if s.openapi, err = buildOpenAPI(s.routes(nil), rateClass); err != nil {
		return nil, err
	}
	promh := promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{ErrorLog: nil})
	for _, rt := range s.routes(promh) {
		s.mux.Handle(rt.pattern, s.wrap(rt))
	}
	return s, nil
}

// mode says where a route's request is served.
type mode int

const (
	// local: served from this member's replica.
	local mode = iota
	// current: a read that must see every acknowledged write: on the
	// leader after Linearize, otherwise forwarded to the leader.
	current
	// write: a change, which only the leader can make: forwarded when
	// this member does not lead.
	write
)

// handlerFunc serves one route; body is the request body (POST, DELETE),
// already size-checked. A returned error is written in the error shape.
type handlerFunc func(w http.ResponseWriter, r *http.Request, body []byte) error

// route is one row of the route table.
type route struct {
	pattern string
	role    Role // 0: public (no key, no rate limit)
	mode    mode
	h       handlerFunc
}

// routes is the route table. Keep it in sync with doc.go.
func (s *server) routes(metrics http.Handler) []route {
	rs := []route{
		{"GET /healthz", 0, local, s.healthz},
		{"GET /readyz", 0, local, s.readyz},
		{"GET /metrics", 0, local, func(w http.ResponseWriter, r *http.Request, _ []byte) error {
			metrics.ServeHTTP(w, r)
			return nil
		}},
		{"GET /openapi.json", 0, local, s.openapiDoc}, // openapi.go

		{"GET /v1/cluster", RoleReader, local, s.clusterStatus},
		{"POST /v1/cluster/join", RoleAdmin, write, s.clusterJoin},
		{"DELETE /v1/cluster/members/{id}", RoleAdmin, write, s.clusterRemove},

		{"GET /v1/nodes", RoleReader, current, s.nodesList},
		{"GET /v1/nodes/{id}", RoleReader, current, s.nodeGet},
		{"POST /v1/nodes", RoleOperator, write, s.nodeEnroll},
		{"DELETE /v1/nodes/{id}", RoleOperator, write, s.nodeRevoke},
		{"POST /v1/nodes/{id}/revoke", RoleOperator, write, s.nodeRevoke},

		{"GET /v1/jobs", RoleReader, current, s.jobsList},
		{"POST /v1/jobs", RoleOperator, write, s.jobCreate},
		{"GET /v1/jobs/{id}", RoleReader, current, s.jobGet},
		{"POST /v1/jobs/{id}/stop", RoleOperator, write, s.jobStop},
		{"POST /v1/jobs/{id}/archive", RoleOperator, write, s.jobRemove(true)}, // jobs_remove.go
		{"DELETE /v1/jobs/{id}", RoleOperator, write, s.jobRemove(false)},
		{"GET /v1/jobs/{id}/rounds", RoleReader, current, s.roundsList},
		{"GET /v1/jobs/{id}/rounds/{round}", RoleReader, current, s.roundGet},
		{"GET /v1/jobs/{id}/metrics", RoleReader, current, s.jobMetrics}, // jobmetrics.go
		{"GET /v1/jobs/{id}/models/{version}", RoleReader, current, s.modelGet},
		{"GET /v1/jobs/{id}/models/{version}/params", RoleReader, current, s.modelParams},

		{"GET /v1/audit/checkpoint", RoleAuditor, local, s.auditCheckpoint},
		{"GET /v1/audit/checkpoints", RoleAuditor, local, s.auditCheckpoints},
		{"GET /v1/audit/bundles/{leaf}", RoleAuditor, local, s.auditBundle},
		{"GET /v1/audit/consistency", RoleAuditor, local, s.auditConsistency},
		{"GET /v1/audit/leaves", RoleAuditor, local, s.auditLeaves},
		{"GET /v1/audit/leaves/{index}", RoleAuditor, local, s.auditLeaf},

		{"GET /v1/events", RoleReader, local, s.events},
	}
	if !s.cfg.Compute.Disabled {
		rs = append(rs,
			route{"POST /v1/simulate", RoleReader, local, s.simulateRoute},
			route{"POST /v1/nernst", RoleReader, local, s.nernst},
		)
	}
	return rs
}

// ServeHTTP assigns the request id, runs the route (or the JSON 404/405),
// recovers panics, and records the access log line and the metrics.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	id := r.Header.Get(HeaderRequestID)
	if !validRequestID(id) {
		id = s.cfg.NewRequestID()
	}
	info := &reqInfo{id: id, route: "unmatched"}
	info.log = s.log.With("request_id", id)
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	r.Header.Set(HeaderRequestID, id)
	rec := &statusRecorder{ResponseWriter: w}
	rec.Header().Set(HeaderRequestID, id)
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			info.log.Error("handler panic", "panic", fmt.Sprint(p), "route", info.route)
			if !rec.wrote {
				writeError(rec, r, errorf(http.StatusInternalServerError, CodeInternal, "internal error"))
			}
		}
		s.finish(rec, r, info, start)
	}()
	if s.cors(rec, r) { // cors.go: CORS headers, preflights answered
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.unmatched(rec, r)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// unmatched answers a request no route matches: 404, or 405 with Allow
// when the path exists for other methods, both in the error shape.
func (s *server) unmatched(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	switch probe.status {
	case http.StatusMethodNotAllowed:
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeError(w, r, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"method %s not allowed on %s (allowed: %s)", clip(r.Method), clip(r.URL.Path), probe.header.Get("Allow")))
	case http.StatusMovedPermanently, http.StatusPermanentRedirect, http.StatusTemporaryRedirect, http.StatusFound:
		w.Header().Set("Location", probe.header.Get("Location"))
		writeError(w, r, errorf(probe.status, CodeNotFound, "%s is not a canonical path; see Location", clip(r.URL.Path)))
	default:
		writeError(w, r, errorf(http.StatusNotFound, CodeNotFound, "no route for %s %s", clip(r.Method), clip(r.URL.Path)))
	}
}

// headerProbe captures what ServeMux's built-in 404/405/redirect handler
// would answer, without writing it.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header { return p.header }
func (p *headerProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *headerProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

// The coordinator is the production Coordinator.
var _ Coordinator = (*coordinator.Coordinator)(nil)
