package api

import (
	"cmp"
	"crypto/ed25519"
	"encoding/binary"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/crypto"
)

// pathUint parses a non-negative decimal path parameter.
func pathUint(r *http.Request, name string) (uint64, error) {
	s := r.PathValue(name)
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, CodeBadRequest, "%s %q: want a non-negative integer", name, clip(s))
	}
	return v, nil
}

// queryUint parses a required non-negative decimal query parameter.
func queryUint(r *http.Request, name string) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, errorf(http.StatusBadRequest, CodeBadRequest, "query parameter %s is required", name)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, CodeBadRequest, "query parameter %s=%q: want a non-negative integer", name, clip(s))
	}
	return v, nil
}

// ---- health ----

func (s *server) healthz(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	writeJSON(w, http.StatusOK, Health{Status: "ok"})
	return nil
}

func (s *server) readyz(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	if !s.c.Ready() {
		e := errorf(http.StatusServiceUnavailable, CodeUnavailable, "not ready: not a member of a cluster with a known leader")
		return e
	}
	rd := Readiness{Ready: true}
	if m, ok := s.c.Leader(); ok {
		rd.Leader = m.ID
	}
	if s.c.IsLeader() {
		rd.State = "Leader"
	} else {
		rd.State = "Follower"
	}
	writeJSON(w, http.StatusOK, rd)
	return nil
}

// ---- cluster ----

