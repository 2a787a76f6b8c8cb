package coordinator

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/crypto"
)

// logBuilder builds a realistic command log for state machine tests.
type logBuilder struct {
	t       testing.TB
	keys    *testKeys
	nodes   []*testNode
	entries [][]byte
	at      time.Time
}

func newLogBuilder(t testing.TB) *logBuilder {
	return &logBuilder{t: t, keys: newTestKeys(t, 1, 7), nodes: newTestNodes(t, 5, 7),
		at: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (b *logBuilder) add(t commandType, body any) {
	b.t.Helper()
	e, err := encodeCommand(t, body)
	if err != nil {
		b.t.Fatal(err)
	}
	b.entries = append(b.entries, e)
	b.at = b.at.Add(time.Second)
}

func (b *logBuilder) update(n *testNode, job string, round uint64, base Hash, vals []float64) *addUpdateCmd {
	b.t.Helper()
	upd := crypto.EncodeUpdate(vals, crypto.Float32)
	stmt := &crypto.Statement{Origin: b.keys.origin, JobID: job, Round: round, NodeID: n.id, BaseModelHash: base,
		UpdateHash: sha256Sum(upd), SampleCount: 10, Time: b.at}
	sb, err := stmt.MarshalBinary()
	if err != nil {
		b.t.Fatal(err)
	}
	return &addUpdateCmd{Job: job, Round: round, Node: n.id, BaseHash: base, UpdateHash: stmt.UpdateHash, Samples: 10,
		Statement: sb, Signature: crypto.SignStatement(n.key, sb), Sealed: []byte("sealed:" + n.id), AcceptedAt: b.at}
}

// standardLog: members, nodes, a job with one closed round, a checkpoint,
// an open round with updates, a duplicate, a revocation and a second job
// stopped mid-round.
func standardLog(t testing.TB) *logBuilder {
	b := newLogBuilder(t)
	b.add(cmdRegisterMember, &registerMemberCmd{Member: Member{ID: "c0", RaftAddr: "r0", QUICAddr: "q0", HTTPAddr: "h0", PublicKey: b.keys.coords[0].PublicKey()}})
	for _, n := range b.nodes {
		b.add(cmdEnrollNode, &enrollNodeCmd{ID: n.id, PublicKey: n.pub(), At: b.at})
	}
	spec := testSpec("alpha", 3, 2, 3)
	spec.InitialModel = Params{0.25, -1, 3}
	b.add(cmdCreateJob, &createJobCmd{Spec: spec, At: b.at})
	base := ModelHash(spec.InitialModel)
	b.add(cmdOpenRound, &openRoundCmd{Job: "alpha", Round: 1, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	for i, n := range b.nodes[:3] {
		b.add(cmdAddUpdate, b.update(n, "alpha", 1, base, []float64{float64(i), 1, 2}))
	}
	b.add(cmdAddUpdate, b.update(b.nodes[0], "alpha", 1, base, []float64{9, 9, 9})) // duplicate: rejected
	b.add(cmdSealRound, &sealRoundCmd{Job: "alpha", Round: 1, At: b.at})
	model := Params{1.25, 0, 4}
	score := 1.5
	b.add(cmdCloseRound, &closeRoundCmd{Job: "alpha", Round: 1, Updates: 3,
		Outcomes: []updateOutcome{{Used: true, Score: &score}, {Used: true}, {Reason: "far from the others"}},
		Model:    model, Result: RoundResult{ModelVersion: 1, ModelHash: ModelHash(model), Rule: "krum", Used: 2, Rejected: 1}, At: b.at})
	note, err := audit.SignCheckpoint(b.keys.signer, b.keys.origin, 3, mustRoot(t, b, 3))
	if err != nil {
		t.Fatal(err)
	}
	b.add(cmdCheckpoint, &checkpointCmd{Note: note})
	b.add(cmdOpenRound, &openRoundCmd{Job: "alpha", Round: 2, BaseVersion: 1, BaseHash: ModelHash(model), OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	b.add(cmdAddUpdate, b.update(b.nodes[3], "alpha", 2, ModelHash(model), []float64{1, 1, 1}))
	b.add(cmdRevokeNode, &revokeNodeCmd{ID: b.nodes[3].id, At: b.at})
	b.add(cmdCreateJob, &createJobCmd{Spec: testSpec("beta", 2, 1, 1), At: b.at})
	b.add(cmdOpenRound, &openRoundCmd{Job: "beta", Round: 1, BaseHash: ModelHash(make(Params, 2)), OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	b.add(cmdStopJob, &stopJobCmd{ID: "beta", Reason: "operator", At: b.at})
	return b
}

// mustRoot replays the log so far into a scratch FSM to get the audit
// root at size.
func mustRoot(t testing.TB, b *logBuilder, size uint64) []byte {
	t.Helper()
	f := replay(t, b.keys, b.entries)
	root, err := f.treeRoot(size)
	if err != nil {
		t.Fatal(err)
	}
	return root[:]
}

func replay(t testing.TB, k *testKeys, entries [][]byte) *fsm {
	t.Helper()
	f, err := newFSM(k.origin, k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: e})
	}
	return f
}

func snapshotBytes(t testing.TB, f *fsm) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return s.(*fsmSnapshot).data
}

func TestFSMApplyResults(t *testing.T) {
	b := standardLog(t)
	f, err := newFSM(b.keys.origin, b.keys.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	var results []*applyResult
	for i, e := range b.entries {
		results = append(results, f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: e}).(*applyResult))
	}
	// Entry 12 is the duplicate: rejected with the first ack (entry 9).
	const dupAt = 11
	var dup *DuplicateError
	if !errors.As(results[dupAt].err, &dup) || dup.Original.LogIndex != 9 || dup.Original.LeafIndex != 0 {
		t.Fatalf("duplicate entry: %v", results[dupAt].err)
	}
	for i, r := range results {
		if i != dupAt && r.err != nil {
			t.Fatalf("entry %d: %v", i+1, r.err)
		}
	}
	if got := results[dupAt-1].ack; got != (Ack{Job: "alpha", Round: 1, Node: "n2", LogIndex: 11, LeafIndex: 2}) {
		t.Fatalf("ack %+v", got)
	}
	r1, err := f.round("alpha", 1, true)
	if err != nil {
		t.Fatal(err)
	}
	if r1.State != RoundClosed || len(r1.Updates) != 3 || r1.Updates[0].Sealed != nil || !r1.Updates[1].Used ||
		r1.Updates[2].Used || r1.Updates[2].Reason != "far from the others" || *r1.Updates[0].Score != 1.5 {
		t.Fatalf("round 1: %+v", r1)
	}
	r2, _ := f.round("alpha", 2, true)
	if r2.State != RoundOpen || len(r2.Updates) != 1 || string(r2.Updates[0].Sealed) != "sealed:n3" {
		t.Fatalf("round 2: %+v", r2)
	}
	if j, _ := f.job("beta"); j.State != JobStopped || j.Failed != 1 {
		t.Fatalf("beta: %+v", j)
	}
	if rb, _ := f.round("beta", 1, false); rb.State != RoundFailed || rb.FailReason != "job stopped: operator" {
		t.Fatalf("beta round: %+v", rb)
	}
	if _, err := f.nodeKey("n3"); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked node key: %v", err)
	}
	if m, err := f.model("alpha", 1); err != nil || m.Params[0] != 1.25 {
		t.Fatalf("model: %+v %v", m, err)
	}
	if cp, err := f.latestCheckpoint(); err != nil || cp.Size != 3 {
		t.Fatalf("checkpoint: %+v %v", cp, err)
	}
	if f.treeSize() != 4 {
		t.Fatalf("audit size %d, want 4", f.treeSize())
	}
}

// TestFSMDeterminism: two replicas fed the same log end byte-identical, and
// a snapshot restored into a third gives the same bytes again.
func TestFSMDeterminism(t *testing.T) {
	b := standardLog(t)
	a := snapshotBytes(t, replay(t, b.keys, b.entries))
	c := snapshotBytes(t, replay(t, b.keys, b.entries))
	if !bytes.Equal(a, c) {
		t.Fatal("two replicas of the same log differ")
	}
	golden := filepath.Join("testdata", "standard.snapshot")
	if os.Getenv("MFN_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, a, 0o644); err != nil {
			t.Fatal(err)
		}
		writeCorpus(t, "FuzzApply", b.entries)
		writeCorpus(t, "FuzzRestore", [][]byte{a})
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with MFN_UPDATE_GOLDEN=1 to create)", err)
	}
	if !bytes.Equal(a, want) {
		t.Fatal("snapshot of the standard log differs from testdata/standard.snapshot: the state encoding changed (bump snapshotVersion and regenerate)")
	}
}

func TestSnapshotRestore(t *testing.T) {
	b := standardLog(t)
	src := replay(t, b.keys, b.entries)
	snap := snapshotBytes(t, src)
	dst, err := newFSM(b.keys.origin, b.keys.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if got := snapshotBytes(t, dst); !bytes.Equal(got, snap) {
		t.Fatal("restored state snapshots differently")
	}
	// The restored state keeps working: the per-round node index is
	// rebuilt, so a duplicate is still caught.
	dup := b.update(b.nodes[1], "alpha", 1, mustModelHash(t, dst, "alpha", 0), []float64{2, 2, 2})
	e, _ := encodeCommand(cmdAddUpdate, dup)
	res := dst.Apply(&raft.Log{Index: 100, Type: raft.LogCommand, Data: e}).(*applyResult)
	if !errors.Is(res.err, ErrDuplicate) {
		t.Fatalf("duplicate after restore: %v", res.err)
	}
	if bun, err := dst.bundle(1); err != nil || bun.LeafIndex != 1 {
		t.Fatalf("bundle after restore: %v", err)
	}

	bad := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"magic", []byte("NOTSNAP1{}")},
		{"version", append([]byte(snapshotMagic), 9, '{', '}')},
		{"truncated", snap[:len(snap)/2]},
		{"unknown field", append([]byte(snapshotMagic+"\x01"), []byte(`{"bogus":1}`)...)},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			f, _ := newFSM(b.keys.origin, b.keys.verifier, nil)
			if err := f.Restore(io.NopCloser(bytes.NewReader(c.data))); err == nil {
				t.Fatal("restore accepted a bad snapshot")
			}
		})
	}
	t.Run("other cluster", func(t *testing.T) {
		k := newTestKeys(t, 1, 8)
		f, _ := newFSM("mfn.test/other", k.verifier, nil)
		if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err == nil {
			t.Fatal("restore accepted another cluster's snapshot")
		}
	})
}

