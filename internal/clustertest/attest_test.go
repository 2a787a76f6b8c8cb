package clustertest_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/internal/clustertest"
)

// TestAttestedRounds: three mfn coordinator processes with attestation
// (the default). Each round closes only after a quorum of the members'
// signed derivations, which the followers post to the leader over HTTP
// without API keys; then every member cosigns the checkpoint covering
// the round's result leaf, and an auditor's export ("mfn ctl audit
// export") passes "mfn audit verify-log" with the members' keys.
func TestAttestedRounds(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 150*time.Second)
	c := clustertest.Start(t, clustertest.Config{Binary: bin, Attest: true})
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	const n, dim, rounds = 3, 200, 2
	nodes := enrolledNodes(t, ctx, c, n, 15)
	spec := testSpec("attested", dim, n, rounds)
	if _, err := c.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	for round := uint64(1); round <= rounds; round++ {
		runRound(ctx, t, c, nodes, spec, round, 15)
		r, err := c.WaitRound(ctx, spec.ID, round, "cosigned by all 3 members", func(r coordinator.Round) bool {
			return len(r.Attested) == 3
		})
		if err != nil {
			t.Fatal(err)
		}
		if !r.Attest || r.Result.ResultLeaf == nil || len(r.Derivations) < 2 || len(r.Dissents) != 0 {
			t.Fatalf("round %d: attest %v, result leaf %v, %d derivations, dissents %+v", round, r.Attest, r.Result.ResultLeaf, len(r.Derivations), r.Dissents)
		}
		for _, d := range r.Derivations {
			if d.Fail != "" || d.ModelHash != r.Result.ModelHash {
				t.Fatalf("round %d: derivation %+v differs from the committed model %s", round, d, r.Result.ModelHash)
			}
		}
	}
	// The cosignatures are applied on every member before the export.
	leader, _, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	follower := c.Others(leader)[0]
	if _, err := c.WaitRound(ctx, spec.ID, rounds, "cosigned", func(r coordinator.Round) bool { return len(r.Attested) == 3 }); err != nil {
		t.Fatal(err)
	}
	ctl := []string{"ctl", "--server", "http://" + follower.HTTPAddr, "--api-key", c.AuditorKey}
	dir := t.TempDir() + "/log"
	var stdout, stderr []byte
	err = clustertest.Poll(ctx, "an export whose result leaves carry 3 cosignatures", func() (bool, error) {
		d := fmt.Sprintf("%s-%d", dir, time.Now().UnixNano())
		if _, stderr, err := c.MFN(ctx, append(ctl, "audit", "export", "--out", d)...); err != nil {
			return false, fmt.Errorf("mfn ctl audit export: %v\n%s", err, stderr)
		}
		stdout, stderr, err = c.MFN(ctx, "audit", "verify-log", d, "--log-key", "@"+c.LogVerifierFile, "--member-keys", c.PeerKeysFile)
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("%v\n%s%s", err, stdout, stderr)
	}
	want := fmt.Sprintf("OK: log %s: %d leaves,", c.Origin, rounds*(n+1))
	if !strings.Contains(string(stdout), want) || !strings.Contains(string(stdout), fmt.Sprintf("%d round results", rounds)) {
		t.Fatalf("mfn audit verify-log: want %q and %d round results in\n%s", want, rounds, stdout)
	}

	// Every member archived the last round in its data directory; an
	// operator holding a coordinator key replays it to the committed model.
	last, err := c.Round(ctx, spec.ID, rounds)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(follower.DataDir, "archives", spec.ID, fmt.Sprintf("%08d.tar", rounds))
	stdout, stderr, err = c.MFN(ctx, "audit", "replay", "--archive", archive, "--identity", leader.KeyDir)
	wantReplay := fmt.Sprintf("OK: job %s round %d: fedavg over %d inputs", spec.ID, rounds, n)
	if err != nil || !strings.Contains(string(stdout), wantReplay) || !strings.Contains(string(stdout), last.Result.ModelHash.String()) {
		t.Fatalf("mfn audit replay %s: %v, want %q and model %s in\n%s%s", archive, err, wantReplay, last.Result.ModelHash, stdout, stderr)
	}
}
