package load

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/time/rate"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/node"
	"github.com/mfn/mfn/protocol"
)

// LocalOrigin is the origin (audit log key name) of a local cluster.
const LocalOrigin = "mfn.load/local"

// MaxLocalMembers bounds a local cluster's size.
const MaxLocalMembers = 7

// Local is a coordinator cluster running inside this process on loopback:
// each member has its real Raft transport (mutual TLS over TCP), bbolt
// storage in a temporary directory, QUIC listener and HTTP API (plain
// HTTP on 127.0.0.1, one operator key). Its members' per-node submission
// limit is lifted, as a load test measures capacity, not flood policy.
type Local struct {
	// Target reaches the cluster like a remote one.
	Target  Target
	dir     string
	members []*localMember
}

type localMember struct {
	coord *coordinator.Coordinator
	qsrv  *protocol.Server
	hsrv  *http.Server
}

// StartLocal starts and bootstraps an n-member cluster (1 ≤ n ≤
// MaxLocalMembers) and waits until every member knows the leader. Its files live in a
// new temporary directory under dir ("" means the system's), removed by
// Close. logger receives the members' logs (nil discards them).
func StartLocal(ctx context.Context, n int, dir string, logger *slog.Logger) (_ *Local, err error) {
	if n < 1 || n > MaxLocalMembers {
		return nil, fmt.Errorf("load: local cluster of %d members: must be in [1, %d]", n, MaxLocalMembers)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tmp, err := os.MkdirTemp(dir, "mfn-load-*")
	if err != nil {
		return nil, err
	}
	l := &Local{dir: tmp}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	secret := make([]byte, 24)
	if _, err := crand.Read(secret); err != nil {
		return nil, err
	}
	apiKey := hex.EncodeToString(secret)
	keys, err := api.ParseKeyList("operator:" + apiKey)
	if err != nil {
		return nil, err
	}
	skey, vkey, err := audit.GenerateLogKey(LocalOrigin, crand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := audit.NewLogSigner(skey)
	if err != nil {
		return nil, err
	}
	verifier, err := audit.NewLogVerifier(vkey)
	if err != nil {
		return nil, err
	}
	ids := make([]*crypto.Identity, n)
	peers := coordinator.NewPeerKeys()
	for i := range ids {
		if ids[i], err = crypto.GenerateIdentity(crypto.RoleCoordinator, crand.Reader); err != nil {
			return nil, err
		}
		peers.Add(ids[i].PublicKey())
	}
	cluster := &node.Cluster{Origin: LocalOrigin}
	var servers []raft.Server
	for i, id := range ids {
		mid := fmt.Sprintf("c%d", i+1)
		mlog := logger.With("member", mid)
		layer, err := coordinator.NewTLSStreamLayer("127.0.0.1:0", nil, id.SigningKey, peers, mlog)
		if err != nil {
			return nil, err
		}
		storage, err := coordinator.OpenStorage(filepath.Join(tmp, mid), mlog)
		if err != nil {
			layer.Close()
			return nil, err
		}
		pid, err := protocol.NewIdentity(id.SigningKey)
		if err != nil {
			layer.Close()
			storage.Close()
			return nil, err
		}
		var ref struct {
			sync.Mutex
			c *coordinator.Coordinator
		}
		verify := func(pub ed25519.PublicKey) error {
			ref.Lock()
			c := ref.c
			ref.Unlock()
			if c == nil {
				return errors.New("load: member starting")
			}
			return c.VerifyNodeKey(pub)
		}
		pcfg := protocol.Config{Logger: mlog}
		qln, err := protocol.ListenQUIC("127.0.0.1:0", protocol.ServerConfig(pid, verify), pcfg)
		if err != nil {
			layer.Close()
			storage.Close()
			return nil, err
		}
		hln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			qln.Close()
			layer.Close()
			storage.Close()
			return nil, err
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		rc := raft.DefaultConfig()
		rc.CommitTimeout = 5 * time.Millisecond
		// The members share the CPUs with the load generator (thousands
		// of QUIC connections, sealing): raft's 1 s heartbeat and
		// election timeouts then lose the leader to scheduling stalls
		// under full load, which measures the machine, not the cluster.
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 3*time.Second, 3*time.Second, 1500*time.Millisecond
		rc.SnapshotThreshold, rc.TrailingLogs = 1024, 1024
		c, err := coordinator.New(coordinator.Config{
			ID: mid, Origin: LocalOrigin, RaftAddr: layer.Addr().String(), QUICAddr: qln.Addr().String(),
			HTTPAddr: hln.Addr().String(), PublicKey: id.PublicKey(), PeerKeys: peers,
			Storage: storage, Transport: coordinator.NewTLSTransport(layer, mlog), Raft: rc,
			Opener:      &coordinator.CryptoOpener{Identities: []age.Identity{id.Age}},
			LogVerifier: verifier, LogSigner: signer,
			Logger: mlog, Registry: reg, Tick: 50 * time.Millisecond, CheckpointInterval: time.Second,
			NodeRate: rate.Limit(1000), NodeBurst: 1000,
			// A measuring tool: jobs of any size one log entry carries
			// (mfn coordinator defaults to DefaultMaxUpdateBytes).
			MaxUpdateBytes: coordinator.MaxUpdateBytesLimit,
		})
		if err != nil {
			hln.Close()
			qln.Close()
			layer.Close()
			storage.Close()
			return nil, err
		}
		ref.Lock()
		ref.c = c
		ref.Unlock()
		m := &localMember{coord: c}
		l.members = append(l.members, m)
		if m.qsrv, err = protocol.NewServer(pcfg, coordinator.NewQUICHandler(c)); err != nil {
			hln.Close()
			qln.Close()
			return nil, err
		}
		c.SetAnnouncer(coordinator.ProtocolAnnouncer{Server: m.qsrv})
		c.SetDisconnect(m.qsrv.Disconnect)
		c.SetQUICConnections(m.qsrv.Subscribers)
		go m.qsrv.Serve(context.WithoutCancel(ctx), qln)
		h, err := api.New(api.Config{Coordinator: c, Keys: keys, Registry: reg, Logger: mlog,
			RateLimit: api.RateLimit{Rate: -1}})
		if err != nil {
			hln.Close()
			return nil, err
		}
		m.hsrv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(mlog.Handler(), slog.LevelWarn)}
		go m.hsrv.Serve(hln)
		servers = append(servers, raft.Server{ID: raft.ServerID(mid), Address: raft.ServerAddress(layer.Addr().String()), Suffrage: raft.Voter})
		cluster.Members = append(cluster.Members, node.Member{ID: mid, QUICAddr: qln.Addr().String(),
			PublicKey: id.PublicKey(), Recipient: id.Recipient()})
		l.Target.API = append(l.Target.API, "http://"+hln.Addr().String())
	}
	for _, m := range l.members {
		if err := m.coord.Bootstrap(servers); err != nil {
			return nil, err
		}
	}
	l.Target.APIKey, l.Target.Cluster, l.Target.SelfMetrics = apiKey, cluster, true
	deadline := time.Now().Add(30 * time.Second)
	// Ready when every member knows the leader and its addresses (a
	// member that does not yet answers API writes with 503).
	for {
		known := 0
		for _, m := range l.members {
			if ld, ok := m.coord.Leader(); ok && ld.QUICAddr != "" && ld.HTTPAddr != "" {
				known++
			}
		}
		if known == len(l.members) {
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("load: local cluster: no leader after 30s")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops every member and removes the cluster's files.
func (l *Local) Close() error {
	var wg sync.WaitGroup
	for _, m := range l.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m.hsrv != nil {
				m.hsrv.Close()
			}
			if m.qsrv != nil {
				m.qsrv.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			m.coord.Close(ctx)
		}()
	}
	wg.Wait()
	return os.RemoveAll(l.dir)
}
