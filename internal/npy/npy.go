package npy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Magic is the 6-byte prefix of every .npy file.
const Magic = "\x93NUMPY"

// DefaultMaxBytes is the data-size limit Read applies when its caller passes
// maxBytes ≤ 0: 1 GiB, ample for a 1024×1024×128 float64 history.
const DefaultMaxBytes int64 = 1 << 30

// maxHeaderLen bounds the header Read accepts. NumPy's own loader refuses
// headers above 10000 bytes unless told otherwise; a 2-D or 3-D float header
// is under 128 bytes, so 64 KiB leaves room for anything legitimate.
const maxHeaderLen = 1 << 16

// arrayAlign is the alignment NumPy gives the start of the data (numpy.lib.format.ARRAY_ALIGN).
const arrayAlign = 64

// growthAxisMaxDigits is NumPy's GROWTH_AXIS_MAX_DIGITS: numpy.save leaves
// this many characters of room for the first dimension so that a header can
// be rewritten in place when an array grows. Write copies it so its output is
// identical to numpy.save's.
const growthAxisMaxDigits = 21

// Sentinel errors. Every error from Read wraps exactly one of them.
var (
	// ErrNotNPY: the input does not start with the .npy magic string.
	ErrNotNPY = errors.New("npy: not a .npy file (bad magic)")
	// ErrVersion: the format version is not 1.0, 2.0 or 3.0.
	ErrVersion = errors.New("npy: unsupported format version")
	// ErrHeader: the header is not a well-formed dict literal with exactly
	// the keys 'descr', 'fortran_order' and 'shape' of the right types.
	ErrHeader = errors.New("npy: malformed header")
	// ErrDtype: the array's dtype is not '<f8' or '<f4'.
	ErrDtype = errors.New("npy: unsupported dtype")
	// ErrFortranOrder: the array is stored in Fortran (column-major) order.
	ErrFortranOrder = errors.New("npy: fortran_order arrays are not supported; save the array in C order (numpy.ascontiguousarray)")
	// ErrTooLarge: the declared data size exceeds the caller's limit (or overflows).
	ErrTooLarge = errors.New("npy: array too large")
	// ErrTruncated: the input ends before the preamble, header or data does.
	ErrTruncated = errors.New("npy: truncated file")
	// ErrTrailingData: bytes follow the array data.
	ErrTrailingData = errors.New("npy: trailing data after the array")
	// ErrShape: Write was given a shape that does not match the data.
	ErrShape = errors.New("npy: shape does not match data length")
)

// TruncatedError reports how many bytes of the section were expected and
// how many arrived. It wraps ErrTruncated.
type TruncatedError struct {
	Section  string // "preamble", "header" or "data"
	Expected int64
	Got      int64
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("npy: truncated %s: expected %d bytes, got %d", e.Section, e.Expected, e.Got)
}

// Unwrap returns ErrTruncated.
func (e *TruncatedError) Unwrap() error { return ErrTruncated }

// DtypeError names a dtype Read does not accept. It wraps ErrDtype.
type DtypeError struct {
	Descr string // the descr value as it appeared in the header
}

func (e *DtypeError) Error() string {
	msg := fmt.Sprintf("npy: unsupported dtype %s; only '<f8' (float64) and '<f4' (float32) are accepted", e.Descr)
	if strings.HasPrefix(e.Descr, "'>") {
		msg += " (the array is big-endian; convert with arr.astype('<f8'))"
	}
	return msg
}

// Unwrap returns ErrDtype.
func (e *DtypeError) Unwrap() error { return ErrDtype }

