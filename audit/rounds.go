package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// Export format versions. Version 1 is leaves/ and checkpoints/ only.
// Version 2 adds a FORMAT file, result leaves among the leaves, member
// cosignature lines in the checkpoint notes and an optional members.keys.
// A directory without FORMAT is read as version 1 (and verified the same
// way: version 2 only adds files).
const (
	formatFile     = "FORMAT"
	formatV2       = "mfn-audit-export 2\n"
	membersFile    = "members.keys"
	maxMembersFile = 1 << 20
)

// ExportOptions adds version-2 content to an export.
type ExportOptions struct {
	// Members are the coordinator members' cosigning keys, written to
	// members.keys for auditors; nil writes no such file.
	Members MemberKeys
}

// ExportDirWith writes the log as ExportDir does, plus the FORMAT file of
// export version 2 and, if opts.Members is not nil, members.keys. Result
// leaves and cosigned checkpoint notes are exported verbatim by either.
func ExportDirWith(dir string, l *Log, opts ExportOptions) error {
	if err := ExportDir(dir, l); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, formatFile), []byte(formatV2), 0o644); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	if opts.Members != nil {
		if err := os.WriteFile(filepath.Join(dir, membersFile), opts.Members.Format(), 0o644); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
	}
	return nil
}

// checkFormat accepts a missing FORMAT file (version 1) or version 2;
// anything else is a *LayoutError wrapping ErrVersion.
func checkFormat(fsys fs.FS) error {
	b, err := readLimited(fsys, formatFile, 64)
	switch {
	case errors.Is(err, ErrLayout):
		return nil
	case err != nil:
		return &LayoutError{Path: formatFile, Err: err}
	case string(b) != formatV2:
		return &LayoutError{Path: formatFile, Err: fmt.Errorf("audit: export format %q, want %q: %w", strings.TrimSpace(string(b)), strings.TrimSpace(formatV2), ErrVersion)}
	}
	return nil
}

// readMembers reads members.keys from an export; a missing file gives an
// empty set (every result then fails its quorum).
func readMembers(fsys fs.FS) (MemberKeys, error) {
	b, err := readLimited(fsys, membersFile, maxMembersFile)
	if errors.Is(err, ErrLayout) {
		return MemberKeys{}, nil
	}
	if err == nil {
		var m MemberKeys
		if m, err = ParseNodeKeys(bytes.NewReader(b)); err == nil {
			return m, nil
		}
	}
	return nil, &LayoutError{Path: membersFile, Err: err}
}

// Cosign adds member cosignature lines (CosignCheckpoint's output) to
// recorded checkpoint i (0 = oldest). Each must verify under members (the
// members' keys; ErrBadCosignature, or ErrUnknownNode for a line by no
// member); lines already present are skipped. The note's body does not
// change, so snapshots and exports stay consistent. On error nothing
// changes; errors also wrap ErrRange or AddCosignatures's errors.
func (l *Log) Cosign(i int, members MemberKeys, lines ...[]byte) error {
	if i < 0 || i >= len(l.checkpoints) {
		return fmt.Errorf("audit: checkpoint %d of %d: %w", i, len(l.checkpoints), ErrRange)
	}
	c := l.checkpoints[i]
	for _, line := range lines {
		s := strings.TrimSuffix(string(line), "\n")
		if !strings.HasPrefix(s, "— ") || strings.Contains(s, "\n") {
			return fmt.Errorf("audit: not a signature line: %q: %w", s, ErrMalformed)
		}
		one := append(c.note[:bytes.LastIndex(c.note, []byte("\n\n"))+2:bytes.LastIndex(c.note, []byte("\n\n"))+2], s+"\n"...)
		// one holds only this line as signature: it must be a member's.
		cs, err := VerifyCosignatures(one, members)
		if err != nil {
			return err
		}
		if len(cs) != 1 {
			return fmt.Errorf("audit: cosignature line %q is by no member: %w", strings.TrimSpace(string(line)), ErrUnknownNode)
		}
	}
	out, err := AddCosignatures(c.note, lines...)
	if err != nil {
		return err
	}
	l.checkpoints[i].note = out
	return nil
}

// leafInfo is what result checks need to know about each leaf.
type leafInfo struct {
	job    string
	round  uint64
	result bool
	usedBy int // 1 + index into roundIndex.results of the result naming it; 0 none
}

// indexedResult is a result leaf and its index in the log.
type indexedResult struct {
	index uint64
	r     *ResultLeaf
}

