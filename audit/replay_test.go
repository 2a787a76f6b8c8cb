package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/crypto"
)

// replayFixture is one real round: 5 nodes seal updates of a 6-parameter
// model to a coordinator, node 4's update is an outlier, node 5's envelope
// "could not be opened" (not an input), Krum (f=1) with sample weights
// aggregates, and the archive holds everything Replay needs.
type replayFixture struct {
	coord   *age.X25519Identity
	log     *Log
	archive *RoundArchive
	result  *ResultLeaf
}

func newReplayFixture(t *testing.T) *replayFixture {
	t.Helper()
	coord, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 7))
	const dim, nodes = 6, 6
	base := make([]float64, dim)
	for i := range base {
		base[i] = rng.NormFloat64()
	}
	baseEnc := crypto.EncodeUpdate(base, crypto.Float64)
	baseHash := sha256.Sum256(baseEnc)
	_, v := testLogKey(t)
	l, err := NewLog(testOrigin, v)
	if err != nil {
		t.Fatal(err)
	}
	f := &replayFixture{coord: coord, log: l, archive: &RoundArchive{BaseModel: baseEnc}}
	var vecs [][]float64
	var weights []float64
	var leafIdx []uint64
	for n := range nodes {
		upd := make([]float64, dim)
		for i := range upd {
			upd[i] = 0.01 * rng.NormFloat64()
			if n == 4 {
				upd[i] += 50
			}
		}
		st := &crypto.Statement{Origin: testOrigin, JobID: "job-r", Round: 7, NodeID: SampleNodeID(n), BaseModelHash: baseHash,
			SampleCount: 10 + rng.Uint64N(90), Time: time.Date(2026, 12, 6, 0, 0, n, 0, time.UTC)}
		sealed, err := crypto.Seal(st, crypto.EncodeUpdate(upd, crypto.Float64), SampleNodeKey(n), []age.Recipient{coord.Recipient()})
		if err != nil {
			t.Fatal(err)
		}
		keys := crypto.NodeKeys{SampleNodeID(n): SampleNodeKey(n).Public().(ed25519.PublicKey)}
		op, err := crypto.Open(sealed, []age.Identity{coord}, keys, crypto.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := NewLeaf(op.StatementBytes, op.Signature, op.PublicKey, st.Time.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		idx, err := l.Append(leaf)
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := l.Leaf(idx)
		leafIdx = append(leafIdx, idx)
		au := ArchivedUpdate{LeafIndex: idx, Leaf: enc}
		if n != 5 {
			au.Sealed = sealed
			vecs = append(vecs, upd)
			weights = append(weights, float64(st.SampleCount))
		}
		f.archive.Updates = append(f.archive.Updates, au)
	}
	// The coordinator's side: run the rule, build the result.
	p := aggregate.Params{F: 1}
	rule, err := aggregate.New("krum", p)
	if err != nil {
		t.Fatal(err)
	}
	agg, rep, err := rule.Aggregate(vecs, weights)
	if err != nil {
		t.Fatal(err)
	}
	model := make([]float64, dim)
	for i := range model {
		model[i] = base[i] + agg[i]
	}
	f.result = &ResultLeaf{Origin: testOrigin, JobID: "job-r", Round: 7, Rule: "krum", Params: FormatRuleParams(p),
		Weighting: WeightSamples, BaseHash: baseHash, NewHash: sha256.Sum256(crypto.EncodeUpdate(model, crypto.Float64)),
		Entries: EntriesFromReport(leafIdx, map[int]string{5: "cannot open: test"}, rep)}
	if _, err := l.AppendResult(f.result); err != nil {
		t.Fatal(err)
	}
	f.archive.Result, _ = f.result.MarshalBinary()
	return f
}

func (f *replayFixture) replay(t *testing.T, a *RoundArchive) (*ReplayReport, error) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteRoundArchive(&buf, a); err != nil {
		return nil, err
	}
	back, err := ReadRoundArchiveTar(&buf, ArchiveLimits{})
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	return Replay(back, []age.Identity{f.coord}, ArchiveLimits{})
}

