package coordinator

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// blobFSM is the standard state (job alpha's round 2 open) in a state
// machine whose blobs live in a directory of the test's.
func blobFSM(t testing.TB) (*logBuilder, *fsm, string) {
	t.Helper()
	b := standardLog(t)
	f := replay(t, b.keys, b.entries)
	dir := filepath.Join(t.TempDir(), "blobs")
	f.setBlobDir(dir, nil)
	t.Cleanup(f.closeBlobs)
	return b, f, dir
}

// applyCmd applies one command and returns its result.
func applyNext(t *testing.T, f *fsm, typ commandType, body any) *applyResult {
	t.Helper()
	e, err := encodeCommand(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.RLock()
	idx := f.applied + 1
	f.mu.RUnlock()
	return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: e}).(*applyResult)
}

// chunkCmds cuts body into chunk commands of size n for a round.
func chunkCmds(job string, round uint64, body []byte, n int) []*blobChunkCmd {
	key := Hash(sha256.Sum256(body))
	var out []*blobChunkCmd
	for off := 0; off < len(body); off += n {
		end := min(off+n, len(body))
		out = append(out, &blobChunkCmd{Job: job, Round: round, Key: key, Offset: int64(off), Total: int64(len(body)), Data: body[off:end]})
	}
	return out
}

// bodyUpdate turns a framed add-update into one naming its sealed bytes
// as a blob, and returns the bytes.
func bodyUpdate(c *addUpdateCmd) (*addUpdateCmd, []byte) {
	body := c.Sealed
	c.Body = &BlobRef{SHA256: sha256.Sum256(body), Size: int64(len(body))}
	c.Sealed = nil
	return c, body
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() { // snapshot staging directories of snapshotBytes
			out = append(out, e.Name())
		}
	}
	return out
}

