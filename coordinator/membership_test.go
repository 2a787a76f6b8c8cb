package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A member removed from the trusted set loses its Raft connections at
// their next read or write, on both sides, and cannot handshake again.
func TestRemovedPeerLosesConnections(t *testing.T) {
	ka, kb := testKey(t, 11), testKey(t, 12)
	pa := NewPeerKeys(kb.Public().(ed25519.PublicKey))
	pb := NewPeerKeys(ka.Public().(ed25519.PublicKey))
	a := newTestLayer(t, ka, pa)
	b := newTestLayer(t, kb, pb)

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := b.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ca, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	var cb net.Conn
	select {
	case cb = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
	}
	defer cb.Close()
	if _, err := ca.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(cb, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q %v", buf, err)
	}

	// b removes a: b's side fails at once, a's side sees the close.
	pb.Remove(ka.Public().(ed25519.PublicKey))
	if _, err := cb.Write([]byte("pong")); !errors.Is(err, ErrUntrustedPeer) {
		t.Fatalf("write to a removed peer: %v, want ErrUntrustedPeer", err)
	}
	if _, err := cb.Read(buf); !errors.Is(err, ErrUntrustedPeer) {
		t.Fatalf("read from a removed peer: %v", err)
	}
	ca.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ca.Read(buf); err == nil {
		t.Fatal("the removed peer's connection stayed open")
	}
	// A new connection from a is refused by b.
	go func() { b.Accept() }()
	c2, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
	if err == nil {
		c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c2.Read(buf)
		c2.Close()
	}
	if err == nil {
		t.Fatal("a removed peer handshook again")
	}
}

// Probe succeeds only against a listener holding the expected key that
// accepts this member's certificate.
func TestProbe(t *testing.T) {
	ka, kb, kc := testKey(t, 21), testKey(t, 22), testKey(t, 23)
	a := newTestLayer(t, ka, NewPeerKeys())
	b := newTestLayer(t, kb, NewPeerKeys(ka.Public().(ed25519.PublicKey))) // trusts a
	c := newTestLayer(t, kc, NewPeerKeys())                                // trusts nobody
	for _, l := range []*TLSStreamLayer{b, c} {
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				conn.Close()
			}
		}()
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := closed.Addr().String()
	closed.Close()
	ctx := context.Background()
	pub := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
	cases := []struct {
		name string
		addr string
		key  ed25519.PublicKey
		ok   bool
	}{
		{"reachable, right key", b.Addr().String(), pub(kb), true},
		{"reachable, another key", b.Addr().String(), pub(kc), false},
		{"nothing listening", deadAddr, pub(kb), false},
		{"peer refuses our key", c.Addr().String(), pub(kc), false},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			err := a.Probe(pctx, cs.addr, cs.key)
			if (err == nil) != cs.ok {
				t.Fatalf("probe: %v, want ok=%v", err, cs.ok)
			}
		})
	}
}

// fakeProber fails every probe while err is set.
type fakeProber struct{ err atomic.Pointer[error] }

func (p *fakeProber) Probe(context.Context, string, ed25519.PublicKey) error {
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}

