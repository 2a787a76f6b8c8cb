package coordinator

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"filippo.io/age"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/privacy"
	"github.com/mfn/mfn/serveropt"
)

// bigFixture is a sealed round whose updates are real envelopes, with a
// Coordinator reduced to what updateVector needs (opener, node keys, an
// empty cache), so that deriveRound runs the production in-memory path.
type bigFixture struct {
	keys  *testKeys
	nodes []*testNode
	c     *Coordinator
	job   Job
	round Round
	base  Params
	rules RuleFactory // deriveRoundStream's; DefaultRules
}

func newBigFixture(t testing.TB, nodes, dim int, rule RuleSpec) *bigFixture {
	t.Helper()
	keys := newTestKeys(t, 2, 11)
	f := &bigFixture{keys: keys, nodes: newTestNodes(t, nodes, 12), rules: DefaultRules}
	st := &fsm{nodes: map[string]*Node{}}
	for _, n := range f.nodes {
		st.nodes[n.id] = &Node{ID: n.id, PublicKey: n.pub()}
	}
	f.c = &Coordinator{cfg: Config{Opener: &CryptoOpener{Identities: []age.Identity{keys.coords[1].Age}}}, fsm: st, cache: newUpdateCache(0)}
	spec := testSpec("big", dim, 1, 100)
	spec.Rule = rule
	f.job = Job{Spec: spec}
	// A zero base: the new model is the aggregate itself, so comparing
	// models compares the rules' outputs bit for bit.
	f.base = make(Params, dim)
	f.round = Round{Number: 4, BaseVersion: 3, BaseHash: ModelHash(f.base)}
	return f
}

// seal seals vals (encoded as dtype) as node's update and returns the
// record the round would hold.
func (f *bigFixture) seal(t testing.TB, node *testNode, vals []float64, dtype crypto.DType, samples uint64) Update {
	t.Helper()
	stmt := &crypto.Statement{Origin: f.keys.origin, JobID: f.job.Spec.ID, Round: f.round.Number, NodeID: node.id,
		BaseModelHash: f.round.BaseHash, SampleCount: samples, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	sealed, err := crypto.Seal(stmt, crypto.EncodeUpdate(vals, dtype), node.key, f.keys.recipients)
	if err != nil {
		t.Fatal(err)
	}
	return Update{Node: node.id, UpdateHash: Hash(stmt.UpdateHash), Samples: samples, LeafIndex: uint64(100 + len(f.round.Updates)), Sealed: sealed}
}

func (f *bigFixture) add(u Update) { f.round.Updates = append(f.round.Updates, u) }

func (f *bigFixture) memory() derivation {
	return deriveRound(f.keys.origin, f.job, f.round, f.base, f.rules, nil,
		func(u Update) ([]float64, error) { return f.c.updateVector(f.job, f.round.Number, u) })
}

func (f *bigFixture) inputs(dir string) streamInputs {
	return streamInputs{opener: f.c.cfg.Opener.(StreamOpener), keys: f.c.fsm.nodeKeyAny, body: memoryBody, dir: dir}
}

// stream runs deriveRoundStream in a fresh directory and checks that the
// directory is empty afterwards.
func (f *bigFixture) stream(t testing.TB, in func(dir string) streamInputs) derivation {
	t.Helper()
	dir := t.TempDir()
	if in == nil {
		in = f.inputs
	}
	d := deriveRoundStream(f.keys.origin, f.job, f.round, f.base, f.rules, in(dir))
	assertEmptyDir(t, dir)
	return d
}

func assertEmptyDir(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("%s holds %v after the derivation", dir, names)
	}
}

