package coordinator

import "github.com/hashicorp/raft"

// CaughtUp reports whether this member's replicated state is current
// enough to judge node keys: it leads and has applied the entries of
// earlier terms, or it follows a known leader and has applied every entry
// that leader has told it is committed. A member that has just restarted
// holds only its snapshot and local log until the leader's first
// AppendEntries; before then it could refuse a node enrolled after its
// snapshot, so node keys it does not know are answered "not ready"
// (protocol.CodeNotReady) rather than "not enrolled".
//
// Limits: the commit index a follower learns grows with each batch the
// leader sends, so a member far behind may pass for caught up between two
// batches; and a member that rejoins after a partition (not a restart)
// keeps its old commit index, so it passes for caught up from the
// leader's first heartbeat until the missing entries arrive. A node
// refused there is admitted by the leader, and package node treats one
// member's refusal as final only when no member names a leader.
func (c *Coordinator) CaughtUp() bool {
	if c.closed.Load() {
		return false
	}
	if c.leading.Load() {
		return true
	}
	if c.raft.State() != raft.Follower {
		return false
	}
	if _, id := c.raft.LeaderWithID(); id == "" {
		return false
	}
	commit := c.raft.CommitIndex()
	return commit > 0 && c.raft.AppliedIndex() >= commit
}

// leaderTerm is the Raft term of the leader this member knows, 0 if it
// knows none.
func (c *Coordinator) leaderTerm() uint64 {
	if _, id := c.raft.LeaderWithID(); id == "" {
		return 0
	}
	return c.raft.CurrentTerm()
}
