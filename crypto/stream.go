package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// Streaming seal and open: the same envelope bytes as Seal and Open, for
// updates too big to hold twice (or at all) in memory. The statement must
// sign the update's SHA-256, so a sender hashes its update once before
// sealing (HashUpdate) and the sealer checks the hash again while it
// encrypts; the receiver decrypts chunk by chunk, verifying the statement
// in the first 64 KiB chunk before it reads further, and hashes the update
// as it goes.

// HashUpdate returns the SHA-256 of the bytes r yields and their count.
func HashUpdate(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, n, err
}

// StreamSealer seals one update that is read from an io.Reader while the
// envelope is written, without holding either in memory. The envelope's
// size is known before the first byte is written (Size), so a sender can
// declare it up front.
type StreamSealer struct {
	header    []byte // age header and payload nonce
	w         io.WriteCloser
	sink      *switchWriter
	head      []byte // container prefix, statement, signature, update length
	updateLen int64
	want      [32]byte
	size      int64
	used      bool
}

// switchWriter buffers writes until out is set.
type switchWriter struct {
	buf bytes.Buffer
	out io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	if s.out == nil {
		return s.buf.Write(p)
	}
	return s.out.Write(p)
}

// NewStreamSealer prepares the envelope of an update of updateLen bytes
// whose SHA-256 stmt.UpdateHash already holds (a zero hash is
// ErrMalformed): it signs stmt with signer and encrypts to recipients, as
// Seal does.
func NewStreamSealer(stmt *Statement, updateLen int64, signer ed25519.PrivateKey, recipients []age.Recipient) (*StreamSealer, error) {
	switch {
	case stmt == nil:
		return nil, fmt.Errorf("seal: nil statement: %w", ErrMalformed)
	case len(signer) != ed25519.PrivateKeySize:
		return nil, fmt.Errorf("seal: signing key is %d bytes, want %d: %w", len(signer), ed25519.PrivateKeySize, ErrMalformed)
	case len(recipients) == 0:
		return nil, errors.New("seal: no recipients")
	case stmt.UpdateHash == ([32]byte{}):
		return nil, fmt.Errorf("seal: a streamed update needs its hash in the statement: %w", ErrMalformed)
	case updateLen < 0:
		return nil, fmt.Errorf("seal: negative update length: %w", ErrMalformed)
	}
	sb, err := stmt.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	sig := SignStatement(signer, sb)
	sink := &switchWriter{}
	w, err := age.Encrypt(sink, recipients...)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	head := make([]byte, 0, containerFixedLen+len(sb))
	head = append(head, EnvelopeMagic...)
	head = append(head, EnvelopeVersion)
	head = binary.BigEndian.AppendUint16(head, uint16(len(sb)))
	head = append(head, sb...)
	head = append(head, sig...)
	head = binary.BigEndian.AppendUint64(head, uint64(updateLen))
	header := bytes.Clone(sink.buf.Bytes()) // header and nonce
	plain := int64(len(head)) + updateLen
	return &StreamSealer{
		header: header, w: w, sink: sink, head: head, updateLen: updateLen, want: stmt.UpdateHash,
		size: int64(len(header)) - ageNonceSize + agePayloadSize(plain),
	}, nil
}

// Size returns the envelope's size in bytes.
func (s *StreamSealer) Size() int64 { return s.size }

