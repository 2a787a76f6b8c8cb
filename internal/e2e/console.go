package e2e

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/console"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
)

// demoKeyName is the name of the demo's operator API key.
const demoKeyName = "demo-operator"

// newDemoKey makes the demo cluster's API key: an operator key of 32
// random bytes (base64url), known only to this process. It is never
// printed; the console is reached through one-time login links minted
// with it.
func newDemoKey() (string, *api.KeyStore, error) {
	var b [32]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "", nil, err
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	ks, err := api.NewKeyStore([]api.Key{{Name: demoKeyName, Role: api.RoleOperator, Secret: secret}})
	if err != nil {
		return "", nil, err
	}
	return secret, ks, nil
}

// serveHTTP serves a member's operator API (api.New) behind the web
// console (console.New) on ln, as mfn coordinator does with
// --api-keys. The server stops when its Close is called (kill, close).
func serveHTTP(c *coordinator.Coordinator, ln net.Listener, keys *api.KeyStore, reg *prometheus.Registry, logger *slog.Logger) (*api.Server, error) {
	h, err := api.New(api.Config{Coordinator: c, Keys: keys, Registry: reg, Logger: logger})
	if err != nil {
		return nil, err
	}
	if h, err = console.New(h, console.Config{Keys: keys}); err != nil {
		return nil, err
	}
	srv, err := api.NewServer(h, api.ServerConfig{Registry: reg, Logger: logger})
	if err != nil {
		return nil, err
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("http server stopped", "err", err)
		}
	}()
	return srv, nil
}

// loginLink mints a one-time console login link on the current leader's
// HTTP address (waiting up to 30 s for a leader).
func (cl *cluster) loginLink(ctx context.Context) (string, error) {
	l, err := cl.waitLeader(ctx, 30*time.Second)
	if err != nil {
		return "", err
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	link, _, err := console.RequestLoginLink(ctx, hc, "http://"+l.httpAddr, cl.apiKey)
	if err != nil {
		return "", fmt.Errorf("e2e: console login link from %s: %w", l.id, err)
	}
	return link, nil
}

// hold keeps the cluster serving after the summary: it puts a one-time
// console login link in sum, calls onHold (if set) and returns when ctx
// is done.
func hold(ctx context.Context, cl *cluster, sum *Summary, onHold func(*Summary)) error {
	link, err := cl.loginLink(ctx)
	if err != nil {
		return err
	}
	sum.ConsoleURL = link
	if onHold != nil {
		onHold(sum)
	}
	<-ctx.Done()
	return nil
}
