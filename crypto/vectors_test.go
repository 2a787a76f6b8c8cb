package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite testdata/vectors.json and the fuzz seed corpora")

const vectorsPath = "testdata/vectors.json"

// vectors are the known-answer values in testdata/vectors.json. Ed25519
// signing is deterministic, so the statement bytes and signature are exact;
// age sealing is randomised, so the sealed envelope is a stored sample that
// must open to the same statement, signature and update.
type vectors struct {
	Comment       string
	NodeSeed      string // hex, 32 bytes: ed25519.NewKeyFromSeed
	NodePublicKey string // FormatPublicKey
	NodeID        string
	Origin        string
	JobID         string
	Round         uint64
	BaseModelHash string // hex
	SampleCount   uint64
	TimeUnixNano  int64
	UpdateValues  []float64
	UpdateF32Hex  string // EncodeUpdate(UpdateValues, Float32)
	UpdateF64Hex  string // EncodeUpdate(UpdateValues, Float64)
	StatementHex  string // statement with UpdateHash = SHA-256(UpdateF32)
	SignatureHex  string
	AgeIdentity   string // AGE-SECRET-KEY-1…
	AgeRecipient  string
	SealedHex     string // Seal(statement, UpdateF32, node key, [AgeRecipient])
}

func loadVectors(t testing.TB) *vectors {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (v *vectors) key(t testing.TB) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(mustHex(t, v.NodeSeed))
}

