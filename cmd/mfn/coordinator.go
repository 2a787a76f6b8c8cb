package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/console"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	mfncrypto "github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/node"
	"github.com/mfn/mfn/protocol"
)

func init() { registerCommand(newCoordinatorCmd) }

const coordinatorLong = `coordinator runs one member of the MFN coordinator cluster: a Raft node
(hashicorp/raft, state in --data-dir) that replicates enrolled nodes, jobs,
rounds, accepted updates, models and the audit log; while it leads, it runs
the training rounds and accepts sealed updates from edge nodes over QUIC.

Ports (all authenticated and encrypted; HTTP too when given a certificate):
  --raft-addr  Raft between coordinators: TCP with mutual TLS 1.3; each
               member presents its Ed25519 identity and accepts only the
               keys in --peer-keys (and members admitted by a join)
  --quic-addr  nodes: QUIC + TLS 1.3; only enrolled, non-revoked node keys
  --http-addr  the operator API (JSON, API keys from --api-keys-file,
               roles admin/operator/auditor/reader) with /healthz,
               /readyz, /metrics, and the web console at /ui/ (log in
               with a key, or a one-time link from "mfn ctl console");
               without API keys only the first three and the signed
               join route

Secrets: give API keys in files (--api-keys-file, --join-api-key-file,
mode 600) or the environment (MFN_API_KEYS, MFN_JOIN_API_KEY). The inline
forms --api-keys "role:key,..." and --join-api-key KEY put the secrets on
the command line, where every user of the host can read them (ps,
/proc/PID/cmdline): use them only on a machine you alone use.

HTTPS: --http-tls-self-signed serves the HTTP endpoints over TLS 1.3 with a
certificate self-signed by the member's identity key, naming its advertised
host, localhost, 127.0.0.1 and ::1 (also written to DATA/http-cert.pem, the
same bytes on every start); --http-tls-cert/--http-tls-key serve a
certificate of your own (then give the other members its CA with
--http-tls-ca unless the system trusts it). Clients then use
"mfn ctl --server https://HOST:PORT" with --pin mfn-ed25519:<member key>
(the keys of --peer-keys), or --ca FILE. Members forwarding to each other
trust the cluster's coordinator keys and the --http-tls-ca roots. Without
a certificate the endpoints are plaintext HTTP and a warning is logged
unless --http-insecure says that is intended (e.g. behind a TLS proxy);
every member of a cluster should use the same scheme.

Advertised addresses: the QUIC and HTTP addresses are recorded in the
replicated member list, where nodes (leader hints) and other members
(forwarded writes, joins) find them. By default a member advertises its
bind address, with the port actually bound (so port 0 works). A wildcard
bind (":8080", "0.0.0.0:8080", "[::]:8080") names no host others can dial:
give --raft-advertise, --quic-advertise and --http-advertise host:port
with it (only a one-member cluster, --bootstrap naming this member alone,
may leave the QUIC and HTTP ones out; they are then not advertised).

Keys:
  --identity DIR   this member's keys from "mfn keygen --role coordinator"
                   (Ed25519 signing key and age identity)
  --log-key FILE   the cluster's audit log signing key (log.skey from
                   "mfn audit keygen"; its name is the cluster origin);
                   the verifier key is read from log.vkey beside it unless
                   --log-verifier says otherwise
  --peer-keys FILE the coordinator public keys of the cluster, one per line
                   ("mfn-ed25519:<base64>", optionally after a name;
                   # starts a comment), this member's own included or not

Starting a cluster: give every initial member the same --bootstrap list
"id=raftaddr,...". Adding a member later: start it with --join pointing at
any member's HTTP address and --join-api-key-file a file holding an admin
key of the operator API (then its key is distributed to the others through the replicated
state); without the operator API, the join request is signed with the
member's key, which must be in the others' --peer-keys.
A member whose --data-dir holds Raft state rejoins its cluster from it and
ignores --bootstrap and --join, so restarting with unchanged flags is safe.

Attestation (--attest, on by default; docs/AUDIT.md): every member
re-derives each sealed round from the sealed updates it holds and signs
its result; the leader closes a round only once a majority of the
registered members (itself included) derived the same result leaf, and
fails it ("attestation: ...") otherwise, so a disputed model is never
committed. Followers post their signed derivations and cosignatures to the
leader's HTTP address (route /v1/cluster/attest, no API key: the request
is signed with the member key and checked against the registered one), so
a cluster of several members needs --http-addr on each; without it rounds
close without the quorum, as in --attest=false, but members still cosign
what they can deliver. Every closed round gets a result leaf in the audit
log, cosigned by the members ("mfn audit verify-log --member-keys" checks
it). Each member also writes the round archive of every closed round to
DATA/archives/<job>/<round, 8 digits>.tar, keeping the newest
--archive-rounds: "mfn audit replay --archive FILE --identity KEYS"
re-derives the round from it. Use --attest=false on every member while
any member runs an older version.

Accuracy: when a round of an "mfn-regime" job closes, the leader scores
the new model on a held-out test set of the MFN regime task
(--eval-per-regime simulations of each regime, simulated at start from
--eval-seed with the nodes' reference grid and feature statistics; the
model is the one "mfn node" trains for the job's parameter count) and
commits the accuracy with the round's result. Give every member the same
two flags. Other tasks record no accuracy, unless --eval-data names a
labelled file (CSV, Parquet, .npy/.npz, IDX, as mfn node --data reads):
then every job whose model (and schema) fits the file has each new model's
accuracy and loss on it recorded with the round (mfn ctl jobs metrics); a
job it does not fit is logged once, naming the mismatch, and not scored on
it. Give every member the same file.

Tuning: --node-rate and --node-burst limit each node's submissions (a
token bucket, 5 per second with a burst of 10 by default; raise them for
few, fast nodes). --snapshot-threshold and --trailing-logs set when Raft
snapshots and how many entries it keeps after one (1,024 each).
--raft-multiplier scales Raft's failure-detection timeouts (as Consul's
raft_multiplier does): members that share busy CPUs, e.g. several on one
small machine closing rounds of 100 MB updates, keep their leader with 3;
the default 1 detects a dead leader fastest. --pprof
serves Go profiles (net/http/pprof) on the HTTP listener under
/debug/pprof/: to admin API keys when --api-keys is set, otherwise to
loopback clients only.

HTTP limits (see docs/SECURITY.md, "Limits"): --http-rate and --http-burst
set the operator API's token bucket per key and route (20 per second,
burst 40 by default; 0 turns it off); each member counts on its own, so a
client spreading requests over N members gets N times the rate.
--http-rates overrides them per route class (reads, writes, compute =
/v1/simulate and /v1/nernst, events = /v1/events), e.g.
--http-rates writes=2:5,compute=1:2. --cors-origin (repeatable, off by
default) lets pages of the listed origins call the API from a browser.
--http-max-conns and --http-max-conns-per-client cap open connections
(4,096 in total, 256 per client IP address). Timeouts are fixed: 10 s for
a request header, 30 s for a body, 60 s for a response (model downloads
5 min) and for an idle keep-alive connection.

Data directory: raft.db (bbolt log and stable store) and snapshots/ (the
last two FSM snapshots). SIGTERM or SIGINT shuts down gracefully: a leader
first hands its leadership to another member.`

