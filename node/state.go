package node

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrStateFile is wrapped by errors about a state file that cannot be
// parsed. A damaged acknowledgement record is reported, never ignored:
// ignoring it could make the node submit twice.
var ErrStateFile = errors.New("node: malformed state file")

// maxStateFile bounds a state file read back (a pending file holds one
// sealed update).
const maxStateFile = 256 << 20

// Record is the durable trace of one acknowledged submission: the
// coordinators committed the update at LogIndex in their Raft log and at
// LeafIndex in the audit log (fetch its inclusion proof with
// "mfn ctl audit bundle LEAF"). A record exists for a round only once the
// acknowledgement arrived, and the node never submits again for a
// recorded round.
type Record struct {
	Job        string `json:"job"`
	Round      uint64 `json:"round"`
	BaseHash   string `json:"base_hash"`   // hex SHA-256 of the base model
	UpdateHash string `json:"update_hash"` // hex SHA-256 of the encoded update
	LogIndex   uint64 `json:"log_index"`
	LeafIndex  uint64 `json:"leaf_index"`
	Samples    uint64 `json:"samples"`
	// Duplicate is set when the coordinators answered that an update of
	// this node for this round already existed (an earlier attempt
	// succeeded but its acknowledgement was lost); the indexes are then
	// unknown (zero).
	Duplicate   bool      `json:"duplicate,omitempty"`
	Byzantine   string    `json:"byzantine,omitempty"` // the attack used, if any
	Coordinator string    `json:"coordinator"`         // QUIC address that acknowledged
	AckedAt     time.Time `json:"acked_at"`
}

// pending is a sealed update written before it is submitted, so that a
// node restarted between submission and acknowledgement sends the very
// same bytes again: the coordinators then return the original
// acknowledgement instead of refusing a second, different update.
type pending struct {
	Job        string `json:"job"`
	Round      uint64 `json:"round"`
	BaseHash   string `json:"base_hash"`
	UpdateHash string `json:"update_hash"`
	Samples    uint64 `json:"samples"`
	Sealed     []byte `json:"sealed"`
}

// State is a node's durable record of its submissions, in StateDir:
//
//	acks/<hex job id>/<round>.json   one Record per acknowledged round
//	pending/<hex job id>-<round>.json the sealed update being submitted
//
// Each file is written atomically (temporary file, fsync, rename, fsync of
// the directory). State is safe for concurrent use.
type State struct {
	dir  string
	mu   sync.Mutex
	acks map[roundKey]Record
}

type roundKey struct {
	job   string
	round uint64
}

// OpenState opens (creating if needed) the state in dir and loads every
// acknowledgement record. A record that does not parse fails with
// ErrStateFile naming the file.
func OpenState(dir string) (*State, error) {
	s := &State{dir: dir, acks: map[roundKey]Record{}}
	for _, sub := range []string{"acks", "pending"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("node: state dir: %w", err)
		}
	}
	jobs, err := os.ReadDir(filepath.Join(dir, "acks"))
	if err != nil {
		return nil, fmt.Errorf("node: state dir: %w", err)
	}
	for _, jd := range jobs {
		if !jd.IsDir() {
			continue
		}
		jdir := filepath.Join(dir, "acks", jd.Name())
		files, err := os.ReadDir(jdir)
		if err != nil {
			return nil, fmt.Errorf("node: state dir: %w", err)
		}
		for _, f := range files {
			if f.IsDir() || !strings.HasSuffix(f.Name(), ".json") || strings.HasPrefix(f.Name(), ".") {
				continue
			}
			path := filepath.Join(jdir, f.Name())
			var r Record
			if err := readJSON(path, &r); err != nil {
				return nil, err
			}
			if jobDir(r.Job) != jd.Name() || f.Name() != roundFile(r.Round) {
				return nil, fmt.Errorf("%w: %s holds job %q round %d", ErrStateFile, path, r.Job, r.Round)
			}
			s.acks[roundKey{r.Job, r.Round}] = r
		}
	}
	return s, nil
}

// Dir returns the state directory.
func (s *State) Dir() string { return s.dir }

func jobDir(job string) string      { return hex.EncodeToString([]byte(job)) }
func roundFile(round uint64) string { return strconv.FormatUint(round, 10) + ".json" }
func (s *State) pendingPath(job string, round uint64) string {
	return filepath.Join(s.dir, "pending", jobDir(job)+"-"+roundFile(round))
}

// Acked returns the record of an acknowledged round, if any.
func (s *State) Acked(job string, round uint64) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.acks[roundKey{job, round}]
	return r, ok
}

// Records returns every acknowledgement record, by job and round.
func (s *State) Records() []Record {
	s.mu.Lock()
	out := make([]Record, 0, len(s.acks))
	for _, r := range s.acks {
		out = append(out, r)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Record) int {
		if c := strings.Compare(a.Job, b.Job); c != 0 {
			return c
		}
		switch {
		case a.Round < b.Round:
			return -1
		case a.Round > b.Round:
			return 1
		}
		return 0
	})
	return out
}

// RecordAck durably records an acknowledgement and then drops the round's
// pending update. It returns only once the record is on disk.
func (s *State) RecordAck(r Record) error {
	dir := filepath.Join(s.dir, "acks", jobDir(r.Job))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: record ack: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, roundFile(r.Round)), append(b, '\n')); err != nil {
		return err
	}
	s.mu.Lock()
	s.acks[roundKey{r.Job, r.Round}] = r
	s.mu.Unlock()
	return s.dropPending(r.Job, r.Round)
}

func (s *State) savePending(p *pending) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.pendingPath(p.Job, p.Round), b)
}

// loadPending returns the pending update of a round, nil if none.
func (s *State) loadPending(job string, round uint64) (*pending, error) {
	var p pending
	err := readJSON(s.pendingPath(job, round), &p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if p.Job != job || p.Round != round || len(p.Sealed) == 0 {
		return nil, fmt.Errorf("%w: pending update for %s round %d holds job %q round %d", ErrStateFile, job, round, p.Job, p.Round)
	}
	return &p, nil
}

// pendingRounds lists the rounds of job that have a pending update, in
// increasing order.
func (s *State) pendingRounds(job string) ([]uint64, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "pending"))
	if err != nil {
		return nil, fmt.Errorf("node: state dir: %w", err)
	}
	prefix := jobDir(job) + "-"
	var rounds []uint64
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || e.IsDir() {
			continue
		}
		n, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		if r, err := strconv.ParseUint(n, 10, 64); err == nil {
			rounds = append(rounds, r)
		}
	}
	slices.Sort(rounds)
	return rounds, nil
}

func (s *State) dropPending(job string, round uint64) error {
	err := os.Remove(s.pendingPath(job, round))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("node: drop pending: %w", err)
	}
	return nil
}

func readJSON(path string, v any) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() > maxStateFile {
		return fmt.Errorf("%w: %s is %d bytes", ErrStateFile, path, fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrStateFile, path, err)
	}
	return nil
}