func (s *server) clusterStatus(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	st := s.c.Status()
	if st.Members == nil {
		st.Members = []coordinator.MemberStatus{}
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *server) clusterJoin(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req JoinRequest
	if err := decodeBody(body, &req); err != nil {
		return err
	}
	if req.ID == "" || req.RaftAddr == "" || len(req.PublicKey) == 0 {
		return errorf(http.StatusBadRequest, CodeInvalid, "id, raft_addr and public_key are required")
	}
	m := coordinator.Member{ID: req.ID, RaftAddr: req.RaftAddr, QUICAddr: req.QUICAddr, HTTPAddr: req.HTTPAddr,
		PublicKey: []byte(req.PublicKey)}
	if err := s.c.AddVoter(r.Context(), m); err != nil {
		return err
	}
	infoFrom(r.Context()).log.Info("member joined", "member", m.ID, "raft_addr", m.RaftAddr)
	st := s.c.Status()
	if st.Members == nil {
		st.Members = []coordinator.MemberStatus{}
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *server) clusterRemove(w http.ResponseWriter, r *http.Request, _ []byte) error {
	id := r.PathValue("id")
	// The leader's view of the Raft configuration (Status lists every
	// server in it) says whether there is anything to remove; removing
	// an unknown id would otherwise succeed as a no-op and hide a typo.
	known := false
	for _, m := range s.c.Status().Members {
		if m.ID == id {
			known = true
			break
		}
	}
	if !known {
		return errorf(http.StatusNotFound, CodeNotFound, "member %s is not in the cluster", clip(id))
	}
	if err := s.c.RemoveServer(r.Context(), id); err != nil {
		return err
	}
	infoFrom(r.Context()).log.Info("member removed", "member", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- nodes ----

func (s *server) findNode(id string) (Node, error) {
	for _, n := range s.c.ListNodes() {
		if n.ID == id {
			return nodeView(n), nil
		}
	}
	return Node{}, errorf(http.StatusNotFound, CodeNotFound, "node %s not found", clip(id))
}

func (s *server) nodesList(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	ns := s.c.ListNodes()
	out := NodeList{Nodes: make([]Node, 0, len(ns))}
	for _, n := range ns {
		out.Nodes = append(out.Nodes, nodeView(n))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) nodeGet(w http.ResponseWriter, r *http.Request, _ []byte) error {
	n, err := s.findNode(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

func (s *server) nodeEnroll(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req EnrollRequest
	if err := decodeBody(body, &req); err != nil {
		return err
	}
	if req.ID == "" || len(req.PublicKey) == 0 {
		return errorf(http.StatusBadRequest, CodeInvalid, "id and public_key are required")
	}
	if err := s.c.EnrollNode(r.Context(), req.ID, ed25519.PublicKey(req.PublicKey)); err != nil {
		return err
	}
	n, err := s.findNode(req.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, n)
	return nil
}

func (s *server) nodeRevoke(w http.ResponseWriter, r *http.Request, body []byte) error {
	if len(body) > 0 {
		var empty struct{}
		if err := decodeBody(body, &empty); err != nil {
			return err
		}
	}
	id := r.PathValue("id")
	if err := s.c.RevokeNode(r.Context(), id); err != nil {
		return err
	}
	n, err := s.findNode(id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

// ---- jobs and rounds ----

func (s *server) jobsList(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	js := s.c.ListJobs()
	if js == nil {
		js = []coordinator.Job{}
	}
	for i := range js {
		js[i].Spec.InitialModel = nil
	}
	writeJSON(w, http.StatusOK, JobList{Jobs: js})
	return nil
}

func (s *server) jobCreate(w http.ResponseWriter, r *http.Request, body []byte) error {
	var spec coordinator.JobSpec
	if err := decodeBody(body, &spec); err != nil {
		return err
	}
	j, err := s.c.CreateJob(r.Context(), spec)
	if err != nil {
		return err
	}
	j.Spec.InitialModel = nil
	infoFrom(r.Context()).log.Info("job created", "job", j.Spec.ID, "rule", j.Spec.Rule.Name)
	w.Header().Set("Location", "/v1/jobs/"+j.Spec.ID)
	writeJSON(w, http.StatusCreated, j)
	return nil
}

func (s *server) jobGet(w http.ResponseWriter, r *http.Request, _ []byte) error {
	j, err := s.c.GetJob(r.PathValue("id"))
	if err != nil {
		return err
	}
	j.Spec.InitialModel = nil
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (s *server) jobStop(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req StopRequest
	if len(body) > 0 {
		if err := decodeBody(body, &req); err != nil {
			return err
		}
	}
	if req.Reason == "" {
		req.Reason = "stopped by " + infoFrom(r.Context()).ident.Name
	}
	id := r.PathValue("id")
	if err := s.c.StopJob(r.Context(), id, req.Reason); err != nil {
		return err
	}
	j, err := s.c.GetJob(id)
	if err != nil {
		return err
	}
	j.Spec.InitialModel = nil
	infoFrom(r.Context()).log.Info("job stopped", "job", id, "reason", clip(req.Reason))
	writeJSON(w, http.StatusOK, j)
	return nil
}

// stripSealed drops sealed envelopes from a round's view: they are large
// and readable only by the coordinators.
func stripSealed(rd *coordinator.Round) {
	if rd.Updates == nil {
		rd.Updates = []coordinator.Update{}
	}
	for i := range rd.Updates {
		rd.Updates[i].Sealed = nil
	}
}

// pageQuery reads a paged list's after (default 0) and limit (default
// def, 1 to maxLimit; 400 naming the parameter otherwise).
func pageQuery(r *http.Request, def, maxLimit uint64) (after, limit uint64, err error) {
	q := r.URL.Query()
	limit = def
	if q.Has("after") {
		if after, err = queryUint(r, "after"); err != nil {
			return 0, 0, err
		}
	}
	if q.Has("limit") {
		if limit, err = queryUint(r, "limit"); err != nil {
			return 0, 0, err
		}
		if limit < 1 || limit > maxLimit {
			return 0, 0, errorf(http.StatusBadRequest, CodeBadRequest, "query parameter limit=%d: want 1 to %d", limit, maxLimit)
		}
	}
	return after, limit, nil
}

// roundsList serves one page of a job's rounds: those numbered above the
// after parameter (default 0), at most limit of them (default
// DefaultRoundsPage, at most MaxRoundsPage), in increasing number.
func (s *server) roundsList(w http.ResponseWriter, r *http.Request, _ []byte) error {
	after, limit, err := pageQuery(r, DefaultRoundsPage, MaxRoundsPage)
	if err != nil {
		return err
	}
	rs, err := s.c.ListRounds(r.PathValue("id"))
	if err != nil {
		return err
	}
	slices.SortFunc(rs, func(a, b coordinator.Round) int { return cmp.Compare(a.Number, b.Number) })
	start, _ := slices.BinarySearchFunc(rs, after+1, func(rd coordinator.Round, n uint64) int { return cmp.Compare(rd.Number, n) })
	if after == math.MaxUint64 {
		start = len(rs)
	}
	page := rs[start:]
	out := RoundList{}
	if uint64(len(page)) > limit {
		page = page[:limit]
		next := page[len(page)-1].Number
		out.NextAfter = &next
	}
	out.Rounds = slices.Clone(page)
	if out.Rounds == nil {
		out.Rounds = []coordinator.Round{}
	}
	for i := range out.Rounds {
		stripSealed(&out.Rounds[i])
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) roundGet(w http.ResponseWriter, r *http.Request, _ []byte) error {
	n, err := pathUint(r, "round")
	if err != nil {
		return err
	}
	rd, err := s.c.GetRound(r.PathValue("id"), n)
	if err != nil {
		return err
	}
	stripSealed(&rd)
	writeJSON(w, http.StatusOK, rd)
	return nil
}

// ---- models ----

// model returns the model the {id} and {version} path parameters name;
// version is a number or "latest".
func (s *server) model(r *http.Request) (coordinator.Model, error) {
	job := r.PathValue("id")
	if r.PathValue("version") == "latest" {
		return s.c.LatestModel(job)
	}
	v, err := pathUint(r, "version")
	if err != nil {
		return coordinator.Model{}, err
	}
	return s.c.Model(job, v)
}

func (s *server) modelGet(w http.ResponseWriter, r *http.Request, _ []byte) error {
	m, err := s.model(r)
	pruned := false
	if err != nil {
		if !isPruned(err) || m.Job == "" {
			return err
		}
		pruned = true
	}
	info := ModelInfo{Job: m.Job, Version: m.Version, Hash: m.Hash, Round: m.Round, Dim: len(m.Params), Pruned: pruned}
	if pruned {
		if j, err := s.c.GetJob(m.Job); err == nil {
			info.Dim = j.Spec.Dim
		}
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// Model parameter download formats (query parameter format).
const (
	// FormatFloat64 is the raw little-endian IEEE-754 float64 values,
	// 8 × dim bytes (the default).
	FormatFloat64 = "float64"
	// FormatUpdate is crypto's update encoding (header with dtype and
	// length, then the values), whose SHA-256 is the model hash.
	FormatUpdate = "update"
)

func (s *server) modelParams(w http.ResponseWriter, r *http.Request, _ []byte) error {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = FormatFloat64
	}
	if format != FormatFloat64 && format != FormatUpdate {
		return errorf(http.StatusBadRequest, CodeBadRequest, "format %q: want %s or %s", clip(format), FormatFloat64, FormatUpdate)
	}
	m, err := s.model(r)
	if err != nil {
		return err
	}
	// The values are encoded while written, a chunk at a time, so a
	// download costs one small buffer rather than a second copy of the
	// model.
	var header []byte
	if format == FormatUpdate {
		// crypto's update header: magic, version, dtype, then the value
		// count (little-endian uint64 at byte 6).
		header = coordinator.ModelBytes(nil)
		binary.LittleEndian.PutUint64(header[6:crypto.UpdateHeaderLen], uint64(len(m.Params)))
	}
	size := int64(len(header)) + 8*int64(len(m.Params))
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("X-MFN-Model-Hash", m.Hash.String())
	h.Set("X-MFN-Model-Version", strconv.FormatUint(m.Version, 10))
	h.Set("X-MFN-Model-Format", format)
	h.Set("Content-Disposition", "attachment; filename="+strconv.Quote(m.Job+"-v"+strconv.FormatUint(m.Version, 10)+"."+format))
	// The server's WriteTimeout is sized for JSON answers; a model gets
	// its own deadline (and the read side the same, so that the read
	// timeout passing does not cancel the request meanwhile).
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(s.cfg.DownloadTimeout)
	_ = rc.SetWriteDeadline(deadline)
	_ = rc.SetReadDeadline(deadline)
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(header); err != nil {
		return nil
	}
	buf := make([]byte, 0, downloadChunk)
	for i, v := range m.Params {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
		if len(buf) == cap(buf) || i == len(m.Params)-1 {
			if _, err := w.Write(buf); err != nil {
				// The client went away or missed the deadline; the
				// status is sent, so there is nothing more to say.
				infoFrom(r.Context()).log.Info("model download cut short", "job", m.Job, "version", m.Version, "error", err.Error())
				return nil
			}
			buf = buf[:0]
		}
	}
	return nil
}

// downloadChunk is the buffer a model download encodes into (8,192 values).
const downloadChunk = 64 << 10

func isPruned(err error) bool {
	e := classify(err)
	return e.code == CodeGone
}
