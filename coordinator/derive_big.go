package coordinator

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/privacy"
)

// Big rounds: deriveRoundStream is deriveRound for rounds whose updates
// are too big to hold in memory as float64 vectors (8 updates of 25
// million values would be 1.6 GB). Each sealed update is read from a
// stream and opened chunk by chunk (StreamOpener), its values checked and
// written as little-endian float32 to a plaintext file in a directory the
// caller gives; the rule then reads coordinate blocks of those files
// through an aggregate.Source (aggregate.SourceRule.AggregateSource). The
// files are removed before deriveRoundStream returns, whatever happens.
//
// Memory beyond the base model: the rule's working set (a few blocks per
// core, the n×n distance matrix, its d-value float64 result), the new
// model, and while the updates are being opened a 64 KiB read buffer, a
// 64 KiB write buffer and crypto.OpenStream's header and chunk buffers
// (about 150 KiB) per update being opened (GOMAXPROCS at a time). Disk:
// n×d×4 bytes.
//
// The derivation is built as deriveRound's (same weights, outcomes,
// result and leaf, by the same code: finishDerivation) with these
// differences, which is why every member must choose the path the same
// way for a job (useStreamDerive):
//   - the rule runs on the float32 values (aggregate.SourceRule): the
//     same bits as deriveRound for median and trimmed mean on float32
//     updates, and for fedavg except in the last d mod 4 coordinates,
//     which its float32 and float64 kernels may round one ulp apart; the
//     Krum family selects the same updates, its scores computed with
//     float32 products;
//   - a float64 update is rounded to float32 (a value beyond float32's
//     range rejects the update);
//   - rules that cannot run in bounded memory and central DP are refused
//     (the round fails with a reason naming the limit; CreateJob can
//     refuse them first, checkStreamDerivable);
//   - the reasons of updates that cannot be opened are updateVector's;
//     crypto.OpenStream and crypto.Open word the failures tested here
//     (truncated, tampered, not a recipient, unknown node, empty,
//     non-finite value) the same, others might differ.

// StreamDeriveDim is the dim above which a round is derived from streams
// (deriveRoundStream) rather than in memory: MaxUpdateDim, the largest
// dim whose updates fit one protocol frame. Smaller updates are cheap to
// hold (n × 8 MB at most) and keep the float64 path's exact arithmetic.
const StreamDeriveDim = MaxUpdateDim

// useStreamDerive reports whether a job's rounds are derived by
// deriveRoundStream. It depends only on the replicated job, so every
// member (leader and attesters) takes the same path and derives the same
// bytes.
func useStreamDerive(j Job) bool { return j.Spec.Dim > StreamDeriveDim }

// checkStreamDerivable refuses at creation a job whose rounds would be
// derived from streams (useStreamDerive) but could not be: central DP, or
// a rule that cannot aggregate in bounded memory (ErrInvalid naming the
// limit and the rules that can). rules builds the job's rule (nil: not
// checked).
func checkStreamDerivable(s JobSpec, rules RuleFactory) error {
	if s.Dim <= StreamDeriveDim {
		return nil
	}
	if s.DP != nil && s.DP.Mode == privacy.ModeCentral {
		return fmt.Errorf("%w: job %s: central DP cannot aggregate a round of dim %d in bounded memory (above %d values, only rules without central noise run from streams)",
			ErrInvalid, s.ID, s.Dim, StreamDeriveDim)
	}
	if rules == nil {
		return nil
	}
	rule, err := rules(s.Rule)
	if err != nil {
		return nil // the rule's own error is for Validate and the round
	}
	if !boundedRule(rule) {
		return fmt.Errorf("%w: job %s: rule %s cannot aggregate a round of dim %d in bounded memory (above %d values); use one of %s",
			ErrInvalid, s.ID, rule.Name(), s.Dim, StreamDeriveDim, boundedRuleNames)
	}
	return nil
}

// sealedBody returns a reader over an update's sealed envelope and its
// size in bytes.
type sealedBody func(u Update) (body io.ReadCloser, size int64, err error)