func mustModelHash(t testing.TB, f *fsm, job string, v uint64) Hash {
	t.Helper()
	m, err := f.model(job, v)
	if err != nil {
		t.Fatal(err)
	}
	return m.Hash
}

func TestFSMRejections(t *testing.T) {
	b := standardLog(t)
	base := mustModelHash(t, replay(t, b.keys, b.entries), "alpha", 1)
	upd := b.update(b.nodes[1], "alpha", 2, base, []float64{1, 2, 3})
	mislabeled := *upd
	mislabeled.Node = b.nodes[2].id
	cases := []struct {
		name string
		t    commandType
		body any
		want error
	}{
		{"open out of order", cmdOpenRound, &openRoundCmd{Job: "alpha", Round: 5, BaseVersion: 1, BaseHash: base}, ErrStale},
		{"open on stale base", cmdOpenRound, &openRoundCmd{Job: "alpha", Round: 3, BaseVersion: 0}, ErrStale},
		{"update to a closed round", cmdAddUpdate, b.update(b.nodes[4], "alpha", 1, base, []float64{1, 2, 3}), ErrRoundClosed},
		{"update on the wrong base", cmdAddUpdate, b.update(b.nodes[1], "alpha", 2, Hash{7}, []float64{1, 2, 3}), ErrBaseMismatch},
		{"update from a revoked node", cmdAddUpdate, b.update(b.nodes[3], "alpha", 3, base, []float64{1, 2, 3}), ErrRevoked},
		{"update whose statement names another node", cmdAddUpdate, &mislabeled, ErrBadUpdate},
		{"close a round that is open", cmdCloseRound, &closeRoundCmd{Job: "alpha", Round: 2, Updates: 1}, ErrStale},
		{"fail an ended round", cmdFailRound, &failRoundCmd{Job: "alpha", Round: 1, Reason: "x"}, ErrStale},
		{"job exists", cmdCreateJob, &createJobCmd{Spec: testSpec("alpha", 3, 1, 1)}, ErrExists},
		{"invalid job", cmdCreateJob, &createJobCmd{Spec: testSpec("gamma", 0, 1, 1)}, ErrInvalid},
		{"enroll with another key", cmdEnrollNode, &enrollNodeCmd{ID: "n0", PublicKey: b.nodes[1].pub()}, ErrExists},
		{"enroll a short key", cmdEnrollNode, &enrollNodeCmd{ID: "n9", PublicKey: []byte{1}}, ErrInvalid},
		{"checkpoint rollback", cmdCheckpoint, &checkpointCmd{Note: mustNote(t, b, 1)}, ErrStale},
		{"checkpoint not signed by the log key", cmdCheckpoint, &checkpointCmd{Note: []byte("mfn.test/cluster\n4\nAAAA\n")}, ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := replay(t, b.keys, b.entries)
			before := snapshotBytes(t, f)
			e, err := encodeCommand(c.t, c.body)
			if err != nil {
				t.Fatal(err)
			}
			res := f.Apply(&raft.Log{Index: 1000, Type: raft.LogCommand, Data: e}).(*applyResult)
			if !errors.Is(res.err, c.want) {
				t.Fatalf("got %v, want %v", res.err, c.want)
			}
			// A rejected command changes nothing but the applied index.
			f.applied = uint64(len(b.entries))
			if !bytes.Equal(before, snapshotBytes(t, f)) {
				t.Fatal("a rejected command changed the state")
			}
		})
	}
}

