package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"

	"filippo.io/age"
)

// The inner container sealed by age (version 1), integers big-endian:
//
//	magic        "MFNE"
//	version      uint8 (= EnvelopeVersion)
//	stmt length  uint16 (<= MaxStatementLen)
//	statement    canonical Statement bytes
//	signature    64 bytes, Ed25519 over StatementDomain || statement
//	update len   uint64
//	update       the encoded update bytes
const (
	// EnvelopeMagic opens the sealed container's plaintext.
	EnvelopeMagic = "MFNE"
	// EnvelopeVersion is the only container version Seal writes and Open
	// accepts.
	EnvelopeVersion uint8 = 1

	containerPrefixLen = 4 + 1 + 2
	containerFixedLen  = containerPrefixLen + ed25519.SignatureSize + 8
)

// Default limits used by Open for zero Limits fields.
const (
	// DefaultMaxUpdateBytes is 64 MiB plus the update header: 16 Mi float32
	// values.
	DefaultMaxUpdateBytes = 64<<20 + UpdateHeaderLen
	// DefaultMaxHeaderBytes bounds the age header. An X25519 recipient
	// stanza takes 98 bytes and a hybrid (ML-KEM-768 + X25519) one about
	// 1.6 KiB, so 16 KiB covers any reasonable coordinator set.
	DefaultMaxHeaderBytes = 16 << 10
)

// ageChunk is the STREAM chunk size of age's payload (age-encryption.org/v1:
// 64 KiB plaintext chunks, each followed by a 16-byte Poly1305 tag, after a
// 16-byte nonce).
const (
	ageChunk     = 64 << 10
	ageTagSize   = 16
	ageNonceSize = 16
)

// agePayloadSize returns the size of age's encrypted payload for a plaintext
// of n bytes: nonce, plaintext, one tag per chunk (at least one chunk).
func agePayloadSize(n int64) int64 {
	chunks := (n + ageChunk - 1) / ageChunk
	if chunks == 0 {
		chunks = 1
	}
	return ageNonceSize + n + chunks*ageTagSize
}