// streamInputs is what deriveRoundStream needs to reach and open a
// round's updates.
type streamInputs struct {
	// opener opens a sealed envelope read from a stream (CryptoOpener).
	opener StreamOpener
	// keys looks up a node's signing key (fsm.nodeKeyAny: updates accepted
	// before a revocation are still opened).
	keys KeyLookup
	// body gives each update's sealed envelope.
	body sealedBody
	// dir receives the plaintext files (n×d×4 bytes); it must exist.
	dir string
	// workers bounds the updates opened at once; zero means GOMAXPROCS.
	workers int
}

// deriveStream runs deriveRoundStream for a sealed round with this
// member's opener, the replicated node keys and the sealed envelopes:
// streamed ones from their blob files (blob.go), framed ones in place from
// the replicated state (fsm.pendingUpdate shares them, never copies),
// spilling plaintext to the streams' spill directory (which is emptied
// when a member starts, so a crash leaves nothing behind).
func (c *Coordinator) deriveStream(j Job, r Round, base Params) derivation {
	so, ok := c.cfg.Opener.(StreamOpener)
	if !ok {
		return derivation{fail: fmt.Sprintf("a round of dim %d is derived from streams and this member's opener cannot open streamed updates", j.Spec.Dim)}
	}
	dir, err := c.spillDir()
	if err != nil {
		return derivation{fail: fmt.Sprintf("spill directory: %v", err)}
	}
	body := func(u Update) (io.ReadCloser, int64, error) {
		if u.Body == nil && len(u.Sealed) == 0 {
			if pu, _, ok := c.fsm.pendingUpdate(j.Spec.ID, r.Number, u.Node); ok && pu.UpdateHash == u.UpdateHash {
				u.Sealed, u.Body = pu.Sealed, pu.Body
			}
		}
		return c.sealedBody(u) // a streamed update's blob file, or the framed bytes
	}
	return deriveRoundStream(c.cfg.Origin, j, r, base, c.cfg.Rules, streamInputs{opener: so, keys: c.fsm.nodeKeyAny, body: body, dir: dir})
}

// deriveRoundStream is deriveRound for a big round (see the comment at the
// top of this file): the updates are opened from in.body into files under
// in.dir and aggregated from there in bounded memory.
func deriveRoundStream(origin string, j Job, r Round, base Params, rules RuleFactory, in streamInputs) derivation {
	// Refusals that no amount of opening can change, before any work.
	if p := j.Privacy; p != nil && p.Mode == privacy.ModeCentral {
		return derivation{fail: fmt.Sprintf("central DP cannot aggregate a round of dim %d in bounded memory (above %d values, only rules without central noise run from streams)", j.Spec.Dim, StreamDeriveDim)}
	}
	var rule aggregate.SourceRule
	var ruleFail string
	switch {
	case rules == nil:
		ruleFail = "no aggregation rules configured"
	default:
		built, err := rules(j.Spec.Rule)
		if err != nil {
			ruleFail = fmt.Sprintf("rule %s: %v", j.Spec.Rule.Name, err)
			break
		}
		if !boundedRule(built) {
			return derivation{fail: fmt.Sprintf("rule %s cannot aggregate a round of dim %d in bounded memory (above %d values); use one of %s",
				built.Name(), j.Spec.Dim, StreamDeriveDim, boundedRuleNames)}
		}
		rule = built.(aggregate.SourceRule)
	}

	opened := openRoundStreams(j, r, in)
	defer opened.remove()
	outcomes := make([]updateOutcome, len(r.Updates))
	notInput := map[int]string{}
	var files []*os.File
	var nodes []string
	var weights []float64
	var pos []int
	allWeighted := true
	for i, u := range r.Updates {
		o := &opened.updates[i]
		if o.local != nil {
			return derivation{fail: fmt.Sprintf("opening the update of node %s: %v", u.Node, o.local)}
		}
		if o.reason != "" {
			outcomes[i].Reason = o.reason
			notInput[i] = o.reason
			continue
		}
		files = append(files, o.file)
		nodes = append(nodes, u.Node)
		weights = append(weights, float64(u.Samples))
		allWeighted = allWeighted && u.Samples > 0
		pos = append(pos, i)
	}
	if !allWeighted || j.Privacy != nil {
		weights = nil // DP: every update weighs the same (see JobSpec.DP)
	}
	if len(files) == 0 {
		return derivation{fail: "no update could be opened"}
	}
	if ruleFail != "" {
		return derivation{fail: ruleFail}
	}
	src := newFileSource(files, nodes, j.Spec.Dim)
	agg, rep, err := rule.AggregateSource(src, weights)
	if err != nil {
		return derivation{fail: fmt.Sprintf("aggregation: %v", err)}
	}
	return finishDerivation(origin, j, r, base, ruleOutput{agg: agg, rep: rep, ruleName: rule.Name()}, outcomes, notInput, pos, weights)
}

