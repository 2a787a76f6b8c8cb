package crypto

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

func testStatement() *Statement {
	s := &Statement{
		Version:     StatementVersion,
		Origin:      "mfn.example/cluster-1",
		JobID:       "job-7",
		Round:       42,
		NodeID:      "node-a",
		SampleCount: 1234,
		Time:        time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC),
	}
	for i := range s.BaseModelHash {
		s.BaseModelHash[i] = byte(i)
		s.UpdateHash[i] = byte(255 - i)
	}
	return s
}

func TestStatementRoundTrip(t *testing.T) {
	t.Parallel()
	s := testStatement()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	wantLen := statementFixedLen + len(s.Origin) + len(s.JobID) + len(s.NodeID)
	if len(b) != wantLen {
		t.Fatalf("encoded length %d, want %d", len(b), wantLen)
	}
	got, err := ParseStatement(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(s.Time) || got.Time.Location() != time.UTC {
		t.Fatalf("time %v, want %v UTC", got.Time, s.Time)
	}
	got.Time = s.Time
	if *got != *s {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	b2, _ := got.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
}

func TestStatementMarshalErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(*Statement)
		want   error
	}{
		{"version", func(s *Statement) { s.Version = 3 }, ErrVersion},
		{"empty origin", func(s *Statement) { s.Origin = "" }, ErrMalformed},
		{"long origin", func(s *Statement) { s.Origin = strings.Repeat("o", MaxOriginLen+1) }, ErrTooLarge},
		{"long job", func(s *Statement) { s.JobID = strings.Repeat("j", MaxJobIDLen+1) }, ErrTooLarge},
		{"long node", func(s *Statement) { s.NodeID = strings.Repeat("n", MaxNodeIDLen+1) }, ErrTooLarge},
		{"bad utf8", func(s *Statement) { s.NodeID = "\xff" }, ErrMalformed},
		{"zero time", func(s *Statement) { s.Time = time.Time{} }, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testStatement()
			c.mutate(s)
			if _, err := s.MarshalBinary(); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestParseStatementStrict(t *testing.T) {
	t.Parallel()
	good, _ := testStatement().MarshalBinary()
	mod := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"trailing", append(bytes.Clone(good), 0), ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"version 0", mod(func(b []byte) []byte { b[0] = 0; return b }), ErrVersion},
		{"version 3", mod(func(b []byte) []byte { b[0] = 3; return b }), ErrVersion},
		{"origin too long", mod(func(b []byte) []byte { b[1], b[2] = 0x01, 0x01; return b }), ErrTooLarge},
		{"origin empty", mod(func(b []byte) []byte { b[1], b[2] = 0, 0; return b }), ErrMalformed},
		{"origin bad utf8", mod(func(b []byte) []byte { b[3] = 0xff; return b }), ErrMalformed},
		{"input too long", make([]byte, MaxStatementLen+1), ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseStatement(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("err %T is not *FormatError", err)
			}
		})
	}
}

func TestSignVerifyStatement(t *testing.T) {
	t.Parallel()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	b, _ := testStatement().MarshalBinary()
	sig := SignStatement(priv, b)
	pub := priv.Public().(ed25519.PublicKey)
	if err := VerifyStatement(pub, b, sig); err != nil {
		t.Fatal(err)
	}
	// Without the domain prefix the signature must not verify.
	if ed25519.Verify(pub, b, sig) {
		t.Fatal("signature verifies without the domain prefix")
	}
	bad := bytes.Clone(b)
	bad[len(bad)-1] ^= 1
	for name, err := range map[string]error{
		"other key":      VerifyStatement(other.Public().(ed25519.PublicKey), b, sig),
		"changed bytes":  VerifyStatement(pub, bad, sig),
		"short sig":      VerifyStatement(pub, b, sig[:10]),
		"short key":      VerifyStatement(pub[:5], b, sig),
		"other key sign": VerifyStatement(pub, b, SignStatement(other, b)),
	} {
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: err = %v, want ErrBadSignature", name, err)
		}
	}
}
