package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/mfn/mfn/audit"
)

// logSource serves a log's bundles and result leaf indexes, optionally
// lying (tamper).
type logSource struct {
	l       *audit.Log
	results map[string]uint64
	tamper  func(leaf uint64, b *audit.Bundle)
	moved   map[string]uint64 // job/round → another result leaf
}

func (s *logSource) ResultLeaf(_ context.Context, job string, round uint64) (uint64, bool, error) {
	k := fmt.Sprintf("%s/%d", job, round)
	if i, ok := s.moved[k]; ok {
		return i, true, nil
	}
	i, ok := s.results[k]
	return i, ok, nil
}

func (s *logSource) Bundle(_ context.Context, leaf uint64) ([]byte, error) {
	b, err := s.l.Bundle(leaf)
	if err != nil {
		return nil, err
	}
	if s.tamper != nil {
		s.tamper(leaf, b)
	}
	return b.Marshal()
}

// sampleRounds is a signed, cosigned log of 3 rounds and the records of
// the first node in it.
func sampleRounds(t *testing.T) (*logSource, string, []Record, audit.MemberKeys, *audit.Log) {
	t.Helper()
	skey, vkey, err := audit.GenerateLogKey("mfn.test/rounds", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewLogSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewLogVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	l, members, err := audit.BuildSampleRoundsLog(audit.SampleRoundsConfig{Origin: "mfn.test/rounds", Rounds: 3, Nodes: 4, Seed: 5}, signer, verifier)
	if err != nil {
		t.Fatal(err)
	}
	src := &logSource{l: l, results: map[string]uint64{}}
	var node string
	var recs []Record
	for i := range l.Size() {
		b, _ := l.Leaf(i)
		if audit.IsResultLeaf(b) {
			r, err := audit.ParseResultLeaf(b)
			if err != nil {
				t.Fatal(err)
			}
			src.results[fmt.Sprintf("%s/%d", r.JobID, r.Round)] = i
			continue
		}
		leaf, err := audit.ParseLeaf(b)
		if err != nil {
			t.Fatal(err)
		}
		if node == "" {
			node = leaf.NodeID
		}
		if leaf.NodeID == node {
			recs = append(recs, Record{Job: leaf.JobID, Round: leaf.Round, LeafIndex: i, UpdateHash: hex.EncodeToString(leaf.UpdateHash[:])})
		}
	}
	if len(recs) != 3 || len(src.results) != 3 {
		t.Fatalf("sample log: %d records of %s, %d results", len(recs), node, len(src.results))
	}
	return src, node, recs, members, l
}

func TestCheckRounds(t *testing.T) {
	src, node, recs, members, l := sampleRounds(t)
	verifier := l.Verifier()
	ctx := context.Background()
	checks := CheckRounds(ctx, node, recs, src, verifier, members)
	if len(checks) != 3 {
		t.Fatalf("%d checks, want 3", len(checks))
	}
	for i, c := range checks {
		rb, _ := l.Leaf(*c.ResultLeaf)
		res, _ := audit.ParseResultLeaf(rb)
		var want audit.ResultEntry
		for _, e := range res.Entries {
			if e.LeafIndex == recs[i].LeafIndex {
				want = e
			}
		}
		wantOutcome := map[bool]string{true: OutcomeUsed, false: OutcomeRejected}[want.Used]
		if c.Error != "" || c.Outcome != wantOutcome || c.Reason != want.Reason || c.Checkpoint <= *c.ResultLeaf || c.Rule != res.Rule {
			t.Fatalf("round %d: %+v, want %s %q", c.Round, c, wantOutcome, want.Reason)
		}
	}

	unverified := func(name string, checks []RoundCheck, round uint64, want string) {
		t.Helper()
		for _, c := range checks {
			if c.Round == round {
				if c.Outcome != OutcomeUnverified || !strings.Contains(c.Error, want) {
					t.Errorf("%s: round %d %s %q, want unverified with %q", name, round, c.Outcome, c.Error, want)
				}
				return
			}
		}
		t.Errorf("%s: round %d not checked", name, round)
	}
	// The server points round 2 at round 1's result.
	src.moved = map[string]uint64{fmt.Sprintf("%s/2", recs[1].Job): src.results[fmt.Sprintf("%s/1", recs[0].Job)]}
	unverified("moved result", CheckRounds(ctx, node, recs, src, verifier, members), 2, "result of job")
	src.moved = nil
	// A tampered result leaf does not verify under the signed checkpoint.
	res2 := src.results[fmt.Sprintf("%s/2", recs[1].Job)]
	src.tamper = func(leaf uint64, b *audit.Bundle) {
		if leaf == res2 {
			b.Leaf[len(b.Leaf)-1] ^= 1
		}
	}
	unverified("tampered result", CheckRounds(ctx, node, recs, src, verifier, members), 2, "")
	src.tamper = nil
	// Another node's record (or a wrong hash) is not this node's update.
	other := append([]Record(nil), recs...)
	other[2].UpdateHash = strings.Repeat("0", 64)
	unverified("wrong update hash", CheckRounds(ctx, node, other, src, verifier, members), 3, "not this node's update")
	unverified("other node", CheckRounds(ctx, "someone-else", recs, src, verifier, members)[:1], 1, "not this node's update")
	// Members that did not cosign: no quorum.
	strangers := audit.MemberKeys{}
	for id := range members {
		strangers[id+"-x"] = members[id]
	}
	unverified("no quorum", CheckRounds(ctx, node, recs, src, verifier, strangers), 1, "quorum")
	// A round without a result leaf.
	delete(src.results, fmt.Sprintf("%s/3", recs[2].Job))
	if c := CheckRounds(ctx, node, recs, src, verifier, members)[2]; c.Outcome != OutcomeNoResult || c.Error != "" {
		t.Errorf("round without a result: %+v", c)
	}
	// A fetch error is reported, not fatal.
	if c := CheckRounds(ctx, node, []Record{{Job: "j", Round: 9, LeafIndex: 1 << 40}}, src, verifier, members)[0]; c.Outcome != OutcomeUnverified || !strings.Contains(c.Error, "bundle of leaf") {
		t.Errorf("missing leaf: %+v", c)
	}
}