const coordinatorExample = `  mfn keygen --role coordinator --out keys/c1
  mfn audit keygen --name mfn.example/cluster-1 --out logkey
  mfn coordinator --id c1 --data-dir data/c1 --identity keys/c1 \
    --log-key logkey/log.skey --peer-keys peers.txt \
    --raft-addr 127.0.0.1:7001 --quic-addr 127.0.0.1:4431 --http-addr 127.0.0.1:8081 \
    --bootstrap c1=127.0.0.1:7001,c2=127.0.0.1:7002,c3=127.0.0.1:7003
  mfn coordinator --id c4 --data-dir data/c4 --identity keys/c4 --log-key logkey/log.skey \
    --peer-keys peers.txt --raft-addr 127.0.0.1:7004 --quic-addr 127.0.0.1:4434 \
    --http-addr 127.0.0.1:8084 --join 127.0.0.1:8081
  mfn coordinator --id c1 --data-dir data/c1 --identity keys/c1 --log-key logkey/log.skey \
    --peer-keys peers.txt --api-keys-file apikeys.json --raft-addr 0.0.0.0:7001 --raft-advertise c1.example:7001 \
    --quic-addr 0.0.0.0:4431 --quic-advertise c1.example:4431 \
    --http-addr 0.0.0.0:8081 --http-advertise c1.example:8081 --http-tls-self-signed \
    --bootstrap c1=c1.example:7001,c2=c2.example:7001,c3=c3.example:7001`

type coordinatorFlags struct {
	id, dataDir                 string
	raftAddr, raftAdvertise     string
	quicAddr, httpAddr          string
	quicAdvertise, httpAdvert   string
	identity, logKey, logVerify string
	peerKeys, apiKeys           string
	bootstrap, join, joinAPIKey string
	logLevel                    string
	tick                        time.Duration
	shutdownTimeout             time.Duration
	joinTimeout                 time.Duration
	httpTLSCert, httpTLSKey     string
	httpTLSCA                   string
	httpTLSSelfSigned           bool
	httpInsecure                bool
	evalSeed                    uint64
	evalPerRegime               int
	evalData                    evalDataFlags // coordinator_eval.go
	nodeRate                    float64
	nodeBurst                   int
	maxUpdateBytes              int64
	snapshotThreshold           uint64
	raftMultiplier              int
	trailingLogs                uint64
	pprof                       bool
	attest                      bool
	archiveRounds               int
	httpMaxConns                int
	httpMaxConnsPerClient       int
	httpRate                    float64
	httpBurst                   int
	httpRates                   string
	httpRateClasses             map[string]api.ClassRate
	corsOrigins                 []string
	apiKeysFile                 string
	joinAPIKeyFile              string
	trace                       traceFlags
}

