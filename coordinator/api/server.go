package api

import (
	"container/list"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ServerConfig bounds what one client can make an HTTP listener hold:
// time per request phase and connections in total and per client address.
// The zero value works: every zero field means its documented default,
// and DefaultServerConfig returns those defaults.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request's header, including the
	// wait for the first request on a new connection; zero means 10 s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request (header and body) from
	// its first byte; zero means 60 s. The API narrows the body read to
	// Config.BodyTimeout, and /v1/events clears it for its WebSocket.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response, from the end of the request
	// header; zero means 60 s. Model downloads set their own deadline
	// (Config.DownloadTimeout) and /v1/events clears it.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no request
	// for this long; zero means 60 s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header (request line included);
	// zero means 64 KiB. Beyond it net/http answers 431.
	MaxHeaderBytes int
	// MaxConns bounds open connections in total; zero means 4,096, a
	// negative value means no limit. At the limit a new connection
	// evicts the oldest connection that has no request in progress (a
	// fresh or keep-alive idle one); if every connection is busy, the new
	// one is closed.
	MaxConns int
	// MaxConnsPerClient bounds open connections from one client IP
	// address; zero means 256, a negative value means no limit. Over it,
	// a new connection is closed at once. Clients behind one proxy or NAT
	// share the budget.
	MaxConnsPerClient int
	// Registry receives mfn_http_connections (open connections) and
	// mfn_http_connections_refused_total{reason}; nil means none.
	Registry prometheus.Registerer
	// Logger receives net/http's own errors (TLS handshakes, malformed
	// requests) at warn level; nil discards them.
	Logger *slog.Logger
}

// DefaultServerConfig returns the defaults the zero ServerConfig means.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		MaxConns:          4096,
		MaxConnsPerClient: 256,
	}
}

// Validate reports the first field out of range.
func (c *ServerConfig) Validate() error {
	switch {
	case c.ReadHeaderTimeout < 0:
		return fmt.Errorf("api: ServerConfig.ReadHeaderTimeout %v must be ≥ 0", c.ReadHeaderTimeout)
	case c.ReadTimeout < 0:
		return fmt.Errorf("api: ServerConfig.ReadTimeout %v must be ≥ 0", c.ReadTimeout)
	case c.WriteTimeout < 0:
		return fmt.Errorf("api: ServerConfig.WriteTimeout %v must be ≥ 0", c.WriteTimeout)
	case c.IdleTimeout < 0:
		return fmt.Errorf("api: ServerConfig.IdleTimeout %v must be ≥ 0", c.IdleTimeout)
	case c.MaxHeaderBytes < 0:
		return fmt.Errorf("api: ServerConfig.MaxHeaderBytes %d must be ≥ 0", c.MaxHeaderBytes)
	}
	return nil
}

func (c ServerConfig) withDefaults() ServerConfig {
	d := DefaultServerConfig()
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if c.MaxConns == 0 {
		c.MaxConns = d.MaxConns
	}
	if c.MaxConnsPerClient == 0 {
		c.MaxConnsPerClient = d.MaxConnsPerClient
	}
	return c
}

// Server is an http.Server whose listeners are wrapped by a connection
// limiter (see ServerConfig). Use its Serve and ServeTLS, not those of the
// embedded http.Server, so that the limits apply.
type Server struct {
	*http.Server
	lim *connLimiter
}

// NewServer returns a server of h with cfg's limits. It registers the
// connection metrics on cfg.Registry and fails if they are registered
// there already, or if cfg is invalid.
func NewServer(h http.Handler, cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	lim, err := newConnLimiter(cfg.MaxConns, cfg.MaxConnsPerClient, cfg.Registry)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ConnState:         lim.connState,
		ErrorLog:          log.New(newErrorLogWriter(logger, LogSampling{}), "", 0),
	}
	return &Server{Server: srv, lim: lim}, nil
}

// Serve serves ln through the connection limiter.
func (s *Server) Serve(ln net.Listener) error { return s.Server.Serve(s.lim.wrap(ln)) }

// ServeTLS serves ln over TLS (s.TLSConfig, or certFile and keyFile)
// through the connection limiter.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	return s.Server.ServeTLS(s.lim.wrap(ln), certFile, keyFile)
}

// OpenConns returns the number of connections open now.
func (s *Server) OpenConns() int { return s.lim.open() }

// Reasons a connection is refused or evicted (the reason label of
// mfn_http_connections_refused_total).
const (
	refusedPerClient = "per_client"   // over MaxConnsPerClient
	refusedTotal     = "total"        // over MaxConns, nothing to evict
	evictedIdle      = "evicted_idle" // an idle connection closed to admit a new one
)

// connLimiter counts open connections in total and per client address.
// Connections that have no request in progress (http.StateNew and
// StateIdle, reported by the server's ConnState hook) are kept in idle
// order so that the oldest can be evicted.
type connLimiter struct {
	max, perClient int
	refused        *prometheus.CounterVec
	gauge          prometheus.Gauge

	mu       sync.Mutex
	total    int
	byClient map[netip.Addr]int
	idle     *list.List // of *limitedConn with no request in progress, oldest first
}

