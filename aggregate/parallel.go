package aggregate

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// minParallelWork is the amount of work (roughly, floating-point
// operations) below which a loop runs on the calling goroutine: starting
// goroutines costs microseconds.
const minParallelWork = 1 << 16

// parallelFor calls fn(i) for every i < parts, on up to GOMAXPROCS
// goroutines when work justifies it. Callers make each part write only its
// own output, so results do not depend on how parts are scheduled: the
// partition is fixed by the caller, never by the number of workers.
func parallelFor(parts int, work int64, fn func(part int)) {
	workers := min(runtime.GOMAXPROCS(0), parts)
	if workers <= 1 || work < minParallelWork {
		for i := 0; i < parts; i++ {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= parts {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// span returns the bounds of part p when [0, total) is cut into parts
// nearly equal contiguous pieces, each a multiple of align long except the
// last.
func span(total, parts, p, align int) (lo, hi int) {
	units := (total + align - 1) / align
	lo = min(total, (units*p/parts)*align)
	hi = min(total, (units*(p+1)/parts)*align)
	return lo, hi
}
