package crypto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math"
	"testing"

	"filippo.io/age"
)

// The fuzz targets are seeded from testdata/fuzz/<name>/ (written from the
// known-answer vectors by TestGenerateVectors) and check more than "no
// panic": every accepted input round-trips exactly and every rejection
// wraps one of the package's sentinels.

func isSentinel(err error) bool {
	for _, s := range []error{ErrBadSignature, ErrUnknownNode, ErrNotRecipient, ErrMalformed, ErrTooLarge, ErrVersion} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func FuzzParseStatement(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatement(b)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		again, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed statement does not marshal: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical:\n in %x\nout %x", b, again)
		}
	})
}

func FuzzDecodeUpdate(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		vals, err := DecodeUpdate(b, 1<<16)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		for i, v := range vals {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("value %d = %v accepted", i, v)
			}
		}
		h, _ := ParseUpdateHeader(b, 1<<16)
		if again := EncodeUpdate(vals, h.DType); !bytes.Equal(again, b) {
			t.Fatalf("round trip differs:\n in %x\nout %x", b, again)
		}
	})
}

func FuzzOpen(f *testing.F) {
	v := loadVectors(f)
	ids := []age.Identity{v.ageIdentity(f)}
	keys := v.nodeKeys(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := Open(b, ids, keys, Limits{MaxUpdateBytes: 1 << 20})
		checkOpened(t, op, err)
		checkAgeAgrees(t, b, ids)
	})
}

// checkAgeAgrees checks that the in-place payload decryption accepts
// exactly what age.Decrypt accepts, with the same plaintext.
func checkAgeAgrees(t *testing.T, sealed []byte, ids []age.Identity) {
	t.Helper()
	var mine []byte
	p, err := openPayload(sealed, ids, DefaultMaxHeaderBytes)
	if err == nil {
		mine, err = p.decryptAll()
	}
	var theirs []byte
	r, aerr := age.Decrypt(bytes.NewReader(sealed), ids...)
	if aerr == nil {
		theirs, aerr = io.ReadAll(r)
	}
	if (err == nil) != (aerr == nil) {
		t.Fatalf("payload decryption: ours %v, age %v", err, aerr)
	}
	if err == nil && !bytes.Equal(mine, theirs) {
		t.Fatal("payload decryption differs from age")
	}
	if err != nil && !isSentinel(err) {
		t.Fatalf("error without sentinel: %v", err)
	}
}

// FuzzOpenPlain fuzzes the container decoder behind the age layer, which
// mutations of a ciphertext cannot reach.
func FuzzOpenPlain(f *testing.F) {
	v := loadVectors(f)
	keys := v.nodeKeys(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := openPlain(b, keys, Limits{MaxUpdateBytes: 1 << 20})
		checkOpened(t, op, err)
		if err == nil && !bytes.Equal(containerBytes(op.StatementBytes, op.Signature, op.Update), b) {
			t.Fatal("container does not round-trip")
		}
	})
}

func checkOpened(t *testing.T, op *Opened, err error) {
	t.Helper()
	if err != nil {
		if op != nil || !isSentinel(err) {
			t.Fatalf("op=%v err=%v", op, err)
		}
		return
	}
	if sha256.Sum256(op.Update) != op.Statement.UpdateHash {
		t.Fatal("accepted update does not match the statement's hash")
	}
	if err := VerifyStatement(op.PublicKey, op.StatementBytes, op.Signature); err != nil {
		t.Fatalf("accepted bad signature: %v", err)
	}
}
