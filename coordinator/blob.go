package coordinator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mfn/mfn/crypto"
)

// Blobs: bodies too big for one log entry (a streamed update's sealed
// envelope, a big job's model or aggregate) travel through Raft as a run of
// blob-chunk entries of at most blobChunkSize bytes, keyed by the SHA-256
// of the whole body, followed by the small entry that names the body
// (add-update's Body, close-round's ModelBlob / AggregateBlob). Apply
// writes each chunk at its offset into the member's blob file
//
//	DATA/blobs/<sha256 hex>.part    while the chunks arrive
//	DATA/blobs/<sha256 hex>.blob    once an add-update accepted it
//
// (WriteAt: replaying an entry writes the same bytes again). The naming
// entry's Apply accepts the body only if the chunks applied before it cover
// it exactly and hash to its key; otherwise it fails with ErrBodyIncomplete
// and nothing is accepted. Whether a body is complete is decided from the
// chunk entries (replicated state, rebuilt from snapshots), not from the
// file, so every replica decides alike.
//
// A .part file belongs to the round its chunks name: it is removed when
// that round ends (or its job is deleted), whether or not its naming entry
// committed. A .blob file is removed when its round ends and the member's
// attester, which still re-derives and archives the round, is done with it
// (blobStore.pin). Snapshots carry the files of the rounds still open or
// closing, and the .part files (fsm.go, snapshot version 3); Restore
// rewrites them and removes every other file.

// blobChunkSize bounds a chunk's data: a chunk entry is about 1 MiB, so an
// AppendEntries of a few of them leaves room for heartbeats and the next
// round's small entries.
const blobChunkSize = 1 << 20

// blobInflight bounds the chunk entries a leader has proposed and not yet
// seen applied.
const blobInflight = 8

// maxBlobSize bounds a blob: a float64 model of the largest dim (2^27)
// with room to spare.
const maxBlobSize = 1 << 31

// blobThreshold: a model or aggregate whose bytes exceed it travels as a
// blob rather than inside its close-round entry.
const blobThreshold = 1 << 20

// blobDirName is the blob directory under a member's data directory.
const blobDirName = "blobs"

// ErrBodyIncomplete is the error of an entry naming a blob whose chunks
// did not all commit before it (a leader lost its leadership half way):
// the update or close is not accepted, and can be sent again.
var ErrBodyIncomplete = errors.New("coordinator: body incomplete")

// BlobRef names a body stored as a blob: the SHA-256 of its bytes and
// their number.
type BlobRef struct {
	SHA256 Hash  `json:"sha256"`
	Size   int64 `json:"size"`
}

// blobChunkCmd is one chunk of a blob: Data at Offset of the Total bytes
// whose SHA-256 is Key, for round Round of job Job (whose end removes the
// chunks' file if nothing accepted it). Binary body, big-endian:
//
//	job     uint16 length || bytes
//	round   uint64
//	key     [32]byte
//	offset  uint64
//	total   uint64
//	data    uint32 length || bytes
type blobChunkCmd struct {
	Job    string
	Round  uint64
	Key    Hash
	Offset int64
	Total  int64
	Data   []byte
}

func (c *blobChunkCmd) appendBinary(b []byte) ([]byte, error) {
	if len(c.Job) > 0xffff || len(c.Data) > blobChunkSize {
		return nil, fmt.Errorf("coordinator: encode blob-chunk: field too long")
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Job)))
	b = append(b, c.Job...)
	b = binary.BigEndian.AppendUint64(b, c.Round)
	b = append(b, c.Key[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Offset))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Total))
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Data)))
	return append(b, c.Data...), nil
}

func (c *blobChunkCmd) unmarshalBinary(b []byte) error {
	r := binReader{b: b}
	c.Job = string(r.bytes(int(r.u16())))
	c.Round = r.u64()
	copy(c.Key[:], r.bytes(32))
	off, total := r.u64(), r.u64()
	n := r.u32()
	if r.err == nil && n > blobChunkSize {
		r.err = fmt.Errorf("chunk of %d bytes, at most %d", n, blobChunkSize)
	}
	c.Data = r.bytes(int(n))
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err == nil && (total > maxBlobSize || off > total || uint64(len(c.Data)) > total-off) {
		r.err = fmt.Errorf("chunk [%d, +%d) of a %d-byte blob (at most %d)", off, len(c.Data), total, uint64(maxBlobSize))
	}
	c.Offset, c.Total = int64(off), int64(total)
	return r.err
}