// Write writes data as a C-ordered little-endian float64 ('<f8') array of
// the given shape, byte for byte as numpy.save would: format 1.0 (2.0 only if
// the header would not fit in 1.0), header padded so that the data starts at a
// multiple of 64 bytes. An empty shape writes a 0-d scalar (len(data) must be 1).
// It returns an error wrapping ErrShape if a dimension is negative or the
// product of shape differs from len(data), and any error from w.
func Write(w io.Writer, data []float64, shape []int) error {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("%w: negative dimension %d in %v", ErrShape, d, shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return fmt.Errorf("%w: shape %v overflows", ErrShape, shape)
		}
		n *= d
	}
	if n != len(data) {
		return fmt.Errorf("%w: shape %v holds %d values, data has %d", ErrShape, shape, n, len(data))
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.Write(encodeHeader(shape)); err != nil {
		return err
	}
	var b [8]byte
	for _, v := range data {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
		if _, err := bw.Write(b[:]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// encodeHeader renders the preamble and padded header numpy.save writes for
// a C-ordered '<f8' array (numpy.lib.format._write_array_header and _wrap_header).
func encodeHeader(shape []int) []byte {
	var sb strings.Builder
	sb.WriteString("{'descr': '<f8', 'fortran_order': False, 'shape': (")
	for i, d := range shape {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		sb.WriteString(",")
	}
	sb.WriteString("), }")
	if len(shape) > 0 {
		sb.WriteString(strings.Repeat(" ", max(0, growthAxisMaxDigits-len(strconv.Itoa(shape[0])))))
	}
	header := sb.String()
	hlen := len(header) + 1 // the final '\n'
	major, lenSize := byte(1), 2
	if hlen+arrayAlign > math.MaxUint16 {
		major, lenSize = 2, 4
	}
	pad := arrayAlign - (len(Magic)+2+lenSize+hlen)%arrayAlign
	out := make([]byte, 0, len(Magic)+2+lenSize+hlen+pad)
	out = append(out, Magic...)
	out = append(out, major, 0)
	if lenSize == 2 {
		out = binary.LittleEndian.AppendUint16(out, uint16(hlen+pad))
	} else {
		out = binary.LittleEndian.AppendUint32(out, uint32(hlen+pad))
	}
	out = append(out, header...)
	out = append(out, strings.Repeat(" ", pad)...)
	return append(out, '\n')
}

// Read reads one .npy array from r and returns its values in C order with
// its shape. A 0-d array has an empty shape and one value. Accepted dtypes
// are '<f8' and '<f4' (converted to float64); the rank is not restricted.
//
// maxBytes limits the size of the data section as declared by the header; it
// is checked before anything is allocated (maxBytes ≤ 0 means DefaultMaxBytes).
// Read also rejects bytes after the array.
//
// Errors wrap ErrNotNPY, ErrVersion, ErrHeader, ErrDtype (a *DtypeError),
// ErrFortranOrder, ErrTooLarge, ErrTruncated (a *TruncatedError) or
// ErrTrailingData, or are I/O errors from r.
func Read(r io.Reader, maxBytes int64) (data []float64, shape []int, err error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	var pre [10]byte
	if n, err := io.ReadFull(r, pre[:8]); err != nil {
		if k := min(n, len(Magic)); string(pre[:k]) != Magic[:k] {
			return nil, nil, ErrNotNPY
		}
		return nil, nil, readErr(err, "preamble", 8, int64(n))
	}
	if string(pre[:6]) != Magic {
		return nil, nil, ErrNotNPY
	}
	major, minor := pre[6], pre[7]
	var hlen int64
	switch {
	case major == 1 && minor == 0:
		if n, err := io.ReadFull(r, pre[8:10]); err != nil {
			return nil, nil, readErr(err, "preamble", 10, 8+int64(n))
		}
		hlen = int64(binary.LittleEndian.Uint16(pre[8:10]))
	case (major == 2 || major == 3) && minor == 0:
		var b [4]byte
		if n, err := io.ReadFull(r, b[:]); err != nil {
			return nil, nil, readErr(err, "preamble", 12, 8+int64(n))
		}
		hlen = int64(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, nil, fmt.Errorf("%w %d.%d (want 1.0, 2.0 or 3.0)", ErrVersion, major, minor)
	}
	if hlen > maxHeaderLen {
		return nil, nil, fmt.Errorf("%w: header length %d exceeds %d bytes", ErrHeader, hlen, maxHeaderLen)
	}
	hbuf := make([]byte, hlen)
	if n, err := io.ReadFull(r, hbuf); err != nil {
		return nil, nil, readErr(err, "header", hlen, int64(n))
	}
	h, err := parseHeader(hbuf)
	if err != nil {
		return nil, nil, err
	}
	count := int64(1)
	for _, d := range h.shape {
		if d != 0 && count > math.MaxInt64/8/d {
			return nil, nil, fmt.Errorf("%w: shape %v overflows", ErrTooLarge, h.shape)
		}
		count *= d
	}
	nbytes := count * h.itemSize
	if nbytes > maxBytes {
		return nil, nil, fmt.Errorf("%w: shape %v of %d-byte values needs %d bytes, limit is %d", ErrTooLarge, h.shape, h.itemSize, nbytes, maxBytes)
	}
	if count > math.MaxInt {
		return nil, nil, fmt.Errorf("%w: %d elements", ErrTooLarge, count)
	}
	data, err = readData(r, int(count), h.itemSize)
	if err != nil {
		return nil, nil, err
	}
	var one [1]byte
	switch n, err := r.Read(one[:]); {
	case n > 0:
		return nil, nil, fmt.Errorf("%w: the header declares %d data bytes", ErrTrailingData, nbytes)
	case err != nil && err != io.EOF:
		return nil, nil, err
	}
	shape = make([]int, len(h.shape))
	for i, d := range h.shape {
		shape[i] = int(d)
	}
	return data, shape, nil
}

// readErr turns a short read into a *TruncatedError and passes other I/O
// errors through.
func readErr(err error, section string, expected, got int64) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &TruncatedError{Section: section, Expected: expected, Got: got}
	}
	return err
}

// readData decodes count values of itemSize bytes. Its buffer grows as data
// arrives, so a header that promises more than the input holds costs memory
// only for the bytes that exist.
func readData(r io.Reader, count int, itemSize int64) ([]float64, error) {
	const chunkItems = 8 << 10
	data := make([]float64, 0, min(count, chunkItems))
	buf := make([]byte, chunkItems*int(itemSize))
	for len(data) < count {
		k := min(count-len(data), chunkItems)
		b := buf[:k*int(itemSize)]
		n, err := io.ReadFull(r, b)
		if err != nil {
			return nil, readErr(err, "data", int64(count)*itemSize, int64(len(data))*itemSize+int64(n))
		}
		if itemSize == 8 {
			for i := 0; i < k; i++ {
				data = append(data, math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
			}
		} else {
			for i := 0; i < k; i++ {
				data = append(data, float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))))
			}
		}
	}
	return data, nil
}
