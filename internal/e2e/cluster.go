package e2e

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/mod/sumdb/note"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/internal/telemetry"
	"github.com/mfn/mfn/protocol"
)

// member is one in-process coordinator with its real Raft transport
// (mutual TLS over loopback TCP), bbolt storage and QUIC listener.
type member struct {
	id    string
	coord *coordinator.Coordinator
	layer *crashableLayer
	srv   *protocol.Server
	quic  string
	key   *crypto.Identity
	down  bool
	// http serves the member's operator API behind the web console at
	// httpAddr (127.0.0.1, port chosen by the kernel).
	http     *api.Server
	httpAddr string
}

// cluster is the demo's coordinator cluster.
type cluster struct {
	members  []*member
	origin   string
	verifier note.Verifier
	apiKey   string // the demo's operator API key (every member has it)
	mu       sync.Mutex
	killing  sync.WaitGroup // members being shut down by kill
}

type clusterConfig struct {
	n         int
	dir       string
	origin    string
	keys      []*crypto.Identity
	signer    note.Signer
	verifier  note.Verifier
	evaluator coordinator.Evaluator
	logger    *slog.Logger
	tracing   func(service, id string) trace.TracerProvider // nil: none
	// attest delivers a follower's round attestation to the leader.
	attest func(context.Context, *coordinator.Attestation) error
}

// memberConfig is what startMember needs beyond clusterConfig.
type memberConfig struct {
	peers   *coordinator.PeerKeys
	apiKeys *api.KeyStore
}

func raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	// raft's default timeouts (1 s heartbeat and election, 500 ms lease):
	// shorter ones fail over faster on an idle machine, but on a loaded
	// 2-core one a two-member quorum then loses its leader to every
	// scheduling stall. Commits are not delayed.
	rc.CommitTimeout = 5 * time.Millisecond
	return rc
}

// startCluster starts and bootstraps n members on 127.0.0.1 with ports
// chosen by the kernel.
func startCluster(ctx context.Context, cc clusterConfig) (*cluster, error) {
	secret, apiKeys, err := newDemoKey()
	if err != nil {
		return nil, err
	}
	cl := &cluster{origin: cc.origin, verifier: cc.verifier, apiKey: secret}
	peers := coordinator.NewPeerKeys()
	for _, k := range cc.keys {
		peers.Add(k.PublicKey())
	}
	cc.attest = cl.attest
	var servers []raft.Server
	for i := range cc.n {
		m, err := startMember(ctx, cc, i, memberConfig{peers: peers, apiKeys: apiKeys})
		if err != nil {
			cl.close()
			return nil, err
		}
		cl.members = append(cl.members, m)
		servers = append(servers, raft.Server{ID: raft.ServerID(m.id), Address: raft.ServerAddress(m.layer.Addr().String()), Suffrage: raft.Voter})
	}
	for _, m := range cl.members {
		if err := m.coord.Bootstrap(servers); err != nil {
			cl.close()
			return nil, err
		}
	}
	return cl, nil
}

