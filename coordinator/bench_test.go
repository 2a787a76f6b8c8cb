package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/raft"

	"github.com/mfn/mfn/crypto"
)

// benchDim is the update size of the ingest benchmarks: d = 10,000 float32
// (a 40 KB update, about 40.3 KB sealed).
const benchDim = 10_000

// sealFloat32 seals a d-value float32 update.
func (n *testNode) sealFloat32(b testing.TB, k *testKeys, job string, round uint64, base Hash, rng *rand.Rand) []byte {
	vals := make([]float64, benchDim)
	for i := range vals {
		vals[i] = rng.NormFloat64() * 1e-3
	}
	stmt := &crypto.Statement{Origin: k.origin, JobID: job, Round: round, NodeID: n.id, BaseModelHash: base,
		SampleCount: 100, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	sealed, err := crypto.Seal(stmt, crypto.EncodeUpdate(vals, crypto.Float32), n.key, k.recipients)
	if err != nil {
		b.Fatal(err)
	}
	return sealed
}

// benchCluster is what the benchmarks need of a cluster.
type benchCluster struct {
	keys    *testKeys
	members []*Coordinator
	// prefetched, if set, waits before the timed update until the
	// followers opened a job's first n updates.
	prefetched func(job string, n int)
}

func (bc *benchCluster) leader(b testing.TB) *Coordinator {
	var l *Coordinator
	eventually(b, 15*time.Second, "a leader", func() bool {
		for _, c := range bc.members {
			if c.IsLeader() && c.leading.Load() {
				l = c
				return true
			}
		}
		return false
	})
	return l
}

// retry runs op on the current leader until it succeeds or fails with
// something else than ErrNotLeader (a loaded machine can cost a leader its
// lease; clients redial, and so does the benchmark).
func (bc *benchCluster) retry(b testing.TB, op func(l *Coordinator) error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := op(bc.leader(b))
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			return err
		}
	}
}

func inmemBenchCluster(b *testing.B) *benchCluster {
	tc := newTestCluster(b, 3, clusterOpts{})
	return &benchCluster{keys: tc.keys, members: tc.members}
}

// inmemAttestingBenchCluster is inmemBenchCluster with round attestation
// on (MemberKey, every member registered).
func inmemAttestingBenchCluster(b *testing.B) *benchCluster {
	tc := newTestCluster(b, 3, clusterOpts{attest: true})
	tc.registerAll()
	return &benchCluster{keys: tc.keys, members: tc.members}
}

// loopbackBenchCluster is 3 members on 127.0.0.1 with the production
// stack: mutual-TLS TCP transport and bbolt storage (fsync on) in temp dirs.
func loopbackBenchCluster(b *testing.B) *benchCluster {
	keys := newTestKeys(b, 3, 31)
	peers := NewPeerKeys()
	for _, c := range keys.coords {
		peers.Add(c.PublicKey())
	}
	logger := newTestLogger(b, 8)
	bc := &benchCluster{keys: keys}
	var servers []raft.Server
	for i := range 3 {
		layer, err := NewTLSStreamLayer("127.0.0.1:0", nil, keys.coords[i].SigningKey, peers, logger)
		if err != nil {
			b.Fatal(err)
		}
		st, err := OpenStorage(b.TempDir(), logger)
		if err != nil {
			b.Fatal(err)
		}
		rc := fastRaftConfig()
		c, err := New(Config{
			ID: fmt.Sprintf("m%d", i), Origin: keys.origin, RaftAddr: layer.Addr().String(),
			PublicKey: keys.coords[i].PublicKey(), PeerKeys: peers,
			Storage: st, Transport: NewTLSTransport(layer, logger), Raft: rc,
			Opener:      &CryptoOpener{Identities: []age.Identity{keys.coords[i].Age}},
			LogVerifier: keys.verifier, LogSigner: keys.signer, Logger: logger, Tick: 10 * time.Millisecond,
			NodeRate: 1e6, NodeBurst: 1e6,
		})
		if err != nil {
			b.Fatal(err)
		}
		bc.members = append(bc.members, c)
		servers = append(servers, raft.Server{ID: raft.ServerID(c.cfg.ID), Address: raft.ServerAddress(c.cfg.RaftAddr)})
	}
	b.Cleanup(func() {
		for _, c := range bc.members {
			c.Close(context.Background())
		}
	})
	if err := bc.members[0].Bootstrap(servers); err != nil {
		b.Fatal(err)
	}
	return bc
}

