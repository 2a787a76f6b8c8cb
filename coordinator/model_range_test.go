package coordinator

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// encodeRange gives exactly the bytes of ModelBytes for every range,
// including ones that cut the header and values, and nothing past the end.
func TestEncodeRangeMatchesModelBytes(t *testing.T) {
	p := Params{1.5, -2, math.Pi, 0, math.SmallestNonzeroFloat64, -1e300, 7}
	whole := ModelBytes(p)
	for off := uint64(0); off <= uint64(len(whole))+3; off++ {
		for _, n := range []uint32{0, 1, 3, 7, 8, 9, 13, 14, 15, 64, 1 << 20} {
			got := encodeRange(p, off, n)
			lo := min(off, uint64(len(whole)))
			want := whole[lo:min(lo+uint64(n), uint64(len(whole)))]
			if !bytes.Equal(got, want) {
				t.Fatalf("off %d n %d: %x, want %x", off, n, got, want)
			}
		}
	}
	if got := encodeRange(nil, 0, 100); !bytes.Equal(got, ModelBytes(nil)) {
		t.Fatalf("empty model: %x", got)
	}
}

// modelRange serves a stored version's bytes with its total and hash and
// names a missing job or version.
func TestFSMModelRange(t *testing.T) {
	b := newLogBuilder(t)
	spec := testSpec("j", 5, 1, 1)
	spec.InitialModel = Params{1, 2, 3, 4, 5}
	b.add(cmdCreateJob, &createJobCmd{Spec: spec, At: b.at})
	f := replay(t, b.keys, b.entries)
	whole := ModelBytes(spec.InitialModel)
	data, total, hash, err := f.modelRange("j", 0, 10, 20)
	if err != nil || total != uint64(len(whole)) || hash != ModelHash(spec.InitialModel) || !bytes.Equal(data, whole[10:30]) {
		t.Fatalf("range: %x %d %v %v", data, total, hash, err)
	}
	if _, _, _, err := f.modelRange("j", 1, 0, 8); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing version: %v", err)
	}
	if _, _, _, err := f.modelRange("x", 0, 0, 8); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing job: %v", err)
	}
}
