package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
)

// Error is an error answer of the API as the client sees it.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code, Message, RequestID and Leader are the error body's fields; for
	// an answer without the error shape (a proxy's page), Code is empty
	// and Message holds the start of the body.
	Code      string
	Message   string
	RequestID string
	Leader    *LeaderHint
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	fmt.Fprintf(&b, ": %s", e.Message)
	if e.Leader != nil && e.Leader.ID != "" {
		fmt.Fprintf(&b, " (leader %s", e.Leader.ID)
		if e.Leader.HTTPAddr != "" {
			fmt.Fprintf(&b, " at %s", e.Leader.HTTPAddr)
		}
		b.WriteString(")")
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

// ErrUnreachable wraps transport failures: the server could not be
// reached or did not answer.
var ErrUnreachable = errors.New("api: server unreachable")

// Client calls the API of one member. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	key     string
	hc      *http.Client
	retries int
}

// WithRetries returns a copy of c that repeats a request answered 503
// not_leader or unavailable (a leader just elected that has not yet
// registered its HTTP address, a member starting or shutting down) up to
// n more times, each after the answer's Retry-After (at most 2 s; 1 s
// without one). Every write of the API is idempotent, so repeating one is
// safe.
func (c *Client) WithRetries(n int) *Client {
	cc := *c
	cc.retries = max(n, 0)
	return &cc
}

// maxRetryWait caps the wait between repeated requests.
const maxRetryWait = 2 * time.Second

// NewClient returns a client of the API at server ("http://host:port",
// "https://…", or "host:port" meaning http) authenticating with key. hc
// nil means http.DefaultClient. Errors name a malformed server URL.
func NewClient(server, key string, hc *http.Client) (*Client, error) {
	if server == "" {
		return nil, errors.New("api: empty server URL")
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("api: server URL %q: %v", server, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api: server URL %q: want http://host:port or https://host:port", server)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, key: key, hc: hc}, nil
}

// Server returns the base URL.
func (c *Client) Server() string { return c.base.String() }

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	return u.String()
}

// do sends a request and returns the response of a 2xx answer (the caller
// closes its body); other answers become *Error. See WithRetries for the
// answers it repeats.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in any) (*http.Response, error) {
	var payload []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		payload = b
	}
	for attempt := 0; ; attempt++ {
		resp, wait, err := c.doOnce(ctx, method, path, q, in != nil, payload)
		var e *Error
		if attempt >= c.retries || !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable ||
			(e.Code != CodeNotLeader && e.Code != CodeUnavailable) {
			return resp, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// doOnce sends one request; wait is the answer's Retry-After (capped).
func (c *Client) doOnce(ctx context.Context, method, path string, q url.Values, hasBody bool, payload []byte) (*http.Response, time.Duration, error) {
	var body io.Reader
	if hasBody {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return nil, 0, err
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set(HeaderAPIKey, c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s %s: %v", ErrUnreachable, method, c.base.Host, unwrapURLError(err))
	}
	if resp.StatusCode/100 == 2 {
		return resp, 0, nil
	}
	defer resp.Body.Close()
	wait := time.Second
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		wait = min(time.Duration(s)*time.Second, maxRetryWait)
	}
	return nil, wait, readError(resp)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readError decodes an error answer.
func readError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb ErrorBody
	if err := json.Unmarshal(data, &eb); err == nil && eb.Error.Code != "" {
		return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message,
			RequestID: eb.Error.RequestID, Leader: eb.Error.Leader}
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &Error{Status: resp.StatusCode, Message: msg, RequestID: resp.Header.Get(HeaderRequestID)}
}

// getJSON GETs path and decodes the JSON answer into out.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any) error {
	resp, err := c.do(ctx, method, path, q, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: decoding the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// getBytes GETs path and returns the body (at most limit bytes).
func (c *Client) getBytes(ctx context.Context, path string, q url.Values, limit int64) ([]byte, http.Header, error) {
	resp, err := c.do(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading %s: %v", ErrUnreachable, path, err)
	}
	if int64(len(b)) > limit {
		return nil, nil, fmt.Errorf("api: answer to %s is larger than %d bytes", path, limit)
	}
	return b, resp.Header, nil
}

func esc(s string) string { return url.PathEscape(s) }

// Health calls /healthz.
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, http.MethodGet, "/healthz", nil, nil, nil)
}

// Ready calls /readyz; a member that is not ready gives an *Error with
// status 503.
func (c *Client) Ready(ctx context.Context) (Readiness, error) {
	var r Readiness
	err := c.call(ctx, http.MethodGet, "/readyz", nil, nil, &r)
	return r, err
}

// Cluster returns the member's view of the cluster.
func (c *Client) Cluster(ctx context.Context) (coordinator.Status, error) {
	var s coordinator.Status
	err := c.call(ctx, http.MethodGet, "/v1/cluster", nil, nil, &s)
	return s, err
}

// Join asks the cluster to add a member (admin).
func (c *Client) Join(ctx context.Context, req JoinRequest) (coordinator.Status, error) {
	var s coordinator.Status
	err := c.call(ctx, http.MethodPost, "/v1/cluster/join", nil, req, &s)
	return s, err
}

// RemoveMember removes a member from the cluster (admin).
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/v1/cluster/members/"+esc(id), nil, nil, nil)
}