// roundIndex collects, while leaves are read, what the result checks need.
type roundIndex struct {
	leaves  []leafInfo
	results []indexedResult
}

// add decodes leaf i (either kind) and runs its own checks: an update leaf
// checkLeaf's, a result leaf its origin.
func (ri *roundIndex) add(i uint64, enc []byte, origin string, known NodeKeys) error {
	if IsResultLeaf(enc) {
		r, err := ParseResultLeaf(enc)
		if err != nil {
			return err
		}
		if r.Origin != origin {
			return fmt.Errorf("audit: result origin %q, log origin %q: %w", r.Origin, origin, ErrOriginMismatch)
		}
		ri.leaves = append(ri.leaves, leafInfo{job: r.JobID, round: r.Round, result: true})
		ri.results = append(ri.results, indexedResult{i, r})
		return nil
	}
	if len(enc) > MaxLeafLen {
		return fmt.Errorf("audit: leaf is %d bytes, limit %d: %w", len(enc), MaxLeafLen, ErrTooLarge)
	}
	leaf, err := ParseLeaf(enc)
	if err == nil {
		err = checkLeaf(leaf, origin, known)
	}
	if err != nil {
		return err
	}
	ri.leaves = append(ri.leaves, leafInfo{job: leaf.JobID, round: leaf.Round})
	return nil
}

// explain adds to a root mismatch the rounds whose result leaves lie in
// the leaves that changed, so the failure names them.
func (ri *roundIndex) explain(err error, t *tree, cps []*Checkpoint) error {
	from, to := uint64(0), t.size()
	for _, c := range cps {
		if r, rerr := t.rootAt(c.Size); rerr == nil && r != c.Root {
			to = c.Size
			break
		}
		from = c.Size
	}
	var names []string
	for _, x := range ri.results {
		if x.index >= from && x.index < to {
			names = append(names, fmt.Sprintf("job %s round %d (leaf %d)", x.r.JobID, x.r.Round, x.index))
		}
	}
	if len(names) == 0 {
		return err
	}
	return fmt.Errorf("%w; round results among those leaves: %s", err, strings.Join(names, ", "))
}

// check runs the result checks of VerifyLogFS, in log order.
func (ri *roundIndex) check(cps []*Checkpoint, notes [][]byte, files []string, members MemberKeys) error {
	if len(ri.results) == 0 {
		return nil
	}
	// cosigners[k] = the members that cosigned checkpoint k or a later one.
	verified := make([][]Cosignature, len(cps))
	for k := range cps {
		cs, err := VerifyCosignatures(notes[k], members)
		if err != nil {
			err = &CheckpointError{File: files[k], Err: err}
			// Name the round the checkpoint attests: its newest result.
			for n := len(ri.results) - 1; n >= 0; n-- {
				if x := ri.results[n]; x.index < cps[k].Size {
					return &RoundError{Job: x.r.JobID, Round: x.r.Round, Index: x.index, Err: err}
				}
			}
			return err
		}
		verified[k] = cs
	}
	cosigners := make([]map[string]bool, len(cps)+1)
	cosigners[len(cps)] = map[string]bool{}
	for k := len(cps) - 1; k >= 0; k-- {
		cs := verified[k]
		set := make(map[string]bool, len(cosigners[k+1])+len(cs))
		for m := range cosigners[k+1] {
			set[m] = true
		}
		for _, c := range cs {
			set[c.Member] = true
		}
		cosigners[k] = set
	}
	type last struct {
		round   uint64
		newHash [32]byte
		index   uint64
	}
	chain := map[string]last{}
	for n, x := range ri.results {
		r := x.r
		fail := func(err error) error { return &RoundError{Job: r.JobID, Round: r.Round, Index: x.index, Err: err} }
		for _, e := range r.Entries {
			switch {
			case e.LeafIndex >= x.index:
				return fail(fmt.Errorf("audit: names leaf %d, not before the result: %w", e.LeafIndex, ErrResultMismatch))
			case ri.leaves[e.LeafIndex].result:
				return fail(fmt.Errorf("audit: names leaf %d, a result leaf: %w", e.LeafIndex, ErrResultMismatch))
			case ri.leaves[e.LeafIndex].job != r.JobID || ri.leaves[e.LeafIndex].round != r.Round:
				li := ri.leaves[e.LeafIndex]
				return fail(fmt.Errorf("audit: names leaf %d, an update of job %s round %d: %w", e.LeafIndex, li.job, li.round, ErrResultMismatch))
			case ri.leaves[e.LeafIndex].usedBy != 0:
				other := ri.results[ri.leaves[e.LeafIndex].usedBy-1]
				return fail(fmt.Errorf("audit: leaf %d is also named by the result of round %d (leaf %d): %w", e.LeafIndex, other.r.Round, other.index, ErrDoubleUse))
			}
			ri.leaves[e.LeafIndex].usedBy = n + 1
		}
		if prev, ok := chain[r.JobID]; ok {
			if r.Round <= prev.round {
				return fail(fmt.Errorf("audit: follows the result of round %d (leaf %d): %w", prev.round, prev.index, ErrBaseChain))
			}
			if r.BaseHash != prev.newHash {
				return fail(fmt.Errorf("audit: base model %x, the result of round %d (leaf %d) made %x: %w", r.BaseHash[:8], prev.round, prev.index, prev.newHash[:8], ErrBaseChain))
			}
		}
		chain[r.JobID] = last{r.Round, r.NewHash, x.index}
		// The first checkpoint covering the result, and every later one.
		k := 0
		for k < len(cps) && cps[k].Size <= x.index {
			k++
		}
		got, need := len(cosigners[k]), Quorum(len(members))
		if len(members) == 0 || got < need {
			return fail(fmt.Errorf("audit: %d of %d members cosigned a checkpoint covering it, quorum is %d: %w", got, len(members), need, ErrQuorum))
		}
	}
	return nil
}

