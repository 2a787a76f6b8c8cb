package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
)

// The client momentum of a job (the SGD velocity that carries over from
// round to round) is kept in StateDir/momentum/<hex job id>.bin, so that a
// restarted node trains exactly as one that never stopped:
//
//	"MFNMOM1\n"            8 bytes, format and version
//	round                  uint64, big-endian: the round whose training left this velocity
//	n                      uint64, big-endian: number of values
//	v[0..n)                n float64, IEEE 754 bits big-endian
//	SHA-256                32 bytes, of everything before it
//
// The file is written atomically after each round's training; a torn or
// altered file fails its checksum and is reported, never half used.

var momentumMagic = []byte("MFNMOM1\n")

// maxMomentumValues bounds the values a momentum file may declare, so a
// damaged length cannot make the decoder allocate more than a state file
// may hold.
const maxMomentumValues = maxStateFile / 8

// momentumHeader is the size of magic, round and count.
const momentumHeader = 8 + 8 + 8

func (s *State) momentumPath(job string) string {
	return filepath.Join(s.dir, "momentum", jobDir(job)+".bin")
}

// encodeMomentum renders a momentum file.
func encodeMomentum(round uint64, v []float64) []byte {
	b := make([]byte, 0, momentumHeader+8*len(v)+sha256.Size)
	b = append(b, momentumMagic...)
	b = binary.BigEndian.AppendUint64(b, round)
	b = binary.BigEndian.AppendUint64(b, uint64(len(v)))
	for _, x := range v {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(x))
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// decodeMomentum parses a momentum file. Every malformed input fails with
// ErrStateFile; none panics.
func decodeMomentum(b []byte) (round uint64, v []float64, err error) {
	bad := func(format string, args ...any) (uint64, []float64, error) {
		return 0, nil, fmt.Errorf("%w: momentum: "+format, append([]any{ErrStateFile}, args...)...)
	}
	if len(b) < momentumHeader+sha256.Size {
		return bad("%d bytes, too short", len(b))
	}
	if !bytes.Equal(b[:8], momentumMagic) {
		return bad("not a momentum file (magic %q)", b[:8])
	}
	round = binary.BigEndian.Uint64(b[8:16])
	n := binary.BigEndian.Uint64(b[16:24])
	if n > maxMomentumValues {
		return bad("%d values, at most %d", n, maxMomentumValues)
	}
	if uint64(len(b)) != momentumHeader+8*n+sha256.Size {
		return bad("%d bytes for %d values", len(b), n)
	}
	body := b[:len(b)-sha256.Size]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], b[len(body):]) {
		return bad("checksum mismatch")
	}
	v = make([]float64, n)
	for i := range v {
		x := math.Float64frombits(binary.BigEndian.Uint64(body[momentumHeader+8*i:]))
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return bad("value %d is %v", i, x)
		}
		v[i] = x
	}
	return round, v, nil
}

// SaveMomentum durably records job's momentum buffer v as left by the
// training of round.
func (s *State) SaveMomentum(job string, round uint64, v []float64) error {
	if err := os.MkdirAll(filepath.Join(s.dir, "momentum"), 0o700); err != nil {
		return fmt.Errorf("node: momentum: %w", err)
	}
	return writeFileAtomic(s.momentumPath(job), encodeMomentum(round, v))
}

// LoadMomentum returns job's recorded momentum buffer and the round that
// left it; ok is false when none was recorded. A damaged file fails with
// ErrStateFile naming it.
func (s *State) LoadMomentum(job string) (round uint64, v []float64, ok bool, err error) {
	path := s.momentumPath(job)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, fmt.Errorf("node: momentum: %w", err)
	}
	if fi.Size() > maxStateFile {
		return 0, nil, false, fmt.Errorf("%w: %s is %d bytes", ErrStateFile, path, fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, false, fmt.Errorf("node: momentum: %w", err)
	}
	round, v, err = decodeMomentum(b)
	if err != nil {
		return 0, nil, false, fmt.Errorf("%s: %w", path, err)
	}
	return round, v, true, nil
}
