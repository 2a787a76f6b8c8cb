package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/coordinator"
)

// Headers the API reads or writes.
const (
	// HeaderAPIKey carries the client's API key.
	HeaderAPIKey = "X-API-Key"
	// HeaderRequestID carries the request id: the client's when it sends
	// a usable one (1–128 characters of [A-Za-z0-9._:-]), otherwise a
	// generated one; echoed on every response and in every log line.
	HeaderRequestID = "X-Request-ID"
	// HeaderForwardedBy marks a request a follower forwarded to the
	// leader (its value is the follower's id). A request carrying it is
	// never forwarded again.
	HeaderForwardedBy = "X-MFN-Forwarded-By"
	// HeaderServedBy is set on a response a follower relayed from the
	// leader: the leader's id.
	HeaderServedBy = "X-MFN-Served-By"
)

type infoKey struct{}

// reqInfo is the per-request state shared by the middleware and the
// handlers.
type reqInfo struct {
	id        string
	route     string
	log       *slog.Logger
	ident     Identity
	authed    bool
	forwarded string // leader id the request was forwarded to
	errCode   string
	errMsg    string
}

func infoFrom(ctx context.Context) *reqInfo {
	i, _ := ctx.Value(infoKey{}).(*reqInfo)
	return i
}

func requestID(r *http.Request) string {
	if i := infoFrom(r.Context()); i != nil {
		return i.id
	}
	return r.Header.Get(HeaderRequestID)
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// statusRecorder remembers the status and size written. Unwrap lets
// http.ResponseController and the WebSocket upgrade reach the original
// writer's Hijacker and Flusher.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if !s.wrote {
		s.status, s.wrote = http.StatusOK, true
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack marks the response as switching protocols before handing over
// the connection.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("api: response writer cannot hijack")
	}
	if !s.wrote {
		s.status, s.wrote = http.StatusSwitchingProtocols, true
	}
	return hj.Hijack()
}

// Flush implements http.Flusher when the underlying writer does.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// httpMetrics are the API's own metrics.
type httpMetrics struct {
	duration  *prometheus.HistogramVec
	requests  *prometheus.CounterVec
	forwarded *prometheus.CounterVec
	limited   *prometheus.CounterVec
	// inFlight is the number of requests being served (a /v1/events
	// stream counts for as long as it is open).
	inFlight prometheus.Gauge
	// suppressed counts access log lines of client errors left out by
	// the sampling (LogSampling).
	suppressed prometheus.Counter
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mfn_http_request_duration_seconds",
			Help:    "HTTP API request latency by route pattern and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms … 16 s
		}, []string{"route", "code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfn_http_requests_total",
			Help: "HTTP API requests by route pattern and status code.",
		}, []string{"route", "code"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfn_http_forwarded_total",
			Help: "Requests this member forwarded to the leader, by route pattern.",
		}, []string{"route"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfn_http_rate_limited_total",
			Help: "Requests refused with 429 by the per key and route rate limit, by route pattern.",
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mfn_http_in_flight_requests",
			Help: "HTTP API requests being served now, open /v1/events streams included.",
		}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mfn_http_access_log_suppressed_total",
			Help: "Access log lines of client errors (4xx) left out by the per-client sampling.",
		}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.requests, m.forwarded, m.limited, m.inFlight, m.suppressed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// finish records the metrics and the access log line of a request.