// Nodes lists the enrolled nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var l NodeList
	err := c.call(ctx, http.MethodGet, "/v1/nodes", nil, nil, &l)
	return l.Nodes, err
}

// EnrollNode enrolls a node (operator).
func (c *Client) EnrollNode(ctx context.Context, id string, key PublicKey) (Node, error) {
	var n Node
	err := c.call(ctx, http.MethodPost, "/v1/nodes", nil, EnrollRequest{ID: id, PublicKey: key}, &n)
	return n, err
}

// RevokeNode revokes a node (operator).
func (c *Client) RevokeNode(ctx context.Context, id string) (Node, error) {
	var n Node
	err := c.call(ctx, http.MethodPost, "/v1/nodes/"+esc(id)+"/revoke", nil, nil, &n)
	return n, err
}

// CreateJob creates a training job (operator).
func (c *Client) CreateJob(ctx context.Context, spec coordinator.JobSpec) (coordinator.Job, error) {
	var j coordinator.Job
	err := c.call(ctx, http.MethodPost, "/v1/jobs", nil, spec, &j)
	return j, err
}

// Jobs lists the jobs.
func (c *Client) Jobs(ctx context.Context) ([]coordinator.Job, error) {
	var l JobList
	err := c.call(ctx, http.MethodGet, "/v1/jobs", nil, nil, &l)
	return l.Jobs, err
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id string) (coordinator.Job, error) {
	var j coordinator.Job
	err := c.call(ctx, http.MethodGet, "/v1/jobs/"+esc(id), nil, nil, &j)
	return j, err
}

// StopJob stops a job (operator); reason may be empty.
func (c *Client) StopJob(ctx context.Context, id, reason string) (coordinator.Job, error) {
	var j coordinator.Job
	var in any
	if reason != "" {
		in = StopRequest{Reason: reason}
	}
	err := c.call(ctx, http.MethodPost, "/v1/jobs/"+esc(id)+"/stop", nil, in, &j)
	return j, err
}

// Rounds lists all of a job's rounds, following the pages (each of
// MaxRoundsPage rounds).
func (c *Client) Rounds(ctx context.Context, job string) ([]coordinator.Round, error) {
	var all []coordinator.Round
	var after uint64
	for {
		l, err := c.RoundsPage(ctx, job, after, MaxRoundsPage)
		if err != nil {
			return nil, err
		}
		all = append(all, l.Rounds...)
		if l.NextAfter == nil {
			return all, nil
		}
		if *l.NextAfter <= after {
			return nil, fmt.Errorf("api: rounds of %s: the server's next page (after %d) does not advance past %d", job, *l.NextAfter, after)
		}
		after = *l.NextAfter
	}
}

// RoundsPage returns one page of a job's rounds: those numbered above
// after, at most limit of them (zero means the server's default,
// DefaultRoundsPage).
func (c *Client) RoundsPage(ctx context.Context, job string, after uint64, limit int) (RoundList, error) {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var l RoundList
	err := c.call(ctx, http.MethodGet, "/v1/jobs/"+esc(job)+"/rounds", q, nil, &l)
	return l, err
}

// Round returns one round with its updates' outcomes.
func (c *Client) Round(ctx context.Context, job string, round uint64) (coordinator.Round, error) {
	var r coordinator.Round
	err := c.call(ctx, http.MethodGet, "/v1/jobs/"+esc(job)+"/rounds/"+strconv.FormatUint(round, 10), nil, nil, &r)
	return r, err
}

