// Package api is the HTTP API of a coordinator member: JSON over net/http
// for operators, researchers and auditors, plus the Prometheus metrics and
// the health probes.
//
// # Wiring
//
// The "mfn coordinator" command builds the handler with New and serves it
// on --http-addr:
//
//	keys, err := api.LoadKeys(apiKeysFlag) // a key file, or "role:key,…"
//	h, err := api.New(api.Config{
//		Coordinator: c,        // *coordinator.Coordinator
//		Keys:        keys,
//		Registry:    reg,      // the registry the coordinator's metrics are on
//		Logger:      logger,   // JSON slog logger
//	})
//	srv, err := api.NewServer(h, api.ServerConfig{Registry: reg, Logger: logger})
//	err = srv.Serve(ln) // or srv.ServeTLS(ln, "", "") with srv.TLSConfig set
//
// For HTTPS set the server's TLSConfig to coordinator.HTTPServerTLS(cert)
// (TLS 1.3; cert from coordinator.SelfSignedHTTPCert or the operator's
// files) and serve with ServeTLS.
//
// NewServer bounds what a client can hold (ServerConfig): header, request
// and response timeouts, an idle timeout, a header size cap, and open
// connections in total and per client address (a listener wrapper that
// closes connections over the caps, evicting the oldest idle one at the
// total cap, and counts them in mfn_http_connections_refused_total).
// Handlers that legitimately run long set their own deadlines through
// http.ResponseController: /v1/events clears them for its WebSocket, and
// model downloads extend them. A member joining
// with "mfn coordinator --join" posts the unsigned JoinRequest to
// /v1/cluster/join with an admin key (--join-api-key).
//
// # Routes
//
// Role is the weakest role whose key may call the route; roles are ordered
// reader < auditor < operator < admin and each includes the ones before it.
// Mode says where the request is served: "local" from this member's
// replica; "leader" only by the leader (a follower forwards it, see below);
// "current" on the leader after a linearizing barrier (Linearize), so the
// answer reflects every write acknowledged before the request (a follower
// forwards it).
//
//	route                                          role      mode
//	GET    /healthz                                public    local   process is up
//	GET    /readyz                                 public    local   member of a cluster with a leader (503 otherwise)
//	GET    /metrics                                public    local   Prometheus text format
//	GET    /openapi.json                           public    local   OpenAPI 3.1 document of these routes
//	GET    /v1/cluster                             reader    local   coordinator.Status: members, leader, raft state
//	POST   /v1/cluster/join                        admin     leader  JoinRequest → Status ("mfn coordinator --join")
//	DELETE /v1/cluster/members/{id}                admin     leader  204; 404 for an id not in the cluster
//	GET    /v1/nodes                               reader    current NodeList
//	GET    /v1/nodes/{id}                          reader    current Node
//	POST   /v1/nodes                               operator  leader  EnrollRequest → 201 Node
//	DELETE /v1/nodes/{id}                          operator  leader  revoke → Node
//	POST   /v1/nodes/{id}/revoke                   operator  leader  revoke → Node
//	GET    /v1/jobs                                reader    current JobList
//	POST   /v1/jobs                                operator  leader  coordinator.JobSpec → 201 coordinator.Job
//	GET    /v1/jobs/{id}                           reader    current coordinator.Job
//	POST   /v1/jobs/{id}/stop                      operator  leader  optional StopRequest → coordinator.Job
//	POST   /v1/jobs/{id}/archive                   operator  leader  optional StopRequest → coordinator.Job (models freed)
//	DELETE /v1/jobs/{id}                           operator  leader  204 (job gone, id not reusable)
//	GET    /v1/jobs/{id}/rounds?after=&limit=      reader    current RoundList, one page (≤ MaxRoundsPage; next_after)
//	GET    /v1/jobs/{id}/rounds/{round}            reader    current coordinator.Round (per-update used, reason, score)
//	GET    /v1/jobs/{id}/metrics?after=&limit=     reader    current JobMetrics, the training curve, one page (≤ MaxMetricsPage)
//	GET    /v1/jobs/{id}/models/{version}          reader    current ModelInfo; version is a number or "latest"
//	GET    /v1/jobs/{id}/models/{version}/params   reader    current the parameters, application/octet-stream
//	GET    /v1/audit/checkpoint                    auditor   local   newest signed note, text/plain (?format=json: Checkpoint)
//	GET    /v1/audit/checkpoints                   auditor   local   CheckpointList
//	GET    /v1/audit/bundles/{leaf}                auditor   local   audit.Bundle JSON ("mfn audit verify --bundle")
//	GET    /v1/audit/consistency?from=&to=         auditor   local   ConsistencyProof
//	GET    /v1/audit/leaves?start=&end=            auditor   local   LeafPage (≤ MaxLeavesPage leaves)
//	GET    /v1/audit/leaves/{index}                auditor   local   one encoded leaf, application/octet-stream
//	GET    /v1/events?kind=&job=                   reader    local   WebSocket stream of coordinator.Event
//	POST   /v1/simulate                            reader    local   SimulateRequest → SimulateResponse
//	POST   /v1/nernst                              reader    local   NernstRequest → NernstResponse
//
// The public routes need no key and are not rate limited: they are for
// load balancers, orchestrators, Prometheus and API tooling, and reveal
// nothing but liveness, readiness, metrics and the API's published
// description. Bind the port to a trusted network if
// the metrics are sensitive.
//
// # OpenAPI
//
// GET /openapi.json serves an OpenAPI 3.1 document of the routes above,
// built by New from the same route table the router is built from
// (openapi.go): each operation has its role (x-mfn-role, "public" for
// the routes without a key), mode (x-mfn-mode), rate limit class
// (x-mfn-rate-class), parameters, request and response bodies (JSON
// Schemas derived from the Go types by reflection, the way encoding/json
// encodes them) and its error statuses, all in the ErrorBody shape. It is
// public: it says nothing the source does not, and tooling fetches it
// before it has a key. Tests walk the router and the document against
// each other and check every documented role is the enforced one.
//
// # Authentication
//
// Every /v1 request carries an API key in the X-API-Key header. Keys come
// from a file (ParseKeyFile: JSON or TOML, each key with a name, a role and
// the secret or its SHA-256) or an inline list "role:key,role:key" (the
// MFN_API_KEYS environment variable); LoadKeys takes either. The store keeps
// only SHA-256 digests and compares the presented key's digest with every
// stored one in constant time. A missing or unknown key is 401, a key whose
// role is too weak 403.
//
// # Rate limits
//
// Each (key, route) pair has a token bucket (RateLimit: 20 requests/s, burst
// 40 by default). Every rate-limited response carries
//
//	X-RateLimit-Limit      the bucket's capacity
//	X-RateLimit-Remaining  whole requests left right now
//	X-RateLimit-Reset      seconds until the bucket is full again
//
// and a refused request gets 429 with Retry-After (seconds). The number of
// buckets is bounded; buckets idle long enough to be full are evicted first.
// Requests without a valid key are refused (401) before they reach a bucket,
// so unknown clients cannot drain a key's budget. Buckets are kept by each
// member: a client spreading its requests over N members gets N times the
// rate ("mfn coordinator --http-rate/--http-burst").
//
// RateLimit.Classes sets another rate and burst per route class: reads
// (GETs), writes (the routes served by the leader), compute (/v1/simulate,
// /v1/nernst) and events (/v1/events); rateClass says which route is in
// which, and the document at /openapi.json names each route's class
// (x-mfn-rate-class). Buckets stay per (key, route): a class chooses their
// rate and capacity ("mfn coordinator --http-rates writes=2:5,compute=1:2").
//
// # CORS
//
// Off unless Config.CORSOrigins lists origins ("mfn coordinator
// --cors-origin", cors.go). For a listed origin the answer carries
// Access-Control-Allow-Origin (the origin, never "*") and the exposed
// headers (request id, rate limit, model hash); a preflight (OPTIONS with
// Access-Control-Request-Method) is answered 204 with the path's methods
// and the allowed request headers (Content-Type, X-API-Key, X-Request-ID)
// when origin, path, method and headers all pass, and 403 otherwise.
// Credentials are never allowed, so browsers send no cookies cross-origin;
// listed origins may open /v1/events.
//
// # Metrics
//
// Besides the coordinator's, the API exports mfn_http_requests_total and
// mfn_http_request_duration_seconds (by route and code),
// mfn_http_in_flight_requests (requests being served, open event streams
// included), mfn_http_forwarded_total, mfn_http_rate_limited_total and
// mfn_http_access_log_suppressed_total; NewServer adds the connection
// metrics.
//
// # Errors
//
// Every error, including unknown routes (404) and wrong methods (405, with
// Allow), has one shape:
//
//	{"error": {"code": "not_found", "message": "…", "request_id": "…"}}
//
// The codes are the Code* constants; not_leader and leader_unreachable
// errors add "leader": {"id", "http_addr", "quic_addr"} when a leader is
// known. Bodies are decoded strictly: application/json only (415), at most
// Config.MaxBodyBytes (413), read within Config.BodyTimeout (408), no
// unknown fields, no key twice in one object (internal/jsonkeys: keys
// compared as encoding/json matches fields), at most jsonkeys.MaxDepth
// levels and nothing after the JSON value (400). Client-supplied strings
// quoted in a message (paths, ids, keys) are clipped to MaxClientString
// bytes with a "…[+N bytes]" marker.
//
// # Request ids and logs
//
// A request keeps the X-Request-ID it arrives with when it is 1–128
// characters of [A-Za-z0-9._:-]; otherwise it gets a random one. The id is
// echoed in the response, in the error body, in every log line of the
// request, and passed on when the request is forwarded. Each request logs
// one line ("http request") with method, path, route, status, bytes,
// duration, key name and role, each field once; paths are clipped like
// messages. Client errors (4xx) are sampled per client address
// (Config.LogSampling: 10 lines a minute, then one "access log lines
// suppressed" line with the count when the client's next window starts,
// and mfn_http_access_log_suppressed_total), so a flood of bad requests
// cannot fill the disk.
//
// # Followers forward to the leader
//
// A write ("leader" mode) or a current read reaching a follower is forwarded
// to the leader's HTTP address (from the replicated member list), with the
// same method, path, query, body, X-API-Key and X-Request-ID, and the
// leader's answer is relayed with X-MFN-Served-By naming the leader. At
// most one hop: the forwarded request carries X-MFN-Forwarded-By, and a
// member that receives such a request without leading answers 503
// not_leader instead of forwarding again. Without a known leader the
// answer is 503 not_leader (Retry-After: 1); an unreachable leader gives
// 502 leader_unreachable; both say which leader the member believes in.
// A leader that loses its office during a write forwards the request to
// the new leader; writes are idempotent, so a repeated command is harmless.
// Clients therefore never need to follow redirects. The leader's address is
// the one it advertises in the replicated member list ("mfn coordinator
// --http-advertise", by default its bind address with the bound port); a
// bind address such as ":8080" is refused with not_leader naming it. Over
// HTTPS, set Config.ForwardScheme to "https" and give Config.ForwardClient
// a transport that trusts the members' certificates
// (coordinator.HTTPTransport pins the cluster's coordinator keys).
//
// # Models
//
// GET …/models/{version}/params returns the parameters as
// application/octet-stream: by default (format=float64) the raw
// little-endian IEEE-754 float64 values, 8 × dim bytes; with
// format=update, crypto's update encoding (crypto.DecodeUpdate reads it),
// whose SHA-256 is the model hash. X-MFN-Model-Hash carries the hash in
// hex.
//
// # Audit export
//
// An auditor rebuilds the directory "mfn audit verify-log" checks (see
// audit.ExportDir) from GET /v1/audit/checkpoints (checkpoints/000001.note,
// …) and GET /v1/audit/leaves (leaves/00000000.leaf, … up to the newest
// checkpoint's size); Client.ExportLog and "mfn ctl audit export --out DIR"
// do exactly that. The full checkpoint history needs the Coordinator's
// optional CheckpointLister ability (*coordinator.Coordinator has it);
// without it the export holds the newest checkpoint only.
//
// # Events
//
// GET /v1/events upgrades to a WebSocket and sends JSON text messages: first
// {"kind": "subscribed"}, then every coordinator.Event of the member
// (round opened, update accepted, round closed or failed, checkpoint,
// member and node changes, leader changes), optionally filtered by kind
// (comma-separated) and job. The server pings every Config.EventPing and
// drops a connection whose pong does not come within
// Config.EventWriteTimeout. Slow consumers: the member keeps a bounded
// buffer per subscriber and drops events beyond it rather than slow the
// cluster; a client that does not take a message within
// Config.EventWriteTimeout is disconnected (the connection is dropped; a
// timed-out write leaves no room for a close frame). Clients that need every event reconcile after reconnecting
// by reading the jobs and rounds. Messages from the client are not
// expected; one closes the stream. A member serves at most
// Config.MaxSubscribers streams (256; 503 beyond) and
// Config.MaxSubscribersPerKey per API key (16; 429 beyond). A handshake
// from another origin (a browser page's Origin header naming a host other
// than the member's) is 403, in the error shape like every refusal.
//
// # Compute
//
// POST /v1/simulate runs one MFN field simulation (package sim) from a
// config whose field names match the sim flags (grid_size, steps, alpha,
// spike_probability, turing_enabled, turing_threshold, quantum_jitter,
// jitter_var, da, di, ra, ri, boundary, seed; omitted fields take
// sim.DefaultConfig's values) and returns the 18 features, the event
// metrics and the Lyapunov estimate. A parameter out of range is a 400 whose
// message starts with the field name; grid_size² × steps is bounded by
// Compute.MaxCellSteps and at most Compute.Concurrency simulations run at
// once, at most Compute.PerKey of them for one API key, so that a key
// hammering the endpoint leaves the other keys their share (503 beyond
// either). POST /v1/nernst returns the Nernst potential for z, c_out, c_in
// (mol/L) and temperature (K, default 310); inputs whose concentration
// ratio overflows are a 422 naming c_out.
//
// # Client
//
// Client is a Go client of this API, used by "mfn ctl" and by tests.
package api
