// Package crypto holds MFN's identities and the signed-and-sealed update
// envelope: how a node proves that an update is its own, and how only the
// coordinator cluster can read it. (Import it as, e.g., mfncrypto where the
// standard library's crypto package is needed too.)
//
// # Identities and key files
//
// Every party has an Ed25519 signing key; coordinators also have an age
// X25519 identity that nodes encrypt to. GenerateIdentity creates one,
// SaveIdentity writes it to a directory ("mfn keygen" does both) and
// LoadIdentity reads it back:
//
//	signing.key  PEM "PRIVATE KEY" (PKCS #8 Ed25519), mode 0600
//	signing.pub  "mfn-ed25519:" + base64 of the 32-byte public key (FormatPublicKey)
//	age.key      age identity file, "AGE-SECRET-KEY-1…" (coordinators), mode 0600
//	age.pub      age recipient "age1…" (coordinators)
//
// A node's default id is NodeID(public key), a 24-hex-digit fingerprint. The
// id is only a name: the cluster enrolls (id, public key) pairs and looks
// keys up by id (NodeKeyLookup) when opening envelopes.
//
// # Statements
//
// A node describes each update with a Statement — cluster origin, job,
// round, node id, base-model hash, SHA-256 of the update bytes, sample count
// and time; version 2 (StatementVersionMetrics) adds the node's round
// metrics (train loss, held-out accuracy and held-out sample count, range
// checked; docs/METRICS.md), and version 1 statements still parse and
// verify. Statement.MarshalBinary gives its one canonical, versioned
// encoding, which SignStatement signs with Ed25519 over
// StatementDomain || bytes; the prefix keeps these signatures from ever
// being valid for another kind of message signed with the same key. The
// audit log stores the statement bytes and signature, and auditors check
// them with VerifyStatement and ParseStatement, without any secret.
//
// # Updates
//
// EncodeUpdate stores a parameter delta as a small header (magic, version,
// float32 or float64, value count) and little-endian values. DecodeUpdate
// checks the header against a value-count limit and the input length
// before allocating, and rejects NaN and ±Inf with a *NonFiniteError naming
// the index.
//
// # The envelope
//
// Seal signs the statement and then encrypts statement, signature and
// update with age (filippo.io/age) to every coordinator's X25519 recipient:
//
//	age( "MFNE" | version | len | statement | Ed25519 signature | len | update )
//
// Signing inside the encryption binds the signature to the update and the
// cluster: nobody can strip the signature and claim the update, and a
// signed statement copied from the public audit log cannot be paired with
// other update bytes, because Open recomputes the update's SHA-256 and
// compares it with the signed one. Open bounds the input size before doing
// any work (Limits), decrypts, verifies the signature under the node's
// enrolled key before decrypting the rest of the update, and returns an
// Opened only when every check passed.
//
// # Streaming
//
// For updates too big to hold twice, StreamSealer and OpenStream produce
// and read the same envelopes without holding them: the sender hashes
// its update first (HashUpdate; the statement signs the hash), then
// StreamSealer encrypts it as it is read, checking the hash again and
// failing before the last chunk if it differs; OpenStream reads an
// envelope of known size one 64 KiB chunk at a time, verifies the
// statement from the first chunk, and writes the update to a writer while
// hashing it (UpdateStreamCheck checks its count and values on the way).
//
// # Errors
//
// Every error wraps one sentinel for callers to branch on with errors.Is:
// ErrBadSignature, ErrUnknownNode, ErrNotRecipient, ErrMalformed,
// ErrTooLarge, ErrVersion. Decoders add a *FormatError naming the field and
// byte offset. No decoder panics, whatever its input; fuzz targets for every
// decoder (FuzzParseStatement, FuzzDecodeUpdate, FuzzOpen, FuzzOpenPlain,
// FuzzOpenStream)
// are seeded from the known-answer vectors in testdata/vectors.json.
//
// # Performance
//
// Open decrypts age's payload (ChaCha20-Poly1305 in 64 KiB STREAM chunks)
// directly into one buffer sized from the ciphertext length and hashes the
// update chunk by chunk while it is in cache, so its cost is that of its
// primitives: one X25519 unwrap, one Ed25519 verification, ChaCha20-Poly1305
// and SHA-256 over the bytes. docs/BENCHMARKS.md has the figures.
package crypto
