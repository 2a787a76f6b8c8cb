package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mfn/mfn/protocol/internal/wire"
)

// FuzzFrame feeds arbitrary bytes to the frame reader and the message
// decoder behind it: no panic, only the documented errors, and whatever is
// accepted re-encodes to exactly the input.
func FuzzFrame(f *testing.F) {
	for _, s := range sampleMessages() {
		fr, _ := frameOf(1, s.m)
		f.Add(fr)
	}
	f.Add(wire.AppendHeader(nil, 1, wire.TypeSubmitUpdate, 1<<30))
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 16
		fr, err := wire.ReadFrame(bytes.NewReader(data), max)
		if err != nil {
			if len(data) == 0 && err == io.EOF {
				return
			}
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrUnknownType) && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if len(fr.Payload) > max {
			t.Fatalf("payload of %d bytes above the limit", len(fr.Payload))
		}
		n := wire.HeaderSize + len(fr.Payload)
		re := append(wire.AppendHeader(nil, fr.Version, fr.Type, len(fr.Payload)), fr.Payload...)
		if !bytes.Equal(re, data[:n]) {
			t.Fatal("frame does not re-encode to its input")
		}
		m, err := decodeMessage(fr.Type, fr.Payload)
		if err != nil {
			return
		}
		b, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(b, fr.Payload) {
			t.Fatalf("accepted %v payload does not re-encode: %v", fr.Type, err)
		}
	})
}

// FuzzMessages runs every message decoder on arbitrary payloads: no panic,
// errors are *DecodeError, and accepted payloads are canonical (they
// re-encode to the same bytes).
func FuzzMessages(f *testing.F) {
	for _, s := range sampleMessages() {
		b, _ := s.m.MarshalBinary()
		f.Add(byte(s.m.wireType()), b)
	}
	f.Fuzz(func(t *testing.T, typ byte, data []byte) {
		m, err := decodeMessage(wire.Type(typ), data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			return
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %v does not encode: %v", m.wireType(), err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("%v: decode/encode not canonical:\n in %x\nout %x", m.wireType(), data, b)
		}
		var m2 = newMessage(wire.Type(typ))
		if err := m2.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWriteFuzzCorpus writes the seed corpora under testdata/fuzz from the
// golden samples when run with -update.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz seeds")
	}
	for _, s := range sampleMessages() {
		fr, _ := frameOf(1, s.m)
		b, _ := s.m.MarshalBinary()
		write(t, "FuzzFrame", s.name, fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(fr))))
		write(t, "FuzzMessages", s.name, fmt.Sprintf("go test fuzz v1\nbyte(%s)\n[]byte(%s)\n",
			strconv.QuoteRune(rune(s.m.wireType())), strconv.Quote(string(b))))
	}
}

func write(t *testing.T, fuzzer, name, content string) {
	dir := filepath.Join("testdata", "fuzz", fuzzer)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
