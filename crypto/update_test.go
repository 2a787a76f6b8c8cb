package crypto

import (
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"testing"
)

func TestUpdateRoundTrip(t *testing.T) {
	t.Parallel()
	vals := []float64{0, math.Copysign(0, -1), 1, -1, math.MaxFloat32, math.SmallestNonzeroFloat64, 1e300, -12.5}
	for _, dt := range []DType{Float32, Float64} {
		enc := EncodeUpdate(vals, dt)
		if len(enc) != UpdateHeaderLen+len(vals)*dt.Size() {
			t.Fatalf("%v: length %d", dt, len(enc))
		}
		h, err := ParseUpdateHeader(enc, len(vals))
		if err != nil || h.DType != dt || h.Len != uint64(len(vals)) {
			t.Fatalf("%v: header %+v, %v", dt, h, err)
		}
		if dt == Float32 {
			// 1e300 overflows float32 to +Inf, which the decoder rejects.
			_, err := DecodeUpdate(enc, 0)
			var nf *NonFiniteError
			if !errors.As(err, &nf) || nf.Index != 6 || !math.IsInf(nf.Value, 1) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("float32 overflow: err = %v", err)
			}
			continue
		}
		dec, err := DecodeUpdate(enc, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range vals {
			if math.Float64bits(dec[i]) != math.Float64bits(vals[i]) {
				t.Fatalf("value %d: %v != %v", i, dec[i], vals[i])
			}
		}
	}
}

func TestDecodeUpdateErrors(t *testing.T) {
	t.Parallel()
	good := EncodeUpdate([]float64{1, 2, 3}, Float32)
	mod := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	nan := mod(func(b []byte) {
		binary.LittleEndian.PutUint32(b[UpdateHeaderLen+4:], math.Float32bits(float32(math.NaN())))
	})
	inf64 := EncodeUpdate([]float64{1, math.Inf(-1)}, Float64)
	cases := []struct {
		name   string
		in     []byte
		maxLen int
		want   error
	}{
		{"empty", nil, 0, ErrMalformed},
		{"short header", good[:UpdateHeaderLen-1], 0, ErrMalformed},
		{"magic", mod(func(b []byte) { b[0] = 'X' }), 0, ErrMalformed},
		{"version", mod(func(b []byte) { b[4] = 2 }), 0, ErrVersion},
		{"dtype", mod(func(b []byte) { b[5] = 3 }), 0, ErrMalformed},
		{"over limit", good, 2, ErrTooLarge},
		{"huge count", mod(func(b []byte) { binary.LittleEndian.PutUint64(b[6:], 1<<40) }), math.MaxInt, ErrMalformed},
		{"max count", mod(func(b []byte) { binary.LittleEndian.PutUint64(b[6:], math.MaxUint64) }), math.MaxInt, ErrTooLarge},
		{"count vs size", mod(func(b []byte) { b[6] = 4 }), 0, ErrMalformed},
		{"partial value", good[:len(good)-1], 0, ErrMalformed},
		{"trailing", append(append([]byte(nil), good...), 0, 0, 0, 0), 0, ErrMalformed},
		{"nan", nan, 0, ErrMalformed},
		{"inf", inf64, 0, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := DecodeUpdate(c.in, c.maxLen); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	var nf *NonFiniteError
	if _, err := DecodeUpdate(nan, 0); !errors.As(err, &nf) || nf.Index != 1 {
		t.Fatalf("nan: err = %v, want index 1", err)
	}
	if _, err := DecodeUpdate(inf64, 0); !errors.As(err, &nf) || nf.Index != 1 || !math.IsInf(nf.Value, -1) {
		t.Fatalf("inf: err = %v", err)
	}
}

// TestDecodeUpdateLimitBeforeAllocation checks that an over-limit or
// inconsistent count is rejected without allocating the values.
func TestDecodeUpdateLimitBeforeAllocation(t *testing.T) {
	b := EncodeUpdate(make([]float64, 100000), Float64)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := DecodeUpdate(b, 99999); !errors.Is(err, ErrTooLarge) {
			t.Fatal(err)
		}
		if _, err := DecodeUpdate(b[:len(b)-8], 0); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	// Twenty decodes of 100,000 float64 would allocate 16 MB.
	if got := after.TotalAlloc - before.TotalAlloc; got > 100000 {
		t.Fatalf("rejected updates allocated %d bytes", got)
	}
}

func TestDTypeString(t *testing.T) {
	t.Parallel()
	for d, want := range map[DType]string{Float32: "float32", Float64: "float64", 9: "dtype(9)"} {
		if d.String() != want {
			t.Errorf("%d: %q", d, d.String())
		}
	}
}