// sameDerivation fails unless a and b carry the same bits.
func sameDerivation(t testing.TB, a, b derivation) {
	t.Helper()
	if a.fail != b.fail {
		t.Fatalf("fail: %q vs %q", a.fail, b.fail)
	}
	if len(a.model) != len(b.model) {
		t.Fatalf("model: %d vs %d values", len(a.model), len(b.model))
	}
	for i := range a.model {
		if math.Float64bits(a.model[i]) != math.Float64bits(b.model[i]) {
			t.Fatalf("model[%d]: %v vs %v", i, a.model[i], b.model[i])
		}
	}
	if !reflect.DeepEqual(a.outcomes, b.outcomes) {
		t.Fatalf("outcomes:\n%s\nvs\n%s", outcomeText(a.outcomes), outcomeText(b.outcomes))
	}
	if a.result != b.result {
		t.Fatalf("result: %+v vs %+v", a.result, b.result)
	}
	if !bytes.Equal(a.leaf, b.leaf) {
		t.Fatalf("result leaves differ (%d and %d bytes)", len(a.leaf), len(b.leaf))
	}
	if !reflect.DeepEqual(a.clipStep, b.clipStep) {
		t.Fatalf("clip step: %+v vs %+v", a.clipStep, b.clipStep)
	}
	if len(a.aggregate) != len(b.aggregate) {
		t.Fatalf("aggregate: %d vs %d values", len(a.aggregate), len(b.aggregate))
	}
	for i := range a.aggregate {
		if math.Float64bits(a.aggregate[i]) != math.Float64bits(b.aggregate[i]) {
			t.Fatalf("aggregate[%d]: %v vs %v", i, a.aggregate[i], b.aggregate[i])
		}
	}
}

func outcomeText(os []updateOutcome) string {
	var b strings.Builder
	for i, o := range os {
		s := "-"
		if o.Score != nil {
			s = fmt.Sprint(*o.Score)
		}
		fmt.Fprintf(&b, "  %d used=%v score=%s reason=%q\n", i, o.Used, s, o.Reason)
	}
	return b.String()
}

// honest returns node i's update: small normal values, rounded to float32
// so that float32 and float64 encodings carry the same values.
func honest(i, dim int) []float64 {
	rng := rand.New(rand.NewPCG(uint64(i), 99))
	v := make([]float64, dim)
	for k := range v {
		v[k] = float64(float32(rng.NormFloat64() * 1e-2))
	}
	return v
}

// byzantine is an update far from the honest ones.
func byzantine(dim int) []float64 {
	v := honest(1000, dim)
	for k := range v {
		v[k] += 50
	}
	return v
}

// bigDim spans several age chunks (64 KiB = 16,384 float32 values) and
// ends in a partial block of the rules' 1,024 coordinates. It is a
// multiple of 4: FedAvg's float32 kernel and its float64 one round the
// last d mod 4 coordinates one ulp apart (see derive_big.go), which is the
// aggregate package's concern, not this derivation's.
const bigDim = 40_008

// TestDeriveStreamMatchesMemory: for the coordinate-wise rules and FedAvg
// the streamed derivation gives deriveRound's bits (model, outcomes,
// result, leaf); for Krum and Multi-Krum on well-separated data the same
// selection and leaf.
func TestDeriveStreamMatchesMemory(t *testing.T) {
	cases := []struct {
		name    string
		rule    RuleSpec
		samples func(i int) uint64
		byz     bool
		mutate  func(j *Job)
	}{
		{name: "fedavg weighted", rule: RuleSpec{Name: "fedavg"}, samples: func(i int) uint64 { return uint64(10 + 7*i) }},
		{name: "fedavg same counts", rule: RuleSpec{Name: "fedavg"}},
		{name: "fedavg equal (a zero count)", rule: RuleSpec{Name: "fedavg"}, samples: func(i int) uint64 { return uint64(i) }},
		{name: "median", rule: RuleSpec{Name: "median", F: 1}, byz: true},
		{name: "trimmed-mean", rule: RuleSpec{Name: "trimmed-mean", F: 1}, byz: true},
		{name: "trimmed-mean local DP", rule: RuleSpec{Name: "trimmed-mean", F: 2}, byz: true,
			mutate: func(j *Job) { j.Privacy = &JobPrivacy{Mode: privacy.ModeLocal, Clip: 1, NoiseMultiplier: 1} }},
		{name: "krum", rule: RuleSpec{Name: "krum", F: 1}, byz: true},
		{name: "multi-krum", rule: RuleSpec{Name: "multi-krum", F: 1, M: 3}, byz: true},
		{name: "fedavg with server optimizer", rule: RuleSpec{Name: "fedavg"},
			mutate: func(j *Job) {
				j.Spec.Optimizer = &serveropt.Spec{Name: serveropt.FedAdam}
				j.opt = serveropt.NewState(j.Spec.Optimizer.Resolved(), j.Spec.Dim)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newBigFixture(t, 7, bigDim, tc.rule)
			if tc.mutate != nil {
				tc.mutate(&f.job)
			}
			for i, n := range f.nodes {
				vals := honest(i, bigDim)
				if tc.byz && i == 2 {
					vals = byzantine(bigDim)
				}
				samples := uint64(100)
				if tc.samples != nil {
					samples = tc.samples(i)
				}
				f.add(f.seal(t, n, vals, crypto.Float32, samples))
			}
			mem := f.memory()
			if mem.fail != "" {
				t.Fatalf("in memory: %s", mem.fail)
			}
			got := f.stream(t, nil)
			if got.fail != "" {
				t.Fatalf("streamed: %s", got.fail)
			}
			if !strings.Contains(tc.rule.Name, "krum") {
				sameDerivation(t, got, mem)
				return
			}
			// The Krum family's streamed distances are float32 products
			// (aggregate.SourceRule): the selection, the model, the
			// result and the leaf are the same but for the scores, which
			// agree to float32 precision.
			if got.outcomes[2].Used || got.outcomes[2].Reason == "" {
				t.Fatalf("the Byzantine update's outcome: %+v", got.outcomes[2])
			}
			for i := range mem.outcomes {
				m, s := mem.outcomes[i], got.outcomes[i]
				if m.Score == nil || s.Score == nil {
					t.Fatalf("update %d has no score: %+v vs %+v", i, m, s)
				}
				if d := math.Abs(*m.Score - *s.Score); d > 1e-5*math.Abs(*m.Score) {
					t.Fatalf("update %d score %v vs %v", i, *m.Score, *s.Score)
				}
				got.outcomes[i].Score = m.Score
			}
			leaf, err := audit.ParseResultLeaf(got.leaf)
			if err != nil {
				t.Fatal(err)
			}
			for i := range leaf.Entries {
				leaf.Entries[i].Score = mem.outcomes[i].Score
			}
			if got.leaf, err = leaf.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
			sameDerivation(t, got, mem)
		})
	}
}