// blobPart is the replicated record of a blob whose chunks are arriving:
// its owner round, its size, and how far its bytes are known contiguous
// from offset 0, with their running hash (nil once that is lost: after a
// restore or an out-of-order chunk; the file is hashed instead).
type blobPart struct {
	Job   string
	Round uint64
	Total int64
	next  int64
	h     hash.Hash
}

// blobStore is a member's blob directory (local, not replicated): the
// files, and the pins of the bodies the member's attester still needs
// after their round ended.
type blobStore struct {
	mu     sync.Mutex
	dir    string
	temp   bool // a private temporary directory, removed by close
	err    error
	pins   map[Hash]int
	doomed map[Hash]bool
	tasks  map[*attestTask][]Hash
	logger *slog.Logger
}

// newBlobStore uses dir (made if missing; snapshot staging directories and
// temporary files a crash left are removed), or a private temporary
// directory when dir is "".
func newBlobStore(dir string) *blobStore {
	s := &blobStore{dir: dir, pins: map[Hash]int{}, doomed: map[Hash]bool{}, logger: slog.New(slog.DiscardHandler)}
	if dir == "" {
		s.dir, s.err = os.MkdirTemp("", "mfn-blobs-")
		s.temp = true
		return s
	}
	if s.err = os.MkdirAll(dir, 0o700); s.err != nil {
		return s
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "snap-") || strings.HasSuffix(e.Name(), ".tmp") {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return s
}

func (s *blobStore) path(k Hash, complete bool) string {
	if complete {
		return filepath.Join(s.dir, k.String()+".blob")
	}
	return filepath.Join(s.dir, k.String()+".part")
}

// write writes a chunk into the key's .part file (truncated first when
// the chunk starts a new run at offset 0).
func (s *blobStore) write(c *blobChunkCmd, fresh bool) error {
	if s.err != nil {
		return s.err
	}
	flags := os.O_WRONLY | os.O_CREATE
	if fresh {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(s.path(c.Key, false), flags, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(c.Data, c.Offset)
	if err == nil && fresh {
		err = f.Truncate(c.Total)
	}
	return errors.Join(err, f.Close())
}

// hashFile returns the SHA-256 and size of a file.
func hashFile(path string) (Hash, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return Hash{}, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Hash{}, 0, err
	}
	return Hash(h.Sum(nil)), n, nil
}

// promote renames a part to its accepted name.
func (s *blobStore) promote(k Hash) error {
	if s.err != nil {
		return s.err
	}
	return os.Rename(s.path(k, false), s.path(k, true))
}

// dropPart removes a part file.
func (s *blobStore) dropPart(k Hash) {
	if s.err == nil {
		os.Remove(s.path(k, false))
	}
}

// drop removes an accepted blob, or marks it for removal once unpinned.
func (s *blobStore) drop(k Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins[k] > 0 {
		s.doomed[k] = true
		return
	}
	if s.err == nil {
		os.Remove(s.path(k, true))
	}
}

// pin keeps the blobs of refs past their round's end until unpin.
func (s *blobStore) pin(refs []Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range refs {
		s.pins[k]++
	}
}

func (s *blobStore) unpin(refs []Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range refs {
		if s.pins[k]--; s.pins[k] > 0 {
			continue
		}
		delete(s.pins, k)
		if s.doomed[k] {
			delete(s.doomed, k)
			if s.err == nil {
				os.Remove(s.path(k, true))
			}
		}
	}
}

// open opens an accepted blob.
func (s *blobStore) open(k Hash) (*os.File, error) {
	if s.err != nil {
		return nil, s.err
	}
	return os.Open(s.path(k, true))
}

// close removes a private temporary directory.
func (s *blobStore) close() {
	if s.temp && s.err == nil {
		os.RemoveAll(s.dir)
	}
}

// files lists the blob directory's blob and part files by key.
func (s *blobStore) files() (blobs, parts map[Hash]bool) {
	blobs, parts = map[Hash]bool{}, map[Hash]bool{}
	if s.err != nil {
		return
	}
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		name := e.Name()
		ext := filepath.Ext(name)
		k, err := parseHash(strings.TrimSuffix(name, ext))
		if err != nil {
			continue
		}
		switch ext {
		case ".blob":
			blobs[k] = true
		case ".part":
			parts[k] = true
		}
	}
	return
}

func parseHash(s string) (Hash, error) {
	var h Hash
	if err := h.UnmarshalText([]byte(s)); err != nil {
		return Hash{}, err
	}
	return h, nil
}

// ---- the state machine's side (Apply; the caller holds f.mu) ----

// blobDir returns the member's blob store, a private temporary one if
// none was set (in-memory state machines).
func (f *fsm) blobDir() *blobStore {
	if f.blobs == nil {
		f.blobs = newBlobStore("")
	}
	return f.blobs
}

// setBlobDir makes the state machine keep its blobs under dir (before
// the first entry is applied).
func (f *fsm) setBlobDir(dir string, logger *slog.Logger) {
	f.blobs = newBlobStore(dir)
	if logger != nil {
		f.blobs.logger = logger
	}
}

// closeBlobs releases the blob store (a temporary directory is removed).
func (f *fsm) closeBlobs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blobs != nil {
		f.blobs.close()
	}
}

