package privacy_test

import (
	"fmt"

	"github.com/mfn/mfn/privacy"
)

// The setting of Opacus's accountant test (q = 0.04, z = 1.5, 2,250 steps,
// δ = 1e-5), whose published ε is 7.32911117143.
func ExampleEpsilon() {
	eps, order, err := privacy.Epsilon(0.04, 1.5, 2250, 1e-5)
	if err != nil {
		panic(err)
	}
	fmt.Printf("ε = %.6f at order %v\n", eps, order)
	// Output: ε = 7.329111 at order 3.9
}

// Solving for the noise that spends exactly that budget gives z = 1.5 back.
func ExampleNoiseMultiplier() {
	z, err := privacy.NoiseMultiplier(7.32911117143, 0.04, 2250, 1e-5)
	if err != nil {
		panic(err)
	}
	fmt.Printf("z = %.4f\n", z)
	// Output: z = 1.5000
}

// A running job: compose each round, check the budget before the next.
func ExampleAccountant() {
	var a privacy.Accountant
	for round := 0; round < 2250; round++ {
		if err := a.Compose(0.04, 1.5, 1); err != nil {
			panic(err)
		}
	}
	spent, _, _ := a.Epsilon(1e-5)
	next, _, _ := a.EpsilonAfter(1e-5, []privacy.Event{{SampleRate: 0.04, NoiseMultiplier: 1.5, Steps: 1}})
	fmt.Printf("spent %.4f; one more round would spend more: %v\n", spent, next > spent)
	b, _ := a.MarshalJSON()
	fmt.Println(string(b))
	// Output:
	// spent 7.3291; one more round would spend more: true
	// {"version":1,"events":[{"sample_rate":0.04,"noise_multiplier":1.5,"steps":2250}]}
}
