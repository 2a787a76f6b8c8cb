package aggregate

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// The two-tier simulation behind docs/SCALE.md: N = regions × size
// updates, honest ones drawn around a common mean with a per-region
// drift (non-IID regions), Byzantine ones all sending the same attack
// vector. Byzantine updates are either spread at random over every region
// or packed into as few regions as they fill. The figure of merit is the
// RMS per coordinate of aggregate − (mean of the honest updates), in
// units of the honest per-coordinate standard deviation σ = 1.

type tierScenario struct {
	regions, size, d int
	byz              int     // Byzantine updates in total
	packed           bool    // packed into whole regions, else spread at random
	drift            float64 // per-region drift of the honest mean (σ units)
	attack           string  // "shift": mean + 5σ everywhere; "alie": mean + 1.5·std (coordinate-wise)
}

type tierRound struct {
	regions   [][][]float64 // per region, its updates
	flat      [][]float64   // all updates
	honest    []float64     // mean of the honest updates
	byzRegion []int         // Byzantine count per region
}

func (sc tierScenario) draw(seed uint64) tierRound {
	rng := rand.New(rand.NewPCG(seed, 0x7469657273))
	n := sc.regions * sc.size
	isByz := make([]bool, n)
	if sc.packed {
		for i := 0; i < sc.byz; i++ {
			isByz[i] = true // region r holds updates [r·size, (r+1)·size)
		}
	} else {
		for _, i := range rng.Perm(n)[:sc.byz] {
			isByz[i] = true
		}
	}
	mu := make([]float64, sc.d)
	for k := range mu {
		mu[k] = rng.NormFloat64()
	}
	var rd tierRound
	rd.regions = make([][][]float64, sc.regions)
	rd.byzRegion = make([]int, sc.regions)
	rd.honest = make([]float64, sc.d)
	var honest [][]float64
	for r := 0; r < sc.regions; r++ {
		drift := make([]float64, sc.d)
		for k := range drift {
			drift[k] = sc.drift * rng.NormFloat64()
		}
		for m := 0; m < sc.size; m++ {
			i := r*sc.size + m
			if isByz[i] {
				rd.byzRegion[r]++
				rd.regions[r] = append(rd.regions[r], nil) // filled below
				continue
			}
			x := make([]float64, sc.d)
			for k := range x {
				x[k] = mu[k] + drift[k] + rng.NormFloat64()
			}
			rd.regions[r] = append(rd.regions[r], x)
			honest = append(honest, x)
		}
	}
	hm, hs := meanStd(honest)
	copy(rd.honest, hm)
	attack := make([]float64, sc.d)
	for k := range attack {
		switch sc.attack {
		case "shift":
			attack[k] = hm[k] + 5
		case "alie":
			attack[k] = hm[k] + 1.5*hs[k]
		default:
			panic("unknown attack " + sc.attack)
		}
	}
	for r := range rd.regions {
		for m, x := range rd.regions[r] {
			if x == nil {
				rd.regions[r][m] = attack
			}
			rd.flat = append(rd.flat, rd.regions[r][m])
		}
	}
	return rd
}

func rmsErr(a, b []float64) float64 {
	var s float64
	for k := range a {
		s += (a[k] - b[k]) * (a[k] - b[k])
	}
	return math.Sqrt(s / float64(len(a)))
}

type tierMethod struct {
	name string
	run  func(sc tierScenario, rd tierRound) ([]float64, error)
}

// fracF is ⌊frac·n⌋ capped so that 2f < n.
func fracF(n int, frac float64) int {
	return min(int(frac*float64(n)), (n-1)/2)
}

