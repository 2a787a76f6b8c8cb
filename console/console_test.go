package console

import (
	"bytes"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/mfn/mfn/coordinator/api"
)

const (
	readerKey   = "reader-key-0123456789"
	operatorKey = "operator-key-0123456789"
)

// fakeAPI records the X-API-Key each request reached the API with and
// answers 200 for reads, 403 for writes by a reader (as the API does).
type fakeAPI struct {
	keys *api.KeyStore
	mu   sync.Mutex
	seen []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, r.Header.Get(api.HeaderAPIKey))
	f.mu.Unlock()
	if r.Header.Get("Cookie") != "" {
		http.Error(w, "cookie leaked to the API", http.StatusTeapot)
		return
	}
	id, ok := f.keys.Lookup(r.Header.Get(api.HeaderAPIKey))
	if !ok {
		http.Error(w, "no key", http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodPost && id.Role < api.RoleOperator {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	w.WriteHeader(http.StatusOK)
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type rig struct {
	t   *testing.T
	c   *Console
	api *fakeAPI
	clk *clock
}

func newRig(t *testing.T, mod func(*Config)) *rig {
	t.Helper()
	ks, err := api.NewKeyStore([]api.Key{{Name: "ops", Role: api.RoleOperator, Secret: operatorKey}, {Name: "viewer", Role: api.RoleReader, Secret: readerKey}})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	cfg := Config{Keys: ks, Clock: clk.Now, Rand: rand.NewChaCha8([32]byte{1})}
	if mod != nil {
		mod(&cfg)
	}
	f := &fakeAPI{keys: ks}
	c, err := New(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, c: c, api: f, clk: clk}
}

func (g *rig) do(req *http.Request) *http.Response {
	g.t.Helper()
	rec := httptest.NewRecorder()
	g.c.ServeHTTP(rec, req)
	return rec.Result()
}

// login posts the form and returns the session cookie.
func (g *rig) login(key string) *http.Cookie {
	g.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "http://console.test/ui/login", strings.NewReader(url.Values{"key": {key}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://console.test")
	resp := g.do(req)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		g.t.Fatalf("login: %d to %q, want 303 to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == CookieName {
			return ck
		}
	}
	g.t.Fatal("login set no session cookie")
	return nil
}

func (g *rig) sessionInfo(ck *http.Cookie) (int, SessionInfo) {
	g.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://console.test/ui/session", nil)
	req.AddCookie(ck)
	resp := g.do(req)
	var si SessionInfo
	if resp.StatusCode == http.StatusOK {
		if err := jsonDecode(resp.Body, &si); err != nil {
			g.t.Fatal(err)
		}
	}
	return resp.StatusCode, si
}

func TestCookieFlags(t *testing.T) {
	g := newRig(t, nil)
	ck := g.login(operatorKey)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Secure {
		t.Fatalf("cookie over HTTP: HttpOnly=%v SameSite=%v Path=%q Secure=%v; want true, Strict, /, false", ck.HttpOnly, ck.SameSite, ck.Path, ck.Secure)
	}
	if len(ck.Value) != 43 { // 32 bytes base64url
		t.Fatalf("session id %d characters, want 43", len(ck.Value))
	}
	if strings.Contains(ck.Value, operatorKey) {
		t.Fatal("the cookie carries the API key")
	}
	// Over TLS the cookie is Secure.
	req := httptest.NewRequest(http.MethodPost, "https://console.test/ui/login", strings.NewReader("key="+operatorKey))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://console.test")
	resp := g.do(req)
	var secure bool
	for _, c := range resp.Cookies() {
		secure = c.Name == CookieName && c.Secure && c.HttpOnly && c.SameSite == http.SameSiteStrictMode
	}
	if !secure {
		t.Fatalf("HTTPS login cookies %v: want a Secure HttpOnly SameSite=Strict %s", resp.Cookies(), CookieName)
	}
	// Two logins get different ids.
	if ck2 := g.login(operatorKey); ck2.Value == ck.Value {
		t.Fatal("two sessions share an id")
	}
}

func TestLoginRefusesUnknownKeyAndCrossOrigin(t *testing.T) {
	g := newRig(t, nil)
	req := httptest.NewRequest(http.MethodPost, "http://console.test/ui/login", strings.NewReader("key=not-a-valid-key-at-all"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp := g.do(req)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login#refused" || len(resp.Cookies()) != 0 {
		t.Fatalf("unknown key: %d %q cookies %v", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	req = httptest.NewRequest(http.MethodPost, "http://console.test/ui/login", strings.NewReader("key="+operatorKey))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.test")
	if resp := g.do(req); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("cross-origin login: %d, want 403 and no cookie", resp.StatusCode)
	}
	// An oversized form is refused, not read.
	req = httptest.NewRequest(http.MethodPost, "http://console.test/ui/login", strings.NewReader("key="+strings.Repeat("a", 2*maxLoginBody)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp := g.do(req); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("oversized login form: %d, want 400", resp.StatusCode)
	}
}

func TestSessionExpiry(t *testing.T) {
	g := newRig(t, func(c *Config) { c.SessionTTL = time.Hour })
	ck := g.login(readerKey)
	if code, si := g.sessionInfo(ck); code != 200 || si.Role != "reader" || si.Key != "viewer" || si.CSRF == "" {
		t.Fatalf("fresh session: %d %+v", code, si)
	}
	g.clk.Add(59 * time.Minute)
	if code, _ := g.sessionInfo(ck); code != 200 {
		t.Fatalf("session after 59 min: %d, want 200", code)
	}
	g.clk.Add(time.Minute)
	if code, _ := g.sessionInfo(ck); code != http.StatusUnauthorized {
		t.Fatalf("session after 60 min: %d, want 401", code)
	}
	// An expired cookie no longer authenticates API calls.
	req := httptest.NewRequest(http.MethodGet, "http://console.test/v1/jobs", nil)
	req.AddCookie(ck)
	if resp := g.do(req); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API with expired session: %d, want 401", resp.StatusCode)
	}
}

func TestSessionCap(t *testing.T) {
	const max = 5
	g := newRig(t, func(c *Config) { c.MaxSessions = max })
	var cks []*http.Cookie
	for i := 0; i < 3*max; i++ {
		g.clk.Add(time.Second) // distinct creation times: the oldest is well defined
		cks = append(cks, g.login(readerKey))
		if n := g.c.Sessions(); n > max {
			t.Fatalf("after %d logins the store holds %d sessions, cap %d", i+1, n, max)
		}
	}
	if n := g.c.Sessions(); n != max {
		t.Fatalf("store holds %d sessions, want %d", n, max)
	}
	for i, ck := range cks {
		code, _ := g.sessionInfo(ck)
		want := http.StatusUnauthorized
		if i >= 2*max {
			want = http.StatusOK
		}
		if code != want {
			t.Fatalf("session %d: %d, want %d (the newest %d live)", i, code, want, max)
		}
	}
}

func mintLink(t *testing.T, g *rig, key string) LoginLink {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "http://console.test/ui/token", nil)
	req.Header.Set(api.HeaderAPIKey, key)
	resp := g.do(req)
	if resp.StatusCode != 200 {
		t.Fatalf("mint: %d", resp.StatusCode)
	}
	var l LoginLink
	if err := jsonDecode(resp.Body, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestOneTimeToken(t *testing.T) {
	g := newRig(t, func(c *Config) { c.TokenTTL = 5 * time.Minute })
	l := mintLink(t, g, operatorKey)
	if !strings.HasPrefix(l.Path, "/ui/?token=") || l.Role != "operator" || l.Key != "ops" {
		t.Fatalf("link %+v", l)
	}
	if strings.Contains(l.Path, operatorKey) {
		t.Fatal("the link carries the API key")
	}
	// The store keeps only digests: the token is not a key of it.
	tok := strings.TrimPrefix(l.Path, "/ui/?token=")
	if _, ok := g.c.tokens.entries[digest(tok)]; !ok || len(g.c.tokens.entries) != 1 {
		t.Fatal("the token is not stored as its SHA-256 digest")
	}
	resp := g.do(httptest.NewRequest(http.MethodGet, "http://console.test"+l.Path, nil))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("first use: %d to %q, want 303 to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == CookieName {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly {
		t.Fatal("first use set no session cookie")
	}
	if code, si := g.sessionInfo(ck); code != 200 || si.Role != "operator" {
		t.Fatalf("session from link: %d %+v", code, si)
	}
	// Second use is refused.
	resp = g.do(httptest.NewRequest(http.MethodGet, "http://console.test"+l.Path, nil))
	if resp.Header.Get("Location") != "/ui/login#expired" || len(resp.Cookies()) != 0 {
		t.Fatalf("second use: %d to %q cookies %v; want refused", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	// An expired link is refused.
	l2 := mintLink(t, g, readerKey)
	g.clk.Add(5 * time.Minute)
	resp = g.do(httptest.NewRequest(http.MethodGet, "http://console.test"+l2.Path, nil))
	if resp.Header.Get("Location") != "/ui/login#expired" || len(resp.Cookies()) != 0 {
		t.Fatalf("expired link: to %q", resp.Header.Get("Location"))
	}
	// Minting needs a valid key in the header, not a session.
	req := httptest.NewRequest(http.MethodPost, "http://console.test/ui/token", nil)
	req.AddCookie(ck)
	if resp := g.do(req); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("mint with a cookie only: %d, want 401", resp.StatusCode)
	}
}

func TestTokenCap(t *testing.T) {
	g := newRig(t, func(c *Config) { c.MaxTokens = 3 })
	var ls []LoginLink
	for i := 0; i < 10; i++ {
		g.clk.Add(time.Millisecond)
		ls = append(ls, mintLink(t, g, readerKey))
		if n := g.c.tokens.len(); n > 3 {
			t.Fatalf("%d pending tokens, cap 3", n)
		}
	}
	resp := g.do(httptest.NewRequest(http.MethodGet, "http://console.test"+ls[0].Path, nil))
	if resp.Header.Get("Location") != "/ui/login#expired" {
		t.Fatal("the oldest token survived the cap")
	}
	resp = g.do(httptest.NewRequest(http.MethodGet, "http://console.test"+ls[9].Path, nil))
	if resp.Header.Get("Location") != "/ui/" {
		t.Fatal("the newest token was dropped")
	}
}

func write(g *rig, ck *http.Cookie, csrf, origin string) *http.Response {
	req := httptest.NewRequest(http.MethodPost, "http://console.test/v1/jobs/j1/stop", strings.NewReader("{}"))
	req.AddCookie(ck)
	if csrf != "" {
		req.Header.Set(HeaderCSRF, csrf)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return g.do(req)
}

func TestCSRFAndRoles(t *testing.T) {
	g := newRig(t, nil)
	op := g.login(operatorKey)
	_, opInfo := g.sessionInfo(op)
	rd := g.login(readerKey)
	_, rdInfo := g.sessionInfo(rd)

	if resp := write(g, op, "", "http://console.test"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("write without CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp := write(g, op, rdInfo.CSRF, "http://console.test"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("write with another session's CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp := write(g, op, opInfo.CSRF, "http://evil.test"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin write: %d, want 403", resp.StatusCode)
	}
	n := len(g.api.seen)
	if resp := write(g, op, opInfo.CSRF, "http://console.test"); resp.StatusCode != http.StatusOK {
		t.Fatalf("operator write with token: %d, want 200", resp.StatusCode)
	}
	if len(g.api.seen) != n+1 || g.api.seen[n] != operatorKey {
		t.Fatalf("the API saw keys %q; want the operator's key once", g.api.seen[n:])
	}
	// A reader's write reaches the API as the reader, which forbids it.
	if resp := write(g, rd, rdInfo.CSRF, "http://console.test"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("reader write: %d, want 403", resp.StatusCode)
	}
	if g.api.seen[len(g.api.seen)-1] != readerKey {
		t.Fatal("a reader's request was sent with another key")
	}
	// Reads with the cookie need no token.
	req := httptest.NewRequest(http.MethodGet, "http://console.test/v1/jobs", nil)
	req.AddCookie(rd)
	if resp := g.do(req); resp.StatusCode != 200 {
		t.Fatalf("reader read: %d", resp.StatusCode)
	}
	// An explicit X-API-Key wins over the cookie and needs no token.
	req = httptest.NewRequest(http.MethodPost, "http://console.test/v1/jobs/j1/stop", nil)
	req.AddCookie(op)
	req.Header.Set(api.HeaderAPIKey, readerKey)
	if resp := g.do(req); resp.StatusCode != http.StatusForbidden || g.api.seen[len(g.api.seen)-1] != readerKey {
		t.Fatalf("header key with cookie: %d", resp.StatusCode)
	}
}

func TestLogoutEndsSession(t *testing.T) {
	g := newRig(t, nil)
	ck := g.login(operatorKey)
	_, si := g.sessionInfo(ck)
	req := httptest.NewRequest(http.MethodPost, "http://console.test/ui/logout", nil)
	req.AddCookie(ck)
	if resp := g.do(req); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("logout without CSRF token: %d, want 403", resp.StatusCode)
	}
	req = httptest.NewRequest(http.MethodPost, "http://console.test/ui/logout", nil)
	req.AddCookie(ck)
	req.Header.Set(HeaderCSRF, si.CSRF)
	resp := g.do(req)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	cleared := false
	for _, c := range resp.Cookies() {
		cleared = cleared || c.Name == CookieName && c.MaxAge < 0
	}
	if !cleared {
		t.Fatal("logout did not clear the cookie")
	}
	if code, _ := g.sessionInfo(ck); code != http.StatusUnauthorized {
		t.Fatalf("session after logout: %d, want 401", code)
	}
	req = httptest.NewRequest(http.MethodGet, "http://console.test/v1/jobs", nil)
	req.AddCookie(ck)
	if resp := g.do(req); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API after logout: %d, want 401", resp.StatusCode)
	}
}

func TestPagesAndCSP(t *testing.T) {
	g := newRig(t, nil)
	// Without a session, /ui/ sends to the login page.
	resp := g.do(httptest.NewRequest(http.MethodGet, "http://console.test/ui/", nil))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("/ui/ without session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := g.login(readerKey)
	for _, p := range []string{"/ui/", "/ui/login", "/ui/assets/app.js", "/ui/assets/style.css", "/ui/assets/login.js"} {
		req := httptest.NewRequest(http.MethodGet, "http://console.test"+p, nil)
		req.AddCookie(ck)
		resp := g.do(req)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Fatalf("%s: CSP %q", p, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "same-origin" {
			t.Fatalf("%s: missing nosniff or Referrer-Policy same-origin", p)
		}
		b, _ := io.ReadAll(resp.Body)
		if len(b) < 100 {
			t.Fatalf("%s: %d bytes", p, len(b))
		}
	}
	for _, p := range []string{"/ui/assets/../console.go", "/ui/assets/index.html", "/ui/assets/nope.js", "/ui/other"} {
		if resp := g.do(httptest.NewRequest(http.MethodGet, "http://console.test"+p, nil)); resp.StatusCode == 200 {
			t.Fatalf("%s: 200, want refused", p)
		}
	}
}

// TestNoInlineScript parses every embedded HTML page: scripts come only
// from /ui/assets files, and no element has an event handler attribute,
// a javascript: URL or a style attribute (all blocked by the CSP).
func TestNoInlineScript(t *testing.T) {
	n := 0
	err := fs.WalkDir(Assets(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".html") {
			return err
		}
		n++
		b, err := fs.ReadFile(Assets(), p)
		if err != nil {
			return err
		}
		doc, err := html.Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		scripts := 0
		var walk func(*html.Node)
		walk = func(nd *html.Node) {
			if nd.Type == html.ElementNode {
				src := ""
				for _, a := range nd.Attr {
					k := strings.ToLower(a.Key)
					if strings.HasPrefix(k, "on") || k == "style" || strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:") {
						t.Errorf("%s: <%s %s=%q> is inline code", p, nd.Data, a.Key, a.Val)
					}
					if k == "src" {
						src = a.Val
					}
				}
				if nd.Data == "style" {
					t.Errorf("%s: inline <style>", p)
				}
				if nd.Data == "script" {
					scripts++
					if !strings.HasPrefix(src, "/ui/assets/") || nd.FirstChild != nil {
						t.Errorf("%s: <script src=%q> with body %v: only external /ui/assets scripts", p, src, nd.FirstChild != nil)
					} else if _, err := fs.Stat(Assets(), strings.TrimPrefix(src, "/ui/assets/")); err != nil {
						t.Errorf("%s: script %s is not embedded", p, src)
					}
				}
			}
			for c := nd.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(doc)
		if scripts == 0 {
			t.Errorf("%s: no script at all", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("%d HTML pages embedded, want index.html and login.html", n)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(http.NotFoundHandler(), Config{}); err == nil {
		t.Fatal("New without keys succeeded")
	}
	ks, _ := api.NewKeyStore([]api.Key{{Role: api.RoleReader, Secret: readerKey}})
	if _, err := New(http.NotFoundHandler(), Config{Keys: ks, MaxSessions: -1}); err == nil {
		t.Fatal("New with MaxSessions -1 succeeded")
	}
}
