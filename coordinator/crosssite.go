package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// Cross-site evaluation (JobSpec.CrossSiteEval, docs/METRICS.md): once a
// job has completed, the leader announces its final model once more with
// the "eval" metadata set to "final", until the hard deadline of a round
// has passed since the last round ended. Each node evaluates that model on
// its held-out data and sends a signed crypto.EvalReport (protocol
// SubmitEval); SubmitEvalReport checks it and commits an eval-report
// command, and every replica records it on the job: one report per node
// and job, at most MaxSiteEvaluations per job.

// MaxSiteEvaluations bounds the cross-site reports recorded per job.
const MaxSiteEvaluations = 100_000

// SiteEvaluation is one node's signed evaluation of a job's final model.
type SiteEvaluation struct {
	Node         string    `json:"node"`
	ModelVersion uint64    `json:"model_version"`
	Accuracy     float64   `json:"accuracy"`
	Loss         float64   `json:"loss"`
	Samples      uint64    `json:"samples"`
	ReportedAt   time.Time `json:"reported_at"` // the node's clock, from the report
	LogIndex     uint64    `json:"log_index"`
	// Report and Signature are the signed crypto.EvalReport: anyone with
	// the node's key can check the values.
	Report    []byte `json:"report"`
	Signature []byte `json:"signature"`
}

// evalReportCmd records a node's cross-site evaluation report.
type evalReportCmd struct {
	Job       string    `json:"job"`
	Node      string    `json:"node"`
	Report    []byte    `json:"report"`
	Signature []byte    `json:"signature"`
	At        time.Time `json:"at"`
}

// checkEvalReport checks a signed report against the state: the node is
// enrolled and signed it, the job asked for cross-site evaluation, has
// completed, and the report is about its final model. It returns the
// parsed report, and the recorded evaluation when the node already
// reported (the same bytes: a retry).
func (f *fsm) checkEvalReport(report, sig []byte) (*crypto.EvalReport, *jobState, *SiteEvaluation, error) {
	r, err := crypto.ParseEvalReport(report)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: evaluation report: %v", ErrBadUpdate, err)
	}
	n, ok := f.nodes[r.NodeID]
	switch {
	case !ok:
		return nil, nil, nil, fmt.Errorf("%w: %s", ErrUnknownNode, r.NodeID)
	case n.Revoked:
		return nil, nil, nil, fmt.Errorf("%w: %s", ErrRevoked, r.NodeID)
	case r.Origin != f.origin:
		return nil, nil, nil, fmt.Errorf("%w: report origin %q, cluster is %q", ErrBadUpdate, r.Origin, f.origin)
	}
	if err := crypto.VerifyEvalReport(n.PublicKey, report, sig); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: evaluation report of %s: %v", ErrBadUpdate, r.NodeID, err)
	}
	j, ok := f.jobs[r.JobID]
	switch {
	case !ok:
		return nil, nil, nil, fmt.Errorf("%w: job %s", ErrNotFound, r.JobID)
	case !j.Job.Spec.CrossSiteEval:
		return nil, nil, nil, fmt.Errorf("%w: job %s does not ask for cross-site evaluation", ErrBadUpdate, r.JobID)
	case j.Job.State != JobCompleted:
		return nil, nil, nil, fmt.Errorf("%w: job %s is %s, not completed", ErrRoundClosed, r.JobID, j.Job.State)
	case r.ModelVersion != j.Job.ModelVersion || Hash(r.ModelHash) != j.Job.ModelHash:
		return nil, nil, nil, fmt.Errorf("%w: report on model v%d %x, job %s's final model is v%d %s", ErrBaseMismatch,
			r.ModelVersion, r.ModelHash[:8], r.JobID, j.Job.ModelVersion, j.Job.ModelHash)
	}
	for i := range j.CrossSite {
		if s := &j.CrossSite[i]; s.Node == r.NodeID {
			if bytes.Equal(s.Report, report) {
				return r, j, s, nil
			}
			return nil, nil, nil, fmt.Errorf("%w: node %s already reported on job %s", ErrDuplicate, r.NodeID, r.JobID)
		}
	}
	if len(j.CrossSite) >= MaxSiteEvaluations {
		return nil, nil, nil, fmt.Errorf("%w: job %s holds %d evaluation reports, the limit", ErrInvalid, r.JobID, MaxSiteEvaluations)
	}
	return r, j, nil, nil
}

// addEvalReport applies an eval-report command.
func (f *fsm) addEvalReport(index uint64, c *evalReportCmd, ev func(Event)) (Ack, error) {
	r, j, prev, err := f.checkEvalReport(c.Report, c.Signature)
	if err != nil {
		return Ack{}, err
	}
	if r.NodeID != c.Node || r.JobID != c.Job {
		return Ack{}, fmt.Errorf("%w: report does not match the entry (job %s node %s)", ErrBadUpdate, c.Job, c.Node)
	}
	if prev != nil {
		return Ack{Job: c.Job, Node: c.Node, LogIndex: prev.LogIndex}, nil
	}
	j.CrossSite = append(j.CrossSite, SiteEvaluation{Node: r.NodeID, ModelVersion: r.ModelVersion, Accuracy: r.Accuracy, Loss: r.Loss,
		Samples: r.Samples, ReportedAt: r.Time, LogIndex: index, Report: bytes.Clone(c.Report), Signature: bytes.Clone(c.Signature)})
	ev(Event{Kind: EventSiteEvaluated, Job: c.Job, Node: c.Node, At: c.At,
		Detail: fmt.Sprintf("accuracy %.4f on %d samples", r.Accuracy, r.Samples)})
	return Ack{Job: c.Job, Node: c.Node, LogIndex: index}, nil
}

