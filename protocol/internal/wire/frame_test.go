package wire

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// failAfter fails the test if more than n bytes are read.
type failAfter struct {
	t *testing.T
	r io.Reader
	n int
}

func (f *failAfter) Read(p []byte) (int, error) {
	if len(p) > f.n {
		p = p[:f.n]
	}
	if len(p) == 0 {
		f.t.Fatal("read beyond the frame header")
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestReadFrame(t *testing.T) {
	payload := []byte("hello")
	b := AppendHeader(nil, 1, TypeAck, len(payload))
	b = append(b, payload...)
	fr, err := ReadFrame(bytes.NewReader(b), 16)
	if err != nil || fr.Version != 1 || fr.Type != TypeAck || !bytes.Equal(fr.Payload, payload) {
		t.Fatalf("ReadFrame = %+v, %v", fr, err)
	}
	if _, err := ReadFrame(bytes.NewReader(nil), 16); err != io.EOF {
		t.Fatalf("empty input: %v, want io.EOF", err)
	}
	for i := 1; i < len(b); i++ {
		if _, err := ReadFrame(bytes.NewReader(b[:i]), 16); !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader(AppendHeader(nil, 1, 0, 0)), 16); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("type 0: %v", err)
	}
}

func TestReadFrameSizeLimitBeforeReading(t *testing.T) {
	h := AppendHeader(nil, 1, TypeSubmitUpdate, 1<<30)
	r := &failAfter{t: t, r: io.MultiReader(bytes.NewReader(h), infinite{}), n: HeaderSize}
	_, err := ReadFrame(r, 4<<20)
	var se *FrameSizeError
	if !errors.As(err, &se) || !errors.Is(err, ErrFrameTooLarge) || se.Size != 1<<30 || se.Max != 4<<20 {
		t.Fatalf("oversize: %v", err)
	}
	// Exactly at the limit is fine.
	b := append(AppendHeader(nil, 1, TypeAck, 8), make([]byte, 8)...)
	if _, err := ReadFrame(bytes.NewReader(b), 8); err != nil {
		t.Fatalf("frame at the limit: %v", err)
	}
}

// A declared size the peer never sends is not allocated up front.
func TestReadFrameLyingLength(t *testing.T) {
	h := AppendHeader(nil, 1, TypeSubmitUpdate, 4<<20)
	data := append(h, make([]byte, 1000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 10
	for range runs {
		if _, err := ReadFrame(bytes.NewReader(data), 4<<20); !errors.Is(err, ErrTruncated) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 256<<10 {
		t.Fatalf("a 1000-byte stream claiming 4 MiB allocated %d bytes per read", per)
	}
}

type infinite struct{}

func (infinite) Read(p []byte) (int, error) { return len(p), nil }
