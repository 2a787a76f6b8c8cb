package aggregate_test

import (
	"fmt"
	"math"

	"github.com/mfn/mfn/aggregate"
)

func ExampleNew() {
	updates := [][]float64{
		{0.9, 1.1}, {1.0, 1.0}, {1.1, 0.9}, {1.0, 1.2}, {1.2, 1.0},
		{-50, 80},       // a Byzantine update
		{math.NaN(), 1}, // a broken one
	}
	rule, err := aggregate.New("krum", aggregate.Params{F: 1})
	if err != nil {
		panic(err)
	}
	agg, report, err := rule.Aggregate(updates, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(agg, report.Used)
	for _, r := range report.Rejected {
		fmt.Println(r.Index, r.Reason)
	}
	// Output:
	// [1 1] [1]
	// 0 not selected by krum
	// 2 not selected by krum
	// 3 not selected by krum
	// 4 not selected by krum
	// 5 not selected by krum
	// 6 NaN at coordinate 0
}

func ExampleParsePipeline() {
	rule, err := aggregate.ParsePipeline("nnm+trimmed-mean", aggregate.Params{F: 1})
	if err != nil {
		panic(err)
	}
	// Each update is mixed with its 4 nearest (itself included): 1…4 all
	// become 2.5, the outlier 1000 becomes (1000+4+3+2)/4; trimming one value
	// per side leaves 2.5.
	updates := [][]float64{{1}, {2}, {3}, {4}, {1000}}
	agg, report, err := rule.Aggregate(updates, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(rule.Name(), agg, report.Used)
	// Output:
	// nnm+trimmed-mean [2.5] [0 1 2 3 4]
}

func ExampleRequirementError() {
	rule, _ := aggregate.New("bulyan", aggregate.Params{F: 2})
	_, _, err := rule.Aggregate([][]float64{{1}, {2}, {3}, {4}, {5}}, nil)
	fmt.Println(err)
	// Output:
	// aggregate: bulyan needs n ≥ 4f+3 = 11, got n = 5 valid inputs (f = 2)
}
