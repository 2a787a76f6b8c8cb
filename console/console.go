package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/mfn/mfn/coordinator/api"
)

//go:embed assets
var assetFS embed.FS

// Assets returns the embedded console files (HTML, CSS, JS), rooted at
// the assets directory.
func Assets() fs.FS {
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// Names of the cookie and headers the console uses.
const (
	// CookieName is the session cookie.
	CookieName = "mfn_session"
	// HeaderCSRF carries the session's CSRF token on a write made with
	// the session cookie.
	HeaderCSRF = "X-CSRF-Token"
	// CSP is the Content-Security-Policy of every console response: only
	// the console's own files, no inline script or style, no framing.
	CSP = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'"
)

// Defaults of Config's limits.
const (
	DefaultSessionTTL  = 8 * time.Hour
	DefaultMaxSessions = 1024
	DefaultTokenTTL    = 5 * time.Minute
	DefaultMaxTokens   = 256
	// maxLoginBody bounds the body of POST /ui/login (a form with one key).
	maxLoginBody = 4096
)

// Config configures the console. Keys is required; the rest have the
// documented defaults.
type Config struct {
	// Keys are the API keys a user may log in with (the API's keys).
	Keys *api.KeyStore
	// SessionTTL is how long a session lasts after login; zero means
	// DefaultSessionTTL.
	SessionTTL time.Duration
	// MaxSessions bounds the live sessions; zero means DefaultMaxSessions.
	// A login beyond it ends the oldest session.
	MaxSessions int
	// TokenTTL is how long a one-time login link is valid; zero means
	// DefaultTokenTTL.
	TokenTTL time.Duration
	// MaxTokens bounds the unused login links; zero means
	// DefaultMaxTokens. Minting beyond it drops the oldest link.
	MaxTokens int
	// SecureCookie marks the cookie Secure even on plain HTTP requests
	// (behind a TLS-terminating proxy). Requests over TLS always get it.
	SecureCookie bool
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Rand is the source of session ids and tokens; nil means
	// crypto/rand.
	Rand io.Reader
}

// Console serves /ui/ and lets requests with a session cookie through to
// the API as the session's key. Build it with New; it is safe for
// concurrent use.
type Console struct {
	cfg      Config
	next     http.Handler
	sessions *store[session]
	tokens   *store[grant]
	files    http.Handler
}

// New wraps the API handler next: requests under /ui are served by the
// console, every other request goes to next, carrying the session's API
// key when it has a live session cookie and no X-API-Key of its own.
func New(next http.Handler, cfg Config) (*Console, error) {
	if cfg.Keys == nil {
		return nil, errors.New("console: Config.Keys is nil")
	}
	if cfg.SessionTTL < 0 || cfg.TokenTTL < 0 || cfg.MaxSessions < 0 || cfg.MaxTokens < 0 {
		return nil, errors.New("console: Config.SessionTTL, TokenTTL, MaxSessions and MaxTokens must be ≥ 0")
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Console{
		cfg:      cfg,
		next:     next,
		sessions: newStore[session](cfg.MaxSessions),
		tokens:   newStore[grant](cfg.MaxTokens),
		files:    http.FileServerFS(Assets()),
	}, nil
}

// Sessions returns the number of sessions held (expired ones not yet
// dropped included).
func (c *Console) Sessions() int { return c.sessions.len() }

// ServeHTTP routes /ui to the console and everything else to the API.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, "/ui/") {
		c.serveUI(w, r)
		return
	}
	c.serveAPI(w, r)
}

