package audit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/mfn/mfn/crypto"
)

func TestNodeKeysRoundTrip(t *testing.T) {
	t.Parallel()
	keys := SampleNodeKeys(5)
	got, err := ParseNodeKeys(bytes.NewReader(keys.Format()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("%d keys", len(got))
	}
	for id, k := range keys {
		if !got[id].Equal(k) {
			t.Fatalf("node %s: key differs", id)
		}
	}
	pub := SampleNodeKey(9).Public().(ed25519.PublicKey)
	text := "# enrolled\n\n" + crypto.FormatPublicKey(pub) + "\n"
	got, err = ParseNodeKeys(strings.NewReader(text))
	if err != nil || len(got) != 1 || got[crypto.NodeID(pub)] == nil {
		t.Fatalf("default id: %v %v", got, err)
	}
	for _, bad := range []string{
		"node-1 mfn-ed25519:AAAA\n",
		"node-1 x y\n",
		"node-1 " + crypto.FormatPublicKey(pub) + "\nnode-1 " + crypto.FormatPublicKey(pub) + "\n",
	} {
		if _, err := ParseNodeKeys(strings.NewReader(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

func TestLogVerifierKey(t *testing.T) {
	t.Parallel()
	// Many seeds, so that key data containing '+' is covered.
	var skey, vkey string
	for seed := range 64 {
		var err error
		skey, vkey, err = GenerateLogKey("mfn.example/c", bytes.NewReader(bytes.Repeat([]byte{byte(seed)}, 64)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := LogVerifierKey(skey + "\n")
		if err != nil || got != vkey {
			t.Fatalf("seed %d: derived %q (%v), want %q", seed, got, err, vkey)
		}
	}
	if _, err := LogVerifierKey(vkey); !errors.Is(err, ErrMalformed) {
		t.Fatalf("verifier key given: err %v", err)
	}
}
