package api

import (
	"net/http"
	"strconv"

	"github.com/mfn/mfn/coordinator"
)

func checkpointView(cp coordinator.Checkpoint) Checkpoint {
	return Checkpoint{Size: cp.Size, Root: cp.Root, Note: string(cp.Note)}
}

// auditCheckpoint serves the newest signed checkpoint: the note verbatim
// as text/plain (what "mfn audit verify-log --since" reads), or with
// ?format=json a Checkpoint.
func (s *server) auditCheckpoint(w http.ResponseWriter, r *http.Request, _ []byte) error {
	cp, err := s.c.LatestCheckpoint()
	if err != nil {
		return err
	}
	switch r.URL.Query().Get("format") {
	case "json":
		writeJSON(w, http.StatusOK, checkpointView(cp))
	case "", "note":
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(cp.Note)))
		h.Set("X-MFN-Checkpoint-Size", strconv.FormatUint(cp.Size, 10))
		h.Set("X-MFN-Checkpoint-Root", cp.Root.String())
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(cp.Note)
	default:
		return errorf(http.StatusBadRequest, CodeBadRequest, "format %q: want note or json", r.URL.Query().Get("format"))
	}
	return nil
}

func (s *server) auditCheckpoints(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	out := CheckpointList{Checkpoints: []Checkpoint{}}
	if l, ok := s.c.(CheckpointLister); ok {
		cps, err := l.Checkpoints()
		if err != nil {
			return err
		}
		for _, cp := range cps {
			out.Checkpoints = append(out.Checkpoints, checkpointView(cp))
		}
		out.Complete = true
	} else {
		cp, err := s.c.LatestCheckpoint()
		if err != nil {
			return err
		}
		out.Checkpoints = append(out.Checkpoints, checkpointView(cp))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// auditBundle serves the proof bundle of a leaf in audit.Bundle's JSON
// form, byte for byte what "mfn audit verify --bundle" reads.
func (s *server) auditBundle(w http.ResponseWriter, r *http.Request, _ []byte) error {
	leaf, err := pathUint(r, "leaf")
	if err != nil {
		return err
	}
	b, err := s.c.Bundle(leaf)
	if err != nil {
		return err
	}
	data, err := b.Marshal()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
	return nil
}

func (s *server) auditConsistency(w http.ResponseWriter, r *http.Request, _ []byte) error {
	from, err := queryUint(r, "from")
	if err != nil {
		return err
	}
	to, err := queryUint(r, "to")
	if err != nil {
		return err
	}
	if from > to {
		return errorf(http.StatusBadRequest, CodeBadRequest, "from %d is larger than to %d", from, to)
	}
	if size := s.c.AuditSize(); to > size {
		return errorf(http.StatusNotFound, CodeNotFound, "to %d is beyond the log's size %d", to, size)
	}
	p, err := s.c.Consistency(from, to)
	if err != nil {
		return err
	}
	if p == nil {
		p = [][]byte{}
	}
	writeJSON(w, http.StatusOK, ConsistencyProof{From: from, To: to, Proof: p})
	return nil
}

// auditLeaves serves encoded leaves [start, end): end defaults to the
// log's size and is capped at start+MaxLeavesPage.
func (s *server) auditLeaves(w http.ResponseWriter, r *http.Request, _ []byte) error {
	size := s.c.AuditSize()
	var start, end uint64
	var err error
	if r.URL.Query().Get("start") != "" {
		if start, err = queryUint(r, "start"); err != nil {
			return err
		}
	}
	end = size
	if r.URL.Query().Get("end") != "" {
		if end, err = queryUint(r, "end"); err != nil {
			return err
		}
	}
	if start > end {
		return errorf(http.StatusBadRequest, CodeBadRequest, "start %d is larger than end %d", start, end)
	}
	if end > size {
		return errorf(http.StatusNotFound, CodeNotFound, "end %d is beyond the log's size %d", end, size)
	}
	end = min(end, start+MaxLeavesPage)
	page := LeafPage{Start: start, Size: size, Leaves: make([][]byte, 0, end-start)}
	for i := start; i < end; i++ {
		l, err := s.c.Leaf(i)
		if err != nil {
			return err
		}
		page.Leaves = append(page.Leaves, l)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// auditLeaf serves one encoded leaf as application/octet-stream.
func (s *server) auditLeaf(w http.ResponseWriter, r *http.Request, _ []byte) error {
	i, err := pathUint(r, "index")
	if err != nil {
		return err
	}
	l, err := s.c.Leaf(i)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(l)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(l)
	return nil
}
