package clustertest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// Node is a test edge node: an Ed25519 identity, a QUIC connection to
// one member at a time, and the sealing of updates to the cluster's
// coordinators. Unlike the real agent (package node) it trains nothing:
// tests choose the update values. A Node is safe for concurrent use, but
// its requests share one connection.
type Node struct {
	ID       string
	Identity *crypto.Identity

	c *Cluster

	mu   sync.Mutex
	conn *protocol.Client
	addr string // the conn's member address
	hint string // where the last acknowledgement came from
}

// Receipt is a successful Submit: the acknowledgement, the QUIC address
// of the member that gave it, and how many attempts and redirects it took.
type Receipt struct {
	Ack       protocol.Ack
	Addr      string
	Attempts  int
	Redirects int
}

// nodeConfig is the protocol configuration of test nodes: short
// handshakes, and an idle timeout of 4 s (QUIC keep-alives every ~1.3 s)
// so that a connection to a killed or frozen member dies within 4 s
// instead of the default minute: QUIC has no other way to notice a peer
// that vanished without closing.
var nodeConfig = protocol.Config{HandshakeTimeout: 3 * time.Second, RequestTimeout: 20 * time.Second, IdleTimeout: 4 * time.Second}

// errConnLost reports that the connection to a member died (idle timeout:
// the member is dead or frozen).
var errConnLost = errors.New("clustertest: connection lost")

// NewNodes creates n node identities named n000, n001, … drawn from a
// ChaCha8 stream seeded with seed. They are not enrolled (see Enroll).
func (c *Cluster) NewNodes(n int, seed uint64) ([]*Node, error) {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	rng := rand.NewChaCha8(s)
	out := make([]*Node, n)
	for i := range out {
		id, err := crypto.GenerateIdentity(crypto.RoleNode, rng)
		if err != nil {
			return nil, err
		}
		out[i] = &Node{ID: fmt.Sprintf("n%03d", i), Identity: id, c: c}
	}
	return out, nil
}

