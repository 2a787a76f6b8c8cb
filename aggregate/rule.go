package aggregate

import "math/rand/v2"

// Rule combines n update vectors (one per client, all of the same length)
// into one aggregate. weights[i] is client i's weight (typically its sample
// count); a nil weights slice means equal weights. Rules that ignore weights
// (Krum, median, ...) say so in their documentation.
//
// Inputs that are malformed (wrong length, NaN or Inf) are never propagated:
// they are dropped before the rule runs and listed in Report.Rejected, and
// each counts against the rule's f (see "Rejected inputs and the Byzantine
// budget" in the package documentation). An error is returned only when
// the rule cannot run at all (too few valid inputs for its effective f,
// inconsistent arguments); the error names the requirement.
//
// Implementations must not modify updates or weights.
type Rule interface {
	// Name is the rule's short identifier ("krum", "trimmed-mean", ...).
	Name() string
	// Aggregate returns a newly allocated aggregate and the report.
	Aggregate(updates [][]float64, weights []float64) ([]float64, Report, error)
}

// Report says, for the audit log and the operator, what a rule did with
// each input. Indices refer to positions in the updates slice given to
// Aggregate.
type Report struct {
	// Rule is the name of the rule (including pre-steps, e.g. "nnm+krum").
	Rule string `json:"rule"`
	// Used lists the inputs that contributed to the aggregate, ascending.
	Used []int `json:"used"`
	// Rejected lists the inputs that did not contribute, with the reason.
	Rejected []Rejection `json:"rejected,omitempty"`
	// Scores holds the rule's per-input score where it has one (Krum's sum
	// of squared distances, the distance to the aggregate, ...), indexed
	// like updates; nil when the rule has no per-input score.
	Scores []float64 `json:"scores,omitempty"`
}

// Rejection explains why one input was not used.
type Rejection struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// AttackInput is what a Byzantine client knows when it crafts its update:
// under the standard, strongest assumption it sees every honest update of
// the round.
type AttackInput struct {
	// Honest holds the honest clients' updates of this round.
	Honest [][]float64
	// F is the number of Byzantine vectors to produce.
	F int
	// Rule is the aggregation rule under attack, for adaptive attacks
	// (Opt-ALIE, Opt-IPM, min-max, min-sum); may be nil for the others.
	Rule Rule
	// Rand is the seeded source for randomised attacks.
	Rand *rand.Rand
}

// Attack crafts the Byzantine updates of one round.
type Attack interface {
	// Name is the attack's short identifier ("alie", "ipm", ...).
	Name() string
	// Craft returns F vectors of the honest updates' length.
	Craft(in AttackInput) ([][]float64, error)
}