// Replicas do not verify node signatures again: an add-update entry is
// written only by a leader whose Opener verified the signature, so the
// FSM applies an entry with a bad one (the contract of
// audit.Log.AppendTrusted) and leaves its detection to the offline audit,
// which verifies every leaf's signature.
func TestFSMTrustsLeaderVerifiedSignature(t *testing.T) {
	b := standardLog(t)
	base := mustModelHash(t, replay(t, b.keys, b.entries), "alpha", 1)
	upd := b.update(b.nodes[1], "alpha", 2, base, []float64{1, 2, 3})
	badSig := *upd
	badSig.Signature = bytes.Clone(upd.Signature)
	badSig.Signature[0] ^= 1
	f := replay(t, b.keys, b.entries)
	e, err := encodeCommand(cmdAddUpdate, &badSig)
	if err != nil {
		t.Fatal(err)
	}
	res := f.Apply(&raft.Log{Index: 1000, Type: raft.LogCommand, Data: e}).(*applyResult)
	if res.err != nil {
		t.Fatalf("apply: %v", res.err)
	}
	n := f.log.Size()
	enc, err := f.log.Leaf(n - 1)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := audit.ParseLeaf(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.Verify(); !errors.Is(err, audit.ErrBadNodeSignature) {
		t.Fatalf("offline verification of the leaf: %v, want ErrBadNodeSignature", err)
	}
}

// writeCorpus stores seed inputs in testdata/fuzz/NAME in the go test
// fuzz corpus format.
func writeCorpus(t *testing.T, name string, inputs [][]byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, in := range inputs {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", in)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func mustNote(t testing.TB, b *logBuilder, size uint64) []byte {
	t.Helper()
	n, err := audit.SignCheckpoint(b.keys.signer, b.keys.origin, size, mustRoot(t, b, size))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDecodeCommand(t *testing.T) {
	good, _ := encodeCommand(cmdRevokeNode, &revokeNodeCmd{ID: "n1"})
	typ, body, err := decodeCommand(good)
	if err != nil || typ != cmdRevokeNode || body.(*revokeNodeCmd).ID != "n1" {
		t.Fatalf("round trip: %v %v %v", typ, body, err)
	}
	b := newLogBuilder(t)
	up := b.update(b.nodes[0], "job", 3, Hash{1}, []float64{1, 2})
	upBytes, err := encodeCommand(cmdAddUpdate, up)
	if err != nil {
		t.Fatal(err)
	}
	_, decoded, err := decodeCommand(upBytes)
	if err != nil {
		t.Fatal(err)
	}
	if d := decoded.(*addUpdateCmd); d.Job != up.Job || d.Round != 3 || d.Node != up.Node || d.BaseHash != up.BaseHash ||
		d.UpdateHash != up.UpdateHash || d.Samples != up.Samples || !bytes.Equal(d.Statement, up.Statement) ||
		!bytes.Equal(d.Signature, up.Signature) || !bytes.Equal(d.Sealed, up.Sealed) || !d.AcceptedAt.Equal(up.AcceptedAt) {
		t.Fatalf("add-update round trip: %+v", d)
	}
	bad := map[string][]byte{
		"add-update truncated": upBytes[:len(upBytes)-1],
		"add-update trailing":  append(bytes.Clone(upBytes), 0),
		"add-update huge len":  append([]byte{commandVersion, byte(cmdAddUpdate), 0xff, 0xff}, upBytes[4:]...),
		"empty":                nil,
		"short":                {commandVersion},
		"version":              append([]byte{9}, good[1:]...),
		"unknown type":         append([]byte{commandVersion, 200}, good[2:]...),
		"unknown field":        append([]byte{commandVersion, byte(cmdRevokeNode)}, []byte(`{"id":"n1","x":1}`)...),
		"trailing":             append(bytes.Clone(good), []byte(`{}`)...),
		"not json":             {commandVersion, byte(cmdRevokeNode), 0xff},
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			if _, _, err := decodeCommand(b); !errors.Is(err, ErrMalformedCommand) {
				t.Fatalf("got %v, want ErrMalformedCommand", err)
			}
		})
	}
}

// FuzzApply feeds arbitrary entries to a state machine that holds the
// standard state: nothing may panic, and a rejected entry leaves the state
// as it was.
func FuzzApply(f *testing.F) {
	b := standardLog(f)
	for _, e := range b.entries {
		f.Add(e)
	}
	for _, c := range []*deleteJobCmd{{ID: "alpha", Archive: true}, {ID: "beta"}} {
		e, err := encodeCommand(cmdDeleteJob, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e)
	}
	for _, a := range []*Attestation{
		{Job: "alpha", Round: 1, Member: "c0", Checkpoint: 3, Cosignature: []byte("— c0 AAAA\n")},
		{Job: "alpha", Round: 1, Member: "c0", Dissent: &Dissent{Member: "c0", Reason: "differs", Signature: make([]byte, 64)}},
	} {
		e, err := encodeCommand(cmdAttest, a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e)
	}
	if e, err := encodeCommand(cmdCloseRound, &closeRoundCmd{Job: "alpha", Round: 1, ResultLeaf: []byte{0, 1, 1, 0}}); err == nil {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := replay(t, b.keys, b.entries)
		before := snapshotBytes(t, m)
		res := m.Apply(&raft.Log{Index: uint64(len(b.entries)), Type: raft.LogCommand, Data: data}).(*applyResult)
		if res.err != nil && !bytes.Equal(before, snapshotBytes(t, m)) {
			t.Fatalf("rejected entry (%v) changed the state", res.err)
		}
	})
}

