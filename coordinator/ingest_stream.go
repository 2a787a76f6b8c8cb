package coordinator

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// Streamed ingest: an update too big for one protocol frame arrives as a
// stream (protocol.SubmitStream). The member never holds the sealed
// envelope whole while receiving and verifying it: the bytes are spilled
// to a temporary file under the data directory (incomingDir), then
// opened from that file one 64 KiB age chunk at a time, the statement
// verified from the first chunk, the update's values checked (count,
// finite) and hashed as they are decrypted, and the plaintext discarded.
// Every failure removes the file at once.
//
// The accepted update then enters the log as a blob (blob.go): the sealed
// bytes, read from the file, as blob-chunk entries of at most 1 MiB
// (proposed pipelined, blobInflight at a time), then a small add-update
// entry naming them (Body). The Ack is sent once that entry applied, and
// Raft commits in order, so an acknowledged streamed update is on a
// quorum's disk and survives the loss of any minority as before; its
// size is bounded by the job's dim (StreamLimit) and by maxBlobSize.

// incomingDir is the spill directory under a member's data directory.
const incomingDir = "incoming"

// StreamHint is what a stream's header declares before its bytes: the
// round it is for and the envelope's size. The statement inside must
// name the same job and round.
type StreamHint struct {
	Job   string
	Round uint64
	Size  int64
}

// StreamOpener is implemented by Openers that can open an envelope read
// from a stream (CryptoOpener): like Open, but the update's bytes are
// written to dst as they are decrypted instead of returned, and the
// returned Envelope's Update is nil.
type StreamOpener interface {
	OpenStream(r io.Reader, size int64, keys KeyLookup, dst io.Writer) (*Envelope, error)
}

// StreamLimit returns the largest sealed envelope a streamed update of a
// job of dim values may have: a float64 update of dim values (a float32
// one is half as big) with its statement, signature and age overhead.
func StreamLimit(dim int) int64 {
	return crypto.Limits{MaxUpdateBytes: int64(crypto.UpdateHeaderLen) + 8*int64(dim)}.MaxSealedSize()
}

// SubmitStream accepts one sealed update read from body, whose size and
// round hint declares, and returns its acknowledgement once committed, as
// Submit does (same checks, same duplicate and retry semantics, same
// errors). Before reading a byte it refuses a stream for an unknown job
// (ErrNotFound), a round that is not open (ErrRoundClosed), or one larger
// than the job's updates can be (ErrBadUpdate naming StreamLimit); a
// statement for another job or round than declared is ErrBadUpdate.
// body's own errors (protocol.ErrStreamTruncated, ErrStreamTooLarge,
// ErrStreamStalled) are returned wrapped in ErrBadUpdate.
func (c *Coordinator) SubmitStream(ctx context.Context, peerKey ed25519.PublicKey, hint StreamHint, body io.Reader) (Ack, error) {
	ack, err := c.submitStream(ctx, peerKey, hint, body)
	if err != nil {
		c.metrics.updates.WithLabelValues("rejected", rejectReason(err)).Inc()
		return Ack{}, err
	}
	c.metrics.updates.WithLabelValues("accepted", "").Inc()
	return ack, nil
}

