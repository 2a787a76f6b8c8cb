package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/sim"
)

// Error codes of the error body. Clients branch on the code, not on the
// message.
const (
	CodeBadRequest        = "bad_request"            // 400: a malformed parameter or body
	CodeInvalid           = "invalid"                // 400: a well-formed request the cluster rejects (bad spec, key, …)
	CodeUnauthorized      = "unauthorized"           // 401: missing or unknown X-API-Key
	CodeForbidden         = "forbidden"              // 403: the key's role may not do this
	CodeNotFound          = "not_found"              // 404: no such route or resource
	CodeMethodNotAllowed  = "method_not_allowed"     // 405: the route exists for other methods (see Allow)
	CodeRequestTimeout    = "request_timeout"        // 408: the request body did not arrive in time
	CodeConflict          = "conflict"               // 409: exists with other content, or a stale command
	CodeGone              = "gone"                   // 410: model parameters pruned
	CodeTooLarge          = "body_too_large"         // 413: body over the limit
	CodeUpgradeRequired   = "upgrade_required"       // 426: /v1/events without a WebSocket upgrade
	CodeUnsupportedMedia  = "unsupported_media_type" // 415: body is not application/json
	CodeRateLimited       = "rate_limited"           // 429: see Retry-After
	CodeInternal          = "internal"               // 500
	CodeLeaderUnreachable = "leader_unreachable"     // 502: forwarding to the leader failed
	CodeNotLeader         = "not_leader"             // 503: no leader known, or already forwarded once
	CodeUnavailable       = "unavailable"            // 503: shutting down, not ready, or busy
	CodeTimeout           = "timeout"                // 504: the cluster did not answer in time
)

// ErrorBody is the JSON of every error response:
//
//	{"error": {"code": "not_found", "message": "job j1 not found", "request_id": "…"}}
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the content of ErrorBody. Leader is set on not_leader and
// leader_unreachable errors when a leader is known.
type ErrorDetail struct {
	Code      string      `json:"code"`
	Message   string      `json:"message"`
	RequestID string      `json:"request_id"`
	Leader    *LeaderHint `json:"leader,omitempty"`
}

// LeaderHint says which member this one believes leads.
type LeaderHint struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"http_addr,omitempty"`
	QUICAddr string `json:"quic_addr,omitempty"`
}

// httpError is an error with its HTTP status and code.
type httpError struct {
	status     int
	code       string
	msg        string
	retryAfter time.Duration
	leader     *LeaderHint
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// classify maps an error from the coordinator, the audit log, the
// simulator or the decoders to its HTTP status and code.
func classify(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var nl *coordinator.NotLeaderError
	if errors.As(err, &nl) {
		e := errorf(http.StatusServiceUnavailable, CodeNotLeader, "%v", err)
		if nl.LeaderID != "" {
			e.leader = &LeaderHint{ID: nl.LeaderID, HTTPAddr: nl.HTTPAddr, QUICAddr: nl.QUICAddr}
		}
		e.retryAfter = time.Second
		return e
	}
	var mbe *http.MaxBytesError
	var ce *sim.ConfigError
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body larger than %d bytes", mbe.Limit)
	case errors.As(err, &ce):
		return errorf(http.StatusBadRequest, CodeInvalid, "%s: %v", ce.Field, err)
	case errors.Is(err, sim.ErrInvalidConfig):
		return errorf(http.StatusBadRequest, CodeInvalid, "%v", err)
	case errors.Is(err, coordinator.ErrNotFound):
		return errorf(http.StatusNotFound, CodeNotFound, "%v", err)
	case errors.Is(err, coordinator.ErrModelPruned):
		return errorf(http.StatusGone, CodeGone, "%v", err)
	case errors.Is(err, coordinator.ErrExists), errors.Is(err, coordinator.ErrStale):
		return errorf(http.StatusConflict, CodeConflict, "%v", err)
	case errors.Is(err, coordinator.ErrInvalid):
		return errorf(http.StatusBadRequest, CodeInvalid, "%v", err)
	case errors.Is(err, coordinator.ErrUnknownNode):
		return errorf(http.StatusNotFound, CodeNotFound, "%v", err)
	case errors.Is(err, audit.ErrNoCheckpoint):
		return errorf(http.StatusNotFound, CodeNotFound, "%v", err)
	case errors.Is(err, audit.ErrRange):
		return errorf(http.StatusNotFound, CodeNotFound, "%v", err)
	case errors.Is(err, coordinator.ErrClosed):
		e := errorf(http.StatusServiceUnavailable, CodeUnavailable, "%v", err)
		e.retryAfter = time.Second
		return e
	case errors.Is(err, errTimeout):
		return errorf(http.StatusGatewayTimeout, CodeTimeout, "%v", err)
	}
	return errorf(http.StatusInternalServerError, CodeInternal, "%v", err)
}

var errTimeout = errors.New("api: the cluster did not answer in time")

// writeError writes the one error shape with the request's id.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(err)
	info := infoFrom(r.Context())
	if info != nil {
		info.errCode = e.code
		if e.status >= 500 {
			info.errMsg = clipTo(e.msg, maxErrorMessage)
		}
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(e.retryAfter)))
	}
	body := ErrorBody{Error: ErrorDetail{Code: e.code, Message: clipTo(e.msg, maxErrorMessage), RequestID: requestID(r), Leader: e.leader}}
	writeJSON(w, e.status, body)
}

// writeJSON writes v as the JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Handlers check what they encode; this is a bug, still answered
		// in the error shape with the request id (set on the response
		// header by ServeHTTP).
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Error: ErrorDetail{Code: CodeInternal, Message: "encoding the response failed",
			RequestID: w.Header().Get(HeaderRequestID)}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func ceilSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
