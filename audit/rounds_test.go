package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// roundsFixture is a sample rounds log taken apart: 3 rounds of 4 updates,
// results at leaves 4, 9 and 14, checkpoints at sizes 5, 10 and 15.
type roundsFixture struct {
	leaves  [][]byte
	sizes   []uint64
	members MemberKeys
}

func newRoundsFixture(t *testing.T) *roundsFixture {
	t.Helper()
	s, v := testLogKey(t)
	l, members, err := BuildSampleRoundsLog(SampleRoundsConfig{Origin: testOrigin, Rounds: 3, Seed: 5}, s, v)
	if err != nil {
		t.Fatal(err)
	}
	f := &roundsFixture{members: members}
	for i := range l.Size() {
		enc, _ := l.Leaf(i)
		f.leaves = append(f.leaves, enc)
	}
	for i := range l.Checkpoints() {
		_, cp, _ := l.Checkpoint(i)
		f.sizes = append(f.sizes, cp.Size)
	}
	return f
}

// result decodes result leaf i.
func (f *roundsFixture) result(t *testing.T, i int) *ResultLeaf {
	t.Helper()
	r, err := ParseResultLeaf(f.leaves[i])
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// setResult re-encodes r as leaf i (bypassing AppendResult's checks).
func (f *roundsFixture) setResult(t *testing.T, i int, r *ResultLeaf) {
	t.Helper()
	enc, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f.leaves[i] = enc
}

// notes signs a checkpoint at every size with the log key and has the
// members cosigners(k) cosign checkpoint k.
func (f *roundsFixture) notes(t *testing.T, cosigners func(k int) []int) [][]byte {
	t.Helper()
	s, v := testLogKey(t)
	tr := newTree()
	var out [][]byte
	for _, enc := range f.leaves {
		tr.append(LeafHash(enc))
	}
	for k, size := range f.sizes {
		root, err := tr.rootAt(size)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := SignCheckpoint(s, testOrigin, size, root[:])
		if err != nil {
			t.Fatal(err)
		}
		var lines [][]byte
		for _, m := range cosigners(k) {
			line, err := CosignCheckpoint(msg, v, SampleMemberID(m), SampleMemberKey(m), cosignTime)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, line)
		}
		if msg, err = AddCosignatures(msg, lines...); err != nil {
			t.Fatal(err)
		}
		out = append(out, msg)
	}
	return out
}

func all(int) []int { return []int{0, 1, 2} }