func (f *fsm) applyBlobChunk(c *blobChunkCmd) error {
	j, ok := f.jobs[c.Job]
	if !ok {
		return fmt.Errorf("%w: job %s", ErrNotFound, c.Job)
	}
	r := j.round(c.Round)
	if r == nil || (r.State != RoundOpen && r.State != RoundClosing) {
		return fmt.Errorf("%w: blob chunk for job %s round %d, which is not open or closing", ErrStale, c.Job, c.Round)
	}
	if len(c.Data) == 0 && c.Total > 0 {
		return fmt.Errorf("%w: empty chunk", ErrInvalid)
	}
	p := f.parts[c.Key]
	fresh := c.Offset == 0
	switch {
	case p == nil && !fresh:
		return fmt.Errorf("%w: blob %s: chunk at %d before its first", ErrStale, c.Key, c.Offset)
	case p != nil && !fresh && p.Total != c.Total:
		return fmt.Errorf("%w: blob %s: chunk of a %d-byte blob, %d announced", ErrInvalid, c.Key, c.Total, p.Total)
	}
	if fresh {
		p = &blobPart{Job: c.Job, Round: c.Round, Total: c.Total, h: sha256.New()}
		f.parts[c.Key] = p
	}
	switch end := c.Offset + int64(len(c.Data)); {
	case p.h != nil && c.Offset == p.next:
		p.h.Write(c.Data)
		p.next = end
	case p.h != nil && end <= p.next:
		// already hashed
	default:
		p.h = nil // out of order: the file is hashed when it is named
	}
	if err := f.blobDir().write(c, fresh); err != nil {
		// Local: this member's copy is unusable (its consumers report
		// they cannot open it); the replicated state goes on.
		f.blobDir().logger.Error("blob chunk not written", slog.String("blob", c.Key.String()), errAttr(err))
	}
	return nil
}

// checkBlob reports whether the chunks applied so far make up ref
// (no side effects).
func (f *fsm) checkBlob(ref BlobRef) error {
	p := f.parts[ref.SHA256]
	switch {
	case p == nil:
		return fmt.Errorf("%w: blob %s has no chunks", ErrBodyIncomplete, ref.SHA256)
	case p.Total != ref.Size:
		return fmt.Errorf("%w: blob %s: chunks of a %d-byte blob, entry names %d bytes", ErrBodyIncomplete, ref.SHA256, p.Total, ref.Size)
	case p.h != nil && p.next == p.Total:
		if Hash(p.h.Sum(nil)) != ref.SHA256 {
			return fmt.Errorf("%w: blob %s: the chunks hash to another value", ErrBodyIncomplete, ref.SHA256)
		}
		return nil
	case p.h != nil:
		return fmt.Errorf("%w: blob %s: %d of %d bytes", ErrBodyIncomplete, ref.SHA256, p.next, p.Total)
	}
	// After a restore or out-of-order chunks: hash the file (every
	// replica holds the same bytes).
	h, n, err := hashFile(f.blobDir().path(ref.SHA256, false))
	if err != nil || n != ref.Size || h != ref.SHA256 {
		return fmt.Errorf("%w: blob %s: file does not hold it", ErrBodyIncomplete, ref.SHA256)
	}
	p.h, p.next = nil, p.Total
	return nil
}

