package privacy

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/crypto"
)

func seqSecret() []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = byte(i)
	}
	return s
}

func nodeIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%02d", i)
	}
	return out
}

// The seed and the sample are fixed functions of their inputs; the
// expected values were computed independently (Python's hmac and hashlib
// over the byte layout SampleSeed documents).
func TestSampleKnownAnswer(t *testing.T) {
	seed := SampleSeed(seqSecret(), "job-a", 7, [32]byte{1})
	if got := hex.EncodeToString(seed[:]); got != "7f4f3d4aebe417f84949c8efda5471096f32cedf3297a4e94abfb28ce07f89ec" {
		t.Fatalf("seed %s", got)
	}
	want := []string{"node-00", "node-08", "node-10", "node-15", "node-16", "node-25", "node-27", "node-28", "node-31", "node-35"}
	if got := Sample(seed, nodeIDs(40), 0.25); !slices.Equal(got, want) {
		t.Fatalf("sample %q, want %q", got, want)
	}
	// Every input changes the seed.
	for i, other := range [][32]byte{
		SampleSeed(seqSecret()[1:], "job-a", 7, [32]byte{1}),
		SampleSeed(seqSecret(), "job-b", 7, [32]byte{1}),
		SampleSeed(seqSecret(), "job-a", 8, [32]byte{1}),
		SampleSeed(seqSecret(), "job-a", 7, [32]byte{2}),
		DeriveSeed(seqSecret(), "job-a", 7), // the noise seed is another domain
	} {
		if other == seed {
			t.Errorf("input %d does not change the seed", i)
		}
	}
}

func TestSampleEdges(t *testing.T) {
	seed := SampleSeed(seqSecret(), "j", 1, [32]byte{})
	nodes := nodeIDs(50)
	if got := Sample(seed, nodes, 1); !slices.Equal(got, nodes) {
		t.Fatalf("q = 1 sampled %d of 50", len(got))
	}
	for _, q := range []float64{0, -1, math.NaN(), math.Ldexp(1, -70)} {
		if got := Sample(seed, nodes, q); len(got) != 0 {
			t.Errorf("q = %v sampled %q", q, got)
		}
	}
	long := string(make([]byte, MaxSampleNodeLen+1))
	if Sampled(seed, long, 0.999999) {
		t.Error("an over-long id was sampled")
	}
	// Duplicates appear once, sorted.
	if got := Sample(seed, []string{"b", "a", "b"}, 1); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("sample %q", got)
	}
}

// Over many rounds the sampled fraction, the per-round count and the
// co-sampling of pairs match Poisson sampling at rate q within binomial
// bounds (5 standard deviations; the seeds are fixed, so the test is
// deterministic, and it fails for a biased or correlated sampler).
func TestSampleFraction(t *testing.T) {
	const nodes, rounds, q = 100, 2000, 0.05
	ids := nodeIDs(nodes)
	secret := seqSecret()
	var total, pairs int
	perNode := make([]int, nodes)
	var sumSq float64
	for r := uint64(1); r <= rounds; r++ {
		base := sha256.Sum256(fmt.Appendf(nil, "model %d", r))
		s := Sample(SampleSeed(secret, "frac", r, base), ids, q)
		total += len(s)
		sumSq += float64(len(s) * len(s))
		for _, n := range s {
			var i int
			fmt.Sscanf(n, "node-%d", &i)
			perNode[i]++
		}
		if slices.Contains(s, "node-00") && slices.Contains(s, "node-01") {
			pairs++
		}
	}
	n := float64(nodes * rounds)
	if sd := math.Sqrt(n * q * (1 - q)); math.Abs(float64(total)-n*q) > 5*sd {
		t.Fatalf("%d sampled of %v draws, want %v ± %v", total, n, n*q, 5*sd)
	}
	// Per-round count: mean q·N, variance N·q(1−q).
	mean := float64(total) / rounds
	variance := sumSq/rounds - mean*mean
	if want := nodes * q * (1 - q); math.Abs(variance-want) > 0.25*want {
		t.Fatalf("per-round count variance %v, want %v", variance, want)
	}
	// Each node: Binomial(rounds, q).
	sd := math.Sqrt(rounds * q * (1 - q))
	for i, c := range perNode {
		if math.Abs(float64(c)-rounds*q) > 5*sd {
			t.Errorf("node %d sampled %d times, want %v ± %v", i, c, rounds*q, 5*sd)
		}
	}
	// Two fixed nodes together: Binomial(rounds, q²) (independence).
	if p := rounds * q * q; math.Abs(float64(pairs)-p) > 5*math.Sqrt(p)+1 {
		t.Errorf("nodes 0 and 1 sampled together %d times, want about %v", pairs, p)
	}
}

