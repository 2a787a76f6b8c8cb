package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// CORS headers: what a browser page of an allowed origin may send and
// read.
var (
	corsAllowHeaders  = []string{"Content-Type", HeaderAPIKey, HeaderRequestID}
	corsExposeHeaders = []string{HeaderRequestID, "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
		"Retry-After", "X-MFN-Model-Hash", HeaderServedBy}
)

// corsMaxAge is how long a browser may cache a preflight answer, in
// seconds.
const corsMaxAge = "600"

// ParseOrigin checks one CORS origin as Config.CORSOrigins takes it:
// "scheme://host[:port]" with scheme http or https, nothing after the
// host, and no wildcard. It returns the origin as browsers send it
// (lower-case scheme and host).
func ParseOrigin(s string) (string, error) {
	if strings.Contains(s, "*") {
		return "", fmt.Errorf("origin %q: wildcards are not allowed, list each origin", clip(s))
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("origin %q: %v", clip(s), err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("origin %q: scheme must be http or https", clip(s))
	case u.Host == "" || u.User != nil:
		return "", fmt.Errorf("origin %q: want scheme://host[:port]", clip(s))
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf("origin %q: an origin has no path, query or fragment", clip(s))
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// corsAllowed reports whether origin is one of Config.CORSOrigins.
func (s *server) corsAllowed(origin string) bool {
	return origin != "" && slices.Contains(s.cfg.CORSOrigins, strings.ToLower(origin))
}

// cors applies the CORS policy before routing. It returns true when it
// has answered the request (a preflight). Without Config.CORSOrigins it
// does nothing: no CORS header is ever sent and OPTIONS is a 405 like
// any method no route has.
//
// For an allowed origin, responses carry Access-Control-Allow-Origin
// (that origin, never "*") and the exposed headers. A preflight (OPTIONS
// with Origin and Access-Control-Request-Method) is answered 204 with
// the path's methods and the allowed request headers when the origin is
// listed, the path exists, the method is one of its routes' and every
// requested header is allowed; otherwise 403 in the error shape, without
// CORS headers. Access-Control-Allow-Credentials is never sent: browsers
// then send no cookies on cross-origin calls, and pages authenticate
// with X-API-Key.
func (s *server) cors(w http.ResponseWriter, r *http.Request) bool {
	if len(s.cfg.CORSOrigins) == 0 {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != ""
	if !preflight {
		if s.corsAllowed(origin) {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", strings.Join(corsExposeHeaders, ", "))
		}
		return false
	}
	infoFrom(r.Context()).route = "OPTIONS (CORS preflight)"
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	if !s.corsAllowed(origin) {
		writeError(w, r, errorf(http.StatusForbidden, CodeForbidden, "CORS: origin %q is not allowed (mfn coordinator --cors-origin)", clip(origin)))
		return true
	}
	methods := s.pathMethods(r)
	if len(methods) == 0 {
		writeError(w, r, errorf(http.StatusForbidden, CodeForbidden, "CORS: no route for %s", clip(r.URL.Path)))
		return true
	}
	want := r.Header.Get("Access-Control-Request-Method")
	if !slices.Contains(methods, want) {
		writeError(w, r, errorf(http.StatusForbidden, CodeForbidden, "CORS: method %q not allowed on %s (allowed: %s)",
			clip(want), clip(r.URL.Path), strings.Join(methods, ", ")))
		return true
	}
	for _, hd := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
		hd = strings.TrimSpace(hd)
		if hd != "" && !slices.ContainsFunc(corsAllowHeaders, func(a string) bool { return strings.EqualFold(a, hd) }) {
			writeError(w, r, errorf(http.StatusForbidden, CodeForbidden, "CORS: request header %q not allowed (allowed: %s)",
				clip(hd), strings.Join(corsAllowHeaders, ", ")))
			return true
		}
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
	h.Set("Access-Control-Allow-Headers", strings.Join(corsAllowHeaders, ", "))
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}

// pathMethods lists the methods the router serves on the request's path.
func (s *server) pathMethods(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); strings.HasPrefix(pattern, m+" ") {
			out = append(out, m)
		}
	}
	return out
}

func validateOrigins(origins []string) error {
	for _, o := range origins {
		if _, err := ParseOrigin(o); err != nil {
			return fmt.Errorf("api: Config.CORSOrigins: %w", err)
		}
	}
	return nil
}

// normalizeOrigins returns the valid origins in the form browsers send.
func normalizeOrigins(origins []string) []string {
	var out []string
	for _, o := range origins {
		if n, err := ParseOrigin(o); err == nil && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
