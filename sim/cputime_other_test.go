//go:build !unix

package sim

// processCPUNanos is unavailable here; benchmarks then omit cpu-ns/op.
func processCPUNanos() int64 { return -1 }
