package audit

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/crypto"
)

// Result leaves share the log with update leaves. An update leaf starts
// with its version byte (LeafVersion, never 0); a typed leaf starts with
// the marker byte 0x00, then a kind byte and the kind's version byte, so
// the first byte alone tells the two apart and update leaves decode exactly
// as before.
const (
	// typedLeafMarker opens every leaf that is not an update leaf.
	typedLeafMarker uint8 = 0x00
	// KindResult is the kind byte of a round result leaf.
	KindResult uint8 = 0x01
	// ResultLeafVersion is the version byte of the result leaf encoding
	// written by ResultLeaf.MarshalBinary and the only one accepted.
	ResultLeafVersion uint8 = 1
)

// Limits of a result leaf. MaxResultLeafLen keeps every leaf within the
// uint16 length prefix the log snapshot uses; the other limits are checked
// before anything is allocated.
const (
	// MaxResultLeafLen is the largest encoded result leaf (64 KiB − 1).
	MaxResultLeafLen = math.MaxUint16
	// MaxRuleLen bounds the rule (pipeline) name, e.g. "nnm+bucketing+krum".
	MaxRuleLen = 256
	// MaxRuleParamsLen bounds the canonical parameter string.
	MaxRuleParamsLen = 1024
	// MaxReasonLen bounds one rejection reason.
	MaxReasonLen = 256
	// MaxReasons bounds the number of distinct rejection reasons.
	MaxReasons = 256
	// MaxResultEntries bounds the updates one result names. With 19 bytes
	// per entry (index, flags, reason, score) 3,000 entries and a few
	// reasons fit MaxResultLeafLen.
	MaxResultEntries = 3000
	// MaxNoiseCommitmentLen bounds the DP noise commitment.
	MaxNoiseCommitmentLen = 256
)

// Entry flags.
const (
	flagUsed  uint8 = 1 << 0 // the update contributed to the aggregate
	flagInput uint8 = 1 << 1 // the update was passed to the rule
	flagScore uint8 = 1 << 2 // a score follows
	flagsAll        = flagUsed | flagInput | flagScore
)

// Weighting says how the aggregation weighed its inputs.
type Weighting uint8

const (
	// WeightEqual gives every input the same weight (nil weights).
	WeightEqual Weighting = 0
	// WeightSamples weighs each input by its statement's sample count.
	WeightSamples Weighting = 1
)

// ResultEntry is one update of a round as its result records it.
type ResultEntry struct {
	// LeafIndex is the update's leaf in the same log.
	LeafIndex uint64
	// Input is true when the update was passed to the rule; false when it
	// was rejected before aggregation (e.g. its envelope could not be
	// opened). Used implies Input.
	Input bool
	// Used is true when the update contributed to the aggregate.
	Used bool
	// Reason explains a rejection; empty exactly when Used.
	Reason string
	// Score is the rule's score for the update, nil when it has none. It
	// must be finite.
	Score *float64
}

// ResultLeaf is a closed round's result as the audit log records it: which
// rule turned which logged updates into which model.
//
// The canonical encoding (kind result, version 1), integers big-endian:
//
//	marker       uint8 = 0x00 (update leaves start with a non-zero version)
//	kind         uint8 = KindResult (0x01)
//	version      uint8 = ResultLeafVersion (1)
//	origin       uint16 length || UTF-8 (1..crypto.MaxOriginLen)
//	job id       uint16 length || UTF-8 (1..crypto.MaxJobIDLen)
//	round        uint64
//	rule         uint16 length || UTF-8 (1..MaxRuleLen), pipeline name "pre+...+rule"
//	params       uint16 length || ASCII (0..MaxRuleParamsLen), FormatRuleParams's form
//	weighting    uint8 (0 equal, 1 sample counts)
//	base hash    [32]byte SHA-256 of the base model (crypto.EncodeUpdate, float64)
//	new hash     [32]byte SHA-256 of the new model, same encoding
//	reasons      uint16 count (0..MaxReasons), count × (uint16 length || UTF-8 1..MaxReasonLen),
//	             strictly ascending byte order (so each appears once)
//	entries      uint32 count (1..MaxResultEntries), in aggregation input order:
//	  leaf index uint64
//	  flags      uint8: bit 0 used, bit 1 input, bit 2 score present; others 0
//	  reason     uint16: 0 for a used entry, else 1 + index into reasons
//	  score      uint64 IEEE-754 bits, finite, only when bit 2 is set
//	noise        uint16 length || bytes (0..MaxNoiseCommitmentLen)
//
// Entries appear in the order the updates were given to the rule (the
// aggregation input order), every leaf index at most once; every reason in
// the table is referenced by some entry. Each result has exactly one
// encoding and UnmarshalBinary accepts nothing else. The Merkle leaf hash
// is the RFC 6962 hash of these bytes, as for update leaves.
type ResultLeaf struct {
	Origin          string
	JobID           string
	Round           uint64
	Rule            string    // rule or pipeline name, as aggregate.New takes it
	Params          string    // canonical parameters (FormatRuleParams), may be empty
	Weighting       Weighting // how inputs were weighed
	BaseHash        [32]byte  // hash of the model the round started from
	NewHash         [32]byte  // hash of the model it produced
	Entries         []ResultEntry
	NoiseCommitment []byte // DP noise commitment, empty without central noise
}