func TestReplayMatches(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	rep, err := f.replay(t, f.archive)
	if err != nil {
		t.Fatal(err)
	}
	if rep.NewHash != f.result.NewHash || rep.Inputs != 5 {
		t.Fatalf("report %+v", rep)
	}
	// Krum picks one input and never the outlier (leaf 4).
	if len(rep.Used) != 1 || rep.Used[0] == 4 {
		t.Fatalf("used %v", rep.Used)
	}
	enc, _ := f.log.Leaf(f.log.Size() - 1)
	if rep.LeafHash != LeafHash(enc) {
		t.Error("leaf hash does not match the logged result leaf")
	}
	// Equal archives are equal bytes; a directory form reads the same.
	var a, b bytes.Buffer
	must(t, WriteRoundArchive(&a, f.archive))
	must(t, WriteRoundArchive(&b, f.archive))
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("archive bytes not deterministic")
	}
	dir := t.TempDir()
	must(t, os.Mkdir(filepath.Join(dir, archiveUpdates), 0o755))
	files, _ := f.archive.files()
	for _, file := range files {
		must(t, os.WriteFile(filepath.Join(dir, file.name), file.data, 0o644))
	}
	back, err := ReadRoundArchiveFS(os.DirFS(dir), ArchiveLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Replay(back, []age.Identity{f.coord}, ArchiveLimits{}); err != nil {
		t.Fatalf("directory archive: %v", err)
	}
}

func TestReplayDetects(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	withResult := func(mod func(*ResultLeaf)) *RoundArchive {
		r, _ := ParseResultLeaf(f.archive.Result)
		mod(r)
		a := *f.archive
		a.Result, _ = r.MarshalBinary()
		return &a
	}
	t.Run("wrong new hash", func(t *testing.T) {
		_, err := f.replay(t, withResult(func(r *ResultLeaf) { r.NewHash[31] ^= 1 }))
		if !errors.Is(err, ErrModelMismatch) {
			t.Fatalf("err = %v, want ErrModelMismatch", err)
		}
	})
	t.Run("other rule parameters", func(t *testing.T) {
		// Multi-krum averages more inputs: another model, another hash.
		_, err := f.replay(t, withResult(func(r *ResultLeaf) { r.Rule = "multi-krum" }))
		if !errors.Is(err, ErrModelMismatch) {
			t.Fatalf("err = %v, want ErrModelMismatch", err)
		}
	})
	t.Run("equal weights", func(t *testing.T) {
		_, err := f.replay(t, withResult(func(r *ResultLeaf) { r.Weighting = WeightEqual }))
		// Krum picks one input either way; the used set and hash agree
		// only if weights do not matter to it, so accept either outcome
		// but never a panic or a different error class.
		if err != nil && !errors.Is(err, ErrModelMismatch) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("used set differs", func(t *testing.T) {
		_, err := f.replay(t, withResult(func(r *ResultLeaf) {
			for i := range r.Entries {
				if r.Entries[i].LeafIndex == 4 { // the outlier
					r.Entries[i].Used, r.Entries[i].Reason = true, ""
				}
			}
		}))
		if !errors.Is(err, ErrModelMismatch) {
			t.Fatalf("err = %v, want ErrModelMismatch", err)
		}
	})
	t.Run("other base model", func(t *testing.T) {
		a := *f.archive
		a.BaseModel = crypto.EncodeUpdate(make([]float64, 6), crypto.Float64)
		if _, err := f.replay(t, &a); !errors.Is(err, ErrModelMismatch) {
			t.Fatalf("err = %v, want ErrModelMismatch", err)
		}
	})
	t.Run("swapped envelopes", func(t *testing.T) {
		a := *f.archive
		a.Updates = append([]ArchivedUpdate(nil), f.archive.Updates...)
		a.Updates[0].Sealed, a.Updates[1].Sealed = a.Updates[1].Sealed, a.Updates[0].Sealed
		_, err := f.replay(t, &a)
		var le *LeafError
		if !errors.As(err, &le) || le.Index != 0 {
			t.Fatalf("err = %v, want a leaf error at leaf 0", err)
		}
	})
	t.Run("wrong identity", func(t *testing.T) {
		other, _ := age.GenerateX25519Identity()
		_, err := Replay(f.archive, []age.Identity{other}, ArchiveLimits{})
		if !errors.Is(err, crypto.ErrNotRecipient) {
			t.Fatalf("err = %v, want crypto.ErrNotRecipient", err)
		}
	})
	t.Run("noise commitment", func(t *testing.T) {
		_, err := f.replay(t, withResult(func(r *ResultLeaf) { r.NoiseCommitment = []byte{1} }))
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("err = %v, want ErrUnsupported", err)
		}
	})
	t.Run("missing envelope", func(t *testing.T) {
		a := *f.archive
		a.Updates = append([]ArchivedUpdate(nil), f.archive.Updates...)
		a.Updates[2].Sealed = nil
		if err := WriteRoundArchive(&bytes.Buffer{}, &a); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v, want ErrMalformed", err)
		}
	})
}

