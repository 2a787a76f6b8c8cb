package audit

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/mfn/mfn/crypto"
)

// snapshotMagic opens every snapshot; the byte after it is the version.
const snapshotMagic = "MFN-AUDIT-LOG\x00"

// SnapshotVersion is the snapshot format version written by Snapshot and
// the only one Restore accepts.
const SnapshotVersion uint8 = 1

// Snapshot serialises the whole log state. The format (version 1), integers
// big-endian:
//
//	magic        "MFN-AUDIT-LOG\x00"
//	version      uint8 (= SnapshotVersion)
//	origin       uint16 length || bytes
//	leaf count   uint64
//	leaves       count × (uint16 length || encoded leaf)
//	checkpoints  uint64 count, then count × (uint32 length || signed note)
//	root         [32]byte, the tree root, checked on Restore
//
// Equal logs give equal bytes. The error is always nil today; it is kept
// so the signature fits a state machine's snapshot interface.
func (l *Log) Snapshot() ([]byte, error) {
	n := len(snapshotMagic) + 1 + 2 + len(l.origin) + 8 + 8 + 32
	for _, leaf := range l.leaves {
		n += 2 + len(leaf)
	}
	for _, c := range l.checkpoints {
		n += 4 + len(c.note)
	}
	b := make([]byte, 0, n)
	b = append(b, snapshotMagic...)
	b = append(b, SnapshotVersion)
	b = appendString(b, l.origin)
	b = binary.BigEndian.AppendUint64(b, uint64(len(l.leaves)))
	for _, leaf := range l.leaves {
		b = binary.BigEndian.AppendUint16(b, uint16(len(leaf)))
		b = append(b, leaf...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(l.checkpoints)))
	for _, c := range l.checkpoints {
		b = binary.BigEndian.AppendUint32(b, uint32(len(c.note)))
		b = append(b, c.note...)
	}
	b = append(b, l.tree.root[:]...)
	return b, nil
}

// Restore replaces the log's state with a snapshot taken by Snapshot. The
// snapshot must name this log's origin. Leaves are decoded strictly and
// must carry the origin, the rebuilt tree must reproduce the recorded root,
// and every checkpoint is re-checked as AddCheckpoint does (signature under
// this log's verifier, origin, root, no rollback). Leaf signatures are not
// re-verified: the recorded root already binds the restored leaves to the
// ones that were verified on Append (or by the caller of AppendTrusted). On error the log is unchanged; errors
// wrap ErrMalformed, ErrVersion, ErrTooLarge, ErrOriginMismatch,
// ErrRootMismatch or the checkpoint errors of AddCheckpoint.
func (l *Log) Restore(snapshot []byte) error {
	if !bytes.HasPrefix(snapshot, []byte(snapshotMagic)) {
		return fmt.Errorf("audit: snapshot: missing magic %q: %w", snapshotMagic, ErrMalformed)
	}
	// One copy of the whole snapshot backs every restored leaf.
	r := &reader{what: "snapshot", b: bytes.Clone(snapshot), off: len(snapshotMagic)}
	if v := r.u8("version"); r.err == nil && v != SnapshotVersion {
		return fmt.Errorf("audit: snapshot version %d, want %d: %w", v, SnapshotVersion, ErrVersion)
	}
	origin := r.string16("origin", crypto.MaxOriginLen)
	if r.err == nil && origin != l.origin {
		return fmt.Errorf("audit: snapshot of log %q restored into log %q: %w", origin, l.origin, ErrOriginMismatch)
	}
	count := r.u64("leaf count")
	if r.err == nil && count > uint64(len(snapshot)-r.off)/(2+minResultLeafLen) {
		return fmt.Errorf("audit: snapshot claims %d leaves in %d bytes: %w", count, len(snapshot)-r.off, ErrMalformed)
	}
	fresh := &Log{origin: l.origin, verifier: l.verifier, tree: newTree()}
	if r.err == nil {
		fresh.leaves = make([][]byte, 0, count)
	}
	for i := uint64(0); r.err == nil && i < count; i++ {
		enc := r.bytes16("leaf", max(MaxLeafLen, MaxResultLeafLen))
		if r.err != nil {
			break
		}
		origin, err := leafOrigin(enc)
		if err != nil {
			return fmt.Errorf("audit: snapshot: %w", &LeafError{Index: i, Err: err})
		}
		if origin != l.origin {
			return fmt.Errorf("audit: snapshot: %w", &LeafError{Index: i, Err: fmt.Errorf("audit: leaf origin %q: %w", origin, ErrOriginMismatch)})
		}
		fresh.leaves = append(fresh.leaves, enc)
		fresh.tree.appendBulk(LeafHash(enc))
	}
	fresh.tree.updateRoot()
	ncp := r.u64("checkpoint count")
	if r.err == nil && ncp > uint64(len(snapshot)-r.off)/4 {
		return fmt.Errorf("audit: snapshot claims %d checkpoints in %d bytes: %w", ncp, len(snapshot)-r.off, ErrMalformed)
	}
	for i := uint64(0); r.err == nil && i < ncp; i++ {
		n := r.u32("checkpoint length")
		if r.err == nil && n > MaxCheckpointLen {
			return fmt.Errorf("audit: snapshot checkpoint %d is %d bytes: %w", i, n, ErrTooLarge)
		}
		signed := r.take("checkpoint", int(n))
		if r.err != nil {
			break
		}
		if _, err := fresh.AddCheckpoint(signed); err != nil {
			return fmt.Errorf("audit: snapshot checkpoint %d: %w", i, err)
		}
	}
	root := r.take("root", 32)
	r.end()
	if r.err != nil {
		return r.err
	}
	if [32]byte(root) != fresh.tree.root {
		return fmt.Errorf("audit: snapshot root differs from the root of its %d leaves: %w", count, ErrRootMismatch)
	}
	*l = *fresh
	return nil
}
