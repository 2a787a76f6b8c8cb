package coordinator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestBigRoundWired: a streamed round of dim above StreamDeriveDim closes
// through deriveStream, plainly and with strong-form attestation, with the
// median of the float32 updates, and leaves no spill file.
func TestBigRoundWired(t *testing.T) {
	for _, opts := range []clusterOpts{{}, {attest: true, strong: true}} {
		tc := newTestCluster(t, 3, opts)
		net := quicCluster(t, tc)
		nodes := newTestNodes(t, 2, 31)
		tc.enroll(nodes)
		li := tc.leader()
		l := tc.members[li]
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		const dim = StreamDeriveDim + 1000
		spec := testSpec("s", dim, 2, 2)
		spec.Rule = RuleSpec{Name: "median"}
		spec.InitialModel = make(Params, dim)
		if _, err := l.CreateJob(ctx, spec); err != nil {
			t.Fatal(err)
		}
		tc.waitRound(li, "s", 1, RoundOpen)
		base := ModelHash(spec.InitialModel)
		us := [][]float64{make([]float64, dim), make([]float64, dim)}
		for i := range us[0] {
			us[0][i] = float64(i%7) / 4
			us[1][i] = -float64(i%5) / 2
		}
		for k, n := range nodes {
			cl, err := dialNode(t, net, tc, n, l.cfg.QUICAddr)
			if err != nil {
				t.Fatal(err)
			}
			sealed := n.sealStream(t, tc.keys, "s", 1, base, us[k])
			if _, err := cl.SubmitStream(ctx, "s", 1, int64(len(sealed)), func(w io.Writer) error { _, err := w.Write(sealed); return err }); err != nil {
				t.Fatal(err)
			}
		}
		tc.waitRound(li, "s", 1, RoundClosed)
		m, err := l.Model("s", 1)
		if err != nil {
			t.Fatal(err)
		}
		for i := range m.Params {
			w := (float64(float32(us[0][i])) + float64(float32(us[1][i]))) / 2
			if m.Params[i] != w {
				t.Fatalf("model[%d] = %v, want %v", i, m.Params[i], w)
			}
		}
		// The model is served to nodes range by range from the state
		// (model_range.go) when it is big; every byte must be the same.
		saved := bigModelBytes
		bigModelBytes = 0
		cl, err := dialNode(t, net, tc, nodes[0], l.cfg.QUICAddr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cl.FetchModel(ctx, "s", 1, m.Hash)
		bigModelBytes = saved
		if err != nil || !bytes.Equal(got, ModelBytes(m.Params)) {
			t.Fatalf("model fetched by range: %d bytes, %v", len(got), err)
		}
		if left := spillFiles(t, l); len(left) != 0 {
			t.Fatalf("spill files left: %v", left)
		}
		t.Logf("opts %+v: closed", opts)
	}
}

// TestBigJobRefused: a job whose rounds would be derived from streams
// with a rule that cannot run in bounded memory is refused at creation.
func TestBigJobRefused(t *testing.T) {
	tc := newTestCluster(t, 3, clusterOpts{})
	l := tc.members[tc.leader()]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := testSpec("s", StreamDeriveDim+1000, 2, 2)
	spec.Rule = RuleSpec{Name: "nnm+geometric-median"}
	_, err := l.CreateJob(ctx, spec)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cannot aggregate a round of dim 1033192 in bounded memory") {
		t.Fatalf("CreateJob: %v", err)
	}
}
