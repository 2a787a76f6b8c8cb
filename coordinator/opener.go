package coordinator

import (
	"crypto/ed25519"
	"fmt"

	"filippo.io/age"

	"github.com/mfn/mfn/crypto"
)

// CryptoOpener is the production Opener: crypto.Open with the member's age
// identity, then crypto.DecodeUpdate (which rejects NaN and ±Inf).
type CryptoOpener struct {
	// Identities decrypt envelopes (the member's age identity).
	Identities []age.Identity
	// Limits bounds sealed envelopes; zero means crypto's defaults.
	Limits crypto.Limits
	// MaxValues bounds the number of values in an update; zero means
	// crypto.DefaultMaxUpdateLen.
	MaxValues int
}

type keyLookup KeyLookup

func (k keyLookup) NodePublicKey(id string) (ed25519.PublicKey, error) {
	pub, err := k(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", crypto.ErrUnknownNode, err)
	}
	return pub, nil
}

// Open implements Opener.
func (o *CryptoOpener) Open(sealed []byte, keys KeyLookup) (*Envelope, error) {
	op, err := crypto.Open(sealed, o.Identities, keyLookup(keys), o.Limits)
	if err != nil {
		return nil, err
	}
	upd, err := crypto.DecodeUpdate(op.Update, o.MaxValues)
	if err != nil {
		return nil, err
	}
	s := op.Statement
	return &Envelope{
		Origin: s.Origin, Job: s.JobID, Round: s.Round, Node: s.NodeID,
		BaseHash: s.BaseModelHash, UpdateHash: s.UpdateHash, Samples: s.SampleCount, Time: s.Time,
		Statement: op.StatementBytes, Signature: op.Signature, Update: upd,
	}, nil
}

var _ Opener = (*CryptoOpener)(nil)