// boundedRuleNames lists what boundedRule accepts, for refusals.
const boundedRuleNames = "fedavg, krum, multi-krum, median, trimmed-mean, bulyan, geometric-median, centered-clipping, hierarchical-krum, " +
	"or a pipeline of nnm, bucketing and static-clipping ending in fedavg, krum, multi-krum, median or trimmed-mean"

// boundedRule reports whether rule aggregates a Source in bounded memory:
// every SourceRule does, except a Pipeline whose steps are not all
// streamable (aggregate.Pipeline.AggregateSource widens those to float64
// in memory).
func boundedRule(rule aggregate.Rule) bool {
	if _, ok := rule.(aggregate.SourceRule); !ok {
		return false
	}
	p, ok := rule.(*aggregate.Pipeline)
	if !ok {
		return true
	}
	for _, st := range p.Pre {
		switch st.(type) {
		case *aggregate.NNM, *aggregate.Bucketing, *aggregate.StaticClipping:
		default:
			return false
		}
	}
	switch p.Rule.(type) {
	case aggregate.FedAvg, *aggregate.Krum, *aggregate.MultiKrum, *aggregate.Median, *aggregate.TrimmedMean:
		return true
	}
	return false
}

// ---- opening ----

// openedUpdate is one update after openRoundStreams: its plaintext file,
// or why it is not an input (reason, the outcome deriveRound would give),
// or a failure of this member (local: disk, the body's reader), which
// fails the derivation instead of rejecting the update.
type openedUpdate struct {
	file   *os.File
	reason string
	local  error
}

type openedRound struct {
	updates []openedUpdate
}

// remove closes and deletes every plaintext file.
func (o *openedRound) remove() {
	for i := range o.updates {
		if f := o.updates[i].file; f != nil {
			f.Close()
			os.Remove(f.Name())
			o.updates[i].file = nil
		}
	}
}

// openRoundStreams opens every update of r, in.workers (GOMAXPROCS) at a
// time; the result is indexed like r.Updates whatever the scheduling.
func openRoundStreams(j Job, r Round, in streamInputs) *openedRound {
	out := &openedRound{updates: make([]openedUpdate, len(r.Updates))}
	workers := in.workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(r.Updates))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufs := &openBuffers{r: bufio.NewReaderSize(nil, openBufSize), w: bufio.NewWriterSize(nil, openBufSize)}
			for {
				i := int(next.Add(1) - 1)
				if i >= len(r.Updates) {
					return
				}
				out.updates[i] = openOne(j, r.Updates[i], in, bufs)
			}
		}()
	}
	wg.Wait()
	return out
}

// openBufSize is the read and write buffer of an update being opened:
// one age chunk (crypto.OpenStream reads 64 KiB at a time).
const openBufSize = 64 << 10

// openBuffers are one worker's buffers, reused from update to update.
type openBuffers struct {
	r *bufio.Reader
	w *bufio.Writer
}

