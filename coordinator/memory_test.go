package coordinator

import (
	"testing"
)

// A big job keeps fewer model versions: at most keepModelBytes beyond
// two, never fewer than two, never more than keepModels.
func TestModelsKept(t *testing.T) {
	for _, tc := range []struct{ dim, want int }{
		{0, keepModels}, {1, keepModels}, {1_000_000, keepModels}, {8_388_604, keepModels},
		{10_000_000, 6}, {25_000_000, 2}, {1 << 27, 2},
	} {
		if got := modelsKept(tc.dim); got != tc.want {
			t.Errorf("modelsKept(%d) = %d, want %d", tc.dim, got, tc.want)
		}
	}
}

// shed drops a finished derivation's model and aggregate but keeps what
// later callers compare; an entry still being derived is left alone.
func TestDerivCacheShed(t *testing.T) {
	var dc derivCache
	dc.m = map[derivKey]*derivEntry{}
	done := &derivEntry{done: make(chan struct{}), d: derivation{model: Params{1, 2}, aggregate: []float64{3}, leaf: []byte("leaf"),
		result: RoundResult{ModelHash: Hash{7}}}}
	close(done.done)
	busy := &derivEntry{done: make(chan struct{}), d: derivation{model: Params{4}}}
	dc.m[derivKey{"j", 1}], dc.m[derivKey{"j", 2}] = done, busy
	dc.shed("j", 1)
	dc.shed("j", 2)
	dc.shed("j", 3) // unknown: nothing
	if d := done.d; d.model != nil || d.aggregate != nil || string(d.leaf) != "leaf" || d.result.ModelHash != (Hash{7}) {
		t.Fatalf("shed derivation %+v", d)
	}
	if busy.d.model == nil {
		t.Fatal("a derivation still running lost its model")
	}
}
