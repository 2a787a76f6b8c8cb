package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mfn/mfn/audit"
)

// Round attestation (issue 15), the strong form (Config.AttestQuorum):
//
//  1. the leader seals a round with sealRoundCmd.Attest; every replica
//     marks the round (Round.Attest) and hands its sealed updates to the
//     member's attester;
//  2. every member, the leader included, re-derives the round off the
//     apply path (deriveRound) and commits a signed Derivation (the
//     SHA-256 of its encoded result leaf and its model hash) through
//     Raft; every replica verifies it against the registered member key
//     and records it in Round.Derivations;
//  3. the leader proposes close-round with its result leaf only once a
//     quorum of the registered members (audit.Quorum) recorded a
//     derivation matching its own, and every replica checks that quorum
//     again in Apply (checkQuorum): a disputed model is never committed.
//     When so many members differ that no quorum can match, or after
//     Config.AttestTimeout, the leader fails the round with a reason
//     starting "attestation:" (the job's on_failure policy applies);
//  4. after the close, members cosign the checkpoint covering the result
//     leaf as in the weak form (attest.go), reusing their derivation; a
//     member whose derivation differed records a signed Dissent.

// derivCacheSize bounds the derivations a member keeps (each holds one
// model): rounds past it are derived again if asked for.
const derivCacheSize = 16

// Derivation is a member's signed result of re-deriving a sealed round.
// Signature is its Ed25519 signature over DerivationMessage.
type Derivation struct {
	Member string `json:"member"`
	// LeafHash is the SHA-256 of the encoded result leaf the member
	// derived, ModelHash its new model's hash (both zero when Fail).
	LeafHash  Hash `json:"leaf_hash"`
	ModelHash Hash `json:"model_hash"`
	// Fail is why the member's pipeline could not derive the round.
	Fail      string `json:"fail,omitempty"`
	Signature []byte `json:"signature"`
}