// TestDeriveStreamBadUpdates: updates that do not open, do not match their
// record or have the wrong dim get deriveRound's reasons, and the round
// is derived from the others with the same bits.
func TestDeriveStreamBadUpdates(t *testing.T) {
	f := newBigFixture(t, 12, bigDim, RuleSpec{Name: "median", F: 1})
	for i, n := range f.nodes[:5] {
		f.add(f.seal(t, n, honest(i, bigDim), crypto.Float32, 100))
	}
	good := f.round.Updates[0]
	other := newBigFixture(t, 1, bigDim, RuleSpec{Name: "median"})
	stranger := newTestNodes(t, 1, 77)[0]
	stranger.id = "stranger"

	// A float64 update whose values are float32 values: the same inputs
	// on both paths.
	f.add(f.seal(t, f.nodes[5], honest(5, bigDim), crypto.Float64, 100))

	truncated := f.seal(t, f.nodes[6], honest(6, bigDim), crypto.Float32, 100)
	truncated.Sealed = truncated.Sealed[:len(truncated.Sealed)-100]
	f.add(truncated)

	tampered := f.seal(t, f.nodes[7], honest(7, bigDim), crypto.Float32, 100)
	tampered.Sealed = bytes.Clone(tampered.Sealed)
	tampered.Sealed[len(tampered.Sealed)/2] ^= 1
	f.add(tampered)

	// Sealed to other coordinators: this member is not a recipient.
	foreign := f.seal(t, f.nodes[8], honest(8, bigDim), crypto.Float32, 100)
	foreign.Sealed = other.seal(t, f.nodes[8], honest(8, bigDim), crypto.Float32, 100).Sealed
	f.add(foreign)

	// The record names another node, or another update.
	renamed := f.seal(t, f.nodes[9], honest(9, bigDim), crypto.Float32, 100)
	renamed.Node = f.nodes[10].id
	f.add(renamed)
	rehashed := f.seal(t, f.nodes[10], honest(10, bigDim), crypto.Float32, 100)
	rehashed.UpdateHash = good.UpdateHash
	f.add(rehashed)

	// Wrong dims, both ways.
	f.add(f.seal(t, f.nodes[11], honest(11, bigDim+3), crypto.Float32, 100))
	f.add(f.seal(t, f.nodes[11], honest(12, bigDim-1000), crypto.Float32, 100))

	// A node the state does not know; an empty envelope; a NaN.
	f.add(f.seal(t, stranger, honest(13, bigDim), crypto.Float32, 100))
	f.add(Update{Node: f.nodes[0].id, UpdateHash: good.UpdateHash, Samples: 1, LeafIndex: 999})
	nan := honest(14, bigDim)
	nan[bigDim-5] = math.NaN()
	f.add(f.seal(t, f.nodes[1], nan, crypto.Float32, 100))

	mem := f.memory()
	got := f.stream(t, nil)
	if mem.fail != "" || got.fail != "" {
		t.Fatalf("fail: %q / %q", mem.fail, got.fail)
	}
	used := 0
	for i, o := range got.outcomes {
		t.Logf("%2d used=%v %q", i, o.Used, o.Reason)
		if o.Used {
			used++
		}
	}
	if used != 6 {
		t.Fatalf("%d updates used, want 6", used)
	}
	sameDerivation(t, got, mem)
	for _, workers := range []int{1, 3, 16} {
		sameDerivation(t, f.stream(t, func(dir string) streamInputs {
			in := f.inputs(dir)
			in.workers = workers
			return in
		}), mem)
	}
}

