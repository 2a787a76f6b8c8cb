package node

import (
	"time"

	"errors"
	"github.com/mfn/mfn/coordinator"
	"math"
	"slices"
	"testing"

	"github.com/mfn/mfn/privacy"
)

func seeded(b byte) privacy.Source {
	var seed [32]byte
	seed[0] = b
	return privacy.NewSeededSource(seed)
}

func TestPrivatizeLocal(t *testing.T) {
	const dim, clip, z = 4000, 1.0, 0.5
	md := map[string]string{"task": TaskMFNRegime, "dp": privacy.Announced{Mode: privacy.ModeLocal, Clip: clip, NoiseMultiplier: z}.Encode()}
	raw := make([]float64, dim)
	for i := range raw {
		raw[i] = 0.1 * float64(i%7-3) // norm ≫ clip: clipped
	}
	u := slices.Clone(raw)
	if err := privatize(md, u, seeded(1)); err != nil {
		t.Fatal(err)
	}
	// u = clipped + noise with E‖noise‖² = d·(z·C)²; the clipped part has
	// norm ≤ C and points along raw. Split u into the component along raw
	// and the rest.
	var dot, rawSq, uSq float64
	for i := range u {
		dot += u[i] * raw[i]
		rawSq += raw[i] * raw[i]
		uSq += u[i] * u[i]
	}
	along := dot / math.Sqrt(rawSq)
	sigma := z * clip
	// along = ‖clipped‖ + N(0, σ²): within 5σ of the clip (≈ C less the
	// rounding margin).
	if math.Abs(along-clip) > 5*sigma {
		t.Fatalf("component along the update %v, want %v ± %v", along, clip, 5*sigma)
	}
	// ‖u‖² = ‖clipped‖² + 2⟨clipped, n⟩ + ‖n‖²: mean ≈ C² + dσ², standard
	// deviation ≈ σ²√(2d) (+ 2Cσ).
	mean, sd := clip*clip+dim*sigma*sigma, sigma*sigma*math.Sqrt(2*dim)+2*clip*sigma
	if math.Abs(uSq-mean) > 5*sd {
		t.Fatalf("‖u‖² = %v, want %v ± %v (clip %v, noise σ %v)", uSq, mean, 5*sd, clip, sigma)
	}
	// Seeded: the same source gives the same bits; another seed differs.
	u2, u3 := slices.Clone(raw), slices.Clone(raw)
	if err := privatize(md, u2, seeded(1)); err != nil {
		t.Fatal(err)
	}
	if err := privatize(md, u3, seeded(2)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u, u2) || slices.Equal(u, u3) {
		t.Fatal("privatize is not a function of its source")
	}
}

// With very little noise the clip alone shows: the norm is C (± the
// noise, σ = 2·10⁻⁹).
func TestPrivatizeClips(t *testing.T) {
	md := map[string]string{"dp": privacy.Announced{Mode: privacy.ModeLocal, Clip: 2, NoiseMultiplier: 1e-9}.Encode()}
	u := []float64{30, -40, 0, 0}
	if err := privatize(md, u, seeded(3)); err != nil {
		t.Fatal(err)
	}
	n := math.Hypot(u[0], u[1])
	if math.Abs(n-2) > 1e-6 || math.Abs(u[0]/u[1]+0.75) > 1e-6 {
		t.Fatalf("clipped update %v: norm %v, want 2 along (3, -4)", u, n)
	}
}

func TestPrivatizeOffOrCentral(t *testing.T) {
	raw := []float64{3, -4, 0.5}
	for _, md := range []map[string]string{
		nil,
		{"task": TaskMFNRegime},
		{"dp": privacy.Announced{Mode: privacy.ModeCentral, Clip: 1, NoiseMultiplier: 1}.Encode()},
	} {
		u := slices.Clone(raw)
		if err := privatize(md, u, seeded(4)); err != nil || !slices.Equal(u, raw) {
			t.Fatalf("metadata %v: update %v (%v), want unchanged %v", md, u, err, raw)
		}
	}
	// A dp value the node cannot read: it refuses the job.
	for _, bad := range []string{"", "local;clip=1", "local;clip=-1;z=1", "local;clip=1e300;z=1e300"} {
		u := slices.Clone(raw)
		if err := privatize(map[string]string{"dp": bad}, u, seeded(5)); !errors.Is(err, ErrTask) {
			t.Fatalf("dp %q: %v, want ErrTask", bad, err)
		}
	}
}

// TestAgentsLocalDP runs real agents on a local DP job: the announcement
// carries the dp metadata, each node noises its update with σ = z·C, and
// the mean of n noised updates has ‖·‖² ≈ d·σ²/n, far above what training
// alone moves the model (the clip bounds the signal to C).
func TestAgentsLocalDP(t *testing.T) {
	mc := newMemCluster(t, 1)
	const n, clip, z = 3, 0.01, 300.0 // σ = 3 per coordinate
	for i := range n {
		id := newNodeIdentity(t, uint64(200+i))
		mc.enroll(id)
		runAgent(t, mc.nodeConfig(t, id, t.TempDir(), uint64(i+11)))
	}
	spec := regimeJob("dpj", 1, n, n)
	spec.DP = &privacy.Config{Mode: privacy.ModeLocal, Clip: clip, NoiseMultiplier: z, Delta: 1e-5}
	mc.createJob(spec)
	l := mc.members[mc.leader()]
	eventually(t, 60*time.Second, "the DP job to complete", func() bool {
		j, err := l.GetJob("dpj")
		return err == nil && j.State == coordinator.JobCompleted
	})
	m, err := l.Model("dpj", 1)
	if err != nil {
		t.Fatal(err)
	}
	var sq float64
	for _, v := range m.Params { // base model is zeros: the model is the mean update
		sq += v * v
	}
	sigma := z * clip
	d := float64(len(m.Params))
	mean, sd := d*sigma*sigma/n, sigma*sigma*math.Sqrt(2*d)/n
	if math.Abs(sq-mean) > 5*sd+clip {
		t.Fatalf("‖model‖² = %v, want %v ± %v (mean of %d updates noised with σ = %v)", sq, mean, 5*sd, n, sigma)
	}
	if j, _ := l.GetJob("dpj"); j.Privacy == nil || j.Privacy.Accountant.Steps() != 1 {
		t.Fatalf("privacy state %+v", j.Privacy)
	}
}
