package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mfn/mfn/coordinator"
)

// TestEventsSubscriberCaps: event streams are capped per key (429) and
// per member (503), both in the error shape, and a closed stream frees
// its slot.
func TestEventsSubscriberCaps(t *testing.T) {
	t.Parallel()
	f := seededFake()
	srv, _ := newTestAPI(t, f, func(c *Config) { c.MaxSubscribers, c.MaxSubscribersPerKey = 3, 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func(key string) (*EventStream, error) {
		cl, err := NewClient(srv.URL, key, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		return cl.Events(ctx, nil, "")
	}
	wantRefused := func(key string, status int, code string) {
		t.Helper()
		_, err := open(key)
		var e *Error
		if !errors.As(err, &e) || e.Status != status || e.Code != code || e.RequestID == "" {
			t.Fatalf("stream for %s: %v, want %d %s with a request id", key, err, status, code)
		}
	}
	r1, err := open(keyReader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(keyReader); err != nil {
		t.Fatal(err)
	}
	wantRefused(keyReader, http.StatusTooManyRequests, CodeRateLimited)
	a1, err := open(keyAuditor)
	if err != nil {
		t.Fatalf("another key refused below the member's cap: %v", err)
	}
	wantRefused(keyOperator, http.StatusServiceUnavailable, CodeUnavailable)
	if n := f.subscribers(); n != 3 {
		t.Fatalf("%d subscriptions, want 3", n)
	}
	r1.Close()
	a1.Close()
	pollUntil(t, 5*time.Second, "slots freed", func() bool { return f.subscribers() == 1 })
	pollUntil(t, 5*time.Second, "slot accounting released", func() bool {
		srv.Config.Handler.(*server).subs.mu.Lock()
		defer srv.Config.Handler.(*server).subs.mu.Unlock()
		return srv.Config.Handler.(*server).subs.total == 1
	})
	r3, err := open(keyReader)
	if err != nil {
		t.Fatalf("after closing one, the key could not open another: %v", err)
	}
	// The stream still works as before.
	f.publish(eventFor("j1"))
	for {
		ev, err := r3.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind != EventSubscribed {
			if ev.Job != "j1" {
				t.Fatalf("event %+v", ev)
			}
			break
		}
	}
}

// TestEventsHandshakeErrorsAreJSON: a cross-origin or malformed WebSocket
// handshake is refused in the error shape, not websocket's plain text.
func TestEventsHandshakeErrorsAreJSON(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	ws := []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
	resp := request(t, srv, "GET", "/v1/events", keyReader, "", append(ws, "Origin", "https://evil.example")...)
	e := wantError(t, resp, http.StatusForbidden, CodeForbidden)
	if !strings.Contains(e.Message, "evil.example") {
		t.Errorf("message %q does not name the origin", e.Message)
	}
	resp = request(t, srv, "GET", "/v1/events", keyReader, "", append(ws, "Sec-WebSocket-Version", "8")...)
	wantError(t, resp, http.StatusBadRequest, CodeBadRequest)
	// The member's own origin is served.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, srv.URL+"/v1/events", &websocket.DialOptions{HTTPClient: srv.Client(),
		HTTPHeader: http.Header{HeaderAPIKey: {keyReader}, "Origin": {srv.URL}}})
	if err != nil {
		t.Fatalf("same-origin stream refused: %v", err)
	}
	conn.CloseNow()
}

func eventFor(job string) coordinator.Event {
	return coordinator.Event{Kind: coordinator.EventRoundOpened, Job: job, Round: 2}
}
