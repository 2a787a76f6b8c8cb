package load

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
)

// fakeLeaf encodes the audit leaf of node's update to job's round.
func fakeLeaf(t *testing.T, job string, round uint64, id *crypto.Identity) []byte {
	t.Helper()
	st := &crypto.Statement{Origin: "o", JobID: job, Round: round, NodeID: id.NodeID(), SampleCount: 1, Time: time.Unix(1, 0).UTC()}
	sb, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.NewLeaf(sb, crypto.SignStatement(id.SigningKey, sb), id.PublicKey(), time.Unix(2, 0).UTC())
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckLogCountsLostAndDuplicated(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{7})
	ids := make([]*crypto.Identity, 4)
	for i := range ids {
		var err error
		if ids[i], err = crypto.GenerateIdentity(crypto.RoleNode, rng); err != nil {
			t.Fatal(err)
		}
	}
	const first = 100
	// Leaves 100..106: another job's leaf, node 0 r1, node 1 r1, node 1 r1
	// again (duplicated), node 2 r1, node 0 r2 twice (duplicated). Node 3's
	// acknowledged r1 update is missing (lost), and node 2's ack names a
	// leaf that holds another pair (lost too).
	leaves := [][]byte{
		fakeLeaf(t, "other", 1, ids[3]),
		fakeLeaf(t, "j", 1, ids[0]),
		fakeLeaf(t, "j", 1, ids[1]),
		fakeLeaf(t, "j", 1, ids[1]),
		fakeLeaf(t, "j", 2, ids[0]),
		fakeLeaf(t, "j", 2, ids[0]),
		fakeLeaf(t, "j", 1, ids[2]),
	}
	acks := []AckRecord{
		{Node: ids[0].NodeID(), Round: 1, Leaf: 101},
		{Node: ids[1].NodeID(), Round: 1, Leaf: 102},
		{Node: ids[1].NodeID(), Round: 1, Duplicate: true},
		{Node: ids[0].NodeID(), Round: 2, Leaf: 104},
		{Node: ids[2].NodeID(), Round: 1, Leaf: 105}, // really at 106
		{Node: ids[3].NodeID(), Round: 1, Leaf: 107}, // absent
	}
	c, err := CheckLog("j", first, leaves, acks)
	if err != nil {
		t.Fatal(err)
	}
	if want := (LogCheck{InLog: 6, Lost: 2, Duplicated: 2}); c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	// The complete, clean log: nothing lost or duplicated.
	clean := [][]byte{leaves[1], leaves[2], leaves[4], leaves[6]}
	c, err = CheckLog("j", 0, clean, []AckRecord{
		{Node: ids[0].NodeID(), Round: 1, Leaf: 0}, {Node: ids[1].NodeID(), Round: 1, Leaf: 1},
		{Node: ids[0].NodeID(), Round: 2, Leaf: 2}, {Node: ids[2].NodeID(), Round: 1, Leaf: 3},
	})
	if err != nil || c != (LogCheck{InLog: 4}) {
		t.Fatalf("clean log: %+v, %v", c, err)
	}
	// A round's result leaf (members that attest write one per round)
	// among the update leaves is neither an error nor an update.
	res, err := (&audit.ResultLeaf{Origin: "o", JobID: "j", Round: 1, Rule: "fedavg", Weighting: audit.WeightEqual,
		Entries: []audit.ResultEntry{{LeafIndex: 0, Input: true, Used: true}}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	withResult := [][]byte{leaves[1], leaves[2], res, leaves[4], leaves[6]}
	c, err = CheckLog("j", 0, withResult, []AckRecord{
		{Node: ids[0].NodeID(), Round: 1, Leaf: 0}, {Node: ids[1].NodeID(), Round: 1, Leaf: 1},
		{Node: ids[0].NodeID(), Round: 2, Leaf: 3}, {Node: ids[2].NodeID(), Round: 1, Leaf: 4},
	})
	if err != nil || c != (LogCheck{InLog: 4}) {
		t.Fatalf("log with a result leaf: %+v, %v", c, err)
	}
	// A corrupt leaf is an error naming its index.
	_, err = CheckLog("j", first, [][]byte{leaves[1], []byte("junk")}, nil)
	if err == nil || !strings.Contains(err.Error(), "leaf 101") {
		t.Fatalf("corrupt leaf: %v", err)
	}
}

func TestPercentiles(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	p50, p90, p99 := latencies(s)
	if p50 != 50 || p90 != 90 || p99 != 99 {
		t.Fatalf("p50 %v p90 %v p99 %v, want 50 90 99", p50, p90, p99)
	}
	if s[0] != 100*time.Millisecond {
		t.Fatal("latencies sorted its input")
	}
	if a, b, c := latencies(nil); a != 0 || b != 0 || c != 0 {
		t.Fatal("no samples must give zeros")
	}
	if a, _, c := latencies([]time.Duration{3 * time.Millisecond}); a != 3 || c != 3 {
		t.Fatalf("one sample: %v %v", a, c)
	}
}

func TestWriteJSONAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Report{Nodes: 3, Errors: map[string]int{"dial": 2}}
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !bytes.Contains(b, []byte(`"dial": 2`)) || !bytes.Contains(b, []byte(`"nodes": 3`)) {
		t.Fatalf("report: %s", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	// A missing directory fails and leaves nothing.
	if err := r.WriteJSON(filepath.Join(dir, "no", "r.json")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestUpdateValuesDeterministic(t *testing.T) {
	a := updateValues(1, 3, 2, 100, false, "")
	b := updateValues(1, 3, 2, 100, false, "")
	c := updateValues(1, 3, 3, 100, false, "")
	flip := updateValues(1, 3, 2, 100, true, "sign-flip")
	large := updateValues(1, 3, 2, 100, true, "large")
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, value %d differs", i)
		}
		if a[i] < -0.01 || a[i] > 0.01 {
			t.Fatalf("honest value %d = %v outside ±0.01", i, a[i])
		}
		if d := flip[i] + 10*a[i]; d > 1e-12 || d < -1e-12 {
			t.Fatalf("sign-flip value %d = %v, honest %v", i, flip[i], a[i])
		}
		if d := large[i] - 1e4*a[i]; d > 1e-9 || d < -1e-9 {
			t.Fatalf("large value %d = %v, honest %v", i, large[i], a[i])
		}
	}
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same > 1 {
		t.Fatalf("rounds 2 and 3 share %d values", same)
	}
}

func TestNodeIdentitiesDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.JobID, cfg.Nodes = "j", 3
	a, err := nodeIdentities(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := nodeIdentities(cfg)
	cfg.JobID = "k"
	c, _ := nodeIdentities(cfg)
	for i := range a {
		if !a[i].PublicKey().Equal(b[i].PublicKey()) {
			t.Fatalf("node %d: same seed and job, different keys", i)
		}
		if a[i].PublicKey().Equal(c[i].PublicKey()) {
			t.Fatalf("node %d: another job, same key", i)
		}
		if i > 0 && a[i].PublicKey().Equal(ed25519.PublicKey(a[i-1].PublicKey())) {
			t.Fatal("two nodes share a key")
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.JobID = "j"
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		set   func(*Config)
	}{
		{"JobID", func(c *Config) { c.JobID = "" }},
		{"Nodes", func(c *Config) { c.Nodes = 0 }},
		{"Nodes", func(c *Config) { c.Nodes = MaxNodes + 1 }},
		{"Byzantine", func(c *Config) { c.Byzantine = c.Nodes }},
		{"Attack", func(c *Config) { c.Byzantine, c.Attack = 1, "nan" }},
		{"Dim", func(c *Config) { c.Dim = MaxDim + 1 }},
		{"Rounds", func(c *Config) { c.Rounds = 0 }},
		{"Nodes × Rounds", func(c *Config) { c.Nodes, c.Rounds = MaxNodes, MaxRounds }},
		{"Submitters", func(c *Config) { c.Submitters = c.Nodes + 1 }},
		{"Submitters", func(c *Config) { c.Nodes = 3001 }},
		{"Byzantine", func(c *Config) { c.Nodes, c.Submitters, c.Byzantine = 10, 4, 4 }},
		{"Ramp", func(c *Config) { c.Ramp = -time.Second }},
		{"Hold", func(c *Config) { c.Hold = MaxHold + 1 }},
		{"Concurrency", func(c *Config) { c.Concurrency = MaxConcurrency + 1 }},
		{"APIReaders", func(c *Config) { c.APIReaders = MaxAPIReaders + 1 }},
		{"Subscribers", func(c *Config) { c.Subscribers = -1 }},
		{"RoundDeadline", func(c *Config) { c.RoundDeadline = time.Millisecond }},
		{"Timeout", func(c *Config) { c.Timeout = 0 }},
	} {
		c := ok
		tc.set(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
}

func TestInflightFitsMemoryBudget(t *testing.T) {
	c := DefaultConfig()
	c.Concurrency = 1000
	c.Dim = 1 << 27 // streamed: a few chunks per update in flight
	if n := c.inflight(); n != MaxInflightBytes/streamedUpdateBytes {
		t.Fatalf("dim 2^27: %d in flight, want %d", n, MaxInflightBytes/streamedUpdateBytes)
	}
	c.Dim = (streamAbove - 14) / 4 // the largest framed update
	if n := int64(c.inflight()); n*int64(c.Dim)*16 > MaxInflightBytes || n < 1 {
		t.Fatalf("dim %d: %d in flight exceeds the budget", c.Dim, n)
	}
	c.Dim = 1000
	if n := c.inflight(); n != 1000 {
		t.Fatalf("dim 1000: %d in flight, want 1000", n)
	}
	c.Dim = 1_000_000
	if n := int64(c.inflight()); n*int64(c.Dim)*16 > MaxInflightBytes || n < 1 {
		t.Fatalf("dim 10^6: %d in flight exceeds the budget", n)
	}
}

func TestTargetValidate(t *testing.T) {
	tg := Target{API: []string{"ftp://x"}}
	if err := tg.Validate(); err == nil || !strings.Contains(err.Error(), "Target.API") {
		t.Fatalf("bad URL: %v", err)
	}
	tg.API = []string{"http://127.0.0.1:1"}
	if err := tg.Validate(); err == nil || !strings.Contains(err.Error(), "Cluster") {
		t.Fatalf("no cluster: %v", err)
	}
}

func TestAPIErrKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&api.Error{Status: 429}, "api_read_429"},
		{fmt.Errorf("x: %w", &api.Error{Status: 503}), "api_read_503"},
		{fmt.Errorf("%w: dial", api.ErrUnreachable), "api_read_unreachable"},
		{io.EOF, "api_read"},
	} {
		if got := apiErrKind(ErrKindAPIRead, tc.err); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
}
