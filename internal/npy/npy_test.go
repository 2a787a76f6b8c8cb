package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// knownF8 is the exact file numpy.save writes for
// np.arange(6, dtype='<f8').reshape(2, 3), constructed byte by byte:
// the 59-character dict, 20 spaces of growth room for the first axis
// (21 − len("2")), then 38 spaces and '\n' so that 10 + 118 = 128 bytes precede
// the data (a multiple of 64); header length 118 = 0x76.
func knownF8() []byte {
	var b []byte
	b = append(b, 0x93, 'N', 'U', 'M', 'P', 'Y', 0x01, 0x00, 0x76, 0x00)
	b = append(b, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"...)
	b = append(b, strings.Repeat(" ", 20+38)...)
	b = append(b, '\n')
	for i := range 6 {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(i)))
	}
	return b
}

// f4File builds a version-2.0 float32 file by hand (as NumPy would for a
// header too long for 1.0, here forced to test the 4-byte length field).
func f4File(vals []float32, shapeText string) []byte {
	h := "{'descr': '<f4', 'fortran_order': False, 'shape': " + shapeText + ", }"
	hlen := len(h) + 1
	pad := 64 - (12+hlen)%64
	var b []byte
	b = append(b, Magic...)
	b = append(b, 2, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(hlen+pad))
	b = append(b, h...)
	b = append(b, strings.Repeat(" ", pad)...)
	b = append(b, '\n')
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func TestWriteKnownBytes(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, []float64{0, 1, 2, 3, 4, 5}, []int{2, 3}); err != nil {
		t.Fatal(err)
	}
	want := knownF8()
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("Write output differs from numpy.save bytes:\n got %q\nwant %q", buf.Bytes(), want)
	}
	if len(want) != 128+48 {
		t.Fatalf("known file is %d bytes, want 176", len(want))
	}
}

func TestWriteHeaderAlignment(t *testing.T) {
	for _, shape := range [][]int{{}, {0}, {7}, {1, 1}, {123456, 0}, {3, 4, 5}, {1, 2, 3, 4, 5, 6, 7, 8}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		var buf bytes.Buffer
		if err := Write(&buf, make([]float64, n), shape); err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		b := buf.Bytes()
		hlen := int(binary.LittleEndian.Uint16(b[8:10]))
		if (10+hlen)%64 != 0 {
			t.Errorf("shape %v: data starts at %d, not a multiple of 64", shape, 10+hlen)
		}
		if b[10+hlen-1] != '\n' {
			t.Errorf("shape %v: header does not end in a newline", shape)
		}
		if len(b) != 10+hlen+8*n {
			t.Errorf("shape %v: file is %d bytes, want %d", shape, len(b), 10+hlen+8*n)
		}
	}
}

func TestReadKnownBytes(t *testing.T) {
	data, shape, err := Read(bytes.NewReader(knownF8()), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape, []int{2, 3}) || !slices.Equal(data, []float64{0, 1, 2, 3, 4, 5}) {
		t.Fatalf("got shape %v data %v", shape, data)
	}

	f4 := f4File([]float32{1.5, -2.25, 0.1, float32(math.Inf(1))}, "(2, 2)")
	data, shape, err = Read(bytes.NewReader(f4), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1.5, -2.25, float64(float32(0.1)), math.Inf(1)}
	if !slices.Equal(shape, []int{2, 2}) || !slices.Equal(data, want) {
		t.Fatalf("float32: got shape %v data %v, want %v", shape, data, want)
	}
}

// TestReadTolerantSyntax covers header spellings other writers (older NumPy,
// hand-written files) produce.
func TestReadTolerantSyntax(t *testing.T) {
	for _, h := range []string{
		`{"descr": "<f8", "shape": (2,), "fortran_order": False}`,
		`{'shape':(2L,),'fortran_order':False,'descr':'<f8'}`,
		"{'descr': '<f8',\n 'fortran_order': False, 'shape': ((2),), }",
		`{'descr': '<f8', 'fortran_order': False, 'shape': (2,)}` + "\x20\x20",
	} {
		b := rawFile(1, h, 16)
		data, shape, err := Read(bytes.NewReader(b), 0)
		if err != nil {
			t.Errorf("%s: %v", h, err)
			continue
		}
		if !slices.Equal(shape, []int{2}) || len(data) != 2 {
			t.Errorf("%s: shape %v len %d", h, shape, len(data))
		}
	}
}

