package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mfn/mfn/coordinator"
)

// forwardedHeaders are the request headers a forwarded request keeps.
var forwardedHeaders = []string{HeaderAPIKey, HeaderRequestID, "Content-Type", "Accept", "User-Agent"}

// hopHeaders are response headers not copied back from the leader.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

// forward sends the request (with its already read body) to the leader
// and copies the leader's answer back. It forwards at most one hop: a
// request that was already forwarded gets 503 not_leader naming the
// leader this member believes in. cause is the NotLeaderError that
// triggered forwarding, if any.
func (s *server) forward(w http.ResponseWriter, r *http.Request, body []byte, cause error) error {
	info := infoFrom(r.Context())
	leader, ok := s.c.Leader()
	var nl *coordinator.NotLeaderError
	if errors.As(cause, &nl) && nl.LeaderID != "" {
		leader, ok = coordinator.Member{ID: nl.LeaderID, HTTPAddr: nl.HTTPAddr, QUICAddr: nl.QUICAddr}, true
	}
	hint := &LeaderHint{ID: leader.ID, HTTPAddr: leader.HTTPAddr, QUICAddr: leader.QUICAddr}
	notLeader := func(msg string) error {
		e := errorf(http.StatusServiceUnavailable, CodeNotLeader, "%s", msg)
		e.retryAfter = time.Second
		if ok {
			e.leader = hint
		}
		return e
	}
	switch {
	case !ok:
		return notLeader("this member is not the leader and knows no leader (election in progress or cut off from the cluster)")
	case r.Header.Get(HeaderForwardedBy) != "":
		return notLeader("this member is not the leader (leader is " + leader.ID + "); the request was already forwarded once")
	case leader.HTTPAddr == "":
		return notLeader("this member is not the leader; the leader " + leader.ID + " has no known HTTP address")
	}
	target, err := s.leaderURL(leader.HTTPAddr, r.URL)
	if err != nil {
		return notLeader("this member is not the leader; the leader " + leader.ID + " advertises the HTTP address " +
			strconv.Quote(leader.HTTPAddr) + ", which other members cannot reach (advertise a routable host:port)")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, target, bytes.NewReader(body))
	if err != nil {
		return notLeader("cannot build the request to leader " + leader.ID)
	}
	for _, h := range forwardedHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(HeaderForwardedBy, s.selfID())
	s.metrics.forwarded.WithLabelValues(info.route).Inc()
	info.forwarded = leader.ID
	resp, err := s.cfg.ForwardClient.Do(req)
	if err != nil {
		e := errorf(http.StatusBadGateway, CodeLeaderUnreachable, "forwarding to leader %s at %s failed: %v", leader.ID, leader.HTTPAddr, err)
		e.leader = hint
		return timeoutAs(e, ctx)
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		if hopHeaders[k] {
			continue
		}
		w.Header()[k] = vs
	}
	w.Header().Set(HeaderRequestID, info.id)
	w.Header().Set(HeaderServedBy, leader.ID)
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		info.log.Warn("copying the leader's response", "error", err.Error())
	}
	return nil
}

// leaderURL builds the leader's URL for the request: the leader's address
// (with ForwardScheme unless it has a scheme) and the request's path and
// query.
func (s *server) leaderURL(addr string, u *url.URL) (string, error) {
	base := addr
	if !strings.Contains(addr, "://") {
		base = s.cfg.ForwardScheme + "://" + addr
	}
	b, err := url.Parse(base)
	if err != nil || b.Host == "" || (b.Scheme != "http" && b.Scheme != "https") {
		return "", errors.New("api: bad leader address")
	}
	// A bind address such as ":8080" or "0.0.0.0:8080" names no host
	// another member can reach.
	if h := b.Hostname(); h == "" {
		return "", errors.New("api: leader address has no host")
	} else if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		return "", errors.New("api: leader address is unspecified")
	}
	return strings.TrimSuffix(b.String(), "/") + u.RequestURI(), nil
}

func (s *server) selfID() string {
	if id := s.c.Status().ID; id != "" {
		return id
	}
	return "unknown"
}
