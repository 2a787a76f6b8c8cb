package crypto

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// StatementVersion is the version byte of a statement without round
// metrics (version 1); Statement.MarshalBinary writes it for Version 0 or
// 1.
const StatementVersion uint8 = 1

// StatementVersionMetrics is the version of a statement that also carries
// the node's round metrics (TrainLoss, HoldoutAccuracy, HoldoutSamples).
// ParseStatement accepts both versions; the signature domain is the same,
// because the version byte is part of the signed bytes.
const StatementVersionMetrics uint8 = 2

// StatementDomain is prepended to the statement bytes before signing, so an
// update-statement signature can never be confused with a signature the same
// Ed25519 key makes over any other kind of message (a TLS handshake, an
// audit checkpoint, a future statement version). The trailing NUL ends the
// prefix: no valid domain is a prefix of another.
const StatementDomain = "mfn/update-statement/v1\x00"

// Limits on the variable-length statement fields, in bytes. They keep a
// statement small (at most 1+3*2+256+128+128+8+32+32+8+8 = 607 bytes in
// version 1, 631 with version 2's metrics) and
// are enforced by both MarshalBinary and ParseStatement.
const (
	MaxOriginLen = 256
	MaxJobIDLen  = 128
	MaxNodeIDLen = 128
)

// statementFixedLen is the size of a statement with three empty strings:
// version, three uint16 length prefixes, round, two hashes, sample count and
// time.
const statementFixedLen = 1 + 3*2 + 8 + 32 + 32 + 8 + 8

// statementMetricsLen is the size of the metrics that version 2 appends:
// train loss, held-out accuracy and held-out sample count.
const statementMetricsLen = 8 + 8 + 8

// MaxStatementLen is the largest encoded statement (a version 2 one).
const MaxStatementLen = statementFixedLen + statementMetricsLen + MaxOriginLen + MaxJobIDLen + MaxNodeIDLen

// Statement is what a node signs about one update: which cluster, job and
// round it is for, who made it, which global model it starts from, which
// update bytes it commits to and how many samples it was trained on.
//
// The canonical encoding (version 1), all integers big-endian:
//
//	version        uint8  (= StatementVersion)
//	origin         uint16 length || UTF-8 bytes (1..MaxOriginLen)
//	job id         uint16 length || UTF-8 bytes (1..MaxJobIDLen)
//	round          uint64
//	node id        uint16 length || UTF-8 bytes (1..MaxNodeIDLen)
//	base model     [32]byte SHA-256
//	update hash    [32]byte SHA-256
//	sample count   uint64
//	time           int64 Unix nanoseconds (UTC)
//
// Version 2 (StatementVersionMetrics) appends the node's round metrics:
//
//	train loss       float64 IEEE-754 bits: mean cross-entropy of the
//	                 trained model on the node's training split (finite, ≥ 0)
//	held-out acc.    float64 IEEE-754 bits: accuracy of the trained model on
//	                 the node's held-out split, in [0, 1]; 0 when the
//	                 held-out sample count is 0
//	held-out count   uint64 samples in the held-out split (0 = none)
//
// NaN, infinities, negative zero and out-of-range values are refused by
// both MarshalBinary and ParseStatement, so a version 2 statement still has
// exactly one encoding.
//
// Every statement has exactly one encoding, and ParseStatement accepts
// nothing else, so a signature over the bytes is a signature over the
// values.
type Statement struct {
	Version       uint8     // StatementVersion; zero is encoded as StatementVersion
	Origin        string    // cluster origin, e.g. "mfn.example/cluster-1"
	JobID         string    // training job
	Round         uint64    // training round
	NodeID        string    // the submitting node (see NodeID)
	BaseModelHash [32]byte  // SHA-256 of the base model parameters encoding
	UpdateHash    [32]byte  // SHA-256 of the encoded update bytes
	SampleCount   uint64    // local training samples behind the update
	Time          time.Time // creation time, kept to the nanosecond, UTC
	// Round metrics, encoded only in version 2 (StatementVersionMetrics);
	// they must be zero in a version 1 statement.
	TrainLoss       float64 // mean training loss of the trained model
	HoldoutAccuracy float64 // accuracy on the held-out split
	HoldoutSamples  uint64  // size of the held-out split (0 = none)
}