// TestDeriveStreamFloat64Range: a float64 update with a value beyond
// float32's range is rejected with a reason (the in-memory path would take
// it), the others aggregated.
func TestDeriveStreamFloat64Range(t *testing.T) {
	f := newBigFixture(t, 4, bigDim, RuleSpec{Name: "fedavg"})
	for i, n := range f.nodes[:3] {
		f.add(f.seal(t, n, honest(i, bigDim), crypto.Float32, 100))
	}
	big := honest(3, bigDim)
	big[20_000] = 1e300
	f.add(f.seal(t, f.nodes[3], big, crypto.Float64, 100))
	got := f.stream(t, nil)
	if got.fail != "" {
		t.Fatal(got.fail)
	}
	want := "update value 20000 (1e+300) is beyond float32's range"
	if o := got.outcomes[3]; o.Used || !strings.HasPrefix(o.Reason, want) {
		t.Fatalf("outcome %+v, want a reason beginning %q", o, want)
	}
	if got.result.Used != 3 || got.result.Rejected != 1 {
		t.Fatalf("result %+v", got.result)
	}
}

// failingBody is a sealedBody whose reader fails after half the envelope:
// this member's failure (a disk error), not the update's.
func failingBody(u Update) (io.ReadCloser, int64, error) {
	half := len(u.Sealed) / 2
	return io.NopCloser(io.MultiReader(bytes.NewReader(u.Sealed[:half]), iotest.ErrReader(errors.New("disk on fire")))), int64(len(u.Sealed)), nil
}

// TestDeriveStreamFailures: every way the derivation fails leaves the
// directory empty (stream checks it) and names the cause.
func TestDeriveStreamFailures(t *testing.T) {
	cases := []struct {
		name  string
		rule  RuleSpec
		setup func(f *bigFixture)
		in    func(f *bigFixture) func(dir string) streamInputs
		want  string
		// same: deriveRound fails with the same reason.
		same bool
	}{
		{name: "no update opens", rule: RuleSpec{Name: "median"},
			setup: func(f *bigFixture) {
				for i := range f.round.Updates {
					f.round.Updates[i].Sealed = f.round.Updates[i].Sealed[:100]
				}
			},
			want: "no update could be opened", same: true},
		{name: "rule without AggregateSource", rule: RuleSpec{Name: "median", F: 1},
			setup: func(f *bigFixture) {
				f.rules = func(spec RuleSpec) (aggregate.Rule, error) {
					r, err := DefaultRules(spec)
					return memoryOnly{r}, err
				}
			},
			want: "rule median cannot aggregate a round of dim 40008 in bounded memory (above 1032192 values); use one of fedavg, krum"},
		{name: "no rules", rule: RuleSpec{Name: "median"},
			setup: func(f *bigFixture) { f.rules = nil },
			want:  "no aggregation rules configured", same: true},
		{name: "pipeline that widens in memory", rule: RuleSpec{Name: "nnm+geometric-median", F: 1},
			want: "rule nnm+geometric-median cannot aggregate a round of dim 40008 in bounded memory (above 1032192 values); use one of fedavg"},
		{name: "unknown rule", rule: RuleSpec{Name: "nope"}, want: "rule nope: ", same: true},
		{name: "central DP", rule: RuleSpec{Name: "fedavg"},
			setup: func(f *bigFixture) {
				f.job.Privacy = &JobPrivacy{Mode: privacy.ModeCentral, Clip: 1, NoiseMultiplier: 1}
			},
			want: "central DP cannot aggregate a round of dim 40008 in bounded memory"},
		{name: "aggregation fails after opening", rule: RuleSpec{Name: "krum", F: 3},
			want: "aggregation: ", same: true},
		{name: "the body cannot be read", rule: RuleSpec{Name: "median"},
			in: func(f *bigFixture) func(dir string) streamInputs {
				return func(dir string) streamInputs {
					in := f.inputs(dir)
					in.body = failingBody
					return in
				}
			},
			want: "opening the update of node n0: reading the sealed envelope: disk on fire"},
		{name: "no directory", rule: RuleSpec{Name: "median"},
			in: func(f *bigFixture) func(dir string) streamInputs {
				return func(dir string) streamInputs {
					in := f.inputs(dir)
					in.dir = dir + "/missing"
					return in
				}
			},
			want: "opening the update of node n0: open "},
		{name: "no opener", rule: RuleSpec{Name: "median"},
			in: func(f *bigFixture) func(dir string) streamInputs {
				return func(dir string) streamInputs {
					in := f.inputs(dir)
					in.opener = nil
					return in
				}
			},
			want: "no update could be opened"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newBigFixture(t, 4, bigDim, tc.rule)
			for i, n := range f.nodes {
				f.add(f.seal(t, n, honest(i, bigDim), crypto.Float32, 100))
			}
			if tc.setup != nil {
				tc.setup(f)
			}
			var in func(string) streamInputs
			if tc.in != nil {
				in = tc.in(f)
			}
			got := f.stream(t, in)
			if !strings.HasPrefix(got.fail, tc.want) {
				t.Fatalf("fail %q, want it to begin %q", got.fail, tc.want)
			}
			if got.model != nil || got.leaf != nil {
				t.Fatal("a failed derivation carries a result")
			}
			if tc.same {
				if mem := f.memory(); mem.fail != got.fail {
					t.Fatalf("fail %q, in memory %q", got.fail, mem.fail)
				}
			}
		})
	}
}

