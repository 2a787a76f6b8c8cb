package crypto

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// EvalReportVersion is the version byte of an EvalReport encoding.
const EvalReportVersion uint8 = 1

// EvalReportDomain is prepended to an evaluation report's bytes before
// signing, so that a report signature is never valid as an update
// statement's (StatementDomain) or anything else's.
const EvalReportDomain = "mfn/eval-report/v1\x00"

// evalReportFixedLen: version, three string lengths, model version, model
// hash, accuracy, loss, samples, time.
const evalReportFixedLen = 1 + 3*2 + 8 + 32 + 8 + 8 + 8 + 8

// MaxEvalReportLen is the largest encoded evaluation report (655 bytes).
const MaxEvalReportLen = evalReportFixedLen + MaxOriginLen + MaxJobIDLen + MaxNodeIDLen

// EvalReport is what a node signs about a job's final model after the
// last round (cross-site evaluation): its accuracy and mean loss on the
// node's held-out data. The canonical encoding (version 1), big-endian:
//
//	version        uint8 (= EvalReportVersion)
//	origin         uint16 length || UTF-8 (1..MaxOriginLen)
//	job id         uint16 length || UTF-8 (1..MaxJobIDLen)
//	node id        uint16 length || UTF-8 (1..MaxNodeIDLen)
//	model version  uint64
//	model hash     [32]byte SHA-256 of the model encoding
//	accuracy       float64 IEEE-754 bits, in [0, 1]
//	loss           float64 IEEE-754 bits, finite, ≥ 0
//	samples        uint64 held-out samples evaluated (≥ 1)
//	time           int64 Unix nanoseconds (UTC)
//
// NaN, infinities, negative zero and out-of-range values are refused by
// MarshalBinary and ParseEvalReport alike: one encoding per report.
type EvalReport struct {
	Origin       string
	JobID        string
	NodeID       string
	ModelVersion uint64
	ModelHash    [32]byte
	Accuracy     float64
	Loss         float64
	Samples      uint64
	Time         time.Time
}

func (r *EvalReport) check() (string, error) {
	switch {
	case math.IsNaN(r.Accuracy) || r.Accuracy < 0 || r.Accuracy > 1 || math.Signbit(r.Accuracy):
		return "accuracy", fmt.Errorf("%v is not in [0, 1]: %w", r.Accuracy, ErrMalformed)
	case math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) || r.Loss < 0 || math.Signbit(r.Loss):
		return "loss", fmt.Errorf("%v is not a finite value ≥ 0: %w", r.Loss, ErrMalformed)
	case r.Samples == 0:
		return "samples", fmt.Errorf("no samples evaluated: %w", ErrMalformed)
	}
	return "", nil
}

// MarshalBinary returns the canonical encoding. Errors wrap ErrTooLarge
// (an over-long string) or ErrMalformed (an empty or non-UTF-8 string, a
// value out of range, a time outside int64 Unix nanoseconds).
func (r *EvalReport) MarshalBinary() ([]byte, error) {
	for _, f := range []struct {
		name string
		v    string
		max  int
	}{{"origin", r.Origin, MaxOriginLen}, {"job id", r.JobID, MaxJobIDLen}, {"node id", r.NodeID, MaxNodeIDLen}} {
		if err := checkString(f.v, f.max); err != nil {
			return nil, fmt.Errorf("eval report: %s: %w", f.name, err)
		}
	}
	if field, err := r.check(); err != nil {
		return nil, fmt.Errorf("eval report: %s: %w", field, err)
	}
	if r.Time.Before(minTime) || r.Time.After(maxTime) {
		return nil, fmt.Errorf("eval report: time %v outside int64 Unix nanoseconds: %w", r.Time, ErrMalformed)
	}
	b := make([]byte, 0, evalReportFixedLen+len(r.Origin)+len(r.JobID)+len(r.NodeID))
	b = append(b, EvalReportVersion)
	b = appendString(b, r.Origin)
	b = appendString(b, r.JobID)
	b = appendString(b, r.NodeID)
	b = binary.BigEndian.AppendUint64(b, r.ModelVersion)
	b = append(b, r.ModelHash[:]...)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.Accuracy))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.Loss))
	b = binary.BigEndian.AppendUint64(b, r.Samples)
	return binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano())), nil
}

// ParseEvalReport decodes the canonical encoding strictly; errors are
// *FormatError values wrapping ErrVersion, ErrTooLarge or ErrMalformed.
func ParseEvalReport(b []byte) (*EvalReport, error) {
	if len(b) > MaxEvalReportLen {
		return nil, &FormatError{What: "eval report", Field: "length", Err: fmt.Errorf("%d bytes, limit %d: %w", len(b), MaxEvalReportLen, ErrTooLarge)}
	}
	rd := &statementReader{b: b}
	if v := rd.take("version", 1); v != nil && v[0] != EvalReportVersion {
		return nil, &FormatError{What: "eval report", Field: "version", Err: fmt.Errorf("version %d, want %d: %w", v[0], EvalReportVersion, ErrVersion)}
	}
	var r EvalReport
	r.Origin = rd.string("origin", MaxOriginLen)
	r.JobID = rd.string("job id", MaxJobIDLen)
	r.NodeID = rd.string("node id", MaxNodeIDLen)
	r.ModelVersion = rd.uint64("model version")
	copy(r.ModelHash[:], rd.take("model hash", 32))
	start := rd.off
	r.Accuracy = math.Float64frombits(rd.uint64("accuracy"))
	r.Loss = math.Float64frombits(rd.uint64("loss"))
	r.Samples = rd.uint64("samples")
	if rd.err == nil {
		if field, err := r.check(); err != nil {
			rd.off = start
			rd.fail(field, err)
		}
	}
	r.Time = time.Unix(0, int64(rd.uint64("time"))).UTC()
	if rd.err == nil && rd.off != len(b) {
		rd.fail("end", fmt.Errorf("%d trailing bytes: %w", len(b)-rd.off, ErrMalformed))
	}
	if rd.err != nil {
		if fe, ok := rd.err.(*FormatError); ok {
			fe.What = "eval report"
		}
		return nil, rd.err
	}
	return &r, nil
}

// SignEvalReport signs EvalReportDomain || report with priv.
func SignEvalReport(priv ed25519.PrivateKey, report []byte) []byte {
	return ed25519.Sign(priv, append([]byte(EvalReportDomain), report...))
}

// VerifyEvalReport checks sig over EvalReportDomain || report; errors
// wrap ErrBadSignature.
func VerifyEvalReport(pub ed25519.PublicKey, report, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("key of %d bytes, signature of %d: %w", len(pub), len(sig), ErrBadSignature)
	}
	if !ed25519.Verify(pub, append([]byte(EvalReportDomain), report...), sig) {
		return ErrBadSignature
	}
	return nil
}