func (v *vectors) ageIdentity(t testing.TB) *age.X25519Identity {
	id, err := age.ParseX25519Identity(v.AgeIdentity)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// statement rebuilds the vector statement from its fields.
func (v *vectors) statement(t testing.TB) *Statement {
	s := &Statement{
		Version:     StatementVersion,
		Origin:      v.Origin,
		JobID:       v.JobID,
		Round:       v.Round,
		NodeID:      v.NodeID,
		SampleCount: v.SampleCount,
		Time:        time.Unix(0, v.TimeUnixNano).UTC(),
	}
	copy(s.BaseModelHash[:], mustHex(t, v.BaseModelHash))
	s.UpdateHash = sha256.Sum256(EncodeUpdate(v.UpdateValues, Float32))
	return s
}

func (v *vectors) nodeKeys(t testing.TB) NodeKeys {
	return NodeKeys{v.NodeID: v.key(t).Public().(ed25519.PublicKey)}
}

// TestGenerateVectors rewrites the vectors and fuzz seeds when run with
// -update-vectors; otherwise it is skipped.
func TestGenerateVectors(t *testing.T) {
	if !*updateVectors {
		t.Skip("run with -update-vectors to regenerate testdata")
	}
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	baseHash := sha256.Sum256([]byte("mfn test base model v0"))
	v := &vectors{
		Comment:       "Known-answer vectors for github.com/mfn/mfn/crypto; regenerate with go test -run TestGenerateVectors -update-vectors",
		NodeSeed:      hex.EncodeToString(seed),
		NodePublicKey: FormatPublicKey(pub),
		NodeID:        NodeID(pub),
		Origin:        "mfn.example/cluster-1",
		JobID:         "job-0001",
		Round:         7,
		BaseModelHash: hex.EncodeToString(baseHash[:]),
		SampleCount:   512,
		TimeUnixNano:  time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC).UnixNano(),
		UpdateValues:  []float64{0, -0.5, 1.25, -3e-7, 65504, 1e-3, -2.75, 0.1},
	}
	upd := EncodeUpdate(v.UpdateValues, Float32)
	v.UpdateF32Hex = hex.EncodeToString(upd)
	v.UpdateF64Hex = hex.EncodeToString(EncodeUpdate(v.UpdateValues, Float64))
	stmt := v.statement(t)
	sb, err := stmt.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v.StatementHex = hex.EncodeToString(sb)
	v.SignatureHex = hex.EncodeToString(SignStatement(priv, sb))
	aid, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	v.AgeIdentity, v.AgeRecipient = aid.String(), aid.Recipient().String()
	sealed, err := Seal(stmt, upd, priv, []age.Recipient{aid.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	v.SealedHex = hex.EncodeToString(sealed)
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsPath, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}

	plain := containerBytes(sb, mustHex(t, v.SignatureHex), upd)
	seeds := map[string][][]byte{
		"FuzzParseStatement": {sb, sb[:len(sb)-1], append(bytes.Clone(sb), 0)},
		"FuzzDecodeUpdate":   {upd, mustHex(t, v.UpdateF64Hex), upd[:UpdateHeaderLen]},
		"FuzzOpen":           {sealed, sealed[:len(sealed)-1]},
		"FuzzOpenPlain":      {plain, plain[:len(plain)-1]},
	}
	for name, list := range seeds {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, b := range list {
			file := filepath.Join(dir, fmt.Sprintf("vector-%d", i))
			if err := os.WriteFile(file, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// containerBytes builds the envelope plaintext by hand, independently of
// Seal, so tests can also build malformed ones.
func containerBytes(stmt, sig, update []byte) []byte {
	b := []byte(EnvelopeMagic)
	b = append(b, EnvelopeVersion, byte(len(stmt)>>8), byte(len(stmt)))
	b = append(b, stmt...)
	b = append(b, sig...)
	n := uint64(len(update))
	for i := 7; i >= 0; i-- {
		b = append(b, byte(n>>(8*i)))
	}
	return append(b, update...)
}

func TestStatementVector(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	priv := v.key(t)
	pub := priv.Public().(ed25519.PublicKey)
	if got := FormatPublicKey(pub); got != v.NodePublicKey {
		t.Fatalf("public key %s, want %s", got, v.NodePublicKey)
	}
	if got := NodeID(pub); got != v.NodeID {
		t.Fatalf("node id %s, want %s", got, v.NodeID)
	}
	sb, err := v.statement(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sb); got != v.StatementHex {
		t.Fatalf("statement bytes\n got %s\nwant %s", got, v.StatementHex)
	}
	sig := SignStatement(priv, sb)
	if got := hex.EncodeToString(sig); got != v.SignatureHex {
		t.Fatalf("signature\n got %s\nwant %s", got, v.SignatureHex)
	}
	if err := VerifyStatement(pub, sb, sig); err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseStatement(sb)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.NodeID != v.NodeID || parsed.Round != v.Round || parsed.Time.UnixNano() != v.TimeUnixNano {
		t.Fatalf("parsed %+v", parsed)
	}
}

func TestUpdateVector(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	for _, c := range []struct {
		dtype DType
		hex   string
	}{{Float32, v.UpdateF32Hex}, {Float64, v.UpdateF64Hex}} {
		enc := EncodeUpdate(v.UpdateValues, c.dtype)
		if got := hex.EncodeToString(enc); got != c.hex {
			t.Fatalf("%v encoding\n got %s\nwant %s", c.dtype, got, c.hex)
		}
		dec, err := DecodeUpdate(mustHex(t, c.hex), 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range v.UpdateValues {
			want := x
			if c.dtype == Float32 {
				want = float64(float32(x))
			}
			if dec[i] != want {
				t.Fatalf("%v value %d = %v, want %v", c.dtype, i, dec[i], want)
			}
		}
	}
}

func TestEnvelopeVector(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	aid := v.ageIdentity(t)
	if aid.Recipient().String() != v.AgeRecipient {
		t.Fatal("age recipient does not match identity")
	}
	op, err := Open(mustHex(t, v.SealedHex), []age.Identity{aid}, v.nodeKeys(t), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(op.StatementBytes) != v.StatementHex {
		t.Fatalf("statement bytes %x", op.StatementBytes)
	}
	if hex.EncodeToString(op.Signature) != v.SignatureHex {
		t.Fatalf("signature %x", op.Signature)
	}
	if hex.EncodeToString(op.Update) != v.UpdateF32Hex {
		t.Fatalf("update %x", op.Update)
	}
	if !op.PublicKey.Equal(v.key(t).Public()) {
		t.Fatal("public key")
	}
	want := v.statement(t)
	if op.Statement.NodeID != want.NodeID || op.Statement.UpdateHash != want.UpdateHash || !op.Statement.Time.Equal(want.Time) {
		t.Fatalf("statement %+v, want %+v", op.Statement, want)
	}
}
