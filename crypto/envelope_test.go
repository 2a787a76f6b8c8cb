package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"filippo.io/age"
)

func newAgeIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// sealPlain encrypts an arbitrary container plaintext to r with age, for
// tests that need malformed containers behind a valid age layer.
func sealPlain(t testing.TB, plain []byte, r age.Recipient) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	priv := v.key(t)
	coords := []*age.X25519Identity{newAgeIdentity(t), newAgeIdentity(t), newAgeIdentity(t)}
	rcpts := []age.Recipient{coords[0].Recipient(), coords[1].Recipient(), coords[2].Recipient()}
	for _, n := range []int{0, 1, 16383, 16384, 16385, 40000} { // around the 64 KiB chunk boundary
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			vals := make([]float64, n)
			for i := range vals {
				vals[i] = float64(i%97) - 48.5
			}
			upd := EncodeUpdate(vals, Float32)
			stmt := v.statement(t)
			stmt.UpdateHash = [32]byte{} // Seal fills it
			sealed, err := Seal(stmt, upd, priv, rcpts)
			if err != nil {
				t.Fatal(err)
			}
			if stmt.UpdateHash != sha256.Sum256(upd) {
				t.Fatal("Seal did not fill UpdateHash")
			}
			for i, c := range coords {
				op, err := Open(sealed, []age.Identity{c}, v.nodeKeys(t), Limits{})
				if err != nil {
					t.Fatalf("coordinator %d: %v", i, err)
				}
				if !bytes.Equal(op.Update, upd) {
					t.Fatalf("coordinator %d: update differs", i)
				}
				want, _ := stmt.MarshalBinary()
				if !bytes.Equal(op.StatementBytes, want) {
					t.Fatalf("coordinator %d: statement differs", i)
				}
				if err := VerifyStatement(op.PublicKey, op.StatementBytes, op.Signature); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestSealChecksUpdateHash(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	stmt := v.statement(t)
	_, err := Seal(stmt, []byte("other update"), v.key(t), []age.Recipient{v.ageIdentity(t).Recipient()})
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if _, err := Seal(stmt, mustHex(t, v.UpdateF32Hex), v.key(t), nil); err == nil {
		t.Fatal("sealed to no recipients")
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	aid := v.ageIdentity(t)
	ids := []age.Identity{aid}
	keys := v.nodeKeys(t)
	sealed := mustHex(t, v.SealedHex)
	sb := mustHex(t, v.StatementHex)
	sig := mustHex(t, v.SignatureHex)
	upd := mustHex(t, v.UpdateF32Hex)
	good := containerBytes(sb, sig, upd)

	// A statement signed by another key, sealed correctly.
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	forged, err := Seal(v.statement(t), upd, otherKey, []age.Recipient{aid.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	set := func(i int, b byte) []byte { c := bytes.Clone(good); c[i] = b; return c }
	badStmt := bytes.Clone(sb)
	badStmt[0] = 9

	cases := []struct {
		name   string
		sealed []byte
		ids    []age.Identity
		keys   NodeKeyLookup
		limits Limits
		want   error
	}{
		{"wrong identity", sealed, []age.Identity{newAgeIdentity(t)}, keys, Limits{}, ErrNotRecipient},
		{"no identity", sealed, nil, keys, Limits{}, ErrNotRecipient},
		{"other signer", forged, ids, keys, Limits{}, ErrBadSignature},
		{"unknown node", sealed, ids, NodeKeys{}, Limits{}, ErrUnknownNode},
		{"too large", sealed, ids, keys, Limits{MaxUpdateBytes: 1, MaxHeaderBytes: 1}, ErrTooLarge},
		{"header over limit", sealed, ids, keys, Limits{MaxHeaderBytes: 50}, ErrTooLarge},
		{"update over limit", sealed, ids, keys, Limits{MaxUpdateBytes: int64(len(upd) - 1)}, ErrTooLarge},
		{"not age", []byte("hello"), ids, keys, Limits{}, ErrMalformed},
		{"truncated age", sealed[:len(sealed)-1], ids, keys, Limits{}, ErrMalformed},
		{"trailing age", append(bytes.Clone(sealed), 0), ids, keys, Limits{}, ErrMalformed},
		{"bad magic", sealPlain(t, set(0, 'X'), aid.Recipient()), ids, keys, Limits{}, ErrMalformed},
		{"bad version", sealPlain(t, set(4, 2), aid.Recipient()), ids, keys, Limits{}, ErrVersion},
		{"statement too long", sealPlain(t, set(5, 0xff), aid.Recipient()), ids, keys, Limits{}, ErrTooLarge},
		{"bad statement", sealPlain(t, containerBytes(badStmt, sig, upd), aid.Recipient()), ids, keys, Limits{}, ErrVersion},
		{"update hash", sealPlain(t, containerBytes(sb, sig, append(bytes.Clone(upd[:len(upd)-1]), 7)), aid.Recipient()), ids, keys, Limits{}, ErrBadSignature},
		{"short update", sealPlain(t, good[:len(good)-1], aid.Recipient()), ids, keys, Limits{}, ErrMalformed},
		{"trailing plaintext", sealPlain(t, append(bytes.Clone(good), 0), aid.Recipient()), ids, keys, Limits{}, ErrMalformed},
		{"short container", sealPlain(t, good[:10], aid.Recipient()), ids, keys, Limits{}, ErrMalformed},
		{"empty container", sealPlain(t, nil, aid.Recipient()), ids, keys, Limits{}, ErrMalformed},
		{"update length beyond input", sealPlain(t, set(7+len(sb)+64+4, 0x01), aid.Recipient()), ids, keys, Limits{MaxUpdateBytes: 1 << 62}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			op, err := Open(c.sealed, c.ids, c.keys, c.limits)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if op != nil {
				t.Fatal("non-nil result with error")
			}
			for _, s := range []error{ErrBadSignature, ErrUnknownNode, ErrNotRecipient, ErrMalformed, ErrTooLarge, ErrVersion} {
				if s != c.want && errors.Is(err, s) {
					t.Fatalf("err %v also matches %v", err, s)
				}
			}
		})
	}
	// The sanity case: the same helpers produce an envelope that opens.
	if _, err := Open(sealPlain(t, good, aid.Recipient()), ids, keys, Limits{}); err != nil {
		t.Fatalf("hand-built container: %v", err)
	}
}

// TestOpenDetectsEveryByteChange changes every byte of a sealed envelope
// (each single-bit flip and the complement) and truncates it at every
// length: Open must fail every time.
func TestOpenDetectsEveryByteChange(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	sealed := mustHex(t, v.SealedHex)
	ids := []age.Identity{v.ageIdentity(t)}
	keys := v.nodeKeys(t)
	if _, err := Open(sealed, ids, keys, Limits{}); err != nil {
		t.Fatal(err)
	}
	masks := []byte{0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff}
	if testing.Short() {
		masks = []byte{0x01, 0x80, 0xff}
	}
	buf := make([]byte, len(sealed))
	for i := range sealed {
		for _, m := range masks {
			copy(buf, sealed)
			buf[i] ^= m
			if _, err := Open(buf, ids, keys, Limits{}); err == nil {
				t.Fatalf("byte %d ^ %#02x: accepted", i, m)
			}
			checkAgeAgrees(t, buf, ids)
		}
	}
	for n := range len(sealed) {
		if _, err := Open(sealed[:n], ids, keys, Limits{}); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
		checkAgeAgrees(t, sealed[:n], ids)
	}
}

func TestMaxSealedSize(t *testing.T) {
	t.Parallel()
	// A sealed envelope of exactly the maximum update must be within the
	// bound Open applies, for updates around the chunk boundaries.
	aid := newAgeIdentity(t)
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	v := loadVectors(t)
	for _, n := range []int64{1, ageChunk - containerFixedLen - MaxStatementLen, ageChunk, 3*ageChunk + 5} {
		upd := make([]byte, n)
		stmt := v.statement(t)
		stmt.UpdateHash = [32]byte{}
		stmt.Origin = string(bytes.Repeat([]byte{'o'}, MaxOriginLen))
		stmt.JobID = string(bytes.Repeat([]byte{'j'}, MaxJobIDLen))
		stmt.NodeID = string(bytes.Repeat([]byte{'n'}, MaxNodeIDLen))
		sealed, err := Seal(stmt, upd, priv, []age.Recipient{aid.Recipient()})
		if err != nil {
			t.Fatal(err)
		}
		lim := Limits{MaxUpdateBytes: n, MaxHeaderBytes: 200}
		if max := lim.MaxSealedSize(); int64(len(sealed)) > max {
			t.Fatalf("n=%d: sealed %d bytes > bound %d", n, len(sealed), max)
		}
		keys := NodeKeys{stmt.NodeID: priv.Public().(ed25519.PublicKey)}
		if _, err := Open(sealed, []age.Identity{aid}, keys, lim); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
	}
}

func TestNodeKeysUnknown(t *testing.T) {
	t.Parallel()
	_, err := NodeKeys{}.NodePublicKey("x")
	if !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("err = %v", err)
	}
}

// revokedKeys is a NodeKeyLookup whose failure is not ErrUnknownNode.
type revokedKeys struct{}

var errRevoked = errors.New("node revoked")

func (revokedKeys) NodePublicKey(string) (ed25519.PublicKey, error) { return nil, errRevoked }

func TestOpenPassesLookupErrors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	_, err := Open(mustHex(t, v.SealedHex), []age.Identity{v.ageIdentity(t)}, revokedKeys{}, Limits{})
	if !errors.Is(err, errRevoked) || errors.Is(err, ErrUnknownNode) {
		t.Fatalf("err = %v, want the lookup's error", err)
	}
}

// TestOpenRejectsForgeryBeforeAllocating checks that a large envelope with
// a bad signature is rejected after the first chunk, without allocating a
// buffer for its update.
func TestOpenRejectsForgeryBeforeAllocating(t *testing.T) {
	v := loadVectors(t)
	aid := v.ageIdentity(t)
	upd := EncodeUpdate(make([]float64, 1<<20), Float32) // 4 MiB
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	forged, err := Seal(v.statement(t).withUpdateHash(upd), upd, otherKey, []age.Recipient{aid.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = Open(forged, []age.Identity{aid}, v.nodeKeys(t), Limits{})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("err = %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("rejecting a forged 4 MiB envelope allocated %d bytes", got)
	}
}

func (s *Statement) withUpdateHash(update []byte) *Statement {
	s.UpdateHash = sha256.Sum256(update)
	return s
}