func (c *Coordinator) submitStream(ctx context.Context, peerKey ed25519.PublicKey, hint StreamHint, body io.Reader) (Ack, error) {
	if c.closed.Load() {
		return Ack{}, ErrClosed
	}
	if err := c.awaitLeading(ctx); err != nil {
		return Ack{}, err
	}
	if err := c.checkStreamHint(peerKey, hint); err != nil {
		return Ack{}, err
	}
	if peerKey != nil {
		if err := c.allow("key:" + hex.EncodeToString(peerKey)); err != nil {
			return Ack{}, err
		}
	}
	so, ok := c.cfg.Opener.(StreamOpener)
	if !ok {
		return Ack{}, fmt.Errorf("%w: this member's opener cannot open streamed updates", ErrBadUpdate)
	}
	if !c.reserveSpill(hint.Size) {
		return Ack{}, &RateLimitedError{Node: fmt.Sprintf("(any: streams being received use the member's %d-byte budget)", c.maxSpill()), RetryAfter: spillRetry}
	}
	defer c.releaseSpill(hint.Size)
	sp, err := c.spill(body, hint.Size)
	if err != nil {
		return Ack{}, err
	}
	defer sp.remove()

	span := startIngestSpan(ctx, "ingest.open")
	j, _ := c.fsm.job(hint.Job)
	check := &crypto.UpdateStreamCheck{MaxLen: j.Spec.Dim}
	env, err := sp.open(so, c.fsm.nodeKey, check)
	span.end(err)
	if err != nil {
		switch {
		case errors.Is(err, ErrRevoked):
			return Ack{}, err
		case errors.Is(err, ErrUnknownNode), errors.Is(err, crypto.ErrUnknownNode):
			return Ack{}, fmt.Errorf("%w: %v", ErrUnknownNode, err)
		}
		return Ack{}, fmt.Errorf("%w: %w", ErrBadUpdate, err)
	}
	noteIngest(ctx, env.Job, env.Round, env.Node)
	if env.Job != hint.Job || env.Round != hint.Round {
		return Ack{}, fmt.Errorf("%w: stream declared job %s round %d, statement names job %s round %d", ErrBadUpdate, hint.Job, hint.Round, env.Job, env.Round)
	}
	span = startIngestSpan(ctx, "ingest.checks")
	j, err = c.checkEnvelope(peerKey, env)
	if err == nil && check.Header.Len != uint64(j.Spec.Dim) {
		err = fmt.Errorf("%w: update has %d values, job %s has dim %d", ErrBadUpdate, check.Header.Len, j.Spec.ID, j.Spec.Dim)
	}
	span.end(err)
	if err != nil {
		return c.resolveDuplicate(err, env.UpdateHash)
	}
	ref := BlobRef{SHA256: sp.sum, Size: sp.size}
	span = startIngestSpan(ctx, "ingest.raft_blob")
	err = c.proposeBlob(ctx, env.Job, env.Round, ref.SHA256, ref.Size, sp.f)
	span.end(err)
	if errors.Is(err, ErrStale) { // the round ended while the chunks went in
		err = fmt.Errorf("%w: job %s round %d: %v", ErrRoundClosed, env.Job, env.Round, err)
	}
	if err != nil {
		return Ack{}, err
	}
	return c.commitUpdate(ctx, j, env, nil, &ref)
}

// checkStreamHint refuses, before any byte is read, a stream for an
// unknown job, a round that takes no more updates (unless this node
// already has one there: the stream may be a retry, resolved once its
// hash is known), or one over the job's size bound.
func (c *Coordinator) checkStreamHint(peerKey ed25519.PublicKey, h StreamHint) error {
	j, ok := c.fsm.job(h.Job)
	if !ok {
		return fmt.Errorf("%w: job %s", ErrNotFound, h.Job)
	}
	if limit := StreamLimit(j.Spec.Dim); h.Size > limit || h.Size <= 0 {
		return fmt.Errorf("%w: stream of %d bytes, job %s (dim %d) takes at most %d", ErrBadUpdate, h.Size, h.Job, j.Spec.Dim, limit)
	}
	if h.Size > maxBlobSize {
		return fmt.Errorf("%w: stream of %d bytes is over the %d-byte limit of a body", ErrBadUpdate, h.Size, int64(maxBlobSize))
	}
	if peerKey != nil {
		if node, ok := c.fsm.nodeByKey(peerKey); ok {
			if _, _, dup := c.fsm.ackFor(h.Job, h.Round, node); dup {
				return nil
			}
		}
	}
	s, ok := c.fsm.roundSummary(h.Job, h.Round)
	switch {
	case !ok && h.Round > j.Rounds && j.State == JobRunning:
		return fmt.Errorf("%w: job %s round %d", ErrRoundNotOpen, h.Job, h.Round)
	case !ok:
		return fmt.Errorf("%w: job %s round %d", ErrRoundClosed, h.Job, h.Round)
	case s.State != RoundOpen:
		return fmt.Errorf("%w: job %s round %d is %s", ErrRoundClosed, h.Job, h.Round, s.State)
	case s.Updates >= j.Spec.MaxUpdates:
		return fmt.Errorf("%w: job %s round %d is full (%d updates)", ErrRoundClosed, h.Job, h.Round, s.Updates)
	}
	return nil
}

// checkEnvelope is checkUpdate without the values (a streamed update's
// values were checked while it was opened).
func (c *Coordinator) checkEnvelope(peerKey ed25519.PublicKey, env *Envelope) (Job, error) {
	return c.checkUpdateHead(peerKey, env)
}