// minResultLeafLen is the smallest encoded result leaf: fixed fields, one
// byte for each required string, one used entry.
const minResultLeafLen = 3 + 2 + 1 + 2 + 1 + 8 + 2 + 1 + 2 + 1 + 32 + 32 + 2 + 4 + 11 + 2

// IsResultLeaf reports whether an encoded leaf is a result leaf (by its
// first bytes; it does not decode it).
func IsResultLeaf(encoded []byte) bool {
	return len(encoded) >= 2 && encoded[0] == typedLeafMarker && encoded[1] == KindResult
}

// Used returns the leaf indexes of the used updates, in input order.
func (r *ResultLeaf) Used() []uint64 {
	var out []uint64
	for _, e := range r.Entries {
		if e.Used {
			out = append(out, e.LeafIndex)
		}
	}
	return out
}

// reasonTable returns the sorted distinct reasons of r's entries.
func (r *ResultLeaf) reasonTable() []string {
	var rs []string
	for _, e := range r.Entries {
		if e.Reason != "" {
			rs = append(rs, e.Reason)
		}
	}
	slices.Sort(rs)
	return slices.Compact(rs)
}

// MarshalBinary returns the canonical encoding described on ResultLeaf.
// Errors wrap ErrMalformed (empty or invalid strings, a used entry with a
// reason or an unused one without, Used without Input, a non-finite score,
// a repeated leaf index, a parameter string that is not printable ASCII,
// no used entry, an unknown weighting) or ErrTooLarge (a field or the
// whole leaf over its limit).
func (r *ResultLeaf) MarshalBinary() ([]byte, error) {
	for _, f := range []struct {
		name, v string
		max     int
	}{{"origin", r.Origin, crypto.MaxOriginLen}, {"job id", r.JobID, crypto.MaxJobIDLen}, {"rule", r.Rule, MaxRuleLen}} {
		if err := checkString(f.v, f.max); err != nil {
			return nil, fmt.Errorf("audit: result leaf %s: %w", f.name, err)
		}
	}
	if len(r.Params) > MaxRuleParamsLen {
		return nil, fmt.Errorf("audit: result leaf params %d bytes, limit %d: %w", len(r.Params), MaxRuleParamsLen, ErrTooLarge)
	}
	if err := checkParamsText(r.Params); err != nil {
		return nil, err
	}
	if r.Weighting > WeightSamples {
		return nil, fmt.Errorf("audit: result leaf weighting %d: %w", r.Weighting, ErrMalformed)
	}
	if len(r.NoiseCommitment) > MaxNoiseCommitmentLen {
		return nil, fmt.Errorf("audit: result leaf noise commitment %d bytes, limit %d: %w", len(r.NoiseCommitment), MaxNoiseCommitmentLen, ErrTooLarge)
	}
	switch n := len(r.Entries); {
	case n == 0:
		return nil, fmt.Errorf("audit: result leaf has no entries: %w", ErrMalformed)
	case n > MaxResultEntries:
		return nil, fmt.Errorf("audit: result leaf has %d entries, limit %d: %w", n, MaxResultEntries, ErrTooLarge)
	}
	reasons := r.reasonTable()
	if len(reasons) > MaxReasons {
		return nil, fmt.Errorf("audit: result leaf has %d distinct reasons, limit %d: %w", len(reasons), MaxReasons, ErrTooLarge)
	}
	for _, s := range reasons {
		if err := checkString(s, MaxReasonLen); err != nil {
			return nil, fmt.Errorf("audit: result leaf reason: %w", err)
		}
	}
	seen := make(map[uint64]bool, len(r.Entries))
	used := 0
	for i, e := range r.Entries {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("audit: result leaf entry %d (leaf %d): %w", i, e.LeafIndex, err)
		}
		if seen[e.LeafIndex] {
			return nil, fmt.Errorf("audit: result leaf names leaf %d twice: %w", e.LeafIndex, ErrMalformed)
		}
		seen[e.LeafIndex] = true
		if e.Used {
			used++
		}
	}
	if used == 0 {
		return nil, fmt.Errorf("audit: result leaf uses no update: %w", ErrMalformed)
	}

	b := make([]byte, 0, minResultLeafLen+len(r.Origin)+len(r.JobID)+len(r.Rule)+len(r.Params)+19*len(r.Entries))
	b = append(b, typedLeafMarker, KindResult, ResultLeafVersion)
	b = appendString(b, r.Origin)
	b = appendString(b, r.JobID)
	b = binary.BigEndian.AppendUint64(b, r.Round)
	b = appendString(b, r.Rule)
	b = appendString(b, r.Params)
	b = append(b, uint8(r.Weighting))
	b = append(b, r.BaseHash[:]...)
	b = append(b, r.NewHash[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(reasons)))
	for _, s := range reasons {
		b = appendString(b, s)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Entries)))
	for _, e := range r.Entries {
		b = binary.BigEndian.AppendUint64(b, e.LeafIndex)
		var flags uint8
		if e.Used {
			flags |= flagUsed
		}
		if e.Input {
			flags |= flagInput
		}
		if e.Score != nil {
			flags |= flagScore
		}
		b = append(b, flags)
		ref := 0
		if e.Reason != "" {
			ref = 1 + slices.Index(reasons, e.Reason)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(ref))
		if e.Score != nil {
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(*e.Score))
		}
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.NoiseCommitment)))
	b = append(b, r.NoiseCommitment...)
	if len(b) > MaxResultLeafLen {
		return nil, fmt.Errorf("audit: result leaf is %d bytes, limit %d: %w", len(b), MaxResultLeafLen, ErrTooLarge)
	}
	return b, nil
}