// acceptBlob moves a checked part to its accepted name.
func (f *fsm) acceptBlob(ref BlobRef) {
	delete(f.parts, ref.SHA256)
	if err := f.blobDir().promote(ref.SHA256); err != nil {
		f.blobDir().logger.Error("blob not promoted", slog.String("blob", ref.SHA256.String()), errAttr(err))
	}
}

// readBlobParams reads a checked part holding little-endian float64s
// (a model or aggregate) and removes it.
func (f *fsm) readBlobParams(ref BlobRef) (Params, error) {
	if err := f.checkBlob(ref); err != nil {
		return nil, err
	}
	if ref.Size%8 != 0 {
		return nil, fmt.Errorf("%w: blob %s: %d bytes is not a whole number of float64", ErrInvalid, ref.SHA256, ref.Size)
	}
	file, err := os.Open(f.blobDir().path(ref.SHA256, false))
	if err != nil {
		return nil, fmt.Errorf("%w: blob %s: %v", ErrBodyIncomplete, ref.SHA256, err)
	}
	defer file.Close()
	out := make(Params, ref.Size/8)
	h := sha256.New()
	buf := make([]byte, 1<<20) // a multiple of 8
	for i := 0; i < len(out); {
		b := buf[:min(len(buf), 8*(len(out)-i))]
		if _, err := io.ReadFull(file, b); err != nil {
			return nil, fmt.Errorf("%w: blob %s: %v", ErrBodyIncomplete, ref.SHA256, err)
		}
		h.Write(b)
		for k := 0; k < len(b); k, i = k+8, i+1 {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[k:]))
		}
	}
	if Hash(h.Sum(nil)) != ref.SHA256 {
		return nil, fmt.Errorf("%w: blob %s: file does not hold it", ErrBodyIncomplete, ref.SHA256)
	}
	return out, nil
}

// consumeBlob forgets and removes a part read by readBlobParams.
func (f *fsm) consumeBlob(ref BlobRef) {
	delete(f.parts, ref.SHA256)
	f.blobDir().dropPart(ref.SHA256)
}

// endBlobs removes the blobs of a round that ended: the parts its chunks
// made, and its accepted updates' bodies (once the attester is done).
func (f *fsm) endBlobs(job string, r *Round) {
	for k, p := range f.parts {
		if p.Job == job && (r == nil || p.Round == r.Number) {
			delete(f.parts, k)
			f.blobDir().dropPart(k)
		}
	}
	if r == nil {
		return
	}
	for _, u := range r.Updates {
		if u.Body != nil {
			f.blobDir().drop(u.Body.SHA256)
		}
	}
}

// bodyKeys returns the blob keys of a round's updates.
func bodyKeys(r *Round) []Hash {
	var out []Hash
	for _, u := range r.Updates {
		if u.Body != nil {
			out = append(out, u.Body.SHA256)
		}
	}
	return out
}

// ---- reading bodies (Coordinator) ----

// sealedBody returns an accepted update's sealed envelope as a reader
// and its size: the entry's bytes, or the blob file.
func (c *Coordinator) sealedBody(u Update) (io.ReadCloser, int64, error) {
	if u.Body == nil {
		if u.Sealed == nil {
			return nil, 0, errors.New("sealed body already dropped")
		}
		return io.NopCloser(bytes.NewReader(u.Sealed)), int64(len(u.Sealed)), nil
	}
	f, err := c.fsm.blobs.open(u.Body.SHA256)
	if err != nil {
		return nil, 0, fmt.Errorf("body %s: %w", u.Body.SHA256, err)
	}
	return f, u.Body.Size, nil
}

// bodyBytes returns an accepted update's sealed envelope whole.
func (c *Coordinator) bodyBytes(u Update) ([]byte, error) {
	if u.Body == nil {
		if u.Sealed == nil {
			return nil, errors.New("sealed body already dropped")
		}
		return u.Sealed, nil
	}
	rc, n, err := c.sealedBody(u)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("body %s: %w", u.Body.SHA256, err)
	}
	return b, nil
}

