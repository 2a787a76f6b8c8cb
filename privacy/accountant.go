package privacy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// MaxEvents bounds the number of distinct (sample rate, noise multiplier)
// pairs an Accountant holds, and so the work of Epsilon (one RDP vector
// per pair) and the size of its JSON (about 80 bytes per pair). Steps with
// a pair already held only add to its count, so a job with a fixed sample
// rate and noise uses one event however long it runs.
const MaxEvents = 1024

// MaxAccountantJSON bounds the input of Accountant.UnmarshalJSON: enough
// for MaxEvents events with long float spellings.
const MaxAccountantJSON = 256 << 10

// accountantVersion is the "version" field of the JSON form.
const accountantVersion = 1

// Event is a run of steps of the sampled Gaussian mechanism with one
// sample rate and noise multiplier.
type Event struct {
	SampleRate      float64 `json:"sample_rate"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	Steps           int64   `json:"steps"`
}

// Accountant tracks the privacy spent by a sequence of steps of the
// sampled Gaussian mechanism, possibly with different parameters. Its
// state is the list of events itself, not floating-point RDP sums: two
// replicas that apply the same Compose calls hold identical state and
// identical JSON, and ε is a pure function of that state (recomputed by
// Epsilon, so a float rounding difference between machines can never
// accumulate in the state).
//
// The zero value is an empty accountant (ε = 0). An Accountant is not safe
// for concurrent use.
type Accountant struct {
	events []Event
	total  int64
}

// Compose records steps more steps with sample rate q and noise multiplier
// z. Steps with a (q, z) pair already recorded are added to that event.
//
// Errors: a *ParamError naming sample_rate, noise_multiplier or steps
// (also when the total would exceed MaxSteps); ErrTooManyEvents when the
// pair is new and MaxEvents are already held. On error nothing changes.
func (a *Accountant) Compose(q, z float64, steps int) error {
	if err := validate(q, z, int64(steps), 0.5); err != nil {
		return err
	}
	if a.total+int64(steps) > MaxSteps {
		return &ParamError{Param: "steps", Value: float64(steps), Want: fmt.Sprintf("at most %d in total, %d already composed", int64(MaxSteps), a.total)}
	}
	for i := range a.events {
		if a.events[i].SampleRate == q && a.events[i].NoiseMultiplier == z {
			a.events[i].Steps += int64(steps)
			a.total += int64(steps)
			return nil
		}
	}
	if len(a.events) >= MaxEvents {
		return fmt.Errorf("%w: %d held, cannot add sample_rate %v noise_multiplier %v", ErrTooManyEvents, len(a.events), q, z)
	}
	a.events = append(a.events, Event{SampleRate: q, NoiseMultiplier: z, Steps: int64(steps)})
	a.total += int64(steps)
	return nil
}

// Steps returns the total number of steps composed.
func (a *Accountant) Steps() int64 { return a.total }

// Clone returns an independent copy of the accountant (nil for nil).
func (a *Accountant) Clone() *Accountant {
	if a == nil {
		return nil
	}
	return &Accountant{events: append([]Event(nil), a.events...), total: a.total}
}

// Events returns a copy of the recorded events, in order of first use.
func (a *Accountant) Events() []Event { return append([]Event(nil), a.events...) }

// Epsilon returns the ε spent so far at this δ and the order that gave it
// (0 and the first order for an empty accountant). Errors: a *ParamError
// naming delta.
func (a *Accountant) Epsilon(delta float64) (eps, order float64, err error) {
	return a.EpsilonAfter(delta, nil)
}

// EpsilonAfter returns the ε that would be spent after also composing the
// given events, without recording them: the check a coordinator makes
// before opening a round that must not exceed a budget. Errors: a
// *ParamError naming delta or a parameter of the extra events.
func (a *Accountant) EpsilonAfter(delta float64, extra []Event) (eps, order float64, err error) {
	if err := checkDelta(delta); err != nil {
		return 0, 0, err
	}
	total := make([]float64, len(orders))
	for _, evs := range [][]Event{a.events, extra} {
		for _, e := range evs {
			if err := validate(e.SampleRate, e.NoiseMultiplier, e.Steps, delta); err != nil {
				return 0, 0, err
			}
			r, err := cachedRDPVector(e.SampleRate, e.NoiseMultiplier, e.Steps)
			if err != nil {
				return 0, 0, err
			}
			for i := range total {
				total[i] += r[i]
			}
		}
	}
	if len(a.events) == 0 && len(extra) == 0 {
		return 0, orders[0], nil
	}
	eps, order = bestEpsilon(total, delta, convert)
	return eps, order, nil
}

// accountantJSON is the serialized form.
type accountantJSON struct {
	Version int     `json:"version"`
	Events  []Event `json:"events"`
}

// MarshalJSON encodes the accountant as
//
//	{"version":1,"events":[{"sample_rate":0.05,"noise_multiplier":1.1,"steps":300}]}
//
// Events keep their order of first use; floats use Go's shortest
// round-tripping spelling. The encoding is a deterministic function of the
// state, so replicas that hold the same state produce the same bytes.
func (a *Accountant) MarshalJSON() ([]byte, error) {
	evs := a.events
	if evs == nil {
		evs = []Event{}
	}
	return json.Marshal(accountantJSON{Version: accountantVersion, Events: evs})
}

// UnmarshalJSON decodes what MarshalJSON wrote, rejecting anything else:
// input longer than MaxAccountantJSON, unknown fields, trailing data, a
// version other than 1, more than MaxEvents events, an event with an
// invalid parameter, two events with the same (sample rate, noise
// multiplier) pair (not the canonical form), or a total above MaxSteps.
// On error the accountant is unchanged.
func (a *Accountant) UnmarshalJSON(b []byte) error {
	if len(b) > MaxAccountantJSON {
		return fmt.Errorf("privacy: accountant JSON of %d bytes exceeds the %d-byte limit", len(b), MaxAccountantJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v accountantJSON
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("privacy: accountant JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("privacy: accountant JSON: trailing data")
	}
	if v.Version != accountantVersion {
		return fmt.Errorf("privacy: accountant JSON: version %d, want %d", v.Version, accountantVersion)
	}
	if v.Events == nil {
		return fmt.Errorf("privacy: accountant JSON: missing events")
	}
	if len(v.Events) > MaxEvents {
		return fmt.Errorf("privacy: accountant JSON: %d events, limit %d", len(v.Events), MaxEvents)
	}
	var n Accountant
	for i, e := range v.Events {
		if err := validate(e.SampleRate, e.NoiseMultiplier, e.Steps, 0.5); err != nil {
			return fmt.Errorf("privacy: accountant JSON: event %d: %w", i, err)
		}
		for _, p := range n.events {
			if p.SampleRate == e.SampleRate && p.NoiseMultiplier == e.NoiseMultiplier {
				return fmt.Errorf("privacy: accountant JSON: event %d repeats sample_rate %v noise_multiplier %v", i, e.SampleRate, e.NoiseMultiplier)
			}
		}
		if n.total+e.Steps > MaxSteps {
			return fmt.Errorf("privacy: accountant JSON: event %d: total steps exceed %d", i, int64(MaxSteps))
		}
		n.events = append(n.events, e)
		n.total += e.Steps
	}
	*a = n
	return nil
}
