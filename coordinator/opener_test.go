package coordinator

import (
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mfn/mfn/crypto"
)

// sealTo seals a small update from node n to recipients.
func sealTo(t testing.TB, n *testNode, k *testKeys, recipients []age.Recipient, vals []float64) []byte {
	t.Helper()
	stmt := &crypto.Statement{Origin: k.origin, JobID: "j", Round: 1, NodeID: n.id, SampleCount: 1,
		Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	sealed, err := crypto.Seal(stmt, crypto.EncodeUpdate(vals, crypto.Float64), n.key, recipients)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// TestCryptoOpenerPositions: the opener finds its stanza wherever it is,
// first time and after learning a position, and refuses envelopes not
// sealed to it; the opened content is what was sealed.
func TestCryptoOpenerPositions(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t, 4, 41)
	nodes := newTestNodes(t, 1, 42)
	lookup := func(id string) (ed25519.PublicKey, error) {
		if id != nodes[0].id {
			return nil, ErrUnknownNode
		}
		return nodes[0].pub(), nil
	}
	o := &CryptoOpener{Identities: []age.Identity{k.coords[0].Age}}
	me := k.recipients[0]
	others := k.recipients[1:]
	// The member's stanza at position 2, 2 again, 0, 1, then absent.
	orders := [][]age.Recipient{
		{others[0], others[1], me},
		{others[0], others[1], me},
		{me, others[0], others[1]},
		{others[2], me},
		{others[0], others[1], others[2]},
	}
	for i, rs := range orders {
		vals := []float64{float64(i), -1.5, 2}
		env, err := o.Open(sealTo(t, nodes[0], k, rs, vals), lookup)
		if i == len(orders)-1 {
			if !errors.Is(err, crypto.ErrNotRecipient) {
				t.Fatalf("envelope not sealed to the member: %v, want crypto.ErrNotRecipient", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
		if env.Node != nodes[0].id || !slices.Equal(env.Update, vals) {
			t.Fatalf("order %d: opened %s %v", i, env.Node, env.Update)
		}
	}
}

// BenchmarkCryptoOpen opens an envelope sealed to 3 coordinators (d =
// 10,000 float32) whose last stanza is the member's: the cost of the
// leader's Open in Submit.
func BenchmarkCryptoOpen(b *testing.B) {
	k := newTestKeys(b, 3, 43)
	nodes := newTestNodes(b, 1, 44)
	lookup := func(string) (ed25519.PublicKey, error) { return nodes[0].pub(), nil }
	sealed := nodes[0].sealFloat32(b, k, "j", 1, Hash{}, rand.New(rand.NewPCG(1, 1)))
	o := &CryptoOpener{Identities: []age.Identity{k.coords[2].Age}}
	b.SetBytes(int64(len(sealed)))
	b.ResetTimer()
	for range b.N {
		if _, err := o.Open(sealed, lookup); err != nil {
			b.Fatal(err)
		}
	}
}
