package clustertest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/internal/clustertest"
	"github.com/mfn/mfn/protocol"
)

// testSpec is a small fedavg job: dim parameters, one round of exactly n
// updates (min = max = n) and deadlines far beyond any test, so a round
// closes only when full.
func testSpec(id string, dim, n, rounds int) coordinator.JobSpec {
	return coordinator.JobSpec{
		ID: id, Task: "clustertest", Dim: dim, Rule: coordinator.RuleSpec{Name: "fedavg"},
		Rounds: rounds, MinUpdates: n, MaxUpdates: n,
		RoundDeadline: coordinator.Duration(10 * time.Minute), HardDeadline: coordinator.Duration(20 * time.Minute),
	}
}

// update is one node's sealed update for a round, with what the test
// needs to check it later.
type update struct {
	node   *clustertest.Node
	values []float64 // as the cluster decodes them (float32-rounded)
	sealed []byte
	hash   coordinator.Hash
}

// makeUpdates seals one update per node for a round, values drawn from
// rng and rounded to float32 as the envelope carries them.
func makeUpdates(t testing.TB, nodes []*clustertest.Node, job string, round uint64, base coordinator.Hash, dim int, rng *rand.Rand) []update {
	t.Helper()
	out := make([]update, len(nodes))
	for i, n := range nodes {
		vals := make([]float64, dim)
		for j := range vals {
			vals[j] = float64(float32(rng.NormFloat64() * 0.01))
		}
		sealed, h, err := n.Seal(job, round, base, vals, 100)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = update{node: n, values: vals, sealed: sealed, hash: h}
	}
	return out
}

// mean is the fedavg of equally weighted updates.
func mean(ups []update) []float64 {
	out := make([]float64, len(ups[0].values))
	for _, u := range ups {
		for j, v := range u.values {
			out[j] += v
		}
	}
	for j := range out {
		out[j] /= float64(len(ups))
	}
	return out
}

// submitAll submits every update concurrently and returns the receipts.
func submitAll(ctx context.Context, t testing.TB, ups []update) []clustertest.Receipt {
	t.Helper()
	rcs := make([]clustertest.Receipt, len(ups))
	errs := make([]error, len(ups))
	done := make(chan int, len(ups))
	for i, u := range ups {
		go func() {
			rcs[i], errs[i] = u.node.Submit(ctx, u.sealed)
			done <- i
		}()
	}
	for range ups {
		<-done
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return rcs
}

// closeNodes closes every node's connection at the end of the test.
func closeNodes(t testing.TB, nodes []*clustertest.Node) {
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Close()
		}
	})
}

// checkRound asserts that a closed round holds exactly the acknowledged
// updates: one per node, each with its acknowledgement and update hash,
// all used by fedavg.
func checkRound(t *testing.T, r coordinator.Round, ups []update, acks map[string]protocol.Ack) {
	t.Helper()
	if r.State != coordinator.RoundClosed || r.Result == nil {
		t.Fatalf("round %d: state %s, result %v; want closed with a result (fail reason %q)", r.Number, r.State, r.Result, r.FailReason)
	}
	if len(r.Updates) != len(ups) {
		t.Fatalf("round %d holds %d updates, %d were acknowledged", r.Number, len(r.Updates), len(ups))
	}
	want := map[string]update{}
	for _, u := range ups {
		want[u.node.ID] = u
	}
	seen := map[string]bool{}
	for _, ru := range r.Updates {
		if seen[ru.Node] {
			t.Errorf("round %d: node %s appears twice", r.Number, ru.Node)
		}
		seen[ru.Node] = true
		u, ok := want[ru.Node]
		if !ok {
			t.Errorf("round %d: update from %s was never acknowledged", r.Number, ru.Node)
			continue
		}
		if ru.UpdateHash != u.hash {
			t.Errorf("round %d: %s update hash %s, sealed %s", r.Number, ru.Node, ru.UpdateHash, u.hash)
		}
		if a := acks[ru.Node]; ru.LogIndex != a.LogIndex || ru.LeafIndex != a.LeafIndex {
			t.Errorf("round %d: %s recorded at (log %d, leaf %d), acknowledged as (log %d, leaf %d)",
				r.Number, ru.Node, ru.LogIndex, ru.LeafIndex, a.LogIndex, a.LeafIndex)
		}
		if !ru.Used {
			t.Errorf("round %d: fedavg did not use %s: %s", r.Number, ru.Node, ru.Reason)
		}
	}
	if r.Result.Used != len(ups) || r.Result.Rejected != 0 {
		t.Errorf("round %d result: used %d rejected %d, want %d and 0", r.Number, r.Result.Used, r.Result.Rejected, len(ups))
	}
}

