package e2e

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfn/mfn/audit"
)

// TestFederation runs a short federation on the real components: a
// Byzantine node (ALIE) among six, trimmed mean, and the leader killed
// after round 3. It checks the demo's promises: every round completes, the
// model beats chance by a wide margin and stays within a few points of the
// FedAvg run without the attacker, every acknowledged update is in the
// audit log exactly once, and the exported log verifies offline (and stops
// verifying when a leaf is altered).
func TestFederation(t *testing.T) {
	o := DefaultOptions()
	o.Nodes, o.Byzantine, o.Rounds, o.Samples, o.TestPerRegime = 6, 1, 8, 40, 30
	o.ChaosAfter = 3
	o.Dir = t.TempDir()
	var mu sync.Mutex
	var reports []RoundReport
	o.OnRound = func(r RoundReport) {
		mu.Lock()
		reports = append(reports, r)
		mu.Unlock()
		t.Logf("round %d: updates %d used %d accuracy %.3f leader %s at %v", r.Round, r.Updates, r.Used, r.Accuracy, r.Leader, r.Elapsed)
	}
	killed, reportsBeforeKill := "", 0
	o.OnLeaderKilled = func(id string) {
		mu.Lock()
		killed, reportsBeforeKill = id, len(reports)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sum, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary %+v", sum)

	if sum.RoundsCompleted != o.Rounds {
		t.Errorf("%d rounds completed, want %d (%d failed)", sum.RoundsCompleted, o.Rounds, sum.RoundsFailed)
	}
	if killed == "" || sum.KilledLeader != killed || sum.LeaderChanges < 1 {
		t.Errorf("chaos: killed %q, summary says %q with %d leader changes", killed, sum.KilledLeader, sum.LeaderChanges)
	}
	mu.Lock()
	for _, r := range reports[reportsBeforeKill:] {
		if r.Leader == killed {
			t.Errorf("round %d reports the killed member %s as leader", r.Round, killed)
		}
	}
	mu.Unlock()
	// Chance is 0.25 on four balanced regimes.
	if sum.FinalAccuracy < 0.6 {
		t.Errorf("final accuracy %.3f, want ≥ 0.6 (chance %.2f)", sum.FinalAccuracy, sum.ChanceAccuracy)
	}
	if math.IsNaN(sum.FedAvgReferenceAccuracy) || math.Abs(sum.FinalAccuracy-sum.FedAvgReferenceAccuracy) > 0.1 {
		t.Errorf("final accuracy %.3f vs FedAvg without attackers %.3f: more than 10 points apart", sum.FinalAccuracy, sum.FedAvgReferenceAccuracy)
	}
	if want := o.Rounds * o.Nodes; sum.AcknowledgedUpdates != want {
		t.Errorf("%d acknowledged updates, want %d (every node in every round)", sum.AcknowledgedUpdates, want)
	}
	if sum.UpdatesInLog != sum.AcknowledgedUpdates || sum.LostUpdates != 0 || sum.DuplicateUpdates != 0 {
		t.Errorf("log %d, acknowledged %d, lost %d, duplicated %d", sum.UpdatesInLog, sum.AcknowledgedUpdates, sum.LostUpdates, sum.DuplicateUpdates)
	}
	if !sum.AuditVerified || sum.Checkpoints < 2 {
		t.Fatalf("audit verified %v (%s) with %d checkpoints", sum.AuditVerified, sum.AuditError, sum.Checkpoints)
	}

	// The export is really checked: alter one byte of one leaf.
	vkey, err := os.ReadFile(filepath.Join(o.Dir, "log.vkey"))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewLogVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		t.Fatal(err)
	}
	// Every round's result leaf is in the export and verified with the
	// members' cosignatures; rounds before the kill have all of them.
	if rep, err := audit.VerifyLogDir(filepath.Join(o.Dir, "audit"), verifier, nil); err != nil {
		t.Fatal(err)
	} else if rep.Results != o.Rounds {
		t.Fatalf("export: %d round results verified, want %d", rep.Results, o.Rounds)
	}
	if sum.RoundsAttested < 1 || sum.RoundsAttested > sum.RoundsCompleted {
		t.Errorf("%d rounds attested by every member, want 1..%d", sum.RoundsAttested, sum.RoundsCompleted)
	}
	leaf := filepath.Join(o.Dir, "audit", filepath.FromSlash(audit.LeafFile(uint64(sum.UpdatesInLog/2))))
	b, err := os.ReadFile(leaf)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1 // the accept time's last byte: outside the node's signature
	if err := os.WriteFile(leaf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyLogDir(filepath.Join(o.Dir, "audit"), verifier, nil); err == nil {
		t.Fatal("an altered leaf still verifies")
	}
}

// TestRunCancelled: cancelling a run stops everything and removes its
// temporary directory.
func TestRunCancelled(t *testing.T) {
	o := DefaultOptions()
	o.Nodes, o.Byzantine, o.Rounds, o.Samples, o.TestPerRegime, o.Chaos = 3, 0, 1000, 20, 10, false
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithCancel(context.Background())
	o.OnRound = func(r RoundReport) {
		if r.Round == 2 {
			cancel()
		}
	}
	done := make(chan error, 1)
	go func() { _, err := Run(ctx, o); done <- err }()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("Run did not return after cancellation")
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

// TestOptionsValidate names the bad option.
func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.Nodes = 0 }, "Nodes 0"},
		{func(o *Options) { o.Byzantine = o.Nodes }, "Byzantine 10"},
		{func(o *Options) { o.Attack = "shouting" }, `Attack "shouting"`},
		{func(o *Options) { o.Rule = "wisdom" }, `Rule "wisdom"`},
		{func(o *Options) { o.Members = 1 }, "Chaos needs at least 3 members"},
		{func(o *Options) { o.Train.LR = 0 }, "LR"},
		{func(o *Options) { o.Rule, o.Nodes, o.Byzantine = "krum", 6, 2 }, "krum needs n > 2f+2"},
	} {
		o := DefaultOptions()
		tc.edit(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
		}
	}
	o := DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatalf("default options: %v", err)
	}
}