func startMember(ctx context.Context, cc clusterConfig, i int, mc memberConfig) (*member, error) {
	peers := mc.peers
	id := fmt.Sprintf("c%d", i+1)
	key := cc.keys[i]
	logger := cc.logger.With("member", id)
	tl, err := coordinator.NewTLSStreamLayer("127.0.0.1:0", nil, key.SigningKey, peers, logger)
	if err != nil {
		return nil, err
	}
	layer := newCrashableLayer(tl)
	storage, err := coordinator.OpenStorage(filepath.Join(cc.dir, id), logger)
	if err != nil {
		tl.Close()
		return nil, err
	}
	pid, err := protocol.NewIdentity(key.SigningKey)
	if err != nil {
		tl.Close()
		storage.Close()
		return nil, err
	}
	// The QUIC listener needs the member's enrolment check, and the member
	// needs the listener's address: verify through a pointer set below.
	var coordRef struct {
		sync.Mutex
		c *coordinator.Coordinator
	}
	verify := func(pub ed25519.PublicKey) error {
		coordRef.Lock()
		c := coordRef.c
		coordRef.Unlock()
		if c == nil {
			return errors.New("e2e: member starting")
		}
		return c.VerifyNodeKey(pub)
	}
	pcfg := protocol.Config{Logger: logger, Heartbeat: 2 * time.Second}
	ln, err := protocol.ListenQUIC("127.0.0.1:0", protocol.ServerConfig(pid, verify), pcfg)
	if err != nil {
		tl.Close()
		storage.Close()
		return nil, err
	}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		tl.Close()
		storage.Close()
		return nil, err
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 3, Timeout: 10 * time.Second, Logger: hclog.NewNullLogger(),
	})
	reg := prometheus.NewRegistry()
	c, err := coordinator.New(coordinator.Config{
		ID: id, Origin: cc.origin, RaftAddr: tl.Addr().String(), QUICAddr: ln.Addr().String(), HTTPAddr: hln.Addr().String(),
		PublicKey: key.PublicKey(), PeerKeys: peers, Prober: tl, // the leader registers the members it identifies
		Storage: storage, Transport: trans, Raft: raftConfig(),
		Opener:    &coordinator.CryptoOpener{Identities: []age.Identity{key.Age}},
		Evaluator: cc.evaluator, LogVerifier: cc.verifier, LogSigner: cc.signer,
		Logger: logger, Registry: reg,
		Tick: 50 * time.Millisecond, CheckpointInterval: 500 * time.Millisecond,
		NodeRate: 50, NodeBurst: 50, MinRoundDeadline: 100 * time.Millisecond, // mfn demo --round-deadline allows 100 ms
		MemberKey: key.SigningKey, SendAttestation: cc.attest, // members attest every round
		AttestQuorum: true, // and the leader closes one only with a quorum of matching derivations
	})
	if err != nil {
		hln.Close()
		ln.Close()
		trans.Close()
		storage.Close()
		return nil, err
	}
	coordRef.Lock()
	coordRef.c = c
	coordRef.Unlock()
	qh := coordinator.NewQUICHandler(c)
	if cc.tracing != nil {
		qh.SetTracerProvider(cc.tracing(telemetry.ServiceCoordinator, id)) // its follower ends when c closes
	}
	srv, err := protocol.NewServer(pcfg, qh)
	if err != nil {
		hln.Close()
		ln.Close()
		c.Close(ctx)
		return nil, err
	}
	hsrv, err := serveHTTP(c, hln, mc.apiKeys, reg, logger)
	if err != nil {
		hln.Close()
		ln.Close()
		c.Close(ctx)
		return nil, err
	}
	c.SetAnnouncer(coordinator.ProtocolAnnouncer{Server: srv})
	c.SetQUICConnections(srv.Subscribers)
	c.SetDisconnect(srv.Disconnect)
	go srv.Serve(context.WithoutCancel(ctx), ln)
	return &member{id: id, coord: c, layer: layer, srv: srv, quic: ln.Addr().String(), key: key, http: hsrv, httpAddr: hln.Addr().String()}, nil
}

// live returns the members still running.
func (cl *cluster) live() []*member {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var out []*member
	for _, m := range cl.members {
		if !m.down {
			out = append(out, m)
		}
	}
	return out
}

// leader returns the live member that leads and has registered its
// addresses, or nil.
func (cl *cluster) leader() *member {
	for _, m := range cl.live() {
		if m.coord.IsLeader() {
			if l, ok := m.coord.Leader(); ok && l.QUICAddr != "" {
				return m
			}
		}
	}
	return nil
}

// waitLeader polls for a leader until d passes.
func (cl *cluster) waitLeader(ctx context.Context, d time.Duration) (*member, error) {
	deadline := time.Now().Add(d)
	for {
		if m := cl.leader(); m != nil {
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("e2e: no leader after %v", d)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// attest hands a member's round attestation to the live leader.
func (cl *cluster) attest(ctx context.Context, a *coordinator.Attestation) error {
	for _, m := range cl.live() {
		if m.coord.IsLeader() {
			return m.coord.SubmitAttestation(ctx, a)
		}
	}
	return coordinator.ErrNotLeader
}

// any returns a live member (for reads).
func (cl *cluster) any() *member {
	if l := cl.leader(); l != nil {
		return l
	}
	if ms := cl.live(); len(ms) > 0 {
		return ms[0]
	}
	return nil
}

// kill stops m as abruptly as an in-process member can stop: its Raft
// connections are cut first (so no leadership transfer can reach a peer),
// its QUIC and HTTP servers close every connection, then the member shuts
// down.
// The shutdown itself runs in the background (a member cut off from its
// peers may take seconds to stop its Raft goroutines); close waits for it.
func (cl *cluster) kill(m *member) {
	cl.mu.Lock()
	m.down = true
	cl.mu.Unlock()
	m.layer.crash()
	m.srv.Close()
	m.http.Close()
	cl.killing.Add(1)
	go func() {
		defer cl.killing.Done()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m.coord.Close(ctx)
	}()
}

// close shuts every live member down.
func (cl *cluster) close() {
	var wg sync.WaitGroup
	for _, m := range cl.live() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.srv.Close()
			m.http.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			m.coord.Close(ctx)
		}()
	}
	wg.Wait()
	cl.killing.Wait()
	cl.mu.Lock()
	for _, m := range cl.members {
		m.down = true
	}
	cl.mu.Unlock()
}
