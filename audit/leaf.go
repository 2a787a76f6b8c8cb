package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/mfn/mfn/crypto"
	"github.com/transparency-dev/merkle/rfc6962"
)

// LeafVersion is the version byte written by Leaf.MarshalBinary and the only
// one UnmarshalBinary accepts.
const LeafVersion uint8 = 1

// leafFixedLen is the size of a version-1 leaf with empty strings and an
// empty statement: version, three uint16 string lengths, round, node key,
// update hash, uint16 statement length, signature, accept time.
const leafFixedLen = 1 + 2 + 2 + 8 + 2 + ed25519.PublicKeySize + 32 + 2 + ed25519.SignatureSize + 8

// MaxLeafLen is the largest encoded leaf (about 1.3 KiB): the fixed part plus
// the string and statement limits of package crypto.
const MaxLeafLen = leafFixedLen + crypto.MaxOriginLen + crypto.MaxJobIDLen + crypto.MaxNodeIDLen + crypto.MaxStatementLen

// Leaf is one accepted update as the audit log records it: who sent which
// update for which round of which job, the node's signed statement proving
// it, and when the cluster accepted it.
//
// The canonical encoding (version 1), integers big-endian:
//
//	version      uint8 (= LeafVersion)
//	origin       uint16 length || UTF-8 (1..crypto.MaxOriginLen bytes)
//	job id       uint16 length || UTF-8 (1..crypto.MaxJobIDLen bytes)
//	round        uint64
//	node id      uint16 length || UTF-8 (1..crypto.MaxNodeIDLen bytes)
//	node key     [32]byte Ed25519 public key
//	update hash  [32]byte SHA-256 of the encoded update
//	statement    uint16 length || bytes (1..crypto.MaxStatementLen)
//	signature    [64]byte Ed25519 signature over the statement
//	accept time  int64 Unix nanoseconds (UTC)
//
// Each leaf has exactly one encoding and UnmarshalBinary accepts nothing
// else. The Merkle leaf hash is the RFC 6962 leaf hash of these bytes:
// SHA-256(0x00 || encoding).
type Leaf struct {
	Origin     string            // cluster origin, also the log's origin
	JobID      string            // training job
	Round      uint64            // training round
	NodeID     string            // submitting node
	NodeKey    ed25519.PublicKey // the node's Ed25519 key, 32 bytes
	UpdateHash [32]byte          // SHA-256 of the encoded update
	Statement  []byte            // the node's signed statement (crypto.Statement encoding)
	Signature  []byte            // crypto.SignStatement over Statement, 64 bytes
	AcceptTime time.Time         // when the cluster accepted the update (from the replicated entry)
}

// NewLeaf builds the leaf for a verified statement: the leaf's fields are
// copied from the parsed statement, so Verify can only fail on the
// signature. It returns an error wrapping ErrStatementMismatch if stmt does
// not parse, and ErrMalformed for a node key or signature of the wrong
// length. It does not check the signature; use Verify.
func NewLeaf(stmt []byte, sig []byte, nodeKey ed25519.PublicKey, acceptTime time.Time) (*Leaf, error) {
	s, err := crypto.ParseStatement(stmt)
	if err != nil {
		return nil, fmt.Errorf("audit: leaf statement: %v: %w", err, ErrStatementMismatch)
	}
	if len(nodeKey) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("audit: node key %d bytes, signature %d bytes: %w", len(nodeKey), len(sig), ErrMalformed)
	}
	return &Leaf{
		Origin:     s.Origin,
		JobID:      s.JobID,
		Round:      s.Round,
		NodeID:     s.NodeID,
		NodeKey:    bytes.Clone(nodeKey),
		UpdateHash: s.UpdateHash,
		Statement:  bytes.Clone(stmt),
		Signature:  bytes.Clone(sig),
		AcceptTime: acceptTime.UTC(),
	}, nil
}

