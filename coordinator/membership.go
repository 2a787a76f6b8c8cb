package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// Membership: who the cluster trusts follows the replicated member list.
//
//   - AddVoter refuses an id already registered (or in the Raft
//     configuration) with other addresses or another key, and a key or
//     Raft address that belongs to another member (ErrExists, HTTP 409);
//     a new voter is added only once the leader has reached it and it has
//     proved its key (Config.Prober), so a typo cannot add a voter nobody
//     can reach and cost the quorum.
//   - RemoveServer takes the member out of the Raft configuration, then
//     out of the member list; the remove-member entry records its key as
//     removed, and every replica, as it applies it, drops the key from its
//     PeerKeys (syncTrust): new Raft handshakes with it fail, and the Raft
//     connections it already has fail at their next read or write
//     (trustedConn). Unknown ids are ErrNotFound (404).
//   - A new leader removes from the member list every member that is no
//     longer in the Raft configuration (a self-removed leader, members
//     dropped by "mfn coordinator recover"), so their keys lose trust too,
//     and registers the voters that have no record (bootstrapped, never
//     led), identified over their Raft port (Identify, memberInfoALPN).

// Remove stops trusting key.
func (p *PeerKeys) Remove(key ed25519.PublicKey) {
	p.mu.Lock()
	delete(p.keys, string(key))
	p.mu.Unlock()
}

// syncTrust makes PeerKeys follow the replicated member list: registered
// members' keys are trusted, removed members' keys are not (this member's
// own key excepted). It runs after every membership entry and after a
// snapshot is restored.
func (c *Coordinator) syncTrust() {
	p := c.cfg.PeerKeys
	if p == nil {
		return
	}
	current, removed := c.fsm.memberKeys()
	for _, k := range current {
		p.Add(k)
	}
	for _, k := range removed {
		if !bytes.Equal(k, c.cfg.PublicKey) {
			p.Remove(k)
		}
	}
}

// trustedConn is an authenticated Raft connection that fails, and closes,
// at its first read or write after its peer's key left the trusted set.
type trustedConn struct {
	net.Conn
	key   ed25519.PublicKey
	peers *PeerKeys
}

// guardConn wraps an authenticated TLS connection whose peer was trusted
// for its key in peers, so that it follows peers; other connections (a
// member's HTTPS certificate trusted through a CA) are returned unchanged.
func guardConn(c net.Conn, peers *PeerKeys) net.Conn {
	tc, ok := c.(*tls.Conn)
	if !ok || peers == nil {
		return c
	}
	key := PublicKeyOf(tc.ConnectionState())
	if key == nil || !peers.Contains(key) {
		return c
	}
	return &trustedConn{Conn: c, key: key, peers: peers}
}

func (c *trustedConn) check() error {
	if c.peers.Contains(c.key) {
		return nil
	}
	c.Conn.Close()
	return fmt.Errorf("%w: %x was removed from the cluster", ErrUntrustedPeer, []byte(c.key))
}

