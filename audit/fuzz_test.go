package audit

import (
	"bytes"
	"testing"
)

// fuzzSeeds returns valid encodings from a small sample log: leaves, a
// bundle, checkpoint notes and a snapshot.
func fuzzSeeds(f *testing.F) (leaves, bundles, notes [][]byte, snapshot []byte) {
	l := sampleLog(f, 5, 2)
	for i := range l.Size() {
		enc, _ := l.Leaf(i)
		leaves = append(leaves, enc)
		b, err := l.Bundle(i)
		if err != nil {
			f.Fatal(err)
		}
		data, _ := b.Marshal()
		bundles = append(bundles, data)
	}
	for i := range l.Checkpoints() {
		msg, _, _ := l.Checkpoint(i)
		notes = append(notes, msg)
	}
	snapshot, _ = l.Snapshot()
	return leaves, bundles, notes, snapshot
}

// FuzzLeaf: the decoder never panics, accepts only canonical encodings
// (decode then encode gives the input back), and Verify never panics.
func FuzzLeaf(f *testing.F) {
	leaves, _, _, _ := fuzzSeeds(f)
	for _, l := range leaves {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLeaf(data)
		if err != nil {
			return
		}
		again, err := l.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded leaf does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("non-canonical encoding accepted:\n in %x\nout %x", data, again)
		}
		_ = l.Verify()
	})
}

// FuzzBundle: parsing never panics, an accepted bundle re-encodes to a
// fixed point, and verification of anything parsed never panics and never
// succeeds for bytes that are not a bundle the test log produced.
func FuzzBundle(f *testing.F) {
	_, bundles, _, _ := fuzzSeeds(f)
	for _, b := range bundles {
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"leaf":"","leaf_index":0,"inclusion":[],"checkpoint":""}`))
	_, v := testLogKey(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		enc, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b2, err := ParseBundle(enc)
		if err != nil {
			t.Fatalf("re-encoded bundle does not parse: %v", err)
		}
		enc2, _ := b2.Marshal()
		if !bytes.Equal(enc, enc2) {
			t.Fatal("bundle encoding is not a fixed point")
		}
		if _, err := VerifyBundle(b, v, nil); err == nil {
			// Whatever verifies must be a genuine bundle: its leaf verifies
			// and is signed by a sample node.
			l, _ := ParseLeaf(b.Leaf)
			if !SampleNodeKeys(4)[l.NodeID].Equal(l.NodeKey) {
				t.Fatalf("verified bundle with a leaf from outside the test log")
			}
		}
	})
}

// FuzzCheckpoint: opening a note and parsing a body never panic, and an
// accepted body re-encodes to exactly its input.
func FuzzCheckpoint(f *testing.F) {
	_, _, notes, _ := fuzzSeeds(f)
	for _, n := range notes {
		f.Add(n)
		if i := bytes.Index(n, []byte("\n\n")); i >= 0 {
			f.Add(n[:i+1]) // the bare body
		}
	}
	_, v := testLogKey(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if cp, err := ParseCheckpoint(data, v); err == nil && cp.Origin != testOrigin {
			t.Fatalf("a checkpoint signed by the test key names origin %q", cp.Origin)
		}
		cp, err := ParseCheckpointBody(data)
		if err != nil {
			return
		}
		body, err := cp.Body()
		if err != nil {
			t.Fatalf("parsed checkpoint does not encode: %v", err)
		}
		if !bytes.Equal(body, data) {
			t.Fatalf("non-canonical body accepted:\n in %q\nout %q", data, body)
		}
	})
}

// FuzzSnapshot: Restore never panics, leaves the log unchanged on error,
// and an accepted snapshot is reproduced exactly by Snapshot.
func FuzzSnapshot(f *testing.F) {
	_, _, _, snap := fuzzSeeds(f)
	f.Add(snap)
	_, v := testLogKey(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		l, _ := NewLog(testOrigin, v)
		if err := l.Restore(data); err != nil {
			if l.Size() != 0 || l.Checkpoints() != 0 {
				t.Fatal("failed restore changed the log")
			}
			return
		}
		again, _ := l.Snapshot()
		if !bytes.Equal(again, data) {
			t.Fatal("restored log snapshots differently")
		}
	})
}
