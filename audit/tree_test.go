package audit

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/tlog"
)

// testLeafData is the i-th synthetic leaf payload for tree-only tests.
func testLeafData(i int) []byte { return fmt.Appendf(nil, "leaf %d", i) }

// buildTree returns a tree over n synthetic leaves, and the leaf hashes.
func buildTree(n int) (*tree, [][32]byte) {
	t := newTree()
	hashes := make([][32]byte, n)
	for i := range n {
		hashes[i] = LeafHash(testLeafData(i))
		t.append(hashes[i])
	}
	return t, hashes
}

// tlogRoot computes the root of the first n synthetic leaves with
// golang.org/x/mod/sumdb/tlog, an independent RFC 6962 implementation.
func tlogRoot(t *testing.T, n int) [32]byte {
	t.Helper()
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i := range n {
		hs, err := tlog.StoredHashes(int64(i), testLeafData(i), reader)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	h, err := tlog.TreeHash(int64(n), reader)
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(h)
}

func TestTreeRootMatchesTlog(t *testing.T) {
	t.Parallel()
	const n = 70
	tr, _ := buildTree(n)
	if got, want := newTree().root, [32]byte(sha256.Sum256(nil)); got != want {
		t.Fatalf("empty tree root %x, want SHA-256 of nothing %x", got, want)
	}
	for size := 0; size <= n; size++ {
		got, err := tr.rootAt(uint64(size))
		if err != nil {
			t.Fatal(err)
		}
		if want := tlogRoot(t, size); got != want {
			t.Fatalf("size %d: root %x, tlog says %x", size, got, want)
		}
	}
	if _, err := tr.rootAt(n + 1); !errors.Is(err, ErrRange) {
		t.Fatalf("root beyond size: err %v", err)
	}
}

// TestTreeProofsExhaustive checks every inclusion proof for every size up
// to n and every consistency proof between every pair of sizes against the
// verifier of transparency-dev/merkle/proof, and that a proof for one leaf
// does not verify for its neighbour.
func TestTreeProofsExhaustive(t *testing.T) {
	t.Parallel()
	n := 40
	if testing.Short() {
		n = 20
	}
	tr, hashes := buildTree(n)
	roots := make([][32]byte, n+1)
	for s := 0; s <= n; s++ {
		roots[s], _ = tr.rootAt(uint64(s))
	}
	for size := uint64(1); size <= uint64(n); size++ {
		for i := range size {
			p, err := tr.inclusionProof(i, size)
			if err != nil {
				t.Fatalf("inclusion %d/%d: %v", i, size, err)
			}
			if err := proof.VerifyInclusion(hasher, i, size, hashes[i][:], p, roots[size][:]); err != nil {
				t.Fatalf("inclusion %d/%d does not verify: %v", i, size, err)
			}
			if size > 1 {
				j := (i + 1) % size
				if proof.VerifyInclusion(hasher, j, size, hashes[i][:], p, roots[size][:]) == nil {
					t.Fatalf("inclusion proof of %d/%d verifies at index %d", i, size, j)
				}
			}
		}
		if _, err := tr.inclusionProof(size, size); !errors.Is(err, ErrRange) {
			t.Fatalf("index == size: err %v", err)
		}
	}
	for s1 := uint64(0); s1 <= uint64(n); s1++ {
		for s2 := s1; s2 <= uint64(n); s2++ {
			p, err := tr.consistencyProof(s1, s2)
			if err != nil {
				t.Fatalf("consistency %d→%d: %v", s1, s2, err)
			}
			if err := proof.VerifyConsistency(hasher, s1, s2, p, roots[s1][:], roots[s2][:]); err != nil {
				t.Fatalf("consistency %d→%d does not verify: %v", s1, s2, err)
			}
			if s1 > 0 && s1 < s2 {
				bad := roots[s1]
				bad[0] ^= 1
				if proof.VerifyConsistency(hasher, s1, s2, p, bad[:], roots[s2][:]) == nil {
					t.Fatalf("consistency %d→%d verifies with a wrong old root", s1, s2)
				}
			}
		}
	}
	if _, err := tr.consistencyProof(3, 2); !errors.Is(err, ErrRange) {
		t.Fatalf("size1 > size2: err %v", err)
	}
	if _, err := tr.consistencyProof(1, uint64(n)+1); !errors.Is(err, ErrRange) {
		t.Fatalf("size2 beyond tree: err %v", err)
	}
}
