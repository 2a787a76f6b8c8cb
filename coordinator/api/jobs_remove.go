package api

import (
	"context"
	"net/http"

	"github.com/mfn/mfn/coordinator"
)

// JobRemover is an optional ability of a Coordinator: archiving a job
// (its models' parameters freed on every member) and deleting it. Without
// it, POST /v1/jobs/{id}/archive and DELETE /v1/jobs/{id} answer 404.
type JobRemover interface {
	ArchiveJob(ctx context.Context, id, reason string) error
	DeleteJob(ctx context.Context, id, reason string) error
}

var _ JobRemover = (*coordinator.Coordinator)(nil)

func (s *server) jobRemove(archive bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, body []byte) error {
		jr, ok := s.c.(JobRemover)
		if !ok {
			return errorf(http.StatusNotFound, CodeNotFound, "this member cannot archive or delete jobs")
		}
		var req StopRequest
		if len(body) > 0 {
			if err := decodeBody(body, &req); err != nil {
				return err
			}
		}
		by := infoFrom(r.Context()).ident.Name
		id := r.PathValue("id")
		if !archive {
			if req.Reason == "" {
				req.Reason = "deleted by " + by
			}
			if err := jr.DeleteJob(r.Context(), id, req.Reason); err != nil {
				return err
			}
			infoFrom(r.Context()).log.Info("job deleted", "job", id, "reason", req.Reason)
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		if req.Reason == "" {
			req.Reason = "archived by " + by
		}
		if err := jr.ArchiveJob(r.Context(), id, req.Reason); err != nil {
			return err
		}
		j, err := s.c.GetJob(id)
		if err != nil {
			return err
		}
		j.Spec.InitialModel = nil
		infoFrom(r.Context()).log.Info("job archived", "job", id, "reason", req.Reason)
		writeJSON(w, http.StatusOK, j)
		return nil
	}
}

// ArchiveJob archives a job (operator): it ends, and its models'
// parameters are freed; the job, its rounds and model hashes stay.
func (c *Client) ArchiveJob(ctx context.Context, id, reason string) (coordinator.Job, error) {
	var j coordinator.Job
	var in any
	if reason != "" {
		in = StopRequest{Reason: reason}
	}
	err := c.call(ctx, http.MethodPost, "/v1/jobs/"+esc(id)+"/archive", nil, in, &j)
	return j, err
}

// DeleteJob deletes a job (operator): it ends and leaves the state; its
// audit leaves stay and its id cannot be reused.
func (c *Client) DeleteJob(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/v1/jobs/"+esc(id), nil, nil, nil)
}
