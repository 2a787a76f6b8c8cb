// Package e2e runs a whole MFN federation in one process with the real
// components: a coordinator cluster whose members talk Raft over mutual-TLS
// TCP on loopback and keep their state in bbolt files, edge nodes
// (package node) that simulate their data and submit sealed updates over
// QUIC, Byzantine nodes among them, a leader killed mid-run, and an audit
// log exported and verified offline at the end. "mfn demo" is its command
// line, and its tests are the project's end-to-end tests.
//
// Members run in process rather than as child processes: enrolment and job
// creation go through their Go API, and a "kill" first cuts every Raft
// connection of the member (so no leadership transfer can reach a peer) and
// closes its QUIC server, then shuts it down — to its peers it vanishes as
// a killed process would.
//
// Run reports what an operator needs to trust the result: rounds completed,
// the final accuracy next to an in-process FedAvg reference on the same
// data and seeds without Byzantine nodes, leader changes, and whether every
// acknowledged update is in the audit log exactly once.
package e2e