// memoryOnly hides a rule's AggregateSource.
type memoryOnly struct{ aggregate.Rule }

// TestDeriveStreamMemory: at n = 8, d = 2,000,000 everything the
// derivation allocates (TotalAlloc, an upper bound on its live heap) stays
// within the rule's d-value float64 result and the new model (2 × d × 8
// bytes) plus 8 MiB (buffers, blocks, the leaf), where the in-memory path
// holds n × d × 8 bytes of inputs alone. Not parallel: TotalAlloc counts
// every goroutine's allocations.
func TestDeriveStreamMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("seals 64 MB of updates")
	}
	const n, dim = 8, 2_000_000
	for _, rule := range []RuleSpec{{Name: "fedavg"}, {Name: "median", F: 1}, {Name: "trimmed-mean", F: 2}, {Name: "krum", F: 1}} {
		t.Run(rule.Name, func(t *testing.T) {
			f := newBigFixture(t, n, dim, rule)
			for i, nd := range f.nodes {
				f.add(f.seal(t, nd, honest(i, dim), crypto.Float32, 100))
			}
			dir := t.TempDir()
			in := f.inputs(dir)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			d := deriveRoundStream(f.keys.origin, f.job, f.round, f.base, f.rules, in)
			runtime.ReadMemStats(&after)
			assertEmptyDir(t, dir)
			if d.fail != "" {
				t.Fatal(d.fail)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			bound := uint64(2*dim*8 + 8<<20)
			t.Logf("%s: allocated %.1f MiB during the derivation (bound %.1f MiB; inputs as float64 %.1f MiB)",
				rule.Name, float64(alloc)/(1<<20), float64(bound)/(1<<20), float64(n*dim*8)/(1<<20))
			if alloc > bound {
				t.Fatalf("allocated %d bytes, bound %d", alloc, bound)
			}
			if mem := f.memory(); mem.result.ModelHash != d.result.ModelHash && rule.Name != "krum" {
				t.Fatalf("model hash %x, in memory %x", d.result.ModelHash, mem.result.ModelHash)
			}
		})
	}
}

