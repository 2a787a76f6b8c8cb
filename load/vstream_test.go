package load

import (
	"bytes"
	"context"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mfn/mfn/crypto"
)

// TestUpdateReaderMatchesEncodeUpdate: the streamed update is byte for
// byte the one a framed virtual node seals, read whole or a byte at a
// time.
func TestUpdateReaderMatchesEncodeUpdate(t *testing.T) {
	for _, c := range []struct {
		dim    int
		byz    bool
		attack string
	}{{0, false, ""}, {1, false, ""}, {1001, false, ""}, {777, true, "sign-flip"}, {50, true, "large"}} {
		want := crypto.EncodeUpdate(updateValues(7, 3, 2, c.dim, c.byz, c.attack), crypto.Float32)
		got, err := io.ReadAll(newUpdateReader(7, 3, 2, c.dim, c.byz, c.attack))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("dim %d: whole read differs (%v)", c.dim, err)
		}
		got, err = io.ReadAll(iotest.OneByteReader(newUpdateReader(7, 3, 2, c.dim, c.byz, c.attack)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("dim %d: byte-wise read differs (%v)", c.dim, err)
		}
		if err := iotest.TestReader(newUpdateReader(7, 3, 2, c.dim, c.byz, c.attack), want); err != nil {
			t.Fatalf("dim %d: %v", c.dim, err)
		}
	}
}

// TestRunLocalClusterStreamed runs updates just over one frame through a
// 3-member cluster on loopback: every node streams (protocol Version4),
// every update is acknowledged and in the audit log once, and the round
// closes.
func TestRunLocalClusterStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member cluster")
	}
	l := startLocal(t, 3)
	cfg := DefaultConfig()
	cfg.JobID, cfg.Nodes, cfg.Dim, cfg.Rounds, cfg.Timeout = "streamed", 3, 1_100_000, 1, 3*time.Minute
	if !streamed(cfg.Dim) {
		t.Fatalf("dim %d is not streamed", cfg.Dim)
	}
	rep, err := Run(context.Background(), cfg, l.Target)
	if err != nil {
		t.Fatal(err)
	}
	want := cfg.Nodes * cfg.Rounds
	if rep.Interrupted || rep.Acked != want || rep.InLog != want || rep.Lost != 0 || rep.Duplicated != 0 || rep.RoundsClosed != 1 || len(rep.Errors) != 0 {
		t.Fatalf("interrupted %v, acked %d, in log %d (want %d), lost %d, duplicated %d, closed %d, errors %v",
			rep.Interrupted, rep.Acked, rep.InLog, want, rep.Lost, rep.Duplicated, rep.RoundsClosed, rep.Errors)
	}
	if min := float64(want) * float64(4*cfg.Dim); rep.BytesPerSecond*rep.Seconds < min {
		t.Fatalf("%.0f bytes in, want at least %.0f", rep.BytesPerSecond*rep.Seconds, min)
	}
}
