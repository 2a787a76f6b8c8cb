package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// exportFS exports l to a temporary directory and loads it into a MapFS so
// each tampering case edits its own copy in memory.
func exportFS(t *testing.T, l *Log) fstest.MapFS {
	t.Helper()
	dir := t.TempDir()
	if err := ExportDir(dir, l); err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(filepath.Join(dir, p))
		m[p] = &fstest.MapFile{Data: data, Mode: 0o644}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func cloneFS(m fstest.MapFS) fstest.MapFS {
	c := fstest.MapFS{}
	for k, v := range m {
		c[k] = &fstest.MapFile{Data: bytes.Clone(v.Data), Mode: v.Mode}
	}
	return c
}

func TestExportVerify(t *testing.T) {
	t.Parallel()
	_, v := testLogKey(t)
	l := sampleLog(t, 20, 6) // checkpoints at 6, 12, 18, 20
	dir := t.TempDir()
	if err := ExportDir(dir, l); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyLogDir(dir, v, SampleNodeKeys(4))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Leaves != 20 || rep.Checkpoints != 4 || rep.Root != l.Root() || rep.Origin != testOrigin || rep.Latest != "checkpoints/000004.note" {
		t.Fatalf("report %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(dir, "leaves", "00000019.leaf")); err != nil {
		t.Fatal(err)
	}
	if err := ExportDir(dir, l); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("export over an existing export: err %v", err)
	}
	empty, _ := NewLog(testOrigin, v)
	if err := ExportDir(t.TempDir(), empty); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("export without checkpoint: err %v", err)
	}
}