func (c *trustedConn) Read(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *trustedConn) Write(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// probeAlertWait is how long Probe waits for the peer's verdict on this
// member's certificate: in TLS 1.3 the server checks the client's
// certificate after the client's handshake has completed, and a refusal
// arrives as an alert on the first read.
const probeAlertWait = 300 * time.Millisecond

// Probe implements Prober: it dials addr, completes the mutual TLS
// handshake accepting only a certificate of key (whatever PeerKeys
// holds), and waits up to 300 ms for the peer to refuse this member's
// certificate.
func (s *TLSStreamLayer) Probe(ctx context.Context, addr string, key ed25519.PublicKey) error {
	cfg := s.client.Clone()
	cfg.VerifyPeerCertificate = pinnedVerifier(NewPeerKeys(key))
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	wait := time.Now().Add(probeAlertWait)
	if dl, ok := ctx.Deadline(); ok && dl.Before(wait) {
		wait = dl
	}
	if err := conn.SetReadDeadline(wait); err != nil {
		return err
	}
	var b [1]byte
	_, err = conn.Read(b[:])
	var ne net.Error
	if err == nil || errors.Is(err, io.EOF) || (errors.As(err, &ne) && ne.Timeout()) {
		return nil // no refusal: the peer waits for a request, or closed cleanly
	}
	return fmt.Errorf("the member refused this leader's certificate (is this member's key in its --peer-keys?): %w", err)
}

// memberInfoALPN is the ALPN protocol on the Raft port under which a
// member answers, after the mutual TLS handshake, with the JSON of its own
// record (id and addresses) and closes: how a leader learns the addresses
// of members that never led.
const memberInfoALPN = "mfn-member-info/1"

// maxMemberInfo bounds the record Identify reads.
const maxMemberInfo = 4 << 10

// SetMemberInfo sets the record this member serves to leaders identifying
// it (New calls it when Config.Prober is the member's stream layer).
func (s *TLSStreamLayer) SetMemberInfo(m Member) {
	m.PublicKey = nil // the handshake proves the key
	b, err := json.Marshal(m)
	if err != nil || len(b) > maxMemberInfo {
		return
	}
	s.info.Store(&b)
}

// serveMemberInfo answers a member-info connection.
func (s *TLSStreamLayer) serveMemberInfo(conn *tls.Conn) {
	defer conn.Close()
	if b := s.info.Load(); b != nil {
		conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
		conn.Write(*b)
	}
}

// Identify implements Identifier: a mutual TLS handshake with addr (the
// peer must hold a trusted key and accept this member's) asking for its
// record over memberInfoALPN. A peer that does not serve it (an older
// build) is identified by its key alone over the Raft protocol.
func (s *TLSStreamLayer) Identify(ctx context.Context, addr string) (Member, error) {
	cfg := s.client.Clone()
	cfg.NextProtos = []string{memberInfoALPN}
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		d.Config = s.client
		if c, err = d.DialContext(ctx, "tcp", addr); err != nil {
			return Member{}, err
		}
		defer c.Close()
		return memberOf(c.(*tls.Conn), nil)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetReadDeadline(dl)
	}
	b, err := io.ReadAll(io.LimitReader(c, maxMemberInfo+1))
	if err != nil || len(b) > maxMemberInfo {
		return memberOf(c.(*tls.Conn), nil)
	}
	return memberOf(c.(*tls.Conn), b)
}

// memberOf returns the member of an identified connection: the key from
// its certificate and, if info decodes, its id and QUIC and HTTP
// addresses.
func memberOf(c *tls.Conn, info []byte) (Member, error) {
	key := PublicKeyOf(c.ConnectionState())
	if key == nil {
		return Member{}, fmt.Errorf("%w: no Ed25519 certificate", ErrUntrustedPeer)
	}
	var m Member
	if info != nil && json.Unmarshal(info, &m) != nil {
		m = Member{}
	}
	return Member{ID: m.ID, QUICAddr: m.QUICAddr, HTTPAddr: m.HTTPAddr, PublicKey: key}, nil
}

var (
	_ Prober     = (*TLSStreamLayer)(nil)
	_ Identifier = (*TLSStreamLayer)(nil)
)

