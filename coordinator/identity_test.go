package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

func applyCmd(t *testing.T, f *fsm, index uint64, ct commandType, body any) *applyResult {
	t.Helper()
	e, err := encodeCommand(ct, body)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: e}).(*applyResult)
}

// A key speaks for one node: enrolling it under a second id, or bringing
// a revoked key back under a new id, is refused with a *KeyInUseError
// naming the holder, and changes nothing.
func TestEnrollKeyHeldElsewhere(t *testing.T) {
	b := standardLog(t) // n3 is revoked in it
	cases := []struct {
		name    string
		cmd     enrollNodeCmd
		holder  string
		revoked bool
	}{
		{"key of an enrolled node under a new id", enrollNodeCmd{ID: "n0dup", PublicKey: b.nodes[0].pub(), KeyUnique: true}, "n0", false},
		{"key of an enrolled node under another enrolled id", enrollNodeCmd{ID: "n1", PublicKey: b.nodes[0].pub(), KeyUnique: true}, "n0", false},
		{"revoked key under a new id", enrollNodeCmd{ID: "n3new", PublicKey: b.nodes[3].pub(), KeyUnique: true}, "n3", true},
		{"revoked key under its own id", enrollNodeCmd{ID: "n3", PublicKey: b.nodes[3].pub(), KeyUnique: true}, "n3", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := replay(t, b.keys, b.entries)
			before := snapshotBytes(t, f)
			res := applyCmd(t, f, uint64(len(b.entries)+1), cmdEnrollNode, &c.cmd)
			var kerr *KeyInUseError
			if !errors.As(res.err, &kerr) || !errors.Is(res.err, ErrExists) {
				t.Fatalf("got %v, want a *KeyInUseError wrapping ErrExists", res.err)
			}
			if kerr.Holder != c.holder || kerr.Revoked != c.revoked || kerr.Node != c.cmd.ID {
				t.Fatalf("error %+v, want holder %s revoked %v", kerr, c.holder, c.revoked)
			}
			f.applied = uint64(len(b.entries))
			if !bytes.Equal(before, snapshotBytes(t, f)) {
				t.Fatal("a refused enrolment changed the state")
			}
		})
	}
	t.Run("same id and key again is idempotent", func(t *testing.T) {
		f := replay(t, b.keys, b.entries)
		if res := applyCmd(t, f, 100, cmdEnrollNode, &enrollNodeCmd{ID: "n0", PublicKey: b.nodes[0].pub(), KeyUnique: true}); res.err != nil {
			t.Fatal(res.err)
		}
	})
	// Entries written before keys were unique (no key_unique) replay as
	// they applied: the duplicate is enrolled, the key's first holder
	// keeps it in the index.
	t.Run("legacy entry", func(t *testing.T) {
		f := replay(t, b.keys, b.entries)
		if res := applyCmd(t, f, 100, cmdEnrollNode, &enrollNodeCmd{ID: "n0dup", PublicKey: b.nodes[0].pub()}); res.err != nil {
			t.Fatal(res.err)
		}
		if id, ok := f.nodeByKey(b.nodes[0].pub()); !ok || id != "n0" {
			t.Fatalf("nodeByKey after a legacy duplicate: %q %v", id, ok)
		}
		snap := snapshotBytes(t, f)
		g, _ := newFSM(b.keys.origin, b.keys.verifier, nil)
		if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			t.Fatal(err)
		}
		if id, _ := g.nodeByKey(b.nodes[0].pub()); id != "n0" {
			t.Fatalf("after restore: %q", id)
		}
	})
}