// Joins that would harm the cluster are refused; a removed member loses
// trust on every member; removing an unknown member is ErrNotFound.
func TestMembershipChanges(t *testing.T) {
	prober := &fakeProber{}
	tc := newTestCluster(t, 5, clusterOpts{voters: 3, peerKeys: true, prober: func(int) Prober { return prober }})
	li := tc.leader()
	l := tc.members[li]
	ctx := context.Background()
	member := func(i int) Member {
		c := tc.members[i].cfg
		return Member{ID: c.ID, RaftAddr: c.RaftAddr, QUICAddr: c.QUICAddr, HTTPAddr: c.HTTPAddr, PublicKey: c.PublicKey}
	}
	m3 := member(3)

	// An unreachable new voter is refused, and nothing is recorded.
	refused := errors.New("connection refused")
	prober.err.Store(&refused)
	if err := l.AddVoter(ctx, m3); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cannot reach raft_addr raft-3") {
		t.Fatalf("unreachable voter: %v", err)
	}
	if _, ok := l.fsm.member("c3"); ok {
		t.Fatal("an unreachable member was registered")
	}
	if st := l.Status(); len(st.Members) != 3 {
		t.Fatalf("members after a refused join: %+v", st.Members)
	}
	prober.err.Store(nil)
	if err := l.AddVoter(ctx, m3); err != nil {
		t.Fatal(err)
	}
	if err := l.AddVoter(ctx, m3); err != nil {
		t.Fatalf("the same join again: %v", err)
	}

	conflicts := []struct {
		name string
		edit func(*Member)
		want string
	}{
		{"same id, other raft address", func(m *Member) { m.RaftAddr = "raft-4" }, "raft_addr"},
		{"same id, other http address", func(m *Member) { m.HTTPAddr = "http-9:8080" }, `http_addr "http-3:8080", not "http-9:8080"`},
		{"same id, other key", func(m *Member) { m.PublicKey = tc.keys.coords[4].PublicKey() }, "another public key"},
		{"other id, this raft address", func(m *Member) { m.ID = "c9" }, "raft_addr raft-3 is member c3's"},
		{"other id, this key", func(m *Member) { m.ID, m.RaftAddr = "c9", "raft-9" }, "public key belongs to member c3"},
	}
	for _, cs := range conflicts {
		t.Run(cs.name, func(t *testing.T) {
			m := m3
			cs.edit(&m)
			if err := l.AddVoter(ctx, m); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), cs.want) {
				t.Fatalf("got %v, want ErrExists containing %q", err, cs.want)
			}
		})
	}
	// A member in the configuration but never registered (bootstrapped,
	// never led) keeps its address too.
	for i := range 3 {
		if i == li {
			continue
		}
		m := member(i)
		m.RaftAddr = "raft-elsewhere"
		if err := l.AddVoter(ctx, m); !errors.Is(err, ErrExists) {
			t.Fatalf("bootstrapped member %s at another address: %v", m.ID, err)
		}
		break
	}

	if err := l.RemoveServer(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove an unknown member: %v", err)
	}

	// c3 removed: every other member stops trusting its key at once.
	// (Each member trusts c3 once it has applied c3's member record; a
	// follower may apply it a moment after the leader.)
	k3 := ed25519.PublicKey(tc.keys.coords[3].PublicKey())
	tc.eventually(10*time.Second, "every member to trust c3 before its removal", func() bool {
		for i, c := range tc.members {
			if i != 4 && !c.cfg.PeerKeys.Contains(k3) {
				return false
			}
		}
		return true
	})
	if err := l.RemoveServer(ctx, "c3"); err != nil {
		t.Fatal(err)
	}
	tc.eventually(10*time.Second, "every member to stop trusting c3", func() bool {
		for i := range 3 { // c4 never joined
			if tc.members[i].cfg.PeerKeys.Contains(k3) {
				return false
			}
		}
		return true
	})
	for i := range 3 {
		for j := range 3 {
			if !tc.members[i].cfg.PeerKeys.Contains(tc.keys.coords[j].PublicKey()) {
				t.Fatalf("member %d stopped trusting member %d", i, j)
			}
		}
	}
	if err := l.RemoveServer(ctx, "c3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove c3 twice: %v", err)
	}
	// An operator may admit it again: trust comes back.
	if err := l.AddVoter(ctx, m3); err != nil {
		t.Fatal(err)
	}
	tc.eventually(10*time.Second, "c3 trusted again", func() bool {
		for i := range 3 {
			if !tc.members[i].cfg.PeerKeys.Contains(k3) {
				return false
			}
		}
		return true
	})
}

