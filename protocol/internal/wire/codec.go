package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// The canonical field encoding. Every value has exactly one encoding, so that
// decode(encode(m)) == m and encode(decode(b)) == b for every accepted b:
//
//	integers      fixed width, big-endian
//	bytes/string  uint32 length, then the bytes; strings must be valid UTF-8
//	lists         uint8 or uint16 count, then the elements
//	string maps   uint16 count, then key/value pairs in strictly increasing
//	              key order (so no duplicates and no second ordering)
//	hashes        32 raw bytes

// Field errors, wrapped in a *FieldError naming the field.
var (
	// ErrFieldTooLong: a length or count exceeds the field's limit.
	ErrFieldTooLong = errors.New("field too long")
	// ErrTrailingBytes: the payload continues after the last field.
	ErrTrailingBytes = errors.New("trailing bytes")
	// ErrNonCanonical: a value is well formed but not in its one canonical
	// form or not valid (unsorted list or map, invalid UTF-8, negative
	// duration, boolean other than 0 or 1).
	ErrNonCanonical = errors.New("non-canonical or invalid value")
)

// FieldError reports a bad field. It unwraps to one of ErrTruncated,
// ErrFieldTooLong, ErrTrailingBytes or ErrNonCanonical.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %s: %v", e.Field, e.Err) }

// Unwrap returns the underlying sentinel.
func (e *FieldError) Unwrap() error { return e.Err }

// AppendU8 and friends append fixed-width big-endian integers.
func AppendU8(b []byte, v uint8) []byte   { return append(b, v) }
func AppendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func AppendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func AppendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// AppendBytes appends a uint32 length and v. It fails if len(v) > max.
func AppendBytes(b []byte, field string, v []byte, max int) ([]byte, error) {
	if len(v) > max {
		return b, &FieldError{field, fmt.Errorf("%w: %d bytes, limit %d", ErrFieldTooLong, len(v), max)}
	}
	b = AppendU32(b, uint32(len(v)))
	return append(b, v...), nil
}

// AppendString appends a uint32 length and s. It fails if s is longer than
// max bytes or is not valid UTF-8.
func AppendString(b []byte, field string, s string, max int) ([]byte, error) {
	if len(s) > max {
		return b, &FieldError{field, fmt.Errorf("%w: %d bytes, limit %d", ErrFieldTooLong, len(s), max)}
	}
	if !utf8.ValidString(s) {
		return b, &FieldError{field, fmt.Errorf("%w: invalid UTF-8", ErrNonCanonical)}
	}
	b = AppendU32(b, uint32(len(s)))
	return append(b, s...), nil
}

// MapLimits bounds a string map.
type MapLimits struct {
	Entries, Key, Value int
}

// AppendMap appends m in canonical order (keys sorted bytewise).
func AppendMap(b []byte, field string, m map[string]string, lim MapLimits) ([]byte, error) {
	if len(m) > lim.Entries {
		return b, &FieldError{field, fmt.Errorf("%w: %d entries, limit %d", ErrFieldTooLong, len(m), lim.Entries)}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = AppendU16(b, uint16(len(keys)))
	var err error
	for _, k := range keys {
		if b, err = AppendString(b, field+" key", k, lim.Key); err != nil {
			return b, err
		}
		if b, err = AppendString(b, field+"["+k+"]", m[k], lim.Value); err != nil {
			return b, err
		}
	}
	return b, nil
}

// Decoder reads canonical fields from a payload. The first error sticks:
// later reads return zero values and Finish reports that first error.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a Decoder over b. Decoded byte slices alias b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

func (d *Decoder) fail(field string, err error) {
	if d.err == nil {
		d.err = &FieldError{field, err}
	}
	d.b = nil
}

func (d *Decoder) take(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail(field, fmt.Errorf("%w: need %d bytes, have %d", ErrTruncated, n, len(d.b)))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// U8 reads one byte.
func (d *Decoder) U8(field string) uint8 {
	if v := d.take(field, 1); v != nil {
		return v[0]
	}
	return 0
}

// U16 reads a big-endian uint16.
func (d *Decoder) U16(field string) uint16 {
	if v := d.take(field, 2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

// U32 reads a big-endian uint32.
func (d *Decoder) U32(field string) uint32 {
	if v := d.take(field, 4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

// U64 reads a big-endian uint64.
func (d *Decoder) U64(field string) uint64 {
	if v := d.take(field, 8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// Bool reads one byte that must be 0 or 1.
func (d *Decoder) Bool(field string) bool {
	v := d.U8(field)
	if v > 1 {
		d.fail(field, fmt.Errorf("%w: boolean byte %d", ErrNonCanonical, v))
	}
	return v == 1
}

// Hash reads 32 raw bytes.
func (d *Decoder) Hash(field string) (h [32]byte) {
	if v := d.take(field, 32); v != nil {
		copy(h[:], v)
	}
	return h
}

// Bytes reads a uint32 length and that many bytes (aliasing the input).
// The length is checked against max before anything else.
func (d *Decoder) Bytes(field string, max int) []byte {
	n := d.U32(field)
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		d.fail(field, fmt.Errorf("%w: %d bytes, limit %d", ErrFieldTooLong, n, max))
		return nil
	}
	return d.take(field, int(n))
}

// String reads a length-prefixed string that must be valid UTF-8.
func (d *Decoder) String(field string, max int) string {
	v := d.Bytes(field, max)
	if d.err != nil {
		return ""
	}
	if !utf8.Valid(v) {
		d.fail(field, fmt.Errorf("%w: invalid UTF-8", ErrNonCanonical))
		return ""
	}
	return string(v)
}

// Map reads a canonical string map. An empty map decodes as nil.
func (d *Decoder) Map(field string, lim MapLimits) map[string]string {
	n := int(d.U16(field))
	if d.err != nil {
		return nil
	}
	if n > lim.Entries {
		d.fail(field, fmt.Errorf("%w: %d entries, limit %d", ErrFieldTooLong, n, lim.Entries))
		return nil
	}
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	prev := ""
	for i := range n {
		k := d.String(field+" key", lim.Key)
		v := d.String(field+" value", lim.Value)
		if d.err != nil {
			return nil
		}
		if i > 0 && k <= prev {
			d.fail(field, fmt.Errorf("%w: keys not strictly increasing at %q", ErrNonCanonical, k))
			return nil
		}
		m[k], prev = v, k
	}
	return m
}

// Invalid records a semantic error found by the caller for field.
func (d *Decoder) Invalid(field string, err error) { d.fail(field, err) }

// More reports whether input remains and no error occurred: a decoder of
// a message with optional trailing fields reads them only then.
func (d *Decoder) More() bool { return d.err == nil && len(d.b) > 0 }

// Err returns the first error so far.
func (d *Decoder) Err() error { return d.err }

// Finish returns the first error, or ErrTrailingBytes if input remains.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = &FieldError{"end", fmt.Errorf("%w: %d bytes", ErrTrailingBytes, len(d.b))}
	}
	return d.err
}
