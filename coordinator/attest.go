package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/mfn/mfn/audit"
)

// Round attestation (issue 15), the weak form: the leader closes a round
// as before and records its result leaf (audit.ResultLeaf) in the same
// close-round entry; afterwards every member with a MemberKey re-derives
// the round from the sealed updates it held (handed over by Apply before
// they are dropped) off the apply path, and
//
//   - if its result leaf is byte-identical to the recorded one, cosigns
//     (audit.CosignCheckpoint) the newest checkpoint covering the leaf and
//     commits the line through Raft (cmdAttest); every replica adds it to
//     that checkpoint's note, so exports carry it for verify-log;
//   - otherwise records a signed dissent through Raft, logs an ERROR and
//     counts mfn_round_attestation_mismatch_total.
//
// In this weak form the model is committed before the attestations: a
// dissent is an alarm and a record, it does not undo the round. With
// Config.AttestQuorum (the strong form, attest_quorum.go) the round is
// closed only once a quorum of members derived the same result, and these
// cosignatures and dissents follow the close as here.

// attestQueue bounds the closed rounds waiting for this member's
// re-derivation; beyond it a round is left unattested (logged). Each
// queued round keeps its sealed updates in memory after its close, so
// the bound is small.
const attestQueue = 8

// attestCheckpointWait bounds how long a member waits for a checkpoint
// covering a result leaf before giving up on cosigning it.
const attestCheckpointWait = 2 * time.Minute

// maxDissentReason bounds a dissent's reason text (bytes), and
// maxCosignatureLine an attestation's cosignature line.
const (
	maxDissentReason   = 256
	maxCosignatureLine = 1024
)

// attestSendWait bounds how long a member keeps trying to deliver one
// attestation (a leader change in between is retried).
const attestSendWait = time.Minute

// Attestation is a member's verdict on a closed round: a cosignature line
// on the checkpoint of size Checkpoint, or a signed Dissent. It is both
// the cmdAttest body and what a follower sends to the leader.
type Attestation struct {
	Job    string `json:"job"`
	Round  uint64 `json:"round"`
	Member string `json:"member"`
	// Checkpoint is the size of the cosigned checkpoint (cosignatures only).
	Checkpoint uint64 `json:"checkpoint,omitempty"`
	// Cosignature is one note signature line (audit.CosignCheckpoint).
	Cosignature []byte   `json:"cosignature,omitempty"`
	Dissent     *Dissent `json:"dissent,omitempty"`
	// Derived is the member's derivation of a sealed round (the strong
	// form, attest_quorum.go); it comes alone.
	Derived *Derivation `json:"derived,omitempty"`
}

// Dissent records that a member re-derived a round and did not get the
// recorded result leaf. Signature is the member's Ed25519 signature over
// DissentMessage.
type Dissent struct {
	Member string `json:"member"`
	// ResultLeaf is the index of the disputed result leaf.
	ResultLeaf uint64 `json:"result_leaf"`
	// Recorded is the model hash the leaf records; Derived the member's
	// (zero when its pipeline failed).
	Recorded  Hash   `json:"recorded_model_hash"`
	Derived   Hash   `json:"derived_model_hash"`
	Reason    string `json:"reason"`
	Signature []byte `json:"signature"`
}