// openUpdate opens an accepted update's envelope and decodes its values:
// from the entry's bytes with the Opener, or streamed from the blob file
// with the StreamOpener (never the sealed envelope whole in memory).
func (c *Coordinator) openUpdate(u Update, dim int) (*Envelope, error) {
	if c.cfg.Opener == nil {
		return nil, errors.New("no opener configured")
	}
	if u.Body == nil {
		return c.cfg.Opener.Open(u.Sealed, c.fsm.nodeKeyAny)
	}
	so, ok := c.cfg.Opener.(StreamOpener)
	if !ok {
		return nil, errors.New("this member's opener cannot open streamed updates")
	}
	rc, n, err := c.sealedBody(u)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	vw := &vectorWriter{check: crypto.UpdateStreamCheck{MaxLen: dim}, dim: dim}
	env, err := so.OpenStream(bufio.NewReaderSize(rc, 256<<10), n, c.fsm.nodeKeyAny, vw)
	if err != nil {
		return nil, err
	}
	if err := vw.check.Close(); err != nil {
		return nil, err
	}
	env.Update = vw.vals
	return env, nil
}

// vectorWriter checks (crypto.UpdateStreamCheck) and decodes an encoded
// update as it streams past.
type vectorWriter struct {
	check crypto.UpdateStreamCheck
	dim   int
	seen  int64
	vals  []float64
	part  []byte
}

func (w *vectorWriter) Write(p []byte) (int, error) {
	n := len(p)
	if _, err := w.check.Write(p); err != nil {
		return 0, err
	}
	if w.seen < crypto.UpdateHeaderLen {
		k := min(int64(crypto.UpdateHeaderLen)-w.seen, int64(len(p)))
		p, w.seen = p[k:], w.seen+k
		if w.seen < crypto.UpdateHeaderLen {
			return n, nil
		}
		if w.check.Header.Len != uint64(w.dim) {
			return 0, fmt.Errorf("update has %d values, dim is %d", w.check.Header.Len, w.dim)
		}
		w.vals = make([]float64, 0, w.dim)
	}
	size := w.check.Header.DType.Size()
	if len(w.part) > 0 {
		k := min(size-len(w.part), len(p))
		w.part, p = append(w.part, p[:k]...), p[k:]
		if len(w.part) < size {
			return n, nil
		}
		w.value(w.part)
		w.part = w.part[:0]
	}
	for len(p) >= size {
		w.value(p[:size])
		p = p[size:]
	}
	w.part = append(w.part, p...)
	return n, nil
}

func (w *vectorWriter) value(b []byte) {
	if len(w.vals) == w.dim {
		return // the check reports the excess
	}
	if len(b) == 4 {
		w.vals = append(w.vals, float64(math.Float32frombits(binary.LittleEndian.Uint32(b))))
		return
	}
	w.vals = append(w.vals, math.Float64frombits(binary.LittleEndian.Uint64(b)))
}

// ---- proposing blobs (leader) ----

// proposeBlob commits the size bytes of src under key as chunk entries
// for a round, at most blobInflight proposed and not yet applied: only
// those chunks are in memory, whatever the size.
func (c *Coordinator) proposeBlob(ctx context.Context, job string, round uint64, key Hash, size int64, src io.ReaderAt) error {
	var queue []raft.ApplyFuture
	waitOne := func() error {
		f := queue[0]
		queue = queue[1:]
		if err := c.wait(f); err != nil {
			return c.applyErr(cmdBlobChunk, err)
		}
		if res, ok := f.Response().(*applyResult); !ok {
			return fmt.Errorf("coordinator: apply %v: unexpected response %T", cmdBlobChunk, f.Response())
		} else if res.err != nil {
			return res.err
		}
		return nil
	}
	drain := func() {
		for _, f := range queue {
			c.wait(f)
		}
	}
	if size <= 0 {
		return fmt.Errorf("%w: empty body", ErrInvalid)
	}
	for off := int64(0); off < size; {
		if c.closed.Load() {
			drain()
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			drain()
			return err
		}
		if c.raft.State() != raft.Leader {
			drain()
			return c.notLeader()
		}
		n := min(size-off, blobChunkSize)
		data := make([]byte, n)
		if k, err := src.ReadAt(data, off); int64(k) < n {
			drain()
			return fmt.Errorf("coordinator: reading a body: %d of %d bytes: %v", k, n, err)
		}
		b, err := (&blobChunkCmd{Job: job, Round: round, Key: key, Offset: off, Total: size, Data: data}).
			appendBinary([]byte{commandVersion, byte(cmdBlobChunk)})
		if err != nil {
			drain()
			return err
		}
		queue = append(queue, c.raft.Apply(b, c.cfg.ApplyTimeout))
		if len(queue) >= blobInflight {
			if err := waitOne(); err != nil {
				drain()
				return err
			}
		}
		off += n
	}
	for len(queue) > 0 {
		if err := waitOne(); err != nil {
			drain()
			return err
		}
	}
	return nil
}