func newCoordinatorCmd(env *cmdEnv) *cobra.Command {
	var f coordinatorFlags
	c := &cobra.Command{
		Use:     "coordinator",
		Short:   "Run a member of the Raft-replicated coordinator cluster",
		Long:    coordinatorLong,
		Example: coordinatorExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCoordinator(env, &f)
		},
	}
	c.AddCommand(newCoordinatorRecoverCmd(env)) // coordinator_recover.go
	fl := c.Flags()
	fl.StringVar(&f.id, "id", "", "member id, unique in the cluster ([A-Za-z0-9._-], 1-64 characters)")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory of the member's Raft state (created if missing)")
	fl.StringVar(&f.raftAddr, "raft-addr", "", "host:port to listen on for Raft (mutual TLS)")
	fl.StringVar(&f.raftAdvertise, "raft-advertise", "", "address other members dial for Raft; empty means --raft-addr")
	fl.StringVar(&f.quicAddr, "quic-addr", "", "host:port (UDP) to listen on for nodes over QUIC")
	fl.StringVar(&f.quicAdvertise, "quic-advertise", "", "address nodes are told to dial for QUIC (leader hints); empty means --quic-addr when it names a host")
	fl.StringVar(&f.httpAddr, "http-addr", "", "host:port for the HTTP endpoints (empty: none)")
	fl.StringVar(&f.httpAdvert, "http-advertise", "", "address other members and clients use for HTTP (forwarding, joins); empty means --http-addr when it names a host")
	fl.StringVar(&f.httpTLSCert, "http-tls-cert", "", "PEM certificate (chain) file: serve the HTTP endpoints over HTTPS (TLS 1.3) with it; needs --http-tls-key")
	fl.StringVar(&f.httpTLSKey, "http-tls-key", "", "PEM private key file of --http-tls-cert")
	fl.BoolVar(&f.httpTLSSelfSigned, "http-tls-self-signed", false, "serve HTTPS with a certificate self-signed by the member's identity key (clients pin the key: mfn ctl --pin)")
	fl.StringVar(&f.httpTLSCA, "http-tls-ca", "", "PEM file of the CAs that sign other members' --http-tls-cert certificates (forwarding, --join); empty means the system's roots; self-signed members are trusted by their key")
	fl.BoolVar(&f.httpInsecure, "http-insecure", false, "serve the HTTP endpoints as plaintext HTTP on purpose (without it, plaintext is served with a warning)")
	fl.StringVar(&f.identity, "identity", "", "directory of this member's coordinator keys (mfn keygen --role coordinator)")
	fl.StringVar(&f.logKey, "log-key", "", "file holding the cluster's audit log signing key (log.skey)")
	fl.StringVar(&f.logVerify, "log-verifier", "", "file holding the log verifier key; empty means log.vkey beside --log-key")
	fl.StringVar(&f.peerKeys, "peer-keys", "", "file of the cluster's coordinator public keys, one per line")
	fl.StringVar(&f.apiKeys, "api-keys", "", `operator API keys: a key file, or "role:key,..." (without it only health, metrics and the signed join route are served); the inline form puts secrets on the command line, visible to every user of the host: prefer --api-keys-file`)
	fl.StringVar(&f.apiKeysFile, "api-keys-file", "", "file of the operator API keys (JSON or TOML; mode 600 when it holds plain secrets, or key_sha256 digests); exclusive with --api-keys")
	fl.StringVar(&f.bootstrap, "bootstrap", "", "initial voters id=raftaddr,... (start a new cluster; ignored with existing state)")
	fl.StringVar(&f.join, "join", "", "HTTP address of a member to join through (ignored with existing state)")
	fl.StringVar(&f.joinAPIKey, "join-api-key", "", "API key sent with the join request, if the operator API requires one (on the command line it is visible to every user of the host: prefer --join-api-key-file or MFN_JOIN_API_KEY)")
	fl.StringVar(&f.joinAPIKeyFile, "join-api-key-file", "", "file holding the API key sent with the join request (mode 600); exclusive with --join-api-key")
	fl.Float64Var(&f.httpRate, "http-rate", 20, "operator API requests per second per key and route on this member, sustained (token bucket; 0 turns the limit off; at most 1e6); each member counts on its own")
	fl.IntVar(&f.httpBurst, "http-burst", 40, "operator API requests a key may send at once on a route before --http-rate applies (1 to 1e6)")
	fl.StringVar(&f.httpRates, "http-rates", "", `per route class rate and burst overriding --http-rate/--http-burst: "class=rate:burst,..." with classes reads, writes, compute, events (e.g. "writes=2:5,compute=1:2"; rate 0: no limit)`)
	fl.StringSliceVar(&f.corsOrigins, "cors-origin", nil, "browser origin (scheme://host[:port]) whose pages may call the operator API cross-origin (repeatable; no wildcard; off by default)")
	fl.DurationVar(&f.joinTimeout, "join-timeout", 2*time.Minute, "how long --join keeps retrying while the cluster has no leader or the member is unreachable (1s to 1h)")
	fl.Uint64Var(&f.evalSeed, "eval-seed", 0x6d666e2d6576616c, "seed of the held-out test set on which mfn-regime models are scored (the same on every member)")
	fl.IntVar(&f.evalPerRegime, "eval-per-regime", 50, "held-out simulations per regime for scoring mfn-regime models (0 turns evaluation off, at most 10000)")
	f.evalData.register(fl)
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.DurationVar(&f.tick, "tick", 100*time.Millisecond, "round engine polling period (10ms to 10s)")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "bound on the graceful shutdown (leadership transfer included)")
	fl.Float64Var(&f.nodeRate, "node-rate", 5, "updates per second each node may submit, sustained (token bucket; > 0, at most 1e6)")
	fl.IntVar(&f.nodeBurst, "node-burst", 10, "updates a node may submit at once before --node-rate applies (1 to 1e6)")
	fl.Int64Var(&f.maxUpdateBytes, "max-update-bytes", coordinator.DefaultMaxUpdateBytes, fmt.Sprintf("largest float32 update (dim × 4 + 14 bytes) a new job may have; a larger job is refused (400 naming this limit); updates over one 4 MiB frame are streamed (1024 to %d)", coordinator.MaxUpdateBytesLimit))
	fl.IntVar(&f.raftMultiplier, "raft-multiplier", 1, "scale Raft's heartbeat, election (1 s) and leader lease (500 ms) timeouts by this factor, 1-10: higher tolerates busy or shared CPUs at the cost of slower failure detection")
	fl.Uint64Var(&f.snapshotThreshold, "snapshot-threshold", 1024, "Raft log entries since the last snapshot that trigger a new one (≥ 1; entries are large, ~40 KB at d = 10,000)")
	fl.Uint64Var(&f.trailingLogs, "trailing-logs", 1024, "Raft log entries kept after a snapshot, so that a briefly lagging member catches up without a snapshot install")
	fl.IntVar(&f.httpMaxConns, "http-max-conns", 4096, "open HTTP connections in total; at the cap the oldest idle connection is closed to admit a new one (1 to 1000000)")
	fl.IntVar(&f.httpMaxConnsPerClient, "http-max-conns-per-client", 256, "open HTTP connections from one client IP address; more are closed at once (1 to 1000000; clients behind one proxy share it)")
	fl.BoolVar(&f.pprof, "pprof", false, "serve net/http/pprof on the HTTP listener under /debug/pprof/: with API keys to admin keys only, without them to loopback clients only")
	fl.BoolVar(&f.attest, "attest", true, "attest rounds: record result leaves, re-derive every round and cosign it; as leader close a round only with a quorum of matching member derivations (needs --http-addr on a cluster of several members). Turn off only while members of an older version remain")
	fl.IntVar(&f.archiveRounds, "archive-rounds", 8, "with --attest: keep the round archives (for mfn audit replay) of the newest N closed rounds in DATA/archives/<job>/<round>.tar (0 turns them off, at most 10000; each holds its round's sealed updates)")
	f.trace.register(fl)
	return c
}

