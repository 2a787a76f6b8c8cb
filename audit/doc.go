// Package audit is MFN's tamper-evident audit log: an append-only Merkle
// log of every update the cluster accepted, signed checkpoints over it, and
// the proofs and offline checks that let an auditor confirm who contributed
// what without trusting the cluster.
//
// # What a leaf records
//
// Each accepted update becomes one Leaf: the cluster origin, job id, round,
// node id, the node's Ed25519 public key, the SHA-256 of the update, the
// node's signed statement (package crypto's Statement encoding) with its
// signature, and the time the cluster accepted it. Leaves have one
// canonical, versioned binary encoding (see Leaf for the byte layout) and
// the decoder accepts nothing else. Leaf.Verify checks the node's signature
// over the statement (under crypto's domain-separation prefix) and that
// the statement says the same origin, job, round, node and update hash as
// the leaf. The accept time is outside the node's signature; it is bound
// by the tree instead.
//
// # The tree
//
// The log is an RFC 6962 Merkle tree (github.com/transparency-dev/merkle):
// a leaf's hash is SHA-256(0x00 || encoded leaf), an interior node's is
// SHA-256(0x01 || left || right), and the tree over n leaves splits at the
// largest power of two below n. Log keeps every perfect subtree hash
// (about 2n hashes), which is all an inclusion or consistency proof for any
// earlier size needs; proofs are assembled by merkle/proof.Inclusion and
// proof.Consistency and check with proof.VerifyInclusion and
// proof.VerifyConsistency.
//
// A Log does no I/O, reads no clock and draws no randomness, so a
// replicated state machine can drive it: replicas that apply the same
// Append and AddCheckpoint calls hold byte-identical logs, Snapshot
// serialises one and Restore rebuilds it (checking the recorded root).
//
// # Checkpoints
//
// A checkpoint commits to the first n leaves. Its body follows C2SP
// tlog-checkpoint (https://c2sp.org/tlog-checkpoint):
//
//	mfn.example/cluster-1
//	20
//	nPwmv/McVKSKqD4GGvh1sxJ07lNgOJUusxLjTqYgQeE=
//
// (origin, decimal size, base64 root, optional extension lines) and it is
// wrapped in a signed note (golang.org/x/mod/sumdb/note) by the cluster's
// log key:
//
//	mfn.example/cluster-1
//	20
//	nPwmv/McVKSKqD4GGvh1sxJ07lNgOJUusxLjTqYgQeE=
//
//	— mfn.example/cluster-1 oqYvrtWpX8gSDZtQ...
//
// GenerateLogKey makes the key pair: the secret "PRIVATE+KEY+name+hash+data"
// string stays with the coordinators (they sign with SignCheckpoint), the
// verifier key "name+hash+data" is what auditors hold (NewLogVerifier).
// Name the key after the cluster origin. ParseCheckpoint accepts a note only
// with a valid signature by the given verifier and parses the body
// strictly (canonical numbers and base64, no empty lines).
//
// # Proofs for one update
//
// Log.Bundle packages what an auditor needs for one update: the encoded
// leaf, its index, its inclusion proof, and the newest signed checkpoint,
// as JSON with base64 bytes (see Bundle). VerifyBundle checks the
// checkpoint's signature, decodes the leaf, verifies the node signature
// (and, given NodeKeys from enrollment records, that the node is enrolled
// with that key) and the inclusion proof up to the checkpoint's root.
//
// # Auditing a whole log
//
// ExportDir writes a log for offline auditors:
//
//	DIR/checkpoints/000001.note, 000002.note, …  every signed checkpoint, oldest first
//	DIR/leaves/00000000.leaf, 00000001.leaf, …   every leaf under the newest checkpoint, by index
//
// VerifyLogDir (or VerifyLogFS) then checks, and reports the first failure
// as a *LeafError (leaf index and file), a *CheckpointError (checkpoint
// file, and the earlier one for pair checks) or a *LayoutError:
//
//  1. every checkpoint is signed by the log key, none is smaller than the
//     one before it (ErrRollback), and two of equal size have equal roots
//     (ErrFork);
//  2. the leaves are numbered without gaps, each decodes, carries the log's
//     origin and a valid node signature that matches its statement;
//  3. the tree rebuilt from the leaves has the newest checkpoint's size and
//     root (ErrSizeMismatch, ErrRootMismatch — the message narrows a
//     changed leaf down to the range between two checkpoints);
//  4. each checkpoint is consistent with the one before it: an RFC 6962
//     consistency proof computed from the leaves verifies between the two
//     signed roots (ErrInconsistent), so the log only ever grew.
//
// A changed, dropped, reordered or inserted leaf fails step 2 or 3; a
// forked or rolled-back checkpoint fails step 1 or 4. What a single export
// cannot show by itself is a log cut back to an older checkpoint together
// with all newer checkpoints, or a fork served consistently to one auditor:
// so auditors keep the newest checkpoint they accepted (or one from a
// bundle, or one gossiped by another auditor) and pass it as
// VerifyOptions.Since to VerifyLogFSWith ("mfn audit verify-log --since
// FILE"), which requires the log to extend it.
//
// # Round results, cosignatures and replay
//
// A closed round adds a ResultLeaf (a typed leaf: first byte 0x00, kind
// 0x01, version 1, so update leaves keep their encoding): the rule, its
// canonical parameters (FormatRuleParams), the base and new model hashes
// and, in aggregation input order, the leaf index of every update of the
// round with used/rejected, reason and score (EntriesFromReport builds
// them from the rule's report). Log.AppendResult appends it.
//
// Coordinator members attest a round with C2SP tlog-cosignature Ed25519
// lines on the checkpoint covering its result (CosignCheckpoint,
// AddCosignatures, Log.Cosign); VerifyQuorum requires a majority.
// VerifyLogFSWith then also checks every result leaf: its updates are
// earlier update leaves of its job and round, none is named twice, its
// base hash is the job's previous new hash, and a majority of
// VerifyOptions.Members (or the export's members.keys) cosigned a
// checkpoint covering it; failures are *RoundError naming the round.
//
// A round archive (WriteRoundArchive, ReadRoundArchiveTar,
// ReadRoundArchiveFS) holds the result leaf, the base model, the update
// leaves and their sealed envelopes; Replay opens the envelopes with a
// coordinator age key, runs the named pipeline (package aggregate) and
// compares the new model's hash bit for bit. docs/AUDIT.md documents the
// encodings, limits and checks.
//
// The command line wraps all of this: "mfn audit verify --bundle FILE
// --log-key KEY", "mfn audit verify-log DIR --log-key KEY", "mfn audit
// keygen", "mfn audit demo-log" (a signed sample log for tutorials, with
// round results under --rounds), "mfn audit replay --archive A --identity
// COORD" and "mfn audit demo-round".
package audit