// check validates one entry on its own.
func (e *ResultEntry) check() error {
	switch {
	case e.Used && !e.Input:
		return fmt.Errorf("used but not an input: %w", ErrMalformed)
	case e.Used && e.Reason != "":
		return fmt.Errorf("used with a rejection reason: %w", ErrMalformed)
	case !e.Used && e.Reason == "":
		return fmt.Errorf("rejected without a reason: %w", ErrMalformed)
	case e.Score != nil && (math.IsNaN(*e.Score) || math.IsInf(*e.Score, 0)):
		return fmt.Errorf("score %v is not finite: %w", *e.Score, ErrMalformed)
	}
	return nil
}

// checkParamsText requires printable ASCII without spaces (the
// FormatRuleParams alphabet is narrower; ParseRuleParams checks it).
func checkParamsText(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("audit: result leaf params byte %d is %#x, want printable ASCII: %w", i, s[i], ErrMalformed)
		}
	}
	return nil
}

// UnmarshalBinary decodes the canonical encoding strictly into r. Errors
// wrap ErrTooLarge (input over MaxResultLeafLen or a field or count over
// its limit), ErrVersion (not a result leaf of ResultLeafVersion) or
// ErrMalformed (truncation, trailing bytes, anything MarshalBinary would
// refuse, unsorted or unreferenced reasons, a bad reason reference, unknown
// flag bits) and name the field and byte offset. On error r is unchanged.
// The decoded leaf does not alias data.
func (r *ResultLeaf) UnmarshalBinary(data []byte) error {
	if len(data) > MaxResultLeafLen {
		return fmt.Errorf("audit: result leaf is %d bytes, limit %d: %w", len(data), MaxResultLeafLen, ErrTooLarge)
	}
	rd := &reader{what: "result leaf", b: data}
	marker, kind, version := rd.u8("marker"), rd.u8("kind"), rd.u8("version")
	if rd.err != nil {
		return rd.err
	}
	if marker != typedLeafMarker || kind != KindResult || version != ResultLeafVersion {
		return fmt.Errorf("audit: leaf kind %#x/%#x version %d is not a result leaf version %d: %w", marker, kind, version, ResultLeafVersion, ErrVersion)
	}
	var d ResultLeaf
	d.Origin = rd.string16("origin", crypto.MaxOriginLen)
	d.JobID = rd.string16("job id", crypto.MaxJobIDLen)
	d.Round = rd.u64("round")
	d.Rule = rd.string16("rule", MaxRuleLen)
	if n := int(rd.u16("params")); rd.err == nil {
		if n > MaxRuleParamsLen {
			rd.fail("params", fmt.Errorf("length %d, limit %d: %w", n, MaxRuleParamsLen, ErrTooLarge))
		}
		d.Params = string(rd.take("params", n))
	}
	d.Weighting = Weighting(rd.u8("weighting"))
	copy(d.BaseHash[:], rd.take("base hash", 32))
	copy(d.NewHash[:], rd.take("new hash", 32))
	nr := int(rd.u16("reason count"))
	if rd.err == nil && nr > MaxReasons {
		rd.fail("reason count", fmt.Errorf("%d, limit %d: %w", nr, MaxReasons, ErrTooLarge))
	}
	var reasons []string
	for i := 0; rd.err == nil && i < nr; i++ {
		s := rd.string16("reason", MaxReasonLen)
		if rd.err == nil && i > 0 && s <= reasons[i-1] {
			rd.fail("reason", fmt.Errorf("reasons not strictly ascending: %w", ErrMalformed))
		}
		reasons = append(reasons, s)
	}
	ne := rd.u32("entry count")
	if rd.err == nil {
		switch {
		case ne == 0:
			rd.fail("entry count", fmt.Errorf("zero: %w", ErrMalformed))
		case ne > MaxResultEntries:
			rd.fail("entry count", fmt.Errorf("%d, limit %d: %w", ne, MaxResultEntries, ErrTooLarge))
		case int(ne)*11 > len(data)-rd.off:
			rd.fail("entry count", fmt.Errorf("%d entries in %d bytes: %w", ne, len(data)-rd.off, ErrMalformed))
		}
	}
	var scores []float64 // one allocation backs every decoded score
	if rd.err == nil {
		d.Entries = make([]ResultEntry, 0, ne)
		scores = make([]float64, 0, ne)
	}
	referenced := make([]bool, len(reasons))
	for i := uint32(0); rd.err == nil && i < ne; i++ {
		var e ResultEntry
		e.LeafIndex = rd.u64("entry leaf index")
		flags := rd.u8("entry flags")
		ref := int(rd.u16("entry reason"))
		if rd.err != nil {
			break
		}
		if flags&^flagsAll != 0 {
			rd.fail("entry flags", fmt.Errorf("unknown bits %#x: %w", flags, ErrMalformed))
			break
		}
		e.Used, e.Input = flags&flagUsed != 0, flags&flagInput != 0
		if ref > len(reasons) {
			rd.fail("entry reason", fmt.Errorf("reference %d, %d reasons: %w", ref, len(reasons), ErrMalformed))
			break
		}
		if ref > 0 {
			e.Reason = reasons[ref-1]
			referenced[ref-1] = true
		}
		if flags&flagScore != 0 {
			scores = append(scores, math.Float64frombits(rd.u64("entry score")))
			e.Score = &scores[len(scores)-1]
		}
		d.Entries = append(d.Entries, e)
	}
	if n := int(rd.u16("noise commitment")); rd.err == nil {
		if n > MaxNoiseCommitmentLen {
			rd.fail("noise commitment", fmt.Errorf("length %d, limit %d: %w", n, MaxNoiseCommitmentLen, ErrTooLarge))
		}
		if v := rd.take("noise commitment", n); len(v) > 0 {
			d.NoiseCommitment = append([]byte(nil), v...)
		}
	}
	rd.end()
	if rd.err != nil {
		return rd.err
	}
	for i, ok := range referenced {
		if !ok {
			return fmt.Errorf("audit: result leaf reason %d (%q) is not referenced: %w", i, reasons[i], ErrMalformed)
		}
	}
	// Everything else MarshalBinary checks (entries, params, weighting).
	if _, err := d.MarshalBinary(); err != nil {
		return err
	}
	*r = d
	return nil
}