// BenchmarkDeriveStream times deriveRoundStream on n = 8 sealed float32
// updates (open, check, spill, aggregate, model, leaf); MB/s is of sealed
// input, B/op everything the call allocated. The in-memory deriveRound is
// timed beside it at d = 1e6 (at 1e7 it would hold 640 MB of float64
// inputs). d = 1e7 and the d = 2.5e7 (8 × 100 MB) are skipped with
// -short; each sub-benchmark seals its own updates, so a -bench filter
// skips the sealing of the others.
func BenchmarkDeriveStream(b *testing.B) {
	const n = 8
	fixture := func(b *testing.B, dim int, rule RuleSpec) (*bigFixture, int64) {
		f := newBigFixture(b, n, dim, rule)
		var sealed int64
		for i, nd := range f.nodes {
			u := f.seal(b, nd, honest(i, dim), crypto.Float32, 100)
			sealed += int64(len(u.Sealed))
			f.add(u)
		}
		runtime.GC()
		return f, sealed
	}
	for _, dim := range []int{1_000_000, 10_000_000, 25_000_000} {
		if dim > 1_000_000 && testing.Short() {
			continue
		}
		for _, rule := range []RuleSpec{{Name: "fedavg"}, {Name: "median", F: 1}, {Name: "krum", F: 1}} {
			b.Run(fmt.Sprintf("%s/stream/n=%d,d=%d", rule.Name, n, dim), func(b *testing.B) {
				f, sealed := fixture(b, dim, rule)
				in := f.inputs(b.TempDir())
				b.ReportAllocs()
				b.SetBytes(sealed)
				for b.Loop() {
					if d := deriveRoundStream(f.keys.origin, f.job, f.round, f.base, f.rules, in); d.fail != "" {
						b.Fatal(d.fail)
					}
				}
			})
			if dim == 1_000_000 {
				b.Run(fmt.Sprintf("%s/memory/n=%d,d=%d", rule.Name, n, dim), func(b *testing.B) {
					f, sealed := fixture(b, dim, rule)
					b.ReportAllocs()
					b.SetBytes(sealed)
					for b.Loop() {
						if d := f.memory(); d.fail != "" {
							b.Fatal(d.fail)
						}
					}
				})
			}
		}
	}
}

// TestCoordinatorDeriveStream: the Coordinator's entry point derives a
// round fetched without its sealed bodies (each read in place from the
// replicated state) to deriveRound's bits, and leaves its spill directory
// empty.
func TestCoordinatorDeriveStream(t *testing.T) {
	b := newLogBuilder(t)
	b.add(cmdRegisterMember, &registerMemberCmd{Member: Member{ID: "c0", RaftAddr: "r0", PublicKey: b.keys.coords[0].PublicKey()}})
	for _, n := range b.nodes {
		b.add(cmdEnrollNode, &enrollNodeCmd{ID: n.id, PublicKey: n.pub(), At: b.at})
	}
	spec := testSpec("alpha", bigDim, 5, 5)
	spec.Rule = RuleSpec{Name: "trimmed-mean", F: 1}
	b.add(cmdCreateJob, &createJobCmd{Spec: spec, At: b.at})
	base := ModelHash(make(Params, bigDim))
	b.add(cmdOpenRound, &openRoundCmd{Job: "alpha", Round: 1, BaseHash: base, OpenedAt: b.at, Deadline: b.at.Add(time.Minute), HardDeadline: b.at.Add(time.Hour)})
	for i, n := range b.nodes {
		vals := honest(i, bigDim)
		cmd := b.update(n, "alpha", 1, base, vals)
		stmt := &crypto.Statement{Origin: b.keys.origin, JobID: "alpha", Round: 1, NodeID: n.id, BaseModelHash: base, SampleCount: 10, Time: b.at}
		sealed, err := crypto.Seal(stmt, crypto.EncodeUpdate(vals, crypto.Float32), n.key, b.keys.recipients)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Sealed = sealed
		b.add(cmdAddUpdate, cmd)
	}
	b.add(cmdSealRound, &sealRoundCmd{Job: "alpha", Round: 1, At: b.at})
	st := replay(t, b.keys, b.entries)
	c := &Coordinator{cfg: Config{Origin: b.keys.origin, Opener: &CryptoOpener{Identities: []age.Identity{b.keys.coords[0].Age}}, Rules: DefaultRules},
		fsm: st, cache: newUpdateCache(0)}
	j, _ := st.job("alpha")
	bm, err := st.model("alpha", 0)
	if err != nil {
		t.Fatal(err)
	}
	bare, err := st.round("alpha", 1, false)
	if err != nil || bare.State != RoundClosing || len(bare.Updates) != 5 || bare.Updates[0].Sealed != nil {
		t.Fatalf("round %+v %v", bare.State, err)
	}
	got := c.deriveStream(j, bare, bm.Params)
	dir, err := c.spillDir()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	assertEmptyDir(t, dir)
	full, err := st.round("alpha", 1, true)
	if err != nil {
		t.Fatal(err)
	}
	mem := deriveRound(c.cfg.Origin, j, full, bm.Params, DefaultRules, nil, func(u Update) ([]float64, error) { return c.updateVector(j, 1, u) })
	if got.fail != "" || got.result.Used != 5 {
		t.Fatalf("derivation %q, %+v", got.fail, got.result)
	}
	sameDerivation(t, got, mem)

	// An opener that cannot stream: the round fails naming why.
	c.cfg.Opener = memoryOpener{}
	if d := c.deriveStream(j, bare, bm.Params); !strings.Contains(d.fail, "cannot open streamed updates") {
		t.Fatalf("fail %q", d.fail)
	}
}

