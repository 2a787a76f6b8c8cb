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
	"slices"
	"time"

	"github.com/mfn/mfn/internal/jsonkeys"
)

// AttestPath is the HTTP route a follower posts its attestations to (the
// leader's; WithAttestation serves it). It needs no API key: the request
// is signed with the member's key and checked against the registered
// member's, and the attestation inside is verified again in Apply.
const AttestPath = "/v1/cluster/attest"

// MaxAttestBody bounds an attestation request's body (bytes); a larger
// one is refused with 413 before it is decoded.
const MaxAttestBody = 16 << 10

// attestDomain separates attestation request signatures from every other
// use of a member key.
const attestDomain = "mfn/cluster-attest/v1\x00"

// attestSkew is how far a request's time may be from the leader's.
const attestSkew = 5 * time.Minute

// attestWire is the request body: the attestation's JSON, the sender's
// time and its Ed25519 signature over attestDomain, the time (RFC 3339,
// nanoseconds, UTC), a newline and the attestation bytes.
type attestWire struct {
	Attestation json.RawMessage `json:"attestation"`
	Time        time.Time       `json:"time"`
	Signature   []byte          `json:"signature"`
}

func attestSigned(t time.Time, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString(attestDomain)
	b.WriteString(t.UTC().Format(time.RFC3339Nano))
	b.WriteByte('\n')
	b.Write(body)
	return b.Bytes()
}

// WithAttestation serves AttestPath (HandleAttestation) in front of next.
func (c *Coordinator) WithAttestation(next http.Handler) http.Handler {
	h := c.HandleAttestation()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == AttestPath {
			h(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// HandleAttestation serves a member's signed attestation on the leader:
// 204 once committed, 409 when the member already attested the round
// (or the round moved on), 401 for a bad signature or time, 403 for an
// unregistered member, 400 for a malformed or failing attestation, 413
// above MaxAttestBody, 503 on a follower (the sender finds the leader
// itself). Stale and unregistered requests are refused before they reach
// Raft.
func (c *Coordinator) HandleAttestation() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			httpError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxAttestBody+1))
		if err != nil {
			httpError(w, http.StatusBadRequest, "bad_request", "attestation: reading the body: "+err.Error())
			return
		}
		if len(body) > MaxAttestBody {
			httpError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("attestation: body above %d bytes", MaxAttestBody))
			return
		}
		a, wire, err := decodeAttestRequest(body)
		if err != nil {
			httpError(w, http.StatusBadRequest, "bad_request", "attestation: "+err.Error())
			return
		}
		if !c.IsLeader() {
			httpError(w, http.StatusServiceUnavailable, "not_leader", "not the leader")
			return
		}
		m, ok := c.fsm.member(a.Member)
		if !ok || len(m.PublicKey) != ed25519.PublicKeySize {
			httpError(w, http.StatusForbidden, "forbidden", "attestation: "+a.Member+" is not a registered member with a key")
			return
		}
		if !ed25519.Verify(m.PublicKey, attestSigned(wire.Time, wire.Attestation), wire.Signature) {
			httpError(w, http.StatusUnauthorized, "unauthorized", "attestation: request signature does not verify")
			return
		}
		if d := time.Since(wire.Time); d > attestSkew || d < -attestSkew {
			httpError(w, http.StatusUnauthorized, "unauthorized", fmt.Sprintf("attestation: request time %v is more than %v from now", wire.Time, attestSkew))
			return
		}
		err = c.fsm.precheckAttestation(a)
		if err == nil {
			err = c.SubmitAttestation(r.Context(), a)
		}
		switch {
		case err == nil:
			w.WriteHeader(http.StatusNoContent)
		case errors.Is(err, ErrStale):
			httpError(w, http.StatusConflict, "stale", err.Error())
		case errors.Is(err, ErrInvalid):
			httpError(w, http.StatusBadRequest, "invalid", err.Error())
		case errors.Is(err, ErrNotFound):
			httpError(w, http.StatusForbidden, "forbidden", err.Error())
		case errors.Is(err, ErrNotLeader):
			httpError(w, http.StatusServiceUnavailable, "not_leader", err.Error())
		default:
			httpError(w, http.StatusInternalServerError, "internal", err.Error())
		}
	}
}

