package main

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/mfn/mfn/node"
)

func TestAdvertisedAddress(t *testing.T) {
	t.Parallel()
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40123}
	for _, tc := range []struct {
		adv, bind string
		want      string
		wildcard  bool
	}{
		{"", "127.0.0.1:8080", "127.0.0.1:40123", false},
		{"", "127.0.0.1:0", "127.0.0.1:40123", false},
		{"", "coord-1.example:0", "coord-1.example:40123", false},
		{"", "[::1]:0", "[::1]:40123", false},
		{"", ":8080", "", true},
		{"", "0.0.0.0:8080", "", true},
		{"", "[::]:8080", "", true},
		{"coord-1.example:8443", "0.0.0.0:8080", "coord-1.example:8443", true},
	} {
		if got := wildcardHost(tc.bind); got != tc.wildcard {
			t.Errorf("wildcardHost(%q) = %v, want %v", tc.bind, got, tc.wildcard)
		}
		if got := advertised(tc.adv, tc.bind, bound); got != tc.want {
			t.Errorf("advertised(%q, %q) = %q, want %q", tc.adv, tc.bind, got, tc.want)
		}
	}
	for addr, ok := range map[string]bool{
		"coord-1.example:8443": true, "10.0.0.7:8080": true, "[fd00::7]:8080": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.7:0": false, "10.0.0.7": false,
	} {
		if err := checkAdvertise(addr); (err == nil) != ok {
			t.Errorf("checkAdvertise(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestRegimeEvaluator(t *testing.T) {
	t.Parallel()
	if newRegimeEvaluator(context.Background(), 1, 0, slog.New(slog.DiscardHandler)) != nil {
		t.Fatal("--eval-per-regime 0 must turn evaluation off")
	}
	ev := newRegimeEvaluator(context.Background(), 7, 6, slog.New(slog.DiscardHandler))
	if _, ok, err := ev.Evaluate("mnist", make([]float64, 7850)); ok || err != nil {
		t.Fatalf("another task: ok=%v err=%v, want no held-out data", ok, err)
	}
	if _, _, err := ev.Evaluate(node.TaskMFNRegime, make([]float64, 5)); !errors.Is(err, node.ErrTask) {
		t.Fatalf("5 parameters: %v, want node.ErrTask", err)
	}
	// The zero softmax model scores every class alike and predicts the
	// first: exactly the share of that class in a balanced test set.
	soft, err := node.ArchFor(node.TaskMFNRegime, 76)
	if err != nil {
		t.Fatal(err)
	}
	acc, ok, err := ev.Evaluate(node.TaskMFNRegime, make([]float64, soft.NumParams()))
	if err != nil || !ok || acc != 1/float64(node.NumRegimes) {
		t.Fatalf("zero model: acc=%v ok=%v err=%v, want %v", acc, ok, err, 1/float64(node.NumRegimes))
	}
	// The same seed gives the same test set, so the same score.
	rng := rand.New(rand.NewPCG(1, 2))
	params := make([]float64, 23*8+4) // an MLP with 8 hidden units
	for i := range params {
		params[i] = rng.NormFloat64()
	}
	a1, _, err := ev.Evaluate(node.TaskMFNRegime, params)
	if err != nil {
		t.Fatal(err)
	}
	ev2 := newRegimeEvaluator(context.Background(), 7, 6, slog.New(slog.DiscardHandler))
	if a2, _, err := ev2.Evaluate(node.TaskMFNRegime, params); err != nil || a2 != a1 {
		t.Fatalf("same seed: %v then %v (%v)", a1, a2, err)
	}
	if a1 < 0 || a1 > 1 {
		t.Fatalf("accuracy %v outside [0, 1]", a1)
	}
}
