package load

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkFsync measures what one durable append costs on the disk
// holding the test's temporary directory (set TMPDIR to measure another):
// write size bytes at the end of a file, then fsync it, as bbolt does
// for every Raft log batch. ops/s of the 4 KiB case bounds the commits a
// member can make per second without batching (docs/SCALE.md).
func BenchmarkFsync(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 400 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, size)
			for i := range buf {
				buf[i] = byte(i * 7)
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
