//go:build !unix

package learn

// processCPUNanos is unavailable here; benchmarks then omit cpu-s/op.
func processCPUNanos() int64 { return -1 }
