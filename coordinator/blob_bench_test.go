package coordinator

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkProposeBlob commits a 100 MB body as chunk entries through a
// 1- and a 3-member in-process cluster on bbolt storage (each member writes its
// log and its blob file): the log's throughput for bodies.
func BenchmarkProposeBlob(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) { benchProposeBlob(b, n) })
	}
}

func benchProposeBlob(b *testing.B, members int) {
	tc := newTestCluster(b, members, clusterOpts{storage: func(int) *Storage {
		s, err := OpenStorage(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}})
	l := tc.members[tc.leader()]
	ctx := context.Background()
	if _, err := l.CreateJob(ctx, testSpec("bench", 10, 1, 1)); err != nil {
		b.Fatal(err)
	}
	tc.waitRound(tc.leader(), "bench", 1, RoundOpen)
	body := make([]byte, 100<<20)
	rng := rand.NewChaCha8(seedBytes(5))
	rng.Read(body)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := range b.N {
		body[0] = byte(i) // a new key each time
		key := Hash(sha256.Sum256(body))
		start := time.Now()
		if err := l.proposeBlob(ctx, "bench", 1, key, int64(len(body)), bytesReaderAt(body)); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(body))/time.Since(start).Seconds()/1e6, "MB/s")
	}
}

type bytesReaderAt []byte

func (r bytesReaderAt) ReadAt(p []byte, off int64) (int, error) { return copy(p, r[off:]), nil }
