package experiment

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mfn/mfn/aggregate"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/privacy"
)

// DPSpec is one value of the --dp axis: a mode ("none", "central" or
// "local") and, for the two private modes, the target ε over the run.
type DPSpec struct {
	Mode    string
	Epsilon float64 // +Inf for "none"
}

// ParseDP parses "none", "central:EPS" or "local:EPS" (EPS finite, > 0).
func ParseDP(s string) (DPSpec, error) {
	s = strings.TrimSpace(s)
	if s == "none" {
		return DPSpec{Mode: "none", Epsilon: math.Inf(1)}, nil
	}
	mode, e, ok := strings.Cut(s, ":")
	if !ok || (mode != "central" && mode != "local") {
		return DPSpec{}, fmt.Errorf("%q: want none, central:EPS or local:EPS", s)
	}
	eps, err := strconv.ParseFloat(e, 64)
	if err != nil || !(eps > 0) || math.IsInf(eps, 0) {
		return DPSpec{}, fmt.Errorf("%q: ε %q must be a finite number > 0", s, e)
	}
	return DPSpec{Mode: mode, Epsilon: eps}, nil
}

// String is the canonical form ParseDP reads.
func (d DPSpec) String() string {
	if d.Mode == "none" {
		return "none"
	}
	return fmt.Sprintf("%s:%g", d.Mode, d.Epsilon)
}

func (c Config) sampleRate() float64 {
	if c.SampleRate == 0 {
		return 1
	}
	return c.SampleRate
}

func (c Config) dpDelta() float64 {
	if c.DPDelta == 0 {
		return 1e-5
	}
	return c.DPDelta
}

// validateDP checks the DP fields; called by Validate.
func (c Config) validateDP() error {
	if len(c.DP) == 0 {
		if c.SampleRate != 0 && c.SampleRate != 1 {
			return bad("sample-rate", "%v: needs --dp (use --dp none for a non-private run with sampling)", c.SampleRate)
		}
		return nil
	}
	switch {
	case !(c.SampleRate >= 0 && c.SampleRate <= 1):
		return bad("sample-rate", "%v: want (0,1] (0 means 1)", c.SampleRate)
	case !(c.DPClip > 0) || math.IsInf(c.DPClip, 0):
		return bad("dp-clip", "%v: want a positive number", c.DPClip)
	case !(c.DPDelta >= 0 && c.DPDelta < 1):
		return bad("dp-delta", "%v: want (0,1) (0 means 1e-5)", c.DPDelta)
	}
	seen := map[string]bool{}
	for _, s := range c.DP {
		d, err := ParseDP(s)
		if err != nil {
			return bad("dp", "%v", err)
		}
		if seen[d.String()] {
			return bad("dp", "%q: listed twice", s)
		}
		seen[d.String()] = true
		if d.Mode == "none" {
			continue
		}
		z, err := privacy.NoiseMultiplier(d.Epsilon, c.sampleRate(), c.Rounds, c.dpDelta())
		if err != nil {
			return bad("dp", "%q over %d rounds at sample rate %g: %v", s, c.Rounds, c.sampleRate(), err)
		}
		if d.Mode == "central" {
			for _, f := range c.Fs {
				if m := c.sampleRate() * float64(c.Honest+f); m < 1 {
					return bad("sample-rate", "%v: central mode needs sample-rate × nodes ≥ 1, got %g with f=%d", c.SampleRate, m, f)
				}
			}
		}
		_ = z
	}
	return nil
}

// dpSetup is what the DP cells' results depend on beyond the cell.
func (c Config) dpSetup() string {
	return fmt.Sprintf(" q=%g dp-clip=%g delta=%g", c.sampleRate(), c.DPClip, c.dpDelta())
}

// DPInfo is the privacy a DP cell ran with and spent.
type DPInfo struct {
	// Mode and Target are the cell's DPSpec.
	Mode   string
	Target float64
	// SampleRate q, Clip C, Delta δ and the NoiseMultiplier z solved by
	// privacy.NoiseMultiplier for Target over the run's rounds at q.
	SampleRate, Clip, Delta, NoiseMultiplier float64
	// Epsilon is privacy.Epsilon(q, z, rounds, δ): the ε spent under
	// secret Poisson sampling (a job's dp.sample_rate). EpsilonQ1 is the
	// same z accounted at q = 1, the figure against the coordinators, who
	// see who took part (docs/PRIVACY.md).
	Epsilon, EpsilonQ1 float64
}

// dpResult is what runDPFederation returns beyond the accuracy.
type dpResult struct {
	accuracy, byzUsed float64
	info              DPInfo
	// meanParticipants is the mean number of nodes (honest and Byzantine)
	// sampled per round; clipped the fraction of honest updates that were
	// longer than C; skipped the rounds with nothing to aggregate or a
	// rule requirement not met by the round's sample.
	meanParticipants, clipped float64
	skipped                   int
	params                    []float64
}