// serveAPI passes a request to the API; a request with a live session
// cookie and no X-API-Key is sent as the session's key, after the CSRF
// checks when it is a write.
func (c *Console) serveAPI(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(api.HeaderAPIKey) == "" {
		if s, ok := c.session(r); ok {
			if !safeMethod(r.Method) {
				if err := c.checkCSRF(r, s); err != nil {
					writeErr(w, http.StatusForbidden, "forbidden", err.Error())
					return
				}
			}
			r = r.Clone(r.Context())
			r.Header.Set(api.HeaderAPIKey, s.key)
		}
	}
	if r.Header.Get("Cookie") != "" {
		// The cookie is for this member only; it is never passed on.
		r = r.Clone(r.Context())
		r.Header.Del("Cookie")
	}
	c.next.ServeHTTP(w, r)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// checkCSRF refuses a cookie-authenticated write from another origin or
// without the session's CSRF token.
func (c *Console) checkCSRF(r *http.Request, s session) error {
	if !sameOrigin(r) {
		return errors.New("cross-origin request refused")
	}
	got := r.Header.Get(HeaderCSRF)
	if got == "" {
		return fmt.Errorf("missing %s header (writes made with the console session need it)", HeaderCSRF)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
		return fmt.Errorf("wrong %s", HeaderCSRF)
	}
	return nil
}

// sameOrigin reports whether the request's Origin (or, without one,
// Sec-Fetch-Site) says it comes from a page of this server. A request
// with neither header (not a browser) passes; the CSRF token still
// applies.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" {
			return false
		}
		return u.Scheme == scheme(r) && strings.EqualFold(u.Host, r.Host)
	}
	if sf := r.Header.Get("Sec-Fetch-Site"); sf != "" {
		return sf == "same-origin" || sf == "none"
	}
	return true
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// session returns the live session of the request's cookie.
func (c *Console) session(r *http.Request) (session, bool) {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return session{}, false
	}
	return c.sessions.get(ck.Value, c.cfg.Clock())
}

// setSecurityHeaders sets the headers of every console response.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: under no-referrer browsers send
	// "Origin: null" on form posts, which the origin check refuses. The
	// referrer never leaves the server's origin either way.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func (c *Console) serveUI(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	p := r.URL.Path
	switch {
	case p == "/ui":
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	case p == "/ui/":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		if tok := r.URL.Query().Get("token"); tok != "" {
			c.redeem(w, r, tok)
			return
		}
		if _, ok := c.session(r); !ok {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		c.page(w, r, "index.html")
	case p == "/ui/login":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			c.page(w, r, "login.html")
		case http.MethodPost:
			c.login(w, r)
		default:
			methodNotAllowed(w, "GET, HEAD, POST")
		}
	case p == "/ui/logout":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		c.logout(w, r)
	case p == "/ui/session":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		c.sessionInfo(w, r)
	case p == "/ui/token":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		c.mint(w, r)
	case strings.HasPrefix(p, "/ui/assets/"):
		name := strings.TrimPrefix(p, "/ui/assets/")
		if name == "" || strings.HasSuffix(name, ".html") || path.Clean("/"+name) != "/"+name {
			writeErr(w, http.StatusNotFound, "not_found", "no console file "+p)
			return
		}
		if _, err := fs.Stat(Assets(), name); err != nil {
			writeErr(w, http.StatusNotFound, "not_found", "no console file "+p)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		c.files.ServeHTTP(w, r2)
	default:
		writeErr(w, http.StatusNotFound, "not_found", "no console page "+p)
	}
}

// page writes an embedded HTML page.
func (c *Console) page(w http.ResponseWriter, r *http.Request, name string) {
	b, err := fs.ReadFile(Assets(), name)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "internal", "missing page "+name)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}

// start creates a session for key and sets its cookie.
func (c *Console) start(w http.ResponseWriter, r *http.Request, key string, ident api.Identity) error {
	id, err := newSecret(c.cfg.Rand)
	if err != nil {
		return err
	}
	csrf, err := newSecret(c.cfg.Rand)
	if err != nil {
		return err
	}
	now := c.cfg.Clock()
	exp := now.Add(c.cfg.SessionTTL)
	c.sessions.put(id, session{key: key, ident: ident, csrf: csrf, created: now, expires: exp}, now, exp)
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/", Expires: exp, MaxAge: int(c.cfg.SessionTTL / time.Second),
		HttpOnly: true, Secure: r.TLS != nil || c.cfg.SecureCookie, SameSite: http.SameSiteStrictMode,
	})
	return nil
}

func (c *Console) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil || c.cfg.SecureCookie, SameSite: http.SameSiteStrictMode})
}

