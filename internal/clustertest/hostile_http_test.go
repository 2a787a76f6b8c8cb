package clustertest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/internal/clustertest"
	"github.com/mfn/mfn/internal/jsonkeys"
)

// The connection caps the hostile-client cluster runs with: small, so
// that a few hundred loopback connections exceed them.
const (
	hostileMaxConns  = 64
	hostilePerClient = 16
)

// dialFrom opens a TCP connection to addr from loopback address src
// (all of 127.0.0.0/8 is loopback on Linux, so each src is a different
// client to the member's per-address cap).
func dialFrom(ctx context.Context, src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// rawGet sends one HTTP/1.1 request on a new connection from src and
// returns the status and body (status 0 when no answer came).
func rawGet(ctx context.Context, src, addr, path string, hdr ...string) (int, []byte) {
	c, err := dialFrom(ctx, src, addr)
	if err != nil {
		return 0, nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", path, addr)
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		return 0, nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body
}

// metricValue reads one sample of member m's /metrics (from src); -1 when
// it is absent.
func metricValue(ctx context.Context, t *testing.T, src string, m *clustertest.Member, sample string) float64 {
	t.Helper()
	status, body := rawGet(ctx, src, m.HTTPAddr, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("%s /metrics: status %d", m.ID, status)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`)
	match := re.FindSubmatch(body)
	if match == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(match[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func logSize(t *testing.T, m *clustertest.Member) int64 {
	t.Helper()
	files := m.LogFiles()
	fi, err := os.Stat(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestHostileHTTPClients attacks a real three-member cluster's HTTP
// listeners as a client without a key would: idle connection floods from
// one and from many addresses, a body announced and never sent, 1 MB and
// 60 KB paths as fast as the member answers, duplicate JSON keys, and an
// unknown member's removal. The caps hold (metrics count the refusals),
// /healthz and the API keep answering other clients and Raft keeps
// committing meanwhile, the idle connections are closed within the header
// timeout, the logs stay small and every log line has each field once.
func TestHostileHTTPClients(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	c := clustertest.Start(t, clustertest.Config{Binary: bin, ExtraArgs: []string{
		"--http-max-conns", strconv.Itoa(hostileMaxConns), "--http-max-conns-per-client", strconv.Itoa(hostilePerClient),
		"--http-insecure",
	}})
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	leader, _, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	target := c.Others(leader)[0] // a follower: writes through it are forwarded

	t.Run("idle floods", func(t *testing.T) {
		var flood []net.Conn
		defer func() {
			for _, fc := range flood {
				fc.Close()
			}
		}()
		// One address opens 300 idle connections.
		for range 300 {
			fc, err := dialFrom(ctx, "127.0.0.9", target.HTTPAddr)
			if err != nil {
				t.Fatal(err)
			}
			flood = append(flood, fc)
		}
		if err := clustertest.Poll(ctx, "per-client refusals counted", func() (bool, error) {
			v := metricValue(ctx, t, "127.0.0.2", target, `mfn_http_connections_refused_total{reason="per_client"}`)
			return v >= 300-hostilePerClient, nil
		}); err != nil {
			t.Fatal(err)
		}
		// Many addresses open their full share each: twice the total cap.
		for i := range 2 * hostileMaxConns / hostilePerClient {
			for range hostilePerClient {
				fc, err := dialFrom(ctx, fmt.Sprintf("127.0.2.%d", i+1), target.HTTPAddr)
				if err != nil {
					t.Fatal(err)
				}
				flood = append(flood, fc)
			}
		}
		if err := clustertest.Poll(ctx, "idle evictions counted", func() (bool, error) {
			v := metricValue(ctx, t, "127.0.0.2", target, `mfn_http_connections_refused_total{reason="evicted_idle"}`)
			return v >= hostileMaxConns, nil
		}); err != nil {
			t.Fatal(err)
		}
		if open := metricValue(ctx, t, "127.0.0.2", target, "mfn_http_connections"); open > hostileMaxConns {
			t.Errorf("%v connections open, cap %d", open, hostileMaxConns)
		}
		// Meanwhile /healthz answers, and a write through the flooded
		// member commits (forwarded to the leader, replicated by Raft).
		if status, _ := rawGet(ctx, "127.0.0.3", target.HTTPAddr, "/healthz"); status != http.StatusOK {
			t.Errorf("/healthz during the flood: status %d", status)
		}
		// (Retried while the member has not yet learnt the new leader's
		// HTTP address, which the leader registers once elected.)
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := clustertest.Poll(wctx, "a job created through the flooded member", func() (bool, error) {
			_, err := c.API(target, c.OperatorKeys[0]).CreateJob(wctx, testSpec("during-flood", 4, 1, 1))
			return err == nil, err
		}); err != nil {
			t.Error(err)
		}
		// Nobody sends a request: the 10 s header timeout closes every
		// flood connection (well within a minute).
		start := time.Now()
		for _, fc := range []net.Conn{flood[0], flood[len(flood)-1]} {
			fc.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := fc.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("an idle flood connection still open after %v: %v", time.Since(start), err)
			}
		}
	})

	t.Run("stalled body", func(t *testing.T) {
		fc, err := dialFrom(ctx, "127.0.0.4", target.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer fc.Close()
		start := time.Now()
		fmt.Fprintf(fc, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"id\":", c.OperatorKeys[1])
		fc.SetReadDeadline(time.Now().Add(45 * time.Second))
		br := bufio.NewReader(fc)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body after %v: %v", time.Since(start), err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("status %d, want 408", resp.StatusCode)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("connection kept after the body timeout: %v", err)
		}
		if d := time.Since(start); d > 40*time.Second {
			t.Errorf("a stalled body held the connection %v", d)
		}
	})

	t.Run("log flood", func(t *testing.T) {
		before := logSize(t, target)
		var wg sync.WaitGroup
		long := "/" + strings.Repeat("a", 1<<20)
		medium := "/v1/jobs/" + strings.Repeat("b", 60_000)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					path := medium
					if i%5 == 0 {
						path = long // beyond the 64 KiB header cap: 431 from net/http
					}
					status, _ := rawGet(ctx, fmt.Sprintf("127.0.3.%d", w%2+1), target.HTTPAddr, path)
					if path == long && status != 0 && status != http.StatusRequestHeaderFieldsTooLarge {
						t.Errorf("1 MB path: status %d, want 431 (header cap)", status)
					}
				}
			}()
		}
		wg.Wait()
		grew := logSize(t, target) - before
		// Two flooding addresses, 10 sampled 4xx lines each (~700 bytes
		// clipped), plus whatever the cluster logs meanwhile.
		if grew > 64<<10 {
			t.Errorf("200 requests with 60 KB and 1 MB paths grew the log by %d bytes", grew)
		}
		if v := metricValue(ctx, t, "127.0.0.2", target, "mfn_http_access_log_suppressed_total"); v < 100 {
			t.Errorf("mfn_http_access_log_suppressed_total %v, want most of the 160 401s sampled out", v)
		}
	})

	t.Run("strict bodies and answers", func(t *testing.T) {
		cl := &http.Client{Timeout: 10 * time.Second}
		post := func(path, key, body string) (int, string) {
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+target.HTTPAddr+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(api.HeaderAPIKey, key)
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if status, body := post("/v1/jobs", c.OperatorKeys[2], `{"id":"dup","dim":4,"dim":5}`); status != http.StatusBadRequest ||
			!strings.Contains(body, `duplicate JSON key \"dim\"`) {
			t.Errorf("duplicate key: %d %s", status, body)
		}
		if status, body := post("/v1/nernst", c.ReaderKey, `{"z":1,"c_out":1.7e308,"c_in":0.001}`); status != http.StatusUnprocessableEntity ||
			!strings.Contains(body, `"message":"c_out:`) || strings.Contains(body, `"request_id":""`) {
			t.Errorf("overflowing nernst: %d %s", status, body)
		}
		req, _ := http.NewRequestWithContext(ctx, "DELETE", "http://"+target.HTTPAddr+"/v1/cluster/members/c-typo", nil)
		req.Header.Set(api.HeaderAPIKey, c.AdminKey)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("removing an unknown member: %d, want 404", resp.StatusCode)
		}
	})

	// The cluster is unharmed: every member ready, and every line each
	// member logged has each field once.
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		for _, f := range m.LogFiles() {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
				if _, err := jsonkeys.Check(line); err != nil {
					t.Errorf("%s line %d: %v: %.300s", f, i+1, err, line)
				}
			}
		}
	}
}