// learnMembers runs when this member takes office: every voter of the
// Raft configuration that has no record in the member list (a
// bootstrapped member that never led) is identified over its Raft address
// and registered with that address, its key and the QUIC and HTTP
// addresses it tells (empty from an older build, until it leads).
func (c *Coordinator) learnMembers(ctx context.Context) {
	id, ok := c.cfg.Prober.(Identifier)
	if !ok {
		return
	}
	servers, err := c.configuration()
	if err != nil {
		return
	}
	for _, srv := range servers {
		if ctx.Err() != nil {
			return
		}
		if _, ok := c.fsm.member(string(srv.ID)); ok || string(srv.ID) == c.cfg.ID {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, c.cfg.ProbeTimeout)
		got, err := id.Identify(ictx, string(srv.Address))
		cancel()
		if err != nil {
			c.logger.Info("cannot identify a member yet", "other_member", string(srv.ID), "raft_addr", string(srv.Address), errAttr(err))
			continue
		}
		holder := ""
		for _, m := range c.fsm.memberList() {
			if bytes.Equal(m.PublicKey, got.PublicKey) {
				holder = m.ID
			}
		}
		if holder != "" || (got.ID != "" && got.ID != string(srv.ID)) {
			c.logger.Warn("a member's raft address answers as another member", "other_member", string(srv.ID),
				"answered_as", got.ID, "key_holder", holder)
			continue
		}
		m := Member{ID: string(srv.ID), RaftAddr: string(srv.Address), QUICAddr: got.QUICAddr, HTTPAddr: got.HTTPAddr, PublicKey: got.PublicKey}
		if _, err := c.propose(ctx, cmdRegisterMember, &registerMemberCmd{Member: m}); err != nil {
			c.logger.Warn("register an identified member", "other_member", m.ID, errAttr(err))
		}
	}
}

// configuration returns the latest Raft configuration.
func (c *Coordinator) configuration() ([]raft.Server, error) {
	f := c.raft.GetConfiguration()
	if err := c.wait(f); err != nil {
		return nil, fmt.Errorf("coordinator: raft configuration: %w", err)
	}
	return f.Configuration().Servers, nil
}

// AddVoter registers a member's addresses and key in the replicated state
// and adds it to the Raft configuration as a voter. Adding a member again
// with the same addresses and key changes nothing. An id registered (or in
// the configuration) with other addresses or another key, or a key or
// Raft address held by another member, gives ErrExists naming the holder;
// a new voter the leader cannot reach (Config.Prober) gives ErrInvalid.
// Leader only (*NotLeaderError otherwise).
func (c *Coordinator) AddVoter(ctx context.Context, m Member) error {
	if err := validID("member", m.ID); err != nil {
		return err
	}
	if m.RaftAddr == "" {
		return fmt.Errorf("%w: member %s: raft_addr must not be empty", ErrInvalid, m.ID)
	}
	if len(m.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: member %s: public key has %d bytes, want %d", ErrInvalid, m.ID, len(m.PublicKey), ed25519.PublicKeySize)
	}
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	if c.raft.State() != raft.Leader {
		return c.notLeader()
	}
	servers, err := c.configuration()
	if err != nil {
		return err
	}
	var inConfig *raft.Server
	for i, srv := range servers {
		switch {
		case string(srv.ID) == m.ID:
			inConfig = &servers[i]
		case string(srv.Address) == m.RaftAddr:
			return fmt.Errorf("%w: member %s: raft_addr %s is member %s's", ErrExists, m.ID, m.RaftAddr, srv.ID)
		}
	}
	if inConfig != nil && string(inConfig.Address) != m.RaftAddr {
		return fmt.Errorf("%w: member %s is in the cluster at raft_addr %s, not %s; remove it first to change its address",
			ErrExists, m.ID, inConfig.Address, m.RaftAddr)
	}
	cur, registered := c.fsm.member(m.ID)
	if registered {
		if err := sameMember(cur, m); err != nil {
			return err
		}
	}
	for _, o := range c.fsm.memberList() {
		if o.ID != m.ID && bytes.Equal(o.PublicKey, m.PublicKey) {
			return fmt.Errorf("%w: member %s: public key belongs to member %s", ErrExists, m.ID, o.ID)
		}
	}
	if inConfig == nil && c.cfg.Prober != nil {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.ProbeTimeout)
		err := c.cfg.Prober.Probe(pctx, m.RaftAddr, m.PublicKey)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: member %s: the leader cannot reach raft_addr %s within %v: %v", ErrInvalid, m.ID, m.RaftAddr, c.cfg.ProbeTimeout, err)
		}
	}
	if !registered || cur.QUICAddr != m.QUICAddr || cur.HTTPAddr != m.HTTPAddr {
		if _, err := c.propose(ctx, cmdRegisterMember, &registerMemberCmd{Member: m}); err != nil {
			return err
		}
	}
	if inConfig != nil && inConfig.Suffrage == raft.Voter {
		return nil
	}
	f := c.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, c.cfg.ApplyTimeout)
	if err := c.wait(f); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return c.notLeader()
		}
		return fmt.Errorf("coordinator: add voter %s: %w", m.ID, err)
	}
	return nil
}