func TestReadRoundArchiveLimits(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	var buf bytes.Buffer
	must(t, WriteRoundArchive(&buf, f.archive))
	total := int64(len(f.archive.Result) + len(f.archive.BaseModel) + len(archiveFormat))
	for _, u := range f.archive.Updates {
		total += int64(len(u.Leaf) + len(u.Sealed))
	}
	if _, err := ReadRoundArchiveTar(bytes.NewReader(buf.Bytes()), ArchiveLimits{MaxTotalBytes: total}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if _, err := ReadRoundArchiveTar(bytes.NewReader(buf.Bytes()), ArchiveLimits{MaxTotalBytes: total - 1}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over: %v, want ErrTooLarge", err)
	}
	small := ArchiveLimits{Envelope: crypto.Limits{MaxUpdateBytes: 16, MaxHeaderBytes: 16}}
	big := *f.archive
	big.Updates = append([]ArchivedUpdate(nil), f.archive.Updates...)
	big.Updates[0].Sealed = make([]byte, small.Envelope.MaxSealedSize()+1)
	var bigBuf bytes.Buffer
	must(t, WriteRoundArchive(&bigBuf, &big))
	if _, err := ReadRoundArchiveTar(bytes.NewReader(bigBuf.Bytes()), small); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("envelope over its limit: %v, want ErrTooLarge", err)
	}
	if _, err := ReadRoundArchiveTar(bytes.NewReader(buf.Bytes()[:len(buf.Bytes())/2]), ArchiveLimits{}); err == nil {
		t.Fatal("truncated archive accepted")
	}
}

// FuzzRoundArchive: reading arbitrary bytes as an archive never panics.
func FuzzRoundArchive(f *testing.F) {
	r := testResult()
	enc, _ := r.MarshalBinary()
	a := &RoundArchive{Result: enc, BaseModel: crypto.EncodeUpdate([]float64{1, 2}, crypto.Float64)}
	for _, e := range r.Entries {
		u := ArchivedUpdate{LeafIndex: e.LeafIndex, Leaf: []byte{1, 2, 3}}
		if e.Input {
			u.Sealed = []byte("sealed")
		}
		a.Updates = append(a.Updates, u)
	}
	var buf bytes.Buffer
	if err := WriteRoundArchive(&buf, a); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ReadRoundArchiveTar(bytes.NewReader(data), ArchiveLimits{MaxTotalBytes: 1 << 20})
		if err != nil {
			return
		}
		_, _ = Replay(a, nil, ArchiveLimits{})
	})
}

func TestSampleRoundArchiveReplays(t *testing.T) {
	t.Parallel()
	coord, _ := age.GenerateX25519Identity()
	_, v := testLogKey(t)
	l, _ := NewLog(testOrigin, v)
	a, err := BuildSampleRoundArchive(SampleArchiveConfig{Seed: 3}, coord.Recipient(), l)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Replay(a, []age.Identity{coord}, ArchiveLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Inputs != 5 || l.Size() != 6 || slicesContains(rep.Used, 4) {
		t.Fatalf("inputs %d, log size %d, used %v (the outlier is leaf 4)", rep.Inputs, l.Size(), rep.Used)
	}
}

func slicesContains(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestRoundArchiveMutations complements FuzzRoundArchive with a fixed,
// seeded set of 3,000 byte mutations of a real archive (header fields,
// sizes, names, contents): reading and replaying never panics, and a
// mutated archive that still replays (a change in tar padding, say)
// re-derives exactly the recorded model.
func TestRoundArchiveMutations(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	var buf bytes.Buffer
	must(t, WriteRoundArchive(&buf, f.archive))
	orig := buf.Bytes()
	ids := []age.Identity{f.coord}
	rng := rand.New(rand.NewPCG(2026, 12))
	for i := range 3000 {
		d := bytes.Clone(orig)
		for range 1 + rng.IntN(3) {
			d[rng.IntN(len(d))] = byte(rng.Uint32())
		}
		a, err := ReadRoundArchiveTar(bytes.NewReader(d), ArchiveLimits{MaxTotalBytes: 1 << 20})
		if err != nil {
			continue
		}
		if rep, err := Replay(a, ids, ArchiveLimits{}); err == nil && rep.NewHash != f.result.NewHash {
			t.Fatalf("mutation %d replayed to another model without an error", i)
		}
	}
}
