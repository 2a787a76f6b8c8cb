package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"slices"
)

// Node sampling (Poisson subsampling of the enrolled nodes).
//
// Each round of a job with sample rate q < 1 is announced only to the
// nodes its sample holds. Node n is in round r's sample when
//
//	u(seed_r, n) = the first 8 bytes of SHA-256(seed_r ‖ n), big-endian,
//	u < ⌊q·2^64⌋
//	seed_r = HMAC-SHA-256(secret, "mfn/privacy/node-sample/v1" ‖ 0 ‖ job ‖ 0 ‖ round ‖ base)
//
// where secret is the job's 32-byte secret (drawn by the leader when the
// job is created, before any update exists, kept in the replicated state
// and shown once the job has ended), round is 8 bytes big-endian and base
// is the SHA-256 of the round's base model. Every node is decided on its
// own with probability q (up to 2^−64), independently of every other node
// and of the population: the sampling the accountant's sampled Gaussian
// mechanism assumes. Anyone holding the secret recomputes every round's
// sample, and a single node's membership needs neither the population nor
// the other nodes; a node without the secret cannot tell who else was
// sampled. docs/PRIVACY.md argues why the leader cannot steer it.

// sampleDomain separates node-sample seeds from every other use of the
// job's secret (central noise uses seedDomain).
const sampleDomain = "mfn/privacy/node-sample/v1"

// MaxSampleNodeLen bounds a node id that Sampled hashes (ids are at most
// 64 bytes in MFN; longer ones are never sampled).
const MaxSampleNodeLen = 1024

// SampleSeed returns round's sample seed for job, given the job's secret
// and the SHA-256 of the round's base model.
func SampleSeed(secret []byte, job string, round uint64, base [32]byte) [32]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(sampleDomain))
	m.Write([]byte{0})
	m.Write([]byte(job))
	m.Write([]byte{0})
	var r [8]byte
	binary.BigEndian.PutUint64(r[:], round)
	m.Write(r[:])
	m.Write(base[:])
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

// sampleThreshold returns ⌊q·2^64⌋ for q in (0, 1), and ok = false for
// q ≥ 1 (everyone is sampled). q ≤ 0 or NaN gives threshold 0 (no one).
func sampleThreshold(q float64) (t uint64, all bool) {
	if q >= 1 {
		return 0, true
	}
	if !(q > 0) {
		return 0, false
	}
	return uint64(math.Ldexp(q, 64)), false // q·2^64 < 2^64: exact conversion
}

// Sampled reports whether node is in the sample that seed draws at rate
// q: always for q ≥ 1, never for q ≤ 0 or NaN or an id longer than
// MaxSampleNodeLen.
func Sampled(seed [32]byte, node string, q float64) bool {
	t, all := sampleThreshold(q)
	if all {
		return true
	}
	if len(node) > MaxSampleNodeLen {
		return false
	}
	return sampleWord(seed, node) < t
}

func sampleWord(seed [32]byte, node string) uint64 {
	h := sha256.New()
	h.Write(seed[:])
	h.Write([]byte(node))
	var sum [32]byte
	h.Sum(sum[:0])
	return binary.BigEndian.Uint64(sum[:8])
}

// Sample returns the sorted, de-duplicated ids of nodes that seed samples
// at rate q.
func Sample(seed [32]byte, nodes []string, q float64) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		if Sampled(seed, n, q) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ExpectedCount returns the expected number of participants of a round
// sampled at rate q from population nodes, q·population, at least 1:
// the fixed denominator of the central mean and of adaptive clipping's
// count (McMahan et al. 2018's fixed-denominator estimator), so that the
// divisor does not depend on who took part.
func ExpectedCount(q float64, population int) float64 {
	if q >= 1 {
		q = 1
	}
	return max(1, q*float64(population))
}
