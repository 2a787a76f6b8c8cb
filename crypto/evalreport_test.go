package crypto

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func testEvalReport() *EvalReport {
	r := &EvalReport{Origin: "mfn.example/cluster-1", JobID: "job-7", NodeID: "node-a", ModelVersion: 5,
		Accuracy: 0.875, Loss: 0.3125, Samples: 64, Time: time.Date(2026, 12, 6, 3, 0, 0, 1, time.UTC)}
	for i := range r.ModelHash {
		r.ModelHash[i] = byte(i)
	}
	return r
}

func TestEvalReportRoundTrip(t *testing.T) {
	t.Parallel()
	r := testEvalReport()
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != evalReportFixedLen+len(r.Origin)+len(r.JobID)+len(r.NodeID) || len(b) > MaxEvalReportLen {
		t.Fatalf("%d bytes", len(b))
	}
	got, err := ParseEvalReport(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *r {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, r)
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	pub := priv.Public().(ed25519.PublicKey)
	sig := SignEvalReport(priv, b)
	if err := VerifyEvalReport(pub, b, sig); err != nil {
		t.Fatal(err)
	}
	// Domain separation: neither signature verifies as the other kind.
	if VerifyStatement(pub, b, sig) == nil || VerifyEvalReport(pub, b, SignStatement(priv, b)) == nil {
		t.Fatal("report and statement signatures are interchangeable")
	}
	bad := bytes.Clone(b)
	bad[len(bad)-1] ^= 1
	if !errors.Is(VerifyEvalReport(pub, bad, sig), ErrBadSignature) || !errors.Is(VerifyEvalReport(pub, b, sig[:3]), ErrBadSignature) {
		t.Fatal("changed report or short signature verifies")
	}
}

func TestEvalReportStrict(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*EvalReport){
		"nan accuracy":  func(r *EvalReport) { r.Accuracy = math.NaN() },
		"accuracy 1.5":  func(r *EvalReport) { r.Accuracy = 1.5 },
		"inf loss":      func(r *EvalReport) { r.Loss = math.Inf(1) },
		"negative loss": func(r *EvalReport) { r.Loss = -1 },
		"no samples":    func(r *EvalReport) { r.Samples = 0 },
		"empty node":    func(r *EvalReport) { r.NodeID = "" },
		"zero time":     func(r *EvalReport) { r.Time = time.Time{} },
	} {
		r := testEvalReport()
		mutate(r)
		if _, err := r.MarshalBinary(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: marshal err = %v", name, err)
		}
	}
	good, _ := testEvalReport().MarshalBinary()
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"truncated": {good[:len(good)-1], ErrMalformed},
		"trailing":  {append(bytes.Clone(good), 0), ErrMalformed},
		"version":   {append([]byte{2}, good[1:]...), ErrVersion},
		"too long":  {make([]byte, MaxEvalReportLen+1), ErrTooLarge},
		"empty":     {nil, ErrMalformed},
	}
	nan := bytes.Clone(good)
	at := len(nan) - 32 // accuracy
	copy(nan[at:], []byte{0x7f, 0xf8, 0, 0, 0, 0, 0, 1})
	cases["nan accuracy"] = struct {
		in   []byte
		want error
	}{nan, ErrMalformed}
	for name, c := range cases {
		_, err := ParseEvalReport(c.in)
		var fe *FormatError
		if !errors.Is(err, c.want) || !errors.As(err, &fe) {
			t.Errorf("%s: err = %v, want %v in a *FormatError", name, err, c.want)
		}
	}
	// The fuzz seeds come from these reports.
	if *updateVectorsV2 {
		dir := filepath.Join("testdata", "fuzz", "FuzzParseEvalReport")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, b := range [][]byte{good, good[:len(good)-1], nan} {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func FuzzParseEvalReport(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseEvalReport(b)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		again, err := r.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("not canonical (%v):\n in %x\nout %x", err, b, again)
		}
	})
}
