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
//
// With Options.Data the federation runs on a user's file instead
// (data.go): a seeded test part stays with the cluster, the training part
// is dealt to the nodes (IID or Dirichlet), each node's share is written
// into its state directory and loaded by its agent as a site loads its own
// file (node.FileData, scaled with the job's reference statistics fitted
// on the training part), and the summary adds the centralized reference
// (learn.CentralizedReference on the pooled training rows, same model and
// budget). The final model can be written as an mfn-model/1 file.
//
// Every member also serves the operator API behind the web console
// (packages coordinator/api and console, as mfn coordinator does) on
// 127.0.0.1 with a port chosen by the kernel, and registers that address
// so followers forward writes to the leader. The one API key is an
// operator key of 256 random bits made for the run and never printed
// (console.go). A killed member's HTTP server closes with its QUIC server.
// With Options.Hold, Run keeps the cluster up after the summary until ctx
// is done, and the summary's ConsoleURL is a one-time login link to the
// leader's console.
package e2e