// DissentMessage is the text a member signs for a dissent:
//
//	mfn-dissent/v1
//	<origin>
//	<job>
//	<round>
//	<result leaf index>
//	<recorded model hash, hex>
//	<derived model hash, hex>
//	<reason>
func DissentMessage(origin, job string, round uint64, d *Dissent) []byte {
	var b bytes.Buffer
	b.WriteString("mfn-dissent/v1\n")
	for _, s := range []string{origin, job, strconv.FormatUint(round, 10), strconv.FormatUint(d.ResultLeaf, 10),
		hex.EncodeToString(d.Recorded[:]), hex.EncodeToString(d.Derived[:]), d.Reason} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// attestTask is a closed round as a member needs it to re-derive it.
type attestTask struct {
	job       Job
	round     Round // with the sealed bodies
	base      Params
	dpSecret  []byte
	leafIndex uint64
	leaf      []byte
	// sealed marks a sealed strong-form round (attest_quorum.go): the
	// member submits its derivation instead of attesting a result leaf.
	sealed bool
}

// newAttestTask captures, inside closeRound's apply and before endRound
// drops them, what re-deriving r needs (the slices are shared, never
// written again); nil when the base model is gone.
func (f *fsm) newAttestTask(j *jobState, r *Round, idx uint64, leaf []byte) *attestTask {
	if f.attest == nil || r.BaseVersion >= uint64(len(j.Models)) || j.Models[r.BaseVersion].Params == nil {
		return nil
	}
	rc := *r
	rc.Updates = slices.Clone(r.Updates)
	return &attestTask{job: copyJob(j.Job), round: rc, base: j.Models[r.BaseVersion].Params,
		dpSecret: slices.Clone(j.DPSecret), leafIndex: idx, leaf: bytes.Clone(leaf)}
}

// checkResultLeaf decodes a close-round's result leaf and checks it
// records this round as the command does: origin, job, round, base and
// new model hashes, and one entry per update in the round's order whose
// used flag matches the outcome.
func (f *fsm) checkResultLeaf(j *jobState, r *Round, c *closeRoundCmd) (*audit.ResultLeaf, error) {
	bad := func(why string, a ...any) error {
		return fmt.Errorf("%w: job %s round %d: result leaf: %s", ErrInvalid, c.Job, c.Round, fmt.Sprintf(why, a...))
	}
	res, err := audit.ParseResultLeaf(c.ResultLeaf)
	switch {
	case err != nil:
		return nil, bad("%v", err)
	case res.Origin != f.origin || res.JobID != c.Job || res.Round != c.Round:
		return nil, bad("names %s job %s round %d", res.Origin, res.JobID, res.Round)
	case Hash(res.BaseHash) != r.BaseHash || Hash(res.NewHash) != c.Result.ModelHash:
		return nil, bad("model hashes differ from the round's")
	case len(res.Entries) != len(r.Updates):
		return nil, bad("%d entries, round has %d updates", len(res.Entries), len(r.Updates))
	}
	for i, e := range res.Entries {
		if e.LeafIndex != r.Updates[i].LeafIndex || e.Used != c.Outcomes[i].Used {
			return nil, bad("entry %d does not match update %d", i, i)
		}
	}
	return res, nil
}

// applyAttestation records a member's cosignature or dissent on a closed
// round with a result leaf; one per member and round.
func (f *fsm) applyAttestation(a *Attestation, ev func(Event)) error {
	j, ok := f.jobs[a.Job]
	if !ok {
		return fmt.Errorf("%w: job %s", ErrNotFound, a.Job)
	}
	if a.Derived != nil {
		return f.applyDerivation(j, a, ev)
	}
	r := j.round(a.Round)
	if r == nil || r.State != RoundClosed || r.Result == nil || r.Result.ResultLeaf == nil {
		return fmt.Errorf("%w: job %s round %d has no result leaf to attest", ErrStale, a.Job, a.Round)
	}
	m, ok := f.members[a.Member]
	if !ok || len(m.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: attestation by %s, not a registered member with a key", ErrNotFound, a.Member)
	}
	if len(a.Cosignature) > maxCosignatureLine || (a.Dissent != nil && (len(a.Dissent.Reason) > maxDissentReason || len(a.Dissent.Signature) != ed25519.SignatureSize)) {
		return fmt.Errorf("%w: attestation by %s on job %s round %d exceeds its limits", ErrInvalid, a.Member, a.Job, a.Round)
	}
	if slices.Contains(r.Attested, a.Member) || slices.ContainsFunc(r.Dissents, func(d Dissent) bool { return d.Member == a.Member }) {
		return fmt.Errorf("%w: member %s already attested job %s round %d", ErrStale, a.Member, a.Job, a.Round)
	}
	leaf := *r.Result.ResultLeaf
	switch {
	case a.Dissent != nil && len(a.Cosignature) == 0:
		d := *a.Dissent
		if d.Member != a.Member || d.ResultLeaf != leaf || len(d.Reason) > maxDissentReason ||
			!ed25519.Verify(m.PublicKey, DissentMessage(f.origin, a.Job, a.Round, &d), d.Signature) {
			return fmt.Errorf("%w: dissent by %s on job %s round %d does not verify", ErrInvalid, a.Member, a.Job, a.Round)
		}
		d.Signature = bytes.Clone(d.Signature)
		r.Dissents = append(r.Dissents, d)
		ev(Event{Kind: EventRoundDisputed, Job: a.Job, Round: a.Round, Member: a.Member, Detail: d.Reason})
		return nil
	case a.Dissent == nil && len(a.Cosignature) > 0:
		if a.Checkpoint <= leaf {
			return fmt.Errorf("%w: checkpoint size %d does not cover result leaf %d", ErrInvalid, a.Checkpoint, leaf)
		}
		i := f.log.Checkpoints() - 1
		for ; i >= 0; i-- {
			_, cp, err := f.log.Checkpoint(i)
			if err != nil || cp.Size < a.Checkpoint {
				i = -1
				break
			}
			if cp.Size == a.Checkpoint {
				break
			}
		}
		if i < 0 {
			return fmt.Errorf("%w: no checkpoint of size %d", ErrInvalid, a.Checkpoint)
		}
		if err := f.log.Cosign(i, audit.MemberKeys{a.Member: ed25519.PublicKey(m.PublicKey)}, a.Cosignature); err != nil {
			return fmt.Errorf("%w: cosignature by %s on job %s round %d: %v", ErrInvalid, a.Member, a.Job, a.Round, err)
		}
		r.Attested = append(r.Attested, a.Member)
		ev(Event{Kind: EventRoundAttested, Job: a.Job, Round: a.Round, Member: a.Member, Detail: fmt.Sprintf("checkpoint size %d", a.Checkpoint)})
		return nil
	}
	return fmt.Errorf("%w: an attestation carries either a cosignature or a dissent", ErrInvalid)
}

// SubmitAttestation commits a member's attestation (the leader only; a
// *NotLeaderError otherwise). Errors wrap ErrStale for a round the member
// already attested and ErrInvalid for one that does not verify.
func (c *Coordinator) SubmitAttestation(ctx context.Context, a *Attestation) error {
	res, err := c.propose(ctx, cmdAttest, a)
	if err != nil {
		return err
	}
	return res.err
}

// enqueueAttest is the FSM's attest hook; it never blocks Apply. A task
// keeps its round's blob files pinned until it is attested or dropped.
func (c *Coordinator) enqueueAttest(t *attestTask) {
	select {
	case c.attestQ <- t:
	default:
		c.fsm.blobs.unpinTask(t) // the bodies it kept are not needed
		c.logger.Warn("attestation queue full, round left unattested",
			slog.String("job", t.job.Spec.ID), slog.Uint64("round", t.round.Number))
	}
}

// attester re-derives the closed rounds handed over by Apply, one at a
// time, until the member closes.
func (c *Coordinator) attester() {
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-c.stop:
			return
		case t := <-c.attestQ:
			c.attest(ctx, t)
			c.fsm.blobs.unpinTask(t) // its blob files may go now
			// Attested after the close: later callers compare hashes only.
			if !t.sealed {
				c.derivs.shed(t.job.Spec.ID, t.round.Number)
			}
		}
	}
}