// FuzzRestore: arbitrary snapshot bytes never panic Restore.
func FuzzRestore(f *testing.F) {
	b := standardLog(f)
	f.Add(snapshotBytes(f, replay(f, b.keys, b.entries)))
	f.Add([]byte(snapshotMagic + "\x01{}"))
	// Every version 2 field: removed members and deleted jobs.
	x := standardLog(f)
	x.add(cmdRegisterMember, &registerMemberCmd{Member: Member{ID: "c1", RaftAddr: "r1", PublicKey: x.nodes[4].pub()}})
	x.add(cmdRemoveMember, &removeMemberCmd{ID: "c1"})
	x.add(cmdDeleteJob, &deleteJobCmd{ID: "beta"})
	f.Add(snapshotBytes(f, replay(f, x.keys, x.entries)))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _ := newFSM(b.keys.origin, b.keys.verifier, nil)
		_ = m.Restore(io.NopCloser(bytes.NewReader(data)))
	})
}

// A default hard deadline (3 × round_deadline) never overflows into the
// past: a round deadline of a century must not fail rounds at once.
func TestHardDeadlineDefaultNoOverflow(t *testing.T) {
	for _, d := range []time.Duration{time.Minute, 97 * 365 * 24 * time.Hour, 100 * 365 * 24 * time.Hour, time.Duration(1<<63 - 1)} {
		s := JobSpec{RoundDeadline: Duration(d)}
		if got := s.hardDeadline(); got < d {
			t.Errorf("round_deadline %v: default hard deadline %v is below it", d, got)
		}
	}
	if got := (JobSpec{RoundDeadline: Duration(time.Minute)}).hardDeadline(); got != 3*time.Minute {
		t.Errorf("round_deadline 1m: hard deadline %v, want 3m", got)
	}
}
