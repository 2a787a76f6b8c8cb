package audit

import (
	"bytes"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "mfn.example/test"

// testLogKey returns the fixed test log key named testOrigin: generated
// from a constant 32-byte seed, so checkpoints are reproducible.
func testLogKey(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	return logKeyFromSeed(t, testOrigin, 1)
}

// logKeyFromSeed derives a note key from a one-byte seed pattern.
func logKeyFromSeed(t testing.TB, name string, seed byte) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := GenerateLogKey(name, bytes.NewReader(bytes.Repeat([]byte{seed}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewLogSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewLogVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// sampleLog builds the signed sample log of n leaves over 4 nodes with a
// checkpoint every `every` leaves (and one at the end).
func sampleLog(t testing.TB, n, every int) *Log {
	t.Helper()
	s, v := testLogKey(t)
	l, err := BuildSampleLog(SampleConfig{Origin: testOrigin, Leaves: n, CheckpointEvery: every, Seed: 7}, s, v)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
