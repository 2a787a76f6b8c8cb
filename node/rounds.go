package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/mfn/mfn/audit"
)

// Round outcomes, as CheckRounds reports them for a node's update.
const (
	OutcomeUsed     = "used"     // the rule used it
	OutcomeRejected = "rejected" // the rule received it and did not use it
	OutcomeNotInput = "not-input"
	// OutcomeMissing: the round's signed result does not list the update
	// the cluster acknowledged: an alarm.
	OutcomeMissing = "missing"
	// OutcomeNoResult: the round has no result leaf (failed, still
	// running, or closed without attestation).
	OutcomeNoResult = "no-result"
	// OutcomeUnverified: something did not verify or could not be
	// fetched; Error says what.
	OutcomeUnverified = "unverified"
)

// RoundSource is what CheckRounds asks the cluster; nothing it answers
// is trusted without a proof.
type RoundSource interface {
	// ResultLeaf returns the index of a round's result leaf, false when
	// the round has none (yet).
	ResultLeaf(ctx context.Context, job string, round uint64) (uint64, bool, error)
	// Bundle returns the proof bundle (audit.Bundle JSON) of a leaf.
	Bundle(ctx context.Context, leaf uint64) ([]byte, error)
}

// RoundCheck is what a node verified about one round it took part in.
type RoundCheck struct {
	Job   string `json:"job"`
	Round uint64 `json:"round"`
	// LeafIndex is the node's update leaf; ResultLeaf the round's result
	// leaf (when it has one).
	LeafIndex  uint64  `json:"leaf_index"`
	ResultLeaf *uint64 `json:"result_leaf,omitempty"`
	Outcome    string  `json:"outcome"`
	// Reason is the rule's (or the pipeline's) reason for an update not
	// used; Score its score when the rule gave one.
	Reason string   `json:"reason,omitempty"`
	Score  *float64 `json:"score,omitempty"`
	// Rule and NewModelHash are the result's; Checkpoint the size of the
	// signed checkpoint the result leaf was proven under.
	Rule         string `json:"rule,omitempty"`
	NewModelHash string `json:"new_model_hash,omitempty"`
	Checkpoint   uint64 `json:"checkpoint,omitempty"`
	Error        string `json:"error,omitempty"`
}

// CheckRounds verifies, for each acknowledged record of node, what the
// cluster did with its update. For each it fetches its own update leaf's
// bundle and checks it under a checkpoint signed by the log key
// (verifier), names node and carries the record's update hash; then the
// round's result leaf's bundle, checked the same way (audit.
// VerifyResultBundle; with members, a majority of them must have
// cosigned the checkpoint), naming the record's job and round; and reads
// the entry of its update leaf there. A record that does not verify gets
// OutcomeUnverified with the error; duplicate records (leaf unknown) are
// skipped. ctx ends the checks early (the rest are not reported).
func CheckRounds(ctx context.Context, node string, recs []Record, src RoundSource, verifier note.Verifier, members audit.MemberKeys) []RoundCheck {
	var out []RoundCheck
	for _, r := range recs {
		if ctx.Err() != nil {
			break
		}
		if r.Duplicate {
			continue
		}
		c := RoundCheck{Job: r.Job, Round: r.Round, LeafIndex: r.LeafIndex}
		if err := checkRound(ctx, node, r, src, verifier, members, &c); err != nil {
			c.Outcome, c.Error = OutcomeUnverified, err.Error()
		}
		out = append(out, c)
	}
	return out
}

func checkRound(ctx context.Context, node string, r Record, src RoundSource, verifier note.Verifier, members audit.MemberKeys, c *RoundCheck) error {
	// The update leaf: this node's update, under a signed checkpoint.
	b, err := fetchBundle(ctx, src, r.LeafIndex)
	if err != nil {
		return err
	}
	rep, err := audit.VerifyBundle(b, verifier, nil)
	if err != nil {
		return err
	}
	if l := rep.Leaf; l.NodeID != node || l.JobID != r.Job || l.Round != r.Round || hex.EncodeToString(l.UpdateHash[:]) != r.UpdateHash {
		return fmt.Errorf("update leaf %d is not this node's update of job %s round %d", r.LeafIndex, r.Job, r.Round)
	}
	idx, ok, err := src.ResultLeaf(ctx, r.Job, r.Round)
	if err != nil {
		return err
	}
	if !ok {
		c.Outcome = OutcomeNoResult
		return nil
	}
	c.ResultLeaf = &idx
	rb, err := fetchBundle(ctx, src, idx)
	if err != nil {
		return err
	}
	res, cp, err := audit.VerifyResultBundle(rb, verifier, members)
	if err != nil {
		return err
	}
	if res.JobID != r.Job || res.Round != r.Round || rb.LeafIndex != idx {
		return fmt.Errorf("leaf %d is the result of job %s round %d, not of job %s round %d", idx, res.JobID, res.Round, r.Job, r.Round)
	}
	c.Rule, c.NewModelHash, c.Checkpoint = res.Rule, hex.EncodeToString(res.NewHash[:]), cp.Size
	c.Outcome = OutcomeMissing
	for _, e := range res.Entries {
		if e.LeafIndex != r.LeafIndex {
			continue
		}
		switch {
		case e.Used:
			c.Outcome = OutcomeUsed
		case e.Input:
			c.Outcome, c.Reason = OutcomeRejected, e.Reason
		default:
			c.Outcome, c.Reason = OutcomeNotInput, e.Reason
		}
		if e.Score != nil {
			s := *e.Score
			c.Score = &s
		}
	}
	return nil
}

func fetchBundle(ctx context.Context, src RoundSource, leaf uint64) (*audit.Bundle, error) {
	data, err := src.Bundle(ctx, leaf)
	if err != nil {
		return nil, fmt.Errorf("bundle of leaf %d: %w", leaf, err)
	}
	b, err := audit.ParseBundle(data)
	if err != nil {
		return nil, fmt.Errorf("bundle of leaf %d: %w", leaf, err)
	}
	if b.LeafIndex != leaf {
		return nil, errors.New("bundle of another leaf")
	}
	return b, nil
}
