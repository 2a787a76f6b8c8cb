package aggregate

// Order statistics on small float64 slices, without full sorts.
//
// selectK is quickselect (Hoare 1961) with a median-of-three pivot and a
// branch-free Lomuto partition: the comparison result is added to the
// store index instead of being branched on, which avoids the
// misprediction that random data causes on every other element. When a
// partition comes out lopsided, values equal to the pivot are grouped in a
// second pass, so columns with many ties (all-zero coordinates) stay
// linear.

const insertionCutoff = 12

// selectK rearranges a so that a[k] holds the value of rank k (0-based)
// and a[:k] ≤ a[k] ≤ a[k+1:]. a must not contain NaN. tmp is reserved
// scratch of len(a) values (unused by this implementation).
func selectK(a []float64, k int, _ []float64) {
	lo, hi := 0, len(a)-1
	for hi-lo > insertionCutoff {
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
			if a[mid] < a[lo] {
				a[mid], a[lo] = a[lo], a[mid]
			}
		}
		// a[lo] ≤ a[mid] ≤ a[hi]; the pivot moves to hi.
		p := a[mid]
		a[mid], a[hi] = a[hi], a[mid]
		store := lo
		for i := lo; i < hi; i++ {
			v := a[i]
			a[i] = a[store]
			a[store] = v
			store += b2i(v < p)
		}
		a[hi], a[store] = a[store], a[hi]
		switch {
		case k == store:
			return
		case k < store:
			hi = store - 1
		default:
			// A lopsided split may come from many values equal to the
			// pivot (they all land on the right): group them.
			lopsided := 8*(store-lo) < hi-lo
			lo = store + 1
			if lopsided {
				// Group the values equal to the pivot right after it.
				s := lo
				for i := lo; i <= hi; i++ {
					v := a[i]
					a[i] = a[s]
					a[s] = v
					s += b2i(v == p)
				}
				if k < s {
					return
				}
				lo = s
			}
		}
	}
	// Insertion sort of the short remaining range.
	for i := lo + 1; i <= hi; i++ {
		v := a[i]
		j := i - 1
		for j >= lo && a[j] > v {
			a[j+1] = a[j]
			j--
		}
		a[j+1] = v
	}
}

func b2i(b bool) int {
	var i int
	if b {
		i = 1
	}
	return i
}

// medianOf returns the median of a (the mean of the two middle values when
// len(a) is even), reordering a; tmp is scratch of len(a).
func medianOf(a, tmp []float64) float64 {
	n := len(a)
	h := n / 2
	selectK(a, h, tmp)
	if n%2 == 1 {
		return a[h]
	}
	lower := a[0]
	for _, v := range a[1:h] {
		lower = max(lower, v)
	}
	return (lower + a[h]) / 2
}

// lowerMedianOf returns the value of rank (len(a)−1)/2, reordering a (the
// convention of torch.median); tmp is scratch of len(a).
func lowerMedianOf(a, tmp []float64) float64 {
	k := (len(a) - 1) / 2
	selectK(a, k, tmp)
	return a[k]
}

// trimmedMeanOf returns the mean of the values of rank f … n−f−1,
// reordering a; tmp is scratch of len(a). It requires 2f < len(a).
func trimmedMeanOf(a, tmp []float64, f int) float64 {
	n := len(a)
	if f > 0 {
		selectK(a, f, tmp)
		if rest := a[f+1:]; n-2*f-2 >= 0 {
			selectK(rest, n-2*f-2, tmp)
		}
	}
	return sum4(a[f:n-f]) / float64(n-2*f)
}

// sum4 returns the sum of a with four interleaved partial sums, so the
// additions do not wait on each other (fixed order: deterministic).
func sum4(a []float64) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i]
		s1 += a[i+1]
		s2 += a[i+2]
		s3 += a[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i]
	}
	return (s0 + s1) + (s2 + s3)
}