// VerifyResultBundle checks a proof bundle (Log.Bundle) whose leaf is a
// result leaf, offline, so a site can confirm what the cluster recorded
// for its update: the checkpoint is signed by verifier's key (a
// *CheckpointError), the leaf decodes as a result leaf of the checkpoint's
// origin, lies inside the checkpoint and its inclusion proof leads to the
// checkpoint's root (a *LeafError wrapping ErrVersion for an update leaf,
// ErrMalformed, ErrOriginMismatch, ErrRange or ErrInclusion), and, if
// members is not nil, a majority of members cosigned the bundle's
// checkpoint (a *RoundError wrapping ErrQuorum or ErrBadCosignature).
func VerifyResultBundle(b *Bundle, verifier note.Verifier, members MemberKeys) (*ResultLeaf, *Checkpoint, error) {
	if b.Version != BundleVersion {
		return nil, nil, fmt.Errorf("audit: bundle version %d, want %d: %w", b.Version, BundleVersion, ErrVersion)
	}
	cp, err := ParseCheckpoint([]byte(b.Checkpoint), verifier)
	if err != nil {
		return nil, nil, &CheckpointError{File: "bundle", Err: err}
	}
	r, err := ParseResultLeaf(b.Leaf)
	if err == nil && r.Origin != cp.Origin {
		err = fmt.Errorf("audit: result origin %q, checkpoint origin %q: %w", r.Origin, cp.Origin, ErrOriginMismatch)
	}
	if err != nil {
		return nil, nil, &LeafError{Index: b.LeafIndex, Err: err}
	}
	if b.LeafIndex >= cp.Size {
		return nil, nil, &LeafError{Index: b.LeafIndex, Err: fmt.Errorf("audit: index %d outside checkpoint size %d: %w", b.LeafIndex, cp.Size, ErrRange)}
	}
	lh := LeafHash(b.Leaf)
	if err := proof.VerifyInclusion(hasher, b.LeafIndex, cp.Size, lh[:], b.Inclusion, cp.Root[:]); err != nil {
		return nil, nil, &LeafError{Index: b.LeafIndex, Err: fmt.Errorf("audit: inclusion proof (tree size %d): %s: %w", cp.Size, proofFailure(err, "the leaf is not under the checkpoint's root"), ErrInclusion)}
	}
	if members != nil {
		if _, err := VerifyQuorum([]byte(b.Checkpoint), members); err != nil {
			return nil, nil, &RoundError{Job: r.JobID, Round: r.Round, Index: b.LeafIndex, Err: err}
		}
	}
	return r, cp, nil
}

// WriteExportMembers marks an export directory (ExportDir's layout, e.g.
// written from a member's API) as export version 2 and writes members to
// its members.keys, for an export whose writer learned the members' keys
// separately.
func WriteExportMembers(dir string, members MemberKeys) error {
	if err := os.WriteFile(filepath.Join(dir, formatFile), []byte(formatV2), 0o644); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, membersFile), members.Format(), 0o644); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	return nil
}