// localError marks a failure of this member rather than of the update.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// errReader passes its reader's bytes on and remembers a read error other
// than io.EOF, which is this member's failure (a file it cannot read), not
// the update's.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// openOne opens update u into a new file under in.dir. The reasons are
// updateVector's (rounds.go), so that outcomes match deriveRound's.
func openOne(j Job, u Update, in streamInputs, bufs *openBuffers) (res openedUpdate) {
	if in.opener == nil {
		return openedUpdate{reason: "cannot open: no opener configured"}
	}
	body, size, err := in.body(u)
	if err != nil {
		return openedUpdate{reason: fmt.Sprintf("cannot open: %v", err)}
	}
	defer body.Close()
	f, err := os.CreateTemp(in.dir, "derive-*.f32")
	if err != nil {
		return openedUpdate{local: err}
	}
	defer func() {
		if res.file == nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	pw := &plainWriter{
		check: &crypto.UpdateStreamCheck{MaxLen: MaxStreamedDim},
		w:     bufs.w,
		dim:   j.Spec.Dim,
	}
	bufs.w.Reset(f)
	src := &errReader{r: body}
	bufs.r.Reset(src)
	env, err := in.opener.OpenStream(bufs.r, size, in.keys, pw)
	var le *localError
	switch {
	case src.err != nil:
		return openedUpdate{local: fmt.Errorf("reading the sealed envelope: %w", src.err)}
	case errors.As(err, &le):
		return openedUpdate{local: le.err}
	case err != nil:
		return openedUpdate{reason: fmt.Sprintf("cannot open: %v", err)}
	}
	// crypto.Open checks the hash before DecodeUpdate checks the values:
	// a value error is reported only once the envelope verified.
	if pw.err == nil {
		pw.err = pw.check.Close()
	}
	if pw.err != nil {
		return openedUpdate{reason: fmt.Sprintf("cannot open: %v", pw.err)}
	}
	if env.UpdateHash != u.UpdateHash || env.Node != u.Node {
		return openedUpdate{reason: "cannot open: envelope does not match its record"}
	}
	if n := pw.check.Header.Len; n != uint64(j.Spec.Dim) {
		return openedUpdate{reason: fmt.Sprintf("update has %d values, dim is %d", n, j.Spec.Dim)}
	}
	if pw.rangeErr != nil {
		return openedUpdate{reason: pw.rangeErr.Error()}
	}
	if err := pw.w.Flush(); err != nil {
		return openedUpdate{local: err}
	}
	return openedUpdate{file: f}
}

// plainWriter receives an opened update's encoding (crypto.EncodeUpdate's
// format) as it is decrypted, checks it (crypto.UpdateStreamCheck) and
// writes its values as little-endian float32 to w, only when the header
// counts dim values (a wrong-sized update is checked and hashed, not
// stored). It never fails the stream for the update's content: the first
// value error is kept (err) and the remaining bytes only pass through the
// hash, so that a tampered envelope is reported as such first, as
// crypto.Open does. Its own write errors are *localError.
type plainWriter struct {
	check *crypto.UpdateStreamCheck
	w     *bufio.Writer
	dim   int

	seen     int // header bytes seen
	keep     bool
	dtype    crypto.DType
	part     [8]byte // a float64 value split across writes
	npart    int
	idx      int
	conv     [4096]byte
	err      error // the check's first error
	rangeErr error // a float64 value beyond float32's range
}

// Write implements io.Writer.
func (pw *plainWriter) Write(p []byte) (int, error) {
	n := len(p)
	if pw.err != nil {
		return n, nil
	}
	if _, err := pw.check.Write(p); err != nil {
		pw.err = err
		return n, nil
	}
	if pw.seen < crypto.UpdateHeaderLen {
		k := min(crypto.UpdateHeaderLen-pw.seen, len(p))
		pw.seen += k
		p = p[k:]
		if pw.seen < crypto.UpdateHeaderLen {
			return n, nil
		}
		pw.dtype = pw.check.Header.DType
		pw.keep = pw.check.Header.Len == uint64(pw.dim)
	}
	if !pw.keep || pw.rangeErr != nil {
		return n, nil
	}
	var err error
	if pw.dtype == crypto.Float32 {
		_, err = pw.w.Write(p)
	} else {
		err = pw.writeFloat64(p)
	}
	if err != nil {
		return 0, &localError{err: fmt.Errorf("writing plaintext: %w", err)}
	}
	return n, nil
}

// writeFloat64 rounds little-endian float64 values to float32 and writes
// them.
func (pw *plainWriter) writeFloat64(p []byte) error {
	out := pw.conv[:0]
	put := func(b []byte) error {
		v := math.Float64frombits(binary.LittleEndian.Uint64(b))
		f := float32(v)
		if math.IsInf(float64(f), 0) {
			pw.rangeErr = fmt.Errorf("update value %d (%g) is beyond float32's range, in which a round of dim above %d is aggregated", pw.idx, v, StreamDeriveDim)
			return nil
		}
		pw.idx++
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(f))
		if len(out) == cap(out) {
			if _, err := pw.w.Write(out); err != nil {
				return err
			}
			out = out[:0]
		}
		return nil
	}
	if pw.npart > 0 {
		k := copy(pw.part[pw.npart:], p)
		pw.npart += k
		p = p[k:]
		if pw.npart < 8 {
			return nil
		}
		pw.npart = 0
		if err := put(pw.part[:]); err != nil {
			return err
		}
	}
	for len(p) >= 8 && pw.rangeErr == nil {
		if err := put(p[:8]); err != nil {
			return err
		}
		p = p[8:]
	}
	if pw.rangeErr != nil {
		return nil
	}
	pw.npart = copy(pw.part[:], p)
	_, err := pw.w.Write(out)
	return err
}

