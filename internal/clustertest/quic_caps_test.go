package clustertest_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/protocol"
)

// TestQUICConnectionCapPerKey opens one connection more than a member
// allows per node key (protocol.DefaultMaxConnsPerKey): the extra one is
// closed before it is served, the refusal shows in the member's metrics
// with its reason, and the other connections keep working.
func TestQUICConnectionCapPerKey(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 90*time.Second)
	c, leader := readyCluster(t, ctx, bin)
	nodes := enrolledNodes(t, ctx, c, 1, 11)
	n := nodes[0]
	pid, err := protocol.NewIdentity(n.Identity.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := protocol.Config{HandshakeTimeout: 3 * time.Second, RequestTimeout: 5 * time.Second}
	d := &protocol.QUICDialer{TLS: protocol.ClientConfig(pid, c.CoordKeys), Config: cfg}
	hello := func() (*protocol.Client, error) {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		cl, err := protocol.Dial(hctx, d, leader.QUICAddr, cfg)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { cl.Close() })
		_, err = cl.Hello(hctx, &protocol.Hello{NodeID: n.ID})
		return cl, err
	}
	var live []*protocol.Client
	for i := range protocol.DefaultMaxConnsPerKey {
		cl, err := hello()
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, protocol.DefaultMaxConnsPerKey, err)
		}
		live = append(live, cl)
	}
	if _, err := hello(); err == nil {
		t.Fatalf("connection %d with one key was served; the cap is %d", protocol.DefaultMaxConnsPerKey+1, protocol.DefaultMaxConnsPerKey)
	}
	// The refusal is counted by reason on the member's /metrics.
	want := `mfn_coordinator_quic_refused_total{reason="too_many_for_key"} 1`
	var body string
	if err := pollMetrics(ctx, "http://"+leader.HTTPAddr+"/metrics", want, &body); err != nil {
		t.Fatalf("%v\nmetrics:\n%s", err, grepLines(body, "quic_refused"))
	}
	// The connections within the cap still work.
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := live[0].Hello(hctx, &protocol.Hello{NodeID: n.ID}); err != nil {
		t.Fatalf("a connection within the cap stopped working: %v", err)
	}
	// A freed slot can be used again.
	live[1].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := hello(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no connection after one was closed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pollMetrics(ctx context.Context, url, want string, body *string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			*body = string(b)
			if strings.Contains(*body, want) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
