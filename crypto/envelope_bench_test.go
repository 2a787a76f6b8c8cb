package crypto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// benchSizes are the update dimensions of issue 3's speed section.
var benchSizes = []int{10_000, 1_000_000}

type benchEnv struct {
	priv   ed25519.PrivateKey
	keys   NodeKeys
	aid    *age.X25519Identity
	stmt   *Statement
	update []byte
	sealed []byte
}

func newBenchEnv(b *testing.B, d int) *benchEnv {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, uint64(d)))
	vals := make([]float64, d)
	for i := range vals {
		vals[i] = rng.NormFloat64() * 1e-2
	}
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	aid, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{priv: priv, aid: aid, update: EncodeUpdate(vals, Float32)}
	e.stmt = &Statement{Origin: "mfn.example/cluster-1", JobID: "job-0001", Round: 3, NodeID: NodeID(priv.Public().(ed25519.PublicKey)), SampleCount: 512, Time: time.Unix(1748779200, 0)}
	e.keys = NodeKeys{e.stmt.NodeID: priv.Public().(ed25519.PublicKey)}
	if e.sealed, err = Seal(e.stmt, e.update, priv, []age.Recipient{aid.Recipient()}); err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkSeal measures sign-then-encrypt of one float32 update of d
// values to one coordinator (hash, Ed25519 signature, X25519 wrap,
// ChaCha20-Poly1305 STREAM).
func BenchmarkSeal(b *testing.B) {
	for _, d := range benchSizes {
		b.Run(fmt.Sprintf("d=%d", d), func(b *testing.B) {
			e := newBenchEnv(b, d)
			rcpts := []age.Recipient{e.aid.Recipient()}
			b.SetBytes(int64(len(e.update)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Seal(e.stmt, e.update, e.priv, rcpts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen measures decrypt-and-verify of one sealed float32 update of
// d values: X25519 unwrap, ChaCha20-Poly1305 STREAM, Ed25519 verification,
// SHA-256 of the update.
func BenchmarkOpen(b *testing.B) {
	for _, d := range benchSizes {
		b.Run(fmt.Sprintf("d=%d", d), func(b *testing.B) {
			e := newBenchEnv(b, d)
			ids := []age.Identity{e.aid}
			b.SetBytes(int64(len(e.update)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Open(e.sealed, ids, e.keys, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// primitives runs, once each, the primitive operations Open cannot avoid
// for an envelope whose plaintext is plainLen bytes.
type primitives struct {
	pub      ed25519.PublicKey
	msg, sig []byte
	aid      *age.X25519Identity
	stanzas  []*age.Stanza
	aead     chacha20poly1305AEAD
	ct       [][]byte // plaintext-sized STREAM chunks, sealed
	out      []byte
	update   []byte
}

type chacha20poly1305AEAD interface {
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}

func newPrimitives(b *testing.B, e *benchEnv) *primitives {
	sb, err := e.stmt.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	p := &primitives{
		pub: e.priv.Public().(ed25519.PublicKey),
		msg: signedMessage(sb), sig: SignStatement(e.priv, sb),
		aid: e.aid, update: e.update,
	}
	fileKey := make([]byte, 16)
	if p.stanzas, err = e.aid.Recipient().Wrap(fileKey); err != nil {
		b.Fatal(err)
	}
	key := make([]byte, chacha20poly1305.KeySize)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		b.Fatal(err)
	}
	p.aead = aead
	plainLen := containerFixedLen + len(sb) + len(e.update)
	nonce := make([]byte, chacha20poly1305.NonceSize)
	for off := 0; off < plainLen; off += ageChunk {
		n := min(ageChunk, plainLen-off)
		p.ct = append(p.ct, aead.Seal(nil, nonce, make([]byte, n), nil))
	}
	p.out = make([]byte, 0, ageChunk)
	return p
}

func (p *primitives) verify(b *testing.B) {
	if !ed25519.Verify(p.pub, p.msg, p.sig) {
		b.Fatal("verify")
	}
}

func (p *primitives) unwrap(b *testing.B) {
	if _, err := p.aid.Unwrap(p.stanzas); err != nil {
		b.Fatal(err)
	}
}

func (p *primitives) chacha(b *testing.B) {
	nonce := make([]byte, chacha20poly1305.NonceSize)
	for _, c := range p.ct {
		if _, err := p.aead.Open(p.out[:0], nonce, c, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func (p *primitives) sha(*testing.B) { sha256.Sum256(p.update) }

// BenchmarkPrimitives measures each primitive of Open on its own: one
// Ed25519 verification of a statement, one age X25519 unwrap (X25519,
// HKDF-SHA-256, ChaCha20-Poly1305 of the file key), ChaCha20-Poly1305 over
// the envelope's plaintext in 64 KiB chunks, and SHA-256 of the update.
func BenchmarkPrimitives(b *testing.B) {
	for _, d := range benchSizes {
		e := newBenchEnv(b, d)
		p := newPrimitives(b, e)
		if d == benchSizes[0] {
			b.Run("ed25519-verify", func(b *testing.B) {
				for b.Loop() {
					p.verify(b)
				}
			})
			b.Run("x25519-unwrap", func(b *testing.B) {
				for b.Loop() {
					p.unwrap(b)
				}
			})
		}
		b.Run(fmt.Sprintf("chacha20poly1305/d=%d", d), func(b *testing.B) {
			b.SetBytes(int64(len(e.update)))
			for b.Loop() {
				p.chacha(b)
			}
		})
		b.Run(fmt.Sprintf("sha256/d=%d", d), func(b *testing.B) {
			b.SetBytes(int64(len(e.update)))
			for b.Loop() {
				p.sha(b)
			}
		})
	}
}

// BenchmarkOpenVsPrimitives interleaves, in every iteration, one Open with
// one run of each primitive, so that both see the same machine load, and
// reports the ratios: ratio-3 = Open / (verify + unwrap + ChaCha20-Poly1305),
// ratio-4 = Open / (the same + SHA-256 of the update).
func BenchmarkOpenVsPrimitives(b *testing.B) {
	for _, d := range benchSizes {
		b.Run(fmt.Sprintf("d=%d", d), func(b *testing.B) {
			e := newBenchEnv(b, d)
			p := newPrimitives(b, e)
			ids := []age.Identity{e.aid}
			var open, prim3, sha time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := Open(e.sealed, ids, e.keys, Limits{}); err != nil {
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
			b.ReportMetric(float64(prim3.Nanoseconds())/n, "prim3-ns")
			b.ReportMetric(float64(sha.Nanoseconds())/n, "sha-ns")
			b.ReportMetric(float64(open)/float64(prim3), "ratio-3")
			b.ReportMetric(float64(open)/float64(prim3+sha), "ratio-4")
		})
	}
}
