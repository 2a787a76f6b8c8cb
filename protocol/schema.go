package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"slices"
)

// StatsHash is the hex SHA-256 of a job's reference statistics: the count
// of means, then every mean and every std, as little-endian uint64 and
// float64; "" without statistics. A round announcement's "schema"
// metadata carries it as "stats" (coordinator.DataSchema.Encode), and a
// node compares it with the statistics it was given (mfn node --stats).
func StatsHash(mean, std []float64) string {
	if len(mean) == 0 && len(std) == 0 {
		return ""
	}
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(len(mean)))
	h.Write(b[:])
	for _, v := range slices.Concat(mean, std) {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}
