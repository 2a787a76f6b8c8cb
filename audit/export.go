package audit

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// Layout of an exported log directory (see the package documentation).
const (
	leavesDir      = "leaves"
	checkpointsDir = "checkpoints"
	leafExt        = ".leaf"
	noteExt        = ".note"
	leafDigits     = 8 // leaves/00000000.leaf, numbered from 0 = leaf index
	noteDigits     = 6 // checkpoints/000001.note, numbered from 1 in order
)

// LeafFile is the path, relative to an export directory, of leaf index.
func LeafFile(index uint64) string {
	return path.Join(leavesDir, fmt.Sprintf("%0*d%s", leafDigits, index, leafExt))
}

// CheckpointFile is the path, relative to an export directory, of the
// seq-th checkpoint (seq counts from 1).
func CheckpointFile(seq int) string {
	return path.Join(checkpointsDir, fmt.Sprintf("%0*d%s", noteDigits, seq, noteExt))
}

// ExportDir writes the log for offline auditors into dir (created if
// needed): every leaf covered by the newest checkpoint as
// leaves/<index>.leaf and every recorded checkpoint, oldest first, as
// checkpoints/<seq>.note. Leaves appended after the newest checkpoint are
// not exported, so the export verifies on its own. It refuses to write into
// a dir that already has a leaves or checkpoints folder (an error wrapping
// fs.ErrExist) and fails with ErrNoCheckpoint for a log without
// checkpoints.
func ExportDir(dir string, l *Log) error {
	_, latest, err := l.LatestCheckpoint()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	for _, sub := range []string{leavesDir, checkpointsDir} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
	}
	for i := uint64(0); i < latest.Size; i++ {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(LeafFile(i))), l.leaves[i], 0o644); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
	}
	for i, c := range l.checkpoints {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(CheckpointFile(i+1))), c.note, 0o644); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
	}
	return nil
}

// LogReport summarises a verified log export.
type LogReport struct {
	Origin      string   // the log's origin
	Leaves      uint64   // number of leaves, equal to the newest checkpoint's size
	Checkpoints int      // number of checkpoints, all verified and consistent
	Root        [32]byte // root of the leaves and of the newest checkpoint
	Latest      string   // file of the newest checkpoint
	Results     int      // number of result leaves, all checked (see VerifyLogFS)
}

// VerifyLogDir verifies an exported log directory offline; see VerifyLogFS.
func VerifyLogDir(dir string, verifier note.Verifier, known NodeKeys) (*LogReport, error) {
	return VerifyLogFS(os.DirFS(dir), verifier, known)
}

// VerifyOptions are an auditor's optional trust inputs for VerifyLogFSWith.
type VerifyOptions struct {
	// NodeKeys are the enrolled node keys; nil trusts the key in each leaf.
	NodeKeys NodeKeys
	// Since is a signed checkpoint note the auditor accepted earlier (from
	// a previous audit or a bundle); nil means none. The log must extend
	// it, which a single export cannot show by itself: a log cut back to an
	// older checkpoint, or a fork served to this auditor, fails here.
	Since []byte
	// Members are the coordinator members' cosigning keys, against which
	// every result leaf needs a quorum of cosignatures. Nil means the
	// export's members.keys file; a log with result leaves and neither
	// fails with ErrQuorum.
	Members MemberKeys
}

// sinceFile names the Since checkpoint in errors.
const sinceFile = "(since)"

