package coordinator

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mfn/mfn/audit"
)

// Round archives (issue 15): with Config.ArchiveDir set, a member writes
// each closed round with a result leaf as an audit round archive
// (audit.WriteRoundArchive: the result leaf, the base model, every update
// leaf and the sealed envelopes the rule received) to
//
//	ArchiveDir/<job>/<round, 8 digits>.tar
//
// when its attester takes up the round, from the sealed bodies Apply
// handed over before dropping them. Every member writes the same bytes.
// "mfn audit replay --archive FILE --identity <coordinator keys>"
// re-derives the round from it. Only the newest Config.ArchiveKeep
// archives (all jobs together) are kept: the oldest go first, so the
// disk used is bounded by ArchiveKeep rounds' sealed updates. Rounds of
// jobs above StreamDeriveDim are not archived (an archive is built in
// memory and replay works on float64 copies).

// archivePath is where round's archive of job goes under dir.
func archivePath(dir, job string, round uint64) string {
	return filepath.Join(dir, job, fmt.Sprintf("%08d.tar", round))
}

// ArchivePath returns the path of a round's archive on this member
// (which may not exist: not yet written, pruned, or archives off).
func (c *Coordinator) ArchivePath(job string, round uint64) (string, bool) {
	if c.cfg.ArchiveDir == "" || validID("job", job) != nil {
		return "", false
	}
	return archivePath(c.cfg.ArchiveDir, job, round), true
}

// roundArchive builds the archive of a closed round from its attest task.
func (c *Coordinator) roundArchive(t *attestTask) (*audit.RoundArchive, error) {
	res, err := audit.ParseResultLeaf(t.leaf)
	if err != nil {
		return nil, err
	}
	input := make(map[uint64]bool, len(res.Entries))
	for _, e := range res.Entries {
		input[e.LeafIndex] = e.Input
	}
	a := &audit.RoundArchive{Result: t.leaf, BaseModel: ModelBytes(t.base)}
	for _, u := range t.round.Updates {
		leaf, err := c.fsm.leaf(u.LeafIndex)
		if err != nil {
			return nil, fmt.Errorf("update leaf %d: %w", u.LeafIndex, err)
		}
		au := audit.ArchivedUpdate{LeafIndex: u.LeafIndex, Leaf: leaf}
		if input[u.LeafIndex] {
			b, err := c.bodyBytes(u) // blob.go: the entry's bytes or the blob file
			if err != nil || len(b) == 0 {
				return nil, fmt.Errorf("update leaf %d: sealed body: %v", u.LeafIndex, err)
			}
			au.Sealed = b
		}
		a.Updates = append(a.Updates, au)
	}
	return a, nil
}

// writeArchive writes t's round archive (atomically: a temporary file
// renamed) and prunes the oldest beyond ArchiveKeep. Failures are logged:
// an archive is a convenience for auditors, not part of the round.
func (c *Coordinator) writeArchive(t *attestTask) {
	if c.cfg.ArchiveDir == "" {
		return
	}
	job, round := t.job.Spec.ID, t.round.Number
	if useStreamDerive(t.job) {
		// An archive holds its parts in memory (audit.RoundArchive) and
		// replay decodes float64 copies with a 128 MiB base-model bound:
		// a big round (derive_big.go) is not archived.
		c.logger.Info("round archive skipped: dim above the bounded-memory threshold", slog.String("job", job),
			slog.Uint64("round", round), slog.Int("dim", t.job.Spec.Dim), slog.Int("threshold", StreamDeriveDim))
		return
	}
	err := func() error {
		a, err := c.roundArchive(t)
		if err != nil {
			return err
		}
		path := archivePath(c.cfg.ArchiveDir, job, round)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), ".archive-*")
		if err != nil {
			return err
		}
		// Written straight to the file: the archive is never whole in
		// memory besides its parts.
		bw := bufio.NewWriterSize(tmp, 256<<10)
		err = audit.WriteRoundArchive(bw, a)
		if err == nil {
			err = bw.Flush()
		}
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			os.Remove(tmp.Name())
			return err
		}
		return nil
	}()
	if err != nil {
		c.logger.Warn("round archive not written", slog.String("job", job), slog.Uint64("round", round), errAttr(err))
		return
	}
	c.pruneArchives()
}

// pruneArchives removes the oldest archives (by modification time, then
// path) beyond ArchiveKeep, and job directories left empty.
func (c *Coordinator) pruneArchives() {
	type file struct {
		path string
		mod  int64
	}
	var files []file
	jobs, err := os.ReadDir(c.cfg.ArchiveDir)
	if err != nil {
		return
	}
	for _, j := range jobs {
		if !j.IsDir() {
			continue
		}
		dir := filepath.Join(c.cfg.ArchiveDir, j.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".tar") {
				continue
			}
			if info, err := e.Info(); err == nil {
				files = append(files, file{filepath.Join(dir, e.Name()), info.ModTime().UnixNano()})
			}
		}
	}
	if len(files) <= c.cfg.ArchiveKeep {
		return
	}
	slices.SortFunc(files, func(a, b file) int {
		if a.mod != b.mod {
			return int(min(max(a.mod-b.mod, -1), 1))
		}
		return strings.Compare(a.path, b.path)
	})
	for _, f := range files[:len(files)-c.cfg.ArchiveKeep] {
		if err := os.Remove(f.path); err != nil {
			c.logger.Warn("round archive not pruned", slog.String("path", f.path), errAttr(err))
			continue
		}
		os.Remove(filepath.Dir(f.path)) // only succeeds once empty
	}
}