// write exports leaves and notes (version 2, with members.keys).
func (f *roundsFixture) write(t *testing.T, notes [][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{leavesDir, checkpointsDir} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, enc := range f.leaves {
		must(t, os.WriteFile(filepath.Join(dir, LeafFile(uint64(i))), enc, 0o644))
	}
	for i, n := range notes {
		must(t, os.WriteFile(filepath.Join(dir, CheckpointFile(i+1)), n, 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, formatFile), []byte(formatV2), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, membersFile), f.members.Format(), 0o644))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func verifyDir(t *testing.T, dir string, opts VerifyOptions) (*LogReport, error) {
	t.Helper()
	_, v := testLogKey(t)
	return VerifyLogFSWith(os.DirFS(dir), v, opts)
}

// wantRound checks that err is a *RoundError for round wrapping want.
func wantRound(t *testing.T, err error, round uint64, want error) {
	t.Helper()
	var re *RoundError
	if !errors.As(err, &re) || !errors.Is(err, want) {
		t.Fatalf("err = %v, want a round error wrapping %v", err, want)
	}
	if re.Round != round || re.Job != "sample-job" {
		t.Fatalf("failure names job %s round %d, want round %d: %v", re.Job, re.Round, round, err)
	}
	if !strings.Contains(err.Error(), "round ") {
		t.Fatalf("message does not name the round: %v", err)
	}
}

func TestVerifyRoundsOK(t *testing.T) {
	t.Parallel()
	s, v := testLogKey(t)
	l, members, err := BuildSampleRoundsLog(SampleRoundsConfig{Origin: testOrigin, Rounds: 3, Seed: 5}, s, v)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "log")
	must(t, ExportDirWith(dir, l, ExportOptions{Members: members}))
	rep, err := VerifyLogFSWith(os.DirFS(dir), v, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Results != 3 || rep.Leaves != 15 || rep.Checkpoints != 3 {
		t.Fatalf("report %+v, want 3 results, 15 leaves, 3 checkpoints", rep)
	}
	// The same log restored from a snapshot holds the result leaves and
	// the cosigned notes.
	snap, _ := l.Snapshot()
	l2, _ := NewLog(testOrigin, v)
	must(t, l2.Restore(snap))
	if l2.Root() != l.Root() {
		t.Fatal("restored root differs")
	}
	n1, _, _ := l.LatestCheckpoint()
	n2, _, _ := l2.LatestCheckpoint()
	if !bytes.Equal(n1, n2) || bytes.Count(n1, []byte("\n— coord-")) != 3 {
		t.Fatalf("restored note lost cosignatures:\n%s", n2)
	}
	// A fixture rebuilt from parts verifies too (the helpers are sound).
	f := newRoundsFixture(t)
	if _, err := verifyDir(t, f.write(t, f.notes(t, all)), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	// Members from the option override members.keys.
	if _, err := verifyDir(t, f.write(t, f.notes(t, all)), VerifyOptions{Members: SampleMemberKeys(5)}); err != nil {
		t.Fatalf("3 of 5 members is a quorum: %v", err)
	}
}

func TestVerifyRoundsFailures(t *testing.T) {
	t.Parallel()
	t.Run("missing cosignature", func(t *testing.T) {
		f := newRoundsFixture(t)
		// Round 3's checkpoint has one cosignature of three; rounds 1 and
		// 2 are still covered by their own checkpoints.
		notes := f.notes(t, func(k int) []int {
			if k == 2 {
				return []int{1}
			}
			return all(k)
		})
		_, err := verifyDir(t, f.write(t, notes), VerifyOptions{})
		wantRound(t, err, 3, ErrQuorum)
	})
	t.Run("no member keys", func(t *testing.T) {
		f := newRoundsFixture(t)
		dir := f.write(t, f.notes(t, all))
		must(t, os.Remove(filepath.Join(dir, membersFile)))
		_, err := verifyDir(t, dir, VerifyOptions{})
		wantRound(t, err, 1, ErrQuorum)
	})
	t.Run("update used twice", func(t *testing.T) {
		f := newRoundsFixture(t)
		// Round 3's result also names round 2's... no: a second result of
		// round 2, appended in round 3's place, reuses round 2's updates.
		r2 := f.result(t, 9)
		r2.BaseHash = f.result(t, 9).NewHash
		f.setResult(t, 14, r2)
		_, err := verifyDir(t, f.write(t, f.notes(t, all)), VerifyOptions{})
		wantRound(t, err, 2, ErrDoubleUse)
		if !strings.Contains(err.Error(), "leaf 14") {
			t.Errorf("does not name the second result: %v", err)
		}
	})
	t.Run("update of another round", func(t *testing.T) {
		f := newRoundsFixture(t)
		r3 := f.result(t, 14)
		r3.Entries[1].LeafIndex = 6 // round 2's update
		f.setResult(t, 14, r3)
		_, err := verifyDir(t, f.write(t, f.notes(t, all)), VerifyOptions{})
		wantRound(t, err, 3, ErrResultMismatch)
	})
	t.Run("update not in the log", func(t *testing.T) {
		f := newRoundsFixture(t)
		r2 := f.result(t, 9)
		r2.Entries[0].LeafIndex = 1000
		f.setResult(t, 9, r2)
		_, err := verifyDir(t, f.write(t, f.notes(t, all)), VerifyOptions{})
		wantRound(t, err, 2, ErrResultMismatch)
	})
	t.Run("result leaf named as update", func(t *testing.T) {
		f := newRoundsFixture(t)
		r2 := f.result(t, 9)
		r2.Entries[0].LeafIndex = 4 // round 1's result
		f.setResult(t, 9, r2)
		_, err := verifyDir(t, f.write(t, f.notes(t, all)), VerifyOptions{})
		wantRound(t, err, 2, ErrResultMismatch)
	})
	t.Run("broken base chain", func(t *testing.T) {
		f := newRoundsFixture(t)
		r2 := f.result(t, 9)
		r2.BaseHash[0] ^= 1
		f.setResult(t, 9, r2)
		_, err := verifyDir(t, f.write(t, f.notes(t, all)), VerifyOptions{})
		wantRound(t, err, 2, ErrBaseChain)
	})
	t.Run("tampered result, checkpoints kept", func(t *testing.T) {
		f := newRoundsFixture(t)
		notes := f.notes(t, all)
		r2 := f.result(t, 9)
		r2.NewHash[0] ^= 1
		f.setResult(t, 9, r2)
		_, err := verifyDir(t, f.write(t, notes), VerifyOptions{})
		var ce *CheckpointError
		if !errors.As(err, &ce) || !errors.Is(err, ErrRootMismatch) || !strings.Contains(err.Error(), "job sample-job round 2 (leaf 9)") {
			t.Fatalf("err = %v, want a root mismatch naming round 2", err)
		}
		if strings.Contains(err.Error(), "round 1 ") {
			t.Errorf("names an untouched round: %v", err)
		}
	})
	t.Run("tampered result, re-signed, cosignatures copied", func(t *testing.T) {
		f := newRoundsFixture(t)
		honest := f.notes(t, all)
		r2 := f.result(t, 9)
		r2.Entries[1].Score = score(-1)
		f.setResult(t, 9, r2)
		forged := f.notes(t, func(int) []int { return nil })
		for k := 1; k < 3; k++ {
			lines := honest[k][bytes.Index(honest[k], []byte("\n— coord-"))+1:]
			forged[k] = append(forged[k], lines...)
		}
		_, err := verifyDir(t, f.write(t, forged), VerifyOptions{})
		wantRound(t, err, 2, ErrBadCosignature)
	})
	t.Run("tampered result, re-signed, cosignatures dropped", func(t *testing.T) {
		f := newRoundsFixture(t)
		r2 := f.result(t, 9)
		r2.Entries[0].Reason = "other reason"
		f.setResult(t, 9, r2)
		notes := f.notes(t, func(k int) []int {
			if k == 0 {
				return all(k)
			}
			return nil
		})
		_, err := verifyDir(t, f.write(t, notes), VerifyOptions{})
		wantRound(t, err, 2, ErrQuorum)
	})
	t.Run("unknown format", func(t *testing.T) {
		f := newRoundsFixture(t)
		dir := f.write(t, f.notes(t, all))
		must(t, os.WriteFile(filepath.Join(dir, formatFile), []byte("mfn-audit-export 3\n"), 0o644))
		if _, err := verifyDir(t, dir, VerifyOptions{}); !errors.Is(err, ErrVersion) {
			t.Fatalf("err = %v, want ErrVersion", err)
		}
	})
}

func TestAppendResultChecks(t *testing.T) {
	t.Parallel()
	f := newRoundsFixture(t)
	s, v := testLogKey(t)
	l, _, err := BuildSampleRoundsLog(SampleRoundsConfig{Origin: testOrigin, Rounds: 1, Seed: 5}, s, v)
	if err != nil {
		t.Fatal(err)
	}
	r := f.result(t, 4)
	r.Round = 2
	if _, err := l.AppendResult(r); !errors.Is(err, ErrResultMismatch) {
		t.Errorf("other round: %v", err)
	}
	r = f.result(t, 4)
	r.Entries[0].LeafIndex = 99
	if _, err := l.AppendResult(r); !errors.Is(err, ErrRange) {
		t.Errorf("beyond the log: %v", err)
	}
	r = f.result(t, 4)
	r.Origin = "other"
	if _, err := l.AppendResult(r); !errors.Is(err, ErrOriginMismatch) {
		t.Errorf("origin: %v", err)
	}
	// Cosign refuses a line by no member, and a bad one.
	msg, _, _ := l.LatestCheckpoint()
	line, _ := CosignCheckpoint(msg, v, "stranger", SampleMemberKey(7), cosignTime)
	if err := l.Cosign(0, SampleMemberKeys(3), line); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("stranger: %v", err)
	}
	if err := l.Cosign(5, SampleMemberKeys(3)); !errors.Is(err, ErrRange) {
		t.Errorf("range: %v", err)
	}
}

func TestVerifyResultBundle(t *testing.T) {
	t.Parallel()
	s, v := testLogKey(t)
	l, members, err := BuildSampleRoundsLog(SampleRoundsConfig{Origin: testOrigin, Rounds: 2, Seed: 5}, s, v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Bundle(4) // round 1's result
	if err != nil {
		t.Fatal(err)
	}
	r, cp, err := VerifyResultBundle(b, v, members)
	if err != nil {
		t.Fatal(err)
	}
	if r.Round != 1 || cp.Size != 10 || len(r.Used()) != 3 {
		t.Fatalf("round %d, size %d, used %v", r.Round, cp.Size, r.Used())
	}
	// Tampered entry: the proof no longer leads to the root.
	bad := *b
	r.Entries[1].Score = score(123)
	bad.Leaf, _ = r.MarshalBinary()
	if _, _, err := VerifyResultBundle(&bad, v, members); !errors.Is(err, ErrInclusion) {
		t.Errorf("tampered: %v, want ErrInclusion", err)
	}
	// Other members did not cosign: no quorum, named at the round.
	_, _, err = VerifyResultBundle(b, v, testMembers(3))
	wantRound(t, err, 1, ErrQuorum)
	// An update leaf's bundle is not a result.
	ub, _ := l.Bundle(0)
	if _, _, err := VerifyResultBundle(ub, v, nil); !errors.Is(err, ErrVersion) {
		t.Errorf("update leaf: %v, want ErrVersion", err)
	}
}

// TestUncosignedResults: an export whose newest result lacks a quorum of
// cosignatures names it; one cosigned throughout names none.
func TestUncosignedResults(t *testing.T) {
	signer, verifier := testLogKey(t)
	for _, tt := range []struct {
		cosigners int
		want      int
	}{{0, 0}, {1, 2}} {
		l, members, err := BuildSampleRoundsLog(SampleRoundsConfig{Rounds: 2, Nodes: 3, Cosigners: tt.cosigners, Seed: 1}, signer, verifier)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := ExportDirWith(dir, l, ExportOptions{Members: members}); err != nil {
			t.Fatal(err)
		}
		got, err := UncosignedResults(dir, members)
		if err != nil || len(got) != tt.want {
			t.Fatalf("cosigners %d: uncosigned %v (%v), want %d", tt.cosigners, got, err, tt.want)
		}
		for _, i := range got {
			b, _ := l.Leaf(i)
			if !IsResultLeaf(b) {
				t.Fatalf("leaf %d named, not a result", i)
			}
		}
	}
}
