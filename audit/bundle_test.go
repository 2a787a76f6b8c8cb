package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestBundleJSONRoundTrip(t *testing.T) {
	t.Parallel()
	l := sampleLog(t, 9, 0)
	b, err := l.Bundle(4)
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"version": 1`, `"leaf": "`, `"leaf_index": 4`, `"inclusion": [`, `"checkpoint": "` + testOrigin + `\n9\n`} {
		if !bytes.Contains(data, []byte(key)) {
			t.Fatalf("bundle JSON lacks %s:\n%s", key, data)
		}
	}
	got, err := ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.Marshal()
	if !bytes.Equal(again, data) {
		t.Fatalf("round trip differs:\n%s\n%s", data, again)
	}
}

func TestParseBundleStrict(t *testing.T) {
	t.Parallel()
	l := sampleLog(t, 3, 0)
	b, _ := l.Bundle(1)
	good, _ := b.Marshal()
	var m map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(map[string]any)) []byte {
		c := make(map[string]any, len(m))
		for k, v := range m {
			c[k] = v
		}
		f(c)
		out, _ := json.Marshal(c)
		return out
	}
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"trailing data", append(bytes.Clone(good), []byte("{}")...), ErrMalformed},
		{"not JSON", []byte("leaf"), ErrMalformed},
		{"unknown field", edit(func(c map[string]any) { c["extra"] = 1 }), ErrMalformed},
		{"missing leaf", edit(func(c map[string]any) { delete(c, "leaf") }), ErrMalformed},
		{"missing index", edit(func(c map[string]any) { delete(c, "leaf_index") }), ErrMalformed},
		{"version 2", edit(func(c map[string]any) { c["version"] = 2 }), ErrVersion},
		{"bad base64", edit(func(c map[string]any) { c["leaf"] = "***" }), ErrMalformed},
		{"negative index", edit(func(c map[string]any) { c["leaf_index"] = -1 }), ErrMalformed},
		{"short hash", edit(func(c map[string]any) { c["inclusion"] = []string{"AAAA"} }), ErrMalformed},
		{"long proof", edit(func(c map[string]any) {
			c["inclusion"] = strings.Split(strings.Repeat(strings.Repeat("A", 43)+"=,", 65), ",")[:65]
		}), ErrTooLarge},
		{"oversize", make([]byte, MaxBundleLen+1), ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseBundle(c.data); !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}

// TestVerifyBundleTampering: every way of altering a bundle is caught with
// the right error.
func TestVerifyBundleTampering(t *testing.T) {
	t.Parallel()
	s, v := testLogKey(t)
	l := sampleLog(t, 20, 0)
	base, err := l.Bundle(13)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBundle(base, v, nil); err != nil {
		t.Fatal(err)
	}
	clone := func() *Bundle {
		c := *base
		c.Leaf = bytes.Clone(base.Leaf)
		c.Inclusion = make([][]byte, len(base.Inclusion))
		for i, h := range base.Inclusion {
			c.Inclusion[i] = bytes.Clone(h)
		}
		return &c
	}
	_, otherV := logKeyFromSeed(t, testOrigin, 5)
	otherS, _ := logKeyFromSeed(t, testOrigin, 5)
	root := l.Root()
	foreignCP, _ := SignCheckpoint(otherS, testOrigin, 20, root[:])
	wrongRoot := root
	wrongRoot[3] ^= 1
	forkCP, _ := SignCheckpoint(s, testOrigin, 20, wrongRoot[:])
	leaf13, _ := ParseLeaf(base.Leaf)
	known := SampleNodeKeys(4)
	impostor := SampleNodeKeys(4)
	impostor[leaf13.NodeID] = SampleNodeKey(50).Public().(ed25519.PublicKey)

	cases := []struct {
		name     string
		modify   func(b *Bundle)
		keys     NodeKeys
		otherKey bool // verify with another log key
		want     error
	}{
		{"leaf index", func(b *Bundle) { b.LeafIndex = 12 }, nil, false, ErrInclusion},
		{"index beyond", func(b *Bundle) { b.LeafIndex = 20 }, nil, false, ErrRange},
		{"proof hash", func(b *Bundle) { b.Inclusion[1][5] ^= 1 }, nil, false, ErrInclusion},
		{"proof dropped", func(b *Bundle) { b.Inclusion = b.Inclusion[1:] }, nil, false, ErrInclusion},
		{"other leaf", func(b *Bundle) { o, _ := l.Leaf(12); b.Leaf = o }, nil, false, ErrInclusion},
		{"leaf accept time", func(b *Bundle) { b.Leaf[len(b.Leaf)-1] ^= 1 }, nil, false, ErrInclusion},
		{"leaf signature", func(b *Bundle) { b.Leaf[len(b.Leaf)-20] ^= 1 }, nil, false, ErrBadNodeSignature},
		{"leaf truncated", func(b *Bundle) { b.Leaf = b.Leaf[:100] }, nil, false, ErrMalformed},
		{"checkpoint by other key", func(b *Bundle) { b.Checkpoint = string(foreignCP) }, nil, false, ErrBadCheckpointSignature},
		{"checkpoint text", func(b *Bundle) { b.Checkpoint = strings.Replace(b.Checkpoint, "\n20\n", "\n21\n", 1) }, nil, false, ErrBadCheckpointSignature},
		{"forked checkpoint", func(b *Bundle) { b.Checkpoint = string(forkCP) }, nil, false, ErrInclusion},
		{"unknown node", func(b *Bundle) {}, NodeKeys{"node-99": known["node-00"]}, false, ErrUnknownNode},
		{"impostor key", func(b *Bundle) {}, impostor, false, ErrUnknownNode},
		{"version", func(b *Bundle) { b.Version = 0 }, nil, false, ErrVersion},
		{"other log key", func(b *Bundle) {}, nil, true, ErrBadCheckpointSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := clone()
			c.modify(b)
			ver := v
			if c.otherKey {
				ver = otherV
			}
			_, err := VerifyBundle(b, ver, c.keys)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
	if _, err := VerifyBundle(clone(), v, known); err != nil {
		t.Fatalf("enrolled keys: %v", err)
	}
}
