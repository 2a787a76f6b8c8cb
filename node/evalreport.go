package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/protocol"
)

// EventEvaluated: the node's cross-site evaluation of a job's final model
// was recorded (Result acked or duplicate; LocalAccuracy is the accuracy).
const EventEvaluated EventKind = "evaluated"

// crossSiteEval answers the announcement of a completed job's final model
// ("eval" metadata "final"): it fetches the model, evaluates it on the
// node's held-out split and sends the signed report (crypto.EvalReport,
// protocol SubmitEval). Once per job and run; a node without held-out
// data, or whose data do not fit the job, reports nothing. Connection
// errors are returned (the agent reconnects; the leader announces the
// evaluation again to nodes that connect while its window is open).
func (a *Agent) crossSiteEval(ctx context.Context, c *protocol.Client, addr, origin string, ann *protocol.RoundAnnouncement, log *slog.Logger) error {
	job := ann.JobID
	skip := func(reason string, err error) error {
		log.Info("cross-site evaluation skipped", "reason", reason, "err", err)
		a.emit(Event{Kind: EventSkipped, Job: job, Round: ann.Round, Addr: addr, Result: reason, Err: err})
		return nil
	}
	a.mu.Lock()
	done := a.evaluated[job]
	a.mu.Unlock()
	if done {
		return nil
	}
	if err := a.cfg.Data.acceptsTask(ann.Metadata["task"]); err != nil {
		return skip("task mismatch", err)
	}
	if err := a.checkSchema(ctx, ann.Metadata); err != nil {
		return skip("schema mismatch", err)
	}
	hold := a.heldOut()
	if hold == nil || hold.Len() == 0 {
		return skip("no held-out data", nil)
	}
	dim := 0
	if v, err := strconv.Atoi(ann.Metadata["dim"]); err == nil && v > 0 {
		dim = v
	}
	raw, err := c.FetchModel(ctx, job, ann.BaseVersion, ann.BaseHash)
	if err != nil {
		if isConnErr(err) {
			return err
		}
		return skip("cannot fetch the final model", err)
	}
	params, err := crypto.DecodeUpdate(raw, dim)
	if err != nil {
		return skip("cannot decode the final model", err)
	}
	arch, err := a.jobArch(ann.Metadata, len(params))
	if err != nil {
		return skip("cannot evaluate", err)
	}
	m, err := learn.NewModel(arch, newRand(0, 0))
	if err != nil {
		return skip("cannot evaluate", err)
	}
	copy(m.Params(), params)
	ev, err := Evaluate(m, hold)
	if err != nil {
		return skip("cannot evaluate", err)
	}
	r := &crypto.EvalReport{Origin: origin, JobID: job, NodeID: a.nodeID, ModelVersion: ann.BaseVersion, ModelHash: ann.BaseHash,
		Accuracy: ev.Accuracy, Loss: ev.Loss, Samples: uint64(ev.Samples), Time: a.cfg.Clock().UTC()}
	b, err := r.MarshalBinary()
	if err != nil {
		return skip("cannot sign", err)
	}
	_, err = c.SubmitEval(ctx, b, crypto.SignEvalReport(a.id.SigningKey, b))
	result := ResultAcked
	switch {
	case errors.Is(err, protocol.CodeDuplicate):
		result = ResultDuplicate
	case err != nil && (errors.Is(err, protocol.CodeNotLeader) || isConnErr(err)):
		return fmt.Errorf("cross-site evaluation of %s: %w", job, err)
	case err != nil:
		return skip("report refused", err)
	}
	a.mu.Lock()
	if a.evaluated == nil {
		a.evaluated = map[string]bool{}
	}
	a.evaluated[job] = true
	a.mu.Unlock()
	log.Info("cross-site evaluation reported", "result", result, "model_version", ann.BaseVersion,
		"accuracy", ev.Accuracy, "loss", ev.Loss, "samples", ev.Samples)
	a.emit(Event{Kind: EventEvaluated, Job: job, Round: ann.Round, Addr: addr, Result: result, LocalAccuracy: ev.Accuracy})
	return nil
}

// heldOut is the agent's held-out split (nil without one).
func (a *Agent) heldOut() *learn.Dataset {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hold
}
