package crypto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"
	"time"

	"filippo.io/age"
)

// streamSeal seals upd with a StreamSealer and checks Size.
func streamSeal(t testing.TB, stmt *Statement, upd []byte, v *vectors, rcpts []age.Recipient) []byte {
	t.Helper()
	stmt.UpdateHash = sha256.Sum256(upd)
	s, err := NewStreamSealer(stmt, int64(len(upd)), v.key(t), rcpts)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf, bytes.NewReader(upd))
	if err != nil {
		t.Fatal(err)
	}
	if n != s.Size() || int64(buf.Len()) != s.Size() {
		t.Fatalf("wrote %d (%d) bytes, Size says %d", n, buf.Len(), s.Size())
	}
	return buf.Bytes()
}

func TestStreamSealOpenAgreesWithSealOpen(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	coords := []*age.X25519Identity{newAgeIdentity(t), newAgeIdentity(t)}
	rcpts := []age.Recipient{coords[0].Recipient(), coords[1].Recipient()}
	for _, n := range []int{0, 1, 16200, 16383, 16384, 16385, 40000, 100000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			vals := make([]float64, n)
			for i := range vals {
				vals[i] = float64(i%89) - 44.25
			}
			upd := EncodeUpdate(vals, Float32)
			streamed := streamSeal(t, v.statement(t), upd, v, rcpts)
			// Open reads what the stream sealer wrote.
			op, err := Open(streamed, []age.Identity{coords[1]}, v.nodeKeys(t), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(op.Update, upd) {
				t.Fatal("Open of a streamed envelope: update differs")
			}
			// OpenStream reads what Seal wrote, and what the stream sealer wrote.
			stmt := v.statement(t)
			stmt.UpdateHash = [32]byte{}
			sealed, err := Seal(stmt, upd, v.key(t), rcpts)
			if err != nil {
				t.Fatal(err)
			}
			for _, env := range [][]byte{sealed, streamed} {
				var out bytes.Buffer
				check := &UpdateStreamCheck{Total: int64(len(upd))}
				sop, err := OpenStream(bytes.NewReader(env), int64(len(env)), []age.Identity{coords[0]}, v.nodeKeys(t), Limits{}, io.MultiWriter(&out, check))
				if err != nil {
					t.Fatal(err)
				}
				if err := check.Close(); err != nil {
					t.Fatal(err)
				}
				if check.Header.Len != uint64(n) || check.Header.DType != Float32 {
					t.Fatalf("header %+v", check.Header)
				}
				if !bytes.Equal(out.Bytes(), upd) || sop.UpdateLen != int64(len(upd)) {
					t.Fatal("OpenStream: update differs")
				}
				if !bytes.Equal(sop.StatementBytes, op.StatementBytes) {
					t.Fatal("OpenStream: statement differs")
				}
				if err := VerifyStatement(sop.PublicKey, sop.StatementBytes, sop.Signature); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestStreamSealerRefusesWrongUpdate(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	id := newAgeIdentity(t)
	upd := EncodeUpdate(make([]float64, 50000), Float32)
	other := bytes.Clone(upd)
	other[len(other)-1] ^= 1
	for name, tc := range map[string]struct {
		declared int64
		reader   []byte
	}{
		"hash mismatch": {int64(len(upd)), other},
		"short":         {int64(len(upd)), upd[:len(upd)-1]},
		"long":          {int64(len(upd)), append(bytes.Clone(upd), 0)},
	} {
		t.Run(name, func(t *testing.T) {
			stmt := v.statement(t)
			stmt.UpdateHash = sha256.Sum256(upd)
			s, err := NewStreamSealer(stmt, tc.declared, v.key(t), []age.Recipient{id.Recipient()})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := s.WriteTo(&buf, bytes.NewReader(tc.reader)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("WriteTo: %v, want ErrMalformed", err)
			}
			// What was written is not an envelope: the last chunk is missing.
			if _, err := Open(buf.Bytes(), []age.Identity{id}, v.nodeKeys(t), Limits{}); err == nil {
				t.Fatal("a failed stream seal left a valid envelope")
			}
		})
	}
	stmt := v.statement(t)
	stmt.UpdateHash = [32]byte{}
	if _, err := NewStreamSealer(stmt, 10, v.key(t), []age.Recipient{id.Recipient()}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("zero hash: %v", err)
	}
}

func TestOpenStreamRejects(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	id := newAgeIdentity(t)
	upd := EncodeUpdate(make([]float64, 40000), Float32)
	env := streamSeal(t, v.statement(t), upd, v, []age.Recipient{id.Recipient()})
	ids := []age.Identity{id}
	open := func(r io.Reader, size int64, lim Limits) error {
		_, err := OpenStream(r, size, ids, v.nodeKeys(t), lim, nil)
		return err
	}
	if err := open(bytes.NewReader(env[:len(env)-100]), int64(len(env)), Limits{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("reader ends early: %v", err)
	}
	if err := open(bytes.NewReader(env[:len(env)-100]), int64(len(env)-100), Limits{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated envelope: %v", err)
	}
	bad := bytes.Clone(env)
	bad[len(bad)-20] ^= 1
	if err := open(bytes.NewReader(bad), int64(len(bad)), Limits{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("damaged last chunk: %v", err)
	}
	if err := open(bytes.NewReader(env), int64(len(env)), Limits{MaxUpdateBytes: 1000}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	if err := open(bytes.NewReader(env), int64(len(env)), Limits{}); err != nil {
		t.Errorf("intact: %v", err)
	}
	if _, err := OpenStream(bytes.NewReader(env), int64(len(env)), []age.Identity{newAgeIdentity(t)}, v.nodeKeys(t), Limits{}, nil); !errors.Is(err, ErrNotRecipient) {
		t.Errorf("other identity: %v", err)
	}
	// A statement that signs another hash: the mismatch shows after the
	// last chunk, as ErrBadSignature.
	stmt := v.statement(t)
	stmt.UpdateHash = sha256.Sum256([]byte("other"))
	sealed := sealPlain(t, containerFor(t, v, stmt, upd), id.Recipient())
	if err := open(bytes.NewReader(sealed), int64(len(sealed)), Limits{}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("hash mismatch: %v", err)
	}
}

// containerFor builds a container signing stmt as given (no hash check).
func containerFor(t *testing.T, v *vectors, stmt *Statement, upd []byte) []byte {
	t.Helper()
	sb, err := stmt.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return containerBytes(sb, SignStatement(v.key(t), sb), upd)
}

func TestUpdateStreamCheck(t *testing.T) {
	t.Parallel()
	vals := []float64{1, -2, 3.5, 4}
	for _, dt := range []DType{Float32, Float64} {
		upd := EncodeUpdate(vals, dt)
		// Every split point, byte by byte included.
		for step := 1; step <= len(upd); step++ {
			c := &UpdateStreamCheck{Total: int64(len(upd))}
			for i := 0; i < len(upd); i += step {
				if _, err := c.Write(upd[i:min(i+step, len(upd))]); err != nil {
					t.Fatalf("%v step %d: %v", dt, step, err)
				}
			}
			if err := c.Close(); err != nil || c.Header.Len != 4 {
				t.Fatalf("%v step %d: %v %+v", dt, step, err, c.Header)
			}
		}
		bad := EncodeUpdate([]float64{1, math.Inf(1), 2}, dt)
		c := &UpdateStreamCheck{Total: int64(len(bad))}
		_, err := c.Write(bad)
		var nf *NonFiniteError
		if !errors.As(err, &nf) || nf.Index != 1 {
			t.Fatalf("%v: %v, want non-finite at 1", dt, err)
		}
		c = &UpdateStreamCheck{Total: int64(len(upd)) + int64(dt.Size())}
		if _, err := c.Write(upd); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v: total disagrees with count: %v", dt, err)
		}
		c = &UpdateStreamCheck{Total: int64(len(upd)), MaxLen: 3}
		if _, err := c.Write(upd); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%v: over MaxLen: %v", dt, err)
		}
		c = &UpdateStreamCheck{Total: int64(len(upd))}
		c.Write(upd[:len(upd)-1])
		if err := c.Close(); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v: short: %v", dt, err)
		}
	}
}

// FuzzOpenStream checks that OpenStream accepts exactly what Open accepts,
// with the same update, and never panics.
func FuzzOpenStream(f *testing.F) {
	v := loadVectors(f)
	ids := []age.Identity{v.ageIdentity(f)}
	keys := v.nodeKeys(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := Limits{MaxUpdateBytes: 1 << 20}
		op, err := Open(b, ids, keys, lim)
		var out bytes.Buffer
		sop, serr := OpenStream(bytes.NewReader(b), int64(len(b)), ids, keys, lim, &out)
		if (err == nil) != (serr == nil) {
			t.Fatalf("Open: %v, OpenStream: %v", err, serr)
		}
		if serr != nil {
			if sop != nil || !isSentinel(serr) {
				t.Fatalf("sop=%v err=%v", sop, serr)
			}
			return
		}
		if !bytes.Equal(out.Bytes(), op.Update) || !bytes.Equal(sop.StatementBytes, op.StatementBytes) {
			t.Fatal("OpenStream's content differs from Open's")
		}
	})
}

// BenchmarkOpenStreamVsPrimitives is BenchmarkOpenVsPrimitives for
// OpenStream of a 100 MB update (d = 25,000,000 float32) read from
// memory, with the update checked (UpdateStreamCheck) and discarded as it
// streams: ratio-4 = OpenStream / (Ed25519 verify + X25519 unwrap +
// ChaCha20-Poly1305 + SHA-256 over the same bytes).
func BenchmarkOpenStreamVsPrimitives(b *testing.B) {
	for _, d := range []int{1_000_000, 25_000_000} {
		b.Run(fmt.Sprintf("d=%d", d), func(b *testing.B) {
			e := newBenchEnv(b, d)
			p := newPrimitives(b, e)
			ids := []age.Identity{e.aid}
			var open, prim3, sha time.Duration
			b.SetBytes(int64(len(e.update)))
			for b.Loop() {
				t0 := time.Now()
				check := &UpdateStreamCheck{Total: int64(len(e.update)), MaxLen: 1 << 28}
				if _, err := OpenStream(bytes.NewReader(e.sealed), int64(len(e.sealed)), ids, e.keys, Limits{MaxUpdateBytes: 1 << 30}, check); err != nil {
					b.Fatal(err)
				}
				if err := check.Close(); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				p.verify(b)
				p.unwrap(b)
				p.chacha(b)
				t2 := time.Now()
				p.sha(b)
				t3 := time.Now()
				open += t1.Sub(t0)
				prim3 += t2.Sub(t1)
				sha += t3.Sub(t2)
			}
			n := float64(b.N)
			b.ReportMetric(float64(open.Nanoseconds())/n, "open-ns")
			b.ReportMetric(float64(prim3+sha)/n, "prim4-ns")
			b.ReportMetric(float64(open)/float64(prim3+sha), "ratio-4")
		})
	}
}