// Removed members survive a snapshot: a member restoring one (a restart,
// or a lagging follower) drops their keys from the static list it started
// with.
func TestRemovedMembersInSnapshot(t *testing.T) {
	b := standardLog(t)
	k := newTestKeys(t, 2, 5)
	b.add(cmdRegisterMember, &registerMemberCmd{Member: Member{ID: "c1", RaftAddr: "r1", PublicKey: k.coords[1].PublicKey()}})
	b.add(cmdRemoveMember, &removeMemberCmd{ID: "c1"})
	src := replay(t, b.keys, b.entries)
	snap := snapshotBytes(t, src)
	if !bytes.Contains(snap, []byte(`"removed_members":{"`+fmt.Sprintf("%x", []byte(k.coords[1].PublicKey()))+`":"c1"}`)) {
		t.Fatalf("snapshot has no removed member: %s", snap[:200])
	}
	dst, _ := newFSM(b.keys.origin, b.keys.verifier, nil)
	peers := NewPeerKeys(k.coords[0].PublicKey(), k.coords[1].PublicKey())
	c := &Coordinator{cfg: Config{PeerKeys: peers, PublicKey: k.coords[0].PublicKey()}, fsm: dst}
	dst.restored = c.syncTrust
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if peers.Contains(k.coords[1].PublicKey()) || !peers.Contains(k.coords[0].PublicKey()) {
		t.Fatal("restore did not drop the removed member's key")
	}
	if !bytes.Equal(snapshotBytes(t, dst), snap) {
		t.Fatal("restored state snapshots differently")
	}
}

// identProber identifies members of an in-memory cluster by address, as
// TLSStreamLayer.Identify does over the network.
type identProber struct {
	members map[string]Member
	// silent, if set, is the Raft address of a member that serves no
	// record (an older build): it proves its key alone.
	silent string
}

func (p identProber) Probe(context.Context, string, ed25519.PublicKey) error { return nil }

func (p identProber) Identify(_ context.Context, addr string) (Member, error) {
	if m, ok := p.members[addr]; ok {
		if addr == p.silent {
			return Member{PublicKey: m.PublicKey}, nil
		}
		return Member{ID: m.ID, QUICAddr: m.QUICAddr, HTTPAddr: m.HTTPAddr, PublicKey: m.PublicKey}, nil
	}
	return Member{}, errors.New("unreachable")
}

// Status lists every member with its addresses and key, also the
// bootstrapped members that never led: the leader identifies them over
// their Raft address. A member that tells no addresses (an older build)
// is listed with its Raft address and key.
func TestStatusListsEveryMember(t *testing.T) {
	members := map[string]Member{}
	k := newTestKeys(t, 3, 1) // newTestCluster's keys (seed 1)
	for i := range 3 {
		m := Member{ID: fmt.Sprintf("c%d", i), RaftAddr: fmt.Sprintf("raft-%d", i), QUICAddr: fmt.Sprintf("quic-%d:4433", i),
			HTTPAddr: fmt.Sprintf("http-%d:8080", i), PublicKey: k.coords[i].PublicKey()}
		members[m.RaftAddr] = m
	}
	// The silent member is chosen by whoever leads: the highest-numbered
	// member other than the leader, so one follower always tells nothing
	// but its key, whichever member wins the election.
	silentFor := func(leader int) int {
		if leader == 2 {
			return 1
		}
		return 2
	}
	tc := newTestCluster(t, 3, clusterOpts{prober: func(i int) Prober {
		return identProber{members: members, silent: fmt.Sprintf("raft-%d", silentFor(i))}
	}})
	silent := silentFor(tc.leader())
	tc.eventually(10*time.Second, "every member in every member's status", func() bool {
		for _, c := range tc.members {
			st := c.Status()
			if len(st.Members) != 3 {
				return false
			}
			for i, m := range st.Members {
				want := tc.members[i].cfg
				if m.ID != want.ID || m.RaftAddr != want.RaftAddr || !bytes.Equal(m.PublicKey, want.PublicKey) {
					return false
				}
				if i != silent && (m.QUICAddr != want.QUICAddr || m.HTTPAddr != want.HTTPAddr) {
					return false
				}
				if i == silent && (m.QUICAddr != "" || m.HTTPAddr != "") {
					t.Fatalf("member c%d registered with addresses it never told: %+v", i, m)
				}
			}
		}
		return true
	})
}

