package audit

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestCheckpointSignParse(t *testing.T) {
	t.Parallel()
	s, v := testLogKey(t)
	var root [32]byte
	for i := range root {
		root[i] = byte(i)
	}
	msg, err := SignCheckpoint(s, testOrigin, 12345, root[:])
	if err != nil {
		t.Fatal(err)
	}
	wantBody := testOrigin + "\n12345\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
	if !strings.HasPrefix(string(msg), wantBody+"\n— "+testOrigin+" ") {
		t.Fatalf("signed note:\n%s\nwant body %q then a signature line by %s", msg, wantBody, testOrigin)
	}
	cp, err := ParseCheckpoint(msg, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Origin != testOrigin || cp.Size != 12345 || cp.Root != root || len(cp.Extensions) != 0 {
		t.Fatalf("parsed %+v", cp)
	}

	// Extension lines survive.
	ext := Checkpoint{Origin: testOrigin, Size: 1, Root: root, Extensions: []string{"round 7", "x"}}
	msg2, err := ext.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	cp2, err := ParseCheckpoint(msg2, v)
	if err != nil || strings.Join(cp2.Extensions, "|") != "round 7|x" {
		t.Fatalf("extensions: %+v, %v", cp2, err)
	}

	// Another key, or a changed body, is rejected.
	_, other := logKeyFromSeed(t, testOrigin, 2)
	if _, err := ParseCheckpoint(msg, other); !errors.Is(err, ErrBadCheckpointSignature) {
		t.Fatalf("other key: err %v", err)
	}
	tampered := bytes.Replace(msg, []byte("12345"), []byte("12346"), 1)
	if _, err := ParseCheckpoint(tampered, v); !errors.Is(err, ErrBadCheckpointSignature) {
		t.Fatalf("tampered size: err %v", err)
	}
	if _, err := ParseCheckpoint([]byte("not a note"), v); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: err %v", err)
	}
	if _, err := ParseCheckpoint(make([]byte, MaxCheckpointLen+1), v); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize: err %v", err)
	}
	if _, err := SignCheckpoint(s, testOrigin, 1, root[:31]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short root: err %v", err)
	}
	if _, err := SignCheckpoint(s, "", 1, root[:]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty origin: err %v", err)
	}
}

func TestCheckpointBodyStrict(t *testing.T) {
	t.Parallel()
	const root = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	good := []string{
		"o\n0\n" + root + "\n",
		"o\n18446744073709551615\n" + root + "\n",
		"o\n5\n" + root + "\next\n",
	}
	for _, b := range good {
		if _, err := ParseCheckpointBody([]byte(b)); err != nil {
			t.Errorf("%q: %v", b, err)
		}
	}
	bad := []string{
		"",
		"o\n5\n" + root,         // no final newline
		"o\n5\n",                // no root
		"\n5\n" + root + "\n",   // empty origin
		"o\n05\n" + root + "\n", // leading zero
		"o\n+5\n" + root + "\n", // sign
		"o\n-1\n" + root + "\n", // negative
		"o\n18446744073709551616\n" + root + "\n", // overflow
		"o\n5\nAAEC\n",              // short root
		"o\n5\n" + root[:43] + "\n", // unpadded
		"o\n5\n" + root + "\n\n",    // empty extension line
		"o\n5\n" + root + " \n",     // trailing space in root
		"o\n5\n" + strings.Replace(root, "=", "9", 1) + "\n",
		"o\n5\n" + root[:42] + "9=\n",                  // non-zero padding bits
		"\xff\n5\n" + root + "\n",                      // invalid UTF-8
		"o\n5\n" + root[:20] + "\r" + root[20:] + "\n", // CR, which base64 decoding skips
		"o\t\n5\n" + root + "\n",                       // control character
	}
	for _, b := range bad {
		if _, err := ParseCheckpointBody([]byte(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err %v, want ErrMalformed", b, err)
		}
	}
}

func TestGenerateLogKey(t *testing.T) {
	t.Parallel()
	skey, vkey, err := GenerateLogKey("mfn.example/cluster-1", bytes.NewReader(bytes.Repeat([]byte{3}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(skey, "PRIVATE+KEY+mfn.example/cluster-1+") || !strings.HasPrefix(vkey, "mfn.example/cluster-1+") {
		t.Fatalf("keys %q %q", skey, vkey)
	}
	s, err := NewLogSigner(skey + "\n")
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewLogVerifier(" " + vkey + "\n")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "hello\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("generated pair does not verify: %v", err)
	}
	if _, _, err := GenerateLogKey("has space", bytes.NewReader(make([]byte, 64))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad name: err %v", err)
	}
	if _, err := NewLogVerifier("nonsense"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad vkey: err %v", err)
	}
	if _, err := NewLogSigner("PRIVATE+KEY+nonsense"); !errors.Is(err, ErrMalformed) || strings.Contains(err.Error(), "nonsense") {
		t.Fatalf("bad skey: err %v (must not echo the key)", err)
	}
}