// Model returns a model version's metadata; version is a number or
// "latest".
func (c *Client) Model(ctx context.Context, job, version string) (ModelInfo, error) {
	var m ModelInfo
	err := c.call(ctx, http.MethodGet, "/v1/jobs/"+esc(job)+"/models/"+esc(version), nil, nil, &m)
	return m, err
}

// ModelParams streams a model version's parameters in format (FormatFloat64
// or FormatUpdate) to w and returns the model hash the server announced
// (hex) and the number of bytes written.
func (c *Client) ModelParams(ctx context.Context, job, version, format string, w io.Writer) (hash string, n int64, err error) {
	q := url.Values{}
	if format != "" {
		q.Set("format", format)
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/jobs/"+esc(job)+"/models/"+esc(version)+"/params", q, nil)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	n, err = io.Copy(w, resp.Body)
	if err != nil {
		return "", n, fmt.Errorf("api: downloading model %s v%s: %w", job, version, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return "", n, fmt.Errorf("api: model %s v%s: got %d of %d bytes", job, version, n, resp.ContentLength)
	}
	return resp.Header.Get("X-MFN-Model-Hash"), n, nil
}

// CheckpointNote returns the newest signed checkpoint note, verbatim.
func (c *Client) CheckpointNote(ctx context.Context) ([]byte, error) {
	b, _, err := c.getBytes(ctx, "/v1/audit/checkpoint", nil, audit.MaxCheckpointLen)
	return b, err
}

// Checkpoint returns the newest checkpoint with its size and root.
func (c *Client) Checkpoint(ctx context.Context) (Checkpoint, error) {
	var cp Checkpoint
	err := c.call(ctx, http.MethodGet, "/v1/audit/checkpoint", url.Values{"format": {"json"}}, nil, &cp)
	return cp, err
}

// Checkpoints returns the signed checkpoints the member serves.
func (c *Client) Checkpoints(ctx context.Context) (CheckpointList, error) {
	var l CheckpointList
	err := c.call(ctx, http.MethodGet, "/v1/audit/checkpoints", nil, nil, &l)
	return l, err
}

// BundleJSON returns a leaf's proof bundle in audit.Bundle's JSON form.
func (c *Client) BundleJSON(ctx context.Context, leaf uint64) ([]byte, error) {
	b, _, err := c.getBytes(ctx, "/v1/audit/bundles/"+strconv.FormatUint(leaf, 10), nil, audit.MaxBundleLen)
	return b, err
}

// Consistency returns the consistency proof between two tree sizes.
func (c *Client) Consistency(ctx context.Context, from, to uint64) (ConsistencyProof, error) {
	var p ConsistencyProof
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "to": {strconv.FormatUint(to, 10)}}
	err := c.call(ctx, http.MethodGet, "/v1/audit/consistency", q, nil, &p)
	return p, err
}

// Leaves returns encoded leaves from start on (at most MaxLeavesPage, up
// to end).
func (c *Client) Leaves(ctx context.Context, start, end uint64) (LeafPage, error) {
	var p LeafPage
	q := url.Values{"start": {strconv.FormatUint(start, 10)}, "end": {strconv.FormatUint(end, 10)}}
	err := c.call(ctx, http.MethodGet, "/v1/audit/leaves", q, nil, &p)
	return p, err
}

// Simulate runs a simulation on the server.
func (c *Client) Simulate(ctx context.Context, req SimulateRequest) (SimulateResponse, error) {
	var r SimulateResponse
	err := c.call(ctx, http.MethodPost, "/v1/simulate", nil, req, &r)
	return r, err
}

// Nernst computes a Nernst potential on the server.
func (c *Client) Nernst(ctx context.Context, req NernstRequest) (NernstResponse, error) {
	var r NernstResponse
	err := c.call(ctx, http.MethodPost, "/v1/nernst", nil, req, &r)
	return r, err
}

// Events opens the event stream (kinds and job filter it; empty means
// all). Read events with EventStream.Next; Close it when done.
func (c *Client) Events(ctx context.Context, kinds []string, job string) (*EventStream, error) {
	q := url.Values{}
	if len(kinds) > 0 {
		q.Set("kind", strings.Join(kinds, ","))
	}
	if job != "" {
		q.Set("job", job)
	}
	u := *c.base
	u.Path += "/v1/events"
	u.RawQuery = q.Encode()
	h := http.Header{}
	if c.key != "" {
		h.Set(HeaderAPIKey, c.key)
	}
	conn, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: c.hc, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode/100 != 1 && resp.StatusCode/100 != 2 {
			return nil, readError(resp)
		}
		return nil, fmt.Errorf("%w: events: %v", ErrUnreachable, err)
	}
	conn.SetReadLimit(1 << 20)
	s := &EventStream{conn: conn}
	ev, err := s.Next(ctx)
	if err != nil {
		conn.CloseNow()
		return nil, err
	}
	if ev.Kind != EventSubscribed {
		conn.CloseNow()
		return nil, fmt.Errorf("api: events: first message is %q, want %q", ev.Kind, EventSubscribed)
	}
	return s, nil
}

