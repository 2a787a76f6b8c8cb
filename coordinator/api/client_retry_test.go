package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestClientRetriesUnavailable: a client WithRetries repeats a request
// answered 503 not_leader (honouring Retry-After) and succeeds when the
// member recovers; without retries, or for other errors, it fails at once.
func TestClientRetriesUnavailable(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	failFirst := int32(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.URL.Path == "/v1/jobs/forbidden" {
			writeJSON(w, http.StatusForbidden, ErrorBody{Error: ErrorDetail{Code: CodeForbidden, Message: "no", RequestID: "r"}})
			return
		}
		if n <= failFirst {
			w.Header().Set("Retry-After", "0")
			writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: ErrorDetail{Code: CodeNotLeader, Message: "leader has no address yet", RequestID: "r"}})
			return
		}
		writeJSON(w, http.StatusOK, JobList{})
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, _ := NewClient(srv.URL, keyReader, srv.Client())

	var e *Error
	if _, err := cl.Jobs(ctx); !errors.As(err, &e) || e.Code != CodeNotLeader || calls.Load() != 1 {
		t.Fatalf("without retries: %v after %d calls, want not_leader after 1", err, calls.Load())
	}
	calls.Store(0)
	if _, err := cl.WithRetries(5).Jobs(ctx); err != nil || calls.Load() != 3 {
		t.Fatalf("with retries: %v after %d calls, want success after 3", err, calls.Load())
	}
	calls.Store(0)
	if _, err := cl.WithRetries(1).Jobs(ctx); !errors.As(err, &e) || calls.Load() != 2 {
		t.Fatalf("one retry: %v after %d calls, want not_leader after 2", err, calls.Load())
	}
	calls.Store(100)
	if _, err := cl.WithRetries(5).Job(ctx, "forbidden"); !errors.As(err, &e) || e.Status != 403 || calls.Load() != 101 {
		t.Fatalf("403: %v after %d calls, want one call", err, calls.Load()-100)
	}
}
