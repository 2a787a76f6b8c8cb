package coordinator

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/internal/jsonkeys"
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
// leader's HTTP address (https when the request came over TLS); on the leader it admits the member if the request
// verifies and its key is one of trusted (the cluster's coordinator keys),
// then calls AddVoter. It answers 204 on success.
func (c *Coordinator) HandleJoin(trusted *PeerKeys) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			httpError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
			return
		}
		var jw joinWire
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			httpError(w, http.StatusBadRequest, "bad_request", "join request: reading the body: "+err.Error())
			return
		}
		if _, err := jsonkeys.Check(body); err != nil {
			httpError(w, http.StatusBadRequest, "bad_request", "join request: "+err.Error())
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
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
				scheme := "http"
				if r.TLS != nil {
					scheme = "https"
				}
				u := url.URL{Scheme: scheme, Host: l.HTTPAddr, Path: JoinPath}
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

// JoinConfig configures Join. The zero value works: plain HTTP (or the
// default TLS roots for an https:// address), the signed form, a 2 minute
// deadline.
type JoinConfig struct {
	// APIKey is an admin key of the operator API: Join then sends it in
	// X-API-Key with the unsigned request. Empty means the signed form
	// that HandleJoin checks.
	APIKey string
	// Client sends the requests (for an https member, with a transport
	// that trusts its certificate, e.g. HTTPTransport); nil means a client
	// with a 30 s timeout per request. Redirects to the leader are
	// followed.
	Client *http.Client
	// Timeout bounds the whole join, retries included; zero means
	// 2 minutes. ctx may end it earlier.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles from MinBackoff up to MaxBackoff; zero means 200 ms and 5 s.
	// Each wait is drawn uniformly from [d/2, d] so that members started
	// together do not retry in lockstep.
	MinBackoff, MaxBackoff time.Duration
	// Rand draws the jitter; nil means math/rand/v2's global source.
	Rand *rand.Rand
}

// JoinError is Join's failure: the target, the attempts made and the last
// error. It unwraps to the last error (and to ctx's error when the
// deadline or a cancellation ended the retries).
type JoinError struct {
	// Target is the join URL.
	Target string
	// Attempts is the number of requests sent.
	Attempts int
	// Status is the last HTTP status, 0 if no answer came.
	Status int
	// Last is the last attempt's error.
	Last error
	// Ended is ctx's error (or context.DeadlineExceeded for Timeout) when
	// retries stopped for lack of time, else nil.
	Ended error
}

func (e *JoinError) Error() string {
	if e.Ended != nil {
		return fmt.Sprintf("coordinator: join %s: gave up after %d attempts (%v): last error: %v", e.Target, e.Attempts, e.Ended, e.Last)
	}
	return fmt.Sprintf("coordinator: join %s: %v", e.Target, e.Last)
}

// Unwrap returns the last error and, when time ran out, ctx's error.
func (e *JoinError) Unwrap() []error {
	if e.Ended != nil {
		return []error{e.Last, e.Ended}
	}
	return []error{e.Last}
}

// Join posts a join request to the member at httpAddr (host:port, which
// means http://, or a URL), following redirects to the leader. It retries
// while the answer says "try again" — 502 (the member cannot reach the
// leader), 503 (no leader yet), 504, 429 — or no answer comes because the
// member is not up yet (connection refused or reset, timeouts, DNS
// failures), with jittered exponential backoff until cfg.Timeout or ctx
// ends. Any other status, and TLS failures (a certificate that is not
// trusted), end it at once. Every failure is a *JoinError.
func Join(ctx context.Context, httpAddr string, req JoinRequest, cfg JoinConfig) error {
	body, err := json.Marshal(req.wire(cfg.APIKey == ""))
	if err != nil {
		return err
	}
	target := httpAddr
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	target = strings.TrimRight(target, "/") + JoinPath
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	timeout := cmp.Or(cfg.Timeout, 2*time.Minute)
	minB, maxB := cmp.Or(cfg.MinBackoff, 200*time.Millisecond), cmp.Or(cfg.MaxBackoff, 5*time.Second)
	maxB = max(maxB, minB)
	jitter := func(d time.Duration) time.Duration {
		half := int64(d / 2)
		if cfg.Rand != nil {
			return time.Duration(half + cfg.Rand.Int64N(half+1))
		}
		return time.Duration(half + rand.Int64N(half+1))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	je := &JoinError{Target: target}
	backoff := minB
	for {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			je.Last = err
			return je
		}
		hr.Header.Set("Content-Type", "application/json")
		if cfg.APIKey != "" {
			hr.Header.Set("X-API-Key", cfg.APIKey)
		}
		je.Attempts++
		resp, err := client.Do(hr)
		if err != nil {
			if ctx.Err() != nil {
				// Time ran out during the request: the error before it
				// says more about why the join failed.
				if je.Last == nil {
					je.Last = err
				}
				je.Ended = ctx.Err()
				return je
			}
			je.Status, je.Last = 0, err
			if !retryableJoinError(err) {
				return je
			}
		} else {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			je.Status = resp.StatusCode
			switch resp.StatusCode {
			case http.StatusOK, http.StatusCreated, http.StatusNoContent:
				return nil
			case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
				je.Last = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
			default:
				je.Last = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
				return je
			}
		}
		select {
		case <-ctx.Done():
			je.Ended = ctx.Err()
			return je
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, maxB)
	}
}

// retryableJoinError reports whether a request error means "the member
// is not reachable yet" rather than "it will never accept this".
func retryableJoinError(err error) bool {
	var dnsErr *net.DNSError
	var netErr net.Error
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	var x509Unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &x509Unknown),
		errors.Is(err, ErrUntrustedPeer):
		return false
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &dnsErr):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	}
	return false
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