// TestTenThousandIdleConnections opens 10,000 idle connections from 40
// loopback addresses (250 each, under the default per-client cap) to a
// member with the default limits: the member holds at most the default
// total cap of descriptors for them, /healthz answers a new client
// meanwhile, and the header timeout has closed them all well within a
// minute.
func TestTenThousandIdleConnections(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 120*time.Second)
	c := clustertest.Start(t, clustertest.Config{Binary: bin, Members: 1, ExtraArgs: []string{"--http-insecure"}})
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m := c.Members[0]
	const clients, perClient, defaultMaxConns = 40, 250, 4096
	fdsBefore := openFDs(t, m.PID())
	var flood []net.Conn
	defer func() {
		for _, fc := range flood {
			fc.Close()
		}
	}()
	start := time.Now()
	for i := range clients {
		for range perClient {
			fc, err := dialFrom(ctx, fmt.Sprintf("127.0.4.%d", i+1), m.HTTPAddr)
			if err != nil {
				t.Fatalf("after %d connections: %v", len(flood), err)
			}
			flood = append(flood, fc)
		}
	}
	t.Logf("opened %d connections in %v", len(flood), time.Since(start).Round(time.Millisecond))
	hstart := time.Now()
	if status, _ := rawGet(ctx, "127.0.0.5", m.HTTPAddr, "/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz during the flood: status %d", status)
	}
	t.Logf("/healthz answered in %v during the flood", time.Since(hstart).Round(time.Millisecond))
	open := metricValue(ctx, t, "127.0.0.5", m, "mfn_http_connections")
	fds := openFDs(t, m.PID())
	t.Logf("member: %v HTTP connections open, %d descriptors (%d before)", open, fds, fdsBefore)
	if open > defaultMaxConns {
		t.Errorf("%v connections open, default cap %d", open, defaultMaxConns)
	}
	if fds > fdsBefore+defaultMaxConns+64 {
		t.Errorf("member holds %d descriptors (%d before the flood), cap %d", fds, fdsBefore, defaultMaxConns)
	}
	if err := clustertest.Poll(ctx, "flood connections closed", func() (bool, error) {
		return metricValue(ctx, t, "127.0.0.5", m, "mfn_http_connections") <= 2, nil
	}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("idle connections held for %v", d)
	}
	t.Logf("all flood connections closed %v after the flood began", time.Since(start).Round(time.Second))
}

// openFDs counts a process's open descriptors (Linux /proc).
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return len(ents)
}