// sampleLeafBytes returns an update leaf of node for job's round on base.
func sampleLeafBytes(t testing.TB, job, node string, round uint64, base [32]byte, priv ed25519.PrivateKey) []byte {
	t.Helper()
	at := time.Date(2026, 1, 1, 0, 0, int(round), 0, time.UTC)
	st := crypto.Statement{Origin: "mfn.test/dp", JobID: job, Round: round, NodeID: node, BaseModelHash: base,
		UpdateHash: sha256.Sum256([]byte(node + job)), SampleCount: 1, Time: at}
	stmt, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.NewLeaf(stmt, crypto.SignStatement(priv, stmt), priv.Public().(ed25519.PublicKey), at)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifySampleFS(t *testing.T) {
	const q = 0.2
	secret := seqSecret()
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	ids := nodeIDs(30)
	fsys := fstest.MapFS{}
	var leaves uint64
	add := func(b []byte) {
		fsys[audit.LeafFile(leaves)] = &fstest.MapFile{Data: b}
		leaves++
	}
	var unsampled struct {
		node  string
		round uint64
		base  [32]byte
	}
	updates := 0
	for r := uint64(1); r <= 10; r++ {
		base := sha256.Sum256(fmt.Appendf(nil, "base %d", r))
		seed := SampleSeed(secret, "job", r, base)
		for _, n := range ids {
			if Sampled(seed, n, q) {
				add(sampleLeafBytes(t, "job", n, r, base, priv))
				updates++
			} else if unsampled.node == "" {
				unsampled.node, unsampled.round, unsampled.base = n, r, base
			}
		}
		// Another job's updates are not checked.
		add(sampleLeafBytes(t, "other", ids[0], r, base, priv))
		// Result leaves are skipped.
		res := audit.ResultLeaf{Origin: "mfn.test/dp", JobID: "job", Round: r, Rule: "fedavg", BaseHash: base,
			Entries: []audit.ResultEntry{{LeafIndex: leaves - 2, Input: true, Used: true}}}
		b, err := res.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		add(b)
	}
	rep, err := VerifySampleFS(fsys, "job", secret, q)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Updates != updates || rep.Rounds != 10 || rep.Leaves != leaves || updates == 0 {
		t.Fatalf("report %+v, want %d updates in 10 rounds over %d leaves", rep, updates, leaves)
	}
	// The wrong secret, or a larger claimed sample, does not explain the log.
	wrong := seqSecret()
	wrong[0] ^= 1
	if _, err := VerifySampleFS(fsys, "job", wrong, q); !errors.Is(err, ErrNotSampled) {
		t.Fatalf("wrong secret: %v", err)
	}
	// An update from an unsampled node is named.
	at := leaves
	add(sampleLeafBytes(t, "job", unsampled.node, unsampled.round, unsampled.base, priv))
	_, err = VerifySampleFS(fsys, "job", secret, q)
	var ne *NotSampledError
	if !errors.As(err, &ne) || ne.Leaf != at || ne.Node != unsampled.node || ne.Round != unsampled.round {
		t.Fatalf("unsampled update: %v", err)
	}
	// q = 1 accepts everything; bad q and bad input are errors.
	if _, err := VerifySampleFS(fsys, "job", wrong, 1); err != nil {
		t.Fatalf("q = 1: %v", err)
	}
	if _, err := VerifySampleFS(fsys, "job", secret, 0); !errors.Is(err, ErrInvalidParameter) {
		t.Fatalf("q = 0: %v", err)
	}
	if _, err := VerifySampleFS(fstest.MapFS{}, "job", secret, q); err == nil {
		t.Fatal("an empty folder verified")
	}
	fsys[audit.LeafFile(leaves)] = &fstest.MapFile{Data: []byte{1, 2, 3}}
	if _, err := VerifySampleFS(fsys, "job", secret, 1); err == nil {
		t.Fatal("a garbage leaf verified")
	}
}

func TestConfigSampleRate(t *testing.T) {
	c := Config{Mode: ModeLocal, Clip: 1, NoiseMultiplier: 1, Delta: 1e-5}
	if c.Rate() != 1 {
		t.Fatalf("default rate %v", c.Rate())
	}
	c.SampleRate = 0.05
	if err := c.Validate(); err != nil || c.Rate() != 0.05 {
		t.Fatalf("rate 0.05: %v %v", err, c.Rate())
	}
	for _, q := range []float64{-0.1, 1.5, math.NaN(), math.Inf(1)} {
		c.SampleRate = q
		var fe *FieldError
		if err := c.Validate(); !errors.As(err, &fe) || fe.Field != "dp.sample_rate" {
			t.Errorf("rate %v: %v", q, err)
		}
	}
	// Adaptive clipping's count noise must leave budget for the sum.
	c = Config{Mode: ModeCentral, Clip: 1, NoiseMultiplier: 2, Delta: 1e-5,
		AdaptiveClip: &AdaptiveClipConfig{TargetQuantile: 0.5, LearningRate: 0.2, CountNoise: 1}}
	var fe *FieldError
	if err := c.Validate(); !errors.As(err, &fe) || fe.Field != "dp.adaptive_clip.count_noise" {
		t.Fatalf("count noise = z/2: %v", err)
	}
	c.AdaptiveClip.CountNoise = 2.5
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The accountant's cached RDP vectors give exactly Epsilon's figures, on
// first use and from the cache, also after the cache was emptied.
func TestAccountantCacheExact(t *testing.T) {
	for _, c := range []struct {
		q, z  float64
		steps int
	}{{0.05, 1, 1000}, {0.01, 0.8, 37}, {1, 2, 5}, {0.5, 0.7, 3}} {
		want, wantOrder, err := Epsilon(c.q, c.z, c.steps, 1e-5)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			var a Accountant
			if err := a.Compose(c.q, c.z, c.steps); err != nil {
				t.Fatal(err)
			}
			got, order, err := a.Epsilon(1e-5)
			if err != nil || got != want || order != wantOrder {
				t.Fatalf("%+v: accountant ε %v (order %v), Epsilon %v (order %v), %v", c, got, order, want, wantOrder, err)
			}
		}
	}
	for i := range maxStepRDPCache + 1 { // fills the cache past its bound
		if _, err := cachedRDPVector(1, 1+float64(i), 1); err != nil {
			t.Fatal(err)
		}
	}
	stepRDPCache.Lock()
	n := len(stepRDPCache.m)
	stepRDPCache.Unlock()
	if n > maxStepRDPCache {
		t.Fatalf("cache holds %d pairs, bound %d", n, maxStepRDPCache)
	}
	var a Accountant
	_ = a.Compose(0.05, 1, 1000)
	want, _, _ := Epsilon(0.05, 1, 1000, 1e-5)
	if got, _, _ := a.Epsilon(1e-5); got != want {
		t.Fatalf("after eviction ε %v, want %v", got, want)
	}
}

// FuzzVerifySample: any bytes as the leaves of an export give a report or
// an error, never a panic, and an accepted update leaf names a sampled node.
func FuzzVerifySample(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	f.Add(sampleLeafBytes(f, "job", "node-01", 1, [32]byte{}, priv), []byte{0, 1, 1})
	f.Add([]byte{1, 2, 3}, []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		fsys := fstest.MapFS{audit.LeafFile(0): {Data: a}, audit.LeafFile(1): {Data: b}}
		rep, err := VerifySampleFS(fsys, "job", seqSecret(), 0.5)
		if err == nil && rep.Leaves != 2 {
			t.Fatalf("report %+v without error", rep)
		}
	})
}
