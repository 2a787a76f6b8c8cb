package audit

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mfn/mfn/crypto"
)

// A round archive holds what an auditor needs to re-derive one round's
// model (Replay): the result leaf, the base model, and for every update the
// result names its update leaf and, for every update the rule received,
// its sealed envelope. Layout (a directory, or a tar file of the same
// paths, regular files only):
//
//	FORMAT                      "mfn-round-archive 1\n"
//	result.leaf                 the encoded result leaf (ResultLeaf.MarshalBinary)
//	base.model                  the base model, crypto.EncodeUpdate(params, crypto.Float64)
//	updates/<index>.leaf        the update leaf at log index <index> (8+ digits)
//	updates/<index>.sealed      its sealed envelope (crypto.Seal), for input entries
//
// The sealed envelopes are encrypted to the coordinators, so an archive
// is replayable only by a holder of a coordinator age key. The leaves tie
// the archive to the log: result.leaf and each updates/*.leaf are
// byte-identical to the leaves verify-log checked.
const (
	archiveFormat    = "mfn-round-archive 1\n"
	archiveFormatF   = "FORMAT"
	archiveResultF   = "result.leaf"
	archiveBaseF     = "base.model"
	archiveUpdates   = "updates"
	archiveLeafExt   = ".leaf"
	archiveSealedExt = ".sealed"
)

// ArchivedUpdate is one update of a round archive.
type ArchivedUpdate struct {
	LeafIndex uint64
	Leaf      []byte // the encoded update leaf
	Sealed    []byte // the sealed envelope; nil for an update the rule did not receive
}

// RoundArchive is a round archive in memory.
type RoundArchive struct {
	Result    []byte // encoded result leaf
	BaseModel []byte // encoded base model
	Updates   []ArchivedUpdate
}

// ArchiveLimits bound what reading an archive may allocate. Zero fields
// take the defaults.
type ArchiveLimits struct {
	// MaxTotalBytes bounds the sum of all file sizes; zero means 4 GiB.
	MaxTotalBytes int64
	// Envelope bounds each sealed envelope (crypto.Limits.MaxSealedSize)
	// and each decoded update; the zero value is crypto's defaults.
	Envelope crypto.Limits
}

func (l ArchiveLimits) withDefaults() ArchiveLimits {
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = 4 << 30
	}
	return l
}

// maxModelBytes bounds base.model: the header plus DefaultMaxUpdateLen
// float64 values (128 MiB).
const maxModelBytes = crypto.UpdateHeaderLen + 8*crypto.DefaultMaxUpdateLen

// updateName is the archive path of an update file.
func updateName(index uint64, ext string) string {
	return path.Join(archiveUpdates, fmt.Sprintf("%08d%s", index, ext))
}

// files returns the archive's files in their canonical order.
func (a *RoundArchive) files() ([]archiveFile, error) {
	out := []archiveFile{{archiveFormatF, []byte(archiveFormat)}, {archiveResultF, a.Result}, {archiveBaseF, a.BaseModel}}
	ups := slices.Clone(a.Updates)
	slices.SortFunc(ups, func(x, y ArchivedUpdate) int {
		switch {
		case x.LeafIndex < y.LeafIndex:
			return -1
		case x.LeafIndex > y.LeafIndex:
			return 1
		}
		return 0
	})
	for i, u := range ups {
		if i > 0 && ups[i-1].LeafIndex == u.LeafIndex {
			return nil, fmt.Errorf("audit: archive holds leaf %d twice: %w", u.LeafIndex, ErrMalformed)
		}
		out = append(out, archiveFile{updateName(u.LeafIndex, archiveLeafExt), u.Leaf})
		if u.Sealed != nil {
			out = append(out, archiveFile{updateName(u.LeafIndex, archiveSealedExt), u.Sealed})
		}
	}
	return out, nil
}

type archiveFile struct {
	name string
	data []byte
}

// archiveEpoch is the modification time of every archive entry, so equal
// archives are equal bytes.
var archiveEpoch = time.Unix(0, 0).UTC()