// EventStream is an open /v1/events subscription.
type EventStream struct {
	conn *websocket.Conn
}

// Next returns the next event; it fails when ctx ends or the stream
// closes.
func (s *EventStream) Next(ctx context.Context) (coordinator.Event, error) {
	var ev coordinator.Event
	_, data, err := s.conn.Read(ctx)
	if err != nil {
		return ev, err
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return ev, fmt.Errorf("api: events: %w", err)
	}
	return ev, nil
}

// Close ends the subscription.
func (s *EventStream) Close() error {
	return s.conn.Close(websocket.StatusNormalClosure, "")
}

// ExportReport summarises ExportLog.
type ExportReport struct {
	Leaves      uint64 // leaves written: the newest checkpoint's size
	Checkpoints int    // checkpoints written
	// Complete is false when the member served only its newest
	// checkpoint (see CheckpointLister): the export still verifies, but
	// shows no consistency between earlier checkpoints.
	Complete bool
}

// ExportLog writes the member's audit log into dir in the layout of
// audit.ExportDir, for "mfn audit verify-log": every checkpoint as
// checkpoints/NNNNNN.note and every leaf up to the newest checkpoint's size
// as leaves/NNNNNNNN.leaf. Like audit.ExportDir it refuses a dir that
// already has a leaves or checkpoints folder (an error wrapping
// fs.ErrExist). It checks nothing; verify the result offline.
func (c *Client) ExportLog(ctx context.Context, dir string) (ExportReport, error) {
	var rep ExportReport
	list, err := c.Checkpoints(ctx)
	if err != nil {
		return rep, err
	}
	if len(list.Checkpoints) == 0 {
		return rep, fmt.Errorf("api: export: %w", audit.ErrNoCheckpoint)
	}
	size := list.Checkpoints[len(list.Checkpoints)-1].Size
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return rep, fmt.Errorf("api: export: %w", err)
	}
	for _, sub := range []string{"leaves", "checkpoints"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			return rep, fmt.Errorf("api: export: %w", err)
		}
	}
	for i, cp := range list.Checkpoints {
		path := filepath.Join(dir, filepath.FromSlash(audit.CheckpointFile(i+1)))
		if err := os.WriteFile(path, []byte(cp.Note), 0o644); err != nil {
			return rep, fmt.Errorf("api: export: %w", err)
		}
	}
	rep.Checkpoints, rep.Complete = len(list.Checkpoints), list.Complete
	for next := uint64(0); next < size; {
		page, err := c.Leaves(ctx, next, size)
		if err != nil {
			return rep, err
		}
		if page.Start != next || len(page.Leaves) == 0 {
			return rep, fmt.Errorf("api: export: asked for leaves from %d, got %d from %d", next, len(page.Leaves), page.Start)
		}
		for _, l := range page.Leaves {
			path := filepath.Join(dir, filepath.FromSlash(audit.LeafFile(next)))
			if err := os.WriteFile(path, l, 0o644); err != nil {
				return rep, fmt.Errorf("api: export: %w", err)
			}
			next++
		}
	}
	rep.Leaves = size
	return rep, nil
}

// MaxOpenAPIBytes bounds the OpenAPI document Client.OpenAPI accepts.
const MaxOpenAPIBytes = 4 << 20

// OpenAPI returns the member's OpenAPI document (GET /openapi.json),
// checked to be a JSON object with an "openapi" version field.
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	b, _, err := c.getBytes(ctx, "/openapi.json", nil, MaxOpenAPIBytes)
	if err != nil {
		return nil, err
	}
	var head struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(b, &head); err != nil || head.OpenAPI == "" {
		return nil, fmt.Errorf("api: %s/openapi.json is not an OpenAPI document", c.Server())
	}
	return b, nil
}