// HasMetrics reports whether s carries round metrics (version 2).
func (s *Statement) HasMetrics() bool { return s.Version == StatementVersionMetrics }

// checkMetrics reports the first metric outside its range.
func (s *Statement) checkMetrics() (string, error) {
	switch {
	case math.IsNaN(s.TrainLoss) || math.IsInf(s.TrainLoss, 0) || s.TrainLoss < 0 || math.Signbit(s.TrainLoss):
		return "train loss", fmt.Errorf("%v is not a finite value ≥ 0: %w", s.TrainLoss, ErrMalformed)
	case math.IsNaN(s.HoldoutAccuracy) || s.HoldoutAccuracy < 0 || s.HoldoutAccuracy > 1 || math.Signbit(s.HoldoutAccuracy):
		return "holdout accuracy", fmt.Errorf("%v is not in [0, 1]: %w", s.HoldoutAccuracy, ErrMalformed)
	case s.HoldoutSamples == 0 && s.HoldoutAccuracy != 0:
		return "holdout accuracy", fmt.Errorf("%v without held-out samples: %w", s.HoldoutAccuracy, ErrMalformed)
	}
	return "", nil
}

// minTime and maxTime bound the instants representable as int64 Unix
// nanoseconds (years 1677 to 2262).
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// MarshalBinary returns the canonical encoding described on Statement.
// It fails with an error wrapping ErrVersion for a version other than 0,
// StatementVersion or StatementVersionMetrics, ErrTooLarge for an
// over-long string, and ErrMalformed for an empty or non-UTF-8 string, a
// time outside int64 Unix nanoseconds, a metric out of its range, or
// non-zero metrics in a version 1 statement (they would not be signed).
func (s *Statement) MarshalBinary() ([]byte, error) {
	version := s.Version
	switch version {
	case 0, StatementVersion:
		version = StatementVersion
		if s.TrainLoss != 0 || s.HoldoutAccuracy != 0 || s.HoldoutSamples != 0 {
			return nil, fmt.Errorf("statement: version %d carries no metrics, but they are set (use version %d): %w", version, StatementVersionMetrics, ErrMalformed)
		}
	case StatementVersionMetrics:
		if field, err := s.checkMetrics(); err != nil {
			return nil, fmt.Errorf("statement: %s: %w", field, err)
		}
	default:
		return nil, fmt.Errorf("statement: version %d: %w", s.Version, ErrVersion)
	}
	fields := []struct {
		name string
		v    string
		max  int
	}{{"origin", s.Origin, MaxOriginLen}, {"job id", s.JobID, MaxJobIDLen}, {"node id", s.NodeID, MaxNodeIDLen}}
	for _, f := range fields {
		if err := checkString(f.v, f.max); err != nil {
			return nil, fmt.Errorf("statement: %s: %w", f.name, err)
		}
	}
	if s.Time.Before(minTime) || s.Time.After(maxTime) {
		return nil, fmt.Errorf("statement: time %v outside int64 Unix nanoseconds: %w", s.Time, ErrMalformed)
	}
	b := make([]byte, 0, statementFixedLen+statementMetricsLen+len(s.Origin)+len(s.JobID)+len(s.NodeID))
	b = append(b, version)
	b = appendString(b, s.Origin)
	b = appendString(b, s.JobID)
	b = binary.BigEndian.AppendUint64(b, s.Round)
	b = appendString(b, s.NodeID)
	b = append(b, s.BaseModelHash[:]...)
	b = append(b, s.UpdateHash[:]...)
	b = binary.BigEndian.AppendUint64(b, s.SampleCount)
	b = binary.BigEndian.AppendUint64(b, uint64(s.Time.UnixNano()))
	if version == StatementVersionMetrics {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(s.TrainLoss))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(s.HoldoutAccuracy))
		b = binary.BigEndian.AppendUint64(b, s.HoldoutSamples)
	}
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

// statementReader decodes fields front to back, remembering the first error.
type statementReader struct {
	b   []byte
	off int
	err error
}

func (r *statementReader) fail(field string, err error) {
	if r.err == nil {
		r.err = &FormatError{What: "statement", Field: field, Offset: r.off, Err: err}
	}
}

