// Package crypto holds MFN's identities and the signed-and-sealed update
// envelope. (Import it under another name, e.g. mfncrypto, where the
// standard library's crypto package is also needed.)
//
// # Statements
//
// A node describes each update with a Statement — cluster origin, job,
// round, node id, base-model hash, SHA-256 of the update bytes, sample count
// and time — encoded canonically by Statement.MarshalBinary and signed with
// its Ed25519 key by SignStatement over StatementDomain || bytes. Anyone with
// the node's public key (an auditor, the audit log) checks it with
// VerifyStatement; ParseStatement decodes the bytes strictly.
package crypto
