package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAttestOverHTTP: followers deliver their derivations and
// cosignatures to the leader through HTTPAttestationSender and
// HandleAttestation, signed with their member keys; the route refuses
// what it must, before Raft.
func TestAttestOverHTTP(t *testing.T) {
	t.Parallel()
	const n = 3
	srvs := make([]*httptest.Server, n)
	for i := range srvs {
		srvs[i] = httptest.NewUnstartedServer(nil)
	}
	tc := newTestCluster(t, n, clusterOpts{attest: true, strong: true,
		httpAddr: func(i int) string { return srvs[i].Listener.Addr().String() },
		send: func(i int, tc *testCluster) func(context.Context, *Attestation) error {
			return HTTPAttestationSender(&http.Client{Timeout: 10 * time.Second}, "http", tc.keys.coords[i].SigningKey,
				func() (Member, bool) { return tc.members[i].Leader() })
		}})
	for i, s := range srvs {
		s.Config.Handler = tc.members[i].WithAttestation(http.NotFoundHandler())
		s.Start()
		t.Cleanup(s.Close)
	}
	// Registered with their HTTP addresses, as learnMembers does.
	l0 := tc.members[tc.leader()]
	for i, c := range tc.members {
		m := Member{ID: c.cfg.ID, RaftAddr: c.cfg.RaftAddr, HTTPAddr: c.cfg.HTTPAddr, PublicKey: tc.keys.coords[i].PublicKey()}
		if _, err := l0.propose(context.Background(), cmdRegisterMember, &registerMemberCmd{Member: m}); err != nil {
			t.Fatal(err)
		}
	}
	nodes := newTestNodes(t, 3, 8)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	spec := testSpec("web", 3, 3, 3)
	spec.Rounds = 1
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r := tc.waitRound(li, "web", 1, RoundOpen)
	for i, nd := range nodes {
		if _, err := l.Submit(ctx, nd.pub(), nd.seal(t, tc.keys, "web", 1, r.BaseHash, testUpdate(i, 3), 2)); err != nil {
			t.Fatal(err)
		}
	}
	// Derivations travel over HTTP: allow a loaded machine more time.
	eventually(t, 30*time.Second, "round 1 ends", func() bool {
		r, err := l.GetRound("web", 1)
		return err == nil && (r.State == RoundClosed || r.State == RoundFailed)
	})
	closed := tc.waitRound(li, "web", 1, RoundClosed, RoundFailed)
	if closed.State != RoundClosed {
		t.Fatalf("round %s %q", closed.State, closed.FailReason)
	}
	var got Round
	eventually(t, 20*time.Second, "3 cosignatures, 2 of them over HTTP", func() bool {
		var err error
		got, err = l.GetRound("web", 1)
		return err == nil && len(got.Attested) == 3
	})
	followerDerived := false
	for _, d := range got.Derivations {
		followerDerived = followerDerived || d.Member != l.cfg.ID
	}
	if !followerDerived {
		t.Fatalf("no follower derivation recorded: %+v", got.Derivations)
	}

	// Hostile and stale requests.
	fi := (li + 1) % n
	f := tc.members[fi]
	url := "http://" + l.cfg.HTTPAddr + AttestPath
	post := func(target string, body []byte) int {
		t.Helper()
		resp, err := http.Post(target, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	signed := func(a *Attestation, key ed25519.PrivateKey, at time.Time) []byte {
		raw, _ := json.Marshal(a)
		b, _ := json.Marshal(attestWire{Attestation: raw, Time: at, Signature: ed25519.Sign(key, attestSigned(at, raw))})
		return b
	}
	now := time.Now().UTC()
	fkey := tc.keys.coords[fi].SigningKey
	again := f.derivationOf("web", 1, derivation{fail: "late"}) // the round is closed: stale
	cases := []struct {
		name   string
		target string
		body   []byte
		want   int
	}{
		{"stale", url, signed(again, fkey, now), http.StatusConflict},
		{"wrong key", url, signed(again, tc.keys.coords[li].SigningKey, now), http.StatusUnauthorized},
		{"old", url, signed(again, fkey, now.Add(-time.Hour)), http.StatusUnauthorized},
		{"unknown member", url, signed(&Attestation{Job: "web", Round: 1, Member: "c9", Derived: &Derivation{Member: "c9"}}, fkey, now), http.StatusForbidden},
		{"unknown field", url, []byte(`{"attestation":{},"time":"2026-01-01T00:00:00Z","signature":"","x":1}`), http.StatusBadRequest},
		{"duplicate key", url, []byte(`{"attestation":{"job":"web","job":"x"},"time":"2026-01-01T00:00:00Z","signature":""}`), http.StatusBadRequest},
		{"too large", url, bytes.Repeat([]byte("x"), MaxAttestBody+1), http.StatusRequestEntityTooLarge},
		{"at the limit", url, bytes.Repeat([]byte(" "), MaxAttestBody), http.StatusBadRequest},
		{"follower", "http://" + f.cfg.HTTPAddr + AttestPath, signed(again, fkey, now), http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		if got := post(c.target, c.body); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	if resp, err := http.Get(url); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v", resp, err)
	}
	if resp, err := http.Get("http://" + l.cfg.HTTPAddr + "/other"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("other paths are not served by the attestation route: %v %v", resp, err)
	}
	// The sender maps the answers to the errors sendAttestation retries on.
	send := HTTPAttestationSender(http.DefaultClient, "http", fkey, func() (Member, bool) { return l.Leader() })
	if err := send(ctx, again); !errors.Is(err, ErrStale) {
		t.Errorf("sender on a stale attestation: %v", err)
	}
	noLeader := HTTPAttestationSender(http.DefaultClient, "http", fkey, func() (Member, bool) { return Member{}, false })
	if err := noLeader(ctx, again); !errors.Is(err, ErrNotLeader) {
		t.Errorf("sender without a leader: %v", err)
	}
}

// FuzzAttestRequest: any body decodes or is refused, never panics; what
// decodes names a member and a job and carries a full-size signature.
func FuzzAttestRequest(f *testing.F) {
	f.Add([]byte(`{"attestation":{"job":"j","round":1,"member":"c1","derived":{"member":"c1","leaf_hash":"` + strings.Repeat("ab", 32) + `","model_hash":"` + strings.Repeat("cd", 32) + `","signature":"` + strings.Repeat("A", 86) + `=="}},"time":"2026-12-06T00:00:00Z","signature":"` + strings.Repeat("A", 86) + `=="}`))
	f.Add([]byte(`{"attestation":{"job":"j","round":1,"member":"c1","checkpoint":4,"cosignature":"eA=="},"time":"2026-12-06T00:00:00Z","signature":""}`))
	f.Add([]byte(`{"attestation":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, w, err := decodeAttestRequest(body)
		if err != nil {
			return
		}
		if a.Member == "" || a.Job == "" || len(w.Signature) != ed25519.SignatureSize {
			t.Fatalf("decoded %+v %+v", a, w)
		}
	})
}