// spilled is a stream's sealed bytes in a temporary file.
type spilled struct {
	f    *os.File
	size int64
	sum  Hash // SHA-256 of the bytes (the blob's key)
}

// spillDir returns (creating it once, and emptying it of files left by a
// crash) the directory streams spill to: DATA/incoming, or a directory
// under the system's temporary directory for in-memory storage.
func (c *Coordinator) spillDir() (string, error) {
	c.spillOnce.Do(func() {
		dir := ""
		if c.cfg.Storage != nil && c.cfg.Storage.Dir != "" {
			dir = filepath.Join(c.cfg.Storage.Dir, incomingDir)
			os.RemoveAll(dir)
			c.spillErr = os.MkdirAll(dir, 0o700)
		} else {
			dir, c.spillErr = os.MkdirTemp("", "mfn-incoming-")
		}
		c.spillPath = dir
	})
	return c.spillPath, c.spillErr
}

// spill copies exactly size bytes of body to a new temporary file. On any
// error the file is already removed.
func (c *Coordinator) spill(body io.Reader, size int64) (*spilled, error) {
	dir, err := c.spillDir()
	if err != nil {
		return nil, fmt.Errorf("coordinator: spill directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "stream-*")
	if err != nil {
		return nil, fmt.Errorf("coordinator: spill file: %w", err)
	}
	sp := &spilled{f: f, size: size}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, size))
	copy(sp.sum[:], h.Sum(nil))
	if err == nil && n < size {
		err = fmt.Errorf("%w: %d of %d bytes", protocol.ErrStreamTruncated, n, size)
	}
	if err == nil {
		// body must end here (the protocol checks that the sender
		// closed its side after the declared bytes).
		var one [1]byte
		if k, rerr := body.Read(one[:]); k > 0 {
			err = fmt.Errorf("%w: more than the declared %d bytes", protocol.ErrStreamTooLarge, size)
		} else if rerr != nil && !errors.Is(rerr, io.EOF) {
			err = rerr
		}
	}
	if err != nil {
		sp.remove()
		if errors.Is(err, protocol.ErrStreamTruncated) || errors.Is(err, protocol.ErrStreamTooLarge) || errors.Is(err, protocol.ErrStreamStalled) {
			return nil, fmt.Errorf("%w: %w", ErrBadUpdate, err)
		}
		return nil, fmt.Errorf("coordinator: spilling a stream: %w", err)
	}
	return sp, nil
}

// open verifies the spilled envelope, streaming its update into check.
func (sp *spilled) open(so StreamOpener, keys KeyLookup, check *crypto.UpdateStreamCheck) (*Envelope, error) {
	if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	env, err := so.OpenStream(bufio.NewReaderSize(sp.f, 256<<10), sp.size, keys, check)
	if err != nil {
		return nil, err
	}
	if err := check.Close(); err != nil {
		return nil, err
	}
	return env, nil
}

// remove closes and deletes the file.
func (sp *spilled) remove() {
	sp.f.Close()
	os.Remove(sp.f.Name())
}

// spillState is the Coordinator's spill directory, made on first use,
// and the bytes of the streams being received into it.
type spillState struct {
	spillOnce  sync.Once
	spillPath  string
	spillErr   error
	spillBytes atomic.Int64
	spillLimit int64 // tests; zero means MaxSpillBytes
}

// MaxSpillBytes bounds the declared sizes of the streams a member
// receives at once (disk in DATA/incoming, and the work behind it): a
// stream beyond it is answered rate limited (retry after spillRetry)
// before a byte is read. 2 GiB is 20 streams of 100 MB.
const MaxSpillBytes = 2 << 30

const spillRetry = time.Second

// reserveSpill takes n bytes of the spill budget, or reports false.
func (c *Coordinator) reserveSpill(n int64) bool {
	if c.spillBytes.Add(n) > c.maxSpill() {
		c.spillBytes.Add(-n)
		return false
	}
	return true
}

func (c *Coordinator) releaseSpill(n int64) { c.spillBytes.Add(-n) }

// maxSpill is MaxSpillBytes, lowered by tests.
func (c *Coordinator) maxSpill() int64 {
	if c.spillLimit > 0 {
		return c.spillLimit
	}
	return MaxSpillBytes
}
