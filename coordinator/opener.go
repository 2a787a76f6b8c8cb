package coordinator

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"filippo.io/age"

	"github.com/mfn/mfn/crypto"
)

// CryptoOpener is the production Opener: crypto.Open with the member's age
// identity, then crypto.DecodeUpdate (which rejects NaN and ±Inf).
//
// An envelope is sealed to every coordinator, one age stanza each, in the
// order of the node's cluster file, and age finds a member's stanza by
// trying its key on each in turn (an X25519 multiplication per try).
// CryptoOpener tries first the position where its key matched last time,
// which for envelopes from the same cluster file is where it matches
// again; the header MAC still authenticates every stanza. Safe for
// concurrent use.
type CryptoOpener struct {
	// Identities decrypt envelopes (the member's age identity).
	Identities []age.Identity
	// Limits bounds sealed envelopes; a zero MaxUpdateBytes means a
	// float64 update of MaxStreamedDim values (jobs bound their updates
	// before they reach the opener), other zero fields crypto's defaults.
	Limits crypto.Limits
	// MaxValues bounds the number of values in an update; zero means
	// MaxStreamedDim.
	MaxValues int

	once  sync.Once
	hints []age.Identity
}

type keyLookup KeyLookup

func (k keyLookup) NodePublicKey(id string) (ed25519.PublicKey, error) {
	pub, err := k(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", crypto.ErrUnknownNode, err)
	}
	return pub, nil
}

// positionHint is an age identity that tries the stanza position where
// its identity matched last first, then the others in order.
type positionHint struct {
	id   age.Identity
	last atomic.Int64
}

// Unwrap implements age.Identity. If the stanza at the remembered
// position yields the file key, that is the answer; otherwise the stanzas
// are tried in order, as the wrapped identity itself does. (The one
// difference: a malformed stanza before this member's own no longer stops
// it from opening the envelope. A node can in any case seal an envelope
// that only some coordinators can open; a leader that cannot open an
// update it must aggregate rejects it with a reason.)
func (h *positionHint) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	k := int(h.last.Load())
	if k >= 0 && k < len(stanzas) {
		if key, err := h.id.Unwrap(stanzas[k : k+1]); err == nil {
			return key, nil
		}
	}
	for i := range stanzas {
		key, err := h.id.Unwrap(stanzas[i : i+1])
		if errors.Is(err, age.ErrIncorrectIdentity) {
			continue
		}
		if err != nil {
			return nil, err
		}
		h.last.Store(int64(i))
		return key, nil
	}
	return nil, age.ErrIncorrectIdentity
}

// limits are o.Limits with a zero MaxUpdateBytes meaning the largest
// update a job may have: what reaches the opener is already bounded by
// the job (StreamLimit) or by the frame.
func (o *CryptoOpener) limits() crypto.Limits {
	lim := o.Limits
	if lim.MaxUpdateBytes == 0 {
		lim.MaxUpdateBytes = int64(crypto.UpdateHeaderLen) + 8*int64(MaxStreamedDim)
	}
	return lim
}

func (o *CryptoOpener) initHints() {
	for _, id := range o.Identities {
		h := &positionHint{id: id}
		h.last.Store(-1)
		o.hints = append(o.hints, h)
	}
}

// Open implements Opener.
func (o *CryptoOpener) Open(sealed []byte, keys KeyLookup) (*Envelope, error) {
	o.once.Do(o.initHints)
	op, err := crypto.Open(sealed, o.hints, keyLookup(keys), o.limits())
	if err != nil {
		return nil, err
	}
	maxValues := o.MaxValues
	if maxValues == 0 {
		maxValues = MaxStreamedDim
	}
	upd, err := crypto.DecodeUpdate(op.Update, maxValues)
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

// OpenStream implements StreamOpener: crypto.OpenStream with the member's
// identity; the update's bytes go to dst as they are decrypted (the caller
// checks their count and values, crypto.UpdateStreamCheck).
func (o *CryptoOpener) OpenStream(r io.Reader, size int64, keys KeyLookup, dst io.Writer) (*Envelope, error) {
	o.once.Do(o.initHints)
	op, err := crypto.OpenStream(r, size, o.hints, keyLookup(keys), o.limits(), dst)
	if err != nil {
		return nil, err
	}
	s := op.Statement
	return &Envelope{
		Origin: s.Origin, Job: s.JobID, Round: s.Round, Node: s.NodeID,
		BaseHash: s.BaseModelHash, UpdateHash: s.UpdateHash, Samples: s.SampleCount, Time: s.Time,
		Statement: op.StatementBytes, Signature: op.Signature,
	}, nil
}

var _ StreamOpener = (*CryptoOpener)(nil)