// BenchmarkSubmit measures acknowledged updates per second (d = 10,000
// float32) into a 3-member cluster from 64 concurrent clients. Each
// acknowledgement means: envelope opened and verified, entry committed on
// a quorum and applied, audit leaf appended. Sealing happens before the
// timer starts.
func BenchmarkSubmit(b *testing.B) {
	for _, kind := range []struct {
		name string
		make func(*testing.B) *benchCluster
	}{{"inmem", inmemBenchCluster}, {"loopback-tls-bolt", loopbackBenchCluster},
		{"attest-off", func(b *testing.B) *benchCluster { return testBenchCluster(b, clusterOpts{}) }},
		{"attest-quorum", func(b *testing.B) *benchCluster { return testBenchCluster(b, clusterOpts{attest: true, strong: true}) }}} {
		b.Run(kind.name, func(b *testing.B) {
			benchSubmit(b, kind.make(b))
		})
	}
}

// testBenchCluster is a 3-member test cluster with opts: "attest-off"
// and "attest-quorum" differ only in round attestation, so their ratio is
// what attestation (followers opening every accepted update ahead of the
// round's close) costs ingest.
func testBenchCluster(b *testing.B, opts clusterOpts) *benchCluster {
	tc := newTestCluster(b, 3, opts)
	tc.registerAll()
	return &benchCluster{keys: tc.keys, members: tc.members}
}