// Enroll enrolls the nodes through the leader's API, spreading the
// requests over the operator keys (each key's rate limit is per route).
// Enrolling the same id and key again succeeds, so retries are safe.
func (c *Cluster) Enroll(ctx context.Context, nodes []*Node) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.OperatorKeys))
	for k, key := range c.OperatorKeys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < len(nodes); i += len(c.OperatorKeys) {
				n := nodes[i]
				err := c.Write(ctx, "enroll "+n.ID, key, func(cl *api.Client) error {
					_, err := cl.EnrollNode(ctx, n.ID, api.PublicKey(n.Identity.PublicKey()))
					return err
				})
				if err != nil {
					errs[k] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Seal seals an update of values (encoded as float32) for a job's round
// on base, with a fixed statement time so that the same inputs give the
// same statement. It returns the envelope and the update's SHA-256.
func (n *Node) Seal(job string, round uint64, base coordinator.Hash, values []float64, samples uint64) ([]byte, coordinator.Hash, error) {
	upd := crypto.EncodeUpdate(values, crypto.Float32)
	stmt := &crypto.Statement{Origin: n.c.Origin, JobID: job, Round: round, NodeID: n.ID, BaseModelHash: base,
		SampleCount: samples, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	sealed, err := crypto.Seal(stmt, upd, n.Identity.SigningKey, n.c.Recipients)
	return sealed, sha256.Sum256(upd), err
}

// connect returns a Hello'd connection to addr, reusing the current one
// if it is to addr.
func (n *Node) connect(ctx context.Context, addr string) (*protocol.Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil && n.addr == addr {
		select {
		case <-n.conn.Done():
			// Report the loss once, so that Submit moves on to another
			// member rather than redialing a dead one.
			n.conn = nil
			return nil, fmt.Errorf("%w to %s", errConnLost, addr)
		default:
			return n.conn, nil
		}
	}
	if n.conn != nil {
		n.conn.Close()
		n.conn = nil
	}
	pid, err := protocol.NewIdentity(n.Identity.SigningKey)
	if err != nil {
		return nil, err
	}
	d := &protocol.QUICDialer{TLS: protocol.ClientConfig(pid, n.c.CoordKeys), Config: nodeConfig}
	cl, err := protocol.Dial(ctx, d, addr, nodeConfig)
	if err != nil {
		return nil, err
	}
	if _, err := cl.Hello(ctx, &protocol.Hello{NodeID: n.ID, ClientInfo: "clustertest"}); err != nil {
		cl.Close()
		return nil, err
	}
	n.conn, n.addr = cl, addr
	return cl, nil
}

// Connect dials the member at addr (a QUIC address) and says Hello, so
// that later submissions start there without a handshake.
func (n *Node) Connect(ctx context.Context, addr string) error {
	if _, err := n.connect(ctx, addr); err != nil {
		return err
	}
	n.mu.Lock()
	n.hint = addr
	n.mu.Unlock()
	return nil
}

// drop closes the connection if it is still the one to addr.
func (n *Node) drop(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil && n.addr == addr {
		n.conn.Close()
		n.conn = nil
	}
}

// Close closes the node's connection.
func (n *Node) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		n.conn.Close()
		n.conn = nil
	}
}

// SubmitTo makes one attempt: it sends sealed to the member at addr (a
// QUIC address) and returns its answer unchanged — an Ack, a
// *protocol.ProtocolError (CodeNotLeader with the leader's address, …),
// or a transport error. A failed attempt drops the connection.
func (n *Node) SubmitTo(ctx context.Context, addr string, sealed []byte) (*protocol.Ack, error) {
	cl, err := n.connect(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("clustertest: %s dialing %s: %w", n.ID, addr, err)
	}
	ack, err := cl.Submit(ctx, sealed)
	if err != nil {
		var pe *protocol.ProtocolError
		if !errors.As(err, &pe) {
			n.drop(addr)
		}
		return nil, err
	}
	return ack, nil
}

// attemptTimeout bounds one submission attempt: a new leader may hold a
// submission for up to the coordinator's apply timeout (10 s) while it
// catches up, and a frozen member never answers.
const attemptTimeout = 15 * time.Second

// Submit delivers sealed to the leader as a real node would: it starts at
// the member that acknowledged last (or the first member), follows
// CodeNotLeader redirects to the named leader at once, waits out
// CodeRateLimited, and moves on to the next member after a transport
// failure, a CodeUnavailable or a redirect that names no leader. Any
// other protocol error (duplicate, round closed, bad request, …) is
// returned as is. It gives up when ctx ends, with the last error.
func (n *Node) Submit(ctx context.Context, sealed []byte) (Receipt, error) {
	n.mu.Lock()
	addr := n.hint
	n.mu.Unlock()
	if addr == "" {
		addr = n.c.Members[0].QUICAddr
	}
	var rc Receipt
	var last error
	for ctx.Err() == nil {
		rc.Attempts++
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		ack, err := n.SubmitTo(actx, addr, sealed)
		cancel()
		if err == nil {
			rc.Ack, rc.Addr = *ack, addr
			n.mu.Lock()
			n.hint = addr
			n.mu.Unlock()
			return rc, nil
		}
		last = err
		var pe *protocol.ProtocolError
		isPE := errors.As(err, &pe)
		wait := 100 * time.Millisecond
		switch {
		case isPE && pe.Code == protocol.CodeNotLeader && pe.LeaderAddr != "" && pe.LeaderAddr != addr:
			addr = pe.LeaderAddr
			rc.Redirects++
			continue
		case isPE && pe.Code == protocol.CodeRateLimited:
			wait = max(pe.RetryAfter, 5*time.Millisecond)
		case isPE && pe.Code != protocol.CodeNotLeader && pe.Code != protocol.CodeUnavailable:
			return rc, err
		default:
			addr = n.c.nextQUIC(addr)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return rc, fmt.Errorf("clustertest: %s: submit gave up after %d attempts: %w (last error: %v)", n.ID, rc.Attempts, ctx.Err(), last)
}

// nextQUIC returns the QUIC address of the member after the one at addr.
func (c *Cluster) nextQUIC(addr string) string {
	for i, m := range c.Members {
		if m.QUICAddr == addr {
			return c.Members[(i+1)%len(c.Members)].QUICAddr
		}
	}
	return c.Members[0].QUICAddr
}
