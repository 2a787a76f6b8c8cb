package coordinator

import (
	"crypto/ed25519"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func testKey(t testing.TB, seed uint64) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.NewChaCha8(seedBytes(seed)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestLayer(t *testing.T, key ed25519.PrivateKey, peers *PeerKeys) *TLSStreamLayer {
	t.Helper()
	l, err := NewTLSStreamLayer("127.0.0.1:0", nil, key, peers, newTestLogger(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestTLSStreamLayer: pinned peers talk over mutual TLS 1.3; a peer whose
// key is not pinned is refused in both directions.
func TestTLSStreamLayer(t *testing.T) {
	ka, kb, kx := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	pin := func(ks ...ed25519.PrivateKey) *PeerKeys {
		p := NewPeerKeys()
		for _, k := range ks {
			p.Add(k.Public().(ed25519.PublicKey))
		}
		return p
	}
	a := newTestLayer(t, ka, pin(kb))
	b := newTestLayer(t, kb, pin(ka))
	x := newTestLayer(t, kx, pin(ka, kb)) // trusts them, they do not trust it

	t.Run("pinned peers exchange bytes", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			c, err := b.Accept()
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			buf := make([]byte, 5)
			if _, err := io.ReadFull(c, buf); err != nil {
				done <- err
				return
			}
			_, err = c.Write(append(buf, '!'))
			done <- err
		}()
		c, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello!" {
			t.Fatalf("read %q %v", buf, err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unpinned client refused", func(t *testing.T) {
		c, err := x.Dial(raft.ServerAddress(a.Addr().String()), 5*time.Second)
		if err == nil {
			// TLS 1.3: the client may finish before the server's verdict
			// arrives; the server then closes without a byte.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil {
			t.Fatal("unpinned client was served")
		}
	})
	t.Run("unpinned server refused", func(t *testing.T) {
		_, err := a.Dial(raft.ServerAddress(x.Addr().String()), 5*time.Second)
		if !errors.Is(err, ErrUntrustedPeer) {
			t.Fatalf("got %v, want ErrUntrustedPeer", err)
		}
	})
	t.Run("plaintext client gets nothing", func(t *testing.T) {
		c, err := net.Dial("tcp", a.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		if n > 0 && string(buf[:n]) != "" && buf[0] != 0x15 { // 0x15: a TLS alert record
			t.Fatalf("plaintext client got %q", buf[:n])
		}
	})
	t.Run("accept after close", func(t *testing.T) {
		l := newTestLayer(t, testKey(t, 4), NewPeerKeys())
		l.Close()
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("got %v", err)
		}
	})
}

// TestTLSClusterOnLoopback runs a 3-member cluster on the real TLS
// transport and on-disk storage, and restarts a member from its data
// directory.
func TestTLSClusterOnLoopback(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("loopback cluster skipped in -short mode")
	}
	keys := newTestKeys(t, 3, 11)
	peers := NewPeerKeys()
	for _, c := range keys.coords {
		peers.Add(c.PublicKey())
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	logger := newTestLogger(t, 8) // errors only
	start := func(i int, addr string) *Coordinator {
		t.Helper()
		layer, err := NewTLSStreamLayer(addr, nil, keys.coords[i].SigningKey, peers, logger)
		if err != nil {
			t.Fatal(err)
		}
		st, err := OpenStorage(dirs[i], logger)
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(Config{
			ID: []string{"a", "b", "c"}[i], Origin: keys.origin, RaftAddr: layer.Addr().String(),
			PublicKey: keys.coords[i].PublicKey(), PeerKeys: peers,
			Storage: st, Transport: NewTLSTransport(layer, logger), Raft: fastRaftConfig(),
			LogVerifier: keys.verifier, LogSigner: keys.signer, Logger: logger, Tick: 20 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var members []*Coordinator
	var servers []raft.Server
	for i := range 3 {
		c := start(i, "127.0.0.1:0")
		members = append(members, c)
		servers = append(servers, raft.Server{ID: raft.ServerID(c.cfg.ID), Address: raft.ServerAddress(c.cfg.RaftAddr)})
	}
	defer func() {
		for _, c := range members {
			c.Close(t.Context())
		}
	}()
	for _, c := range members {
		if err := c.Bootstrap(servers); err != nil {
			t.Fatal(err)
		}
	}
	leader := func() *Coordinator {
		var l *Coordinator
		eventually(t, 15*time.Second, "a leader", func() bool {
			for _, c := range members {
				if c.IsLeader() {
					l = c
					return true
				}
			}
			return false
		})
		return l
	}
	l := leader()
	nodes := newTestNodes(t, 2, 11)
	for _, n := range nodes {
		if err := l.EnrollNode(t.Context(), n.id, n.pub()); err != nil {
			t.Fatal(err)
		}
	}
	// Restart a follower from its data directory, on the same address,
	// with the same bootstrap call: it rejoins and catches up.
	fi := 0
	for members[fi] == l {
		fi++
	}
	addr := members[fi].cfg.RaftAddr
	if err := members[fi].Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := leader().CreateJob(t.Context(), testSpec("after-restart", 2, 1, 1)); err != nil {
		t.Fatal(err)
	}
	members[fi] = start(fi, addr)
	if err := members[fi].Bootstrap(servers); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the restarted member to catch up", func() bool {
		_, err := members[fi].GetJob("after-restart")
		return err == nil && len(members[fi].ListNodes()) == 2
	})
}