// dpHooks lets tests see what the federation aggregates.
type dpHooks struct {
	// sent is called each round with the updates as the server sees them
	// before aggregation (central: clipped and rounded; local: noisy).
	sent func(round int, updates [][]float64)
}

// streamRand mirrors learn's per-(seed, round, id) streams, so that a
// non-private run at q = 1 trains exactly as learn.RunFederation does.
func streamRand(seed uint64, round int, id uint64) *rand.Rand {
	z := uint64(round)<<32 ^ id + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return rand.New(rand.NewPCG(seed, z))
}

// noiseSource is the seeded noise stream of (seed, round, id): the
// simulation's noise is reproducible (a deployment draws it from
// crypto/rand at the node, or from the job secret at the leader).
func noiseSource(seed uint64, round, id int) privacy.Source {
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:], seed)
	binary.LittleEndian.PutUint64(b[8:], uint64(round))
	binary.LittleEndian.PutUint64(b[16:], uint64(id))
	return privacy.NewSeededSource(privacy.DeriveSeed(b[:], "experiment-dp", uint64(round)))
}

// runDPFederation runs fed with Poisson sampling at rate q and the DP
// mechanism of d. It follows learn.RunFederation (same model
// initialisation, client streams, attack stream and client momentum), so
// that d = none at q = 1 gives the same model bit for bit. Differences:
//
//   - each round every node, honest or Byzantine, takes part with
//     probability q (a seeded draw), and only those train;
//   - local: each sampled honest node clips its delta to C and adds
//     discrete Gaussian noise z·C (privacy.Local); Byzantine nodes send
//     their crafted vectors (crafted from the noisy honest ones) as is;
//   - central: the server clips and rounds every received update
//     (privacy.Central.Prepare; non-finite ones are dropped), then fedavg
//     is the DP-FedAvg mean (sum + noise z·C, ÷ q·n) and any other rule
//     aggregates the clipped updates and gets noise z·C/(q·n) on its
//     output — not a proven guarantee (see docs/PRIVACY.md).
//
// A round with nothing to aggregate, or whose sample is too small for
// the rule's requirement, leaves the model unchanged (counted in skipped).
func runDPFederation(ctx context.Context, fed learn.Federation, d DPSpec, q, clip, delta float64, hooks dpHooks) (*dpResult, error) {
	cfg := fed.Config
	honest := len(fed.Clients)
	n := honest + fed.Byzantine
	res := &dpResult{info: DPInfo{Mode: d.Mode, Target: d.Epsilon, SampleRate: q, Clip: clip, Delta: delta}}
	var local *privacy.Local
	var central *privacy.Central
	if d.Mode != "none" {
		z, err := privacy.NoiseMultiplier(d.Epsilon, q, cfg.Rounds, delta)
		if err != nil {
			return nil, err
		}
		res.info.NoiseMultiplier = z
		if res.info.Epsilon, _, err = privacy.Epsilon(q, z, cfg.Rounds, delta); err != nil {
			return nil, err
		}
		if res.info.EpsilonQ1, _, err = privacy.Epsilon(1, z, cfg.Rounds, delta); err != nil {
			return nil, err
		}
		if d.Mode == "local" {
			if local, err = privacy.NewLocal(clip, z); err != nil {
				return nil, err
			}
		} else if central, err = privacy.NewCentral(clip, z, q*float64(n)); err != nil {
			return nil, err
		}
	}
	workers := cfg.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, honest))
	global, err := learn.NewModel(cfg.Arch, streamRand(cfg.Seed, 0, 0))
	if err != nil {
		return nil, err
	}
	models := make([]learn.Model, workers)
	for i := range models {
		models[i] = global.Clone()
	}
	newOpt := func() *learn.SGD { return &learn.SGD{LR: cfg.LR, Momentum: cfg.Momentum, WeightDecay: cfg.WeightDecay} }
	opts := make([]*learn.SGD, n)
	for i := range opts {
		opts[i] = newOpt()
	}
	flip := fed.Byzantine > 0 && fed.Attack == nil
	var flipped []*learn.Dataset
	if flip {
		for j := 0; j < fed.Byzantine; j++ {
			flipped = append(flipped, fed.Clients[j%honest].WithLabels(fed.FlipLabel))
		}
	}
	serverLR := cfg.ServerLR
	if serverLR == 0 {
		serverLR = 1
	}
	updates := make([][]float64, n)
	isClipped := make([]bool, n)
	var byzUsed float64
	var participants, honestSent, clippedCount int
	for round := 1; round <= cfg.Rounds; round++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ids []int // sampled honest ids, then sampled label-flipping ids
		byzSampled := 0
		if q >= 1 {
			for i := 0; i < honest; i++ {
				ids = append(ids, i)
			}
			byzSampled = fed.Byzantine
			if flip {
				for j := 0; j < fed.Byzantine; j++ {
					ids = append(ids, honest+j)
				}
			}
		} else {
			srng := streamRand(cfg.Seed, round, 1<<31)
			for i := 0; i < n; i++ {
				if srng.Float64() < q {
					if i < honest || flip {
						ids = append(ids, i)
					}
					if i >= honest {
						byzSampled++
					}
				}
			}
		}
		hs := 0
		for _, id := range ids {
			if id < honest {
				hs++
			}
		}
		participants += hs + byzSampled
		if err := learn.Parallel(ctx, workers, len(ids), func(w, k int) {
			id := ids[k]
			m := models[w]
			copy(m.Params(), global.Params())
			data := fed.Clients[min(id, honest-1)]
			if id >= honest {
				data = flipped[id-honest]
			}
			updates[id], _ = learn.TrainLocal(m, data, cfg.Local, opts[id], streamRand(cfg.Seed, round, uint64(id)+1))
			if local != nil && id < honest {
				_, cl, err := local.Privatize(updates[id], noiseSource(cfg.Seed, round, id))
				isClipped[id] = cl
				if err != nil {
					// A diverged (non-finite) delta cannot be
					// privatised: the node sends nothing.
					updates[id] = nil
				}
			}
		}); err != nil {
			return nil, err
		}
		inputs := make([][]float64, 0, hs+byzSampled)
		for _, id := range ids[:hs] {
			if updates[id] != nil {
				inputs = append(inputs, updates[id])
			}
		}
		nHonest := len(inputs)
		if byzSampled > 0 && fed.Attack != nil {
			byz, err := fed.Attack.Craft(aggregate.AttackInput{
				Honest: inputs[:nHonest:nHonest], F: byzSampled, Rule: fed.Rule, Rand: streamRand(cfg.Seed, round, 1<<30),
			})
			if err != nil {
				return nil, &learn.RoundError{Round: round, Err: fmt.Errorf("attack %s: %w", fed.Attack.Name(), err)}
			}
			if len(byz) != byzSampled {
				return nil, &learn.RoundError{Round: round, Err: fmt.Errorf("attack %s returned %d vectors, want %d", fed.Attack.Name(), len(byz), byzSampled)}
			}
			inputs = append(inputs, byz...)
		} else {
			for _, id := range ids[hs:] {
				inputs = append(inputs, updates[id])
			}
		}
		if central != nil {
			kept := inputs[:0:0]
			keptHonest := 0
			for i, u := range inputs {
				u = append([]float64(nil), u...)
				if _, cl, err := central.Prepare(u); err != nil {
					continue // the server refuses a non-finite update
				} else if i < nHonest && cl {
					clippedCount++
				}
				if i < nHonest {
					keptHonest++
				}
				kept = append(kept, u)
			}
			inputs, nHonest = kept, keptHonest
		} else if local != nil {
			for _, id := range ids[:hs] {
				if isClipped[id] {
					clippedCount++
				}
			}
		}
		honestSent += nHonest
		if hooks.sent != nil {
			hooks.sent(round, inputs)
		}
		var agg []float64
		var rep aggregate.Report
		switch {
		case central != nil && fed.Rule.Name() == "fedavg":
			agg = make([]float64, len(global.Params()))
			for _, u := range inputs {
				for j, x := range u {
					agg[j] += x
				}
			}
			if err := central.Finish(agg, noiseSource(cfg.Seed, round, -1)); err != nil {
				return nil, &learn.RoundError{Round: round, Err: err}
			}
			rep.Used = seqInts(len(inputs))
		case len(inputs) == 0:
			res.skipped++
			continue
		default:
			agg, rep, err = fed.Rule.Aggregate(inputs, nil)
			if err != nil {
				if q < 1 && errors.Is(err, aggregate.ErrRequirement) {
					res.skipped++
					continue
				}
				return nil, &learn.RoundError{Round: round, Err: fmt.Errorf("rule %s: %w", fed.Rule.Name(), err)}
			}
			if central != nil {
				g, err := privacy.NewGaussian(central.NoiseStd())
				if err == nil {
					err = g.AddTo(agg, noiseSource(cfg.Seed, round, -1))
				}
				if err != nil {
					return nil, &learn.RoundError{Round: round, Err: err}
				}
			}
		}
		p := global.Params()
		if len(agg) != len(p) {
			return nil, &learn.RoundError{Round: round, Err: fmt.Errorf("rule %s returned %d values, want %d", fed.Rule.Name(), len(agg), len(p))}
		}
		for i, v := range agg {
			p[i] += serverLR * v
		}
		if byzSampled > 0 {
			used := 0
			for _, i := range rep.Used {
				if i >= nHonest {
					used++
				}
			}
			byzUsed += float64(used) / float64(byzSampled)
		}
	}
	acc, err := learn.Accuracy(global, fed.Test)
	if err != nil {
		return nil, err
	}
	res.accuracy = acc
	res.params = append([]float64(nil), global.Params()...)
	if fed.Byzantine > 0 {
		res.byzUsed = byzUsed / float64(cfg.Rounds)
	}
	res.meanParticipants = float64(participants) / float64(cfg.Rounds)
	if honestSent > 0 {
		res.clipped = float64(clippedCount) / float64(honestSent)
	}
	return res, nil
}

