package crypto

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

var updateVectorsV2 = flag.Bool("update-vectors-v2", false, "rewrite testdata/vectors-v2.json and its fuzz seeds")

const vectorsV2Path = "testdata/vectors-v2.json"

func testStatementV2() *Statement {
	s := testStatement()
	s.Version = StatementVersionMetrics
	s.TrainLoss = 0.4375
	s.HoldoutAccuracy = 0.8125
	s.HoldoutSamples = 64
	return s
}

func TestStatementV2RoundTrip(t *testing.T) {
	t.Parallel()
	s := testStatementV2()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := testStatement().MarshalBinary()
	if len(b) != len(v1)+statementMetricsLen || b[0] != StatementVersionMetrics {
		t.Fatalf("v2 encoding has %d bytes (v1 %d), version byte %d", len(b), len(v1), b[0])
	}
	// Everything but the version byte is the v1 encoding, then the metrics.
	if !bytes.Equal(b[1:len(v1)], v1[1:]) {
		t.Fatal("v2 prefix differs from the v1 encoding")
	}
	tail := b[len(v1):]
	if math.Float64frombits(binary.BigEndian.Uint64(tail)) != 0.4375 || math.Float64frombits(binary.BigEndian.Uint64(tail[8:])) != 0.8125 ||
		binary.BigEndian.Uint64(tail[16:]) != 64 {
		t.Fatalf("metrics tail %x", tail)
	}
	got, err := ParseStatement(b)
	if err != nil {
		t.Fatal(err)
	}
	got.Time = s.Time
	if *got != *s || !got.HasMetrics() {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	// Version 1 still parses, without metrics.
	old, err := ParseStatement(v1)
	if err != nil || old.HasMetrics() || old.TrainLoss != 0 {
		t.Fatalf("v1: %+v, %v", old, err)
	}
	if len(b) > MaxStatementLen {
		t.Fatalf("%d bytes over MaxStatementLen %d", len(b), MaxStatementLen)
	}
}

func TestStatementV2Ranges(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(*Statement)
	}{
		{"nan loss", func(s *Statement) { s.TrainLoss = math.NaN() }},
		{"inf loss", func(s *Statement) { s.TrainLoss = math.Inf(1) }},
		{"negative loss", func(s *Statement) { s.TrainLoss = -0.5 }},
		{"negative zero loss", func(s *Statement) { s.TrainLoss = math.Copysign(0, -1) }},
		{"nan accuracy", func(s *Statement) { s.HoldoutAccuracy = math.NaN() }},
		{"accuracy above 1", func(s *Statement) { s.HoldoutAccuracy = 1.0000001 }},
		{"negative accuracy", func(s *Statement) { s.HoldoutAccuracy = -0.1 }},
		{"inf accuracy", func(s *Statement) { s.HoldoutAccuracy = math.Inf(1) }},
		{"accuracy without samples", func(s *Statement) { s.HoldoutSamples = 0 }},
	}
	good, _ := testStatementV2().MarshalBinary()
	metricsAt := len(good) - statementMetricsLen
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testStatementV2()
			c.mutate(s)
			if _, err := s.MarshalBinary(); !errors.Is(err, ErrMalformed) {
				t.Fatalf("marshal err = %v, want ErrMalformed", err)
			}
			// The same values written by hand are refused by the parser.
			b := bytes.Clone(good)
			binary.BigEndian.PutUint64(b[metricsAt:], math.Float64bits(s.TrainLoss))
			binary.BigEndian.PutUint64(b[metricsAt+8:], math.Float64bits(s.HoldoutAccuracy))
			binary.BigEndian.PutUint64(b[metricsAt+16:], s.HoldoutSamples)
			_, err := ParseStatement(b)
			var fe *FormatError
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &fe) {
				t.Fatalf("parse err = %v, want a *FormatError wrapping ErrMalformed", err)
			}
		})
	}
	// Edge values are accepted.
	s := testStatementV2()
	s.TrainLoss, s.HoldoutAccuracy = 0, 1
	if _, err := s.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	s.HoldoutSamples, s.HoldoutAccuracy = 0, 0
	if _, err := s.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	// Metrics in a version 1 statement would go unsigned: refused.
	v1 := testStatement()
	v1.TrainLoss = 0.3
	if _, err := v1.MarshalBinary(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("v1 with metrics: err = %v", err)
	}
	// A v1 body relabelled as v2 is truncated; a v2 body relabelled as v1
	// has trailing bytes.
	v1b, _ := testStatement().MarshalBinary()
	v1b[0] = StatementVersionMetrics
	if _, err := ParseStatement(v1b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("v1 body as v2: %v", err)
	}
	v2b := bytes.Clone(good)
	v2b[0] = StatementVersion
	if _, err := ParseStatement(v2b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("v2 body as v1: %v", err)
	}
	v3 := bytes.Clone(good)
	v3[0] = 3
	if _, err := ParseStatement(v3); !errors.Is(err, ErrVersion) {
		t.Fatalf("version 3: %v", err)
	}
}

