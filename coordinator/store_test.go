package coordinator

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
)

// entries returns n log entries from index first on with size-byte bodies.
func entries(rng *rand.Rand, first uint64, n, size int) []*raft.Log {
	logs := make([]*raft.Log, n)
	for i := range logs {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		logs[i] = &raft.Log{Index: first + uint64(i), Term: 1, Type: raft.LogCommand, Data: data}
	}
	return logs
}

// TestStorageDurable: what a member stores survives closing and reopening
// its data directory, after a compaction too.
func TestStorageDurable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	s, err := OpenStorage(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := entries(rng, 1, 64, 4096)
	if err := s.Logs.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.Logs.DeleteRange(1, 32); err != nil {
		t.Fatal(err)
	}
	if err := s.Stable.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStorage(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ok, err := s.HasState(); err != nil || !ok {
		t.Fatalf("HasState = %v, %v after reopening", ok, err)
	}
	first, _ := s.Logs.FirstIndex()
	last, _ := s.Logs.LastIndex()
	if first != 33 || last != 64 {
		t.Fatalf("log holds [%d, %d], want [33, 64]", first, last)
	}
	var got raft.Log
	if err := s.Logs.GetLog(40, &got); err != nil || !bytes.Equal(got.Data, logs[39].Data) {
		t.Fatalf("entry 40 after reopening: %v", err)
	}
	if term, err := s.Stable.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("term %d, %v", term, err)
	}
	// More entries fit into the space the compaction freed.
	if err := s.Logs.StoreLogs(entries(rng, 65, 16, 4096)); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkStoreLogs measures the durable log's cost per add-update-sized
// entry (40 KB) written in batches of 16, as the leader's group commit and
// a follower's AppendEntries write them, in steady state: the log is
// compacted every 1,024 entries (mfn coordinator's snapshot threshold),
// so the database always holds about 40 MB of free pages.
func BenchmarkStoreLogs(b *testing.B) {
	const size, batch, keep = 40 << 10, 16, 1024
	s, err := OpenStorage(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(7, 8))
	pool := entries(rng, 1, batch, size)
	next := uint64(1)
	write := func() {
		for i, l := range pool {
			l.Index = next + uint64(i)
		}
		if err := s.Logs.StoreLogs(pool); err != nil {
			b.Fatal(err)
		}
		next += batch
		if next > 2*keep && (next-1)%keep == 0 {
			if err := s.Logs.DeleteRange(next-2*keep, next-keep-1); err != nil {
				b.Fatal(err)
			}
		}
	}
	for next <= 4*keep {
		write()
	}
	b.SetBytes(size * batch)
	b.ResetTimer()
	cpu0 := processCPU()
	for range b.N {
		write()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*batch), "µs/entry")
	// Wall time includes the fsyncs, i.e. the disk (shared and noisy on a
	// busy machine); CPU time is the work.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N*batch), "cpu-µs/entry")
}
