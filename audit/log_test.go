package audit

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/transparency-dev/merkle/proof"
)

func TestNewLogRejects(t *testing.T) {
	t.Parallel()
	_, v := testLogKey(t)
	if _, err := NewLog("", v); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty origin: err %v", err)
	}
	if _, err := NewLog(testOrigin, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("nil verifier: err %v", err)
	}
}

func TestLogAppendChecks(t *testing.T) {
	t.Parallel()
	_, v := testLogKey(t)
	l, err := NewLog(testOrigin, v)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	good, err := SampleLeaf(testOrigin, 0, 4, rng)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := SampleLeaf("mfn.example/other", 1, 4, rng)
	if err != nil {
		t.Fatal(err)
	}
	forged := *good
	forged.Signature = bytes.Clone(good.Signature)
	forged.Signature[0] ^= 1
	if _, err := l.Append(foreign); !errors.Is(err, ErrOriginMismatch) {
		t.Fatalf("foreign origin: err %v", err)
	}
	if _, err := l.Append(&forged); !errors.Is(err, ErrBadNodeSignature) {
		t.Fatalf("forged signature: err %v", err)
	}
	if _, err := l.AppendEncoded([]byte{1, 0}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: err %v", err)
	}
	if l.Size() != 0 || l.Root() != [32]byte(hasher.EmptyRoot()) {
		t.Fatal("rejected appends changed the log")
	}
	enc, _ := good.MarshalBinary()
	for want := range uint64(3) {
		i, err := l.AppendEncoded(enc)
		if err != nil || i != want {
			t.Fatalf("append %d: index %d, err %v", want, i, err)
		}
	}
	got, err := l.Leaf(2)
	if err != nil || !bytes.Equal(got, enc) {
		t.Fatalf("Leaf(2): %v", err)
	}
	got[0] ^= 1 // a copy: the log is unaffected
	if again, _ := l.Leaf(2); !bytes.Equal(again, enc) {
		t.Fatal("Leaf returned an alias of the log's storage")
	}
	if _, err := l.Leaf(3); !errors.Is(err, ErrRange) {
		t.Fatalf("Leaf(3): err %v", err)
	}
}

func TestLogCheckpoints(t *testing.T) {
	t.Parallel()
	s, v := testLogKey(t)
	l := sampleLog(t, 10, 0) // one checkpoint at size 10
	if l.Checkpoints() != 1 {
		t.Fatalf("%d checkpoints", l.Checkpoints())
	}
	root5, _ := l.RootAt(5)
	at5, _ := SignCheckpoint(s, testOrigin, 5, root5[:])
	if _, err := l.AddCheckpoint(at5); !errors.Is(err, ErrRollback) {
		t.Fatalf("smaller checkpoint after size 10: err %v", err)
	}
	root := l.Root()
	beyond, _ := SignCheckpoint(s, testOrigin, 11, root[:])
	if _, err := l.AddCheckpoint(beyond); !errors.Is(err, ErrRange) {
		t.Fatalf("checkpoint beyond the log: err %v", err)
	}
	wrong := root
	wrong[0] ^= 1
	forked, _ := SignCheckpoint(s, testOrigin, 10, wrong[:])
	if _, err := l.AddCheckpoint(forked); !errors.Is(err, ErrRootMismatch) {
		t.Fatalf("wrong root: err %v", err)
	}
	foreign, _ := SignCheckpoint(s, "mfn.example/other", 10, root[:])
	if _, err := l.AddCheckpoint(foreign); !errors.Is(err, ErrOriginMismatch) {
		t.Fatalf("foreign origin: err %v", err)
	}
	otherSigner, _ := logKeyFromSeed(t, testOrigin, 9)
	unsigned, _ := SignCheckpoint(otherSigner, testOrigin, 10, root[:])
	if _, err := l.AddCheckpoint(unsigned); !errors.Is(err, ErrBadCheckpointSignature) {
		t.Fatalf("other key: err %v", err)
	}
	if l.Checkpoints() != 1 {
		t.Fatalf("rejected checkpoints were recorded: %d", l.Checkpoints())
	}
	// A re-signed checkpoint at the same size is fine.
	again, _ := SignCheckpoint(s, testOrigin, 10, root[:])
	if _, err := l.AddCheckpoint(again); err != nil {
		t.Fatal(err)
	}
	msg, cp, err := l.LatestCheckpoint()
	if err != nil || cp.Size != 10 || !bytes.Equal(msg, again) {
		t.Fatalf("latest: %v %+v", err, cp)
	}
	if _, _, err := l.Checkpoint(2); !errors.Is(err, ErrRange) {
		t.Fatalf("Checkpoint(2): err %v", err)
	}
	empty, _ := NewLog(testOrigin, v)
	if _, err := empty.Bundle(0); !errors.Is(err, ErrRange) {
		t.Fatalf("bundle of empty log: err %v", err)
	}
	if _, _, err := empty.LatestCheckpoint(); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("latest of empty log: err %v", err)
	}
}

