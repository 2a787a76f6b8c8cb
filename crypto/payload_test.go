package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"filippo.io/age"
)

// TestPayloadMatchesAge decrypts age files of sizes around the chunk
// boundaries and damaged variants of them, and checks that the in-place
// decryption agrees with age.Decrypt.
func TestPayloadMatchesAge(t *testing.T) {
	t.Parallel()
	aid := newAgeIdentity(t)
	ids := []age.Identity{aid}
	rng := rand.New(rand.NewPCG(7, 7))
	const enc = ageChunk + ageTagSize
	for _, n := range []int{0, 1, ageChunk - 1, ageChunk, ageChunk + 1, 2 * ageChunk, 2*ageChunk + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			plain := make([]byte, n)
			for i := range plain {
				plain[i] = byte(rng.Uint32())
			}
			sealed := sealPlain(t, plain, aid.Recipient())
			p, err := openPayload(sealed, ids, DefaultMaxHeaderBytes)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.decryptAll()
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("decrypt: %v, equal %v", err, bytes.Equal(got, plain))
			}
			checkAgeAgrees(t, sealed, ids)
			hdr, _ := age.ExtractHeader(bytes.NewReader(sealed))
			body := len(sealed) - len(hdr) - ageNonceSize
			damaged := map[string][]byte{
				"drop last chunk":    sealed[:len(sealed)-((body-1)%enc+1)],
				"append byte":        append(bytes.Clone(sealed), 0),
				"append empty chunk": append(bytes.Clone(sealed), make([]byte, ageTagSize)...),
				"drop last byte":     sealed[:len(sealed)-1],
			}
			if body >= 2*enc {
				swapped := bytes.Clone(sealed)
				a := swapped[len(hdr)+ageNonceSize:]
				tmp := bytes.Clone(a[:enc])
				copy(a[:enc], a[enc:2*enc])
				copy(a[enc:2*enc], tmp)
				damaged["swap chunks"] = swapped
			}
			for name, d := range damaged {
				p, err := openPayload(d, ids, DefaultMaxHeaderBytes)
				if err == nil {
					_, err = p.decryptAll()
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("%s: err = %v, want ErrMalformed", name, err)
				}
				checkAgeAgrees(t, d, ids)
			}
		})
	}
}

func TestStreamLayout(t *testing.T) {
	t.Parallel()
	const enc = ageChunk + ageTagSize
	cases := []struct {
		n             int64
		chunks, size  int64
		wantMalformed bool
	}{
		{0, 0, 0, true},
		{15, 0, 0, true},
		{16, 1, 0, false},
		{17, 1, 1, false},
		{enc, 1, ageChunk, false},
		{enc + 16, 0, 0, true}, // full chunk followed by an empty one
		{enc + 17, 2, ageChunk + 1, false},
		{3 * enc, 3, 3 * ageChunk, false},
	}
	for _, c := range cases {
		chunks, size, err := streamLayout(c.n)
		if c.wantMalformed {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("n=%d: err = %v", c.n, err)
			}
			continue
		}
		if err != nil || chunks != c.chunks || size != c.size {
			t.Errorf("n=%d: %d chunks, %d bytes, %v; want %d, %d", c.n, chunks, size, err, c.chunks, c.size)
		}
	}
}
