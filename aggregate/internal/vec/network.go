package vec

import "sync"

// Network is a comparator network that sorts n values: Batcher's odd–even
// merge sort (Knuth, TAOCP vol. 3, §5.3.4) on the next power of two, keeping
// only the comparators between the first n positions. The pruning is exact
// because every comparator sends the minimum to the lower position, so
// +Inf padding above n would never move.
type Network struct {
	// N is the number of values sorted.
	N int
	// Pairs lists the comparators (i, j), i < j, in an order that respects
	// the network's stages.
	Pairs [][2]int32
	// offs holds the same pairs as byte offsets of 4-lane rows (i·32, j·32),
	// for the assembly kernel.
	offs []int32
	// offs64 holds them as byte offsets of 16-lane float32 rows (i·64,
	// j·64), for Sort16F32.
	offs64 []int32
}

var networks sync.Map // int → *Network

// SortingNetwork returns the (cached) network for n values.
func SortingNetwork(n int) *Network {
	if v, ok := networks.Load(n); ok {
		return v.(*Network)
	}
	w := &Network{N: n}
	size := 1
	for size < n {
		size *= 2
	}
	for p := 1; p < size; p *= 2 {
		for k := p; k >= 1; k /= 2 {
			for j := k % p; j+k < size; j += 2 * k {
				for i := 0; i < k && i+j+k < size; i++ {
					if (i+j)/(2*p) == (i+j+k)/(2*p) {
						a, b := i+j, i+j+k
						if b < n {
							w.Pairs = append(w.Pairs, [2]int32{int32(a), int32(b)})
						}
					}
				}
			}
		}
	}
	w.offs = make([]int32, 0, 2*len(w.Pairs))
	w.offs64 = make([]int32, 0, 2*len(w.Pairs))
	for _, pr := range w.Pairs {
		w.offs = append(w.offs, pr[0]*32, pr[1]*32)
		w.offs64 = append(w.offs64, pr[0]*64, pr[1]*64)
	}
	v, _ := networks.LoadOrStore(n, w)
	return v.(*Network)
}

// Sort4 sorts four interleaved columns in place: buf holds N rows of four
// values, buf[4·i+l] being row i of column l. Afterwards each column is in
// ascending order. It panics if len(buf) < 4·N. Values must not be NaN; a
// +0 and a −0 may both come out as the same zero.
func (w *Network) Sort4(buf []float64) {
	_ = buf[:4*w.N]
	if len(w.Pairs) == 0 {
		return
	}
	if useAsm {
		sortNet4Asm(&buf[0], &w.offs[0], len(w.Pairs))
		return
	}
	w.Sort4Generic(buf)
}

// Sort4Generic is the portable implementation of Sort4.
func (w *Network) Sort4Generic(buf []float64) {
	for _, pr := range w.Pairs {
		a := buf[4*pr[0] : 4*pr[0]+4]
		b := buf[4*pr[1] : 4*pr[1]+4]
		for l := 0; l < 4; l++ {
			if b[l] < a[l] {
				a[l], b[l] = b[l], a[l]
			}
		}
	}
}

type selectionKey struct{ n, lo, hi int }

var selections sync.Map // selectionKey → *Network

// SelectionNetwork returns the (cached) part of SortingNetwork(n) that
// puts the values of ranks lo … hi (inclusive) in place: walking the
// comparators backwards from those output positions, a comparator is kept
// when it writes a position that a kept comparator or an output reads. The
// dropped comparators only move values that never reach those positions,
// so the kept ones leave exactly the sorted network's values there. For
// the median of 100 values it keeps about two thirds of the comparators.
func SelectionNetwork(n, lo, hi int) *Network {
	key := selectionKey{n, lo, hi}
	if v, ok := selections.Load(key); ok {
		return v.(*Network)
	}
	full := SortingNetwork(n)
	live := make([]bool, n)
	for k := max(lo, 0); k <= hi && k < n; k++ {
		live[k] = true
	}
	keep := make([]bool, len(full.Pairs))
	for c := len(full.Pairs) - 1; c >= 0; c-- {
		pr := full.Pairs[c]
		if live[pr[0]] || live[pr[1]] {
			keep[c] = true
			live[pr[0]], live[pr[1]] = true, true
		}
	}
	w := &Network{N: n}
	for c, pr := range full.Pairs {
		if keep[c] {
			w.Pairs = append(w.Pairs, pr)
			w.offs = append(w.offs, pr[0]*32, pr[1]*32)
			w.offs64 = append(w.offs64, pr[0]*64, pr[1]*64)
		}
	}
	v, _ := selections.LoadOrStore(key, w)
	return v.(*Network)
}
