package load

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"github.com/mfn/mfn/crypto"
)

// TestUpdateReaderMatchesEncodeUpdate: the streamed update is byte for
// byte the one a framed virtual node seals, read whole or a byte at a
// time.
func TestUpdateReaderMatchesEncodeUpdate(t *testing.T) {
	for _, c := range []struct {
		dim    int
		byz    bool
		attack string
	}{{0, false, ""}, {1, false, ""}, {1001, false, ""}, {777, true, "sign-flip"}, {50, true, "large"}} {
		want := crypto.EncodeUpdate(updateValues(7, 3, 2, c.dim, c.byz, c.attack), crypto.Float32)
		got, err := io.ReadAll(newUpdateReader(7, 3, 2, c.dim, c.byz, c.attack))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("dim %d: whole read differs (%v)", c.dim, err)
		}
		got, err = io.ReadAll(iotest.OneByteReader(newUpdateReader(7, 3, 2, c.dim, c.byz, c.attack)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("dim %d: byte-wise read differs (%v)", c.dim, err)
		}
		if err := iotest.TestReader(newUpdateReader(7, 3, 2, c.dim, c.byz, c.attack), want); err != nil {
			t.Fatalf("dim %d: %v", c.dim, err)
		}
	}
}