// minTime and maxTime bound instants representable as int64 Unix
// nanoseconds (years 1677 to 2262).
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// MarshalBinary returns the canonical encoding described on Leaf. It fails
// with an error wrapping ErrMalformed for an empty or non-UTF-8 string, a
// key or signature of the wrong length, an empty statement or an accept
// time outside int64 Unix nanoseconds, and ErrTooLarge for a string or
// statement over its limit.
func (l *Leaf) MarshalBinary() ([]byte, error) {
	for _, f := range []struct {
		name, v string
		max     int
	}{{"origin", l.Origin, crypto.MaxOriginLen}, {"job id", l.JobID, crypto.MaxJobIDLen}, {"node id", l.NodeID, crypto.MaxNodeIDLen}} {
		if err := checkString(f.v, f.max); err != nil {
			return nil, fmt.Errorf("audit: leaf %s: %w", f.name, err)
		}
	}
	switch {
	case len(l.NodeKey) != ed25519.PublicKeySize:
		return nil, fmt.Errorf("audit: leaf node key is %d bytes, want %d: %w", len(l.NodeKey), ed25519.PublicKeySize, ErrMalformed)
	case len(l.Signature) != ed25519.SignatureSize:
		return nil, fmt.Errorf("audit: leaf signature is %d bytes, want %d: %w", len(l.Signature), ed25519.SignatureSize, ErrMalformed)
	case len(l.Statement) == 0:
		return nil, fmt.Errorf("audit: leaf statement empty: %w", ErrMalformed)
	case len(l.Statement) > crypto.MaxStatementLen:
		return nil, fmt.Errorf("audit: leaf statement %d bytes, limit %d: %w", len(l.Statement), crypto.MaxStatementLen, ErrTooLarge)
	case l.AcceptTime.Before(minTime) || l.AcceptTime.After(maxTime):
		return nil, fmt.Errorf("audit: leaf accept time %v outside int64 Unix nanoseconds: %w", l.AcceptTime, ErrMalformed)
	}
	b := make([]byte, 0, leafFixedLen+len(l.Origin)+len(l.JobID)+len(l.NodeID)+len(l.Statement))
	b = append(b, LeafVersion)
	b = appendString(b, l.Origin)
	b = appendString(b, l.JobID)
	b = binary.BigEndian.AppendUint64(b, l.Round)
	b = appendString(b, l.NodeID)
	b = append(b, l.NodeKey...)
	b = append(b, l.UpdateHash[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(l.Statement)))
	b = append(b, l.Statement...)
	b = append(b, l.Signature...)
	b = binary.BigEndian.AppendUint64(b, uint64(l.AcceptTime.UnixNano()))
	return b, nil
}

func checkString(v string, max int) error {
	switch {
	case len(v) == 0:
		return fmt.Errorf("empty: %w", ErrMalformed)
	case len(v) > max:
		return fmt.Errorf("%d bytes, limit %d: %w", len(v), max, ErrTooLarge)
	case !utf8.ValidString(v):
		return fmt.Errorf("invalid UTF-8: %w", ErrMalformed)
	}
	return nil
}

