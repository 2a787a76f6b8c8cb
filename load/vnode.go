package load

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// vnode is one virtual node: its own identity and QUIC connection, one
// sealed update per announced round of the job.
type vnode struct {
	e   *engine
	idx int
	id  *crypto.Identity
	byz bool

	client *protocol.Client
	addr   string
	origin string
	done   map[uint64]bool // rounds answered for good
}

// run connects, subscribes and answers announcements until ctx ends. It
// reconnects whenever the subscription ends or the node learns that the
// leader moved (a follower announces no rounds); after maxReconnects
// failed attempts in a row it gives up (counted as node_gave_up).
func (v *vnode) run(ctx context.Context) {
	v.done = map[uint64]bool{}
	defer func() {
		if v.client != nil {
			v.client.Close()
		}
	}()
	for failures := 0; ctx.Err() == nil; {
		if failures > maxReconnects {
			v.e.fail(ErrKindGaveUp)
			return
		}
		if failures > 0 && !sleepCtx(ctx, 100*time.Millisecond<<min(failures, 5)) {
			return
		}
		if err := v.connect(ctx, v.e.leaderAddr()); err != nil {
			if ctx.Err() == nil {
				v.e.fail(ErrKindDial)
			}
			failures++
			continue
		}
		anns, err := v.client.Subscribe(ctx)
		if err != nil {
			if ctx.Err() == nil {
				v.e.fail(ErrKindSubscribe)
			}
			failures++
			continue
		}
		failures = 0
		v.e.connected.Add(1)
		v.serve(ctx, anns)
		v.e.connected.Add(-1)
		if !sleepCtx(ctx, v.e.reconnectDelay(v.idx)) {
			return
		}
	}
}

// maxLeaderHops bounds the redirects one connect follows.
const maxLeaderHops = 3

// connect dials addr with a new connection and says Hello; when the
// member names another leader it follows (at most maxLeaderHops times).
func (v *vnode) connect(ctx context.Context, addr string) error {
	if v.client != nil {
		v.client.Close()
		v.client = nil
	}
	pid, err := protocol.NewIdentity(v.id.SigningKey)
	if err != nil {
		return err
	}
	d := &protocol.QUICDialer{TLS: protocol.ClientConfig(pid, v.e.tgt.Cluster.PinnedKeys())}
	for hop := 0; ; hop++ {
		c, err := protocol.Dial(ctx, d, addr, protocol.Config{})
		if err != nil {
			return err
		}
		ack, err := c.Hello(ctx, &protocol.Hello{NodeID: v.id.NodeID(), ClientInfo: "mfn-load"})
		if err != nil {
			c.Close()
			return err
		}
		if ack.LeaderHint != "" && ack.LeaderHint != addr && hop < maxLeaderHops {
			c.Close()
			v.e.setLeader(ack.LeaderHint)
			addr = ack.LeaderHint
			continue
		}
		v.client, v.addr, v.origin = c, addr, ack.ClusterOrigin
		return nil
	}
}

// leaderCheck is how often a subscribed node compares its member with
// the leader the run knows (from redirects and the cluster status).
const leaderCheck = 2 * time.Second

// serve answers the announcements of one subscription.
func (v *vnode) serve(ctx context.Context, anns <-chan *protocol.RoundAnnouncement) {
	t := time.NewTicker(leaderCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if v.e.leaderAddr() != v.addr {
				return // the leader moved: reconnect there
			}
		case a, ok := <-anns:
			if !ok {
				return
			}
			if a.JobID != v.e.cfg.JobID || v.done[a.Round] || v.idx >= v.e.cfg.submitters() {
				continue
			}
			if v.submit(ctx, a) {
				v.done[a.Round] = true
			}
			if v.client == nil {
				return // redirected: subscribe on the new connection
			}
		}
	}
}

