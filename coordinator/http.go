package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mfn/mfn/crypto"
)

// JoinPath is the HTTP route a joining member posts its JoinRequest to.
const JoinPath = "/v1/cluster/join"

// joinDomain separates join signatures from every other use of a
// coordinator's Ed25519 key.
const joinDomain = "mfn/cluster-join/v1\x00"

// joinSkew is how far a join request's time may be from the leader's.
const joinSkew = 5 * time.Minute

// JoinRequest asks the leader to add a member. It is signed with the
// joining member's Ed25519 key (proof that the caller holds the key it
// registers); Time bounds replays.
//
// On the wire it is JSON {"id", "raft_addr", "quic_addr", "http_addr",
// "public_key" ("mfn-ed25519:<base64>"), "time", "signature" (base64)}.
// The operator API's join route takes the same object without time and
// signature, authorised by an admin API key instead.
type JoinRequest struct {
	ID        string
	RaftAddr  string
	QUICAddr  string
	HTTPAddr  string
	PublicKey ed25519.PublicKey
	Time      time.Time
	Signature []byte
}

type joinWire struct {
	ID        string     `json:"id"`
	RaftAddr  string     `json:"raft_addr"`
	QUICAddr  string     `json:"quic_addr"`
	HTTPAddr  string     `json:"http_addr"`
	PublicKey string     `json:"public_key"`
	Time      *time.Time `json:"time,omitempty"`
	Signature []byte     `json:"signature,omitempty"`
}

// wire returns the JSON form; signed=false leaves out time and signature.
func (r *JoinRequest) wire(signed bool) joinWire {
	w := joinWire{ID: r.ID, RaftAddr: r.RaftAddr, QUICAddr: r.QUICAddr, HTTPAddr: r.HTTPAddr}
	if len(r.PublicKey) == ed25519.PublicKeySize {
		w.PublicKey = crypto.FormatPublicKey(r.PublicKey)
	}
	if signed {
		t := r.Time
		w.Time, w.Signature = &t, r.Signature
	}
	return w
}

func (w joinWire) request() (JoinRequest, error) {
	key, err := crypto.ParsePublicKey(w.PublicKey)
	if err != nil {
		return JoinRequest{}, fmt.Errorf("%w: public_key: %v", ErrInvalid, err)
	}
	r := JoinRequest{ID: w.ID, RaftAddr: w.RaftAddr, QUICAddr: w.QUICAddr, HTTPAddr: w.HTTPAddr, PublicKey: key, Signature: w.Signature}
	if w.Time != nil {
		r.Time = *w.Time
	}
	return r, nil
}

func (r *JoinRequest) signedBytes() []byte {
	var b bytes.Buffer
	b.WriteString(joinDomain)
	for _, s := range []string{r.ID, r.RaftAddr, r.QUICAddr, r.HTTPAddr, r.Time.UTC().Format(time.RFC3339Nano)} {
		fmt.Fprintf(&b, "%d:%s\n", len(s), s)
	}
	b.Write(r.PublicKey)
	return b.Bytes()
}

// Sign sets PublicKey, Time (if zero) and Signature from key.
func (r *JoinRequest) Sign(key ed25519.PrivateKey) {
	r.PublicKey = key.Public().(ed25519.PublicKey)
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	r.Signature = ed25519.Sign(key, r.signedBytes())
}

// Verify checks the signature and that Time is within 5 minutes of now.
func (r *JoinRequest) Verify(now time.Time) error {
	if len(r.PublicKey) != ed25519.PublicKeySize || !ed25519.Verify(r.PublicKey, r.signedBytes(), r.Signature) {
		return fmt.Errorf("%w: join request signature does not verify", ErrInvalid)
	}
	if d := now.Sub(r.Time); d > joinSkew || d < -joinSkew {
		return fmt.Errorf("%w: join request time %v is more than %v from now", ErrInvalid, r.Time, joinSkew)
	}
	return nil
}

// Member returns the member the request describes.
func (r *JoinRequest) Member() Member {
	return Member{ID: r.ID, RaftAddr: r.RaftAddr, QUICAddr: r.QUICAddr, HTTPAddr: r.HTTPAddr, PublicKey: r.PublicKey}
}

// HandleJoin serves a JoinRequest: on a follower it redirects (307) to the
// leader's HTTP address; on the leader it admits the member if the request
// verifies and its key is one of trusted (the cluster's coordinator keys),
// then calls AddVoter. It answers 204 on success.
func (c *Coordinator) HandleJoin(trusted *PeerKeys) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			httpError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
			return
		}
		var jw joinWire
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&jw); err != nil {
			httpError(w, http.StatusBadRequest, "bad_request", "join request: "+err.Error())
			return
		}
		req, err := jw.request()
		if err != nil {
			httpError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		if !c.IsLeader() {
			if l, ok := c.Leader(); ok && l.HTTPAddr != "" && l.ID != c.cfg.ID {
				u := url.URL{Scheme: "http", Host: l.HTTPAddr, Path: JoinPath}
				http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
				return
			}
			httpError(w, http.StatusServiceUnavailable, "no_leader", "no leader known")
			return
		}
		if err := req.Verify(time.Now()); err != nil {
			httpError(w, http.StatusUnauthorized, "unauthorized", err.Error())
			return
		}
		if trusted == nil || !trusted.Contains(req.PublicKey) {
			httpError(w, http.StatusForbidden, "forbidden", "key is not one of the cluster's coordinator keys")
			return
		}
		if err := c.AddVoter(r.Context(), req.Member()); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ErrInvalid) {
				code = http.StatusBadRequest
			} else if errors.Is(err, ErrNotLeader) {
				code = http.StatusServiceUnavailable
			}
			httpError(w, code, "join_failed", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func httpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// Join posts a join request to the member at httpAddr (host:port or a
// URL), following redirects to the leader, retrying until ctx ends while
// the cluster has no leader or the member is unreachable. With an apiKey
// (an admin key of the operator API) it sends X-API-Key and the unsigned
// form; without, the signed form that HandleJoin checks.
func Join(ctx context.Context, httpAddr string, req JoinRequest, apiKey string) error {
	body, err := json.Marshal(req.wire(apiKey == ""))
	if err != nil {
		return err
	}
	target := httpAddr
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	target = strings.TrimRight(target, "/") + JoinPath
	client := &http.Client{Timeout: 30 * time.Second}
	backoff := 200 * time.Millisecond
	for {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		hr.Header.Set("Content-Type", "application/json")
		if apiKey != "" {
			hr.Header.Set("X-API-Key", apiKey)
		}
		resp, err := client.Do(hr)
		var retry error
		if err != nil {
			retry = err
		} else {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			switch {
			case resp.StatusCode/100 == 2:
				return nil
			case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
				retry = fmt.Errorf("join %s: %s: %s", target, resp.Status, bytes.TrimSpace(msg))
			default:
				return fmt.Errorf("coordinator: join %s: %s: %s", target, resp.Status, bytes.TrimSpace(msg))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("coordinator: join %s: %w (last: %v)", target, ctx.Err(), retry)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// NewBasicHTTPHandler serves the member's public endpoints when the full
// operator API is not wired: /healthz (the process is up), /readyz (200
// when the member belongs to a cluster with a leader, 503 otherwise),
// /metrics (gatherer in Prometheus text format) and the join route.
func NewBasicHTTPHandler(c *Coordinator, gatherer prometheus.Gatherer, trusted *PeerKeys) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		st := c.Status()
		if !c.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(map[string]any{"ready": c.Ready(), "state": st.State, "leader": st.LeaderID})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.Handle(JoinPath, c.HandleJoin(trusted))
	return mux
}