// WriteTo writes the envelope to w, reading exactly the update's length
// from update. If update ends early, yields more, or hashes to another
// value than the statement signs, WriteTo fails (ErrMalformed) before it
// writes the last chunk, so the bytes written never form a valid
// envelope. A StreamSealer writes once.
func (s *StreamSealer) WriteTo(w io.Writer, update io.Reader) (int64, error) {
	if s.used {
		return 0, errors.New("seal: StreamSealer used twice")
	}
	s.used = true
	cw := &countWriter{w: w}
	if _, err := cw.Write(s.header); err != nil {
		return cw.n, fmt.Errorf("seal: %w", err)
	}
	s.sink.out = cw
	if _, err := s.w.Write(s.head); err != nil {
		return cw.n, fmt.Errorf("seal: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(s.w, io.TeeReader(io.LimitReader(update, s.updateLen), h))
	if err != nil {
		return cw.n, fmt.Errorf("seal: reading the update: %w", err)
	}
	if n != s.updateLen {
		return cw.n, fmt.Errorf("seal: update ended after %d of %d bytes: %w", n, s.updateLen, ErrMalformed)
	}
	var one [1]byte
	if k, _ := io.ReadFull(update, one[:]); k != 0 {
		return cw.n, fmt.Errorf("seal: update is longer than %d bytes: %w", s.updateLen, ErrMalformed)
	}
	var got [32]byte
	h.Sum(got[:0])
	if got != s.want {
		return cw.n, fmt.Errorf("seal: update hashes to %x, statement signs %x: %w", got, s.want, ErrMalformed)
	}
	if err := s.w.Close(); err != nil {
		return cw.n, fmt.Errorf("seal: %w", err)
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// StreamOpened is a verified streamed envelope's content; the update went
// to OpenStream's writer.
type StreamOpened struct {
	Statement      *Statement
	StatementBytes []byte
	Signature      []byte
	PublicKey      ed25519.PublicKey
	UpdateLen      int64 // bytes of the update written out
}

// OpenStream is Open for an envelope of size bytes read from r: it
// decrypts one 64 KiB chunk at a time, verifies the statement (first
// chunk) before reading on, writes the update's bytes to dst (nil
// discards them) and checks their hash after the last chunk. Memory is
// bounded by the header limit and one chunk, whatever size is. The limits
// and errors are Open's; a reader that ends early is ErrMalformed, and
// dst's errors are returned as they are. On error dst may have received
// part of the update: the caller discards it.
func OpenStream(r io.Reader, size int64, ids []age.Identity, keys NodeKeyLookup, limits Limits, dst io.Writer) (*StreamOpened, error) {
	limits = limits.withDefaults()
	if max := limits.MaxSealedSize(); size > max {
		return nil, fmt.Errorf("open: sealed envelope is %d bytes, limit %d: %w", size, max, ErrTooLarge)
	}
	if size < 0 {
		return nil, fmt.Errorf("open: negative size: %w", ErrMalformed)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("open: no identities: %w", ErrNotRecipient)
	}
	const encChunk = ageChunk + ageTagSize
	// The header, the nonce and the first chunk come from one read.
	pre := make([]byte, min(size, limits.MaxHeaderBytes+ageNonceSize+encChunk))
	if _, err := io.ReadFull(r, pre); err != nil {
		return nil, fmt.Errorf("open: reading the envelope: %v: %w", err, ErrMalformed)
	}
	hdrLen, fileKey, err := decryptHeader(pre, size, ids, limits.MaxHeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if size-int64(hdrLen) < ageNonceSize {
		return nil, fmt.Errorf("open: age payload: %d bytes, no room for the nonce: %w", size-int64(hdrLen), ErrMalformed)
	}
	nonce := pre[hdrLen : hdrLen+ageNonceSize]
	chunks, plainSize, err := streamLayout(size - int64(hdrLen) - ageNonceSize)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	key, err := hkdf.Key(sha256.New, fileKey, nonce, "payload", chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("open: age payload key: %v: %w", err, ErrMalformed)
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("open: age payload key: %v: %w", err, ErrMalformed)
	}
	src := io.MultiReader(bytes.NewReader(pre[hdrLen+ageNonceSize:]), r)
	buf := make([]byte, encChunk)
	next := func(i int64) ([]byte, error) {
		n := min(int64(encChunk), size-int64(hdrLen)-ageNonceSize-i*encChunk)
		if _, err := io.ReadFull(src, buf[:n]); err != nil {
			return nil, fmt.Errorf("open: reading chunk %d: %v: %w", i, err, ErrMalformed)
		}
		var nc [chacha20poly1305.NonceSize]byte
		binary.BigEndian.PutUint64(nc[3:11], uint64(i))
		if i == chunks-1 {
			nc[11] = 1
		}
		out, err := aead.Open(buf[:0], nc[:], buf[:n], nil)
		if err != nil {
			return nil, fmt.Errorf("open: age payload chunk %d of %d fails authentication: %w", i, chunks, ErrMalformed)
		}
		return out, nil
	}
	first, err := next(0)
	if err != nil {
		return nil, err
	}
	if plainSize > int64(^uint(0)>>1) {
		return nil, fmt.Errorf("open: %d bytes: %w", plainSize, ErrTooLarge)
	}
	op, updOff, err := openHead(first, int(plainSize), keys, limits)
	if err != nil {
		return nil, err
	}
	sigOff := updOff - 8 - ed25519.SignatureSize
	out := &StreamOpened{
		Statement: op.Statement, PublicKey: op.PublicKey,
		StatementBytes: bytes.Clone(first[containerPrefixLen:sigOff]),
		Signature:      bytes.Clone(first[sigOff : sigOff+ed25519.SignatureSize]),
		UpdateLen:      plainSize - int64(updOff),
	}
	if dst == nil {
		dst = io.Discard
	}
	h := sha256.New()
	emit := func(p []byte) error {
		h.Write(p)
		_, err := dst.Write(p)
		return err
	}
	if err := emit(first[updOff:]); err != nil {
		return nil, err
	}
	for i := int64(1); i < chunks; i++ {
		p, err := next(i)
		if err != nil {
			return nil, err
		}
		if err := emit(p); err != nil {
			return nil, err
		}
	}
	return streamHashCheck(out, h)
}

func streamHashCheck(op *StreamOpened, h hash.Hash) (*StreamOpened, error) {
	var got [32]byte
	h.Sum(got[:0])
	if got != op.Statement.UpdateHash {
		return nil, fmt.Errorf("open: update of node %q hashes to %x, statement signs %x: %w", op.Statement.NodeID, got, op.Statement.UpdateHash, ErrBadSignature)
	}
	return op, nil
}

// decryptHeader finds the age header at the start of pre (the first bytes
// of an envelope of size bytes), checks its MAC and unwraps the file key.
func decryptHeader(pre []byte, size int64, ids []age.Identity, maxHeader int64) (int, []byte, error) {
	search := pre[:min(int64(len(pre)), maxHeader)]
	end := bytes.Index(search, []byte("\n--- "))
	nl := -1
	if end >= 0 {
		nl = bytes.IndexByte(search[end+1:], '\n')
	}
	if nl < 0 {
		if size > maxHeader {
			return 0, nil, fmt.Errorf("age header: no MAC line in the first %d bytes: %w", maxHeader, ErrTooLarge)
		}
		return 0, nil, fmt.Errorf("age header: no MAC line: %w", ErrMalformed)
	}
	hdr := pre[:end+1+nl+1]
	fileKey, err := age.DecryptHeader(hdr, ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return 0, nil, fmt.Errorf("%v: %w", err, ErrNotRecipient)
		}
		return 0, nil, fmt.Errorf("age header: %v: %w", err, ErrMalformed)
	}
	return len(hdr), fileKey, nil
}

// UpdateStreamCheck checks an encoded update as it streams past (an
// io.Writer), without holding it: the header against the expected count
// and a count limit, every value finite. Call Close after the last byte.
// Errors are UpdateHeader's and *NonFiniteError, as DecodeUpdate's.
type UpdateStreamCheck struct {
	// MaxLen bounds the value count; <= 0 means DefaultMaxUpdateLen.
	MaxLen int
	// Total is the encoded update's length in bytes, which the header's
	// count must match; zero means unknown (Close then checks that the
	// values written are exactly the header's count).
	Total int64
	// Header is the parsed header, once its 14 bytes were written.
	Header UpdateHeader

	hdr  []byte
	part []byte // a value split across writes
	idx  int64  // values seen
	err  error
}

// Write implements io.Writer.
func (c *UpdateStreamCheck) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n := len(p)
	if len(c.hdr) < UpdateHeaderLen {
		k := min(UpdateHeaderLen-len(c.hdr), len(p))
		c.hdr = append(c.hdr, p[:k]...)
		p = p[k:]
		if len(c.hdr) < UpdateHeaderLen {
			return n, nil
		}
		// Check the header against a fake total: ParseUpdateHeader
		// compares the count with the length of its input.
		maxLen := c.MaxLen
		if maxLen <= 0 {
			maxLen = DefaultMaxUpdateLen
		}
		if _, err := ParseUpdateHeader(c.hdr, maxLen); err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Field != "count" || errors.Is(err, ErrTooLarge) {
				c.err = err
				return 0, err
			}
		}
		c.Header = UpdateHeader{DType: DType(c.hdr[5]), Len: binary.LittleEndian.Uint64(c.hdr[6:])}
		size := uint64(c.Header.DType.Size())
		body := uint64(c.Total - UpdateHeaderLen)
		if c.Total != 0 && (c.Total < UpdateHeaderLen || body%size != 0 || body/size != c.Header.Len) {
			c.err = &FormatError{What: "update", Field: "count", Offset: 6, Err: fmt.Errorf("%d %v values need %d bytes, have %d: %w", c.Header.Len, c.Header.DType, c.Header.Len*size, body, ErrMalformed)}
			return 0, c.err
		}
	}
	size := c.Header.DType.Size()
	if len(c.part) > 0 {
		k := min(size-len(c.part), len(p))
		c.part = append(c.part, p[:k]...)
		p = p[k:]
		if len(c.part) < size {
			return n, nil
		}
		if err := c.value(c.part); err != nil {
			return 0, err
		}
		c.part = c.part[:0]
	}
	whole := len(p) / size * size
	if err := c.values(p[:whole]); err != nil {
		return 0, err
	}
	c.part = append(c.part, p[whole:]...)
	return n, nil
}

// values checks whole values; a value is non-finite when its exponent
// bits are all ones.
func (c *UpdateStreamCheck) values(p []byte) error {
	if c.Header.DType == Float32 {
		for i := 0; i+4 <= len(p); i += 4 {
			if binary.LittleEndian.Uint32(p[i:])&0x7f800000 == 0x7f800000 {
				c.idx += int64(i / 4)
				return c.value(p[i : i+4])
			}
		}
		c.idx += int64(len(p) / 4)
		return c.bound()
	}
	for i := 0; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:])&0x7ff0000000000000 == 0x7ff0000000000000 {
			c.idx += int64(i / 8)
			return c.value(p[i : i+8])
		}
	}
	c.idx += int64(len(p) / 8)
	return c.bound()
}

