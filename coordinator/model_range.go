package coordinator

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/mfn/mfn/crypto"
)

// bigModelBytes: a model whose encoding is larger is served to nodes
// range by range from the replicated state (modelRange) instead of from
// an encoded copy cached per job (QUICHandler.encoded), which would hold
// the whole model again (200 MB at d = 25,000,000). A variable so tests
// can send small models down the same path.
var bigModelBytes uint64 = 64 << 20

// maxModelRange bounds the bytes one range answer encodes (a node may ask
// for up to 4 GiB; the protocol lets the server return fewer).
const maxModelRange = 1 << 20

// modelEncodedSize is the size of ModelBytes of a dim-value model.
func modelEncodedSize(dim int) uint64 { return uint64(crypto.UpdateHeaderLen) + 8*uint64(max(dim, 0)) }

// modelRange returns bytes [off, off+n) of the canonical encoding of a
// job's model version (ModelBytes: the crypto update header, then float64
// values little-endian), fewer at the end, with the encoding's total size
// and hash. Nothing but the range is encoded.
func (f *fsm) modelRange(job string, version, off uint64, n uint32) (data []byte, total uint64, hash Hash, err error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[job]
	if !ok {
		return nil, 0, Hash{}, fmt.Errorf("%w: job %s", ErrNotFound, job)
	}
	if version >= uint64(len(j.Models)) {
		return nil, 0, Hash{}, fmt.Errorf("%w: job %s model version %d", ErrNotFound, job, version)
	}
	m := j.Models[version]
	if m.Params == nil {
		return nil, 0, Hash{}, fmt.Errorf("%w: job %s model version %d (a running job keeps the last %d, an ended one its final model, an archived one none)", ErrModelPruned, job, version, modelsKept(j.Job.Spec.Dim))
	}
	return encodeRange(m.Params, off, n), uint64(crypto.UpdateHeaderLen) + 8*uint64(len(m.Params)), m.Hash, nil
}

// encodeRange returns bytes [off, off+n) of ModelBytes(p), clipped to its
// end (empty at or past it).
func encodeRange(p Params, off uint64, n uint32) []byte {
	const hl = uint64(crypto.UpdateHeaderLen)
	total := hl + 8*uint64(len(p))
	if off >= total {
		return []byte{}
	}
	end := min(off+uint64(n), total)
	out := make([]byte, 0, end-off)
	if off < hl {
		var hdr [crypto.UpdateHeaderLen]byte
		copy(hdr[:], crypto.UpdateMagic)
		hdr[4] = crypto.UpdateVersion
		hdr[5] = byte(crypto.Float64)
		binary.LittleEndian.PutUint64(hdr[6:], uint64(len(p)))
		out = append(out, hdr[off:min(end, hl)]...)
	}
	var v [8]byte
	for pos := max(off, hl); pos < end; {
		i := (pos - hl) / 8
		binary.LittleEndian.PutUint64(v[:], math.Float64bits(p[i]))
		lo := (pos - hl) % 8
		k := min(uint64(8), lo+(end-pos))
		out = append(out, v[lo:k]...)
		pos += k - lo
	}
	return out
}