// ParseResultLeaf decodes an encoded result leaf; see
// ResultLeaf.UnmarshalBinary.
func ParseResultLeaf(data []byte) (*ResultLeaf, error) {
	var r ResultLeaf
	if err := r.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	return &r, nil
}

// AppendResult checks that the result carries the log's origin and that
// every entry names an earlier update leaf of the same job and round, then
// appends it and returns its index. It does not check the model hashes nor
// double use across rounds (VerifyLogFS does). On error nothing changes;
// errors wrap ErrOriginMismatch, ErrRange (an entry beyond the log),
// ErrResultMismatch (an entry that is a result leaf or another job's or
// round's update) or the errors of ResultLeaf.MarshalBinary.
func (l *Log) AppendResult(r *ResultLeaf) (uint64, error) {
	if r.Origin != l.origin {
		return 0, fmt.Errorf("audit: result origin %q, log origin %q: %w", r.Origin, l.origin, ErrOriginMismatch)
	}
	enc, err := r.MarshalBinary()
	if err != nil {
		return 0, err
	}
	for _, e := range r.Entries {
		if e.LeafIndex >= l.Size() {
			return 0, fmt.Errorf("audit: result job %s round %d names leaf %d of %d: %w", r.JobID, r.Round, e.LeafIndex, l.Size(), ErrRange)
		}
		u, err := ParseLeaf(l.leaves[e.LeafIndex])
		if err != nil {
			return 0, fmt.Errorf("audit: result job %s round %d names leaf %d, not an update leaf: %w", r.JobID, r.Round, e.LeafIndex, ErrResultMismatch)
		}
		if u.JobID != r.JobID || u.Round != r.Round {
			return 0, fmt.Errorf("audit: result job %s round %d names leaf %d of job %s round %d: %w", r.JobID, r.Round, e.LeafIndex, u.JobID, u.Round, ErrResultMismatch)
		}
	}
	return l.appendVerified(enc), nil
}