// rawFile wraps an arbitrary header (unpadded) and dataLen zero bytes.
func rawFile(major byte, h string, dataLen int) []byte {
	b := append([]byte(Magic), major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(h)))
	}
	b = append(b, h...)
	return append(b, make([]byte, dataLen)...)
}

func TestRoundTrip(t *testing.T) {
	negZero := math.Copysign(0, -1)
	cases := []struct {
		shape []int
		data  []float64
	}{
		{[]int{}, []float64{math.Pi}},
		{[]int{0}, []float64{}},
		{[]int{3, 0, 2}, []float64{}},
		{[]int{5}, []float64{1, -1, math.MaxFloat64, math.SmallestNonzeroFloat64, negZero}},
		{[]int{2, 3}, []float64{math.NaN(), math.Inf(1), math.Inf(-1), -0.07, 0.04, 1e300}},
		{[]int{2, 3, 4}, seq(24)},
		{[]int{64, 64}, seq(4096)},
		{[]int{3, 100, 100}, seq(30000)},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		if err := Write(&buf, c.data, c.shape); err != nil {
			t.Fatalf("Write %v: %v", c.shape, err)
		}
		data, shape, err := Read(&buf, 0)
		if err != nil {
			t.Fatalf("Read %v: %v", c.shape, err)
		}
		if !slices.Equal(shape, c.shape) {
			t.Errorf("shape %v came back as %v", c.shape, shape)
		}
		if len(data) != len(c.data) {
			t.Fatalf("shape %v: %d values came back as %d", c.shape, len(c.data), len(data))
		}
		for i := range data {
			if math.Float64bits(data[i]) != math.Float64bits(c.data[i]) {
				t.Fatalf("shape %v value %d: %v came back as %v", c.shape, i, c.data[i], data[i])
			}
		}
	}
}

func seq(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = float64(i)*0.001 - 0.07
	}
	return s
}

