package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// UncosignedResults lists the result leaves of an export directory that
// no checkpoint cosigned by a majority of members covers yet: those after
// the largest such checkpoint. It checks no log signature (verify-log
// does): it tells an exporter whether the members' cosignatures of the
// newest rounds have arrived, which follow a round's close by a moment.
func UncosignedResults(dir string, members MemberKeys) ([]uint64, error) {
	var covered uint64
	for seq := 1; ; seq++ {
		note, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(CheckpointFile(seq))))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		i := bytes.Index(note, []byte("\n\n"))
		if i < 0 {
			return nil, fmt.Errorf("audit: %s: not a signed note: %w", CheckpointFile(seq), ErrMalformed)
		}
		cp, err := ParseCheckpointBody(note[:i+1])
		if err != nil {
			return nil, err
		}
		if _, err := VerifyQuorum(note, members); err == nil && cp.Size > covered {
			covered = cp.Size
		}
	}
	var out []uint64
	for i := covered; ; i++ {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(LeafFile(i))))
		if errors.Is(err, fs.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if IsResultLeaf(b) {
			out = append(out, i)
		}
	}
}