func appendString(b []byte, v string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// reader decodes big-endian fields front to back and remembers the first
// error with the field and offset where it happened.
type reader struct {
	what string
	b    []byte
	off  int
	err  error
}

func (r *reader) fail(field string, err error) {
	if r.err == nil {
		r.err = fmt.Errorf("audit: %s: field %s at offset %d: %w", r.what, field, r.off, err)
	}
}

func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail(field, fmt.Errorf("need %d bytes, have %d: %w", n, len(r.b)-r.off, ErrMalformed))
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(field string) uint8 {
	v := r.take(field, 1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u16(field string) uint16 {
	v := r.take(field, 2)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (r *reader) u32(field string) uint32 {
	v := r.take(field, 4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *reader) u64(field string) uint64 {
	v := r.take(field, 8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// bytes16 reads a uint16-length-prefixed byte string of 1..max bytes.
func (r *reader) bytes16(field string, max int) []byte {
	n := int(r.u16(field))
	if r.err != nil {
		return nil
	}
	if n == 0 {
		r.fail(field, fmt.Errorf("empty: %w", ErrMalformed))
		return nil
	}
	if n > max {
		r.fail(field, fmt.Errorf("length %d, limit %d: %w", n, max, ErrTooLarge))
		return nil
	}
	return r.take(field, n)
}

func (r *reader) string16(field string, max int) string {
	v := r.bytes16(field, max)
	if v == nil {
		return ""
	}
	if !utf8.Valid(v) {
		r.fail(field, fmt.Errorf("invalid UTF-8: %w", ErrMalformed))
		return ""
	}
	return string(v)
}

// end fails unless every byte was consumed.
func (r *reader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.fail("end", fmt.Errorf("%d trailing bytes: %w", len(r.b)-r.off, ErrMalformed))
	}
}

// UnmarshalBinary decodes the canonical encoding strictly into l. Errors
// wrap ErrTooLarge (input over MaxLeafLen or a field over its limit),
// ErrVersion (a version byte other than LeafVersion) or ErrMalformed
// (truncation, trailing bytes, empty or non-UTF-8 strings) and name the
// field and byte offset. It does not check the signature; use Verify. On
// error l is left unchanged. The decoded leaf does not alias data.
func (l *Leaf) UnmarshalBinary(data []byte) error {
	if len(data) > MaxLeafLen {
		return fmt.Errorf("audit: leaf is %d bytes, limit %d: %w", len(data), MaxLeafLen, ErrTooLarge)
	}
	r := &reader{what: "leaf", b: data}
	if v := r.u8("version"); r.err == nil && v != LeafVersion {
		return fmt.Errorf("audit: leaf version %d, want %d: %w", v, LeafVersion, ErrVersion)
	}
	var d Leaf
	d.Origin = r.string16("origin", crypto.MaxOriginLen)
	d.JobID = r.string16("job id", crypto.MaxJobIDLen)
	d.Round = r.u64("round")
	d.NodeID = r.string16("node id", crypto.MaxNodeIDLen)
	d.NodeKey = bytes.Clone(r.take("node key", ed25519.PublicKeySize))
	copy(d.UpdateHash[:], r.take("update hash", 32))
	d.Statement = bytes.Clone(r.bytes16("statement", crypto.MaxStatementLen))
	d.Signature = bytes.Clone(r.take("signature", ed25519.SignatureSize))
	d.AcceptTime = time.Unix(0, int64(r.u64("accept time"))).UTC()
	r.end()
	if r.err != nil {
		return r.err
	}
	*l = d
	return nil
}

// ParseLeaf decodes an encoded leaf; see Leaf.UnmarshalBinary.
func ParseLeaf(data []byte) (*Leaf, error) {
	var l Leaf
	if err := l.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	return &l, nil
}

// Verify checks that the leaf is what its node signed: the statement parses,
// its signature verifies under the leaf's node key (crypto.VerifyStatement,
// with the statement domain prefix), and the statement's origin, job id,
// round, node id and update hash equal the leaf's. It returns nil, an error
// wrapping ErrBadNodeSignature, or one wrapping ErrStatementMismatch that
// names the first disagreeing field.
func (l *Leaf) Verify() error {
	s, err := crypto.ParseStatement(l.Statement)
	if err != nil {
		return fmt.Errorf("audit: leaf statement: %v: %w", err, ErrStatementMismatch)
	}
	if err := crypto.VerifyStatement(l.NodeKey, l.Statement, l.Signature); err != nil {
		return fmt.Errorf("audit: node %q: %v: %w", l.NodeID, err, ErrBadNodeSignature)
	}
	return l.matches(s)
}

// checkStatement runs Verify's checks except the signature: the statement
// parses and agrees with the leaf's fields.
func (l *Leaf) checkStatement() error {
	s, err := crypto.ParseStatement(l.Statement)
	if err != nil {
		return fmt.Errorf("audit: leaf statement: %v: %w", err, ErrStatementMismatch)
	}
	return l.matches(s)
}

// matches checks that the parsed statement s agrees with the leaf.
func (l *Leaf) matches(s *crypto.Statement) error {
	switch {
	case s.Origin != l.Origin:
		return fmt.Errorf("audit: leaf origin %q, statement says %q: %w", l.Origin, s.Origin, ErrStatementMismatch)
	case s.JobID != l.JobID:
		return fmt.Errorf("audit: leaf job %q, statement says %q: %w", l.JobID, s.JobID, ErrStatementMismatch)
	case s.Round != l.Round:
		return fmt.Errorf("audit: leaf round %d, statement says %d: %w", l.Round, s.Round, ErrStatementMismatch)
	case s.NodeID != l.NodeID:
		return fmt.Errorf("audit: leaf node %q, statement says %q: %w", l.NodeID, s.NodeID, ErrStatementMismatch)
	case s.UpdateHash != l.UpdateHash:
		return fmt.Errorf("audit: leaf update hash %x, statement says %x: %w", l.UpdateHash, s.UpdateHash, ErrStatementMismatch)
	}
	return nil
}

// hasher is the RFC 6962 SHA-256 hasher used for every tree in this package.
var hasher = rfc6962.DefaultHasher

// LeafHash returns the RFC 6962 Merkle leaf hash of an encoded leaf:
// SHA-256(0x00 || encoded).
func LeafHash(encoded []byte) [32]byte {
	return [32]byte(hasher.HashLeaf(encoded))
}