// Looking a node up by key is one index lookup: the answer is the one
// holder whatever the map order, revoked keys give no node, and the index
// survives a snapshot (version 2) and is rebuilt from a version 1 one.
func TestNodeByKeyIndex(t *testing.T) {
	b := standardLog(t)
	f := replay(t, b.keys, b.entries)
	for i, n := range b.nodes {
		for range 20 { // map iteration order varies between calls; the index does not
			id, ok := f.nodeByKey(n.pub())
			want := i != 3 // n3 is revoked
			if ok != want || (ok && id != n.id) {
				t.Fatalf("nodeByKey(%s) = %q %v", n.id, id, ok)
			}
		}
	}
	snap := snapshotBytes(t, f)
	if snap[len(snapshotMagic)] != 2 {
		t.Fatalf("snapshot version %d, want 2", snap[len(snapshotMagic)])
	}

	// A version 1 snapshot (no node_keys) restores with the index rebuilt.
	var body map[string]json.RawMessage
	if err := json.Unmarshal(snap[len(snapshotMagic)+1:], &body); err != nil {
		t.Fatal(err)
	}
	if _, ok := body["node_keys"]; !ok {
		t.Fatal("snapshot has no node_keys")
	}
	delete(body, "node_keys")
	v1body, _ := json.Marshal(body)
	v1 := append([]byte(snapshotMagic+"\x01"), v1body...)
	g, _ := newFSM(b.keys.origin, b.keys.verifier, nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(v1))); err != nil {
		t.Fatal(err)
	}
	if id, ok := g.nodeByKey(b.nodes[2].pub()); !ok || id != "n2" {
		t.Fatalf("after a v1 restore: %q %v", id, ok)
	}
	if !bytes.Equal(snapshotBytes(t, g), snap) {
		t.Fatal("a v1 snapshot restored and snapshotted again differs from the v2 one")
	}
	if res := applyCmd(t, g, 1000, cmdEnrollNode, &enrollNodeCmd{ID: "x", PublicKey: b.nodes[3].pub(), KeyUnique: true}); !errors.Is(res.err, ErrExists) {
		t.Fatalf("revoked key after a v1 restore: %v", res.err)
	}

	// A version 2 snapshot whose index disagrees with the nodes is refused.
	var nk map[string]string
	if err := json.Unmarshal(body["nodes"], new([]Node)); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(mustField(t, snap, "node_keys"), &nk)
	for k := range nk {
		nk[k] = "n0" // every key now claims n0
	}
	body["node_keys"], _ = json.Marshal(nk)
	badBody, _ := json.Marshal(body)
	h, _ := newFSM(b.keys.origin, b.keys.verifier, nil)
	if err := h.Restore(io.NopCloser(bytes.NewReader(append([]byte(snapshotMagic+"\x02"), badBody...)))); err == nil {
		t.Fatal("restore accepted node_keys that name the wrong nodes")
	}
}

func mustField(t *testing.T, snap []byte, name string) json.RawMessage {
	t.Helper()
	var body map[string]json.RawMessage
	if err := json.Unmarshal(snap[len(snapshotMagic)+1:], &body); err != nil {
		t.Fatal(err)
	}
	return body[name]
}

// BenchmarkNodeByKey measures the QUIC handshake's key lookup through the
// index, and the map scan it replaced (for the before/after figure).
func BenchmarkNodeByKey(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		k := newTestKeys(b, 1, 1)
		f, _ := newFSM(k.origin, k.verifier, nil)
		var last []byte
		for i := range n {
			key := make([]byte, 32)
			key[0], key[1], key[2] = byte(i), byte(i>>8), byte(i>>16)
			id := fmt.Sprintf("n%d", i)
			f.nodes[id] = &Node{ID: id, PublicKey: key}
			f.nodeKeys[string(key)] = id
			last = key
		}
		b.Run(fmt.Sprintf("index/nodes=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, ok := f.nodeByKey(last); !ok {
					b.Fatal("not found")
				}
			}
		})
		b.Run(fmt.Sprintf("scan/nodes=%d", n), func(b *testing.B) {
			for b.Loop() {
				f.mu.RLock()
				found := false
				for _, nd := range f.nodes {
					if !nd.Revoked && bytes.Equal(nd.PublicKey, last) {
						found = true
						break
					}
				}
				f.mu.RUnlock()
				if !found {
					b.Fatal("not found")
				}
			}
		})
	}
}