// DerivationMessage is the text a member signs for a derivation:
//
//	mfn-derivation/v1
//	<origin>
//	<job>
//	<round>
//	<result leaf SHA-256, hex>
//	<model hash, hex>
//	<fail reason>
func DerivationMessage(origin, job string, round uint64, d *Derivation) []byte {
	var b bytes.Buffer
	b.WriteString("mfn-derivation/v1\n")
	for _, s := range []string{origin, job, strconv.FormatUint(round, 10),
		hex.EncodeToString(d.LeafHash[:]), hex.EncodeToString(d.ModelHash[:]), d.Fail} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// matches reports whether d derived the result leaf whose hash is h.
func (d *Derivation) matches(h Hash) bool { return d.Fail == "" && d.LeafHash == h }

// newSealTask captures, inside sealRound's apply, what deriving r needs;
// nil without an attester or base model.
func (f *fsm) newSealTask(j *jobState, r *Round) *attestTask {
	t := f.newAttestTask(j, r, 0, nil)
	if t != nil {
		t.sealed = true
	}
	return t
}

// keyedMembers counts the registered members with a cosigning key: the
// quorum is a majority of them.
func (f *fsm) keyedMembers() int {
	n := 0
	for _, m := range f.members {
		if len(m.PublicKey) == ed25519.PublicKeySize {
			n++
		}
	}
	return n
}

// applyDerivation records a member's derivation of a sealed strong-form
// round; one per member and round.
func (f *fsm) applyDerivation(j *jobState, a *Attestation, ev func(Event)) error {
	r := j.round(a.Round)
	if r == nil || !r.Attest || r.State != RoundClosing {
		return fmt.Errorf("%w: job %s round %d is not sealed for attestation", ErrStale, a.Job, a.Round)
	}
	m, ok := f.members[a.Member]
	if !ok || len(m.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: derivation by %s, not a registered member with a key", ErrNotFound, a.Member)
	}
	d := *a.Derived
	if a.Dissent != nil || len(a.Cosignature) > 0 || a.Checkpoint != 0 || d.Member != a.Member ||
		len(d.Fail) > maxDissentReason || len(d.Signature) != ed25519.SignatureSize ||
		!ed25519.Verify(m.PublicKey, DerivationMessage(f.origin, a.Job, a.Round, &d), d.Signature) {
		return fmt.Errorf("%w: derivation by %s on job %s round %d does not verify", ErrInvalid, a.Member, a.Job, a.Round)
	}
	if slices.ContainsFunc(r.Derivations, func(x Derivation) bool { return x.Member == a.Member }) {
		return fmt.Errorf("%w: member %s already derived job %s round %d", ErrStale, a.Member, a.Job, a.Round)
	}
	d.Signature = bytes.Clone(d.Signature)
	var differs []string
	for _, x := range r.Derivations {
		if x.Fail != "" || d.Fail != "" || x.LeafHash != d.LeafHash {
			differs = append(differs, x.Member)
		}
	}
	r.Derivations = append(r.Derivations, d)
	detail := "derived " + d.ModelHash.String()
	if d.Fail != "" {
		detail = "could not derive: " + d.Fail
	}
	ev(Event{Kind: EventRoundDerived, Job: a.Job, Round: a.Round, Member: a.Member, Detail: detail})
	if len(differs) > 0 {
		ev(Event{Kind: EventRoundDisputed, Job: a.Job, Round: a.Round, Member: a.Member,
			Detail: fmt.Sprintf("derivation differs from members %v", differs)})
	}
	return nil
}

// checkQuorum is close-round's check on a strong-form round: it carries
// a result leaf that a quorum of the registered members derived.
func (f *fsm) checkQuorum(r *Round, c *closeRoundCmd) error {
	if len(c.ResultLeaf) == 0 {
		return fmt.Errorf("%w: job %s round %d was sealed for attestation: close-round needs a result leaf", ErrInvalid, c.Job, c.Round)
	}
	h := Hash(sha256.Sum256(c.ResultLeaf))
	match := 0
	for i := range r.Derivations {
		if r.Derivations[i].matches(h) {
			match++
		}
	}
	members := f.keyedMembers()
	if q := audit.Quorum(members); match < q {
		return fmt.Errorf("%w: job %s round %d: %d of %d members derived this result, quorum is %d", ErrInvalid, c.Job, c.Round, match, members, q)
	}
	return nil
}

// ---- the member's side ----

type derivKey struct {
	job   string
	round uint64
}

type derivEntry struct {
	done chan struct{}
	d    derivation
}

// derivCache holds a member's recent derivations, so the leader's close
// and the attester (before and after the close) derive a round once.
type derivCache struct {
	mu    sync.Mutex
	m     map[derivKey]*derivEntry
	order []derivKey
	// since is when the leader started waiting for each round's quorum
	// (entries go when the round closes or fails; at most one per job).
	since map[derivKey]time.Time
}

// done reports whether round's derivation is complete.
func (dc *derivCache) done(job string, round uint64) bool {
	dc.mu.Lock()
	e := dc.m[derivKey{job, round}]
	dc.mu.Unlock()
	if e == nil {
		return false
	}
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// derive returns the derivation of t's round, computing it once for
// every caller (the first one computes, the others wait).
func (c *Coordinator) derive(t *attestTask) derivation {
	k := derivKey{t.job.Spec.ID, t.round.Number}
	dc := &c.derivs
	dc.mu.Lock()
	if dc.m == nil {
		dc.m = map[derivKey]*derivEntry{}
	}
	if e, ok := dc.m[k]; ok {
		dc.mu.Unlock()
		<-e.done
		dc.mu.Lock() // shed may have dropped its model since
		defer dc.mu.Unlock()
		return e.d
	}
	e := &derivEntry{done: make(chan struct{})}
	dc.m[k] = e
	dc.order = append(dc.order, k)
	if len(dc.order) > derivCacheSize {
		delete(dc.m, dc.order[0])
		dc.order = dc.order[1:]
	}
	dc.mu.Unlock()
	start := time.Now()
	var d derivation
	if useStreamDerive(t.job) {
		d = c.deriveStream(t.job, t.round, t.base) // derive_big.go
	} else {
		d = deriveRound(c.cfg.Origin, t.job, t.round, t.base, c.cfg.Rules, t.dpSecret,
			func(u Update) ([]float64, error) { return c.updateVector(t.job, t.round.Number, u) })
	}
	d.seconds = time.Since(start).Seconds()
	c.attestMetrics().seconds.Observe(d.seconds)
	e.d = d
	close(e.done)
	return d
}

// shed drops the model and aggregate of a round's cached derivation once
// its close is committed: what later callers compare (the leaf, the model
// hash, the result) stays, and a member no longer holds up to
// derivCacheSize models (200 MB each at d = 25,000,000).
func (dc *derivCache) shed(job string, round uint64) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	e := dc.m[derivKey{job, round}]
	if e == nil {
		return
	}
	select {
	case <-e.done:
		e.d.model, e.d.aggregate = nil, nil
	default: // still being derived: its caller needs the model
	}
}

// derivationOf signs this member's derivation d of t's round.
func (c *Coordinator) derivationOf(job string, round uint64, d derivation) *Attestation {
	x := &Derivation{Member: c.cfg.ID, Fail: d.fail}
	if d.fail == "" {
		x.LeafHash, x.ModelHash = Hash(sha256.Sum256(d.leaf)), d.result.ModelHash
	}
	if len(x.Fail) > maxDissentReason {
		x.Fail = x.Fail[:maxDissentReason]
	}
	x.Signature = ed25519.Sign(c.cfg.MemberKey, DerivationMessage(c.cfg.Origin, job, round, x))
	return &Attestation{Job: job, Round: round, Member: c.cfg.ID, Derived: x}
}

// derived reports whether this member's derivation of a round is
// recorded.
func derived(r *Round, member string) bool {
	return slices.ContainsFunc(r.Derivations, func(x Derivation) bool { return x.Member == member })
}

// submitDerivation is the attester's step for a sealed round: derive it
// and commit the signed result (unless already recorded, e.g. replayed
// after a restart).
func (c *Coordinator) submitDerivation(ctx context.Context, t *attestTask) {
	if r, err := c.fsm.round(t.job.Spec.ID, t.round.Number, false); err != nil || r.State != RoundClosing || derived(&r, c.cfg.ID) {
		return
	}
	d := c.derive(t)
	c.sendAttestation(ctx, c.derivationOf(t.job.Spec.ID, t.round.Number, d))
}

// quorumDerivation is the leader's close of a strong-form round: its own
// derivation once a quorum of members matched it (wait false, d ready
// to propose), a derivation whose fail says why the round must fail, or
// wait true while the quorum is pending (the engine comes back on the
// next tick or recorded derivation).
func (c *Coordinator) quorumDerivation(ctx context.Context, j Job, r Round, base Params) (d derivation, wait bool, err error) {
	job, round := j.Spec.ID, r.Number
	if !c.derivs.done(job, round) && len(r.Updates) > 0 && r.Updates[0].Sealed == nil && r.Updates[0].Body == nil && !useStreamDerive(j) {
		// Evicted since the caller looked: derive from the sealed bodies.
		if r, err = c.fsm.round(job, round, true); err != nil {
			return d, false, err
		}
	}
	d = c.derive(&attestTask{job: j, round: r, base: base, dpSecret: c.fsm.dpSecret(job), sealed: true})
	if d.fail != "" {
		return d, false, nil
	}
	if !derived(&r, c.cfg.ID) {
		err := c.SubmitAttestation(ctx, c.derivationOf(job, round, d))
		if errors.Is(err, ErrStale) {
			err = nil
		}
		return d, true, err
	}
	h := Hash(sha256.Sum256(d.leaf))
	var match int
	var differ []string
	for i := range r.Derivations {
		if r.Derivations[i].matches(h) {
			match++
		} else {
			differ = append(differ, r.Derivations[i].Member)
		}
	}
	members := c.fsm.keyedMemberCount()
	q := audit.Quorum(members)
	since := c.attestWaitSince(job, round)
	var reason string
	switch {
	case match >= q:
		c.attestWaitDone(job, round)
		return d, false, nil
	case len(differ) > members-q:
		reason = fmt.Sprintf("attestation: members %v derived a different result than leader %s (%d of %d matched, quorum %d)",
			differ, c.cfg.ID, match, members, q)
	case time.Since(since) > c.cfg.AttestTimeout:
		reason = fmt.Sprintf("attestation: %d of %d members matched leader %s within %v, quorum %d",
			match, members, c.cfg.ID, c.cfg.AttestTimeout, q)
	default:
		return d, true, nil
	}
	c.attestWaitDone(job, round)
	c.attestMetrics().mismatch.Inc()
	c.logger.Error("round not closed: no attestation quorum", slog.String("job", job), slog.Uint64("round", round),
		slog.String("model_hash", d.result.ModelHash.String()), slog.String("reason", reason))
	return derivation{fail: reason}, false, nil
}

// keyedMemberCount is keyedMembers under the read lock.
func (f *fsm) keyedMemberCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.keyedMembers()
}

// attestWaitSince returns when this leader started waiting for round's
// quorum (now, the first time); a new leader starts its own wait.
func (c *Coordinator) attestWaitSince(job string, round uint64) time.Time {
	c.derivs.mu.Lock()
	defer c.derivs.mu.Unlock()
	if c.derivs.since == nil {
		c.derivs.since = map[derivKey]time.Time{}
	}
	k := derivKey{job, round}
	t, ok := c.derivs.since[k]
	if !ok {
		for o := range c.derivs.since {
			if o.job == job { // an earlier round of the job ended elsewhere
				delete(c.derivs.since, o)
			}
		}
		t = time.Now()
		c.derivs.since[k] = t
	}
	return t
}

// resetAttestWaits forgets the waits of an earlier term (a member that
// leads again starts each wait anew).
func (c *Coordinator) resetAttestWaits() {
	c.derivs.mu.Lock()
	defer c.derivs.mu.Unlock()
	clear(c.derivs.since)
}

func (c *Coordinator) attestWaitDone(job string, round uint64) {
	c.derivs.mu.Lock()
	defer c.derivs.mu.Unlock()
	delete(c.derivs.since, derivKey{job, round})
}