func tierMethods() []tierMethod {
	flat := func(build func(n, f int) (Rule, error)) func(tierScenario, tierRound) ([]float64, error) {
		return func(sc tierScenario, rd tierRound) ([]float64, error) {
			rule, err := build(len(rd.flat), sc.byz)
			if err != nil {
				return nil, err
			}
			out, _, err := rule.Aggregate(rd.flat, nil)
			return out, err
		}
	}
	// Tiered methods assume nothing about where the Byzantine updates
	// are: every region tolerates 30 % and the top tier 30 % of regions.
	tiered := func(inner func(n int) (Rule, error), outer func(n int) (Rule, error)) func(tierScenario, tierRound) ([]float64, error) {
		return func(sc tierScenario, rd tierRound) ([]float64, error) {
			o, err := outer(sc.regions)
			if err != nil {
				return nil, err
			}
			return (&TwoTier{Inner: inner, Outer: o}).Aggregate(rd.regions)
		}
	}
	tm := func(n int) (Rule, error) { return NewTrimmedMean(fracF(n, 0.3)) }
	med := func(n int) (Rule, error) { return NewMedian(0) }
	mean := func(int) (Rule, error) { return FedAvg{}, nil }
	return []tierMethod{
		{"flat mean", flat(func(int, int) (Rule, error) { return FedAvg{}, nil })},
		{"flat trimmed mean (f = B)", flat(func(n, f int) (Rule, error) { return NewTrimmedMean(f) })},
		{"flat median", flat(func(n, f int) (Rule, error) { return NewMedian(0) })},
		{"flat Krum (f = B)", flat(func(n, f int) (Rule, error) { return NewKrum(f) })},
		{"tiers: mean → mean", tiered(mean, mean)},
		{"tiers: mean → trimmed mean", tiered(mean, tm)},
		{"tiers: trimmed mean → trimmed mean", tiered(tm, tm)},
		{"tiers: median → median", tiered(med, med)},
		// Bucketing at the top: buckets of two regions, 30 % of the
		// buckets trimmed.
		{"tiers: trimmed mean → bucketing + trimmed mean", tiered(tm, func(n int) (Rule, error) {
			return ParsePipeline("bucketing+trimmed-mean", Params{F: fracF((n+1)/2, 0.3), BucketSize: 2, Seed: 9})
		})},
	}
}

// tiersFull selects the size docs/SCALE.md quotes (40 regions × 100,
// d = 100; flat Krum on 4,000 inputs takes seconds per round); the
// default is 20 regions × 50, d = 50.
var tiersFull = flag.Bool("tiers.full", false, "run the two-tier simulation at the size docs/SCALE.md quotes")

func tierScenarios() []tierScenario {
	regions, size, d := 20, 50, 50
	if *tiersFull {
		regions, size, d = 40, 100, 100
	}
	var out []tierScenario
	for _, attack := range []string{"shift", "alie"} {
		for _, frac := range []float64{0.1, 0.3} {
			for _, packed := range []bool{false, true} {
				out = append(out, tierScenario{regions: regions, size: size, d: d, byz: int(frac * float64(regions*size)), packed: packed, drift: 0.3, attack: attack})
			}
		}
	}
	return out
}

func (sc tierScenario) String() string {
	where := "spread"
	if sc.packed {
		where = "packed"
	}
	return fmt.Sprintf("%s B=%d/%d %s", sc.attack, sc.byz, sc.regions*sc.size, where)
}