// attested reports whether member has attested a round already (a
// restarted member replays closes it attested before).
func (c *Coordinator) attested(job string, round uint64) bool {
	r, err := c.fsm.round(job, round, false)
	return err == nil && (slices.Contains(r.Attested, c.cfg.ID) ||
		slices.ContainsFunc(r.Dissents, func(d Dissent) bool { return d.Member == c.cfg.ID }))
}

func (c *Coordinator) attest(ctx context.Context, t *attestTask) {
	job, round := t.job.Spec.ID, t.round.Number
	// A restarted member replays closes it attested before: wait (bounded)
	// until its state is current, so their attestations are applied.
	for wait := time.Now().Add(attestCheckpointWait); !c.CaughtUp() && time.Now().Before(wait); {
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.cfg.Tick):
		}
	}
	if t.sealed {
		c.submitDerivation(ctx, t)
		return
	}
	if c.attested(job, round) {
		return // also archived then (a restarted member replays its closes)
	}
	c.writeArchive(t) // before the sealed bodies go with the task
	d := c.derive(t)
	a := &Attestation{Job: job, Round: round, Member: c.cfg.ID}
	if d.fail == "" && bytes.Equal(d.leaf, t.leaf) {
		cp, err := c.waitCheckpoint(ctx, t.leafIndex)
		if err != nil {
			c.logger.Warn("round not attested", slog.String("job", job), slog.Uint64("round", round), errAttr(err))
			return
		}
		line, err := audit.CosignCheckpoint(cp.Note, c.cfg.LogVerifier, c.cfg.ID, c.cfg.MemberKey, c.cfg.Clock())
		if err != nil {
			c.logger.Warn("round not attested", slog.String("job", job), slog.Uint64("round", round), errAttr(err))
			return
		}
		a.Checkpoint, a.Cosignature = cp.Size, line
	} else {
		rec, _ := audit.ParseResultLeaf(t.leaf) // checked by Apply
		ds := &Dissent{Member: c.cfg.ID, ResultLeaf: t.leafIndex, Derived: d.result.ModelHash, Reason: d.fail}
		if rec != nil {
			ds.Recorded = Hash(rec.NewHash)
		}
		if ds.Reason == "" {
			ds.Reason = "re-derived result leaf differs from the recorded one"
			if ds.Derived != ds.Recorded {
				ds.Reason = "re-derived model hash differs from the recorded one"
			}
		}
		if len(ds.Reason) > maxDissentReason {
			ds.Reason = ds.Reason[:maxDissentReason]
		}
		ds.Signature = ed25519.Sign(c.cfg.MemberKey, DissentMessage(c.cfg.Origin, job, round, ds))
		a.Dissent = ds
		c.attestMetrics().mismatch.Inc()
		c.logger.Error("round attestation mismatch", slog.String("job", job), slog.Uint64("round", round),
			slog.Uint64("result_leaf", t.leafIndex), slog.String("recorded_model_hash", ds.Recorded.String()),
			slog.String("derived_model_hash", ds.Derived.String()), slog.String("reason", ds.Reason))
	}
	c.sendAttestation(ctx, a)
}