// ---- the Source ----

// fileSource is an aggregate.Source over plaintext files of d
// little-endian float32 values each, read with ReadAt (positioned reads
// share no offset). The rules read 4 KiB blocks; to spare a system call
// per block, each update has a few read windows (64 KiB, aligned), each
// behind its own lock, so that concurrent readers of different regions
// rarely meet. A block a window does not cover whole is read directly.
// Safe for concurrent use.
type fileSource struct {
	files []*os.File
	nodes []string // the node of each file, for errors
	d     int
	win   int      // coordinates per window; 0: no windows
	slots int      // windows per update
	wins  []window // update i's are wins[i*slots : (i+1)*slots]
	bufs  sync.Pool
}

// window holds coordinates [lo, lo+n) of one update.
type window struct {
	mu  sync.Mutex
	lo  int
	n   int
	buf []byte // allocated on first use
}

// Window sizing: windowCoords (64 KiB) per window, windowSlots per
// update, within windowBudget bytes for all of them; a round too wide for
// windows of at least one block (sourceBlockCoords) reads directly.
const (
	windowCoords      = 16 << 10
	windowSlots       = 4
	windowBudget      = 16 << 20
	sourceBlockCoords = 1024 // the rules' block (aggregate's sourceBlock)
)

func newFileSource(files []*os.File, nodes []string, d int) *fileSource {
	s := &fileSource{files: files, nodes: nodes, d: d, slots: windowSlots}
	if n := len(files); n > 0 {
		s.win = min(windowCoords, windowBudget/(4*windowSlots*n), d)
	}
	if s.win < sourceBlockCoords {
		s.win = 0
	}
	if s.win > 0 {
		s.wins = make([]window, len(files)*s.slots)
	}
	return s
}

// Shape implements aggregate.Source.
func (s *fileSource) Shape() (n, d int) { return len(s.files), s.d }

// ReadBlock implements aggregate.Source.
func (s *fileSource) ReadBlock(i, lo int, dst []float32) error {
	if i < 0 || i >= len(s.files) || lo < 0 || lo+len(dst) > s.d {
		return fmt.Errorf("block [%d, %d) of update %d of %d×%d out of range", lo, lo+len(dst), i, len(s.files), s.d)
	}
	if s.win == 0 || lo/s.win != (lo+len(dst)-1)/s.win || len(dst) == 0 {
		return s.readDirect(i, lo, dst)
	}
	start := lo - lo%s.win
	w := &s.wins[i*s.slots+(lo/s.win)%s.slots]
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 || w.lo != start {
		if w.buf == nil {
			w.buf = make([]byte, 4*s.win)
		}
		n := min(s.win, s.d-start)
		w.n = 0
		if _, err := s.files[i].ReadAt(w.buf[:4*n], 4*int64(start)); err != nil {
			return fmt.Errorf("update of node %s: reading values [%d, %d): %w", s.nodes[i], start, start+n, err)
		}
		w.lo, w.n = start, n
	}
	decodeF32(dst, w.buf[4*(lo-start):])
	return nil
}