// Probes (public routes) log at debug level.
func (s *server) finish(rec *statusRecorder, r *http.Request, info *reqInfo, start time.Time) {
	status := rec.status
	if !rec.wrote {
		status = http.StatusOK
	}
	elapsed := time.Since(start)
	code := strconv.Itoa(status)
	s.metrics.duration.WithLabelValues(info.route, code).Observe(elapsed.Seconds())
	s.metrics.requests.WithLabelValues(info.route, code).Inc()
	level := slog.LevelInfo
	if !info.authed && status < 400 {
		level = slog.LevelDebug
	}
	if status >= 500 {
		level = slog.LevelWarn
	}
	if status >= 400 && status < 500 && s.log.Enabled(r.Context(), level) {
		client := remoteIP(r.RemoteAddr)
		ok, before := s.sampler.allow(client, s.cfg.Clock())
		if before > 0 {
			s.log.Info("access log lines suppressed", "remote_ip", client.String(), "suppressed", before,
				"window_s", s.cfg.LogSampling.Window.Seconds())
		}
		if !ok {
			s.metrics.suppressed.Inc()
			return
		}
	}
	// The line is built from s.log, not info.log: info.log carries the
	// request id and, once authenticated, the key for the handlers' own
	// lines, and each field must appear once (strict JSON consumers
	// refuse duplicate keys).
	attrs := []any{
		"request_id", info.id,
		"method", clip(r.Method), "path", clip(r.URL.Path), "route", info.route, "status", status,
		"bytes", rec.bytes, "duration_ms", float64(elapsed.Microseconds()) / 1000, "remote", r.RemoteAddr,
	}
	if info.authed {
		attrs = append(attrs, "key", info.ident.Name, "role", info.ident.Role.String())
	}
	if info.forwarded != "" {
		attrs = append(attrs, "forwarded_to", info.forwarded)
	}
	if info.errCode != "" {
		attrs = append(attrs, "error_code", info.errCode)
	}
	if info.errMsg != "" {
		attrs = append(attrs, "error", clipTo(info.errMsg, maxErrorMessage))
	}
	s.log.Log(r.Context(), level, "http request", attrs...)
}

// wrap builds the handler of one route: authentication, role check, rate
// limit, body reading, and the leader routing of its mode.
func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := infoFrom(r.Context())
		info.route = rt.pattern
		if err := s.serveRoute(w, r, rt, info); err != nil {
			writeError(w, r, err)
		}
	})
}

func (s *server) serveRoute(w http.ResponseWriter, r *http.Request, rt route, info *reqInfo) error {
	if rt.role != 0 {
		key := r.Header.Get(HeaderAPIKey)
		if key == "" {
			w.Header().Set("WWW-Authenticate", `APIKey header="X-API-Key"`)
			return errorf(http.StatusUnauthorized, CodeUnauthorized, "missing %s header", HeaderAPIKey)
		}
		ident, ok := s.cfg.Keys.Lookup(key)
		if !ok {
			w.Header().Set("WWW-Authenticate", `APIKey header="X-API-Key"`)
			return errorf(http.StatusUnauthorized, CodeUnauthorized, "unknown API key")
		}
		info.ident, info.authed = ident, true
		info.log = info.log.With("key", ident.Name)
		if ident.Role < rt.role {
			return errorf(http.StatusForbidden, CodeForbidden, "key %q has role %s; %s needs %s or above",
				ident.Name, ident.Role, rt.pattern, rt.role)
		}
		class := rateClass(rt)
		if cr, limited := s.cfg.RateLimit.class(class); limited {
			d := s.limiter.take(ident.Name, rt.pattern, cr)
			d.setHeaders(w.Header())
			if !d.ok {
				s.metrics.limited.WithLabelValues(rt.pattern).Inc()
				return &httpError{status: http.StatusTooManyRequests, code: CodeRateLimited,
					msg: fmt.Sprintf("rate limit of %g requests/s (burst %d, class %s) on %s exceeded for key %q",
						cr.Rate, cr.Burst, class, rt.pattern, ident.Name)}
			}
		}
	}
	var body []byte
	if r.Method == http.MethodPost || r.Method == http.MethodDelete || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		var err error
		if body, err = s.readBody(w, r); err != nil {
			return err
		}
	}
	switch rt.mode {
	case write:
		if !s.c.IsLeader() {
			return s.forward(w, r, body, nil)
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		err := rt.h(w, r.WithContext(ctx), body)
		if errors.Is(err, coordinator.ErrNotLeader) {
			// Leadership moved during the call: the leader gets the
			// request. Every write is idempotent, so a command that
			// committed after all is harmless to repeat.
			return s.forward(w, r, body, err)
		}
		return timeoutAs(err, ctx)
	case current:
		if !s.c.IsLeader() {
			return s.forward(w, r, body, nil)
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		err := s.c.Linearize(ctx)
		cancel()
		if errors.Is(err, coordinator.ErrNotLeader) {
			return s.forward(w, r, body, err)
		}
		if err != nil {
			return timeoutAs(err, ctx)
		}
	}
	return rt.h(w, r, body)
}

// timeoutAs reports a deadline hit by ctx as errTimeout.
func timeoutAs(err error, ctx context.Context) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v", errTimeout, err)
	}
	return err
}
