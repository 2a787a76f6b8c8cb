package aggregate

import (
	"fmt"
)

// TwoTier is robust-of-robust aggregation over regions: every region's
// updates are aggregated by the rule Inner builds for its size, and the
// regions' results by Outer (see docs/SCALE.md). Each tier sees only its
// own inputs, so a region's aggregator can run on another cluster and
// send one vector upward.
//
// A Byzantine update can move only its own region's result; Outer then
// treats every region as one input, so it tolerates up to its own f
// regions whose result was moved arbitrarily far. With Byzantine updates
// concentrated in few regions this holds far more of them than a flat
// rule with the same f fraction would; spread thinly over every region,
// each region's rule must tolerate its share.
type TwoTier struct {
	// Inner builds the rule for a region of size inputs.
	Inner func(size int) (Rule, error)
	// Outer combines the regions' results, one input per non-empty region.
	Outer Rule
}

// Aggregate aggregates regions[r] (the updates of region r) region by
// region, then across regions. Empty regions are skipped. Region
// results are unweighted: Outer sees each non-empty region once.
func (t *TwoTier) Aggregate(regions [][][]float64) ([]float64, error) {
	if t.Inner == nil || t.Outer == nil {
		return nil, fmt.Errorf("two-tier: %w: Inner and Outer must be set", ErrBadArguments)
	}
	var mids [][]float64
	for r, ups := range regions {
		if len(ups) == 0 {
			continue
		}
		rule, err := t.Inner(len(ups))
		if err != nil {
			return nil, fmt.Errorf("two-tier: region %d (%d updates): %w", r, len(ups), err)
		}
		out, _, err := rule.Aggregate(ups, nil)
		if err != nil {
			return nil, fmt.Errorf("two-tier: region %d (%d updates): %w", r, len(ups), err)
		}
		mids = append(mids, out)
	}
	if len(mids) == 0 {
		return nil, fmt.Errorf("two-tier: %w: every region is empty", ErrNoValidInputs)
	}
	out, _, err := t.Outer.Aggregate(mids, nil)
	if err != nil {
		return nil, fmt.Errorf("two-tier: across %d regions: %w", len(mids), err)
	}
	return out, nil
}
