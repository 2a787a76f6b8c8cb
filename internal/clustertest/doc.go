// Package clustertest runs real `mfn coordinator` processes on loopback
// and drives them the way operators and edge nodes do: through the HTTP
// API with API keys, and over QUIC with sealed updates. Its tests check the
// cluster's promises (ARCHITECTURE.md) against crashes that only whole
// processes can show: a leader killed with SIGKILL in the middle of a
// round, a follower restarted from its data directory, a member frozen
// with SIGSTOP, a member cut off from the majority.
//
// # Building the binary
//
// The tests build the mfn command once per test run with
//
//	go build -o $TMP/mfn ./cmd/mfn
//
// from the module root (BuildMFN), without the race detector even when the
// tests run with -race: the processes are the system under test, the
// coordinator package's in-process tests race-check its code, and a race
// build would take several times longer to compile and run. Setting
// MFN_CLUSTERTEST_BINARY to a prebuilt mfn binary skips the build (for
// profiling a binary with uprobes attached, say). The tests are skipped
// with -short.
//
// # A cluster
//
// Start generates every key with the binary itself ("mfn keygen --role
// coordinator" per member, "mfn audit keygen" for the audit log key),
// writes the peer key list and an API key file (one admin, auditor and
// reader key, several operator keys), reserves free 127.0.0.1 ports (TCP
// for Raft and HTTP, UDP for QUIC) and starts each member with the same
// --bootstrap list:
//
//	c := clustertest.Start(t, clustertest.Config{Binary: bin})
//	if err := c.WaitReady(ctx); err != nil { … }      // /readyz of every member
//	leader, status, err := c.Leader(ctx)              // GET /v1/cluster
//
// Each member's stderr (its JSON logs) goes to DIR/<id>/<id>.<n>.log, one
// file per incarnation; when the test fails the end of every file is
// printed with t.Log. Member.Kill (SIGKILL), Stop and Cont (SIGSTOP,
// SIGCONT), Terminate (SIGTERM) and Start (again, with the same flags and
// data directory) act on the processes, and t.Cleanup kills every one.
//
// Every wait polls (Poll, every PollInterval) under a context deadline;
// nothing sleeps a fixed time, and every HTTP request times out after a
// few seconds, since a frozen member accepts connections but never
// answers.
//
// # A test node
//
// NewNodes makes node identities, Enroll enrolls them with operator keys,
// Node.Seal seals an update to every coordinator's age recipient with a
// statement naming the round's base model, and Node.Submit delivers it as
// an edge node would: following CodeNotLeader redirects to the leader the
// member names, waiting out rate limits, and moving on to another member
// when one is dead or answers that it knows no leader. Node.SubmitTo makes
// a single attempt and returns the member's answer unchanged.
//
// # The tests
//
// Each test starts its own three-member cluster and runs in parallel with
// the others; the package takes about 20–45 s with -race on two loaded
// cores, the build of the binary included.
//
//   - TestLeaderKilledMidRound: SIGKILL of the leader with half a round
//     acknowledged; a new leader within 10 s, the retried update keeps its
//     acknowledgement, a second update from the same node is a duplicate,
//     the round closes on the new leader with every acknowledged update
//     once, the model is their mean, the audit log verifies offline (API
//     export and the mfn audit commands) and its checkpoints are consistent
//     across the change.
//   - TestLeaderKilledWhileClosing: the leader dies as the last update is
//     acknowledged; the new leader re-opens the sealed updates and closes
//     the round.
//   - TestLeaderSIGTERMHandsOver: graceful stop with leadership transfer.
//   - TestFollowerRestartCatchesUp, TestWholeClusterRestart: restarts with
//     the same flags and data directories lose nothing.
//   - TestFrozenFollower, TestFrozenLeader: SIGSTOP and SIGCONT.
//   - TestIsolatedMember: a member cut off from the majority refuses
//     updates and says it knows no leader, over QUIC and the API.
//   - TestDeadlineSurvivesLeaderChange: a round's absolute deadline is kept
//     by the new leader.
//   - TestHostileSubmissions: malformed and hostile envelopes get typed
//     errors and store nothing.
//
// BenchmarkAckThroughput and BenchmarkRoundClose measure the cluster's
// speed; docs/BENCHMARKS.md has the figures.
package clustertest
