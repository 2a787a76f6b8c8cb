package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/mfn/mfn/coordinator"
)

// EventSubscribed is the kind of the first message on /v1/events: the
// subscription is active, and every later event will be delivered (unless
// the client falls behind; see the package documentation).
const EventSubscribed coordinator.EventKind = "subscribed"

// events streams the member's events over a WebSocket as JSON text
// messages (coordinator.Event), filtered by the optional query parameters
// kind (comma-separated kinds) and job.
func (s *server) events(w http.ResponseWriter, r *http.Request, _ []byte) error {
	kinds := map[coordinator.EventKind]bool{}
	for _, k := range strings.Split(r.URL.Query().Get("kind"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			kinds[coordinator.EventKind(k)] = true
		}
	}
	job := r.URL.Query().Get("job")
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		return errorf(http.StatusUpgradeRequired, CodeUpgradeRequired, "%s is a WebSocket: open it with a WebSocket client", r.URL.Path)
	}
	// Refuse in the error shape what websocket.Accept would refuse in
	// plain text: a cross-origin page (a browser sends Origin; the
	// stream is served to its own origin only), or a malformed handshake.
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || (!strings.EqualFold(u.Host, r.Host) && !s.corsAllowed(origin)) {
			return errorf(http.StatusForbidden, CodeForbidden, "WebSocket from origin %q refused: only %q may open the stream",
				clip(origin), clip(r.Host))
		}
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return errorf(http.StatusBadRequest, CodeBadRequest, "Sec-WebSocket-Version %q: only 13 is supported", clip(v))
	}
	if r.Header.Get("Sec-WebSocket-Key") == "" {
		return errorf(http.StatusBadRequest, CodeBadRequest, "WebSocket handshake without Sec-WebSocket-Key")
	}
	key := infoFrom(r.Context()).ident.Name
	if err := s.subs.acquire(key, s.cfg.MaxSubscribers, s.cfg.MaxSubscribersPerKey); err != nil {
		return err
	}
	defer s.subs.release(key)
	// The server's read and write timeouts would otherwise cut a long
	// stream; the WebSocket does its own liveness with pings.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	var opts *websocket.AcceptOptions
	if origin := r.Header.Get("Origin"); s.corsAllowed(origin) {
		// A page of a --cors-origin origin, checked in full above.
		u, _ := url.Parse(origin)
		opts = &websocket.AcceptOptions{OriginPatterns: []string{u.Host}}
	}
	conn, err := websocket.Accept(w, r, opts)
	if err != nil {
		// Accept has written the HTTP error already.
		infoFrom(r.Context()).log.Debug("websocket accept", "error", err.Error())
		return nil
	}
	defer conn.CloseNow()
	conn.SetReadLimit(4096)
	ctx := conn.CloseRead(r.Context())
	evs, cancel := s.c.Subscribe()
	defer cancel()
	log := infoFrom(r.Context()).log

	write := func(v any) error {
		wctx, wcancel := context.WithTimeout(ctx, s.cfg.EventWriteTimeout)
		defer wcancel()
		return wsjson.Write(wctx, conn, v)
	}
	if err := write(coordinator.Event{Kind: EventSubscribed, At: s.cfg.Clock().UTC()}); err != nil {
		return nil
	}
	ping := time.NewTicker(s.cfg.EventPing)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			// The client closed the connection or sent a data message.
			return nil
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(ctx, s.cfg.EventWriteTimeout)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				// The peer does not answer: no close handshake to wait for.
				log.Info("event stream: ping failed", "error", err.Error())
				return nil
			}
		case ev, ok := <-evs:
			if !ok {
				conn.Close(websocket.StatusGoingAway, "member shutting down")
				return nil
			}
			if (len(kinds) > 0 && !kinds[ev.Kind]) || (job != "" && ev.Job != job) {
				continue
			}
			if err := write(ev); err != nil {
				// A timed-out write leaves the connection unusable: it is
				// dropped without a close handshake.
				if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					log.Info("event stream: slow consumer disconnected")
				}
				return nil
			}
		}
	}
}

// headerHasToken reports whether a comma-separated header contains token
// (case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// subscriberSlots counts open event streams in total and per API key.
type subscriberSlots struct {
	mu     sync.Mutex
	total  int
	perKey map[string]int
}

// acquire takes a slot for key, or returns the 503 (member full) or 429
// (key full) to answer.
func (s *subscriberSlots) acquire(key string, maxTotal, maxPerKey int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perKey[key] >= maxPerKey {
		e := errorf(http.StatusTooManyRequests, CodeRateLimited,
			"key %q already has %d event streams open on this member (the limit); close one first", key, maxPerKey)
		e.retryAfter = 10 * time.Second
		return e
	}
	if s.total >= maxTotal {
		e := errorf(http.StatusServiceUnavailable, CodeUnavailable,
			"this member already serves %d event streams (the limit); retry later or use another member", maxTotal)
		e.retryAfter = 10 * time.Second
		return e
	}
	s.total++
	s.perKey[key]++
	return nil
}

func (s *subscriberSlots) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.perKey[key]--; s.perKey[key] <= 0 {
		delete(s.perKey, key)
	}
}