// withPprof serves net/http/pprof under /debug/pprof/ in front of next.
// With keys, a request needs an admin key (X-API-Key; 401 without a valid
// key, 403 for another role); without keys, only loopback clients are
// served (403 otherwise).
func withPprof(next http.Handler, keys *api.KeyStore) http.Handler {
	prof := http.NewServeMux()
	prof.HandleFunc("/debug/pprof/", pprof.Index)
	prof.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	prof.HandleFunc("/debug/pprof/profile", pprof.Profile)
	prof.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	prof.HandleFunc("/debug/pprof/trace", pprof.Trace)
	deny := func(w http.ResponseWriter, status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`+"\n", code, msg)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/pprof" && !strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			next.ServeHTTP(w, r)
			return
		}
		if keys != nil {
			id, ok := keys.Lookup(r.Header.Get("X-API-Key"))
			switch {
			case !ok:
				deny(w, http.StatusUnauthorized, "unauthorized", "missing or unknown API key")
				return
			case id.Role != api.RoleAdmin:
				deny(w, http.StatusForbidden, "forbidden", "profiles need an admin key")
				return
			}
		} else if !loopbackClient(r.RemoteAddr) {
			deny(w, http.StatusForbidden, "forbidden", "profiles are served to loopback clients only when no API keys are configured")
			return
		}
		prof.ServeHTTP(w, r)
	})
}

// loopbackClient reports whether a request's RemoteAddr is a loopback
// address.
func loopbackClient(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// parseBootstrap parses "id=addr,id=addr".
func parseBootstrap(s string) ([]raft.Server, error) {
	var out []raft.Server
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("entry %q is not id=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("entry %q: %v", part, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("id %q appears twice", id)
		}
		seen[id] = true
		out = append(out, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: raft.Voter})
	}
	return out, nil
}

// readPeerKeys reads a file of coordinator public keys: one per line, the
// last field of the line; blank lines and # comments are skipped.
func readPeerKeys(path string) ([]ed25519.PublicKey, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var keys []ed25519.PublicKey
	sc := bufio.NewScanner(fh)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		fields := strings.Fields(s)
		if len(fields) == 0 {
			continue
		}
		k, err := mfncrypto.ParsePublicKey(fields[len(fields)-1])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		keys = append(keys, k)
	}
	return keys, sc.Err()
}

// readSecretFile reads a secret (an API key) from a file that only its
// owner may read: the content without surrounding white space. A file
// group or others may read is refused, as "mfn" refuses API key files
// holding plain secrets.
func readSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by group or others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	s, err := readKeyFile(path)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

func readKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (f *coordinatorFlags) validate() ([]raft.Server, slog.Level, error) {
	var lvl slog.Level
	if err := f.trace.validate(); err != nil {
		return nil, lvl, err
	}
	switch {
	case f.id == "":
		return nil, lvl, usagef("--id is required: this member's id")
	case f.dataDir == "":
		return nil, lvl, usagef("--data-dir is required: where the member keeps its Raft state")
	case f.raftAddr == "":
		return nil, lvl, usagef("--raft-addr is required: host:port for Raft between coordinators")
	case f.quicAddr == "":
		return nil, lvl, usagef("--quic-addr is required: host:port for nodes over QUIC")
	case f.identity == "":
		return nil, lvl, usagef("--identity is required: the directory of this member's coordinator keys")
	case f.logKey == "":
		return nil, lvl, usagef("--log-key is required: the cluster's audit log signing key file (log.skey)")
	case f.peerKeys == "":
		return nil, lvl, usagef("--peer-keys is required: the file of the cluster's coordinator public keys")
	case f.bootstrap != "" && f.join != "":
		return nil, lvl, usagef("--bootstrap and --join are exclusive: start a new cluster or join one")
	case f.tick < 10*time.Millisecond || f.tick > 10*time.Second:
		return nil, lvl, usagef("--tick %v must be in [10ms, 10s]", f.tick)
	case f.shutdownTimeout <= 0:
		return nil, lvl, usagef("--shutdown-timeout %v must be > 0", f.shutdownTimeout)
	case f.evalPerRegime < 0 || f.evalPerRegime > 10000:
		return nil, lvl, usagef("--eval-per-regime %d must be in [0, 10000]", f.evalPerRegime)
	case f.evalData.check() != nil:
		return nil, lvl, f.evalData.check()
	case f.archiveRounds < 0 || f.archiveRounds > 10000:
		return nil, lvl, usagef("--archive-rounds %d must be in [0, 10000]", f.archiveRounds)
	case f.joinTimeout < time.Second || f.joinTimeout > time.Hour:
		return nil, lvl, usagef("--join-timeout %v must be in [1s, 1h]", f.joinTimeout)
	case !(f.nodeRate > 0 && f.nodeRate <= 1e6):
		return nil, lvl, usagef("--node-rate %v must be in (0, 1e6] updates per second", f.nodeRate)
	case f.nodeBurst < 1 || f.nodeBurst > 1e6:
		return nil, lvl, usagef("--node-burst %d must be in [1, 1000000]", f.nodeBurst)
	case f.maxUpdateBytes < 1024 || f.maxUpdateBytes > coordinator.MaxUpdateBytesLimit:
		return nil, lvl, usagef("--max-update-bytes %d must be in [1024, %d]", f.maxUpdateBytes, coordinator.MaxUpdateBytesLimit)
	case f.snapshotThreshold < 1:
		return nil, lvl, usagef("--snapshot-threshold %d must be ≥ 1", f.snapshotThreshold)
	case f.raftMultiplier < 1 || f.raftMultiplier > 10:
		return nil, lvl, usagef("--raft-multiplier %d must be in [1, 10]", f.raftMultiplier)
	case f.httpMaxConns < 1 || f.httpMaxConns > 1e6:
		return nil, lvl, usagef("--http-max-conns %d must be in [1, 1000000]", f.httpMaxConns)
	case f.httpMaxConnsPerClient < 1 || f.httpMaxConnsPerClient > 1e6:
		return nil, lvl, usagef("--http-max-conns-per-client %d must be in [1, 1000000]", f.httpMaxConnsPerClient)
	case !(f.httpRate >= 0 && f.httpRate <= 1e6):
		return nil, lvl, usagef("--http-rate %v must be in [0, 1e6] requests per second (0: no limit)", f.httpRate)
	case f.httpBurst < 1 || f.httpBurst > 1e6:
		return nil, lvl, usagef("--http-burst %d must be in [1, 1000000]", f.httpBurst)
	case f.apiKeys != "" && f.apiKeysFile != "":
		return nil, lvl, usagef("--api-keys and --api-keys-file are exclusive: give the keys once")
	case f.joinAPIKey != "" && f.joinAPIKeyFile != "":
		return nil, lvl, usagef("--join-api-key and --join-api-key-file are exclusive: give the key once")
	case f.pprof && f.httpAddr == "":
		return nil, lvl, usagef("--pprof needs --http-addr: profiles are served on the HTTP listener")
	}
	var err error
	if f.httpRateClasses, err = api.ParseRateClasses(f.httpRates); err != nil {
		return nil, lvl, usagef("--http-rates %q: %v", f.httpRates, err)
	}
	for _, o := range f.corsOrigins {
		if _, err := api.ParseOrigin(o); err != nil {
			return nil, lvl, usagef("--cors-origin: %v", err)
		}
	}
	for _, a := range []struct{ flag, v string }{{"--raft-addr", f.raftAddr}, {"--quic-addr", f.quicAddr}, {"--http-addr", f.httpAddr}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return nil, lvl, usagef("%s %q: must be host:port: %v", a.flag, a.v, err)
		}
	}
	for _, a := range []struct{ flag, v string }{{"--raft-advertise", f.raftAdvertise}, {"--quic-advertise", f.quicAdvertise}, {"--http-advertise", f.httpAdvert}} {
		if a.v == "" {
			continue
		}
		if err := checkAdvertise(a.v); err != nil {
			return nil, lvl, usagef("%s %q: %v", a.flag, a.v, err)
		}
	}
	tlsOn := f.httpTLSCert != "" || f.httpTLSSelfSigned
	switch {
	case (f.httpTLSCert == "") != (f.httpTLSKey == ""):
		return nil, lvl, usagef("--http-tls-cert and --http-tls-key go together: give both")
	case f.httpTLSCert != "" && f.httpTLSSelfSigned:
		return nil, lvl, usagef("--http-tls-self-signed and --http-tls-cert are exclusive: choose one certificate")
	case f.httpInsecure && tlsOn:
		return nil, lvl, usagef("--http-insecure contradicts --http-tls-cert/--http-tls-self-signed")
	case (tlsOn || f.httpInsecure) && f.httpAddr == "":
		return nil, lvl, usagef("--http-tls-cert, --http-tls-self-signed and --http-insecure need --http-addr")
	}
	if f.httpAdvert != "" && f.httpAddr == "" {
		return nil, lvl, usagef("--http-advertise needs --http-addr: there is no HTTP listener to advertise")
	}
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, lvl, usagef("--log-level %q: must be debug, info, warn or error", f.logLevel)
	}
	var servers []raft.Server
	if f.bootstrap != "" {
		var err error
		if servers, err = parseBootstrap(f.bootstrap); err != nil {
			return nil, lvl, usagef("--bootstrap: %v", err)
		}
	}
	// Raft's address is always in the cluster configuration; the QUIC and
	// HTTP addresses go into the replicated member list, which other
	// members (forwarding, joins) and nodes (leader hints) dial. Only a
	// one-member cluster keeps a wildcard bind to itself.
	if f.raftAdvertise == "" && wildcardHost(f.raftAddr) {
		return nil, lvl, usagef("--raft-addr %q listens on every interface; other members need a routable address: give --raft-advertise host:port", f.raftAddr)
	}
	if !f.singleMember(servers) {
		if f.quicAdvertise == "" && wildcardHost(f.quicAddr) {
			return nil, lvl, usagef("--quic-addr %q listens on every interface; nodes are sent to the leader's address: give --quic-advertise host:port", f.quicAddr)
		}
		if f.httpAddr != "" && f.httpAdvert == "" && wildcardHost(f.httpAddr) {
			return nil, lvl, usagef("--http-addr %q listens on every interface; other members forward writes to it: give --http-advertise host:port", f.httpAddr)
		}
	}
	return servers, lvl, nil
}

// singleMember reports whether the flags describe a one-member cluster:
// bootstrapped with this member alone and not joining. Its QUIC and HTTP
// addresses are not used by other members.
func (f *coordinatorFlags) singleMember(servers []raft.Server) bool {
	return f.join == "" && len(servers) == 1 && string(servers[0].ID) == f.id
}

// wildcardHost reports whether host:port names no host another machine
// can dial: an empty host (":8080") or an unspecified IP ("0.0.0.0",
// "[::]").
func wildcardHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// checkAdvertise checks an advertised address: host:port with a
// dialable host and a non-zero port.
func checkAdvertise(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		return fmt.Errorf("must be host:port: %v", err)
	case wildcardHost(addr):
		return fmt.Errorf("must name a host others can dial, not a wildcard")
	case port == "0" || port == "":
		return fmt.Errorf("must have a port other than 0")
	}
	return nil
}

// advertised returns the address to advertise for a listener bound from
// bind to bound: adv when set; otherwise bind's host with the bound port
// (so port 0 advertises the port chosen); "" for a wildcard bind (only
// allowed for a one-member cluster, see validate).
func advertised(adv, bind string, bound net.Addr) string {
	if adv != "" {
		return adv
	}
	if wildcardHost(bind) {
		return ""
	}
	host, _, _ := net.SplitHostPort(bind)
	_, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return bind
	}
	return net.JoinHostPort(host, port)
}

func runCoordinator(env *cmdEnv, f *coordinatorFlags) error {
	servers, lvl, err := f.validate()
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(env.stderr, &slog.HandlerOptions{Level: lvl}))

	id, err := mfncrypto.LoadIdentity(f.identity)
	if err != nil {
		return usagef("--identity %s: %v", f.identity, err)
	}
	if id.Age == nil {
		return usagef("--identity %s: not a coordinator identity (no %s); create one with mfn keygen --role coordinator", f.identity, mfncrypto.AgeKeyFile)
	}
	skey, err := readKeyFile(f.logKey)
	if err != nil {
		return usagef("--log-key: %v", err)
	}
	signer, err := audit.NewLogSigner(skey)
	if err != nil {
		return usagef("--log-key %s: %v", f.logKey, err)
	}
	vpath := f.logVerify
	if vpath == "" {
		vpath = filepath.Join(filepath.Dir(f.logKey), "log.vkey")
	}
	vkey, err := readKeyFile(vpath)
	if err != nil {
		return usagef("--log-verifier: %v", err)
	}
	verifier, err := audit.NewLogVerifier(vkey)
	if err != nil {
		return usagef("--log-verifier %s: %v", vpath, err)
	}
	if verifier.Name() != signer.Name() || verifier.KeyHash() != signer.KeyHash() {
		return usagef("--log-verifier %s does not belong to --log-key %s", vpath, f.logKey)
	}
	peers, err := readPeerKeys(f.peerKeys)
	if err != nil {
		return usagef("--peer-keys: %v", err)
	}
	trusted := coordinator.NewPeerKeys(peers...)
	var apiKeys *api.KeyStore
	if f.apiKeysFile != "" {
		if apiKeys, err = api.LoadKeyFile(f.apiKeysFile); err != nil {
			return usagef("--api-keys-file: %v", err)
		}
	}
	if f.joinAPIKeyFile != "" {
		if f.joinAPIKey, err = readSecretFile(f.joinAPIKeyFile); err != nil {
			return usagef("--join-api-key-file: %v", err)
		}
	}
	if f.apiKeys != "" {
		if apiKeys, err = api.LoadKeys(f.apiKeys); err != nil {
			return usagef("--api-keys: %v", err)
		}
	}

	// Listen on every port before the member starts, so that the
	// addresses it registers in the replicated state are the bound ones
	// (port 0 included).
	var cleanup []func() error
	fail := func(err error) error {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
		return err
	}
	var advertise net.Addr
	if f.raftAdvertise != "" {
		if advertise, err = net.ResolveTCPAddr("tcp", f.raftAdvertise); err != nil {
			return usagef("--raft-advertise %q: %v", f.raftAdvertise, err)
		}
	}
	layer, err := coordinator.NewTLSStreamLayer(f.raftAddr, advertise, id.SigningKey, trusted, logger)
	if err != nil {
		return err
	}
	cleanup = append(cleanup, layer.Close)

	// The QUIC listener admits only enrolled node keys, which the member
	// knows once it runs and has caught up (QUICHandler.VerifyNodeKey).
	// Until it runs, keys are judged at Hello: the server serves no
	// connection before then.
	var handlerRef atomic.Pointer[coordinator.QUICHandler]
	verifyNode := func(pub ed25519.PublicKey) error {
		h := handlerRef.Load()
		if h == nil {
			return nil
		}
		return h.VerifyNodeKey(pub)
	}
	pid, err := protocol.NewIdentity(id.SigningKey)
	if err != nil {
		return fail(err)
	}
	pcfg := protocol.Config{Logger: logger}
	qln, err := protocol.ListenQUIC(f.quicAddr, protocol.ServerConfig(pid, verifyNode), pcfg)
	if err != nil {
		return fail(fmt.Errorf("--quic-addr %s: %w", f.quicAddr, err))
	}
	cleanup = append(cleanup, qln.Close)
	quicAdv := advertised(f.quicAdvertise, f.quicAddr, qln.Addr())

	var hln net.Listener
	var httpAdv string
	if f.httpAddr != "" {
		if hln, err = net.Listen("tcp", f.httpAddr); err != nil {
			return fail(fmt.Errorf("--http-addr %s: %w", f.httpAddr, err))
		}
		cleanup = append(cleanup, hln.Close)
		httpAdv = advertised(f.httpAdvert, f.httpAddr, hln.Addr())
	}
	if quicAdv == "" || (hln != nil && httpAdv == "") {
		logger.Warn("a wildcard bind address without --quic-advertise/--http-advertise is not registered in the cluster; add them before adding members",
			"quic_addr", f.quicAddr, "http_addr", f.httpAddr)
	}

	storage, err := coordinator.OpenStorage(f.dataDir, logger)
	if err != nil {
		return fail(err)
	}
	var httpTLS *tls.Config
	if hln != nil {
		if httpTLS, err = f.httpServerTLS(id.SigningKey, httpAdv, logger); err != nil {
			storage.Close()
			return fail(err)
		}
	}
	if hln != nil && httpTLS == nil && !f.httpInsecure {
		logger.Warn("PLAINTEXT HTTP: the operator API, its API keys and the join route are served without TLS; "+
			"serve HTTPS with --http-tls-self-signed or --http-tls-cert/--http-tls-key, or pass --http-insecure to accept plaintext (e.g. behind a TLS proxy)",
			"http_addr", hln.Addr().String())
	}
	var roots *x509.CertPool
	if f.httpTLSCA != "" {
		if roots, err = readCertPool(f.httpTLSCA); err != nil {
			storage.Close()
			return fail(usagef("--http-tls-ca: %v", err))
		}
	}
	// Members reach each other's HTTP API (forwarded requests, joins)
	// trusting the cluster's coordinator keys (self-signed members) and
	// the --http-tls-ca roots.
	memberTransport := coordinator.HTTPTransport(trusted, roots)
	hasState, err := storage.HasState()
	if err != nil {
		storage.Close()
		return fail(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Entries are large (an add-update carries a sealed envelope, ~40 KB
	// at d = 10,000) while the state is small (sealed bodies are dropped
	// when their round ends), so snapshot and compact far more often than
	// raft's defaults (8,192 / 10,240 entries).
	rc := raft.DefaultConfig()
	rc.SnapshotThreshold = f.snapshotThreshold
	m := time.Duration(f.raftMultiplier)
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = m*rc.HeartbeatTimeout, m*rc.ElectionTimeout, m*rc.LeaderLeaseTimeout
	rc.TrailingLogs = f.trailingLogs
	evaluator, err := f.evalData.evaluator(env.ctx, newRegimeEvaluator(env.ctx, f.evalSeed, f.evalPerRegime, logger), logger)
	if err != nil {
		storage.Close()
		return fail(err)
	}
	var coordRef atomic.Pointer[coordinator.Coordinator] // for the attestation sender, set once New returns
	ccfg := coordinator.Config{
		ID: f.id, Origin: signer.Name(),
		RaftAddr: layer.Addr().String(), QUICAddr: quicAdv, HTTPAddr: httpAdv,
		PublicKey: id.PublicKey(), PeerKeys: trusted, Prober: layer,
		Storage: storage, Transport: coordinator.NewTLSTransport(layer, logger), Raft: rc,
		Opener:      &coordinator.CryptoOpener{Identities: []age.Identity{id.Age}},
		LogVerifier: verifier, LogSigner: signer,
		NodeRate: rate.Limit(f.nodeRate), NodeBurst: f.nodeBurst, MaxUpdateBytes: f.maxUpdateBytes,
		Logger: logger, Registry: reg, Tick: f.tick, Evaluator: evaluator,
	}
	if f.attest {
		scheme := "http"
		if httpTLS != nil {
			scheme = "https"
		}
		ccfg.MemberKey = id.SigningKey
		if f.archiveRounds > 0 {
			ccfg.ArchiveDir, ccfg.ArchiveKeep = filepath.Join(f.dataDir, "archives"), f.archiveRounds
		}
		ccfg.AttestQuorum = hln != nil // followers reach the leader over HTTP
		ccfg.SendAttestation = coordinator.HTTPAttestationSender(&http.Client{Transport: memberTransport, Timeout: 30 * time.Second},
			scheme, id.SigningKey, func() (coordinator.Member, bool) {
				if c := coordRef.Load(); c != nil {
					return c.Leader()
				}
				return coordinator.Member{}, false
			})
	}
	coord, err := coordinator.New(ccfg)
	if err == nil {
		coordRef.Store(coord)
	}
	if err != nil {
		storage.Close()
		return fail(err)
	}
	// The member owns the Raft layer and the storage from here on.
	cleanup = cleanup[1:]
	shutdown := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
		defer cancel()
		return coord.Close(ctx)
	}
	cleanup = append(cleanup, shutdown)

	// QUIC server for nodes.
	qh := coordinator.NewQUICHandler(coord)
	stopTracing, err := f.trace.attachCoordinator(qh, f.id, logger)
	if err != nil {
		return fail(err)
	}
	defer stopTracing()
	handlerRef.Store(qh)
	pcfg.OnRefuse = qh.Refused
	qsrv, err := protocol.NewServer(pcfg, qh)
	if err != nil {
		return fail(err)
	}
	coord.SetAnnouncer(coordinator.ProtocolAnnouncer{Server: qsrv})
	coord.SetDisconnect(qsrv.Disconnect)
	coord.SetQUICConnections(qsrv.Subscribers)
	errc := make(chan error, 2)
	go func() {
		if err := qsrv.Serve(env.ctx, qln); err != nil && !errors.Is(err, protocol.ErrServerClosed) && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("quic server: %w", err)
		}
	}()

	// HTTP endpoints.
	var hsrv *api.Server
	if hln != nil {
		var h http.Handler
		if apiKeys != nil {
			rl := api.RateLimit{Rate: f.httpRate, Burst: f.httpBurst, Classes: f.httpRateClasses}
			if f.httpRate == 0 {
				rl.Rate = -1 // api: a negative rate turns the limit off
			}
			acfg := api.Config{Coordinator: coord, Keys: apiKeys, Registry: reg, Logger: logger, RateLimit: rl,
				CORSOrigins: f.corsOrigins,
				ForwardClient: &http.Client{Transport: memberTransport, Timeout: 30 * time.Second,
					CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
			if httpTLS != nil {
				acfg.ForwardScheme = "https"
			}
			h, err = api.New(acfg)
			if err == nil { // the web console at /ui/, and session cookies for the API
				h, err = console.New(h, console.Config{Keys: apiKeys, SecureCookie: httpTLS != nil})
			}
			if err != nil {
				qsrv.Close()
				return fail(err)
			}
		} else {
			logger.Warn("no --api-keys: serving only /healthz, /readyz, /metrics and the signed join route, not the operator API")
			h = coordinator.NewBasicHTTPHandler(coord, reg, trusted)
		}
		if f.attest {
			h = coord.WithAttestation(h) // signed by members: served with or without API keys
		}
		if f.pprof {
			logger.Warn("serving profiles under /debug/pprof/", "access", map[bool]string{true: "admin API keys", false: "loopback clients"}[apiKeys != nil])
			h = withPprof(h, apiKeys)
		}
		// Timeouts and connection caps: see api.ServerConfig and
		// docs/SECURITY.md (Limits).
		hsrv, err = api.NewServer(h, api.ServerConfig{MaxConns: f.httpMaxConns, MaxConnsPerClient: f.httpMaxConnsPerClient,
			Registry: reg, Logger: logger})
		if err != nil {
			qsrv.Close()
			return fail(err)
		}
		hsrv.TLSConfig = httpTLS
		go func() {
			var err error
			if httpTLS != nil {
				err = hsrv.ServeTLS(hln, "", "")
			} else {
				err = hsrv.Serve(hln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http server: %w", err)
			}
		}()
	}

	switch {
	case hasState:
		logger.Info("rejoining from existing raft state", "data_dir", f.dataDir)
	case len(servers) > 0:
		if err := coord.Bootstrap(servers); err != nil {
			return errors.Join(err, stopAll(hsrv, qsrv, shutdown))
		}
		logger.Info("bootstrapped a new cluster", "voters", len(servers))
	case f.join != "":
		req := coordinator.JoinRequest{ID: f.id, RaftAddr: layer.Addr().String(), QUICAddr: quicAdv, HTTPAddr: httpAdv}
		req.Sign(id.SigningKey)
		target := f.join
		if !strings.Contains(target, "://") && httpTLS != nil {
			target = "https://" + target
		}
		err := coordinator.Join(env.ctx, target, req, coordinator.JoinConfig{APIKey: f.joinAPIKey, Timeout: f.joinTimeout,
			Client: &http.Client{Transport: memberTransport, Timeout: 30 * time.Second}})
		if err != nil {
			return errors.Join(err, stopAll(hsrv, qsrv, shutdown))
		}
		logger.Info("joined the cluster", "via", f.join)
	default:
		logger.Warn("no raft state, --bootstrap or --join: waiting to be added by a leader")
	}
	logger.Info("coordinator started", "id", f.id, "raft_addr", layer.Addr().String(), "quic_addr", qln.Addr().String(),
		"quic_advertise", quicAdv, "http_addr", listenAddr(hln), "http_advertise", httpAdv, "origin", signer.Name())

	var runErr error
	select {
	case <-env.ctx.Done():
		logger.Info("shutting down")
	case runErr = <-errc:
		logger.Error("server failed, shutting down", "err", runErr)
	}
	err = errors.Join(runErr, stopAll(hsrv, qsrv, shutdown))
	if err == nil {
		logger.Info("coordinator stopped")
	}
	return err
}

// httpServerTLS returns the HTTPS configuration the flags ask for, or nil
// for plaintext. A self-signed certificate names the advertised host and
// is written to DATA/http-cert.pem for clients that want a CA file.
func (f *coordinatorFlags) httpServerTLS(key ed25519.PrivateKey, advertise string, logger *slog.Logger) (*tls.Config, error) {
	switch {
	case f.httpTLSCert != "":
		cert, err := tls.LoadX509KeyPair(f.httpTLSCert, f.httpTLSKey)
		if err != nil {
			return nil, usagef("--http-tls-cert/--http-tls-key: %v", err)
		}
		logger.Info("serving HTTPS", "cert", f.httpTLSCert)
		return coordinator.HTTPServerTLS(cert), nil
	case f.httpTLSSelfSigned:
		var hosts []string
		for _, a := range []string{advertise, f.httpAddr} {
			if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
				hosts = append(hosts, h)
			}
		}
		cert, err := coordinator.SelfSignedHTTPCert(key, hosts)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(f.dataDir, "http-cert.pem")
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
		if err := os.WriteFile(path, pemBytes, 0o644); err != nil {
			return nil, fmt.Errorf("writing the self-signed HTTP certificate: %w", err)
		}
		logger.Info("serving HTTPS with a self-signed certificate of the member's identity",
			"pin", mfncrypto.FormatPublicKey(key.Public().(ed25519.PublicKey)), "cert", path, "names", cert.Leaf.DNSNames, "ips", fmt.Sprint(cert.Leaf.IPAddresses))
		return coordinator.HTTPServerTLS(cert), nil
	}
	return nil, nil
}

// readCertPool reads PEM certificates from path.
func readCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

func listenAddr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// regimeEvaluator scores models of the MFN regime task (node.TaskMFNRegime)
// on a held-out test set simulated from a seed, with the model the node
// trains for the job's parameter count (node.ArchFor): every member with
// the same --eval-seed and --eval-per-regime scores a model alike. Other
// tasks have no held-out data here (ok=false). The test set is simulated
// in the background from the start, so the first round close does not
// wait for all of it.
type regimeEvaluator struct {
	ready chan struct{}
	test  *learn.Dataset
	err   error
	mu    sync.Mutex // learn.Accuracy's model is not shared, but keep one evaluation at a time
}

// newRegimeEvaluator returns the evaluator, or nil when perRegime is 0.
func newRegimeEvaluator(ctx context.Context, seed uint64, perRegime int, logger *slog.Logger) coordinator.Evaluator {
	if perRegime == 0 {
		return nil
	}
	e := &regimeEvaluator{ready: make(chan struct{})}
	go func() {
		defer close(e.ready)
		start := time.Now()
		e.test, e.err = node.RegimeTestSet(ctx, 0, 0, perRegime, seed, 1)
		if e.err != nil {
			logger.Warn("held-out test set of the regime task", "err", e.err)
			return
		}
		logger.Info("held-out test set of the regime task ready", "samples", e.test.Len(), "seed", seed,
			"seconds", time.Since(start).Seconds())
	}()
	return e
}

// Evaluate implements coordinator.Evaluator.
func (e *regimeEvaluator) Evaluate(task string, params []float64) (float64, bool, error) {
	if task != node.TaskMFNRegime {
		return 0, false, nil
	}
	<-e.ready
	if e.err != nil {
		return 0, false, e.err
	}
	arch, err := node.ArchFor(task, len(params))
	if err != nil {
		return 0, false, err
	}
	m, err := learn.NewModel(arch, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return 0, false, err
	}
	copy(m.Params(), params)
	e.mu.Lock()
	defer e.mu.Unlock()
	acc, err := learn.Accuracy(m, e.test)
	if err != nil {
		return 0, false, err
	}
	return acc, true, nil
}

// stopAll stops the HTTP and QUIC servers, then the member (leadership
// transfer, Raft shutdown, stores closed).
func stopAll(hsrv *api.Server, qsrv *protocol.Server, shutdown func() error) error {
	var errs []error
	if hsrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, hsrv.Shutdown(ctx))
		cancel()
	}
	if qsrv != nil {
		if err := qsrv.Close(); err != nil && !errors.Is(err, protocol.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, shutdown())
	return errors.Join(errs...)
}
