package privacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

// TestAccountantMatchesEpsilon: composing in pieces gives the same ε as
// one call, and mixed parameters add their RDP.
func TestAccountantMatchesEpsilon(t *testing.T) {
	t.Parallel()
	var a Accountant
	if eps, _, err := a.Epsilon(1e-5); err != nil || eps != 0 {
		t.Fatalf("empty accountant: ε=%v err=%v", eps, err)
	}
	for i := 0; i < 10; i++ {
		if err := a.Compose(0.05, 1.1, 30); err != nil {
			t.Fatal(err)
		}
	}
	got, gotOrder, err := a.Epsilon(1e-5)
	if err != nil {
		t.Fatal(err)
	}
	want, wantOrder, _ := Epsilon(0.05, 1.1, 300, 1e-5)
	if got != want || gotOrder != wantOrder || a.Steps() != 300 || len(a.Events()) != 1 {
		t.Fatalf("10×30 steps: ε=%v order %v steps %d events %d; one call: ε=%v order %v", got, gotOrder, a.Steps(), len(a.Events()), want, wantOrder)
	}

	// A second pair: ε after both is the conversion of the summed RDP.
	if err := a.Compose(0.1, 2, 50); err != nil {
		t.Fatal(err)
	}
	r1, _ := rdpVector(0.05, 1.1, 300)
	r2, _ := rdpVector(0.1, 2, 50)
	for i := range r1 {
		r1[i] += r2[i]
	}
	want, wantOrder = bestEpsilon(r1, 1e-5, convert)
	got, gotOrder, _ = a.Epsilon(1e-5)
	if got != want || gotOrder != wantOrder {
		t.Errorf("mixed: ε=%v order %v, want %v order %v", got, gotOrder, want, wantOrder)
	}
	single, _, _ := Epsilon(0.05, 1.1, 300, 1e-5)
	if got <= single {
		t.Errorf("adding steps did not raise ε: %v ≤ %v", got, single)
	}

	// EpsilonAfter previews without recording.
	before := a.Steps()
	prev, _, err := a.EpsilonAfter(1e-5, []Event{{SampleRate: 0.1, NoiseMultiplier: 2, Steps: 10}})
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Compose(0.1, 2, 10)
	after, _, _ := a.Epsilon(1e-5)
	if a.Steps() != before+10 || prev != after {
		t.Errorf("EpsilonAfter = %v, Epsilon after composing = %v", prev, after)
	}
}

// TestAccountantJSON: the encoding is deterministic, round-trips exactly
// and matches the golden form.
func TestAccountantJSON(t *testing.T) {
	t.Parallel()
	var a Accountant
	_ = a.Compose(0.05, 1.1, 300)
	_ = a.Compose(256.0/60000, 1.12, 7)
	_ = a.Compose(0.05, 1.1, 1)
	b, err := json.Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	const golden = `{"version":1,"events":[{"sample_rate":0.05,"noise_multiplier":1.1,"steps":301},{"sample_rate":0.004266666666666667,"noise_multiplier":1.12,"steps":7}]}`
	if string(b) != golden {
		t.Fatalf("JSON\n got %s\nwant %s", b, golden)
	}
	var back Accountant
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(&back)
	e1, _, _ := a.Epsilon(1e-5)
	e2, _, _ := back.Epsilon(1e-5)
	if !bytes.Equal(b, b2) || e1 != e2 || back.Steps() != 308 {
		t.Errorf("round trip: %s, ε %v vs %v, steps %d", b2, e1, e2, back.Steps())
	}
	var empty Accountant
	if b, _ := json.Marshal(&empty); string(b) != `{"version":1,"events":[]}` {
		t.Errorf("empty: %s", b)
	}
}