// waitCheckpoint returns the newest checkpoint once one covers leaf
// index idx, polling every Tick for at most attestCheckpointWait.
func (c *Coordinator) waitCheckpoint(ctx context.Context, idx uint64) (Checkpoint, error) {
	deadline := time.Now().Add(attestCheckpointWait)
	for {
		if cp, err := c.fsm.latestCheckpoint(); err == nil && cp.Size > idx {
			return cp, nil
		}
		if time.Now().After(deadline) {
			return Checkpoint{}, fmt.Errorf("no checkpoint covered result leaf %d within %v", idx, attestCheckpointWait)
		}
		select {
		case <-ctx.Done():
			return Checkpoint{}, ctx.Err()
		case <-time.After(c.cfg.Tick):
		}
	}
}

// sendAttestation commits a (as leader) or hands it to SendAttestation,
// retrying with backoff for at most attestSendWait while no leader takes
// it.
func (c *Coordinator) sendAttestation(ctx context.Context, a *Attestation) {
	wait := c.cfg.Tick
	for deadline := time.Now().Add(attestSendWait); time.Now().Before(deadline); {
		var err error
		switch {
		case c.IsLeader():
			err = c.SubmitAttestation(ctx, a)
		case c.cfg.SendAttestation != nil:
			err = c.cfg.SendAttestation(ctx, a)
		default:
			c.logger.Info("attestation not sent: no way to reach the leader", slog.String("job", a.Job), slog.Uint64("round", a.Round))
			return
		}
		if err == nil || errors.Is(err, ErrStale) {
			return
		}
		// ErrNotFound (this member not registered yet) is retried: the
		// leader registers members it learns in the background.
		if errors.Is(err, ErrInvalid) || errors.Is(err, ErrClosed) {
			c.logger.Warn("attestation refused", slog.String("job", a.Job), slog.Uint64("round", a.Round), errAttr(err))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
	c.logger.Warn("attestation not delivered", slog.String("job", a.Job), slog.Uint64("round", a.Round))
}

// MemberKeys returns the cosigning keys of the registered members (the
// members.keys of an export), by member id.
func (c *Coordinator) MemberKeys() audit.MemberKeys {
	out := audit.MemberKeys{}
	for _, m := range c.fsm.memberList() {
		if len(m.PublicKey) == ed25519.PublicKeySize {
			out[m.ID] = ed25519.PublicKey(m.PublicKey)
		}
	}
	return out
}

// ExportAudit writes this member's copy of the audit log to dir in
// export format 2 (audit.ExportDirWith): every leaf, every checkpoint
// with the members' cosignature lines, and members.keys from the
// registered members, for "mfn audit verify-log DIR".
func (c *Coordinator) ExportAudit(dir string) error {
	members := c.MemberKeys()
	// A copy, so that writing the files does not hold up Apply.
	c.fsm.mu.RLock()
	snap, err := c.fsm.log.Snapshot()
	c.fsm.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("coordinator: export audit log: %w", err)
	}
	l, err := audit.NewLog(c.cfg.Origin, c.cfg.LogVerifier)
	if err == nil {
		err = l.Restore(snap)
	}
	if err != nil {
		return fmt.Errorf("coordinator: export audit log: %w", err)
	}
	return audit.ExportDirWith(dir, l, audit.ExportOptions{Members: members})
}

// disputedRound returns the newest of a job's last two rounds that a
// majority of the registered members dissented on (0 if none) and their
// ids.
func (f *fsm) disputedRound(job string) (uint64, []string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[job]
	if !ok {
		return 0, nil
	}
	members := 0
	for _, m := range f.members {
		if len(m.PublicKey) == ed25519.PublicKeySize {
			members++
		}
	}
	for n := j.Job.Rounds; n > 0 && n+2 > j.Job.Rounds; n-- {
		r := j.round(n)
		if r == nil || len(r.Dissents) == 0 || len(r.Dissents) < audit.Quorum(members) {
			continue
		}
		ids := make([]string, len(r.Dissents))
		for i, d := range r.Dissents {
			ids[i] = d.Member
		}
		return n, ids
	}
	return 0, nil
}

// stopDisputed ends a running job whose recent round a majority of the
// members disputed: its model is not trained on further. The job fails
// with the round and the dissenting members as its reason.
func (c *Coordinator) stopDisputed(ctx context.Context, j Job) (bool, error) {
	n, ids := c.fsm.disputedRound(j.Spec.ID)
	if n == 0 {
		return false, nil
	}
	reason := fmt.Sprintf("round %d disputed: members %v re-derived a different result", n, ids)
	if _, err := c.propose(ctx, cmdStopJob, &stopJobCmd{ID: j.Spec.ID, Reason: reason, At: c.now(), Fail: true}); err != nil {
		return true, err
	}
	c.logger.Error("job stopped: a majority of members disputed a round", slog.String("job", j.Spec.ID), slog.Uint64("round", n), slog.Any("members", ids))
	return true, nil
}
