package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/internal/clustertest"
)

// benchDim is the update size of the speed figures: d = 10,000 float32.
const benchDim = 10_000

// benchCluster starts a 3-member cluster and enrolls and connects n nodes
// to the leader.
func benchCluster(b *testing.B, ctx context.Context, n int) (*clustertest.Cluster, *clustertest.Member, []*clustertest.Node) {
	b.Helper()
	// The per-node submission limit is a policy against floods, not a
	// capacity: lift it so the figures measure the cluster.
	c := clustertest.Start(b, clustertest.Config{Binary: mfnBinary(b), OperatorKeys: 16,
		ExtraArgs: []string{"--node-rate", "1000", "--node-burst", "1000"}})
	if err := c.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	leader, _, err := c.Leader(ctx)
	if err != nil {
		b.Fatal(err)
	}
	nodes, err := c.NewNodes(n, 9)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, nd := range nodes {
			nd.Close()
		}
	})
	if err := c.Enroll(ctx, nodes); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Enrollment reaches the followers' state a moment later;
			// the leader applied it before answering.
			errs[i] = clustertest.Poll(ctx, nd.ID+" connect", func() (bool, error) {
				err := nd.Connect(ctx, leader.QUICAddr)
				return err == nil, err
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return c, leader, nodes
}

// createJobs creates jobs concurrently (one operator key each, as the API
// rate-limits per key) and waits for their first rounds to open.
func createJobs(ctx context.Context, b *testing.B, c *clustertest.Cluster, specs []coordinator.JobSpec) []coordinator.Round {
	b.Helper()
	rounds := make([]coordinator.Round, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := c.OperatorKeys[i%len(c.OperatorKeys)]
			errs[i] = c.Write(ctx, "create job "+spec.ID, key, func(cl *api.Client) error {
				_, err := cl.CreateJob(ctx, spec)
				return err
			})
			if errs[i] != nil {
				return
			}
			rounds[i], errs[i] = c.WaitRound(ctx, spec.ID, 1, "open", func(r coordinator.Round) bool { return r.State == coordinator.RoundOpen })
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return rounds
}

// cpuUse is the CPU time used so far by the leader, the followers
// together, and this process (the clients).
type cpuUse struct{ leader, followers, client time.Duration }

func clusterCPU(b *testing.B, c *clustertest.Cluster, leader *clustertest.Member) cpuUse {
	b.Helper()
	u := cpuUse{client: clustertest.SelfCPU()}
	for _, m := range c.Members {
		d, err := clustertest.ProcessCPU(m.PID())
		if err != nil {
			b.Fatal(err)
		}
		if m == leader {
			u.leader += d
		} else {
			u.followers += d
		}
	}
	return u
}

// BenchmarkAckThroughput measures acknowledged updates per second (d =
// 10,000 float32, sealed to the three coordinators) into a 3-member
// `mfn coordinator` cluster on loopback, from 64 concurrent submitters
// over QUIC. An acknowledgement means the leader opened and checked the
// envelope, committed it through Raft on a quorum (bbolt, fsync) and
// applied it, audit leaf included. Each of b.N updates is one node's
// update to one job's round (one update per node and round is the rule),
// so b.N updates are spread over ⌈b.N/nodes⌉ jobs whose rounds are all
// open; full rounds close (fedavg) while the others still take updates.
// Sealing happens before the timer starts.
//
// The members run with --node-rate 1000 --node-burst 1000, so the
// per-node rate limit (5 updates/s, burst 10 by default) does not bound
// the figures.
func BenchmarkAckThroughput(b *testing.B) {
	const workers = 64
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, leader, all := benchCluster(b, ctx, 256)
	var jobSeq atomic.Int64
	for _, nodesN := range []int{64, 256} {
		b.Run(fmt.Sprintf("nodes=%d", nodesN), func(b *testing.B) {
			nodes := all[:nodesN]
			jobs := (b.N + nodesN - 1) / nodesN
			specs := make([]coordinator.JobSpec, jobs)
			for j := range specs {
				cnt := min(nodesN, b.N-j*nodesN)
				specs[j] = testSpec(fmt.Sprintf("tput-%d", jobSeq.Add(1)), benchDim, cnt, 1)
			}
			rounds := createJobs(ctx, b, c, specs)
			// work[w] is worker w's queue: its nodes' updates, job by job.
			work := make([][]update, workers)
			rng := rand.New(rand.NewPCG(uint64(b.N), uint64(nodesN)))
			for j, spec := range specs {
				ups := makeUpdates(b, nodes[:spec.MaxUpdates], spec.ID, 1, rounds[j].BaseHash, benchDim, rng)
				for i, u := range ups {
					work[i%workers] = append(work[i%workers], u)
				}
			}
			lat := make([][]time.Duration, workers)
			errs := make([]error, workers)
			var wg sync.WaitGroup
			cpu0 := clusterCPU(b, c, leader)
			b.ResetTimer()
			start := time.Now()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, u := range work[w] {
						t0 := time.Now()
						if _, err := u.node.Submit(ctx, u.sealed); err != nil {
							errs[w] = err
							return
						}
						lat[w] = append(lat[w], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			cpu1 := clusterCPU(b, c, leader)
			if err := errors.Join(errs...); err != nil {
				b.Fatal(err)
			}
			perAck := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.N) }
			b.ReportMetric(perAck(cpu1.leader-cpu0.leader), "leader-cpu-ms/ack")
			b.ReportMetric(perAck(cpu1.followers-cpu0.followers)/2, "follower-cpu-ms/ack")
			b.ReportMetric(perAck(cpu1.client-cpu0.client), "client-cpu-ms/ack")
			all := slices.Concat(lat...)
			slices.Sort(all)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "acks/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1e3, "p50-ms")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1e3, "p99-ms")
			if l, _, err := c.Leader(ctx); err != nil || l != leader {
				b.Fatalf("leadership changed during the benchmark: %v %v", l, err)
			}
		})
	}
}

// BenchmarkRoundClose measures the time from the last update of a
// 100-update round (d = 10,000 float32) to its committed result, as an
// operator sees it: the round_closed event on the leader's /v1/events
// stream. Each iteration is a new one-round job with min = max = 100; 99
// updates are acknowledged before the timer runs, then the timed part is
// the 100th submission (its acknowledgement) and the close that it
// triggers: seal entry, aggregation of the 100 updates (fedavg), the
// close entry committed and applied. ms-after-ack is the part after the
// last acknowledgement.
func BenchmarkRoundClose(b *testing.B) {
	const n = 100
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, leader, nodes := benchCluster(b, ctx, n)
	events, err := c.API(leader, c.ReaderKey).Events(ctx, []string{string(coordinator.EventRoundClosed), string(coordinator.EventRoundFailed)}, "")
	if err != nil {
		b.Fatal(err)
	}
	defer events.Close()
	rng := rand.New(rand.NewPCG(11, 12))
	var afterAck []time.Duration
	b.ResetTimer()
	for it := range b.N {
		b.StopTimer()
		spec := testSpec(fmt.Sprintf("close-%d-%d", b.N, it), benchDim, n, 1)
		r := createJobs(ctx, b, c, []coordinator.JobSpec{spec})[0]
		ups := makeUpdates(b, nodes, spec.ID, 1, r.BaseHash, benchDim, rng)
		submitAll(ctx, b, ups[:n-1])
		b.StartTimer()
		if _, err := ups[n-1].node.Submit(ctx, ups[n-1].sealed); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		for {
			ev, err := events.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if ev.Job != spec.ID {
				continue
			}
			if ev.Kind == coordinator.EventRoundFailed {
				b.Fatalf("round failed: %s", ev.Detail)
			}
			break
		}
		afterAck = append(afterAck, time.Since(acked))
	}
	b.StopTimer()
	slices.Sort(afterAck)
	b.ReportMetric(float64(afterAck[len(afterAck)/2].Microseconds())/1e3, "ms-after-ack")
}