// vectorsV2 are the known-answer values of a version 2 statement, in
// testdata/vectors-v2.json: the same key and fields as vectors.json plus
// the metrics.
type vectorsV2 struct {
	Comment         string
	TrainLoss       float64
	HoldoutAccuracy float64
	HoldoutSamples  uint64
	StatementHex    string
	SignatureHex    string
}

func (w *vectorsV2) statement(t testing.TB, v *vectors) *Statement {
	s := v.statement(t)
	s.Version = StatementVersionMetrics
	s.TrainLoss, s.HoldoutAccuracy, s.HoldoutSamples = w.TrainLoss, w.HoldoutAccuracy, w.HoldoutSamples
	return s
}

func TestGenerateVectorsV2(t *testing.T) {
	if !*updateVectorsV2 {
		t.Skip("run with -update-vectors-v2 to regenerate testdata/vectors-v2.json")
	}
	v := loadVectors(t)
	w := &vectorsV2{
		Comment:   "Known-answer vectors of a version 2 (metrics) statement; key and other fields from vectors.json; regenerate with go test -run TestGenerateVectorsV2 -update-vectors-v2",
		TrainLoss: 0.693147180559945, HoldoutAccuracy: 0.875, HoldoutSamples: 128,
	}
	sb, err := w.statement(t, v).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	w.StatementHex = hex.EncodeToString(sb)
	w.SignatureHex = hex.EncodeToString(SignStatement(v.key(t), sb))
	data, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsV2Path, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(sb)
	binary.BigEndian.PutUint64(bad[len(bad)-24:], math.Float64bits(math.NaN()))
	dir := filepath.Join("testdata", "fuzz", "FuzzParseStatement")
	for i, b := range [][]byte{sb, sb[:len(sb)-1], bad} {
		file := filepath.Join(dir, fmt.Sprintf("vector-v2-%d", i))
		if err := os.WriteFile(file, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStatementV2Vector(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	data, err := os.ReadFile(vectorsV2Path)
	if err != nil {
		t.Fatal(err)
	}
	var w vectorsV2
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatal(err)
	}
	priv := v.key(t)
	sb, err := w.statement(t, v).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sb); got != w.StatementHex {
		t.Fatalf("statement bytes\n got %s\nwant %s", got, w.StatementHex)
	}
	sig := SignStatement(priv, sb)
	if got := hex.EncodeToString(sig); got != w.SignatureHex {
		t.Fatalf("signature\n got %s\nwant %s", got, w.SignatureHex)
	}
	if err := VerifyStatement(priv.Public().(ed25519.PublicKey), sb, sig); err != nil {
		t.Fatal(err)
	}
	p, err := ParseStatement(sb)
	if err != nil {
		t.Fatal(err)
	}
	if p.TrainLoss != w.TrainLoss || p.HoldoutAccuracy != w.HoldoutAccuracy || p.HoldoutSamples != w.HoldoutSamples || p.Time.UnixNano() != v.TimeUnixNano {
		t.Fatalf("parsed %+v", p)
	}
	// The v1 signature does not verify the v2 bytes: the version and
	// metrics are signed.
	if err := VerifyStatement(priv.Public().(ed25519.PublicKey), sb, mustHex(t, v.SignatureHex)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("v1 signature over v2 bytes: %v", err)
	}
}
