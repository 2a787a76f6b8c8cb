package crypto

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DType is the floating-point type an update's values are stored in.
type DType uint8

// The supported value types. Their numbers are part of the update encoding.
const (
	Float32 DType = 1 // IEEE 754 binary32, 4 bytes per value
	Float64 DType = 2 // IEEE 754 binary64, 8 bytes per value
)

// Size returns the bytes per value, or 0 for an unknown DType.
func (d DType) Size() int {
	switch d {
	case Float32:
		return 4
	case Float64:
		return 8
	}
	return 0
}

// String returns "float32", "float64" or "dtype(N)".
func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Update encoding constants.
const (
	// UpdateMagic opens every encoded update.
	UpdateMagic = "MFNU"
	// UpdateVersion is the only update encoding version.
	UpdateVersion uint8 = 1
	// UpdateHeaderLen is magic (4) + version (1) + dtype (1) + count (8).
	UpdateHeaderLen = 4 + 1 + 1 + 8
	// DefaultMaxUpdateLen is the value-count limit DecodeUpdate applies when
	// given maxLen <= 0: 16 Mi values (64 MiB as float32).
	DefaultMaxUpdateLen = 1 << 24
)

// UpdateHeader is the fixed-size prefix of an encoded update.
type UpdateHeader struct {
	DType DType
	Len   uint64 // number of values
}

// EncodeUpdate encodes values as an update of the given dtype:
//
//	magic   "MFNU"
//	version uint8 (= UpdateVersion)
//	dtype   uint8 (Float32 or Float64)
//	count   uint64 little-endian, number of values
//	values  count × dtype.Size() bytes, IEEE 754 little-endian
//
// With Float32 each value is rounded to the nearest float32 (values beyond
// float32's range become ±Inf). Values are not checked: DecodeUpdate rejects
// NaN and ±Inf. EncodeUpdate panics if dtype is neither Float32 nor Float64,
// which is a programming error.
func EncodeUpdate(values []float64, dtype DType) []byte {
	size := dtype.Size()
	if size == 0 {
		panic(fmt.Sprintf("crypto.EncodeUpdate: unknown %v", dtype))
	}
	b := make([]byte, UpdateHeaderLen+len(values)*size)
	copy(b, UpdateMagic)
	b[4] = UpdateVersion
	b[5] = byte(dtype)
	binary.LittleEndian.PutUint64(b[6:], uint64(len(values)))
	p := b[UpdateHeaderLen:]
	switch dtype {
	case Float32:
		for i, v := range values {
			binary.LittleEndian.PutUint32(p[4*i:], math.Float32bits(float32(v)))
		}
	case Float64:
		for i, v := range values {
			binary.LittleEndian.PutUint64(p[8*i:], math.Float64bits(v))
		}
	}
	return b
}

// ParseUpdateHeader checks the header of an encoded update against its
// total length and a value-count limit (maxLen <= 0 means
// DefaultMaxUpdateLen) without decoding or allocating the values. Errors
// are *FormatError values wrapping ErrMalformed (short input, bad magic,
// unknown dtype, length inconsistent with the size of b), ErrVersion or
// ErrTooLarge (count over maxLen).
func ParseUpdateHeader(b []byte, maxLen int) (UpdateHeader, error) {
	fail := func(field string, off int, err error) (UpdateHeader, error) {
		return UpdateHeader{}, &FormatError{What: "update", Field: field, Offset: off, Err: err}
	}
	if maxLen <= 0 {
		maxLen = DefaultMaxUpdateLen
	}
	if len(b) < UpdateHeaderLen {
		return fail("header", 0, fmt.Errorf("%d bytes, need %d: %w", len(b), UpdateHeaderLen, ErrMalformed))
	}
	if string(b[:4]) != UpdateMagic {
		return fail("magic", 0, fmt.Errorf("%q, want %q: %w", b[:4], UpdateMagic, ErrMalformed))
	}
	if b[4] != UpdateVersion {
		return fail("version", 4, fmt.Errorf("version %d, want %d: %w", b[4], UpdateVersion, ErrVersion))
	}
	h := UpdateHeader{DType: DType(b[5]), Len: binary.LittleEndian.Uint64(b[6:])}
	size := h.DType.Size()
	if size == 0 {
		return fail("dtype", 5, fmt.Errorf("unknown %v: %w", h.DType, ErrMalformed))
	}
	if h.Len > uint64(maxLen) {
		return fail("count", 6, fmt.Errorf("%d values, limit %d: %w", h.Len, maxLen, ErrTooLarge))
	}
	body := uint64(len(b) - UpdateHeaderLen)
	if body%uint64(size) != 0 || body/uint64(size) != h.Len {
		return fail("count", 6, fmt.Errorf("%d %v values need %d bytes, have %d: %w", h.Len, h.DType, h.Len*uint64(size), body, ErrMalformed))
	}
	return h, nil
}

// NonFiniteError reports a NaN or ±Inf value in an update. It unwraps to
// ErrMalformed.
type NonFiniteError struct {
	Index int     // position of the first non-finite value
	Value float64 // the value (NaN or ±Inf)
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("update: value %d is %v, not finite", e.Index, e.Value)
}

// Unwrap returns ErrMalformed.
func (e *NonFiniteError) Unwrap() error { return ErrMalformed }

// DecodeUpdate decodes an update produced by EncodeUpdate into float64
// values. The header is checked by ParseUpdateHeader (count limit maxLen,
// <= 0 meaning DefaultMaxUpdateLen) before anything is allocated, so an
// attacker's count field cannot cause a large allocation. A NaN or ±Inf
// value fails with a *NonFiniteError naming the first such index.
func DecodeUpdate(b []byte, maxLen int) ([]float64, error) {
	h, err := ParseUpdateHeader(b, maxLen)
	if err != nil {
		return nil, err
	}
	out := make([]float64, h.Len)
	p := b[UpdateHeaderLen:]
	switch h.DType {
	case Float32:
		for i := range out {
			v := float64(math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:])))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, &NonFiniteError{Index: i, Value: v}
			}
			out[i] = v
		}
	case Float64:
		for i := range out {
			v := math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, &NonFiniteError{Index: i, Value: v}
			}
			out[i] = v
		}
	}
	return out, nil
}
