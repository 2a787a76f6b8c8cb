package audit

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// rangeFactory builds compact ranges with RFC 6962 interior hashing.
var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// tree is an append-only RFC 6962 Merkle tree over leaf hashes that keeps
// the hash of every perfect subtree: levels[h][i] is the root of the
// 2^h leaves [i·2^h, (i+1)·2^h). That is about 2N hashes for N leaves, and
// it holds every non-ephemeral node of any inclusion or consistency proof
// for any tree size up to N (proof.Inclusion and proof.Consistency name
// only such nodes; the one ephemeral node is recomputed by Nodes.Rehash).
// The zero value is not ready; use newTree.
type tree struct {
	levels [][][32]byte
	rng    *compact.Range // compact range [0, size) for the current root
	root   [32]byte       // root at the current size
}

func newTree() *tree {
	t := &tree{rng: rangeFactory.NewEmptyRange(0)}
	t.root = [32]byte(hasher.EmptyRoot())
	return t
}

func (t *tree) size() uint64 { return t.rng.End() }

// store records a perfect-subtree node reported by the compact range.
// Nodes of one level are reported in index order, so each lands at the end.
func (t *tree) store(id compact.NodeID, hash []byte) {
	for uint(len(t.levels)) <= id.Level {
		t.levels = append(t.levels, nil)
	}
	if uint64(len(t.levels[id.Level])) != id.Index {
		// compact.Range reports each new perfect node exactly once, in order.
		panic(fmt.Sprintf("audit: tree node %d/%d out of order (have %d)", id.Level, id.Index, len(t.levels[id.Level])))
	}
	t.levels[id.Level] = append(t.levels[id.Level], [32]byte(hash))
}

// append adds one leaf hash and updates the root.
func (t *tree) append(leafHash [32]byte) {
	t.appendBulk(leafHash)
	t.updateRoot()
}

// appendBulk adds one leaf hash without updating the root, saving the
// log2(size) interior hashes of the root computation when many leaves are
// added at once. Call updateRoot before using the tree.
func (t *tree) appendBulk(leafHash [32]byte) {
	if err := t.rng.Append(leafHash[:], t.store); err != nil {
		panic(fmt.Sprintf("audit: compact range append: %v", err)) // cannot happen for a range starting at 0
	}
}

// updateRoot recomputes the root at the current size.
func (t *tree) updateRoot() {
	if t.size() == 0 {
		t.root = [32]byte(hasher.EmptyRoot())
		return
	}
	root, err := t.rng.GetRootHash(nil)
	if err != nil {
		panic(fmt.Sprintf("audit: compact range root: %v", err))
	}
	t.root = [32]byte(root)
}

func (t *tree) node(id compact.NodeID) []byte {
	h := t.levels[id.Level][id.Index]
	return h[:]
}

// rootAt returns the root of the tree's first size leaves.
func (t *tree) rootAt(size uint64) ([32]byte, error) {
	switch {
	case size > t.size():
		return [32]byte{}, fmt.Errorf("audit: size %d beyond tree size %d: %w", size, t.size(), ErrRange)
	case size == t.size():
		return t.root, nil
	case size == 0:
		return [32]byte(hasher.EmptyRoot()), nil
	}
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		hashes[i] = t.node(id)
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return [32]byte{}, fmt.Errorf("audit: compact range for size %d: %v", size, err)
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return [32]byte{}, fmt.Errorf("audit: root at size %d: %v", size, err)
	}
	return [32]byte(root), nil
}

// prove fetches the stored hashes named by nodes and folds the ephemeral
// node, giving the RFC 6962 proof. The returned hashes are fresh copies
// (each loop variable h is a copy of the stored array).
func (t *tree) prove(nodes proof.Nodes) ([][]byte, error) {
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h := t.levels[id.Level][id.Index]
		hashes[i] = h[:]
	}
	p, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("audit: rehash proof: %v", err)
	}
	return p, nil
}

// inclusionProof returns the RFC 6962 audit path for leaf index in the tree
// of the given size.
func (t *tree) inclusionProof(index, size uint64) ([][]byte, error) {
	if size > t.size() || index >= size {
		return nil, fmt.Errorf("audit: inclusion of leaf %d in size %d (log size %d): %w", index, size, t.size(), ErrRange)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("audit: inclusion nodes: %v: %w", err, ErrRange)
	}
	return t.prove(nodes)
}

// consistencyProof returns the RFC 6962 consistency proof between the trees
// of size1 and size2 leaves.
func (t *tree) consistencyProof(size1, size2 uint64) ([][]byte, error) {
	if size2 > t.size() || size1 > size2 {
		return nil, fmt.Errorf("audit: consistency %d→%d (log size %d): %w", size1, size2, t.size(), ErrRange)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("audit: consistency nodes: %v: %w", err, ErrRange)
	}
	return t.prove(nodes)
}
