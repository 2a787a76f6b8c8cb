package coordinator

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
)

// TestLogCacheBounds: entries over the entry limit are stored but not
// cached, the cached data never exceed the byte budget (the oldest go
// first), every entry reads back from the cache or the store, and a
// delete empties the cache.
func TestLogCacheBounds(t *testing.T) {
	store := raft.NewInmemStore()
	c := newLogCache(store, 8, 100, 250)
	entry := func(i uint64, n int) *raft.Log {
		return &raft.Log{Index: i, Term: 1, Data: bytes.Repeat([]byte{byte(i)}, n)}
	}
	sizes := []int{50, 100, 101, 90, 60, 10, 1000, 40, 80, 5, 100, 100}
	for i, n := range sizes {
		if err := c.StoreLog(entry(uint64(i+1), n)); err != nil {
			t.Fatal(err)
		}
		if b := c.cachedBytes(); b > 250 {
			t.Fatalf("after entry %d: %d bytes cached, budget 250", i+1, b)
		}
	}
	var want int64
	for i := range c.slots {
		if s := c.slots[i]; s != nil {
			if len(s.Data) > 100 {
				t.Fatalf("entry %d of %d bytes cached", s.Index, len(s.Data))
			}
			want += int64(len(s.Data))
		}
	}
	if want != c.cachedBytes() {
		t.Fatalf("byte count %d, slots hold %d", c.cachedBytes(), want)
	}
	// The newest entries are the ones kept.
	var l raft.Log
	if s := c.slots[12%8]; s == nil || s.Index != 12 {
		t.Fatal("the newest entry is not cached")
	}
	for i, n := range sizes {
		if err := c.GetLog(uint64(i+1), &l); err != nil || len(l.Data) != n || l.Index != uint64(i+1) {
			t.Fatalf("entry %d: %v, %d bytes", i+1, err, len(l.Data))
		}
	}
	if err := c.DeleteRange(1, 6); err != nil {
		t.Fatal(err)
	}
	if c.cachedBytes() != 0 {
		t.Fatal("delete left the cache full")
	}
	if err := c.GetLog(3, &l); err == nil {
		t.Fatal("a deleted entry reads back")
	}
	if err := c.GetLog(9, &l); err != nil || len(l.Data) != 80 {
		t.Fatalf("entry 9 after the delete: %v", err)
	}
}
