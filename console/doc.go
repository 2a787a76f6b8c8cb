// Package console is the coordinator's web console: static pages under
// /ui/ (embedded HTML, CSS and JavaScript, no inline scripts, served with
// the CSP in CSP) that read the JSON API and follow the /v1/events
// WebSocket, and the browser authentication in front of the API.
//
// New wraps the API handler. Requests under /ui are the console's:
//
//	GET  /ui/               the console (a one-time ?token=… is redeemed
//	                        for a session and redirected away)
//	GET  /ui/login          the login form
//	POST /ui/login          form field key=API key → session cookie
//	POST /ui/logout         ends the session (needs X-CSRF-Token)
//	GET  /ui/session        the session's key name, role and CSRF token
//	POST /ui/token          mints a one-time login link for the caller's
//	                        X-API-Key (mfn ctl console)
//	GET  /ui/assets/{file}  the embedded CSS and JavaScript
//
// Every other request goes to the API. One without X-API-Key but with a
// live session cookie is sent on as the session's key: the API applies
// that key's role, rate limit and leader forwarding, as for any client.
// A write (not GET, HEAD, OPTIONS) made that way must carry the
// session's CSRF token in X-CSRF-Token and come from the same origin
// (Origin, else Sec-Fetch-Site); otherwise it is refused with 403 before
// the API sees it. The WebSocket library refuses cross-origin upgrades.
//
// Sessions and login tokens are 256-bit values from crypto/rand, kept
// only as SHA-256 digests, in bounded stores (Config.MaxSessions,
// Config.MaxTokens; the oldest entry is dropped when full) with an expiry
// (Config.SessionTTL, Config.TokenTTL). A login token works once. The
// session keeps the API key in memory so that it can be presented to the
// API; it lives in this member only (a cookie from one member is
// unknown to the others), and is never forwarded.
package console
