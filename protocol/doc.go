// Package protocol is the wire protocol between MFN edge nodes and the
// coordinator cluster: QUIC with mutually authenticated TLS 1.3, framed and
// versioned binary messages, typed errors, and an in-memory transport with
// the same contracts for tests of the layers above.
//
// # Identities and authentication
//
// Every participant has an Ed25519 key (see package crypto). NewIdentity
// turns it into a self-signed certificate; peers are then recognised by key
// alone, never by certificate chain or name:
//
//   - ServerConfig(id, verifyClient) requires a client certificate and
//     accepts it only if verifyClient accepts its key (the coordinator
//     checks enrollment and revocation there).
//   - ClientConfig(id, pinned) accepts a server only if its key is one of
//     the pinned coordinator keys.
//
// Both are TLS 1.3 only with ALPN "mfn/1". There is no unauthenticated
// path: a handshake that fails either check never yields a Conn, and every
// Conn exposes the verified peer key (Conn.PeerKey, Peer.Key).
//
// # Setting up a server and a client
//
//	id, _ := protocol.NewIdentity(coordinatorKey)
//	ln, _ := protocol.ListenQUIC("0.0.0.0:7443", protocol.ServerConfig(id, isEnrolled), cfg)
//	srv, _ := protocol.NewServer(cfg, handler) // handler implements protocol.Handler
//	go srv.Serve(ctx, ln)
//	srv.Broadcast(&protocol.RoundAnnouncement{JobID: "job-1", Round: 4, ...})
//
//	nid, _ := protocol.NewIdentity(nodeKey)
//	d := &protocol.QUICDialer{TLS: protocol.ClientConfig(nid, clusterKeys), Config: cfg}
//	c, _ := protocol.Dial(ctx, d, "coord-1:7443", cfg)
//	ack, _ := c.Hello(ctx, &protocol.Hello{NodeID: "site-7"})
//	rounds, _ := c.Subscribe(ctx)
//	model, _ := c.FetchModel(ctx, ann.JobID, ann.BaseVersion, ann.BaseHash)
//	receipt, err := c.Submit(ctx, sealedEnvelope)
//
// For tests without sockets, replace ListenQUIC and QUICDialer by
// MemNetwork.Listen and MemNetwork.Dialer; everything else stays the same.
//
// # Messages and framing
//
// Each request uses its own bidirectional stream: the client writes one
// frame and closes its side, the server answers with one frame and closes
// its side. A frame is a 6-byte header (version byte, type byte, big-endian
// uint32 payload length) and the payload. The payload length is checked
// against Config.MaxFrameSize before anything is allocated. Hello, HelloAck
// and Error frames carry version byte 0, as their encodings are frozen
// across protocol versions; all other frames carry the version negotiated
// by Hello, and any other version is refused.
//
// Every message has one canonical encoding (fixed-width integers, length-
// prefixed strings with limits, sorted maps). Decoders are strict: a
// truncated payload, trailing bytes, an over-long field or a non-canonical
// value fails with a *DecodeError that matches ErrTruncated,
// ErrTrailingBytes, ErrFieldTooLong or ErrNonCanonical.
//
// # Errors
//
// A Handler rejects a request by returning a *ProtocolError; the client
// receives the same value. Each Code is itself an error, so callers branch
// with errors.Is:
//
//	_, err := c.Submit(ctx, sealed)
//	var pe *protocol.ProtocolError
//	switch {
//	case errors.Is(err, protocol.CodeNotLeader) && errors.As(err, &pe):
//		// redial pe.LeaderAddr
//	case errors.Is(err, protocol.CodeRateLimited) && errors.As(err, &pe):
//		// wait pe.RetryAfter
//	case errors.Is(err, protocol.CodeDuplicate):
//		// already stored: an earlier attempt succeeded
//	}
//
// # Resource limits
//
// Every read and write has a deadline (Config.RequestTimeout); handshakes
// and the first Hello must finish within Config.HandshakeTimeout; a
// connection without traffic dies after Config.IdleTimeout; a peer may have
// at most Config.MaxStreamsPerConn concurrent streams, and the server runs
// at most Config.MaxInflight handlers at once, answering CodeRateLimited
// beyond that. Subscriptions carry heartbeats so that both ends notice a
// silent peer, and a subscriber that stops reading is disconnected. A
// Server holds at most Config.MaxConns connections in total and
// Config.MaxConnsPerKey per peer key; a connection beyond either cap is
// closed right after its handshake, counted (Server.Refused,
// Config.OnRefuse) and logged through a LogSampler.
//
// # Versions
//
// Version2 differs from Version1 only in HelloAck, which then carries the
// answering server's Instance (a new one per process) and the leader's
// Term. A client that keeps a connection to the leader compares them with
// a fresh answer to learn whether its connection still reaches the same
// process under the same leadership; an address alone cannot tell a
// member from its restarted self.
//
// Version3 differs from Version2 only in SubmitUpdate, which may then
// carry a TraceParent beside the sealed envelope (see WithTraceParent), so
// that the coordinator's spans for an update continue the node's trace.
// The field is outside the signed statement and optional: a Version3
// client talking to a Version2 server leaves it out.
//
// Version4 adds streamed submission (stream.go): SubmitStream declares an
// envelope's job, round and size, StreamChunk frames carry its bytes on
// the same stream, so an update bigger than a frame travels without
// either end holding it whole. Client.SubmitSealed uses it only for
// envelopes that do not fit a frame; with older servers it is not used.
//
// See DESIGN.md for the picture.
package protocol