// memoryOpener is an Opener without OpenStream.
type memoryOpener struct{}

func (memoryOpener) Open([]byte, KeyLookup) (*Envelope, error) { return nil, errors.New("no") }

// FuzzPlainWriter: whatever bytes an opened envelope yields, in whatever
// pieces, plainWriter never fails the stream for their content, accepts
// exactly what crypto.DecodeUpdate accepts, and stores the values as
// float32 when the count is dim (or names the value beyond float32's
// range).
func FuzzPlainWriter(f *testing.F) {
	f.Add(crypto.EncodeUpdate([]float64{1, 2, 3}, crypto.Float32), uint16(5), uint8(3))
	f.Add(crypto.EncodeUpdate([]float64{1, -2.5, 0.1}, crypto.Float64), uint16(17), uint8(3))
	f.Add(crypto.EncodeUpdate([]float64{1, 1e300}, crypto.Float64), uint16(3), uint8(2))
	f.Add(crypto.EncodeUpdate([]float64{1, math.NaN()}, crypto.Float32), uint16(1), uint8(2))
	f.Add(crypto.EncodeUpdate([]float64{1, 2}, crypto.Float32), uint16(8), uint8(5))
	f.Add([]byte("MFNU\x01\x01\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80"), uint16(2), uint8(2))
	f.Add([]byte("garbage"), uint16(2), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, split uint16, dim uint8) {
		const maxLen = 1 << 16
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		pw := &plainWriter{check: &crypto.UpdateStreamCheck{MaxLen: maxLen}, w: bw, dim: int(dim)}
		step := int(split)%23 + 1
		for p := data; len(p) > 0; {
			k := min(step, len(p))
			if n, err := pw.Write(p[:k]); err != nil || n != k {
				t.Fatalf("Write: %d, %v", n, err)
			}
			p = p[k:]
		}
		if pw.err == nil {
			pw.err = pw.check.Close()
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		vals, err := crypto.DecodeUpdate(data, maxLen)
		if (err == nil) != (pw.err == nil) {
			t.Fatalf("DecodeUpdate: %v; plainWriter: %v", err, pw.err)
		}
		if err != nil {
			return // values stored before the failing one: the caller removes the file
		}
		if len(vals) != int(dim) {
			if buf.Len() != 0 {
				t.Fatalf("%d values, dim %d, yet %d bytes stored", len(vals), dim, buf.Len())
			}
			return
		}
		if pw.rangeErr != nil {
			return
		}
		got := buf.Bytes()
		if len(got) != 4*len(vals) {
			t.Fatalf("%d bytes stored for %d values", len(got), len(vals))
		}
		for i, v := range vals {
			if w := math.Float32bits(float32(v)); binary.LittleEndian.Uint32(got[4*i:]) != w {
				t.Fatalf("value %d: stored %08x, want %08x", i, binary.LittleEndian.Uint32(got[4*i:]), w)
			}
			if math.IsInf(float64(float32(v)), 0) {
				t.Fatalf("value %d (%g) beyond float32 stored without a range error", i, v)
			}
		}
	})
}

