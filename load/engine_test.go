package load

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// startLocal starts a local cluster for a test and stops it at cleanup.
func startLocal(t *testing.T, n int) *Local {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := StartLocal(ctx, n, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestRunLocalCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member cluster")
	}
	l := startLocal(t, 3)
	cfg := DefaultConfig()
	cfg.JobID, cfg.Nodes, cfg.Byzantine, cfg.Dim, cfg.Rounds = "load-test", 20, 2, 1000, 2
	cfg.Rule, cfg.APIReaders, cfg.Subscribers, cfg.Timeout = "trimmed-mean", 2, 2, 3*time.Minute
	cfg.Ramp = 200 * time.Millisecond
	var progress int
	cfg.Progress = func(Progress) { progress++ }
	cfg.ProgressEvery = 100 * time.Millisecond
	rep, err := Run(context.Background(), cfg, l.Target)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Interrupted {
		t.Fatalf("run interrupted: %+v", rep)
	}
	if rep.Acked != cfg.Nodes*cfg.Rounds || rep.Unconfirmed != 0 || rep.Lost != 0 || rep.Duplicated != 0 || rep.InLog != rep.Acked {
		t.Fatalf("acked %d (want %d), lost %d, duplicated %d, in log %d", rep.Acked, cfg.Nodes*cfg.Rounds, rep.Lost, rep.Duplicated, rep.InLog)
	}
	if rep.RoundsClosed != cfg.Rounds || rep.RoundsFailed != 0 {
		t.Fatalf("rounds closed %d failed %d, want %d and 0", rep.RoundsClosed, rep.RoundsFailed, cfg.Rounds)
	}
	if !(0 < rep.AckP50ms && rep.AckP50ms <= rep.AckP90ms && rep.AckP90ms <= rep.AckP99ms) {
		t.Fatalf("ack percentiles not ordered: %v %v %v", rep.AckP50ms, rep.AckP90ms, rep.AckP99ms)
	}
	if !(0 < rep.RoundCloseP50ms && rep.RoundCloseP50ms <= rep.RoundCloseP99ms) {
		t.Fatalf("round close percentiles: %v %v", rep.RoundCloseP50ms, rep.RoundCloseP99ms)
	}
	if rep.AcksPerSecond <= 0 || rep.Seconds <= 0 {
		t.Fatalf("acks/s %v over %vs", rep.AcksPerSecond, rep.Seconds)
	}
	// Every update has the same sealed size, so bytes are acks × size.
	if rep.BytesSent != int64(rep.Acked*rep.SealedBytes) || rep.SealedBytes < 4*cfg.Dim {
		t.Fatalf("bytes %d for %d acks of %d bytes (dim %d)", rep.BytesSent, rep.Acked, rep.SealedBytes, cfg.Dim)
	}
	if d := rep.BytesPerSecond / rep.AcksPerSecond; d < float64(rep.SealedBytes)*0.999 || d > float64(rep.SealedBytes)*1.001 {
		t.Fatalf("bytes/s %v and acks/s %v disagree with sealed size %d", rep.BytesPerSecond, rep.AcksPerSecond, rep.SealedBytes)
	}
	if rep.CoordinatorMaxRSS <= 0 || rep.MetricsSource == "" {
		t.Fatalf("no coordinator metrics: rss %d source %q", rep.CoordinatorMaxRSS, rep.MetricsSource)
	}
	if len(rep.CoordinatorPeakRSS) != 1 || rep.CoordinatorPeakRSS["self"] != rep.CoordinatorMaxRSS {
		t.Fatalf("per-member peaks %v, max %d", rep.CoordinatorPeakRSS, rep.CoordinatorMaxRSS)
	}
	if rep.APIRequests == 0 || rep.APIEvents == 0 {
		t.Fatalf("API scenario idle: %d requests, %d events", rep.APIRequests, rep.APIEvents)
	}
	if len(rep.Errors) != 0 {
		t.Fatalf("errors: %v", rep.Errors)
	}
	if progress == 0 {
		t.Fatal("Progress never called")
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"nodes", "dim", "rounds", "acked", "lost", "duplicated", "acks_per_second", "bytes_per_second",
		"ack_p50_ms", "ack_p99_ms", "round_close_p50_ms", "round_close_p99_ms", "coordinator_max_rss_bytes", "errors"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report JSON lacks %q", k)
		}
	}
	if m["acked"].(float64) != float64(rep.Acked) {
		t.Errorf("JSON acked %v, report %d", m["acked"], rep.Acked)
	}
}

// TestRunSurvivesLeaderLoss stops the leader after the first round closed:
// the nodes find the new leader (redirects, the polled cluster status) and
// every update is still acknowledged once and in the log.
func TestRunSurvivesLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member cluster and stops its leader")
	}
	l := startLocal(t, 3)
	var leader *localMember
	var follower string
	for i, m := range l.members {
		if m.coord.IsLeader() {
			leader = m
		} else if follower == "" {
			follower = l.Target.API[i]
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	tgt := l.Target
	tgt.API = []string{follower} // the API member survives
	cfg := DefaultConfig()
	cfg.JobID, cfg.Nodes, cfg.Dim, cfg.Rounds, cfg.Timeout = "failover", 12, 500, 3, 3*time.Minute
	var once sync.Once
	stopped := make(chan struct{})
	cfg.ProgressEvery = 50 * time.Millisecond
	cfg.Progress = func(p Progress) {
		if p.Closed >= 1 {
			once.Do(func() {
				go func() {
					defer close(stopped)
					leader.qsrv.Close()
					leader.hsrv.Close()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					leader.coord.Close(ctx)
				}()
			})
		}
	}
	rep, err := Run(context.Background(), cfg, tgt)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the leader was never stopped")
	}
	// An acknowledgement in flight when the leader stopped may be lost in
	// transport (Unconfirmed); the update itself must be in the log.
	want := cfg.Nodes * cfg.Rounds
	if rep.Interrupted || rep.InLog != want || rep.Acked+rep.Unconfirmed < want || rep.Acked > want ||
		rep.Lost != 0 || rep.Duplicated != 0 || rep.RoundsClosed != cfg.Rounds {
		t.Fatalf("after losing the leader: interrupted %v, in log %d and acked %d + unconfirmed %d (want %d), lost %d, duplicated %d, closed %d; errors %v",
			rep.Interrupted, rep.InLog, rep.Acked, rep.Unconfirmed, want, rep.Lost, rep.Duplicated, rep.RoundsClosed, rep.Errors)
	}
	if rep.LeaderChanges < 1 {
		t.Fatalf("leader changes %d, want ≥ 1", rep.LeaderChanges)
	}
	t.Logf("errors while failing over: %v", rep.Errors)
}
