package e2e

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/console"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
)

// TestHoldConsole runs a small federation with Hold: after the summary the
// cluster keeps serving, the summary carries a one-time console link that
// logs a browser in (session cookie, redirect to /ui/) exactly once, the
// session reads the cluster through the API, and cancelling ctx ends Run
// promptly with the summary.
func TestHoldConsole(t *testing.T) {
	o := DefaultOptions()
	o.Members, o.Nodes, o.Byzantine, o.Rounds, o.Samples, o.TestPerRegime = 3, 3, 0, 2, 12, 10
	o.Chaos = false
	o.Hold = true
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	held := make(chan *Summary, 1)
	o.OnHold = func(s *Summary) { held <- s }
	type result struct {
		sum *Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Run(ctx, o)
		done <- result{s, err}
	}()
	var sum *Summary
	select {
	case sum = <-held:
	case r := <-done:
		t.Fatalf("Run returned before holding: %v, %+v", r.err, r.sum)
	}
	if sum.RoundsCompleted != o.Rounds {
		t.Errorf("held summary: %d rounds completed, want %d", sum.RoundsCompleted, o.Rounds)
	}
	link, err := url.Parse(sum.ConsoleURL)
	if err != nil || link.Scheme != "http" || !strings.HasPrefix(link.Host, "127.0.0.1:") || link.Path != "/ui/" || link.Query().Get("token") == "" {
		t.Fatalf("console URL %q: want http://127.0.0.1:PORT/ui/?token=... (%v)", sum.ConsoleURL, err)
	}
	// The same field is in the --json output.
	b, err := json.Marshal(sum)
	var fields map[string]any
	if err == nil {
		err = json.Unmarshal(b, &fields)
	}
	if err != nil || fields["console_url"] != sum.ConsoleURL {
		t.Errorf("JSON summary: console_url %v, want %q (%v)", fields["console_url"], sum.ConsoleURL, err)
	}

	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string, ck *http.Cookie) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ck != nil {
			req.AddCookie(ck)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := get(sum.ConsoleURL, nil)
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName && c.Value != "" {
			session = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" || session == nil {
		t.Fatalf("first use of the link: %s, Location %q, session cookie %v", resp.Status, resp.Header.Get("Location"), session)
	}
	// Used once: a second use gets no session and is sent to the login page.
	resp = get(sum.ConsoleURL, nil)
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName && c.Value != "" {
			t.Errorf("second use of the link set a session cookie")
		}
	}
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/login") {
		t.Errorf("second use of the link: %s, Location %q, want a redirect to /ui/login", resp.Status, loc)
	}
	base := link.Scheme + "://" + link.Host
	if resp := get(base+"/v1/cluster", session); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/cluster with the session: %s, want 200", resp.Status)
	}
	if resp := get(base+"/v1/cluster", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/cluster without credentials: %s, want 401", resp.Status)
	}

	// The hold ends when ctx is cancelled, and everything stops.
	select {
	case r := <-done:
		t.Fatalf("Run returned while holding: %v", r.err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case r := <-done:
		if r.err != nil || r.sum == nil || r.sum.ConsoleURL != sum.ConsoleURL {
			t.Fatalf("Run after the hold: %v, %+v", r.err, r.sum)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15 s of the cancel")
	}
	if _, err := hc.Get(base + "/healthz"); err == nil {
		t.Errorf("the console still answers after Run returned")
	}
}

// TestKilledMemberStopsHTTP: every member serves the API with the demo's
// key (and only that key), and a member killed as the chaos kills the
// leader stops answering HTTP while the others keep serving.
func TestKilledMemberStopsHTTP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys := make([]*crypto.Identity, 3)
	for i := range keys {
		var err error
		if keys[i], err = crypto.GenerateIdentity(crypto.RoleCoordinator, crand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	skey, vkey, err := audit.GenerateLogKey(Origin, crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewLogSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewLogVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := startCluster(ctx, clusterConfig{n: 3, dir: t.TempDir(), origin: Origin, keys: keys, signer: signer, verifier: verifier,
		evaluator: &evaluator{task: "none"}, logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	leader, err := cl.waitLeader(ctx, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	status := func(m *member, key string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.httpAddr+"/v1/cluster", nil)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set(api.HeaderAPIKey, key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, m := range cl.members {
		if code, err := status(m, cl.apiKey); err != nil || code != http.StatusOK {
			t.Errorf("member %s with the demo key: %d, %v; want 200", m.id, code, err)
		}
		if code, err := status(m, cl.apiKey+"x"); err != nil || code != http.StatusUnauthorized {
			t.Errorf("member %s with a wrong key: %d, %v; want 401", m.id, code, err)
		}
	}
	cl.kill(leader)
	if code, err := status(leader, cl.apiKey); err == nil {
		t.Errorf("killed member %s still answers HTTP (%d)", leader.id, code)
	}
	for _, m := range cl.live() {
		if code, err := status(m, cl.apiKey); err != nil || code != http.StatusOK {
			t.Errorf("surviving member %s: %d, %v; want 200", m.id, code, err)
		}
	}
	// A link is minted on the new leader once one is elected.
	link, err := cl.loginLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(link, leader.httpAddr) {
		t.Errorf("login link %s points at the killed member", link)
	}
}
