package serveropt

import (
	"bytes"
	"testing"
)

// FuzzUnmarshalState: the state decoder never panics, and whatever it
// accepts re-encodes to the same bytes (the encoding is canonical).
func FuzzUnmarshalState(f *testing.F) {
	for _, st := range []*State{
		{},
		{Steps: 1, M: []float64{0.5, -1}},
		{Steps: 7, M: []float64{1, 2, 3}, V: []float64{0, 0.25, 9}},
	} {
		b, _ := st.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var st State
		if err := st.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := st.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted state does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("accepted bytes re-encode differently")
		}
	})
}