func (r *statementReader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n {
		r.fail(field, fmt.Errorf("need %d bytes, have %d: %w", n, len(r.b)-r.off, ErrMalformed))
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *statementReader) uint64(field string) uint64 {
	v := r.take(field, 8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (r *statementReader) string(field string, max int) string {
	start := r.off
	lb := r.take(field, 2)
	if lb == nil {
		return ""
	}
	n := int(binary.BigEndian.Uint16(lb))
	if n > max {
		r.off = start
		r.fail(field, fmt.Errorf("length %d, limit %d: %w", n, max, ErrTooLarge))
		return ""
	}
	v := r.take(field, n)
	if v == nil {
		return ""
	}
	if err := checkString(string(v), max); err != nil {
		r.off = start
		r.fail(field, err)
		return ""
	}
	return string(v)
}

// ParseStatement decodes the canonical encoding strictly. Errors are
// *FormatError values wrapping ErrVersion (unknown version byte),
// ErrTooLarge (input longer than MaxStatementLen, or a string over its
// limit) or ErrMalformed (truncation, trailing bytes, empty or non-UTF-8
// strings, a version 2 metric that is NaN, infinite or out of range). It
// accepts versions 1 and 2. The returned statement's Time is in UTC.
func ParseStatement(b []byte) (*Statement, error) {
	if len(b) > MaxStatementLen {
		return nil, &FormatError{What: "statement", Field: "length", Err: fmt.Errorf("%d bytes, limit %d: %w", len(b), MaxStatementLen, ErrTooLarge)}
	}
	r := &statementReader{b: b}
	var s Statement
	if v := r.take("version", 1); v != nil {
		s.Version = v[0]
		if s.Version != StatementVersion && s.Version != StatementVersionMetrics {
			return nil, &FormatError{What: "statement", Field: "version", Err: fmt.Errorf("version %d, want %d or %d: %w", s.Version, StatementVersion, StatementVersionMetrics, ErrVersion)}
		}
	}
	s.Origin = r.string("origin", MaxOriginLen)
	s.JobID = r.string("job id", MaxJobIDLen)
	s.Round = r.uint64("round")
	s.NodeID = r.string("node id", MaxNodeIDLen)
	copy(s.BaseModelHash[:], r.take("base model hash", 32))
	copy(s.UpdateHash[:], r.take("update hash", 32))
	s.SampleCount = r.uint64("sample count")
	s.Time = time.Unix(0, int64(r.uint64("time"))).UTC()
	if s.Version == StatementVersionMetrics {
		start := r.off
		s.TrainLoss = math.Float64frombits(r.uint64("train loss"))
		s.HoldoutAccuracy = math.Float64frombits(r.uint64("holdout accuracy"))
		s.HoldoutSamples = r.uint64("holdout samples")
		if r.err == nil {
			if field, err := s.checkMetrics(); err != nil {
				r.off = start
				r.fail(field, err)
			}
		}
	}
	if r.err == nil && r.off != len(b) {
		r.fail("end", fmt.Errorf("%d trailing bytes: %w", len(b)-r.off, ErrMalformed))
	}
	if r.err != nil {
		return nil, r.err
	}
	return &s, nil
}

// SignStatement signs StatementDomain || stmtBytes with priv (plain Ed25519,
// RFC 8032). stmtBytes should come from Statement.MarshalBinary; it is
// signed as given. It panics only if priv is not ed25519.PrivateKeySize
// bytes long, as crypto/ed25519 does.
func SignStatement(priv ed25519.PrivateKey, stmtBytes []byte) []byte {
	return ed25519.Sign(priv, signedMessage(stmtBytes))
}

// VerifyStatement checks that sig is priv's signature over
// StatementDomain || stmtBytes for the private key matching pub. It returns
// nil or an error wrapping ErrBadSignature (also for a public key or
// signature of the wrong length). It does not parse stmtBytes.
func VerifyStatement(pub ed25519.PublicKey, stmtBytes, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("public key is %d bytes, want %d: %w", len(pub), ed25519.PublicKeySize, ErrBadSignature)
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("signature is %d bytes, want %d: %w", len(sig), ed25519.SignatureSize, ErrBadSignature)
	}
	if !ed25519.Verify(pub, signedMessage(stmtBytes), sig) {
		return ErrBadSignature
	}
	return nil
}

func signedMessage(stmtBytes []byte) []byte {
	m := make([]byte, 0, len(StatementDomain)+len(stmtBytes))
	m = append(m, StatementDomain...)
	return append(m, stmtBytes...)
}