// VerifyLogFSWith is VerifyLogFS with options. After every check of
// VerifyLogFS it verifies opts.Since: signed by the log key and of the
// log's origin (a *CheckpointError for "(since)" wrapping the
// ParseCheckpoint errors or ErrOriginMismatch), not larger than the log
// (ErrRollback: the log shrank since), and consistent with the newest
// checkpoint by a consistency proof computed from the leaves
// (ErrInconsistent).
func VerifyLogFSWith(fsys fs.FS, verifier note.Verifier, opts VerifyOptions) (*LogReport, error) {
	rep, t, latest, err := verifyLog(fsys, verifier, opts)
	if err != nil || opts.Since == nil {
		return rep, err
	}
	since, err := ParseCheckpoint(opts.Since, verifier)
	if err != nil {
		return nil, &CheckpointError{File: sinceFile, Err: err}
	}
	switch {
	case since.Origin != rep.Origin:
		return nil, &CheckpointError{File: sinceFile, Err: fmt.Errorf("audit: origin %q, log origin %q: %w", since.Origin, rep.Origin, ErrOriginMismatch)}
	case since.Size > latest.Size:
		return nil, &CheckpointError{File: rep.Latest, Prev: sinceFile, Err: fmt.Errorf("audit: log has size %d, a checkpoint seen earlier had %d: %w", latest.Size, since.Size, ErrRollback)}
	}
	p, err := t.consistencyProof(since.Size, latest.Size)
	if err != nil {
		return nil, &CheckpointError{File: rep.Latest, Prev: sinceFile, Err: err}
	}
	if err := verifyConsistency(since, latest, p); err != nil {
		return nil, &CheckpointError{File: rep.Latest, Prev: sinceFile, Err: fmt.Errorf("audit: sizes %d→%d: %s: %w", since.Size, latest.Size, proofFailure(err, "the log does not extend the checkpoint seen earlier"), ErrInconsistent)}
	}
	return rep, nil
}

// VerifyLogFS verifies an exported log (the layout ExportDir writes) read
// from fsys, trusting nothing but verifier (the log key) and, if not nil,
// known (enrolled node keys). It returns the first failure, in this order:
//
//  1. checkpoints/ holds 000001.note … with no gap and nothing else
//     (ErrLayout; ErrNoCheckpoint if empty);
//  2. each checkpoint, in order, is signed by the log key and well formed,
//     names the first one's origin, is not smaller than its predecessor
//     (ErrRollback) and, at an equal size, has the same root (ErrFork);
//  3. leaves/ holds 00000000.leaf … with no gap and nothing else
//     (ErrLayout, naming the first missing index);
//  4. each leaf, in order, decodes strictly, names the log's origin, its node
//     signature verifies and agrees with the statement, and its node is
//     enrolled when known is given;
//  5. the leaf count equals the newest checkpoint's size (ErrSizeMismatch)
//     and the rebuilt RFC 6962 root equals its root (ErrRootMismatch; the
//     message narrows the changed leaves down to the range between the last
//     checkpoint the leaves still match and the first they do not);
//  6. every successive pair of checkpoints is consistent: the consistency
//     proof computed from the leaves verifies (merkle/proof) between the
//     two signed roots (ErrInconsistent);
//  7. every result leaf (in log order) names only earlier update leaves
//     of its job and round (ErrResultMismatch), none named by another
//     result (ErrDoubleUse), follows the job's previous result with a
//     later round and a base hash equal to its new hash (ErrBaseChain),
//     and a majority of the members (VerifyOptions.Members, else the
//     export's members.keys) cosigned checkpoints covering it (ErrQuorum;
//     ErrBadCosignature for a member line that does not verify).
//
// A FORMAT file other than export format 2 fails first with ErrVersion.
// Leaf failures are *LeafError (index and file), checkpoint failures
// *CheckpointError (file, and the earlier file for pair checks), result
// failures *RoundError (job, round, result leaf index), and a folder that
// is missing or holds unexpected entries a *LayoutError.
func VerifyLogFS(fsys fs.FS, verifier note.Verifier, known NodeKeys) (*LogReport, error) {
	rep, _, _, err := verifyLog(fsys, verifier, VerifyOptions{NodeKeys: known})
	return rep, err
}