// WriteRoundArchive writes a as a tar stream: FORMAT, result.leaf,
// base.model, then the update files by leaf index, each a regular file
// with mode 0644, owner 0 and modification time 0 (equal archives give
// equal bytes). It checks that the result leaf decodes and that every
// update the result names is present with a leaf, and every input has its
// envelope; errors wrap ErrMalformed (or the result leaf's decoding
// errors) or come from w.
func WriteRoundArchive(w io.Writer, a *RoundArchive) error {
	if err := a.check(); err != nil {
		return err
	}
	files, err := a.files()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: archiveEpoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("audit: write archive: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("audit: write archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("audit: write archive: %w", err)
	}
	return nil
}

// check validates the archive's structure against its result leaf.
func (a *RoundArchive) check() error {
	r, err := ParseResultLeaf(a.Result)
	if err != nil {
		return fmt.Errorf("audit: archive result: %w", err)
	}
	if len(a.BaseModel) == 0 {
		return fmt.Errorf("audit: archive has no base model: %w", ErrMalformed)
	}
	have := make(map[uint64]*ArchivedUpdate, len(a.Updates))
	for i := range a.Updates {
		u := &a.Updates[i]
		if len(u.Leaf) == 0 {
			return fmt.Errorf("audit: archive update %d has no leaf: %w", u.LeafIndex, ErrMalformed)
		}
		have[u.LeafIndex] = u
	}
	for _, e := range r.Entries {
		u, ok := have[e.LeafIndex]
		switch {
		case !ok:
			return fmt.Errorf("audit: archive lacks update leaf %d named by the result: %w", e.LeafIndex, ErrMalformed)
		case e.Input && u.Sealed == nil:
			return fmt.Errorf("audit: archive lacks the sealed envelope of input leaf %d: %w", e.LeafIndex, ErrMalformed)
		}
	}
	if len(have) != len(r.Entries) {
		return fmt.Errorf("audit: archive holds %d updates, the result names %d: %w", len(have), len(r.Entries), ErrMalformed)
	}
	return nil
}

// ReadRoundArchiveTar reads an archive written by WriteRoundArchive (or
// any tar of the same layout). Sizes are checked from the headers before
// reading: every file against its own limit (result leaf
// MaxResultLeafLen, update leaf MaxLeafLen, envelope
// limits.Envelope.MaxSealedSize(), base model 128 MiB) and all together
// against limits.MaxTotalBytes (ErrTooLarge). Anything but regular files
// of the layout fails with ErrLayout; errors otherwise wrap ErrMalformed
// or ErrTooLarge.
func ReadRoundArchiveTar(r io.Reader, limits ArchiveLimits) (*RoundArchive, error) {
	limits = limits.withDefaults()
	b := newArchiveBuilder(limits)
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("audit: read archive: %v: %w", err, ErrMalformed)
		}
		if hdr.Typeflag == tar.TypeDir {
			if strings.Trim(hdr.Name, "/") != archiveUpdates {
				return nil, fmt.Errorf("audit: archive entry %q: %w", hdr.Name, ErrLayout)
			}
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("audit: archive entry %q is not a regular file: %w", hdr.Name, ErrLayout)
		}
		if err := b.add(hdr.Name, hdr.Size, tr); err != nil {
			return nil, err
		}
	}
	return b.finish()
}

// ReadRoundArchiveFS reads an archive laid out as a directory in fsys,
// with ReadRoundArchiveTar's limits and checks.
func ReadRoundArchiveFS(fsys fs.FS, limits ArchiveLimits) (*RoundArchive, error) {
	limits = limits.withDefaults()
	b := newArchiveBuilder(limits)
	var names []string
	for _, dir := range []string{".", archiveUpdates} {
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			if dir == archiveUpdates && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("audit: read archive: %v: %w", err, ErrLayout)
		}
		for _, e := range entries {
			name := path.Join(dir, e.Name())
			if dir == "." && e.IsDir() && e.Name() == archiveUpdates {
				continue
			}
			if !e.Type().IsRegular() {
				return nil, fmt.Errorf("audit: archive entry %q is not a regular file: %w", name, ErrLayout)
			}
			names = append(names, name)
		}
	}
	for _, name := range names {
		f, err := fsys.Open(name)
		if err != nil {
			return nil, fmt.Errorf("audit: read archive: %w", err)
		}
		st, err := f.Stat()
		if err == nil {
			err = b.add(name, st.Size(), f)
		}
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return b.finish()
}