// runDPCell runs a cell of the DP axis with runDPFederation.
func runDPCell(ctx context.Context, c Config, fed learn.Federation, cell Cell, rec Record, start time.Time, fail func(error) (Record, error)) (Record, error) {
	d, err := ParseDP(cell.DP)
	if err != nil {
		return rec, bad("dp", "%v", err)
	}
	res, err := runDPFederation(ctx, fed, d, c.sampleRate(), c.DPClip, c.dpDelta(), dpHooks{})
	if err != nil {
		if ctx.Err() != nil {
			return rec, ctx.Err()
		}
		var re *learn.RoundError
		if errors.As(err, &re) {
			return fail(err)
		}
		return rec, err
	}
	rec.Accuracy = res.accuracy
	rec.ByzantineUsed = res.byzUsed
	rec.DP = &RecordDP{
		Spec: d.String(), SampleRate: res.info.SampleRate, Clip: res.info.Clip, Delta: res.info.Delta,
		NoiseMultiplier: res.info.NoiseMultiplier, Epsilon: res.info.Epsilon, EpsilonQ1: res.info.EpsilonQ1,
		Covered:          d.Mode != "central" || fed.Rule.Name() == "fedavg",
		MeanParticipants: res.meanParticipants, ClippedFraction: res.clipped, SkippedRounds: res.skipped,
	}
	rec.Seconds = math.Round(time.Since(start).Seconds()*1000) / 1000
	return rec, nil
}

