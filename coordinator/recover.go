package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
)

// Quorum-loss recovery: the equivalent of hashicorp/raft's peers.json.
//
// When a majority of the voters is lost for good, the cluster cannot
// commit anything, not even the configuration change that would remove
// the lost members. Recover rewrites a stopped survivor's data directory
// offline with raft.RecoverCluster: it restores the newest snapshot,
// applies every entry of the member's log to a fresh state machine,
// writes that state as a new snapshot whose configuration is the given
// server list, and compacts the log. Nothing the survivor holds is lost:
// every committed entry it has is in the new snapshot (entries it holds
// but that were never committed are kept as well, as with peers.json).
// Choose the survivor with the highest last index (Recover reports it)
// and run Recover on that one only; start it, then add members back with
// joins. On taking office, the recovered leader removes the lost members
// from the member list, so their keys lose trust.

// RecoverConfig says what to recover and into which configuration.
type RecoverConfig struct {
	// DataDir is the stopped member's data directory (required; it must
	// hold Raft state).
	DataDir string
	// Origin and LogVerifier are the cluster's, as given to New
	// (required): the state machine replays the log under them, and a
	// checkpoint that does not verify stops the recovery before anything
	// is written.
	Origin      string
	LogVerifier note.Verifier
	// Servers is the new configuration (required, each a voter with a
	// unique id and address); normally the survivor alone.
	Servers []raft.Server
	// Logger receives raft's messages; nil discards them.
	Logger *slog.Logger
	// DryRun only reports the last index and term the member holds (to
	// pick the most up-to-date survivor) and changes nothing.
	DryRun bool
}

// RecoverResult describes the recovered state.
type RecoverResult struct {
	// LastIndex and LastTerm are those of the last entry recovered.
	LastIndex uint64
	LastTerm  uint64
	// AuditSize is the number of audit leaves (accepted updates) in the
	// recovered state; Jobs and Nodes count its jobs and enrolled nodes.
	AuditSize uint64
	Jobs      int
	Nodes     int
}

// ErrDataDirInUse is returned by Recover when another process (the member
// itself) holds the data directory's database.
var ErrDataDirInUse = errors.New("coordinator: data directory in use (stop the member first)")

// Recover rewrites the Raft configuration of a stopped member's data
// directory (see above). Errors name the cause; on error before the new
// snapshot is written the directory is unchanged.
func Recover(cfg RecoverConfig) (RecoverResult, error) {
	switch {
	case cfg.DataDir == "":
		return RecoverResult{}, fmt.Errorf("%w: recover: data dir is empty", ErrInvalid)
	case cfg.DryRun:
	case cfg.Origin == "" || cfg.LogVerifier == nil:
		return RecoverResult{}, fmt.Errorf("%w: recover: the cluster origin and log verifier are required", ErrInvalid)
	case len(cfg.Servers) == 0:
		return RecoverResult{}, fmt.Errorf("%w: recover: no servers for the new configuration", ErrInvalid)
	}
	for _, s := range cfg.Servers {
		if err := validID("member", string(s.ID)); err != nil {
			return RecoverResult{}, err
		}
		if s.Suffrage != raft.Voter {
			return RecoverResult{}, fmt.Errorf("%w: recover: server %s must be a voter", ErrInvalid, s.ID)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = discardLogger
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, raftDBFile)); err != nil {
		return RecoverResult{}, fmt.Errorf("coordinator: recover: %s holds no member state: %w", cfg.DataDir, err)
	}
	st, err := openStorage(cfg.DataDir, logger, &bbolt.Options{Timeout: time.Second})
	if errors.Is(err, bbolt.ErrTimeout) {
		return RecoverResult{}, fmt.Errorf("%w: %s", ErrDataDirInUse, cfg.DataDir)
	}
	if err != nil {
		return RecoverResult{}, err
	}
	defer st.Close()
	if cfg.DryRun {
		return lastEntry(st)
	}
	f, err := newFSM(cfg.Origin, cfg.LogVerifier, nil)
	if err != nil {
		return RecoverResult{}, err
	}
	// Blob chunks replayed here go to a private temporary directory,
	// removed on return: the new snapshot carries the open rounds' blobs,
	// and the member rewrites them from it when it starts.
	defer f.closeBlobs()
	rf := &recoverFSM{fsm: f}
	rc := raft.DefaultConfig()
	rc.LocalID = cfg.Servers[0].ID
	rc.Logger = newHclog(logger, "raft", hclog.Info)
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	if err := raft.RecoverCluster(rc, rf, st.Logs, st.Stable, st.Snapshots, trans, raft.Configuration{Servers: cfg.Servers}); err != nil {
		return RecoverResult{}, fmt.Errorf("coordinator: recover %s: %w", cfg.DataDir, err)
	}
	snaps, err := st.Snapshots.List()
	if err != nil || len(snaps) == 0 {
		return RecoverResult{}, fmt.Errorf("coordinator: recover %s: the new snapshot is missing: %v", cfg.DataDir, err)
	}
	return RecoverResult{LastIndex: snaps[0].Index, LastTerm: snaps[0].Term, AuditSize: f.treeSize(),
		Jobs: len(f.jobList()), Nodes: len(f.nodeList())}, nil
}

// lastEntry returns the index and term of the last entry a storage holds
// (in its log, or else in its newest snapshot).
func lastEntry(st *Storage) (RecoverResult, error) {
	var res RecoverResult
	if snaps, err := st.Snapshots.List(); err == nil && len(snaps) > 0 {
		res.LastIndex, res.LastTerm = snaps[0].Index, snaps[0].Term
	}
	last, err := st.Logs.LastIndex()
	if err != nil {
		return res, fmt.Errorf("coordinator: recover: %w", err)
	}
	if last > res.LastIndex {
		var l raft.Log
		if err := st.Logs.GetLog(last, &l); err != nil {
			return res, fmt.Errorf("coordinator: recover: entry %d: %w", last, err)
		}
		res.LastIndex, res.LastTerm = l.Index, l.Term
	}
	return res, nil
}

// recoverFSM refuses to snapshot (so RecoverCluster writes nothing) if the
// replay met an entry this build cannot decode or a checkpoint that does
// not verify: with the wrong log key or an older binary the recovered
// state would silently lack them.
type recoverFSM struct {
	*fsm
	bad error
}

func (r *recoverFSM) Apply(l *raft.Log) any {
	res := r.fsm.Apply(l)
	ar, ok := res.(*applyResult)
	if !ok || ar.err == nil || r.bad != nil {
		return res
	}
	t, _, derr := decodeCommand(l.Data)
	switch {
	case derr != nil:
		r.bad = fmt.Errorf("entry %d cannot be decoded by this build: %v", l.Index, derr)
	case t == cmdCheckpoint && errors.Is(ar.err, ErrInvalid):
		r.bad = fmt.Errorf("entry %d: a checkpoint does not verify under the given log key (is it this cluster's log.vkey?): %v", l.Index, ar.err)
	}
	return res
}

func (r *recoverFSM) Snapshot() (raft.FSMSnapshot, error) {
	if r.bad != nil {
		return nil, r.bad
	}
	return r.fsm.Snapshot()
}