// paramsReader reads Params as little-endian float64 bytes (io.ReaderAt)
// without encoding them whole.
type paramsReader Params

func (p paramsReader) ReadAt(b []byte, off int64) (int, error) {
	size := int64(len(p)) * 8
	if off >= size {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && off < size {
		i, k := off/8, off%8
		var v [8]byte
		binary.LittleEndian.PutUint64(v[:], math.Float64bits(p[i]))
		c := copy(b[n:], v[k:])
		n += c
		off += int64(c)
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// paramsBlob returns the blob reference of Params' little-endian bytes.
func paramsBlob(p Params) BlobRef {
	h := sha256.New()
	buf := make([]byte, 0, 64<<10)
	for i, v := range p {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
		if len(buf) == cap(buf) || i == len(p)-1 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	return BlobRef{SHA256: Hash(h.Sum(nil)), Size: int64(len(p)) * 8}
}

// proposeParamsBlob commits p as a blob for a closing round when its
// bytes exceed blobThreshold, and returns its reference (nil: p travels
// in the entry).
func (c *Coordinator) proposeParamsBlob(ctx context.Context, job string, round uint64, p Params) (*BlobRef, error) {
	if int64(len(p))*8 <= blobThreshold {
		return nil, nil
	}
	ref := paramsBlob(p)
	start := time.Now()
	if err := c.proposeBlob(ctx, job, round, ref.SHA256, ref.Size, paramsReader(p)); err != nil {
		return nil, err
	}
	c.logger.Debug("parameters committed as a blob", slog.String("job", job), slog.Uint64("round", round),
		slog.Int64("bytes", ref.Size), slog.Duration("took", time.Since(start)))
	return &ref, nil
}

// resolveCloseBlobs reads a close-round's model or aggregate from its blob
// (the round is closing).
func (f *fsm) resolveCloseBlobs(c *closeRoundCmd) error {
	if c.ModelBlob != nil {
		if len(c.Model) != 0 {
			return fmt.Errorf("%w: job %s round %d: close-round with both a model and a model blob", ErrInvalid, c.Job, c.Round)
		}
		p, err := f.readBlobParams(*c.ModelBlob)
		if err != nil {
			return err
		}
		c.Model = p
	}
	if c.AggregateBlob != nil {
		if len(c.Aggregate) != 0 {
			return fmt.Errorf("%w: job %s round %d: close-round with both an aggregate and an aggregate blob", ErrInvalid, c.Job, c.Round)
		}
		p, err := f.readBlobParams(*c.AggregateBlob)
		if err != nil {
			return err
		}
		c.Aggregate = p
	}
	return nil
}

// consumeCloseBlobs removes a close-round's blobs once it applied.
func (f *fsm) consumeCloseBlobs(c *closeRoundCmd) {
	for _, ref := range []*BlobRef{c.ModelBlob, c.AggregateBlob} {
		if ref != nil {
			f.consumeBlob(*ref)
		}
	}
}

// pinTask keeps the bodies of t's round (the round r) on disk until the
// member's attester is done with t (unpinTask), though the round ends.
func (f *fsm) pinTask(t *attestTask, r *Round) *attestTask {
	if t == nil {
		return nil
	}
	if keys := bodyKeys(r); len(keys) > 0 {
		s := f.blobDir()
		s.pin(keys)
		s.mu.Lock()
		if s.tasks == nil {
			s.tasks = map[*attestTask][]Hash{}
		}
		s.tasks[t] = keys
		s.mu.Unlock()
	}
	return t
}

// unpinTask releases what pinTask kept for t.
func (s *blobStore) unpinTask(t *attestTask) {
	s.mu.Lock()
	keys, ok := s.tasks[t]
	delete(s.tasks, t)
	s.mu.Unlock()
	if ok {
		s.unpin(keys)
	}
}

// ---- snapshots ----

// A version 3 snapshot is a version 2 one with its JSON length-prefixed
// and a blob section after it:
//
//	"MFNFSM" || 3 || uint64 JSON length || JSON
//	records: kind uint8 (1 part, 2 accepted blob; 0 ends the section)
//	         key [32]byte || job uint16 length || bytes || round uint64
//	         total uint64 (the blob's size) || n uint64 || n bytes
//
// A part's n bytes are its file as it was (a part's file always has the
// blob's size, unwritten ranges zero); an accepted blob's are the blob,
// n = total, and must hash to the key. Snapshots without blob files are
// written as version 2, byte for byte as before.
const (
	snapshotBlobVersion = 3
	blobRecEnd          = 0
	blobRecPart         = 1
	blobRecBlob         = 2
)

// snapBlob is one file a snapshot carries: a hard link to it in a
// staging directory, so removing the file meanwhile does not matter.
type snapBlob struct {
	kind  byte
	key   Hash
	job   string
	round uint64
	total int64
	path  string
}

// snapshotBlobs lists (and links) the files a snapshot must carry: every
// part, and the bodies of the rounds still open or closing. The caller
// holds f.mu (read).
func (f *fsm) snapshotBlobs() (dir string, out []snapBlob, err error) {
	type want struct {
		snapBlob
		src string
	}
	var ws []want
	s := f.blobs
	for k, p := range f.parts {
		ws = append(ws, want{snapBlob{kind: blobRecPart, key: k, job: p.Job, round: p.Round, total: p.Total}, ""})
	}
	for _, j := range f.jobs {
		for _, r := range j.Rounds {
			if r.State != RoundOpen && r.State != RoundClosing {
				continue
			}
			for _, u := range r.Updates {
				if u.Body != nil {
					ws = append(ws, want{snapBlob{kind: blobRecBlob, key: u.Body.SHA256, job: j.Job.Spec.ID, round: r.Number, total: u.Body.Size}, ""})
				}
			}
		}
	}
	if len(ws) == 0 {
		return "", nil, nil
	}
	if s == nil || s.err != nil {
		return "", nil, fmt.Errorf("coordinator: snapshot: no blob directory")
	}
	// Records sorted by kind, then key: equal states, equal sections.
	slices.SortFunc(ws, func(a, b want) int {
		if a.kind != b.kind {
			return int(a.kind) - int(b.kind)
		}
		return bytes.Compare(a.key[:], b.key[:])
	})
	dir, err = os.MkdirTemp(s.dir, "snap-")
	if err != nil {
		return "", nil, fmt.Errorf("coordinator: snapshot: %w", err)
	}
	for i, w := range ws {
		src := s.path(w.key, w.kind == blobRecBlob)
		dst := filepath.Join(dir, fmt.Sprintf("%d", i))
		if err := os.Link(src, dst); err != nil {
			// This member's copy is missing (a write failed): the
			// snapshot goes without it rather than never being taken;
			// a member restored from it cannot open that body either.
			s.logger.Error("blob left out of a snapshot", slog.String("blob", w.key.String()), errAttr(err))
			continue
		}
		w.path = dst
		out = append(out, w.snapBlob)
	}
	if len(out) == 0 {
		os.RemoveAll(dir)
		return "", nil, nil
	}
	return dir, out, nil
}

// writeBlobSection streams the files of a snapshot after its JSON.
func writeBlobSection(w io.Writer, files []snapBlob) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	for _, b := range files {
		f, err := os.Open(b.path)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		n := min(st.Size(), b.total)
		hdr := []byte{b.kind}
		hdr = append(hdr, b.key[:]...)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(len(b.job)))
		hdr = append(hdr, b.job...)
		hdr = binary.BigEndian.AppendUint64(hdr, b.round)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(b.total))
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
		if _, err := bw.Write(hdr); err != nil {
			f.Close()
			return err
		}
		_, err = io.CopyN(bw, f, n)
		f.Close()
		if err != nil {
			return err
		}
	}
	if err := bw.WriteByte(blobRecEnd); err != nil {
		return err
	}
	return bw.Flush()
}

// restoredBlob is a record read by readBlobSection.
type restoredBlob struct {
	kind  byte
	key   Hash
	job   string
	round uint64
	total int64
}

// readBlobSection reads a snapshot's blob section into the store's
// directory: each file is written to a temporary name and renamed (an
// accepted blob already there with the right hash is kept, its bytes
// skipped). Nothing may follow the end record.
func readBlobSection(r io.Reader, s *blobStore) ([]restoredBlob, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var out []restoredBlob
	seen := map[[2]any]bool{}
	for {
		kind, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("coordinator: restore: blob section: %w", err)
		}
		if kind == blobRecEnd {
			break
		}
		if kind != blobRecPart && kind != blobRecBlob {
			return nil, fmt.Errorf("coordinator: restore: blob section: record kind %d", kind)
		}
		var fixed [32 + 2]byte
		if _, err := io.ReadFull(br, fixed[:]); err != nil {
			return nil, fmt.Errorf("coordinator: restore: blob section: %w", err)
		}
		var rb restoredBlob
		rb.kind = kind
		copy(rb.key[:], fixed[:32])
		job := make([]byte, binary.BigEndian.Uint16(fixed[32:]))
		if _, err := io.ReadFull(br, job); err != nil {
			return nil, fmt.Errorf("coordinator: restore: blob section: %w", err)
		}
		rb.job = string(job)
		var nums [24]byte
		if _, err := io.ReadFull(br, nums[:]); err != nil {
			return nil, fmt.Errorf("coordinator: restore: blob section: %w", err)
		}
		rb.round = binary.BigEndian.Uint64(nums[:8])
		total, n := binary.BigEndian.Uint64(nums[8:16]), binary.BigEndian.Uint64(nums[16:])
		switch {
		case validID("job", rb.job) != nil:
			return nil, fmt.Errorf("coordinator: restore: blob section: job id %q", rb.job)
		case total == 0 || total > maxBlobSize || n > total || (kind == blobRecBlob && n != total):
			return nil, fmt.Errorf("coordinator: restore: blob section: blob %s of %d bytes with %d", rb.key, total, n)
		case seen[[2]any{kind, rb.key}]:
			return nil, fmt.Errorf("coordinator: restore: blob section: blob %s twice", rb.key)
		}
		seen[[2]any{kind, rb.key}] = true
		rb.total = int64(total)
		if err := s.restoreFile(br, rb, int64(n)); err != nil {
			return nil, err
		}
		out = append(out, rb)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("coordinator: restore: data after the blob section")
	}
	return out, nil
}