func TestWriteErrors(t *testing.T) {
	for _, c := range []struct {
		shape []int
		n     int
	}{
		{[]int{2, 3}, 5},
		{[]int{-1}, 0},
		{[]int{}, 0},
		{[]int{math.MaxInt, 3}, 0},
	} {
		err := Write(io.Discard, make([]float64, c.n), c.shape)
		if !errors.Is(err, ErrShape) {
			t.Errorf("shape %v with %d values: err %v, want ErrShape", c.shape, c.n, err)
		}
	}
	werr := errors.New("disk full")
	if err := Write(failWriter{werr}, seq(100000), []int{100000}); !errors.Is(err, werr) {
		t.Errorf("failing writer: err %v, want %v", err, werr)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestReadErrors(t *testing.T) {
	hdr := func(h string) []byte { return rawFile(1, h, 0) }
	valid := knownF8()
	cases := []struct {
		name    string
		in      []byte
		max     int64
		want    error
		message string
	}{
		{"empty", nil, 0, ErrTruncated, "expected 8 bytes, got 0"},
		{"not npy", []byte("PK\x03\x04 zip file"), 0, ErrNotNPY, ""},
		{"short garbage", []byte("ab"), 0, ErrNotNPY, ""},
		{"magic prefix only", []byte("\x93NUM"), 0, ErrTruncated, "preamble"},
		{"no header length", valid[:9], 0, ErrTruncated, "expected 10 bytes, got 9"},
		{"version 4", append([]byte(Magic), 4, 0, 0, 0), 0, ErrVersion, "4.0"},
		{"version 1.1", append([]byte(Magic), 1, 1, 0, 0), 0, ErrVersion, "1.1"},
		{"header truncated", valid[:50], 0, ErrTruncated, "expected 118 bytes, got 40"},
		{"header too long", append([]byte(Magic), 2, 0, 0, 0, 0, 1), 0, ErrHeader, "exceeds"},
		{"data truncated", valid[:128+16], 0, ErrTruncated, "expected 48 bytes, got 16"},
		{"data missing", valid[:128], 0, ErrTruncated, "expected 48 bytes, got 0"},
		{"trailing data", append(slices.Clone(valid), 0), 0, ErrTrailingData, ""},
		{"big-endian", hdr(`{'descr': '>f8', 'fortran_order': False, 'shape': (0,)}`), 0, ErrDtype, "'>f8'"},
		{"int64", hdr(`{'descr': '<i8', 'fortran_order': False, 'shape': (0,)}`), 0, ErrDtype, "'<i8'"},
		{"structured", hdr(`{'descr': [('x', '<f8')], 'fortran_order': False, 'shape': (0,)}`), 0, ErrDtype, "[('x', '<f8')]"},
		{"fortran", hdr(`{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2)}`), 0, ErrFortranOrder, "C order"},
		{"fortran not bool", hdr(`{'descr': '<f8', 'fortran_order': 0, 'shape': (2, 2)}`), 0, ErrHeader, "fortran_order"},
		{"missing shape", hdr(`{'descr': '<f8', 'fortran_order': False}`), 0, ErrHeader, "missing key \"shape\""},
		{"extra key", hdr(`{'descr': '<f8', 'fortran_order': False, 'shape': (), 'x': 1}`), 0, ErrHeader, "unexpected key \"x\""},
		{"duplicate key", hdr(`{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': ()}`), 0, ErrHeader, "duplicate"},
		{"shape list", hdr(`{'descr': '<f8', 'fortran_order': False, 'shape': [2]}`), 0, ErrHeader, "list"},
		{"shape float", hdr(`{'descr': '<f8', 'fortran_order': False, 'shape': (2.0,)}`), 0, ErrHeader, "decimal"},
		{"negative dim", hdr(`{'descr': '<f8', 'fortran_order': False, 'shape': (-2,)}`), 0, ErrHeader, "negative"},
		{"huge int", hdr(`{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,)}`), 0, ErrHeader, "out of range"},
		{"not a dict", hdr(`('<f8', False, (2,))`), 0, ErrHeader, "tuple"},
		{"eval attempt", hdr(`{'descr': __import__('os'), 'fortran_order': False, 'shape': ()}`), 0, ErrHeader, "unexpected name"},
		{"unterminated", hdr(`{'descr': '<f8`), 0, ErrHeader, "unterminated"},
		{"missing comma", hdr(`{'descr': '<f8' 'fortran_order': False}`), 0, ErrHeader, "expected ','"},
		{"garbage after", hdr(`{'descr': '<f8', 'fortran_order': False, 'shape': ()} x`), 0, ErrHeader, "after the dict"},
		{"deep nesting", hdr(`{'descr': ` + strings.Repeat("(", 100) + `}`), 0, ErrHeader, "nesting"},
		{"too large", hdr(`{'descr': '<f8', 'fortran_order': False, 'shape': (1024, 1024)}`), 1 << 20, ErrTooLarge, "needs 8388608 bytes, limit is 1048576"},
		{"overflow", hdr(`{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}`), 0, ErrTooLarge, "overflows"},
		{"default limit", hdr(`{'descr': '<f8', 'fortran_order': False, 'shape': (1073741824,)}`), 0, ErrTooLarge, "limit is 1073741824"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, shape, err := Read(bytes.NewReader(c.in), c.max)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.message) {
				t.Errorf("error %q does not mention %q", err, c.message)
			}
			if data != nil || shape != nil {
				t.Errorf("error returned data too")
			}
		})
	}
}

func TestTruncatedErrorDetail(t *testing.T) {
	_, _, err := Read(bytes.NewReader(knownF8()[:128+20]), 0)
	var te *TruncatedError
	if !errors.As(err, &te) {
		t.Fatalf("err %v is not a *TruncatedError", err)
	}
	if te.Section != "data" || te.Expected != 48 || te.Got != 20 {
		t.Errorf("got %+v, want data 48/20", *te)
	}
	_, _, err = Read(bytes.NewReader(rawFile(1, `{'descr': '>f4', 'fortran_order': False, 'shape': ()}`, 0)), 0)
	var de *DtypeError
	if !errors.As(err, &de) || de.Descr != "'>f4'" || !strings.Contains(err.Error(), "big-endian") {
		t.Errorf("big-endian float32: err %v", err)
	}
}

// TestReadMemoryFollowsData checks that a header promising far more data
// than the input holds costs memory only for the bytes present.
func TestReadMemoryFollowsData(t *testing.T) {
	in := rawFile(1, `{'descr': '<f8', 'fortran_order': False, 'shape': (100000000,)}`, 1000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := Read(bytes.NewReader(in), 1<<40)
	runtime.ReadMemStats(&after)
	var te *TruncatedError
	if !errors.As(err, &te) || te.Expected != 800000000 || te.Got != 1000 {
		t.Fatalf("err = %v, want truncated 800000000/1000", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("reading 1000 bytes of a declared 800 MB array allocated %d bytes", grew)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReadIOError(t *testing.T) {
	ioErr := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(knownF8()[:130]), errReader{ioErr})
	if _, _, err := Read(r, 0); !errors.Is(err, ioErr) {
		t.Errorf("err = %v, want the reader's error", err)
	}
}