// writeDPSummary writes, after the tables, one line per DP setting of
// recs: q, C, δ, z, the ε spent at q and at q = 1, and the means over
// its cells of the nodes per round and of the clipped share.
func writeDPSummary(w io.Writer, recs []Record) error {
	type sum struct {
		first              *RecordDP
		parts, clip, cells float64
		uncovered          bool
	}
	var order []string
	by := map[string]*sum{}
	for _, r := range recs {
		if r.DP == nil {
			continue
		}
		s := by[r.DP.Spec]
		if s == nil {
			s = &sum{first: r.DP}
			by[r.DP.Spec] = s
			order = append(order, r.DP.Spec)
		}
		s.parts += r.DP.MeanParticipants
		s.clip += r.DP.ClippedFraction
		s.cells++
		s.uncovered = s.uncovered || !r.DP.Covered
	}
	if len(order) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "# privacy per DP setting (ε spent: privacy.Epsilon(q, z, rounds, δ); at q=1: the same z against the coordinators, who see who took part)")
	fmt.Fprint(tw, "dp\tq\tclip C\tδ\tz\tε spent\tε at q=1\tnodes/round\tclipped\t\n")
	for _, spec := range order {
		s := by[spec]
		d := s.first
		eps, eps1, clipped := "-", "-", "-"
		if d.NoiseMultiplier > 0 {
			eps, eps1 = fmt.Sprintf("%.3f", d.Epsilon), fmt.Sprintf("%.3f", d.EpsilonQ1)
			clipped = fmt.Sprintf("%.1f%%", 100*s.clip/s.cells)
		}
		fmt.Fprintf(tw, "%s\t%g\t%g\t%g\t%.4f\t%s\t%s\t%.1f\t%s\t\n", spec, d.SampleRate, d.Clip, d.Delta, d.NoiseMultiplier,
			eps, eps1, s.parts/s.cells, clipped)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, spec := range order {
		if by[spec].uncovered {
			fmt.Fprintf(w, "# %s with a rule other than fedavg: central noise is calibrated to the mean; the ε is not a proven guarantee for that rule (docs/PRIVACY.md)\n", spec)
		}
	}
	return nil
}

// ruleF is the Byzantine count the cell's rule is built for. With
// sampling (a DP cell at q < 1) a round holds Binomial(f, q) Byzantine
// nodes, which the server cannot tell apart: the rule is built for the
// upper bound ⌈q·f + 2·√(q·(1−q)·f)⌉ (about the 97.7th percentile), at most
// f. Otherwise it is f.
func (c Config) ruleF(cell Cell) int {
	q := c.sampleRate()
	if cell.DP == "" || q >= 1 || cell.F == 0 {
		return cell.F
	}
	f := float64(cell.F)
	return min(cell.F, int(math.Ceil(q*f+2*math.Sqrt(q*(1-q)*f))))
}
