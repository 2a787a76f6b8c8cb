package audit

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
)

const benchSize = 100_000

var (
	benchOnce sync.Once
	benchLog  *Log
)

// bigLog returns a log of benchSize leaves (copies of one signed sample
// leaf with distinct accept times, appended without re-verifying) and a
// checkpoint at the end. Built once per process.
func bigLog(b *testing.B) *Log {
	benchOnce.Do(func() {
		s, v := testLogKey(b)
		l, err := NewLog(testOrigin, v)
		if err != nil {
			b.Fatal(err)
		}
		leaf := sampleLeaf(b, 0)
		enc, err := leaf.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		for i := range uint64(benchSize) {
			e := append([]byte(nil), enc...)
			binary.BigEndian.PutUint64(e[len(e)-8:], i)
			l.appendVerified(e)
		}
		root := l.Root()
		msg, err := SignCheckpoint(s, testOrigin, l.Size(), root[:])
		if err == nil {
			_, err = l.AddCheckpoint(msg)
		}
		if err != nil {
			b.Fatal(err)
		}
		benchLog = l
	})
	return benchLog
}

// BenchmarkAppend is one full Log.Append of a signed leaf: encoding, the
// node-signature and statement check, the leaf hash and the tree update.
func BenchmarkAppend(b *testing.B) {
	_, v := testLogKey(b)
	rng := rand.New(rand.NewPCG(1, 2))
	leaves := make([]*Leaf, 256)
	for i := range leaves {
		l, err := SampleLeaf(testOrigin, i, 4, rng)
		if err != nil {
			b.Fatal(err)
		}
		leaves[i] = l
	}
	l, _ := NewLog(testOrigin, v)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := l.Append(leaves[i%len(leaves)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTreeAppend is the Merkle part of an append alone: the RFC 6962
// leaf hash of an encoded leaf and the tree update (stored nodes and root).
func BenchmarkTreeAppend(b *testing.B) {
	enc, err := sampleLeaf(b, 0).MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	t := newTree()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t.append(LeafHash(enc))
	}
}

func BenchmarkInclusionProof100k(b *testing.B) {
	l := bigLog(b)
	rng := rand.New(rand.NewPCG(3, 4))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := l.InclusionProof(rng.Uint64N(benchSize), benchSize); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyInclusion100k(b *testing.B) {
	l := bigLog(b)
	const n = 1024
	rng := rand.New(rand.NewPCG(5, 6))
	idx := make([]uint64, n)
	proofs := make([][][]byte, n)
	hashes := make([][32]byte, n)
	for i := range n {
		idx[i] = rng.Uint64N(benchSize)
		proofs[i], _ = l.InclusionProof(idx[i], benchSize)
		enc, _ := l.Leaf(idx[i])
		hashes[i] = LeafHash(enc)
	}
	root := l.Root()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		j := i % n
		if err := proof.VerifyInclusion(hasher, idx[j], benchSize, hashes[j][:], proofs[j], root[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsistencyProof100k proves and verifies consistency between a
// random older size and 100,000.
func BenchmarkConsistencyProof100k(b *testing.B) {
	l := bigLog(b)
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 256
	sizes := make([]uint64, n)
	roots := make([][32]byte, n)
	for i := range n {
		sizes[i] = 1 + rng.Uint64N(benchSize-1)
		roots[i], _ = l.RootAt(sizes[i])
	}
	root := l.Root()
	b.Run("prove", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := l.ConsistencyProof(sizes[i%n], benchSize); err != nil {
				b.Fatal(err)
			}
		}
	})
	proofs := make([][][]byte, n)
	for i := range n {
		proofs[i], _ = l.ConsistencyProof(sizes[i], benchSize)
	}
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			j := i % n
			if err := proof.VerifyConsistency(hasher, sizes[j], benchSize, proofs[j], roots[j][:], root[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyBundle is an auditor's whole check of one bundle at size
// 100,000: checkpoint note signature, leaf decode, node signature,
// inclusion proof.
func BenchmarkVerifyBundle100k(b *testing.B) {
	l := bigLog(b)
	bundle, err := l.Bundle(benchSize / 3)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := VerifyBundle(bundle, l.Verifier(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotRestore100k measures Snapshot and Restore of a
// 100,000-leaf log (what a Raft snapshot of the audit log costs).
func BenchmarkSnapshotRestore100k(b *testing.B) {
	l := bigLog(b)
	snap, _ := l.Snapshot()
	b.Run("snapshot", func(b *testing.B) {
		b.SetBytes(int64(len(snap)))
		b.ReportAllocs()
		for range b.N {
			if _, err := l.Snapshot(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("restore", func(b *testing.B) {
		b.SetBytes(int64(len(snap)))
		b.ReportAllocs()
		for range b.N {
			r, _ := NewLog(testOrigin, l.Verifier())
			if err := r.Restore(snap); err != nil {
				b.Fatal(err)
			}
		}
	})
}