// EventSiteEvaluated: a node's cross-site evaluation report was recorded.
const EventSiteEvaluated EventKind = "site_evaluated"

// crossSite returns a copy of job's recorded cross-site evaluations.
func (f *fsm) crossSite(job string) ([]SiteEvaluation, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[job]
	if !ok {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, job)
	}
	out := slices.Clone(j.CrossSite)
	for i := range out {
		out[i].Report, out[i].Signature = bytes.Clone(out[i].Report), bytes.Clone(out[i].Signature)
	}
	return out, nil
}

// CrossSite returns the cross-site evaluation reports of a job, in the
// order they were recorded (empty before the job completes or without
// cross_site_eval).
func (c *Coordinator) CrossSite(job string) ([]SiteEvaluation, error) { return c.fsm.crossSite(job) }

// SubmitEvalReport checks a node's signed evaluation report (peerKey, when
// set, must be the reporting node's key) and commits it through Raft;
// the Ack holds the entry's index. A retry of a recorded report gets the
// original Ack. Errors as Submit's.
func (c *Coordinator) SubmitEvalReport(ctx context.Context, peerKey ed25519.PublicKey, report, sig []byte) (Ack, error) {
	if len(report) > crypto.MaxEvalReportLen || len(sig) != ed25519.SignatureSize {
		return Ack{}, fmt.Errorf("%w: report of %d bytes (limit %d), signature of %d", ErrBadUpdate, len(report), crypto.MaxEvalReportLen, len(sig))
	}
	c.fsm.mu.RLock()
	r, _, prev, err := c.fsm.checkEvalReport(report, sig)
	var key ed25519.PublicKey
	if err == nil {
		key = c.fsm.nodes[r.NodeID].PublicKey
	}
	c.fsm.mu.RUnlock()
	if err != nil {
		return Ack{}, err
	}
	if peerKey != nil && !bytes.Equal(key, peerKey) {
		return Ack{}, fmt.Errorf("%w: report names node %s, the connection is another node's key", ErrBadUpdate, r.NodeID)
	}
	if prev != nil {
		return Ack{Job: r.JobID, Node: r.NodeID, LogIndex: prev.LogIndex}, nil
	}
	if err := c.awaitLeading(ctx); err != nil {
		return Ack{}, err
	}
	res, err := c.propose(ctx, cmdEvalReport, &evalReportCmd{Job: r.JobID, Node: r.NodeID, Report: report, Signature: sig, At: c.now()})
	if err != nil {
		return Ack{}, err
	}
	return res.ack, nil
}

// SubmitEval implements protocol.EvalHandler.
func (h *QUICHandler) SubmitEval(ctx context.Context, peer protocol.Peer, report, sig []byte) (*protocol.Ack, error) {
	ack, err := h.c.SubmitEvalReport(ctx, peer.Key, report, sig)
	if err != nil {
		return nil, ProtocolError(err)
	}
	return &protocol.Ack{LogIndex: ack.LogIndex}, nil
}

var _ protocol.EvalHandler = (*QUICHandler)(nil)

// crossSiteAnnouncement is the announcement of a completed job's final
// model for cross-site evaluation, while its window is open (ok false
// otherwise).
func (c *Coordinator) crossSiteAnnouncement(j Job, now time.Time) (Announcement, bool) {
	if !j.Spec.CrossSiteEval || j.State != JobCompleted {
		return Announcement{}, false
	}
	ended, ok := c.fsm.roundEnded(j.Spec.ID, j.Rounds)
	if !ok {
		return Announcement{}, false
	}
	end := ended.Add(j.Spec.hardDeadline())
	if !now.Before(end) {
		return Announcement{}, false
	}
	return Announcement{
		Job: j.Spec.ID, Round: j.Rounds + 1, Task: j.Spec.Task, Dim: j.Spec.Dim, Shape: j.Spec.Shape,
		BaseVersion: j.ModelVersion, BaseHash: j.ModelHash, Deadline: end, HardDeadline: end,
		Schema: j.Spec.Schema.Encode(), Eval: true,
	}, true
}

// crossSiteStep announces a completed job's final model for cross-site
// evaluation, once per leadership of this member (a new leader announces
// it with the open rounds, OpenRounds).
func (c *Coordinator) crossSiteStep(j Job) {
	a, ok := c.crossSiteAnnouncement(j, c.now())
	if !ok {
		return
	}
	if _, done := c.crossSiteAnnounced.LoadOrStore(j.Spec.ID, true); done {
		return
	}
	if an := c.announcer(); an != nil {
		c.logger.Info("cross-site evaluation announced", slog.String("job", j.Spec.ID), slog.Uint64("model_version", j.ModelVersion),
			slog.Time("until", a.Deadline))
		an.Announce(a)
	}
}

// crossSiteOpen returns the cross-site evaluation announcements whose
// window is open (for nodes that connect later).
func (c *Coordinator) crossSiteOpen() []Announcement {
	var out []Announcement
	now := c.now()
	for _, j := range c.fsm.jobList() {
		if a, ok := c.crossSiteAnnouncement(j, now); ok {
			out = append(out, a)
		}
	}
	return out
}

// roundEnded returns when round n of job ended.
func (f *fsm) roundEnded(job string, n uint64) (time.Time, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[job]
	if !ok {
		return time.Time{}, false
	}
	r := j.round(n)
	if r == nil || r.EndedAt.IsZero() {
		return time.Time{}, false
	}
	return r.EndedAt, true
}