func benchSubmit(b *testing.B, bc *benchCluster) {
	const clients, nodesN = 64, 64
	ctx := context.Background()
	nodes := newTestNodes(b, nodesN, 33)
	for _, n := range nodes {
		if err := bc.retry(b, func(l *Coordinator) error { return l.EnrollNode(ctx, n.id, n.pub()) }); err != nil {
			b.Fatal(err)
		}
	}
	// Each job's round takes one update per node: b.N updates need
	// ⌈b.N/nodes⌉ jobs, all with a round open at once.
	jobs := (b.N + nodesN - 1) / nodesN
	// Nodes seal to the coordinators in the order of their cluster file,
	// so the leader's stanza is first, second or last; measure the last,
	// where finding it costs the most.
	keys := *bc.keys
	keys.recipients = nil
	l := bc.leader(b)
	var last age.Recipient
	for i, c := range bc.members {
		if c == l {
			last = bc.keys.recipients[i]
		} else {
			keys.recipients = append(keys.recipients, bc.keys.recipients[i])
		}
	}
	keys.recipients = append(keys.recipients, last)
	rng := rand.New(rand.NewPCG(1, 2))
	var work [][]byte
	for j := range jobs {
		spec := testSpec(fmt.Sprintf("bench-%d", j), benchDim, nodesN, nodesN)
		spec.Rounds = 1
		if err := bc.retry(b, func(l *Coordinator) error {
			_, err := l.CreateJob(ctx, spec)
			if errors.Is(err, ErrExists) {
				return nil
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
		var r Round
		eventually(b, 10*time.Second, "round open", func() bool {
			var err error
			r, err = bc.leader(b).GetRound(spec.ID, 1)
			return err == nil
		})
		for i := 0; i < nodesN && len(work) < b.N; i++ {
			work = append(work, nodes[i].sealFloat32(b, &keys, spec.ID, 1, r.BaseHash, rng))
		}
	}
	ch := make(chan []byte, len(work))
	for _, w := range work {
		ch <- w
	}
	close(ch)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range ch {
				if err := bc.retry(b, func(l *Coordinator) error {
					_, err := l.Submit(ctx, nil, w)
					return err
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "acks/s")
	// CPU time of the whole process (3 members and the clients) per ack:
	// on a loaded machine acks/s measures the share of the CPU the process
	// got; this measures the work, and 2 cores / cpu-per-ack is the
	// ceiling on an idle 2-core machine.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/ack")
}

// processCPU returns the user+system CPU time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRoundClose measures the time from the last update of a
// 100-update round (d = 10,000 float32) to its committed result: seal of
// the round, decoding from the leader's cache, FedAvg, and the CloseRound
// entry applied on the leader.
func BenchmarkRoundClose(b *testing.B) { benchRoundClose(b, inmemBenchCluster(b)) }

// BenchmarkRoundCloseAttested is BenchmarkRoundClose with attestation on:
// the close-round entry carries the result leaf, and the three members
// re-derive each round in the background (their CPU competes with the
// next iteration's close on a small machine).
func BenchmarkRoundCloseAttested(b *testing.B) { benchRoundClose(b, inmemAttestingBenchCluster(b)) }

// BenchmarkRoundCloseQuorum is BenchmarkRoundCloseAttested in the strong
// form (AttestQuorum): the round closes only after a quorum of members
// (the leader and one follower at least) re-derived it and their signed
// derivations were committed, so the close waits for a follower's
// aggregation and one more Raft round trip.
func BenchmarkRoundCloseQuorum(b *testing.B) {
	tc := newTestCluster(b, 3, clusterOpts{attest: true, strong: true})
	tc.registerAll()
	benchRoundClose(b, &benchCluster{keys: tc.keys, members: tc.members})
}

// BenchmarkRoundCloseQuorumPrefetched is BenchmarkRoundCloseQuorum with
// the timer started only once the followers have opened the first 99
// updates (attest_prefetch.go), as they do while a real round is open:
// it measures what the strong form adds to a round whose updates arrived
// over time, not the followers' backlog of a burst.
func BenchmarkRoundCloseQuorumPrefetched(b *testing.B) {
	tc := newTestCluster(b, 3, clusterOpts{attest: true, strong: true})
	tc.registerAll()
	bc := &benchCluster{keys: tc.keys, members: tc.members}
	bc.prefetched = func(job string, n int) {
		eventually(b, 30*time.Second, "followers opened the updates", func() bool {
			for _, c := range bc.members {
				if !c.IsLeader() && c.cache.count(job) < n {
					return false
				}
			}
			return true
		})
	}
	benchRoundClose(b, bc)
}

// count returns how many decoded updates of job the cache holds.
func (uc *updateCache) count(job string) int {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	n := 0
	for k := range uc.m {
		if k.job == job {
			n++
		}
	}
	return n
}

func benchRoundClose(b *testing.B, bc *benchCluster) {
	const n = 100
	ctx := context.Background()
	l := bc.leader(b)
	nodes := newTestNodes(b, n, 34)
	for _, nd := range nodes {
		if err := l.EnrollNode(ctx, nd.id, nd.pub()); err != nil {
			b.Fatal(err)
		}
	}
	events, cancel := l.Subscribe()
	defer cancel()
	rng := rand.New(rand.NewPCG(3, 4))
	b.ResetTimer()
	for it := range b.N {
		b.StopTimer()
		spec := testSpec(fmt.Sprintf("close-%d", it), benchDim, n, n)
		spec.Rounds = 1
		if _, err := l.CreateJob(ctx, spec); err != nil {
			b.Fatal(err)
		}
		var r Round
		eventually(b, 10*time.Second, "round open", func() bool {
			var err error
			r, err = l.GetRound(spec.ID, 1)
			return err == nil
		})
		sealed := make([][]byte, n)
		for i, nd := range nodes {
			sealed[i] = nd.sealFloat32(b, bc.keys, spec.ID, 1, r.BaseHash, rng)
		}
		var wg sync.WaitGroup
		for i := range n - 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := l.Submit(ctx, nil, sealed[i]); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		if bc.prefetched != nil {
			bc.prefetched(spec.ID, n-1)
		}
		b.StartTimer()
		if _, err := l.Submit(ctx, nil, sealed[n-1]); err != nil {
			b.Fatal(err)
		}
		for e := range events {
			if e.Kind == EventRoundClosed && e.Job == spec.ID {
				break
			}
			if e.Kind == EventRoundFailed && e.Job == spec.ID {
				b.Fatalf("round failed: %s", e.Detail)
			}
		}
	}
}