// sameMember returns ErrExists naming the first field in which a join
// request differs from the registered member. An address the record
// lacks (a member the leader identified by its Raft address only) may be
// filled in.
func sameMember(cur, m Member) error {
	diff := func(field, have, want string) error {
		return fmt.Errorf("%w: member %s is registered with %s %q, not %q; remove it first to change it", ErrExists, m.ID, field, have, want)
	}
	switch {
	case cur.RaftAddr != m.RaftAddr:
		return diff("raft_addr", cur.RaftAddr, m.RaftAddr)
	case cur.QUICAddr != "" && cur.QUICAddr != m.QUICAddr:
		return diff("quic_addr", cur.QUICAddr, m.QUICAddr)
	case cur.HTTPAddr != "" && cur.HTTPAddr != m.HTTPAddr:
		return diff("http_addr", cur.HTTPAddr, m.HTTPAddr)
	case !bytes.Equal(cur.PublicKey, m.PublicKey):
		return fmt.Errorf("%w: member %s is registered with another public key; remove it first to change it", ErrExists, m.ID)
	}
	return nil
}

// RemoveServer removes a member from the Raft configuration, then from
// the member list (its key loses trust on every member). An id in
// neither gives ErrNotFound. Leader only. Removing the leader itself is
// allowed: it steps down once the change commits, and the next leader
// removes its record.
func (c *Coordinator) RemoveServer(ctx context.Context, id string) error {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	if c.raft.State() != raft.Leader {
		return c.notLeader()
	}
	servers, err := c.configuration()
	if err != nil {
		return err
	}
	inConfig := false
	for _, srv := range servers {
		inConfig = inConfig || string(srv.ID) == id
	}
	_, registered := c.fsm.member(id)
	if !inConfig && !registered {
		return fmt.Errorf("%w: member %s is not in the cluster", ErrNotFound, id)
	}
	if inConfig {
		f := c.raft.RemoveServer(raft.ServerID(id), 0, c.cfg.ApplyTimeout)
		if err := c.wait(f); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return c.notLeader()
			}
			return fmt.Errorf("coordinator: remove server %s: %w", id, err)
		}
	}
	if !registered {
		return nil
	}
	_, err = c.propose(ctx, cmdRemoveMember, &removeMemberCmd{ID: id})
	if id == c.cfg.ID && errors.Is(err, ErrNotLeader) {
		return nil // stepped down; the next leader removes the record
	}
	return err
}

// reconcileMembers runs when this member takes office: members in the
// list but no longer in the Raft configuration are removed from it.
func (c *Coordinator) reconcileMembers(ctx context.Context) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	defer c.reconciled.Store(true)
	servers, err := c.configuration()
	if err != nil {
		c.logger.Warn("member reconciliation", errAttr(err))
		return
	}
	in := make(map[string]bool, len(servers))
	for _, s := range servers {
		in[string(s.ID)] = true
	}
	for _, m := range c.fsm.memberList() {
		if in[m.ID] || ctx.Err() != nil {
			continue
		}
		if _, err := c.propose(ctx, cmdRemoveMember, &removeMemberCmd{ID: m.ID}); err != nil {
			c.logger.Warn("remove a member that left the configuration", "removed_member", m.ID, errAttr(err))
			continue
		}
		c.logger.Info("removed a member that is no longer in the raft configuration", "removed_member", m.ID)
	}
}