// restoreFile writes one record's n bytes from r.
func (s *blobStore) restoreFile(r io.Reader, rb restoredBlob, n int64) error {
	if s.err != nil {
		return s.err
	}
	final := s.path(rb.key, rb.kind == blobRecBlob)
	if rb.kind == blobRecBlob {
		if h, size, err := hashFile(final); err == nil && size == n && h == rb.key {
			if _, err := io.CopyN(io.Discard, r, n); err != nil {
				return fmt.Errorf("coordinator: restore: blob %s: %w", rb.key, err)
			}
			return nil
		}
	}
	tmp, err := os.CreateTemp(s.dir, "restore-*.tmp")
	if err != nil {
		return fmt.Errorf("coordinator: restore: %w", err)
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	_, err = io.CopyN(io.MultiWriter(bw, h), r, n)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && rb.kind == blobRecPart {
		err = tmp.Truncate(rb.total)
	}
	if err == nil && rb.kind == blobRecBlob && Hash(h.Sum(nil)) != rb.key {
		err = fmt.Errorf("bytes do not hash to the key")
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), final)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("coordinator: restore: blob %s: %w", rb.key, err)
	}
	return nil
}

// sweep removes the files no restored record names (orphans of a state
// the snapshot replaced), but not the blobs the attester still holds.
func (s *blobStore) sweep(keep []restoredBlob) {
	blobs, parts := s.files()
	kb, kp := map[Hash]bool{}, map[Hash]bool{}
	for _, rb := range keep {
		if rb.kind == blobRecBlob {
			kb[rb.key] = true
		} else {
			kp[rb.key] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range blobs {
		if !kb[k] && s.pins[k] == 0 {
			os.Remove(s.path(k, true))
		}
	}
	for k := range parts {
		if !kp[k] {
			os.Remove(s.path(k, false))
		}
	}
}