// checkModel downloads a model version and compares it with want.
func checkModel(ctx context.Context, t *testing.T, cl *api.Client, job string, version uint64, want []float64) {
	t.Helper()
	var buf bytes.Buffer
	if _, _, err := cl.ModelParams(ctx, job, fmt.Sprint(version), api.FormatFloat64, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 8*len(want) {
		t.Fatalf("model %s v%d has %d bytes, want %d", job, version, buf.Len(), 8*len(want))
	}
	for j, w := range want {
		got := math.Float64frombits(binary.LittleEndian.Uint64(buf.Bytes()[8*j:]))
		if math.Abs(got-w) > 1e-12 {
			t.Fatalf("model %s v%d parameter %d = %v, want %v (the mean of exactly the acknowledged updates)", job, version, j, got, w)
		}
	}
}

// waitCheckpoint waits until member m serves a checkpoint of exactly
// size leaves, and checks its signature.
func waitCheckpoint(ctx context.Context, t *testing.T, c *clustertest.Cluster, m *clustertest.Member, size uint64) api.Checkpoint {
	t.Helper()
	var cp api.Checkpoint
	err := clustertest.Poll(ctx, fmt.Sprintf("%s checkpoint of size %d", m.ID, size), func() (bool, error) {
		var err error
		cp, err = c.API(m, c.AuditorKey).Checkpoint(ctx)
		if err != nil {
			return false, err
		}
		if cp.Size > size {
			return true, fmt.Errorf("%s checkpoint has %d leaves, more than the %d acknowledged", m.ID, cp.Size, size)
		}
		return cp.Size == size, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := audit.ParseCheckpoint([]byte(cp.Note), c.LogVerifier)
	if err != nil {
		t.Fatalf("checkpoint from %s: %v", m.ID, err)
	}
	if parsed.Size != cp.Size || parsed.Root != cp.Root || parsed.Origin != c.Origin {
		t.Fatalf("checkpoint from %s: note says (%s, %d, %x), JSON says (%d, %s)", m.ID, parsed.Origin, parsed.Size, parsed.Root, cp.Size, cp.Root)
	}
	return cp
}

// checkConsistent verifies member m's consistency proof between two
// checkpoints with the RFC 6962 verifier.
func checkConsistent(ctx context.Context, t *testing.T, c *clustertest.Cluster, m *clustertest.Member, older, newer api.Checkpoint) {
	t.Helper()
	p, err := c.API(m, c.AuditorKey).Consistency(ctx, older.Size, newer.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, p.Proof, older.Root[:], newer.Root[:]); err != nil {
		t.Fatalf("checkpoints %d → %d from %s are not consistent: %v", older.Size, newer.Size, m.ID, err)
	}
}

// exportAndVerify exports member m's audit log through the API, verifies
// it offline (audit.VerifyLogDir with the enrolled node keys) and returns
// how often each (job, round, node) appears among its leaves.
func exportAndVerify(ctx context.Context, t *testing.T, c *clustertest.Cluster, m *clustertest.Member, nodes []*clustertest.Node) (*audit.LogReport, map[string]int) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "export-"+m.ID)
	if _, err := c.API(m, c.AuditorKey).ExportLog(ctx, dir); err != nil {
		t.Fatal(err)
	}
	keys := audit.NodeKeys{}
	for _, n := range nodes {
		keys[n.ID] = n.Identity.PublicKey()
	}
	rep, err := audit.VerifyLogDir(dir, c.LogVerifier, keys)
	if err != nil {
		t.Fatalf("audit log exported from %s does not verify: %v", m.ID, err)
	}
	count := map[string]int{}
	for i := range rep.Leaves {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(audit.LeafFile(i))))
		if err != nil {
			t.Fatal(err)
		}
		l, err := audit.ParseLeaf(b)
		if err != nil {
			t.Fatal(err)
		}
		count[leafKey(l.JobID, l.Round, l.NodeID)]++
	}
	return rep, count
}

func leafKey(job string, round uint64, node string) string {
	return fmt.Sprintf("%s/%d/%s", job, round, node)
}

// checkLeaves asserts that the leaves of a round are exactly its
// acknowledged updates, each once.
func checkLeaves(t *testing.T, count map[string]int, job string, round uint64, ups []update) {
	t.Helper()
	n := 0
	for _, u := range ups {
		k := leafKey(job, round, u.node.ID)
		if count[k] != 1 {
			t.Errorf("audit log has %d leaves for %s, want 1", count[k], k)
		}
		n += count[k]
	}
	prefix := fmt.Sprintf("%s/%d/", job, round)
	total := 0
	for k, v := range count {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			total += v
		}
	}
	if total != len(ups) {
		t.Errorf("audit log has %d leaves for %s round %d, %d updates were acknowledged", total, job, round, len(ups))
	}
}

// ctxFor returns a context bounded by d and the test's deadline.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	dl := time.Now().Add(d)
	if td, ok := t.Deadline(); ok && td.Add(-5*time.Second).Before(dl) {
		dl = td.Add(-5 * time.Second)
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	t.Cleanup(cancel)
	return ctx
}

// readyCluster starts the usual 3-member cluster, waits until it is ready
// and returns it with its leader.
func readyCluster(t testing.TB, ctx context.Context, bin string) (*clustertest.Cluster, *clustertest.Member) {
	t.Helper()
	c := clustertest.Start(t, clustertest.Config{Binary: bin})
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	leader, _, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c, leader
}

// enrolledNodes makes n test nodes from seed, closes them at cleanup and
// enrolls them.
func enrolledNodes(t testing.TB, ctx context.Context, c *clustertest.Cluster, n int, seed uint64) []*clustertest.Node {
	t.Helper()
	nodes, err := c.NewNodes(n, seed)
	if err != nil {
		t.Fatal(err)
	}
	closeNodes(t, nodes)
	if err := c.Enroll(ctx, nodes); err != nil {
		t.Fatal(err)
	}
	return nodes
}

// waitOpen waits until round of job is open and returns it.
func waitOpen(t testing.TB, ctx context.Context, c *clustertest.Cluster, job string, round uint64) coordinator.Round {
	t.Helper()
	r, err := c.WaitRound(ctx, job, round, "open", func(r coordinator.Round) bool { return r.State == coordinator.RoundOpen })
	if err != nil {
		t.Fatal(err)
	}
	return r
}