// archiveBuilder collects files of an archive within limits.
type archiveBuilder struct {
	limits  ArchiveLimits
	total   int64
	format  bool
	a       RoundArchive
	updates map[uint64]*ArchivedUpdate
}

func newArchiveBuilder(limits ArchiveLimits) *archiveBuilder {
	return &archiveBuilder{limits: limits, updates: map[uint64]*ArchivedUpdate{}}
}

// add reads one file of declared size from r.
func (b *archiveBuilder) add(name string, size int64, r io.Reader) error {
	var limit int64
	var index uint64
	var ext string
	switch name {
	case archiveFormatF:
		limit = int64(len(archiveFormat))
	case archiveResultF:
		limit = MaxResultLeafLen
	case archiveBaseF:
		limit = maxModelBytes
	default:
		base, ok := strings.CutPrefix(name, archiveUpdates+"/")
		num := strings.TrimSuffix(strings.TrimSuffix(base, archiveLeafExt), archiveSealedExt)
		n, err := strconv.ParseUint(num, 10, 64)
		if !ok || err != nil || num == base || updateName(n, path.Ext(base)) != name {
			return fmt.Errorf("audit: archive entry %q: %w", name, ErrLayout)
		}
		index, ext = n, path.Ext(base)
		limit = MaxLeafLen
		if ext == archiveSealedExt {
			limit = b.limits.Envelope.MaxSealedSize()
		}
	}
	if size < 0 || size > limit {
		return fmt.Errorf("audit: archive %s is %d bytes, limit %d: %w", name, size, limit, ErrTooLarge)
	}
	if b.total += size; b.total > b.limits.MaxTotalBytes {
		return fmt.Errorf("audit: archive exceeds %d bytes at %s: %w", b.limits.MaxTotalBytes, name, ErrTooLarge)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return fmt.Errorf("audit: read archive %s: %v: %w", name, err, ErrMalformed)
	}
	dup := func() error { return fmt.Errorf("audit: archive has %s twice: %w", name, ErrLayout) }
	switch name {
	case archiveFormatF:
		if b.format {
			return dup()
		}
		if !bytes.Equal(data, []byte(archiveFormat)) {
			return fmt.Errorf("audit: archive format %q: %w", strings.TrimSpace(string(data)), ErrVersion)
		}
		b.format = true
	case archiveResultF:
		if b.a.Result != nil {
			return dup()
		}
		b.a.Result = data
	case archiveBaseF:
		if b.a.BaseModel != nil {
			return dup()
		}
		b.a.BaseModel = data
	default:
		u := b.updates[index]
		if u == nil {
			u = &ArchivedUpdate{LeafIndex: index}
			b.updates[index] = u
		}
		if ext == archiveLeafExt {
			if u.Leaf != nil {
				return dup()
			}
			u.Leaf = data
		} else {
			if u.Sealed != nil {
				return dup()
			}
			u.Sealed = data
		}
	}
	return nil
}

func (b *archiveBuilder) finish() (*RoundArchive, error) {
	if !b.format {
		return nil, fmt.Errorf("audit: archive has no %s file: %w", archiveFormatF, ErrLayout)
	}
	if b.a.Result == nil || b.a.BaseModel == nil {
		return nil, fmt.Errorf("audit: archive lacks %s or %s: %w", archiveResultF, archiveBaseF, ErrLayout)
	}
	for _, u := range b.updates {
		b.a.Updates = append(b.a.Updates, *u)
	}
	slices.SortFunc(b.a.Updates, func(x, y ArchivedUpdate) int {
		if x.LeafIndex < y.LeafIndex {
			return -1
		}
		return 1
	})
	if err := b.a.check(); err != nil {
		return nil, err
	}
	return &b.a, nil
}