// TestTwoTierSimulation runs every method on every scenario (3 seeds,
// the worst error kept) and checks the claims docs/SCALE.md makes from
// the table it logs (go test ./aggregate -run TwoTierSimulation -v).
func TestTwoTierSimulation(t *testing.T) {
	methods := tierMethods()
	scs := tierScenarios()
	errs := make(map[string]map[string]float64)
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "| method |")
	for _, sc := range scs {
		fmt.Fprintf(&tbl, " %s |", sc)
	}
	tbl.WriteString("\n|---|" + strings.Repeat("---|", len(scs)) + "\n")
	for _, m := range methods {
		errs[m.name] = map[string]float64{}
		fmt.Fprintf(&tbl, "| %s |", m.name)
		for _, sc := range scs {
			worst := 0.0
			for seed := uint64(1); seed <= 3; seed++ {
				rd := sc.draw(seed)
				out, err := m.run(sc, rd)
				if err != nil {
					t.Fatalf("%s, %s: %v", m.name, sc, err)
				}
				worst = max(worst, rmsErr(out, rd.honest))
			}
			errs[m.name][sc.String()] = worst
			fmt.Fprintf(&tbl, " %.3f |", worst)
		}
		tbl.WriteString("\n")
	}
	t.Logf("RMS error per coordinate vs the honest mean (σ units), worst of 3 seeds; %d regions × %d, d = %d, drift 0.3σ:\n%s", scs[0].regions, scs[0].size, scs[0].d, tbl.String())

	get := func(m string, sc tierScenario) float64 { return errs[m][sc.String()] }
	for _, sc := range scs {
		// The mean is moved by B/N × the attack: ≥ 0.5σ for the shift attack.
		if sc.attack == "shift" && get("flat mean", sc) < 0.45 {
			t.Errorf("%s: flat mean error %.3f, want ≥ 0.45 (10 %% × 5σ)", sc, get("flat mean", sc))
		}
		// Robust-of-robust: with the Byzantine updates packed into whole
		// regions, or at 10 %, both tiered rules stay within 0.3σ; spread
		// at 30 % (many regions then hold more than the 30 % their rule
		// trims) they are no better than the flat rule, and no worse than
		// 1.25× it.
		easy := sc.packed || sc.byz*10 <= sc.regions*sc.size
		for _, pair := range [][2]string{{"tiers: trimmed mean → trimmed mean", "flat trimmed mean (f = B)"}, {"tiers: median → median", "flat median"}} {
			e, flat := get(pair[0], sc), get(pair[1], sc)
			switch {
			case easy && e > 0.3:
				t.Errorf("%s: %s error %.3f, want ≤ 0.3", sc, pair[0], e)
			case !easy && e > 1.25*flat:
				t.Errorf("%s: %s error %.3f, want ≤ 1.25 × %s (%.3f)", sc, pair[0], e, pair[1], flat)
			}
		}
		// Packed, the tiers beat the flat rule: captured regions are one
		// input each at the top.
		if sc.packed && get("tiers: trimmed mean → trimmed mean", sc) > 0.5*get("flat trimmed mean (f = B)", sc) {
			t.Errorf("%s: packed attackers: tiered trimmed mean %.3f, want ≤ half the flat one (%.3f)", sc, get("tiers: trimmed mean → trimmed mean", sc), get("flat trimmed mean (f = B)", sc))
		}
		// Bucketing regions at the top spreads a captured region over a
		// bucket with an honest one: with 30 % packed it does worse than
		// trimming the regions themselves.
		if sc.packed && sc.byz*10 > sc.regions*sc.size {
			if b, tt := get("tiers: trimmed mean → bucketing + trimmed mean", sc), get("tiers: trimmed mean → trimmed mean", sc); b < 1.5*tt {
				t.Errorf("%s: bucketing at the top %.3f, want ≥ 1.5 × %.3f (it mixes captured regions into more buckets)", sc, b, tt)
			}
		}
		// A plain mean in the regions under a robust top tier survives only
		// packed attackers: spread, every region's mean is shifted.
		mt := get("tiers: mean → trimmed mean", sc)
		switch {
		case sc.packed && mt > 0.6:
			t.Errorf("%s: mean → trimmed mean error %.3f, want ≤ 0.6 (captured regions are trimmed)", sc, mt)
		case !sc.packed && sc.attack == "shift" && mt < 0.4:
			t.Errorf("%s: mean → trimmed mean error %.3f, want ≥ 0.4 (every region's mean moved)", sc, mt)
		}
	}
}

// BenchmarkTwoTierVsFlat compares the cost of flat Krum and the flat
// trimmed mean on N = 4,000 inputs with the two-tier trimmed mean over 40
// regions of 100, d = 1,000.
func BenchmarkTwoTierVsFlat(b *testing.B) {
	sc := tierScenario{regions: 40, size: 100, d: 1000, byz: 400, drift: 0.3, attack: "shift"}
	rd := sc.draw(1)
	for _, m := range tierMethods() {
		if m.name != "flat Krum (f = B)" && m.name != "tiers: trimmed mean → trimmed mean" && m.name != "flat trimmed mean (f = B)" {
			continue
		}
		b.Run(strings.NewReplacer(" ", "_", "→", "to", "(", "", ")", "", "=", "", ":", "").Replace(m.name), func(b *testing.B) {
			start := cpuTime()
			for b.Loop() {
				if _, err := m.run(sc, rd); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}
