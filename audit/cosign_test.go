package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testMember returns member i's deterministic cosigning key.
func testMember(i int) (string, ed25519.PrivateKey) {
	seed := sha256.Sum256(fmt.Appendf(nil, "mfn test member %d", i))
	return fmt.Sprintf("coord-%d", i), ed25519.NewKeyFromSeed(seed[:])
}

// testMembers returns the public keys of members 0..n-1.
func testMembers(n int) MemberKeys {
	m := MemberKeys{}
	for i := range n {
		name, k := testMember(i)
		m[name] = k.Public().(ed25519.PublicKey)
	}
	return m
}

var cosignTime = time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)

// cosignBy returns signed with cosignatures of the given members added.
func cosignBy(t testing.TB, signed []byte, members ...int) []byte {
	t.Helper()
	_, v := testLogKey(t)
	var lines [][]byte
	for _, i := range members {
		name, k := testMember(i)
		line, err := CosignCheckpoint(signed, v, name, k, cosignTime)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	out, err := AddCosignatures(signed, lines...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCosignatureFormat(t *testing.T) {
	t.Parallel()
	l := sampleLog(t, 4, 0)
	signed, _, _ := l.LatestCheckpoint()
	_, v := testLogKey(t)
	name, k := testMember(0)
	line, err := CosignCheckpoint(signed, v, name, k, cosignTime)
	if err != nil {
		t.Fatal(err)
	}
	s := string(line)
	prefix := "— " + name + " "
	if !strings.HasPrefix(s, prefix) || !strings.HasSuffix(s, "\n") {
		t.Fatalf("line %q", s)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(s[len(prefix):], "\n"))
	if err != nil || len(raw) != 76 {
		t.Fatalf("payload %d bytes, %v", len(raw), err)
	}
	// Key ID per the spec, computed here by hand.
	pub := k.Public().(ed25519.PublicKey)
	id := sha256.Sum256(append(append([]byte(name+"\n"), 0x04), pub...))
	if !bytes.Equal(raw[:4], id[:4]) {
		t.Errorf("key ID %x, want %x", raw[:4], id[:4])
	}
	ts := uint64(cosignTime.Unix())
	for i := range 8 {
		if raw[4+i] != byte(ts>>(56-8*i)) {
			t.Fatalf("timestamp bytes %x, want %d big-endian", raw[4:12], ts)
		}
	}
	body := signed[:bytes.Index(signed, []byte("\n\n"))+1]
	msg := fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", ts, body)
	if !ed25519.Verify(pub, msg, raw[12:]) {
		t.Error("signature is not over the cosignature/v1 message")
	}
	// The cosigned note still opens under the log key.
	cos, err := AddCosignatures(signed, line)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCheckpoint(cos, v); err != nil {
		t.Fatalf("cosigned note no longer a checkpoint: %v", err)
	}
	// Adding the same line again changes nothing.
	if again, _ := AddCosignatures(cos, line); !bytes.Equal(again, cos) {
		t.Error("duplicate line added")
	}
}

func TestVerifyQuorum(t *testing.T) {
	t.Parallel()
	l := sampleLog(t, 4, 0)
	signed, _, _ := l.LatestCheckpoint()
	members := testMembers(3)
	for _, c := range []struct {
		by   []int
		want error
		n    int
	}{
		{[]int{0, 1, 2}, nil, 3},
		{[]int{0, 2}, nil, 2},
		{[]int{1}, ErrQuorum, 1},
		{nil, ErrQuorum, 0},
		{[]int{1, 3, 4}, ErrQuorum, 1}, // 3 and 4 are not members
	} {
		t.Run(fmt.Sprint(c.by), func(t *testing.T) {
			cs, err := VerifyQuorum(cosignBy(t, signed, c.by...), members)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("VerifyQuorum = %v, want %v", err, c.want)
			}
			if len(cs) != c.n {
				t.Fatalf("%d cosigners, want %d", len(cs), c.n)
			}
			for _, co := range cs {
				if !co.Time.Equal(cosignTime) {
					t.Errorf("%s time %v", co.Member, co.Time)
				}
			}
		})
	}
	if _, err := VerifyQuorum(signed, nil); !errors.Is(err, ErrQuorum) {
		t.Errorf("no members: %v", err)
	}
}

func TestCosignatureTamper(t *testing.T) {
	t.Parallel()
	l := sampleLog(t, 4, 0)
	signed, cp, _ := l.LatestCheckpoint()
	members := testMembers(3)
	cos := cosignBy(t, signed, 0, 1)

	// A flipped signature bit.
	bad := bytes.Clone(cos)
	i := bytes.LastIndex(bad, []byte("\n— coord-1 ")) + len("\n— coord-1 ") + 30
	bad[i] ^= 0x01
	if _, err := VerifyCosignatures(bad, members); !errors.Is(err, ErrBadCosignature) {
		t.Errorf("flipped bit: %v, want ErrBadCosignature", err)
	}
	// The member lines moved onto another checkpoint the log key signed.
	s, v := testLogKey(t)
	other := *cp
	other.Root[0] ^= 1
	forged, err := other.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	lines := cos[bytes.Index(cos, []byte("\n— coord-"))+1:]
	forged = append(forged, lines...)
	if _, err := ParseCheckpoint(forged, v); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyCosignatures(forged, members); !errors.Is(err, ErrBadCosignature) {
		t.Errorf("moved cosignatures: %v, want ErrBadCosignature", err)
	}
	// Cosigning refuses a note the log key did not sign.
	_, v2 := logKeyFromSeed(t, testOrigin, 9)
	name, k := testMember(0)
	if _, err := CosignCheckpoint(signed, v2, name, k, cosignTime); !errors.Is(err, ErrBadCheckpointSignature) {
		t.Errorf("cosign unsigned: %v", err)
	}
	if _, err := CosignCheckpoint(signed, v, "bad name", k, cosignTime); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad name: %v", err)
	}
	// Too many signature lines.
	many := bytes.Clone(signed)
	for range maxCosignatureLines {
		many = append(many, "— x AAAA\n"...)
	}
	if _, err := VerifyCosignatures(many, members); !errors.Is(err, ErrTooLarge) {
		t.Errorf("many lines: %v, want ErrTooLarge", err)
	}
}

// FuzzCosignedNote: verifying cosignatures of arbitrary bytes never
// panics, and anything accepted names only members.
func FuzzCosignedNote(f *testing.F) {
	s, v := testLogKey(f)
	l, members, err := BuildSampleRoundsLog(SampleRoundsConfig{Origin: testOrigin, Rounds: 1, Seed: 1}, s, v)
	if err != nil {
		f.Fatal(err)
	}
	msg, _, _ := l.LatestCheckpoint()
	f.Add(msg)
	f.Add([]byte("a\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := VerifyCosignatures(data, members)
		if err != nil {
			return
		}
		for _, c := range cs {
			if _, ok := members[c.Member]; !ok {
				t.Fatalf("accepted cosignature by non-member %q", c.Member)
			}
		}
		_, _ = AddCosignatures(data, []byte("— x AAAA"))
	})
}