// login exchanges the API key of the login form for a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeErr(w, http.StatusForbidden, "forbidden", "cross-origin login refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		writeErr(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("login form: %v (at most %d bytes)", err, maxLoginBody))
		return
	}
	key := r.PostForm.Get("key")
	ident, ok := c.cfg.Keys.Lookup(key)
	if !ok {
		http.Redirect(w, r, "/ui/login#refused", http.StatusSeeOther)
		return
	}
	if err := c.start(w, r, key, ident); err != nil {
		writeErr(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// redeem exchanges a one-time login token for a session and redirects to
// the URL without it.
func (c *Console) redeem(w http.ResponseWriter, r *http.Request, tok string) {
	g, ok := c.tokens.take(tok, c.cfg.Clock())
	if !ok {
		http.Redirect(w, r, "/ui/login#expired", http.StatusSeeOther)
		return
	}
	if err := c.start(w, r, g.key, g.ident); err != nil {
		writeErr(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// logout ends the request's session.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		c.clearCookie(w, r)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s, ok := c.sessions.get(ck.Value, c.cfg.Clock())
	if ok {
		if err := c.checkCSRF(r, s); err != nil {
			writeErr(w, http.StatusForbidden, "forbidden", err.Error())
			return
		}
		c.sessions.remove(ck.Value)
	}
	c.clearCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// SessionInfo is the body of GET /ui/session.
type SessionInfo struct {
	Key     string    `json:"key"`
	Role    string    `json:"role"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

func (c *Console) sessionInfo(w http.ResponseWriter, r *http.Request) {
	s, ok := c.session(r)
	if !ok {
		writeErr(w, http.StatusUnauthorized, "unauthorized", "no console session; log in at /ui/login")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, SessionInfo{Key: s.ident.Name, Role: s.ident.Role.String(), CSRF: s.csrf, Expires: s.expires.UTC()})
}

// LoginLink is the body of POST /ui/token.
type LoginLink struct {
	// Path is the link's path and query: /ui/?token=…
	Path string `json:"path"`
	// Expires is when the link stops working (it works once).
	Expires time.Time `json:"expires"`
	// Key and Role name the API key the session will act as.
	Key  string `json:"key"`
	Role string `json:"role"`
}

// mint makes a one-time login link for the caller's API key, which must
// come in X-API-Key (a session cannot mint links).
func (c *Console) mint(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get(api.HeaderAPIKey)
	ident, ok := c.cfg.Keys.Lookup(key)
	if !ok {
		w.Header().Set("WWW-Authenticate", `APIKey header="X-API-Key"`)
		writeErr(w, http.StatusUnauthorized, "unauthorized", "POST /ui/token needs a valid X-API-Key")
		return
	}
	tok, err := newSecret(c.cfg.Rand)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	now := c.cfg.Clock()
	exp := now.Add(c.cfg.TokenTTL)
	c.tokens.put(tok, grant{key: key, ident: ident, created: now, expires: exp}, now, exp)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, LoginLink{Path: "/ui/?token=" + tok, Expires: exp.UTC(), Key: ident.Name, Role: ident.Role.String()})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeErr(w, http.StatusMethodNotAllowed, "method_not_allowed", "allowed: "+allow)
}

// writeErr writes the API's error shape.
func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// RequestLoginLink asks the coordinator at server (its base URL) for a
// one-time console login link for key, and returns the full link.
func RequestLoginLink(ctx context.Context, hc *http.Client, server, key string) (string, LoginLink, error) {
	base, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || base.Host == "" {
		return "", LoginLink{}, fmt.Errorf("console: server URL %q: want http(s)://host:port", server)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String()+"/ui/token", nil)
	if err != nil {
		return "", LoginLink{}, err
	}
	req.Header.Set(api.HeaderAPIKey, key)
	resp, err := hc.Do(req)
	if err != nil {
		return "", LoginLink{}, fmt.Errorf("console: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", LoginLink{}, fmt.Errorf("console: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return "", LoginLink{}, fmt.Errorf("console: %s: %s", resp.Status, e.Error.Message)
	}
	var l LoginLink
	if err := json.Unmarshal(body, &l); err != nil || !strings.HasPrefix(l.Path, "/ui/?token=") {
		return "", LoginLink{}, fmt.Errorf("console: unexpected answer from %s (is the console mounted?)", base)
	}
	return base.String() + l.Path, l, nil
}