// leafOrigin decodes an encoded leaf of either kind and returns its origin.
func leafOrigin(enc []byte) (string, error) {
	if IsResultLeaf(enc) {
		r, err := ParseResultLeaf(enc)
		if err != nil {
			return "", err
		}
		return r.Origin, nil
	}
	l, err := ParseLeaf(enc)
	if err != nil {
		return "", err
	}
	return l.Origin, nil
}

// EntriesFromReport builds a result's entries the way a coordinator closes
// a round. leafIndexes are the round's update leaves in the order the
// round holds them; notInput maps a position in leafIndexes to the reason
// it was not given to the rule (e.g. "cannot open: ..."); the others were
// given to the rule in order, and rep is the rule's report over them
// (indexes into that input list). An input the rule neither used nor gave a
// reason gets "not selected by <rule>"; non-finite scores are dropped.
func EntriesFromReport(leafIndexes []uint64, notInput map[int]string, rep aggregate.Report) []ResultEntry {
	entries := make([]ResultEntry, len(leafIndexes))
	var pos []int // position in leafIndexes of each input
	for i, idx := range leafIndexes {
		entries[i].LeafIndex = idx
		if reason, ok := notInput[i]; ok {
			entries[i].Reason = reason
			continue
		}
		entries[i].Input = true
		pos = append(pos, i)
	}
	for _, k := range rep.Used {
		if k >= 0 && k < len(pos) {
			entries[pos[k]].Used = true
		}
	}
	for _, rj := range rep.Rejected {
		if rj.Index >= 0 && rj.Index < len(pos) {
			entries[pos[rj.Index]].Reason = rj.Reason
		}
	}
	for k, s := range rep.Scores {
		if k < len(pos) && !math.IsNaN(s) && !math.IsInf(s, 0) {
			v := s
			entries[pos[k]].Score = &v
		}
	}
	for i := range entries {
		switch {
		case entries[i].Used:
			entries[i].Reason = ""
		case entries[i].Reason == "":
			entries[i].Reason = "not selected by " + rep.Rule
		}
		if len(entries[i].Reason) > MaxReasonLen {
			entries[i].Reason = strings.ToValidUTF8(entries[i].Reason[:MaxReasonLen], "")
		}
	}
	return entries
}
