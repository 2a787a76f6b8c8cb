// Package load drives a coordinator cluster the way a fleet of nodes and
// operators would, and measures what it sustains. "mfn load" is its
// command line.
//
// # A run
//
// Run takes a Config (the scenario) and a Target (the cluster):
//
//  1. It derives Config.Nodes Ed25519 identities from Config.Seed and the
//     job id (same seed and job, same keys) and enrolls each through the
//     operator API, 16 requests at a time, retrying 429 and 503 answers.
//  2. It subscribes to the job's round_closed and round_failed events,
//     samples the coordinators' resources, and creates job Config.JobID
//     (task "load", the rule with f = Byzantine, max_updates = the
//     submitting nodes, so a round closes as soon as every one of them
//     submitted; Config.Submitters limits them to the first ones, at most
//     audit.MaxResultEntries, and the others only connect and subscribe).
//  3. Every virtual node, started evenly over Config.Ramp, dials its own
//     QUIC connection with its own key, says Hello, subscribes to round
//     announcements and, for each round of the job, builds its update
//     (Dim float32 values from a generator seeded by seed, node and round;
//     attack values for the Byzantine ones), signs and seals it to every
//     coordinator (crypto.Seal, as package node does) and submits it. At
//     most Config.Concurrency updates are built or in flight at once;
//     rate-limited and unavailable answers are retried a bounded number
//     of times.
//
// Nodes follow the leader: a Hello answer naming another leader, a "not
// leader" answer, and the cluster status the monitor polls every second
// all update the leader address the run knows; a subscribed node on
// another member reconnects there within 2 s (a follower announces no
// rounds). A submission whose connection died is resent through the
// leader, where a committed copy answers "duplicate" (an
// acknowledgement). If the round closes or the run ends first, the update
// is counted as Unconfirmed: it may be in the log without this process
// having seen its acknowledgement.
//  4. Alongside, Config.APIReaders read the cluster status, the job list,
//     the job and its rounds in a loop, and Config.Subscribers hold
//     WebSocket event subscriptions (the Locust-style operator scenario).
//  5. When the job ends (polled through the API), or ctx is cancelled, or
//     Config.Timeout passes, the nodes stop — after Config.Hold, if set,
//     during which every node stays connected and idle while the members'
//     RSS is sampled. The job's audit leaves are
//     read back through the API (from the log size before the job to a
//     checkpoint covering every acknowledged leaf) and compared with the
//     acknowledgements (CheckLog): Lost counts acknowledged updates whose
//     (node, round) is absent or at another leaf, Duplicated the (node,
//     round) pairs present more than once.
//
// # The report
//
// Acks/s and bytes/s are over the submission phase (first announcement to
// last acknowledgement, round changes included). Ack latency is one
// Submit call. Round close latency is from a round's last acknowledgement
// to the moment its round_closed event arrived (or the round's EndedAt if
// the event was missed). Coordinator peak RSS and CPU come from each
// member's /metrics (process_resident_memory_bytes, sampled every second,
// and process_cpu_seconds_total, first and last samples); for a Local
// cluster, which runs inside this process, from the process itself
// (VmHWM and getrusage), so they include the load generator. Errors are
// counted by kind (the ErrKind constants).
//
// # Local clusters
//
// StartLocal runs an N-member cluster in this process on 127.0.0.1: real
// Raft over mutual TLS, bbolt files in a temporary directory, the QUIC
// server and the HTTP API (plain HTTP, one operator key, no API rate
// limit, per-node submission limit 1000/s). Its Target reaches it exactly
// as a remote cluster's would.
//
// # Limits
//
// Everything the generator holds is bounded: MaxNodes identities and
// connections, MaxConcurrency updates in flight further lowered to fit
// MaxInflightBytes, MaxAPIReaders and MaxSubscribers API users, bounded
// retries and reconnections, a 4 MiB bound on a /metrics body, at most
// 2^20 kept API latency samples, and Nodes × Rounds ≤ MaxUpdates (the run
// keeps ≈ 60 bytes per acknowledged update for the audit check and the
// latency percentiles).
package load