// Limits bounds what Open accepts. The zero value uses the defaults.
type Limits struct {
	// MaxUpdateBytes is the largest encoded update accepted, in bytes.
	// Zero means DefaultMaxUpdateBytes.
	MaxUpdateBytes int64
	// MaxHeaderBytes is the largest age header accepted, in bytes.
	// Zero means DefaultMaxHeaderBytes.
	MaxHeaderBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxUpdateBytes <= 0 {
		l.MaxUpdateBytes = DefaultMaxUpdateBytes
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

// MaxSealedSize returns the largest sealed envelope Open accepts under l:
// the age header bound plus the age payload of the largest container.
func (l Limits) MaxSealedSize() int64 {
	l = l.withDefaults()
	if l.MaxUpdateBytes > math.MaxInt64/2 || l.MaxHeaderBytes > math.MaxInt64/4 {
		return math.MaxInt64
	}
	return l.MaxHeaderBytes + agePayloadSize(containerFixedLen+MaxStatementLen+l.MaxUpdateBytes)
}

// NodeKeyLookup resolves a statement's node id to the node's enrolled
// Ed25519 public key. It returns an error wrapping ErrUnknownNode for a
// node that is not enrolled (or no longer is); any other error is passed
// through by Open.
type NodeKeyLookup interface {
	NodePublicKey(nodeID string) (ed25519.PublicKey, error)
}

// NodeKeys is an in-memory NodeKeyLookup from node id to public key.
type NodeKeys map[string]ed25519.PublicKey

// NodePublicKey returns the key enrolled for nodeID or ErrUnknownNode.
func (k NodeKeys) NodePublicKey(nodeID string) (ed25519.PublicKey, error) {
	pub, ok := k[nodeID]
	if !ok {
		return nil, fmt.Errorf("node %q: %w", nodeID, ErrUnknownNode)
	}
	return pub, nil
}

// Seal signs stmt with signer and encrypts the statement, the signature and
// the update to every recipient with age (sign-then-encrypt: the signature
// is inside the ciphertext, so it cannot be stripped and replaced, and only
// the coordinators can read the update).
//
// If stmt.UpdateHash is zero, Seal sets it to SHA-256(update); otherwise it
// must equal that hash, or Seal fails with an error wrapping ErrMalformed.
// Seal also fails (ErrMalformed, ErrTooLarge, ErrVersion) if stmt does not
// encode, and with an error from age if recipients is empty or the
// recipients cannot be mixed. update is sealed as given; callers pass
// EncodeUpdate's output.
func Seal(stmt *Statement, update []byte, signer ed25519.PrivateKey, recipients []age.Recipient) ([]byte, error) {
	if stmt == nil {
		return nil, fmt.Errorf("seal: nil statement: %w", ErrMalformed)
	}
	if len(signer) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("seal: signing key is %d bytes, want %d: %w", len(signer), ed25519.PrivateKeySize, ErrMalformed)
	}
	if len(recipients) == 0 {
		return nil, errors.New("seal: no recipients")
	}
	sum := sha256.Sum256(update)
	if stmt.UpdateHash == ([32]byte{}) {
		stmt.UpdateHash = sum
	} else if stmt.UpdateHash != sum {
		return nil, fmt.Errorf("seal: statement update hash %x does not match the update (%x): %w", stmt.UpdateHash, sum, ErrMalformed)
	}
	sb, err := stmt.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	sig := SignStatement(signer, sb)

	plain := int64(containerFixedLen + len(sb) + len(update))
	var out bytes.Buffer
	out.Grow(int(agePayloadSize(plain)) + 128 + 128*len(recipients))
	w, err := age.Encrypt(&out, recipients...)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	var prefix [containerPrefixLen]byte
	copy(prefix[:], EnvelopeMagic)
	prefix[4] = EnvelopeVersion
	binary.BigEndian.PutUint16(prefix[5:], uint16(len(sb)))
	var ulen [8]byte
	binary.BigEndian.PutUint64(ulen[:], uint64(len(update)))
	for _, part := range [][]byte{prefix[:], sb, sig, ulen[:], update} {
		if _, err := w.Write(part); err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return out.Bytes(), nil
}

// Opened is a verified envelope's content. Each byte slice is its own
// allocation except Update, which shares the decrypted container's buffer.
type Opened struct {
	Statement      *Statement        // the parsed statement
	StatementBytes []byte            // its canonical bytes, as signed
	Signature      []byte            // Ed25519 signature over StatementDomain || StatementBytes
	PublicKey      ed25519.PublicKey // the node key the signature verified under
	Update         []byte            // the update bytes; SHA-256 equals Statement.UpdateHash
}

// Open decrypts a sealed envelope with any of ids, verifies the statement's
// signature under the key keys returns for its node id, and checks that the
// update matches the signed hash. It returns the content only if every check
// passed. The update bytes are returned as sealed: decode them with
// DecodeUpdate.
//
// Work and memory are bounded before they are spent: a sealed input longer
// than limits.MaxSealedSize fails with ErrTooLarge before decryption; the
// first 64 KiB chunk, which holds the statement, is decrypted and the
// signature verified before the buffer for the update is allocated; that
// buffer is sized from the ciphertext length, which the update length
// field must match.
//
// Errors wrap one sentinel: ErrNotRecipient (no identity matches the age
// header, including a damaged recipient stanza), ErrMalformed (damaged or
// truncated ciphertext, bad container or statement encoding, trailing
// data), ErrVersion, ErrTooLarge, ErrUnknownNode (from keys; other errors
// from keys are wrapped as they are), or ErrBadSignature (signature or
// update hash mismatch).
func Open(sealed []byte, ids []age.Identity, keys NodeKeyLookup, limits Limits) (*Opened, error) {
	limits = limits.withDefaults()
	if max := limits.MaxSealedSize(); int64(len(sealed)) > max {
		return nil, fmt.Errorf("open: sealed envelope is %d bytes, limit %d: %w", len(sealed), max, ErrTooLarge)
	}
	p, err := openPayload(sealed, ids, limits.MaxHeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	// The first chunk holds the statement. Anyone can encrypt to the
	// coordinators, so verify it before allocating for a multi-chunk
	// update; a single-chunk container is decrypted in place.
	var plain, first []byte
	if p.chunks == 1 {
		plain = make([]byte, p.size)
		first, err = p.decrypt(0, plain[:0])
	} else {
		first, err = p.decrypt(0, make([]byte, 0, ageChunk))
	}
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	op, updOff, err := openHead(first, p.size, keys, limits)
	if err != nil {
		return nil, err
	}
	if plain == nil {
		plain = make([]byte, p.size)
		copy(plain, first)
	}
	op.setBuffer(plain, updOff)
	// Decrypt the rest in place and hash each chunk while it is in cache.
	h := sha256.New()
	h.Write(plain[min(updOff, len(first)):len(first)])
	for i := 1; i < p.chunks; i++ {
		off := i * ageChunk
		chunk, err := p.decrypt(i, plain[off:off])
		if err != nil {
			return nil, fmt.Errorf("open: %w", err)
		}
		h.Write(chunk)
	}
	return checkUpdateHash(op, h)
}

// openPlain verifies a complete decrypted container; it is Open without
// the age layer.
func openPlain(plain []byte, keys NodeKeyLookup, limits Limits) (*Opened, error) {
	op, updOff, err := openHead(plain, len(plain), keys, limits.withDefaults())
	if err != nil {
		return nil, err
	}
	op.setBuffer(plain, updOff)
	h := sha256.New()
	h.Write(op.Update)
	return checkUpdateHash(op, h)
}

// setBuffer fills the byte fields of op from plain, the whole container.
// The statement and signature are copied (about 700 bytes), so that keeping
// them, as the audit log does, does not keep the update's buffer alive.
func (op *Opened) setBuffer(plain []byte, updOff int) {
	sigOff := updOff - 8 - ed25519.SignatureSize
	op.StatementBytes = bytes.Clone(plain[containerPrefixLen:sigOff])
	op.Signature = bytes.Clone(plain[sigOff : sigOff+ed25519.SignatureSize])
	op.Update = plain[updOff:]
}

// openHead parses the head of a container of total bytes (prefix,
// statement, signature, update length; at most
// containerFixedLen+MaxStatementLen bytes, so always inside the first 64 KiB
// chunk) and verifies the statement's signature. The update must fill the
// rest of the container exactly. It returns the update's offset and an
// Opened without its byte fields, which setBuffer fills.
func openHead(head []byte, total int, keys NodeKeyLookup, limits Limits) (*Opened, int, error) {
	fail := func(field string, off int, err error) (*Opened, int, error) {
		return nil, 0, &FormatError{What: "envelope", Field: field, Offset: off, Err: err}
	}
	if len(head) < containerPrefixLen {
		return fail("prefix", 0, fmt.Errorf("%d bytes, need %d: %w", len(head), containerPrefixLen, ErrMalformed))
	}
	if string(head[:4]) != EnvelopeMagic {
		return fail("magic", 0, fmt.Errorf("%q, want %q: %w", head[:4], EnvelopeMagic, ErrMalformed))
	}
	if head[4] != EnvelopeVersion {
		return fail("version", 4, fmt.Errorf("version %d, want %d: %w", head[4], EnvelopeVersion, ErrVersion))
	}
	slen := int(binary.BigEndian.Uint16(head[5:]))
	if slen > MaxStatementLen {
		return fail("statement length", 5, fmt.Errorf("%d bytes, limit %d: %w", slen, MaxStatementLen, ErrTooLarge))
	}
	updOff := containerFixedLen + slen
	if len(head) < updOff {
		return fail("statement", containerPrefixLen, fmt.Errorf("container of %d bytes ends inside the %d-byte head: %w", len(head), updOff, ErrMalformed))
	}
	sigOff := containerPrefixLen + slen
	sb := head[containerPrefixLen:sigOff]
	sig := head[sigOff : sigOff+ed25519.SignatureSize]
	ulen := binary.BigEndian.Uint64(head[sigOff+ed25519.SignatureSize:])
	if ulen > uint64(limits.MaxUpdateBytes) {
		return fail("update length", updOff-8, fmt.Errorf("%d bytes, limit %d: %w", ulen, limits.MaxUpdateBytes, ErrTooLarge))
	}
	if ulen != uint64(total-updOff) {
		return fail("update length", updOff-8, fmt.Errorf("says %d bytes, container holds %d: %w", ulen, total-updOff, ErrMalformed))
	}
	stmt, err := ParseStatement(sb)
	if err != nil {
		return nil, 0, fmt.Errorf("open: %w", err)
	}
	pub, err := keys.NodePublicKey(stmt.NodeID)
	if err != nil {
		return nil, 0, fmt.Errorf("open: node %q: %w", stmt.NodeID, err)
	}
	if err := VerifyStatement(pub, sb, sig); err != nil {
		return nil, 0, fmt.Errorf("open: statement of node %q job %q round %d: %w", stmt.NodeID, stmt.JobID, stmt.Round, err)
	}
	return &Opened{Statement: stmt, PublicKey: pub}, updOff, nil
}

// checkUpdateHash compares the hash of the update with the signed one.
func checkUpdateHash(op *Opened, h hash.Hash) (*Opened, error) {
	var got [32]byte
	h.Sum(got[:0])
	if got != op.Statement.UpdateHash {
		return nil, fmt.Errorf("open: update of node %q hashes to %x, statement signs %x: %w", op.Statement.NodeID, got, op.Statement.UpdateHash, ErrBadSignature)
	}
	return op, nil
}