// decodeAttestRequest decodes a request body strictly (unknown fields
// and duplicate keys refused).
func decodeAttestRequest(body []byte) (*Attestation, *attestWire, error) {
	var wire attestWire
	if err := strictJSON(body, &wire); err != nil {
		return nil, nil, err
	}
	a := new(Attestation)
	if err := strictJSON(wire.Attestation, a); err != nil {
		return nil, nil, err
	}
	if a.Member == "" || a.Job == "" || len(wire.Signature) != ed25519.SignatureSize {
		return nil, nil, errors.New("member, job and signature are required")
	}
	return a, &wire, nil
}

func strictJSON(b []byte, v any) error {
	if _, err := jsonkeys.Check(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// precheckAttestation refuses, without a Raft entry, an attestation Apply
// would refuse as stale or by an unknown member: a replayed request costs
// the leader a read, not a log entry.
func (f *fsm) precheckAttestation(a *Attestation) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	j, ok := f.jobs[a.Job]
	if !ok {
		return fmt.Errorf("%w: job %s", ErrNotFound, a.Job)
	}
	r := j.round(a.Round)
	switch {
	case r == nil:
		return fmt.Errorf("%w: job %s has no round %d", ErrStale, a.Job, a.Round)
	case a.Derived != nil:
		if !r.Attest || r.State != RoundClosing || derived(r, a.Member) {
			return fmt.Errorf("%w: job %s round %d takes no derivation from %s", ErrStale, a.Job, a.Round, a.Member)
		}
	case r.State != RoundClosed || r.Result == nil || r.Result.ResultLeaf == nil ||
		slices.Contains(r.Attested, a.Member) || slices.ContainsFunc(r.Dissents, func(d Dissent) bool { return d.Member == a.Member }):
		return fmt.Errorf("%w: job %s round %d takes no attestation from %s", ErrStale, a.Job, a.Round, a.Member)
	}
	return nil
}

// HTTPAttestationSender returns a Config.SendAttestation that signs a
// follower's attestation with key and posts it to the current leader's
// HTTP address (leader reports it, e.g. Coordinator.Leader) at scheme
// ("http" or "https") through client. Its errors wrap ErrNotLeader (no
// leader known, or the one asked no longer leads: retried), ErrStale,
// ErrInvalid and ErrNotFound as the leader answered.
func HTTPAttestationSender(client *http.Client, scheme string, key ed25519.PrivateKey, leader func() (Member, bool)) func(context.Context, *Attestation) error {
	return func(ctx context.Context, a *Attestation) error {
		l, ok := leader()
		if !ok || l.HTTPAddr == "" {
			return fmt.Errorf("%w: no leader HTTP address known", ErrNotLeader)
		}
		raw, err := json.Marshal(a)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		body, err := json.Marshal(attestWire{Attestation: raw, Time: now, Signature: ed25519.Sign(key, attestSigned(now, raw))})
		if err != nil {
			return err
		}
		u := url.URL{Scheme: scheme, Host: l.HTTPAddr, Path: AttestPath}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("attestation to %s: %w", l.ID, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		var kind error
		switch resp.StatusCode {
		case http.StatusNoContent, http.StatusOK:
			return nil
		case http.StatusConflict:
			kind = ErrStale
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
			kind = ErrInvalid
		case http.StatusForbidden:
			kind = ErrNotFound
		case http.StatusServiceUnavailable:
			kind = ErrNotLeader
		default:
			return fmt.Errorf("attestation to %s: %s: %s", l.ID, resp.Status, bytes.TrimSpace(msg))
		}
		return fmt.Errorf("%w: attestation to %s: %s: %s", kind, l.ID, resp.Status, bytes.TrimSpace(msg))
	}
}
