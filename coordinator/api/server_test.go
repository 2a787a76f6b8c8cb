package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// serveLimited serves h with cfg on a fresh 127.0.0.1 port and returns
// the server and its address.
func serveLimited(t *testing.T, h http.Handler, cfg ServerConfig) (*Server, string) {
	t.Helper()
	srv, err := NewServer(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		srv.Close()
	})
	return srv, ln.Addr().String()
}

// dialFrom opens a TCP connection to addr from the loopback address src
// (127.0.0.0/8 is all loopback on Linux, so each src is another client).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// healthzFrom sends GET /healthz on a new connection from src and
// returns the status (0 when no answer came within 2 s).
func healthzFrom(t *testing.T, src, addr string) int {
	t.Helper()
	c := dialFrom(t, src, addr)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pollUntil polls cond every 10 ms until it holds or d passes.
func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func okHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		w.Write(b)
	})
	return mux
}

// TestServerConnectionCaps floods a server with idle connections, first
// from one client address (over the per-client cap), then from several
// (over the total cap): the open connections stay within the caps, the
// refusals are counted, /healthz keeps answering other clients, and the
// header timeout closes every idle connection.
func TestServerConnectionCaps(t *testing.T) {
	reg := prometheus.NewRegistry()
	const perClient, total = 20, 50
	srv, addr := serveLimited(t, okHandler(), ServerConfig{
		MaxConns: total, MaxConnsPerClient: perClient, Registry: reg,
		ReadHeaderTimeout: 1500 * time.Millisecond,
	})
	refused := func(reason string) float64 {
		return testutil.ToFloat64(srv.lim.refused.WithLabelValues(reason))
	}

	// One client opens 200 idle connections.
	var flood []net.Conn
	for range 200 {
		flood = append(flood, dialFrom(t, "127.0.0.1", addr))
	}
	pollUntil(t, 2*time.Second, "per-client refusals counted", func() bool { return refused(refusedPerClient) >= 200-perClient })
	if n := srv.OpenConns(); n > perClient {
		t.Fatalf("%d connections open from one client, cap %d", n, perClient)
	}
	if got := healthzFrom(t, "127.0.0.2", addr); got != http.StatusOK {
		t.Fatalf("/healthz from another client during a one-client flood: status %d", got)
	}

	// Eight more clients each open their full share: 160 more than the
	// total cap allows. Idle connections are evicted, oldest first.
	for i := range 8 {
		for range perClient {
			flood = append(flood, dialFrom(t, fmt.Sprintf("127.0.1.%d", i+1), addr))
		}
	}
	pollUntil(t, 2*time.Second, "evictions counted", func() bool { return refused(evictedIdle) >= 8*perClient+perClient-total })
	if n := srv.OpenConns(); n > total {
		t.Fatalf("%d connections open, total cap %d", n, total)
	}
	if got := healthzFrom(t, "127.0.0.3", addr); got != http.StatusOK {
		t.Fatalf("/healthz during a many-client flood at the total cap: status %d", got)
	}
	if got := testutil.ToFloat64(srv.lim.gauge); got != float64(srv.OpenConns()) {
		t.Errorf("mfn_http_connections %v, open %d", got, srv.OpenConns())
	}

	// Nobody sends a request: the header timeout closes them all.
	pollUntil(t, 5*time.Second, "idle connections closed by the header timeout", func() bool { return srv.OpenConns() == 0 })
	c := flood[len(flood)-1]
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("reading an idle connection the server should have closed: %v", err)
	}
}

// TestServerStalledBody: a client that announces a body and never sends
// it is answered and cut off by the API's body timeout, and the server's
// ReadTimeout does the same for handlers that are not the API's.
func TestServerStalledBody(t *testing.T) {
	t.Parallel()
	f := seededFake()
	h, err := New(Config{Coordinator: f, Keys: testKeys(t), RateLimit: RateLimit{Rate: -1}, BodyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		h       http.Handler
		cfg     ServerConfig
		request string
		status  int
	}{
		{"api body timeout", h, ServerConfig{}, "POST /v1/nernst HTTP/1.1\r\nHost: x\r\nX-API-Key: " + keyReader +
			"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"z\":", http.StatusRequestTimeout},
		{"server read timeout", okHandler(), ServerConfig{ReadTimeout: 300 * time.Millisecond},
			"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc", http.StatusRequestTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := serveLimited(t, tc.h, tc.cfg)
			c := dialFrom(t, "127.0.0.1", addr)
			start := time.Now()
			io.WriteString(c, tc.request)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer to a stalled body: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("connection not closed after the timeout: %v", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("the stalled body held the connection %v", d)
			}
			pollUntil(t, 2*time.Second, "connection released", func() bool { return srv.OpenConns() == 0 })
		})
	}
}

// TestServerConfigValidate: negative durations and sizes are refused by
// name; zero means the defaults.
func TestServerConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg  ServerConfig
		name string
	}{
		{ServerConfig{ReadHeaderTimeout: -1}, "ReadHeaderTimeout"},
		{ServerConfig{ReadTimeout: -1}, "ReadTimeout"},
		{ServerConfig{WriteTimeout: -1}, "WriteTimeout"},
		{ServerConfig{IdleTimeout: -1}, "IdleTimeout"},
		{ServerConfig{MaxHeaderBytes: -1}, "MaxHeaderBytes"},
	} {
		if _, err := NewServer(okHandler(), c.cfg); err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%+v: error %v, want one naming %s", c.cfg, err, c.name)
		}
	}
	srv, err := NewServer(okHandler(), ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultServerConfig()
	if srv.ReadHeaderTimeout != d.ReadHeaderTimeout || srv.ReadTimeout != d.ReadTimeout || srv.WriteTimeout != d.WriteTimeout ||
		srv.IdleTimeout != d.IdleTimeout || srv.MaxHeaderBytes != d.MaxHeaderBytes || srv.lim.max != d.MaxConns || srv.lim.perClient != d.MaxConnsPerClient {
		t.Errorf("zero config did not get the defaults: %+v", srv.Server)
	}
}

// TestServerEventStreamThroughLimits: /v1/events works behind NewServer
// (the server's read and write timeouts do not cut it, the hijacked
// connection counts against the caps while open and is released when
// closed).
func TestServerEventStreamThroughLimits(t *testing.T) {
	t.Parallel()
	f := seededFake()
	h, err := New(Config{Coordinator: f, Keys: testKeys(t), RateLimit: RateLimit{Rate: -1}, EventPing: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := serveLimited(t, h, ServerConfig{ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
		ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, _ := NewClient("http://"+addr, keyReader, nil)
	stream, err := cl.Events(ctx, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // three times every server timeout
	f.publish(eventFor("j1"))
	for {
		ev, err := stream.Next(ctx)
		if err != nil {
			t.Fatalf("stream cut after the server timeouts: %v", err)
		}
		if ev.Kind != EventSubscribed {
			break
		}
	}
	if n := srv.OpenConns(); n != 1 {
		t.Errorf("%d connections open with one stream", n)
	}
	stream.Close()
	pollUntil(t, 5*time.Second, "stream connection released", func() bool { return srv.OpenConns() == 0 })
}