// submit builds, seals and submits the update for a, within a slot. It
// reports whether the round is answered for good (acknowledged or
// refused); false means retry after reconnecting.
func (v *vnode) submit(ctx context.Context, a *protocol.RoundAnnouncement) bool {
	e := v.e
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-e.slots }()
	e.noteAnnouncement(a.Round)
	stmt := &crypto.Statement{Origin: v.origin, JobID: a.JobID, Round: a.Round, NodeID: v.id.NodeID(),
		BaseModelHash: a.BaseHash, SampleCount: 1, Time: time.Now().UTC()}
	send, size, err := v.prepare(a, stmt)
	if err != nil {
		e.fail(ErrKindSeal)
		return true
	}
	// uncertain: a submission failed in transport, so the cluster may
	// have committed it without the acknowledgement reaching this node.
	uncertain := false
	defer func() {
		if uncertain {
			e.unconfirmed.Add(1)
		}
	}()
	for try := 0; try < maxSubmitTries; try++ {
		if v.client == nil || isDone(v.client.Done()) {
			// The connection died (leader lost): resubmit through the
			// leader; a committed copy answers "duplicate".
			if err := v.connect(ctx, e.leaderAddr()); err != nil {
				if ctx.Err() != nil {
					return false
				}
				e.fail(ErrKindDial)
				if !sleepCtx(ctx, 100*time.Millisecond<<min(try, 5)) {
					return false
				}
				continue
			}
		}
		t0 := time.Now()
		ack, err := send(ctx, v.client)
		lat := time.Since(t0)
		var pe *protocol.ProtocolError
		errors.As(err, &pe)
		switch {
		case err == nil:
			uncertain = false
			e.acked(AckRecord{Node: v.id.NodeID(), Round: a.Round, Leaf: ack.LeafIndex}, lat, size)
			return true
		case errors.Is(err, protocol.CodeDuplicate):
			uncertain = false
			e.acked(AckRecord{Node: v.id.NodeID(), Round: a.Round, Duplicate: true}, lat, size)
			return true
		case ctx.Err() != nil:
			return false
		}
		kind := classify(err)
		e.fail(kind)
		switch kind {
		case ErrKindNotLeader:
			if pe != nil && pe.LeaderAddr != "" && pe.LeaderAddr != v.addr {
				e.setLeader(pe.LeaderAddr)
				if v.connect(ctx, pe.LeaderAddr) != nil {
					v.client = nil
					return false
				}
				continue
			}
			v.client = nil
			return false
		case ErrKindSubmit, ErrKindTimeout:
			uncertain = true
			if !sleepCtx(ctx, 100*time.Millisecond<<min(try, 5)) {
				return false
			}
		case ErrKindRateLimited, ErrKindUnavailable:
			wait := 100 * time.Millisecond << min(try, 5)
			if pe != nil && pe.RetryAfter > 0 {
				wait = min(pe.RetryAfter, 10*time.Second)
			}
			if !sleepCtx(ctx, wait) {
				return false
			}
		default: // round closed, rejected: final
			return true
		}
	}
	e.fail(ErrKindNotSubmitted)
	return true
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// updateValues are node idx's values for round: uniform in ±0.01, from a
// generator seeded by (seed, idx, round). A Byzantine node sends them
// negated ×10 ("sign-flip") or ×10^4 ("large").
func updateValues(seed uint64, idx int, round uint64, dim int, byz bool, attack string) []float64 {
	rng := rand.New(rand.NewPCG(seed, uint64(idx)<<32^round))
	scale := updateScale(byz, attack)
	vs := make([]float64, dim)
	for i := range vs {
		vs[i] = scale * (2*rng.Float64() - 1)
	}
	return vs
}

// updateScale is the range of a virtual node's update values.
func updateScale(byz bool, attack string) float64 {
	if byz {
		switch attack {
		case "sign-flip":
			return -0.1
		case "large":
			return 100
		}
	}
	return 0.01
}

func (e *engine) noteAnnouncement(round uint64) {
	e.mu.Lock()
	if e.firstAnn.IsZero() {
		e.firstAnn = time.Now()
	}
	e.mu.Unlock()
	for {
		r := e.round.Load()
		if round <= r || e.round.CompareAndSwap(r, round) {
			return
		}
	}
}

func (e *engine) acked(a AckRecord, lat time.Duration, size int) {
	now := time.Now()
	e.ackedN.Add(1)
	e.bytes.Add(int64(size))
	e.mu.Lock()
	e.acks = append(e.acks, a)
	e.ackLat = append(e.ackLat, lat)
	e.sealedSize = size
	if now.After(e.lastAck[a.Round]) {
		e.lastAck[a.Round] = now
	}
	if now.After(e.lastAckAt) {
		e.lastAckAt = now
	}
	e.mu.Unlock()
}
