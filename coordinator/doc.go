// Package coordinator is the MFN coordinator cluster: a Raft-replicated
// state machine holding enrolled nodes, training jobs, rounds, accepted
// updates, model versions and the audit log; the round engine that the
// leader runs; and the ingest of sealed updates from edge nodes.
//
// # Members and replication
//
// Each member is a *Coordinator built with New from a Config: durable
// Storage (OpenStorage: bbolt behind a log cache, file snapshots) and a
// raft.Transport (NewTLSTransport over a TLSStreamLayer: TCP with mutual
// TLS 1.3, peers pinned to the cluster's coordinator Ed25519 keys). A new
// cluster is started with Bootstrap on its first members; more are added
// with AddVoter on the leader (refused if the id, key or Raft address is
// already another member's, or if the leader cannot reach the new voter)
// and removed with RemoveServer; which keys the Raft transport trusts
// follows the replicated member list, so a removed member is cut off on
// every member at once. A member with Raft state in its storage rejoins
// its cluster on restart, and Bootstrap is then a no-op. After losing a
// quorum for good, Recover rebuilds a stopped survivor's storage into a
// new configuration offline.
//
// # Identity
//
// A node is enrolled with one Ed25519 key, and a key belongs to one node
// id for ever: enrolling it under a second id, or again after revocation,
// is a *KeyInUseError naming the holder. The QUIC handshake finds the node
// of a key in a replicated index.
//
// # Commands
//
// Every change is a typed, versioned command committed through Raft (one
// version byte, one type byte, a JSON body of a fixed struct) and applied
// deterministically: Apply reads no clock and no randomness, and iterates
// no map into its output; the leader's clock readings travel inside the
// commands. Two replicas fed the same log hold byte-identical snapshots.
//
// # Rounds
//
// Only the leader runs the round engine (see rounds.go). It opens a round
// per running job, accepts updates through Submit, seals the round at
// MaxUpdates, or at MinUpdates once the deadline has passed, aggregates
// the sealed updates with the job's rule, and commits the new model
// version. A round below MinUpdates at its hard deadline fails, and the
// job continues or stops. Deadlines are absolute times in the replicated
// state, so a new leader resumes every round where it stood. A job also
// fails after MaxFailedRounds consecutive failed rounds (10 by default);
// jobs can be archived (models freed) or deleted.
//
// # Acknowledgements
//
// Submit acknowledges an update only after its entry is committed and
// applied, with the entry's Raft index and the update's audit leaf index.
// The state machine accepts at most one update per node and round; a node
// retrying an acknowledged update gets the original acknowledgement back.
//
// # Reads and writes
//
// Writes (enrolment, jobs, membership) go to the leader; on a follower they
// fail with a *NotLeaderError naming the leader's addresses, for the HTTP
// layer to forward or redirect. Reads are served from the local replica;
// Linearize makes a read on the leader current.
package coordinator
