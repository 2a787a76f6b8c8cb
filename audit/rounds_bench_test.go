package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
)

// BenchmarkVerifyLogRounds verifies an exported log of 100 rounds of 16
// updates (1,700 leaves, 100 cosigned checkpoints): with the round checks,
// and the same leaves and notes read as a format-1 log of update leaves
// only would cost (BenchmarkVerifyLogNoResults).
func BenchmarkVerifyLogRounds(b *testing.B) {
	s, v := testLogKey(b)
	l, members, err := BuildSampleRoundsLog(SampleRoundsConfig{Origin: testOrigin, Rounds: 100, Nodes: 16, Seed: 1}, s, v)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "log")
	if err := ExportDirWith(dir, l, ExportOptions{Members: members}); err != nil {
		b.Fatal(err)
	}
	fsys := os.DirFS(dir)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := VerifyLogFSWith(fsys, v, VerifyOptions{})
		if err != nil || rep.Results != 100 {
			b.Fatal(rep, err)
		}
	}
}

// BenchmarkVerifyLogNoResults is the baseline: a sample log of the same
// number of update leaves (1,600) and 100 checkpoints, no results.
func BenchmarkVerifyLogNoResults(b *testing.B) {
	s, v := testLogKey(b)
	l, err := BuildSampleLog(SampleConfig{Origin: testOrigin, Leaves: 1600, Nodes: 16, CheckpointEvery: 16, Seed: 1}, s, v)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "log")
	if err := ExportDir(dir, l); err != nil {
		b.Fatal(err)
	}
	fsys := os.DirFS(dir)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := VerifyLogFSWith(fsys, v, VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplay re-derives a sample round of 16 updates of 100,000
// parameters (krum, f=1): reading the tar archive, opening 16 envelopes,
// aggregating and hashing.
func BenchmarkReplay(b *testing.B) {
	coord, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	_, v := testLogKey(b)
	l, _ := NewLog(testOrigin, v)
	a, err := BuildSampleRoundArchive(SampleArchiveConfig{Dim: 100_000, Nodes: 16, Seed: 1}, coord.Recipient(), l)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteRoundArchive(&buf, a); err != nil {
		b.Fatal(err)
	}
	ids := []age.Identity{coord}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		back, err := ReadRoundArchiveTar(bytes.NewReader(buf.Bytes()), ArchiveLimits{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Replay(back, ids, ArchiveLimits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResultLeafParse decodes a result leaf of 1,000 scored entries.
func BenchmarkResultLeafParse(b *testing.B) {
	r := testResult()
	r.Entries = r.Entries[:0]
	for i := range 1000 {
		e := ResultEntry{LeafIndex: uint64(i), Input: true, Used: i%4 != 0, Score: score(float64(i))}
		if !e.Used {
			e.Reason = "not selected by krum"
		}
		r.Entries = append(r.Entries, e)
	}
	enc, err := r.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResultLeaf(enc); err != nil {
			b.Fatal(err)
		}
	}
}
