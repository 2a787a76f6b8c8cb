package protocol

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"
)

// BroadcastTo tells only the peers its filter accepts, live subscribers
// and those that subscribe later alike.
func TestBroadcastTo(t *testing.T) {
	fx := newFixture(t, memTransport{NewMemNetwork()}, newTestHandler(nil), testConfig(t))
	c := fx.dial(t)
	fx.hello(t, c)
	me := fx.cliID.PublicKey()
	onlyMe := func(k ed25519.PublicKey) bool { return k.Equal(me) }
	notMe := func(k ed25519.PublicKey) bool { return !k.Equal(me) }
	exp := time.Now().Add(time.Hour)
	// Remembered announcements: one for this peer, one for others.
	if err := fx.srv.BroadcastTo(&RoundAnnouncement{JobID: "mine", Round: 1}, exp, onlyMe); err != nil {
		t.Fatal(err)
	}
	if err := fx.srv.BroadcastTo(&RoundAnnouncement{JobID: "theirs", Round: 1}, exp, notMe); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctxT(t), 5*time.Second)
	defer cancel()
	sub, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Live: again one for this peer and one for others.
	if err := fx.srv.BroadcastTo(&RoundAnnouncement{JobID: "theirs-live", Round: 2}, exp, notMe); err != nil {
		t.Fatal(err)
	}
	if err := fx.srv.BroadcastTo(&RoundAnnouncement{JobID: "mine-live", Round: 2}, exp, onlyMe); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		select {
		case m, ok := <-sub:
			if !ok {
				t.Fatalf("subscription ended after %q", got)
			}
			got = append(got, m.JobID)
		case <-ctx.Done():
			t.Fatalf("received %q, want mine and mine-live", got)
		}
	}
	if got[0] != "mine" || got[1] != "mine-live" {
		t.Fatalf("received %q, want [mine mine-live] (announcements are in order; the others' are skipped)", got)
	}
}
