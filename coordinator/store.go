package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Storage is where a member keeps its Raft state: the log, the stable
// store (current term, vote) and snapshots.
type Storage struct {
	// Dir is the member's data directory ("" for in-memory storage);
	// streamed updates spill under it (ingest_stream.go).
	Dir       string
	Logs      raft.LogStore
	Stable    raft.StableStore
	Snapshots raft.SnapshotStore
	close     func() error
}

// Close releases the storage's files (a no-op for in-memory storage).
func (s *Storage) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// Data directory layout of a member, made by OpenStorage:
//
//	DIR/raft.db        bbolt: the Raft log and stable store
//	DIR/snapshots/     raft file snapshots (the last 2 kept)
const (
	raftDBFile    = "raft.db"
	snapshotsDir  = "snapshots"
	keepSnapshots = 2
	// logCacheSize is how many recent entries the log cache keeps in memory
	// in front of bbolt, so replication to followers reads no disk
	// (logcache.go: also bounded by bytes).
	logCacheSize = 512
)

// OpenStorage opens (creating if needed) a member's durable storage under
// dir: a bbolt database behind a log cache of 512 entries and 256 MiB
// (entries over 4 MiB uncached), and a file snapshot store keeping 2
// snapshots. logger may be nil.
func OpenStorage(dir string, logger *slog.Logger) (*Storage, error) {
	return openStorage(dir, logger, nil)
}

// openStorage is OpenStorage with bbolt options (nil: bbolt's defaults,
// which wait for the file lock for ever).
func openStorage(dir string, logger *slog.Logger, bopts *bbolt.Options) (*Storage, error) {
	if logger == nil {
		logger = discardLogger
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("coordinator: data dir: %w", err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, raftDBFile), BoltOptions: bopts})
	if err != nil {
		return nil, fmt.Errorf("coordinator: open %s: %w", filepath.Join(dir, raftDBFile), err)
	}
	cache := newLogCache(bolt, logCacheSize, logCacheMaxEntry, logCacheMaxBytes)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, snapshotsDir), keepSnapshots,
		newHclog(logger, "snapshots", hclog.Info))
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("coordinator: snapshot store: %w", err)
	}
	return &Storage{Dir: dir, Logs: cache, Stable: bolt, Snapshots: snaps, close: bolt.Close}, nil
}

// InmemStorage returns volatile storage for tests and benchmarks.
func InmemStorage() *Storage {
	s := raft.NewInmemStore()
	return &Storage{Logs: s, Stable: s, Snapshots: raft.NewInmemSnapshotStore()}
}

// HasState reports whether the storage holds Raft state (a log, a term or
// a snapshot): a member with state rejoins its cluster from it and must
// not be bootstrapped again.
func (s *Storage) HasState() (bool, error) {
	ok, err := raft.HasExistingState(s.Logs, s.Stable, s.Snapshots)
	if err != nil {
		return false, fmt.Errorf("coordinator: inspect raft state: %w", err)
	}
	return ok, nil
}

var errNoStorage = errors.New("coordinator: Config.Storage is nil")