// Identify returns the key a trusted member proves on its Raft address,
// and the record it serves; a member serving none gives its key alone.
func TestIdentify(t *testing.T) {
	kx, ky, kz := testKey(t, 31), testKey(t, 32), testKey(t, 33)
	pub := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
	x := newTestLayer(t, kx, NewPeerKeys(pub(ky), pub(kz)))
	y := newTestLayer(t, ky, NewPeerKeys(pub(kx)))
	z := newTestLayer(t, kz, NewPeerKeys(pub(kx)))             // serves no record
	u := newTestLayer(t, testKey(t, 34), NewPeerKeys(pub(kx))) // x does not trust u
	y.SetMemberInfo(Member{ID: "cy", RaftAddr: y.Addr().String(), QUICAddr: "q:1", HTTPAddr: "h:2", PublicKey: pub(kx)})
	for _, l := range []*TLSStreamLayer{y, z, u} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := x.Identify(ctx, y.Addr().String())
	if err != nil || got.ID != "cy" || got.QUICAddr != "q:1" || got.HTTPAddr != "h:2" || !bytes.Equal(got.PublicKey, pub(ky)) {
		t.Fatalf("identify y: %+v %v (the key must be the one proven, not the one told)", got, err)
	}
	got, err = x.Identify(ctx, z.Addr().String())
	if err != nil || got.ID != "" || got.HTTPAddr != "" || !bytes.Equal(got.PublicKey, pub(kz)) {
		t.Fatalf("identify z: %+v %v", got, err)
	}
	if _, err := x.Identify(ctx, u.Addr().String()); err == nil {
		t.Fatal("identified an untrusted member")
	}
}

// A member the leader knows by Raft address and key only may join with
// its full addresses (filling them in), but not change what is known.
func TestJoinFillsIdentifiedMember(t *testing.T) {
	tc := newTestCluster(t, 2, clusterOpts{voters: 1})
	l := tc.members[tc.leader()]
	ctx := context.Background()
	c1 := tc.members[1].cfg
	// The new leader removes records of members outside the configuration
	// when it takes office; register c1 only after that.
	eventually(t, 10*time.Second, "the leader reconciles its member list", l.reconciled.Load)
	if _, err := l.propose(ctx, cmdRegisterMember, &registerMemberCmd{Member: Member{ID: "c1", RaftAddr: c1.RaftAddr, PublicKey: c1.PublicKey}}); err != nil {
		t.Fatal(err)
	}
	full := Member{ID: "c1", RaftAddr: c1.RaftAddr, QUICAddr: c1.QUICAddr, HTTPAddr: c1.HTTPAddr, PublicKey: c1.PublicKey}
	if err := l.AddVoter(ctx, full); err != nil {
		t.Fatal(err)
	}
	if m, _ := l.fsm.member("c1"); m.HTTPAddr != c1.HTTPAddr || m.QUICAddr != c1.QUICAddr {
		t.Fatalf("record %+v", m)
	}
	full.HTTPAddr = "elsewhere:1"
	if err := l.AddVoter(ctx, full); !errors.Is(err, ErrExists) {
		t.Fatalf("changing a filled address: %v", err)
	}
}

// Members' HTTPS connections to a removed member fail too, kept-alive
// ones included.
func TestHTTPTransportFollowsTrust(t *testing.T) {
	key := testKey(t, 41)
	cert, err := SelfSignedHTTPCert(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = HTTPServerTLS(cert)
	srv.StartTLS()
	defer srv.Close()
	peers := NewPeerKeys(key.Public().(ed25519.PublicKey))
	cl := &http.Client{Transport: HTTPTransport(peers, nil), Timeout: 5 * time.Second}
	get := func() error {
		resp, err := cl.Get(srv.URL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return err
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}
	peers.Remove(key.Public().(ed25519.PublicKey))
	if err := get(); err == nil {
		t.Fatal("a removed member's HTTPS server is still trusted")
	}
}