// readDirect reads a block with one ReadAt into a pooled buffer.
func (s *fileSource) readDirect(i, lo int, dst []float32) error {
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil || cap(*bp) < 4*len(dst) {
		b := make([]byte, 4*len(dst))
		bp = &b
	}
	defer s.bufs.Put(bp)
	b := (*bp)[:4*len(dst)]
	if _, err := s.files[i].ReadAt(b, 4*int64(lo)); err != nil {
		return fmt.Errorf("update of node %s: reading values [%d, %d): %w", s.nodes[i], lo, lo+len(dst), err)
	}
	decodeF32(dst, b)
	return nil
}

// decodeF32 fills dst with the little-endian float32 values at the start
// of b.
func decodeF32(dst []float32, b []byte) {
	for k := range dst {
		dst[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))
	}
}

var _ aggregate.Source = (*fileSource)(nil)

// ---- the shared tail ----

// ruleOutput is what the rule (or central DP) made of a round's inputs.
type ruleOutput struct {
	agg      []float64
	rep      aggregate.Report
	ruleName string
	noise    []byte    // central DP's noise commitment
	step     *ClipStep // adaptive clipping's step
}

// finishDerivation turns a rule's output into the derivation: the new
// model, the outcomes (used, rejected with the rule's reason, scores), the
// result and its audit leaf. outcomes and notInput hold the updates that
// were not inputs; pos[k] is the position in r.Updates of input k;
// weights are the inputs' weights (nil: equal). It is deriveRound's tail,
// shared by both derivations so they cannot drift apart.
func finishDerivation(origin string, j Job, r Round, base Params, out ruleOutput, outcomes []updateOutcome, notInput map[int]string, pos []int, weights []float64) derivation {
	agg, rep := out.agg, out.rep
	if len(agg) != j.Spec.Dim {
		return derivation{fail: fmt.Sprintf("aggregate has %d values, dim is %d", len(agg), j.Spec.Dim)}
	}
	model, optimized, why := nextModel(j, base, agg)
	if why != "" {
		return derivation{fail: why}
	}
	used, rejected := 0, 0
	for _, k := range rep.Used {
		if k >= 0 && k < len(pos) {
			outcomes[pos[k]].Used = true
		}
	}
	for _, rj := range rep.Rejected {
		if rj.Index >= 0 && rj.Index < len(pos) {
			outcomes[pos[rj.Index]].Reason = rj.Reason
		}
	}
	for k, s := range rep.Scores {
		if k < len(pos) && finite(s) {
			v := s
			outcomes[pos[k]].Score = &v
		}
	}
	for i := range outcomes {
		if outcomes[i].Used {
			outcomes[i].Reason = ""
			used++
			continue
		}
		if outcomes[i].Reason == "" {
			outcomes[i].Reason = "not selected by " + rep.Rule
		}
		rejected++
	}
	d := derivation{model: model, outcomes: outcomes, clipStep: out.step}
	if optimized {
		d.aggregate = agg
	}
	d.result = RoundResult{ModelVersion: r.BaseVersion + 1, ModelHash: ModelHash(model), Rule: rep.Rule, Used: used, Rejected: rejected}
	if d.result.Rule == "" {
		d.result.Rule = out.ruleName
	}
	leafIdx := make([]uint64, len(r.Updates))
	for i, u := range r.Updates {
		leafIdx[i] = u.LeafIndex
	}
	res := audit.ResultLeaf{
		Origin: origin, JobID: j.Spec.ID, Round: r.Number, Rule: d.result.Rule,
		Params: audit.FormatRuleParams(j.Spec.Rule.Params()), Weighting: audit.WeightEqual,
		BaseHash: r.BaseHash, NewHash: d.result.ModelHash,
		Entries:         audit.EntriesFromReport(leafIdx, notInput, rep),
		NoiseCommitment: out.noise,
	}
	if weights != nil {
		res.Weighting = audit.WeightSamples
	}
	enc, err := res.MarshalBinary()
	if err != nil {
		return derivation{fail: fmt.Sprintf("result leaf: %v", err)}
	}
	d.leaf = enc
	return d
}