// A body committed as chunks is accepted as a .blob file, kept while its
// round is open, carried by a snapshot (version 3) into a fresh member's
// directory, and removed when the round ends.
func TestBlobChunksAcceptSnapshotAndEnd(t *testing.T) {
	b, f, dir := blobFSM(t)
	base := mustModelHash(t, f, "alpha", 1)
	cmd, body := bodyUpdate(b.update(b.nodes[0], "alpha", 2, base, []float64{3, 4, 5}))
	key := cmd.Body.SHA256
	chunks := chunkCmds("alpha", 2, body, 2)
	if len(chunks) < 3 {
		t.Fatalf("body of %d bytes makes %d chunks", len(body), len(chunks))
	}
	for _, c := range chunks {
		if res := applyNext(t, f, cmdBlobChunk, c); res.err != nil {
			t.Fatal(res.err)
		}
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{key.String() + ".part"}) {
		t.Fatalf("after the chunks: %v", got)
	}
	res := applyNext(t, f, cmdAddUpdate, cmd)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{key.String() + ".blob"}) {
		t.Fatalf("after the add-update: %v", got)
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, key.String()+".blob"))
	if err != nil || !bytes.Equal(onDisk, body) {
		t.Fatalf("blob file differs from the body (%v)", err)
	}
	r, err := f.round("alpha", 2, true)
	if err != nil {
		t.Fatal(err)
	}
	u := r.Updates[len(r.Updates)-1]
	if u.Body == nil || *u.Body != *cmd.Body || u.Sealed != nil {
		t.Fatalf("update record: body %v, %d sealed bytes", u.Body, len(u.Sealed))
	}
	// A retry of the same update gets the original ack.
	if res2 := applyNext(t, f, cmdAddUpdate, cmd); !errors.Is(res2.err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", res2.err)
	}

	// Snapshot (a part of a second body too) and restore elsewhere.
	cmd2, body2 := bodyUpdate(b.update(b.nodes[1], "alpha", 2, base, []float64{1, 1, 1}))
	half := chunkCmds("alpha", 2, body2, 2)
	for _, c := range half[:2] {
		if res := applyNext(t, f, cmdBlobChunk, c); res.err != nil {
			t.Fatal(res.err)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sink := &bufSink{Buffer: &buf}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if buf.Bytes()[len(snapshotMagic)] != snapshotBlobVersion {
		t.Fatalf("snapshot version %d, want %d", buf.Bytes()[len(snapshotMagic)], snapshotBlobVersion)
	}
	g, err := newFSM(b.keys.origin, b.keys.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	gdir := filepath.Join(t.TempDir(), "blobs")
	g.setBlobDir(gdir, nil)
	t.Cleanup(g.closeBlobs)
	// An orphan the snapshot does not name is swept.
	orphan := filepath.Join(gdir, Hash(sha256.Sum256([]byte("x"))).String()+".part")
	if err := os.WriteFile(orphan, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader(buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	want := []string{cmd.Body.SHA256.String() + ".blob", cmd2.Body.SHA256.String() + ".part"}
	slices.Sort(want)
	if got := dirNames(t, gdir); !slices.Equal(got, want) {
		t.Fatalf("restored directory %v, want %v", got, want)
	}
	if got, _ := os.ReadFile(filepath.Join(gdir, key.String()+".blob")); !bytes.Equal(got, body) {
		t.Fatal("restored blob differs")
	}
	// The restored member completes the second body from the rest of the
	// chunks (its running hash was lost: the file is hashed).
	for _, c := range half[2:] {
		if res := applyNext(t, g, cmdBlobChunk, c); res.err != nil {
			t.Fatal(res.err)
		}
	}
	if res := applyNext(t, g, cmdAddUpdate, cmd2); res.err != nil {
		t.Fatalf("add-update after restore: %v", res.err)
	}
	// The restored state snapshots as the original would have.
	for _, c := range half[2:] {
		applyNext(t, f, cmdBlobChunk, c)
	}
	if res := applyNext(t, f, cmdAddUpdate, cmd2); res.err != nil {
		t.Fatal(res.err)
	}
	// The round ends: every file goes, on both members.
	for _, m := range []*fsm{f, g} {
		if res := applyNext(t, m, cmdFailRound, &failRoundCmd{Job: "alpha", Round: 2, Reason: "test", At: b.at}); res.err != nil {
			t.Fatal(res.err)
		}
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Fatalf("after the round ended: %v", got)
	}
	if got := dirNames(t, gdir); len(got) != 0 {
		t.Fatalf("restored member, after the round ended: %v", got)
	}
}

// bufSink is a raft.SnapshotSink into a buffer.
type bufSink struct {
	*bytes.Buffer
	cancelled bool
}

func (s *bufSink) ID() string    { return "test" }
func (s *bufSink) Cancel() error { s.cancelled = true; return nil }
func (s *bufSink) Close() error  { return nil }

// A truncated chunk sequence (the leader lost its leadership half way)
// leaves no accepted update: the add-update fails with ErrBodyIncomplete
// and changes nothing; the .part file goes when the round ends.
func TestBlobTruncatedChunks(t *testing.T) {
	b, f, dir := blobFSM(t)
	base := mustModelHash(t, f, "alpha", 1)
	cmd, body := bodyUpdate(b.update(b.nodes[0], "alpha", 2, base, []float64{3, 4, 5}))
	chunks := chunkCmds("alpha", 2, body, 2)
	for _, c := range chunks[:len(chunks)/2] {
		if res := applyNext(t, f, cmdBlobChunk, c); res.err != nil {
			t.Fatal(res.err)
		}
	}
	before := snapshotBytes(t, f)
	res := applyCmd(t, f, f.applied, cmdAddUpdate, cmd) // same index: the snapshots compare

	if !errors.Is(res.err, ErrBodyIncomplete) {
		t.Fatalf("add-update of half a body: %v, want ErrBodyIncomplete", res.err)
	}
	if !bytes.Equal(before, snapshotBytes(t, f)) {
		t.Fatal("a refused add-update changed the state")
	}
	// A body whose chunks hash to another value is refused too.
	bad := *cmd
	bad.Body = &BlobRef{SHA256: cmd.Body.SHA256, Size: cmd.Body.Size}
	wrong := slices.Clone(body)
	wrong[len(wrong)-1] ^= 1
	for _, c := range chunkCmds("alpha", 2, wrong, 2) {
		c.Key = cmd.Body.SHA256
		applyNext(t, f, cmdBlobChunk, c)
	}
	if res := applyNext(t, f, cmdAddUpdate, &bad); !errors.Is(res.err, ErrBodyIncomplete) {
		t.Fatalf("add-update of a wrong body: %v", res.err)
	}
	if got := dirNames(t, dir); len(got) != 1 {
		t.Fatalf("part files: %v", got)
	}
	if res := applyNext(t, f, cmdFailRound, &failRoundCmd{Job: "alpha", Round: 2, Reason: "test", At: b.at}); res.err != nil {
		t.Fatal(res.err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Fatalf("after the round ended: %v", got)
	}
	// Chunks for a round that ended are refused (nothing would remove them).
	if res := applyNext(t, f, cmdBlobChunk, chunks[0]); !errors.Is(res.err, ErrStale) {
		t.Fatalf("chunk for an ended round: %v", res.err)
	}
}

// Deleting a job removes the parts of its rounds; a pinned blob (the
// attester still re-deriving its round) outlives the round's end until
// unpinned.
func TestBlobRemovalPaths(t *testing.T) {
	b, f, dir := blobFSM(t)
	base := mustModelHash(t, f, "alpha", 1)
	_, body := bodyUpdate(b.update(b.nodes[0], "alpha", 2, base, []float64{3, 4, 5}))
	for _, c := range chunkCmds("alpha", 2, body, 2)[:2] {
		applyNext(t, f, cmdBlobChunk, c)
	}
	if got := dirNames(t, dir); len(got) != 1 {
		t.Fatalf("part files: %v", got)
	}
	if res := applyNext(t, f, cmdDeleteJob, &deleteJobCmd{ID: "alpha", At: b.at}); res.err != nil {
		t.Fatal(res.err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Fatalf("after the job was deleted: %v", got)
	}

	// Pins.
	s := newBlobStore(t.TempDir())
	k := Hash(sha256.Sum256([]byte("body")))
	if err := os.WriteFile(s.path(k, true), []byte("body"), 0o600); err != nil {
		t.Fatal(err)
	}
	task := &attestTask{}
	s.pin([]Hash{k})
	s.tasks = map[*attestTask][]Hash{task: {k}}
	s.drop(k)
	if _, err := os.Stat(s.path(k, true)); err != nil {
		t.Fatalf("pinned blob removed at its round's end: %v", err)
	}
	s.unpinTask(task)
	if _, err := os.Stat(s.path(k, true)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unpinned blob of an ended round still there: %v", err)
	}
}

// Blob-chunk entries round-trip and decode strictly.
func TestBlobChunkEncoding(t *testing.T) {
	c := &blobChunkCmd{Job: "j", Round: 7, Key: Hash{1, 2}, Offset: 3, Total: 10, Data: []byte("abcdefg")}
	e, err := encodeCommand(cmdBlobChunk, c)
	if err != nil {
		t.Fatal(err)
	}
	typ, body, err := decodeCommand(e)
	if err != nil || typ != cmdBlobChunk {
		t.Fatal(typ, err)
	}
	if got := body.(*blobChunkCmd); got.Job != c.Job || got.Round != c.Round || got.Key != c.Key || got.Offset != 3 || got.Total != 10 || !bytes.Equal(got.Data, c.Data) {
		t.Fatalf("decoded %+v", got)
	}
	for name, bad := range map[string][]byte{
		"trailing":  append(slices.Clone(e), 0),
		"truncated": e[:len(e)-1],
		"past end":  mustEncode(t, &blobChunkCmd{Job: "j", Key: Hash{1}, Offset: 5, Total: 10, Data: []byte("abcdefg")}),
	} {
		if _, _, err := decodeCommand(bad); !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// add-update: a body after accepted-at decodes; old entries have none.
	u := &addUpdateCmd{Job: "j", Node: "n", Body: &BlobRef{SHA256: Hash{9}, Size: 1234}, AcceptedAt: time.Unix(5, 0).UTC()}
	e, err = encodeCommand(cmdAddUpdate, u)
	if err != nil {
		t.Fatal(err)
	}
	_, body, err = decodeCommand(e)
	if err != nil || body.(*addUpdateCmd).Body == nil || *body.(*addUpdateCmd).Body != *u.Body {
		t.Fatalf("add-update body: %v %+v", err, body)
	}
	u.Body = nil
	e, _ = encodeCommand(cmdAddUpdate, u)
	if _, body, err = decodeCommand(e); err != nil || body.(*addUpdateCmd).Body != nil {
		t.Fatalf("add-update without body: %v", err)
	}
	if _, _, err := decodeCommand(append(e, make([]byte, 39)...)); !errors.Is(err, ErrMalformedCommand) {
		t.Fatalf("add-update with 39 trailing bytes: %v", err)
	}
}

func mustEncode(t *testing.T, c *blobChunkCmd) []byte {
	t.Helper()
	b, err := c.appendBinary([]byte{commandVersion, byte(cmdBlobChunk)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// paramsReader and paramsBlob agree with Params.Bytes.
func TestParamsBlob(t *testing.T) {
	p := make(Params, 1000)
	for i := range p {
		p[i] = float64(i) * 0.37
	}
	want := p.Bytes()
	if ref := paramsBlob(p); ref.SHA256 != Hash(sha256.Sum256(want)) || ref.Size != int64(len(want)) {
		t.Fatal("paramsBlob differs from the bytes' hash")
	}
	got := make([]byte, len(want))
	for off := 0; off < len(want); off += 333 {
		n, err := paramsReader(p).ReadAt(got[off:min(off+333, len(want))], int64(off))
		if err != nil && !(errors.Is(err, io.EOF) && off+n == len(want)) {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("paramsReader differs from Params.Bytes")
	}
}

// FuzzBlobChunkApply: arbitrary blob-chunk bodies never panic, and a
// rejected one leaves the state as it was.
func FuzzBlobChunkApply(f *testing.F) {
	for _, c := range []*blobChunkCmd{
		{Job: "alpha", Round: 2, Key: Hash{1}, Offset: 0, Total: 4, Data: []byte("abcd")},
		{Job: "alpha", Round: 2, Key: Hash{1}, Offset: 2, Total: 4, Data: []byte("cd")},
		{Job: "alpha", Round: 1, Key: Hash{1}, Offset: 0, Total: 4, Data: []byte("ab")},
	} {
		b, _ := c.appendBinary(nil)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, m, _ := blobFSM(t)
		before := snapshotBytes(t, m)
		e := append([]byte{commandVersion, byte(cmdBlobChunk)}, data...)
		res := m.Apply(&raft.Log{Index: m.applied, Type: raft.LogCommand, Data: e}).(*applyResult)
		if res.err != nil && !bytes.Equal(before, snapshotBytes(t, m)) {
			t.Fatalf("rejected chunk (%v) changed the state", res.err)
		}
	})
}

// ModelHash hashes as it encodes: the same bits as SHA-256 of ModelBytes.
func TestModelHashStreamed(t *testing.T) {
	for _, n := range []int{0, 1, 8191, 8192, 8193, 100_000} {
		p := make(Params, n)
		for i := range p {
			p[i] = float64(i)*1.25 - 3
		}
		if got, want := ModelHash(p), Hash(sha256.Sum256(ModelBytes(p))); got != want {
			t.Fatalf("%d values: %s, want %s", n, got, want)
		}
	}
}