func TestLogBundleUncovered(t *testing.T) {
	t.Parallel()
	l := sampleLog(t, 6, 4) // checkpoints at 4 and 6
	leaf, err := SampleLeaf(testOrigin, 6, 4, rand.New(rand.NewPCG(3, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(leaf); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Bundle(6); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("leaf after the newest checkpoint: err %v", err)
	}
	if _, err := l.Bundle(5); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotRestore checks that a restored log has the same root, leaves,
// proofs, checkpoints and snapshot bytes, and keeps working.
func TestSnapshotRestore(t *testing.T) {
	t.Parallel()
	s, v := testLogKey(t)
	l := sampleLog(t, 23, 5)
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewLog(testOrigin, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if r.Size() != l.Size() || r.Root() != l.Root() || r.Checkpoints() != l.Checkpoints() {
		t.Fatalf("restored size %d root %x cps %d; want %d %x %d", r.Size(), r.Root(), r.Checkpoints(), l.Size(), l.Root(), l.Checkpoints())
	}
	for size := uint64(1); size <= l.Size(); size++ {
		for i := range size {
			a, _ := l.InclusionProof(i, size)
			b, err := r.InclusionProof(i, size)
			if err != nil || !equalProofs(a, b) {
				t.Fatalf("inclusion %d/%d differs after restore (%v)", i, size, err)
			}
		}
		a, _ := l.ConsistencyProof(size/2, size)
		b, _ := r.ConsistencyProof(size/2, size)
		if !equalProofs(a, b) {
			t.Fatalf("consistency %d→%d differs after restore", size/2, size)
		}
	}
	snap2, _ := r.Snapshot()
	if !bytes.Equal(snap, snap2) {
		t.Fatal("snapshot of the restored log differs")
	}
	// The restored log keeps accepting appends and checkpoints.
	leaf, _ := SampleLeaf(testOrigin, 23, 4, rand.New(rand.NewPCG(5, 5)))
	if _, err := r.Append(leaf); err != nil {
		t.Fatal(err)
	}
	root := r.Root()
	cp, _ := SignCheckpoint(s, testOrigin, r.Size(), root[:])
	if _, err := r.AddCheckpoint(cp); err != nil {
		t.Fatal(err)
	}

	// Restoring into a log of another origin fails and leaves it unchanged.
	other, _ := NewLog("mfn.example/other", v)
	if err := other.Restore(snap); !errors.Is(err, ErrOriginMismatch) {
		t.Fatalf("other origin: err %v", err)
	}
	// Every truncation and every single-bit change fails cleanly (no
	// panic, log unchanged). A flipped bit inside a checkpoint's signature
	// area or a leaf changes the root or the signature check.
	before := r.Root()
	small, _ := sampleLog(t, 4, 2).Snapshot()
	for n := range len(small) {
		if err := r.Restore(small[:n]); err == nil {
			t.Fatalf("snapshot truncated to %d bytes restored", n)
		}
	}
	for i := range len(small) {
		bad := bytes.Clone(small)
		bad[i] ^= 0x01
		if err := r.Restore(bad); err == nil {
			t.Fatalf("snapshot with byte %d flipped restored", i)
		}
	}
	if r.Root() != before {
		t.Fatal("failed restores changed the log")
	}
}

func equalProofs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestDeterminism: two logs fed the same appends and checkpoints give the
// same snapshot bytes; a different seed gives different bytes.
func TestDeterminism(t *testing.T) {
	t.Parallel()
	a, _ := sampleLog(t, 17, 4).Snapshot()
	b, _ := sampleLog(t, 17, 4).Snapshot()
	if !bytes.Equal(a, b) {
		t.Fatal("same appends, different snapshots")
	}
	s, v := testLogKey(t)
	c, err := BuildSampleLog(SampleConfig{Origin: testOrigin, Leaves: 17, CheckpointEvery: 4, Seed: 8}, s, v)
	if err != nil {
		t.Fatal(err)
	}
	cs, _ := c.Snapshot()
	if bytes.Equal(a, cs) {
		t.Fatal("different seeds, same snapshot")
	}
}

// TestBundleEveryLeaf: every leaf's bundle verifies against merkle/proof
// under the newest checkpoint.
func TestBundleEveryLeaf(t *testing.T) {
	t.Parallel()
	_, v := testLogKey(t)
	l := sampleLog(t, 20, 6)
	_, cp, _ := l.LatestCheckpoint()
	for i := range l.Size() {
		b, err := l.Bundle(i)
		if err != nil {
			t.Fatal(err)
		}
		lh := LeafHash(b.Leaf)
		if err := proof.VerifyInclusion(hasher, i, cp.Size, lh[:], b.Inclusion, cp.Root[:]); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
		rep, err := VerifyBundle(b, v, SampleNodeKeys(4))
		if err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
		if rep.LeafIndex != i || rep.Checkpoint.Size != 20 || rep.Leaf.NodeID != SampleNodeID(int(i%4)) {
			t.Fatalf("leaf %d: report %+v", i, rep)
		}
	}
}

// AppendTrusted skips only the node signature: everything else Append
// checks still holds, and the resulting log equals the one Append builds.
func TestLogAppendTrusted(t *testing.T) {
	t.Parallel()
	_, v := testLogKey(t)
	trusted, err := NewLog(testOrigin, v)
	if err != nil {
		t.Fatal(err)
	}
	checked, _ := NewLog(testOrigin, v)
	rng := rand.New(rand.NewPCG(4, 4))
	good, err := SampleLeaf(testOrigin, 0, 4, rng)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := SampleLeaf("mfn.example/other", 1, 4, rng)
	if _, err := trusted.AppendTrusted(foreign); !errors.Is(err, ErrOriginMismatch) {
		t.Fatalf("foreign origin: err %v", err)
	}
	mismatch := *good
	mismatch.JobID = good.JobID + "x"
	if _, err := trusted.AppendTrusted(&mismatch); !errors.Is(err, ErrStatementMismatch) {
		t.Fatalf("statement mismatch: err %v", err)
	}
	garbled := *good
	garbled.Statement = []byte{1, 2, 3}
	if _, err := trusted.AppendTrusted(&garbled); !errors.Is(err, ErrStatementMismatch) {
		t.Fatalf("unparsable statement: err %v", err)
	}
	if trusted.Size() != 0 {
		t.Fatal("rejected appends changed the log")
	}
	for i := range 3 {
		leaf, _ := SampleLeaf(testOrigin, i, 4, rng)
		a, err := trusted.AppendTrusted(leaf)
		if err != nil {
			t.Fatal(err)
		}
		b, err := checked.Append(leaf)
		if err != nil || a != b || a != uint64(i) {
			t.Fatalf("leaf %d: trusted index %d, checked %d, err %v", i, a, b, err)
		}
	}
	if trusted.Root() != checked.Root() {
		t.Fatal("AppendTrusted and Append built different trees")
	}
	// The contract is the caller's: a forged signature is not detected
	// here (Append still refuses it).
	forged := *good
	forged.Signature = bytes.Clone(good.Signature)
	forged.Signature[0] ^= 1
	if _, err := checked.Append(&forged); !errors.Is(err, ErrBadNodeSignature) {
		t.Fatalf("Append of a forged signature: err %v", err)
	}
	if _, err := trusted.AppendTrusted(&forged); err != nil {
		t.Fatalf("AppendTrusted of a forged signature: err %v", err)
	}
}
