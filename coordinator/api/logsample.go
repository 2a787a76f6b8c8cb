package api

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// LogSampling bounds the access log lines of client errors (4xx), which a
// client can produce as fast as it can send requests: each client address
// gets PerWindow lines per Window; the rest are counted, and the count is
// logged as one "access log lines suppressed" line when the client's next
// window starts. Server errors (5xx) and successes are always logged.
type LogSampling struct {
	// PerWindow is the number of 4xx lines logged per client and window;
	// zero means 10, a negative value logs every line.
	PerWindow int
	// Window is the sampling period; zero means 1 minute.
	Window time.Duration
	// MaxClients bounds the client addresses tracked; zero means 10,000.
	// When full, expired windows are forgotten first; clients beyond that
	// share one budget.
	MaxClients int
}

func (c LogSampling) withDefaults() LogSampling {
	if c.PerWindow == 0 {
		c.PerWindow = 10
	}
	if c.Window == 0 {
		c.Window = time.Minute
	}
	if c.MaxClients == 0 {
		c.MaxClients = 10000
	}
	return c
}

type sampleWindow struct {
	start      time.Time
	logged     int
	suppressed int
}

// logSampler implements LogSampling.
type logSampler struct {
	cfg LogSampling

	mu      sync.Mutex
	clients map[netip.Addr]*sampleWindow
}

func newLogSampler(cfg LogSampling) *logSampler {
	return &logSampler{cfg: cfg, clients: map[netip.Addr]*sampleWindow{}}
}

// allow reports whether a client error line from client may be logged at
// now, and how many lines of the client's previous window were
// suppressed (to be reported once, when the new window starts).
func (l *logSampler) allow(client netip.Addr, now time.Time) (ok bool, suppressedBefore int) {
	if l.cfg.PerWindow < 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w, found := l.clients[client]
	if !found {
		if len(l.clients) >= l.cfg.MaxClients {
			for a, o := range l.clients {
				if now.Sub(o.start) >= l.cfg.Window && o.suppressed == 0 {
					delete(l.clients, a)
				}
			}
		}
		if len(l.clients) >= l.cfg.MaxClients {
			client = netip.Addr{} // the shared overflow budget
			w = l.clients[client]
		}
		if w == nil {
			w = &sampleWindow{start: now}
			l.clients[client] = w
		}
	}
	if now.Sub(w.start) >= l.cfg.Window {
		suppressedBefore = w.suppressed
		*w = sampleWindow{start: now}
	}
	if w.logged < l.cfg.PerWindow {
		w.logged++
		return true, suppressedBefore
	}
	w.suppressed++
	return false, suppressedBefore
}

// remoteIP is the IP address of a request's RemoteAddr; the zero Addr
// when it has none.
func remoteIP(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