// verifyLog runs VerifyLogFS's checks and also returns the rebuilt tree and
// the newest checkpoint.
func verifyLog(fsys fs.FS, verifier note.Verifier, opts VerifyOptions) (*LogReport, *tree, *Checkpoint, error) {
	known := opts.NodeKeys
	if err := checkFormat(fsys); err != nil {
		return nil, nil, nil, err
	}
	cpFiles, err := listNumbered(fsys, checkpointsDir, noteExt, noteDigits, 1)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(cpFiles) == 0 {
		return nil, nil, nil, &LayoutError{Path: checkpointsDir, Err: fmt.Errorf("audit: no checkpoint files: %w", ErrNoCheckpoint)}
	}
	cps := make([]*Checkpoint, len(cpFiles))
	notes := make([][]byte, len(cpFiles))
	for i, name := range cpFiles {
		msg, err := readLimited(fsys, name, MaxCheckpointLen)
		notes[i] = msg
		if err == nil {
			cps[i], err = ParseCheckpoint(msg, verifier)
		}
		if err != nil {
			return nil, nil, nil, &CheckpointError{File: name, Err: err}
		}
		if i == 0 {
			continue
		}
		prev, cur := cps[i-1], cps[i]
		switch {
		case cur.Origin != cps[0].Origin:
			return nil, nil, nil, &CheckpointError{File: name, Prev: cpFiles[0], Err: fmt.Errorf("audit: origin %q, earlier %q: %w", cur.Origin, cps[0].Origin, ErrOriginMismatch)}
		case cur.Size < prev.Size:
			return nil, nil, nil, &CheckpointError{File: name, Prev: cpFiles[i-1], Err: fmt.Errorf("audit: size %d after size %d: %w", cur.Size, prev.Size, ErrRollback)}
		case cur.Size == prev.Size && cur.Root != prev.Root:
			return nil, nil, nil, &CheckpointError{File: name, Prev: cpFiles[i-1], Err: fmt.Errorf("audit: size %d: %w", cur.Size, ErrFork)}
		}
	}
	origin := cps[0].Origin

	leafFiles, err := listNumbered(fsys, leavesDir, leafExt, leafDigits, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	t := newTree()
	rounds := &roundIndex{}
	for i, name := range leafFiles {
		enc, err := readLimited(fsys, name, max(MaxLeafLen, MaxResultLeafLen))
		if err == nil {
			err = rounds.add(uint64(i), enc, origin, known)
		}
		if err != nil {
			return nil, nil, nil, &LeafError{Index: uint64(i), File: name, Err: err}
		}
		t.appendBulk(LeafHash(enc))
	}
	t.updateRoot()

	last := len(cps) - 1
	latest, latestFile := cps[last], cpFiles[last]
	if t.size() != latest.Size {
		return nil, nil, nil, &CheckpointError{File: latestFile, Err: fmt.Errorf("audit: %d leaves, checkpoint commits to %d: %w", t.size(), latest.Size, ErrSizeMismatch)}
	}
	if t.root != latest.Root {
		return nil, nil, nil, &CheckpointError{File: latestFile, Err: rounds.explain(rootMismatch(t, cps, cpFiles), t, cps)}
	}
	for i := 1; i < len(cps); i++ {
		prev, cur := cps[i-1], cps[i]
		p, err := t.consistencyProof(prev.Size, cur.Size)
		if err != nil {
			return nil, nil, nil, &CheckpointError{File: cpFiles[i], Prev: cpFiles[i-1], Err: err}
		}
		if err := verifyConsistency(prev, cur, p); err != nil {
			return nil, nil, nil, &CheckpointError{File: cpFiles[i], Prev: cpFiles[i-1], Err: fmt.Errorf("audit: sizes %d→%d: %s: %w", prev.Size, cur.Size, proofFailure(err, "the later tree does not extend the earlier one"), ErrInconsistent)}
		}
	}
	members := opts.Members
	if members == nil && len(rounds.results) > 0 {
		if members, err = readMembers(fsys); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := rounds.check(cps, notes, cpFiles, members); err != nil {
		return nil, nil, nil, err
	}
	return &LogReport{Origin: origin, Leaves: t.size(), Checkpoints: len(cps), Root: t.root, Latest: latestFile, Results: len(rounds.results)}, t, latest, nil
}

// errEmptyRoot is the proof failure of a size-0 checkpoint whose root is
// not the empty tree's.
var errEmptyRoot = errors.New("the earlier checkpoint has size 0 but not the empty tree's root")

// verifyConsistency checks the consistency proof p from c1 to c2. An empty
// proof from size 0 checks nothing in merkle/proof, so a size-0 checkpoint
// must also carry the empty tree's root (as AddCheckpoint requires).
func verifyConsistency(c1, c2 *Checkpoint, p [][]byte) error {
	if c1.Size == 0 && c1.Root != [32]byte(hasher.EmptyRoot()) {
		return errEmptyRoot
	}
	return proof.VerifyConsistency(hasher, c1.Size, c2.Size, p, c1.Root[:], c2.Root[:])
}

// rootMismatch explains a root mismatch at the newest checkpoint: the first
// checkpoint whose root the leaves do not reproduce bounds where they
// changed.
func rootMismatch(t *tree, cps []*Checkpoint, files []string) error {
	from := uint64(0)
	for i, c := range cps {
		if r, err := t.rootAt(c.Size); err == nil && r != c.Root {
			return fmt.Errorf("audit: the %d leaves do not hash to the checkpoint's root; first disagreement at %s, so leaves in [%d, %d) differ from what was signed: %w",
				t.size(), files[i], from, c.Size, ErrRootMismatch)
		}
		from = c.Size
	}
	return fmt.Errorf("audit: the %d leaves do not hash to the checkpoint's root: %w", t.size(), ErrRootMismatch)
}

// listNumbered lists dir inside fsys, requiring every entry to be a regular
// file named <number><ext> with the number zero-padded to digits and the
// numbers running from first without gaps. It returns the paths in numeric
// order. Failures are a *LayoutError, or a *LeafError / *CheckpointError
// naming the first missing number.
func listNumbered(fsys fs.FS, dir, ext string, digits int, first uint64) ([]string, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, &LayoutError{Path: dir, Err: fmt.Errorf("audit: %v: %w", err, ErrLayout)}
	}
	type numbered struct {
		n    uint64
		name string
	}
	files := make([]numbered, 0, len(entries))
	for _, e := range entries {
		name := path.Join(dir, e.Name())
		num, ok := strings.CutSuffix(e.Name(), ext)
		n, err := strconv.ParseUint(num, 10, 64)
		if !ok || err != nil || fmt.Sprintf("%0*d", digits, n) != num || !e.Type().IsRegular() {
			return nil, &LayoutError{Path: name, Err: fmt.Errorf("audit: unexpected entry (want regular files named like %0*d%s): %w", digits, first, ext, ErrLayout)}
		}
		files = append(files, numbered{n, name})
	}
	// Names sort numerically up to 10^digits entries; past that a wider
	// name would sort early by text, so sort by number.
	slices.SortFunc(files, func(a, b numbered) int { return cmp.Compare(a.n, b.n) })
	paths := make([]string, len(files))
	for i, f := range files {
		if want := first + uint64(i); f.n != want {
			missing := path.Join(dir, fmt.Sprintf("%0*d%s", digits, want, ext))
			err := fmt.Errorf("audit: missing (next file is %s): %w", f.name, ErrLayout)
			if dir == leavesDir {
				return nil, &LeafError{Index: want, File: missing, Err: err}
			}
			return nil, &CheckpointError{File: missing, Err: err}
		}
		paths[i] = f.name
	}
	return paths, nil
}

// readLimited reads a file of at most limit bytes without allocating more.
func readLimited(fsys fs.FS, name string, limit int) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("audit: %v: %w", err, ErrLayout)
		}
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("audit: read %s: %w", name, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("audit: %s exceeds %d bytes: %w", name, limit, ErrTooLarge)
	}
	return b, nil
}

// proofFailure describes a merkle/proof verification error: a root
// mismatch (whose message dumps both roots as byte lists) becomes why, any
// other error (a malformed proof) keeps its text.
func proofFailure(err error, why string) string {
	var rm proof.RootMismatchError
	if errors.As(err, &rm) {
		return why
	}
	return err.Error()
}