func newConnLimiter(maxConns, perClient int, reg prometheus.Registerer) (*connLimiter, error) {
	l := &connLimiter{
		max: maxConns, perClient: perClient,
		byClient: map[netip.Addr]int{},
		idle:     list.New(),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfn_http_connections_refused_total",
			Help: "HTTP connections closed by the connection limits: per_client (over the per-address cap), total (over the total cap, none idle), evicted_idle (an idle connection closed to admit a new one).",
		}, []string{"reason"}),
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mfn_http_connections",
			Help: "Open HTTP connections.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{l.refused, l.gauge} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("api: connection metrics: %w", err)
			}
		}
	}
	return l, nil
}

func (l *connLimiter) wrap(ln net.Listener) net.Listener { return &limitedListener{Listener: ln, l: l} }

func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// admit decides on a new connection from client. It returns the
// connection to evict (nil for none) and whether to admit.
func (l *connLimiter) admit(lc *limitedConn) (victim *limitedConn, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perClient > 0 && l.byClient[lc.client] >= l.perClient {
		l.refused.WithLabelValues(refusedPerClient).Inc()
		return nil, false
	}
	if l.max > 0 && l.total >= l.max {
		front := l.idle.Front()
		if front == nil {
			l.refused.WithLabelValues(refusedTotal).Inc()
			return nil, false
		}
		// Removed from idle now so that it is evicted once; its Close
		// releases its counts.
		// Its counts are released here, under the lock, so that the
		// total never exceeds the cap between this admission and the
		// victim's Close (which then releases nothing twice).
		victim = front.Value.(*limitedConn)
		l.releaseLocked(victim)
		l.refused.WithLabelValues(evictedIdle).Inc()
	}
	l.total++
	l.byClient[lc.client]++
	l.setIdleLocked(lc)
	l.gauge.Set(float64(l.total))
	return victim, true
}

func (l *connLimiter) release(lc *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked(lc)
}

// releaseLocked gives back lc's place in the counts, once.
func (l *connLimiter) releaseLocked(lc *limitedConn) {
	if lc.released {
		return
	}
	lc.released = true
	l.total--
	if n := l.byClient[lc.client] - 1; n > 0 {
		l.byClient[lc.client] = n
	} else {
		delete(l.byClient, lc.client)
	}
	l.setBusyLocked(lc)
	l.gauge.Set(float64(l.total))
}

// setIdleLocked moves lc to the back of the idle list (newest).
func (l *connLimiter) setIdleLocked(lc *limitedConn) {
	l.setBusyLocked(lc)
	lc.elem = l.idle.PushBack(lc)
}

// setBusyLocked takes lc off the idle list.
func (l *connLimiter) setBusyLocked(lc *limitedConn) {
	if lc.elem != nil {
		l.idle.Remove(lc.elem)
		lc.elem = nil
	}
}

// connState is the http.Server ConnState hook: it tracks which
// connections have no request in progress.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.closed {
		return
	}
	switch st {
	case http.StateNew, http.StateIdle:
		l.setIdleLocked(lc)
	case http.StateActive, http.StateHijacked:
		l.setBusyLocked(lc)
	}
}

type limitedListener struct {
	net.Listener
	l *connLimiter
}

// Accept returns the next connection within the limits, closing those
// over them.
func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: ll.l, client: clientAddr(c.RemoteAddr())}
		victim, ok := ll.l.admit(lc)
		if !ok {
			c.Close()
			continue
		}
		if victim != nil {
			victim.Close()
		}
		return lc, nil
	}
}

// clientAddr is the IP address of a remote address (IPv4-mapped IPv6
// unmapped); the zero Addr when it has none (all such clients share one
// budget).
func clientAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// limitedConn releases its place in the limiter when closed.
type limitedConn struct {
	net.Conn
	l        *connLimiter
	client   netip.Addr
	once     sync.Once
	closed   bool          // guarded by l.mu
	released bool          // its counts are given back; guarded by l.mu
	elem     *list.Element // in l.idle while no request is in progress; guarded by l.mu
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.closed = true
		c.l.mu.Unlock()
		c.l.release(c)
	})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// errorLogWriter turns net/http's ErrorLog lines (TLS handshake failures,
// malformed requests: one per hostile connection) into warn lines,
// clipped and sampled like client errors in the access log, so that a
// flood of bad handshakes cannot fill the disk.
type errorLogWriter struct {
	log     *slog.Logger
	sampler *logSampler
	window  time.Duration
	now     func() time.Time
}

func newErrorLogWriter(l *slog.Logger, cfg LogSampling) *errorLogWriter {
	cfg = cfg.withDefaults()
	return &errorLogWriter{log: l, sampler: newLogSampler(cfg), window: cfg.Window, now: time.Now}
}

func (w *errorLogWriter) Write(p []byte) (int, error) {
	ok, before := w.sampler.allow(netip.Addr{}, w.now())
	if before > 0 {
		w.log.Warn("http server errors suppressed", "suppressed", before, "window_s", w.window.Seconds())
	}
	if ok {
		w.log.Warn("http server", "error", clipTo(strings.TrimRight(string(p), "\n"), maxErrorMessage))
	}
	return len(p), nil
}