// TestCheckStreamDerivable: a job above StreamDeriveDim with central DP
// or an unbounded rule is refused at creation (ErrInvalid naming the
// limit); at or below it, or with a bounded rule, it is not.
func TestCheckStreamDerivable(t *testing.T) {
	big := StreamDeriveDim + 1
	cases := []struct {
		dim  int
		rule string
		dp   privacy.Mode
		want string // "" accepted
	}{
		{big, "median", "", ""},
		{big, "nnm+krum", "", ""},
		{big, "bucketing+trimmed-mean", "", ""},
		{big, "fedavg", privacy.ModeLocal, ""},
		{StreamDeriveDim, "nnm+geometric-median", privacy.ModeCentral, ""},
		{big, "nnm+geometric-median", "", "rule nnm+geometric-median cannot aggregate a round of dim 1032193 in bounded memory (above 1032192 values); use one of"},
		{big, "fedavg", privacy.ModeCentral, "central DP cannot aggregate a round of dim 1032193 in bounded memory"},
	}
	for _, tc := range cases {
		s := testSpec("j", tc.dim, 1, 1)
		s.Rule = RuleSpec{Name: tc.rule, F: 1}
		if tc.dp != "" {
			s.DP = &privacy.Config{Mode: tc.dp}
		}
		err := checkStreamDerivable(s, DefaultRules)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d %s %s: %v", tc.dim, tc.rule, tc.dp, err)
		case tc.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%d %s %s: %v, want ErrInvalid with %q", tc.dim, tc.rule, tc.dp, err, tc.want)
		}
	}
}

// TestFileSource: blocks read concurrently at random places, through the
// windows and directly, are the values written; a read that fails names
// the update's node.
func TestFileSource(t *testing.T) {
	for _, tc := range []struct{ n, d int }{{3, 50_001}, {2, 700}, {1200, 2048}} {
		t.Run(fmt.Sprintf("n=%d,d=%d", tc.n, tc.d), func(t *testing.T) {
			dir := t.TempDir()
			want := make([][]float32, tc.n)
			var files []*os.File
			var nodes []string
			for i := range want {
				want[i] = make([]float32, tc.d)
				b := make([]byte, 4*tc.d)
				for k := range want[i] {
					want[i][k] = float32(i*tc.d+k) * 0.5
					binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(want[i][k]))
				}
				f, err := os.CreateTemp(dir, "src-*")
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.Write(b); err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
				nodes = append(nodes, fmt.Sprintf("n%d", i))
			}
			src := newFileSource(files, nodes, tc.d)
			if tc.n == 1200 && src.win != 0 {
				t.Fatalf("windows of %d coordinates for %d updates: over the budget", src.win, tc.n)
			}
			if tc.n == 3 && src.win != windowCoords {
				t.Fatalf("windows of %d coordinates, want %d", src.win, windowCoords)
			}
			errc := make(chan error, 4)
			for g := range 4 {
				go func() {
					rng := rand.New(rand.NewPCG(uint64(g), 5))
					for range 2000 {
						i := rng.IntN(tc.n)
						size := 1 + rng.IntN(min(tc.d, 3000))
						if rng.IntN(2) == 0 {
							size = min(tc.d, 1024)
						}
						lo := rng.IntN(tc.d - size + 1)
						dst := make([]float32, size)
						if err := src.ReadBlock(i, lo, dst); err != nil {
							errc <- err
							return
						}
						for k, v := range dst {
							if v != want[i][lo+k] {
								errc <- fmt.Errorf("update %d coordinate %d: %v, want %v", i, lo+k, v, want[i][lo+k])
								return
							}
						}
					}
					errc <- nil
				}()
			}
			for range 4 {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			if err := src.ReadBlock(0, tc.d-1, make([]float32, 2)); err == nil {
				t.Fatal("a block past the end was read")
			}
			files[1].Close()
			err := newFileSource(files, nodes, tc.d).ReadBlock(1, 0, make([]float32, 10))
			if err == nil || !strings.Contains(err.Error(), "update of node n1") {
				t.Fatalf("read from a closed file: %v", err)
			}
		})
	}
}

// TestUseStreamDerive: the path depends on the job's dim alone, above the
// largest dim whose updates fit one frame.
func TestUseStreamDerive(t *testing.T) {
	for _, tc := range []struct {
		dim  int
		want bool
	}{{1, false}, {MaxUpdateDim, false}, {MaxUpdateDim + 1, true}, {MaxStreamedDim, true}} {
		if got := useStreamDerive(Job{Spec: JobSpec{Dim: tc.dim}}); got != tc.want {
			t.Errorf("dim %d: %v, want %v", tc.dim, got, tc.want)
		}
	}
}

// memoryBody is a sealedBody over the envelopes the replicated state
// holds (Update.Sealed; an empty one fails to open, as in updateVector).
func memoryBody(u Update) (io.ReadCloser, int64, error) {
	return io.NopCloser(bytes.NewReader(u.Sealed)), int64(len(u.Sealed)), nil
}
