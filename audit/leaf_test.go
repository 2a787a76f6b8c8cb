package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mfn/mfn/crypto"
)

func sampleLeaf(t testing.TB, i int) *Leaf {
	t.Helper()
	l, err := SampleLeaf(testOrigin, i, 4, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLeafRoundTrip(t *testing.T) {
	t.Parallel()
	l := sampleLeaf(t, 5)
	enc, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseLeaf(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Origin != l.Origin || got.JobID != l.JobID || got.Round != l.Round || got.NodeID != l.NodeID ||
		!got.NodeKey.Equal(l.NodeKey) || got.UpdateHash != l.UpdateHash || !bytes.Equal(got.Statement, l.Statement) ||
		!bytes.Equal(got.Signature, l.Signature) || !got.AcceptTime.Equal(l.AcceptTime) {
		t.Fatalf("round trip changed the leaf:\n got %+v\nwant %+v", got, l)
	}
	again, _ := got.MarshalBinary()
	if !bytes.Equal(again, enc) {
		t.Fatal("re-encoding differs")
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("decoded leaf does not verify: %v", err)
	}
}

// TestLeafKnownAnswer pins the version-1 encoding: sample leaf 0's size and
// RFC 6962 leaf hash. A change here breaks every existing audit log.
func TestLeafKnownAnswer(t *testing.T) {
	t.Parallel()
	enc, err := sampleLeaf(t, 0).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	h := LeafHash(enc)
	const wantLen = 314 // 153 fixed + 16 origin + 10 job + 7 node id + 128 statement
	const wantHash = "38480cdcdd6ef11dae0bc7dee745764758e57a32d0dfeb0b731cb3c201089923"
	if len(enc) != wantLen || hex.EncodeToString(h[:]) != wantHash {
		t.Fatalf("sample leaf 0: %d bytes, hash %x; want %d bytes, hash %s", len(enc), h, wantLen, wantHash)
	}
	if enc[0] != LeafVersion {
		t.Fatalf("first byte %d, want version %d", enc[0], LeafVersion)
	}
}

func TestLeafDecodeStrict(t *testing.T) {
	t.Parallel()
	enc, err := sampleLeaf(t, 1).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(enc) {
		if _, err := ParseLeaf(enc[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d bytes: err %v, want ErrMalformed", n, err)
		}
	}
	if _, err := ParseLeaf(append(bytes.Clone(enc), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: err %v, want ErrMalformed", err)
	}
	bad := bytes.Clone(enc)
	bad[0] = 2
	if _, err := ParseLeaf(bad); !errors.Is(err, ErrVersion) {
		t.Fatalf("version 2: err %v, want ErrVersion", err)
	}
	if _, err := ParseLeaf(make([]byte, MaxLeafLen+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize: err %v, want ErrTooLarge", err)
	}
	// Origin length 0 and invalid UTF-8 in the origin.
	bad = bytes.Clone(enc)
	bad[1], bad[2] = 0, 0
	if _, err := ParseLeaf(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty origin: err %v, want ErrMalformed", err)
	}
	bad = bytes.Clone(enc)
	bad[3] = 0xff
	if _, err := ParseLeaf(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid UTF-8: err %v, want ErrMalformed", err)
	}
}

func TestLeafMarshalRejects(t *testing.T) {
	t.Parallel()
	base := sampleLeaf(t, 2)
	cases := []struct {
		name   string
		modify func(l *Leaf)
		want   error
	}{
		{"empty origin", func(l *Leaf) { l.Origin = "" }, ErrMalformed},
		{"long job", func(l *Leaf) { l.JobID = string(make([]byte, crypto.MaxJobIDLen+1)) }, ErrTooLarge},
		{"bad utf8 node", func(l *Leaf) { l.NodeID = "\xff" }, ErrMalformed},
		{"short key", func(l *Leaf) { l.NodeKey = l.NodeKey[:31] }, ErrMalformed},
		{"short signature", func(l *Leaf) { l.Signature = l.Signature[:63] }, ErrMalformed},
		{"empty statement", func(l *Leaf) { l.Statement = nil }, ErrMalformed},
		{"long statement", func(l *Leaf) { l.Statement = make([]byte, crypto.MaxStatementLen+1) }, ErrTooLarge},
		{"time out of range", func(l *Leaf) { l.AcceptTime = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := *base
			c.modify(&l)
			if _, err := l.MarshalBinary(); !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}

func TestLeafVerify(t *testing.T) {
	t.Parallel()
	base := sampleLeaf(t, 3)
	if err := base.Verify(); err != nil {
		t.Fatalf("sample leaf: %v", err)
	}
	other := SampleNodeKey(99).Public().(ed25519.PublicKey)
	cases := []struct {
		name   string
		modify func(l *Leaf)
		want   error
	}{
		{"origin", func(l *Leaf) { l.Origin = "elsewhere" }, ErrStatementMismatch},
		{"job", func(l *Leaf) { l.JobID = "other-job" }, ErrStatementMismatch},
		{"round", func(l *Leaf) { l.Round++ }, ErrStatementMismatch},
		{"node id", func(l *Leaf) { l.NodeID = "node-77" }, ErrStatementMismatch},
		{"update hash", func(l *Leaf) { l.UpdateHash[0] ^= 1 }, ErrStatementMismatch},
		{"node key", func(l *Leaf) { l.NodeKey = other }, ErrBadNodeSignature},
		{"signature", func(l *Leaf) { l.Signature = bytes.Clone(l.Signature); l.Signature[10] ^= 1 }, ErrBadNodeSignature},
		{"statement byte", func(l *Leaf) { l.Statement = bytes.Clone(l.Statement); l.Statement[len(l.Statement)-1] ^= 1 }, ErrBadNodeSignature},
		{"statement garbage", func(l *Leaf) { l.Statement = []byte{9, 9} }, ErrStatementMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := *base
			c.modify(&l)
			if err := l.Verify(); !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}

func TestNewLeaf(t *testing.T) {
	t.Parallel()
	base := sampleLeaf(t, 4)
	l, err := NewLeaf(base.Statement, base.Signature, base.NodeKey, base.AcceptTime)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := l.MarshalBinary()
	b, _ := base.MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Fatal("NewLeaf differs from the sample leaf")
	}
	if _, err := NewLeaf([]byte("junk"), base.Signature, base.NodeKey, base.AcceptTime); !errors.Is(err, ErrStatementMismatch) {
		t.Fatalf("junk statement: err %v", err)
	}
	if _, err := NewLeaf(base.Statement, base.Signature[:5], base.NodeKey, base.AcceptTime); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short signature: err %v", err)
	}
}