// bound fails once more values arrived than the header counts.
func (c *UpdateStreamCheck) bound() error {
	if uint64(c.idx) > c.Header.Len {
		c.err = &FormatError{What: "update", Field: "values", Offset: UpdateHeaderLen, Err: fmt.Errorf("more than the %d values counted: %w", c.Header.Len, ErrMalformed)}
		return c.err
	}
	return nil
}

func (c *UpdateStreamCheck) value(b []byte) error {
	var v float64
	if c.Header.DType == Float32 {
		v = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
	} else {
		v = math.Float64frombits(binary.LittleEndian.Uint64(b))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		c.err = &NonFiniteError{Index: int(c.idx), Value: v}
		return c.err
	}
	c.idx++
	if uint64(c.idx) > c.Header.Len {
		c.err = &FormatError{What: "update", Field: "values", Offset: UpdateHeaderLen, Err: fmt.Errorf("more than the %d values counted: %w", c.Header.Len, ErrMalformed)}
		return c.err
	}
	return nil
}

// Close reports a short update (fewer values than its header counts).
func (c *UpdateStreamCheck) Close() error {
	if c.err != nil {
		return c.err
	}
	if len(c.hdr) < UpdateHeaderLen || len(c.part) != 0 || uint64(c.idx) != c.Header.Len {
		return &FormatError{What: "update", Field: "values", Offset: UpdateHeaderLen, Err: fmt.Errorf("update ended after %d values: %w", c.idx, ErrMalformed)}
	}
	return nil
}