// TestExportOnlyCheckpointed: leaves after the newest checkpoint are left
// out, so the export still verifies.
func TestExportOnlyCheckpointed(t *testing.T) {
	t.Parallel()
	_, v := testLogKey(t)
	l := sampleLog(t, 8, 4)
	enc, _ := l.Leaf(0)
	if _, err := l.AppendEncoded(enc); err != nil {
		t.Fatal(err)
	}
	m := exportFS(t, l)
	if _, ok := m[LeafFile(8)]; ok {
		t.Fatal("uncheckpointed leaf exported")
	}
	if _, err := VerifyLogFS(m, v, nil); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyLogDetectsTampering runs every attack of the threat model on a
// 20-leaf export and checks the first failure and what it names.
func TestVerifyLogDetectsTampering(t *testing.T) {
	t.Parallel()
	s, v := testLogKey(t)
	l := sampleLog(t, 20, 5) // checkpoints at 5, 10, 15, 20
	base := exportFS(t, l)
	if _, err := VerifyLogFS(base, v, nil); err != nil {
		t.Fatalf("untouched export: %v", err)
	}
	// A different but validly signed log of another seed provides foreign
	// leaves that verify on their own.
	alt, err := BuildSampleLog(SampleConfig{Origin: testOrigin, Leaves: 20, CheckpointEvery: 5, Seed: 99}, s, v)
	if err != nil {
		t.Fatal(err)
	}
	altLeaf, _ := alt.Leaf(7)
	sign := func(size uint64, root [32]byte) []byte {
		msg, err := SignCheckpoint(s, testOrigin, size, root[:])
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	root := func(log *Log, size uint64) [32]byte {
		r, err := log.RootAt(size)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	shift := func(m fstest.MapFS, from int, delta int) { // renumber leaves >= from by delta
		if delta < 0 {
			for i := from; i < 20; i++ {
				m[LeafFile(uint64(i+delta))] = m[LeafFile(uint64(i))]
			}
			delete(m, LeafFile(uint64(20+delta)))
			return
		}
		for i := 19; i >= from; i-- {
			m[LeafFile(uint64(i+delta))] = m[LeafFile(uint64(i))]
		}
	}
	otherSigner, _ := logKeyFromSeed(t, testOrigin, 42)

	type want struct {
		err  error
		leaf int    // expected LeafError index, or -1
		file string // expected CheckpointError/LayoutError file, or ""
		prev string // expected CheckpointError.Prev, or ""
	}
	cases := []struct {
		name   string
		tamper func(m fstest.MapFS)
		want   want
	}{
		{"change leaf signature byte", func(m fstest.MapFS) {
			d := m[LeafFile(9)].Data
			d[len(d)-30] ^= 1
		}, want{ErrBadNodeSignature, 9, "", ""}},
		{"change leaf round", func(m fstest.MapFS) {
			d := m[LeafFile(3)].Data
			d[1+2+len(testOrigin)+2+len("sample-job")+7] ^= 1 // low byte of round
		}, want{ErrStatementMismatch, 3, "", ""}},
		{"change leaf accept time", func(m fstest.MapFS) {
			d := m[LeafFile(11)].Data
			d[len(d)-1] ^= 1
		}, want{ErrRootMismatch, -1, "checkpoints/000004.note", ""}},
		{"truncate leaf", func(m fstest.MapFS) {
			m[LeafFile(2)].Data = m[LeafFile(2)].Data[:50]
		}, want{ErrMalformed, 2, "", ""}},
		{"drop middle leaf", func(m fstest.MapFS) { delete(m, LeafFile(6)) }, want{ErrLayout, 6, "", ""}},
		{"drop last leaf", func(m fstest.MapFS) { delete(m, LeafFile(19)) }, want{ErrSizeMismatch, -1, "checkpoints/000004.note", ""}},
		{"drop leaf and renumber", func(m fstest.MapFS) { shift(m, 7, -1) }, want{ErrSizeMismatch, -1, "checkpoints/000004.note", ""}},
		{"reorder two leaves", func(m fstest.MapFS) {
			m[LeafFile(4)], m[LeafFile(13)] = m[LeafFile(13)], m[LeafFile(4)]
		}, want{ErrRootMismatch, -1, "checkpoints/000004.note", ""}},
		{"insert leaf and renumber", func(m fstest.MapFS) {
			shift(m, 7, 1)
			m[LeafFile(7)] = &fstest.MapFile{Data: bytes.Clone(altLeaf)}
		}, want{ErrSizeMismatch, -1, "checkpoints/000004.note", ""}},
		{"replace leaf with a validly signed other", func(m fstest.MapFS) {
			m[LeafFile(7)] = &fstest.MapFile{Data: bytes.Clone(altLeaf)}
		}, want{ErrRootMismatch, -1, "checkpoints/000004.note", ""}},
		{"append leaf", func(m fstest.MapFS) {
			m[LeafFile(20)] = &fstest.MapFile{Data: bytes.Clone(altLeaf)}
		}, want{ErrSizeMismatch, -1, "checkpoints/000004.note", ""}},
		{"fork: same size, other root", func(m fstest.MapFS) {
			m[CheckpointFile(5)] = &fstest.MapFile{Data: sign(20, root(alt, 20))}
		}, want{ErrFork, -1, "checkpoints/000005.note", "checkpoints/000004.note"}},
		{"fork: earlier checkpoint not extended", func(m fstest.MapFS) {
			m[CheckpointFile(2)] = &fstest.MapFile{Data: sign(10, root(alt, 10))}
		}, want{ErrInconsistent, -1, "checkpoints/000002.note", "checkpoints/000001.note"}},
		{"fork: whole log replaced after a checkpoint", func(m fstest.MapFS) {
			// Leaves and newest checkpoints from the other log: the leaves
			// match the newest checkpoint, but it does not extend 000001.
			for i := range uint64(20) {
				d, _ := alt.Leaf(i)
				m[LeafFile(i)] = &fstest.MapFile{Data: d}
			}
			for seq := 2; seq <= 4; seq++ {
				d, _, _ := alt.Checkpoint(seq - 1)
				m[CheckpointFile(seq)] = &fstest.MapFile{Data: d}
			}
		}, want{ErrInconsistent, -1, "checkpoints/000002.note", "checkpoints/000001.note"}},
		{"roll back checkpoint", func(m fstest.MapFS) {
			m[CheckpointFile(5)] = &fstest.MapFile{Data: bytes.Clone(m[CheckpointFile(2)].Data)}
		}, want{ErrRollback, -1, "checkpoints/000005.note", "checkpoints/000004.note"}},
		{"roll back log to an older checkpoint", func(m fstest.MapFS) {
			// Drop the newest checkpoint and the leaves it added: still a
			// valid (shorter) log, so this must verify; the rollback is
			// visible only against a checkpoint the auditor already holds.
			delete(m, CheckpointFile(4))
			for i := uint64(15); i < 20; i++ {
				delete(m, LeafFile(i))
			}
		}, want{nil, -1, "", ""}},
		{"checkpoint by another key", func(m fstest.MapFS) {
			r := l.Root()
			msg, _ := SignCheckpoint(otherSigner, testOrigin, 20, r[:])
			m[CheckpointFile(4)] = &fstest.MapFile{Data: msg}
		}, want{ErrBadCheckpointSignature, -1, "checkpoints/000004.note", ""}},
		{"checkpoint edited", func(m fstest.MapFS) {
			m[CheckpointFile(1)].Data = bytes.Replace(m[CheckpointFile(1)].Data, []byte("\n5\n"), []byte("\n6\n"), 1)
		}, want{ErrBadCheckpointSignature, -1, "checkpoints/000001.note", ""}},
		{"checkpoint missing in sequence", func(m fstest.MapFS) { delete(m, CheckpointFile(2)) }, want{ErrLayout, -1, "checkpoints/000002.note", ""}},
		{"no checkpoints", func(m fstest.MapFS) {
			for seq := 1; seq <= 4; seq++ {
				delete(m, CheckpointFile(seq))
			}
			m["checkpoints/README"] = &fstest.MapFile{Data: []byte("x")}
		}, want{ErrLayout, -1, "checkpoints/README", ""}},
		{"stray file among leaves", func(m fstest.MapFS) {
			m["leaves/extra.leaf"] = &fstest.MapFile{Data: []byte("x")}
		}, want{ErrLayout, -1, "leaves/extra.leaf", ""}},
		{"non-canonical leaf name", func(m fstest.MapFS) {
			m["leaves/5.leaf"] = m[LeafFile(5)]
			delete(m, LeafFile(5))
		}, want{ErrLayout, -1, "leaves/5.leaf", ""}},
		{"oversize leaf file", func(m fstest.MapFS) {
			m[LeafFile(1)] = &fstest.MapFile{Data: make([]byte, MaxLeafLen+1)}
		}, want{ErrTooLarge, 1, "", ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := cloneFS(base)
			c.tamper(m)
			_, err := VerifyLogFS(m, v, nil)
			if c.want.err == nil {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			if !errors.Is(err, c.want.err) {
				t.Fatalf("err %v, want %v", err, c.want.err)
			}
			checkNames(t, err, c.want.leaf, c.want.file, c.want.prev)
		})
	}
}

func checkNames(t *testing.T, err error, leaf int, file, prev string) {
	t.Helper()
	var le *LeafError
	var ce *CheckpointError
	var lay *LayoutError
	switch {
	case leaf >= 0:
		if !errors.As(err, &le) || le.Index != uint64(leaf) {
			t.Fatalf("err %v: want a LeafError for leaf %d", err, leaf)
		}
	case errors.As(err, &ce):
		if ce.File != file || ce.Prev != prev {
			t.Fatalf("err %v: names %q after %q, want %q after %q", err, ce.File, ce.Prev, file, prev)
		}
	case errors.As(err, &lay):
		if lay.Path != file {
			t.Fatalf("err %v: names %q, want %q", err, lay.Path, file)
		}
	default:
		t.Fatalf("err %v (%T) is not a typed error", err, err)
	}
}

// TestVerifyLogEveryByte flips each byte of one leaf file in turn: every
// change must be caught (decoding, signature, statement or root).
func TestVerifyLogEveryByte(t *testing.T) {
	t.Parallel()
	_, v := testLogKey(t)
	base := exportFS(t, sampleLog(t, 6, 3))
	name := LeafFile(4)
	for i := range len(base[name].Data) {
		m := cloneFS(base)
		m[name].Data[i] ^= 0x20
		_, err := VerifyLogFS(m, v, nil)
		if err == nil {
			t.Fatalf("byte %d of %s changed, export still verifies", i, name)
		}
		var le *LeafError
		if !(errors.As(err, &le) && le.Index == 4) && !errors.Is(err, ErrRootMismatch) {
			t.Fatalf("byte %d: err %v names neither leaf 4 nor a root mismatch", i, err)
		}
	}
}

// TestRootMismatchNarrowsRange: the message locates the changed leaf
// between the checkpoints it falls between.
func TestRootMismatchNarrowsRange(t *testing.T) {
	t.Parallel()
	_, v := testLogKey(t)
	m := exportFS(t, sampleLog(t, 20, 5))
	d := m[LeafFile(11)].Data
	d[len(d)-1] ^= 1
	_, err := VerifyLogFS(m, v, nil)
	if want := fmt.Sprintf("first disagreement at %s, so leaves in [10, 15)", CheckpointFile(3)); err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("err %v, want it to say %q", err, want)
	}
}

func TestVerifyLogUnknownNode(t *testing.T) {
	t.Parallel()
	_, v := testLogKey(t)
	m := exportFS(t, sampleLog(t, 8, 0))
	keys := SampleNodeKeys(4)
	delete(keys, SampleNodeID(2))
	_, err := VerifyLogFS(m, v, keys)
	var le *LeafError
	if !errors.Is(err, ErrUnknownNode) || !errors.As(err, &le) || le.Index != 2 {
		t.Fatalf("err %v, want ErrUnknownNode at leaf 2", err)
	}
}

// TestVerifySince: a checkpoint seen earlier must be extended by the log.
func TestVerifySince(t *testing.T) {
	t.Parallel()
	s, v := testLogKey(t)
	l := sampleLog(t, 20, 5)
	m := exportFS(t, l)
	// The same seed grows the same log further: its checkpoint at 25 is a
	// genuine later state of this log.
	grown := sampleLog(t, 25, 5)
	alt, err := BuildSampleLog(SampleConfig{Origin: testOrigin, Leaves: 20, CheckpointEvery: 5, Seed: 99}, s, v)
	if err != nil {
		t.Fatal(err)
	}
	own10, _, _ := l.Checkpoint(1)
	alt10, _, _ := alt.Checkpoint(1)
	grown25, _, _ := grown.LatestCheckpoint()
	otherSigner, _ := logKeyFromSeed(t, testOrigin, 77)
	root := l.Root()
	foreign, _ := SignCheckpoint(otherSigner, testOrigin, 20, root[:])
	cases := []struct {
		name  string
		since []byte
		want  error
	}{
		{"earlier own checkpoint", own10, nil},
		{"forked earlier checkpoint", alt10, ErrInconsistent},
		{"log cut back below a seen checkpoint", grown25, ErrRollback},
		{"since by another key", foreign, ErrBadCheckpointSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := VerifyLogFSWith(m, v, VerifyOptions{Since: c.since})
			if c.want == nil {
				if err != nil || rep.Leaves != 20 {
					t.Fatalf("rep %+v, err %v", rep, err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
	// Verification failures of the log itself come first.
	bad := cloneFS(m)
	delete(bad, LeafFile(3))
	if _, err := VerifyLogFSWith(bad, v, VerifyOptions{Since: own10}); !errors.Is(err, ErrLayout) {
		t.Fatalf("err %v, want ErrLayout", err)
	}
}

// TestVerifyEmptyCheckpointRoot: a signed checkpoint of size 0 commits to
// the empty tree, whose root is fixed. Consistency proofs from size 0 are
// empty and check nothing, so a size-0 checkpoint with any other root is a
// signed claim no log can satisfy and must fail, as AddCheckpoint refuses it.
func TestVerifyEmptyCheckpointRoot(t *testing.T) {
	t.Parallel()
	s, v := testLogKey(t)
	l := sampleLog(t, 10, 5)
	m := exportFS(t, l)
	bogus, err := SignCheckpoint(s, testOrigin, 0, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := NewLog(testOrigin, v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.AddCheckpoint(bogus); !errors.Is(err, ErrRootMismatch) {
		t.Fatalf("log accepts the bogus empty checkpoint: err %v", err)
	}
	if _, err := VerifyLogFSWith(m, v, VerifyOptions{Since: bogus}); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("since: err %v, want ErrInconsistent", err)
	}
	empty, err := SignCheckpoint(s, testOrigin, 0, hasher.EmptyRoot())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyLogFSWith(m, v, VerifyOptions{Since: empty}); err != nil {
		t.Fatalf("since the genuine empty checkpoint: %v", err)
	}
	// The same bogus note as the first of the export's checkpoints.
	for _, first := range [][]byte{bogus, empty} {
		shifted := cloneFS(m)
		for i := l.Checkpoints(); i >= 1; i-- {
			shifted[CheckpointFile(i+1)] = shifted[CheckpointFile(i)]
		}
		shifted[CheckpointFile(1)] = &fstest.MapFile{Data: first, Mode: 0o644}
		_, err := VerifyLogFS(shifted, v, nil)
		if bytes.Equal(first, empty) {
			if err != nil {
				t.Fatalf("export led by the genuine empty checkpoint: %v", err)
			}
		} else if !errors.Is(err, ErrInconsistent) {
			t.Fatalf("export led by the bogus empty checkpoint: err %v, want ErrInconsistent", err)
		}
	}
}
