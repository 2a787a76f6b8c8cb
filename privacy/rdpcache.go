package privacy

import "sync"

// The accountant's ε is read often (a coordinator reads every job's ε
// each round-engine tick and at each /metrics scrape) but its events
// change once per round, and one RDP vector of the sampled Gaussian costs
// milliseconds at q < 1 (the fractional orders' series; docs/BENCHMARKS.md).
// stepRDPCache keeps the one-step RDP vector of recent (q, z) pairs so an
// accountant read is a multiply-add over the grid. The cached vector is
// exactly what rdpVector(q, z, 1) returns, and steps·r is the same IEEE
// product rdpVector computes, so cached and uncached results are equal.

// maxStepRDPCache bounds the cached pairs (151 floats each); when full the
// cache is emptied and refilled.
const maxStepRDPCache = 256

type rdpKey struct{ q, z float64 }

var stepRDPCache struct {
	sync.Mutex
	m map[rdpKey][]float64
}

// cachedRDPVector is rdpVector(q, z, steps) through the cache.
func cachedRDPVector(q, z float64, steps int64) ([]float64, error) {
	k := rdpKey{q, z}
	stepRDPCache.Lock()
	one, ok := stepRDPCache.m[k]
	stepRDPCache.Unlock()
	if !ok {
		var err error
		if one, err = rdpVector(q, z, 1); err != nil {
			return nil, err
		}
		stepRDPCache.Lock()
		if stepRDPCache.m == nil || len(stepRDPCache.m) >= maxStepRDPCache {
			stepRDPCache.m = make(map[rdpKey][]float64)
		}
		stepRDPCache.m[k] = one
		stepRDPCache.Unlock()
	}
	out := make([]float64, len(one))
	for i, r := range one {
		out[i] = float64(steps) * r
	}
	return out, nil
}