// TestAccountantRejects: bad JSON and bad Compose calls change nothing.
func TestAccountantRejects(t *testing.T) {
	t.Parallel()
	bad := []string{
		``, `null`, `[]`, `{"version":2,"events":[]}`, `{"version":1}`,
		`{"version":1,"events":[],"x":1}`,
		`{"version":1,"events":[]} {}`,
		`{"version":1,"events":[{"sample_rate":0,"noise_multiplier":1,"steps":1}]}`,
		`{"version":1,"events":[{"sample_rate":0.1,"noise_multiplier":-1,"steps":1}]}`,
		`{"version":1,"events":[{"sample_rate":0.1,"noise_multiplier":1,"steps":0}]}`,
		`{"version":1,"events":[{"sample_rate":0.1,"noise_multiplier":1,"steps":1},{"sample_rate":0.1,"noise_multiplier":1,"steps":2}]}`,
		`{"version":1,"events":[{"sample_rate":0.1,"noise_multiplier":1,"steps":1099511627776},{"sample_rate":0.2,"noise_multiplier":1,"steps":1}]}`,
		`{"version":1,"events":[{"sample_rate":1e999,"noise_multiplier":1,"steps":1}]}`,
		`{"version":1,"events":[` + strings.Repeat(" ", MaxAccountantJSON) + `]}`,
	}
	for _, s := range bad {
		var a Accountant
		_ = a.Compose(0.5, 3, 2)
		if err := json.Unmarshal([]byte(s), &a); err == nil {
			t.Errorf("accepted %.80q", s)
		}
		if a.Steps() != 2 || len(a.Events()) != 1 {
			t.Errorf("%.80q: state changed on error", s)
		}
	}
	// Too many events, via JSON and via Compose.
	var many strings.Builder
	many.WriteString(`{"version":1,"events":[`)
	var a Accountant
	for i := 0; i <= MaxEvents; i++ {
		if i > 0 {
			many.WriteString(",")
		}
		q := float64(i+1) / 2000
		many.WriteString(`{"sample_rate":` + strings.TrimSuffix(strings.TrimSuffix(jsonFloat(q), "\n"), " ") + `,"noise_multiplier":1,"steps":1}`)
		err := a.Compose(q, 1, 1)
		if i < MaxEvents && err != nil {
			t.Fatal(err)
		}
		if i == MaxEvents && !errors.Is(err, ErrTooManyEvents) {
			t.Errorf("event %d: err = %v, want ErrTooManyEvents", i, err)
		}
	}
	many.WriteString(`]}`)
	var b Accountant
	if err := json.Unmarshal([]byte(many.String()), &b); err == nil || !strings.Contains(err.Error(), "limit 1024") {
		t.Errorf("%d events accepted: %v", MaxEvents+1, err)
	}
	var c Accountant
	if err := c.Compose(0.1, 1, MaxSteps); err != nil {
		t.Fatal(err)
	}
	var pe *ParamError
	if err := c.Compose(0.1, 1, 1); !errors.As(err, &pe) || pe.Param != "steps" || c.Steps() != MaxSteps {
		t.Errorf("past MaxSteps: %v, steps %d", err, c.Steps())
	}
	if _, _, err := c.Epsilon(math.NaN()); !errors.As(err, &pe) || pe.Param != "delta" {
		t.Errorf("delta NaN: %v", err)
	}
}

func jsonFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// FuzzAccountantJSON: any input either fails to decode or decodes to a
// state whose encoding decodes to the same state (and never panics).
func FuzzAccountantJSON(f *testing.F) {
	f.Add([]byte(`{"version":1,"events":[{"sample_rate":0.05,"noise_multiplier":1.1,"steps":301}]}`))
	f.Add([]byte(`{"version":1,"events":[]}`))
	f.Add([]byte(`{"version":1,"events":[{"sample_rate":1,"noise_multiplier":1e-300,"steps":1099511627776}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Accountant
		if err := json.Unmarshal(b, &a); err != nil {
			return
		}
		enc, err := json.Marshal(&a)
		if err != nil {
			t.Fatal(err)
		}
		var back Accountant
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		enc2, _ := json.Marshal(&back)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not canonical: %s vs %s", enc, enc2)
		}
	})
}

func TestAccountantClone(t *testing.T) {
	var a Accountant
	if err := a.Compose(0.5, 2, 3); err != nil {
		t.Fatal(err)
	}
	c := a.Clone()
	if err := c.Compose(0.5, 2, 4); err != nil {
		t.Fatal(err)
	}
	if a.Steps() != 3 || c.Steps() != 7 {
		t.Fatalf("steps: original %d (want 3), clone %d (want 7)", a.Steps(), c.Steps())
	}
	if (*Accountant)(nil).Clone() != nil {
		t.Fatal("nil clone not nil")
	}
}
