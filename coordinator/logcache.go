package coordinator

import (
	"sync"

	"github.com/hashicorp/raft"
)

// isBlobChunk reports whether l is a blob-chunk entry (blob.go): a
// streamed body's chunks, up to 1 MiB each and hundreds in a row, would
// evict every other entry; followers read them from the log store.
func isBlobChunk(l *raft.Log) bool {
	return l.Type == raft.LogCommand && len(l.Data) >= 2 && l.Data[0] == commandVersion && commandType(l.Data[1]) == cmdBlobChunk
}

// logCache keeps recent Raft entries in memory in front of the log store,
// so that replication to followers reads no disk, bounded by bytes as well
// as by entries: an entry over maxEntry bytes (a streamed update's
// add-update, up to the command limit) is never cached, and the cached
// entries' data stay within maxBytes, the oldest dropped first. A cache
// bounded only by count (raft.LogCache) would pin count × the largest
// entry: 512 entries of 100 MB.
type logCache struct {
	store    raft.LogStore
	maxEntry int
	maxBytes int64

	mu    sync.RWMutex
	slots []*raft.Log // entry i at i % len(slots)
	bytes int64       // data bytes of the cached entries
	order []uint64    // cached indexes, oldest first (may hold overwritten ones)
}

// Log cache bounds (OpenStorage): 512 entries, 256 MiB of entry data,
// entries of at most 4 MiB (every framed update; a streamed one goes to
// disk only).
const (
	logCacheMaxBytes = 256 << 20
	logCacheMaxEntry = 4 << 20
)

func newLogCache(store raft.LogStore, entries, maxEntry int, maxBytes int64) *logCache {
	return &logCache{store: store, maxEntry: maxEntry, maxBytes: maxBytes, slots: make([]*raft.Log, entries)}
}

// IsMonotonic passes the store's property through (raft.MonotonicLogStore).
func (c *logCache) IsMonotonic() bool {
	m, ok := c.store.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// GetLog implements raft.LogStore.
func (c *logCache) GetLog(idx uint64, log *raft.Log) error {
	c.mu.RLock()
	l := c.slots[idx%uint64(len(c.slots))]
	c.mu.RUnlock()
	if l != nil && l.Index == idx {
		*log = *l
		return nil
	}
	return c.store.GetLog(idx, log)
}

// StoreLog implements raft.LogStore.
func (c *logCache) StoreLog(log *raft.Log) error { return c.StoreLogs([]*raft.Log{log}) }

// StoreLogs implements raft.LogStore: the store first, the cache only on
// success.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.store.StoreLogs(logs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		c.put(l)
	}
	return nil
}

func (c *logCache) put(l *raft.Log) {
	i := l.Index % uint64(len(c.slots))
	if old := c.slots[i]; old != nil {
		c.bytes -= int64(len(old.Data))
		c.slots[i] = nil
	}
	if len(l.Data) > c.maxEntry || isBlobChunk(l) {
		return
	}
	c.slots[i] = l
	c.bytes += int64(len(l.Data))
	c.order = append(c.order, l.Index)
	for c.bytes > c.maxBytes && len(c.order) > 0 {
		idx := c.order[0]
		c.order = c.order[1:]
		j := idx % uint64(len(c.slots))
		if s := c.slots[j]; s != nil && s.Index == idx {
			c.bytes -= int64(len(s.Data))
			c.slots[j] = nil
		}
	}
	if len(c.order) > 2*len(c.slots) {
		kept := make([]uint64, 0, len(c.slots))
		for _, idx := range c.order {
			if s := c.slots[idx%uint64(len(c.slots))]; s != nil && s.Index == idx {
				kept = append(kept, idx)
			}
		}
		c.order = kept
	}
}

// FirstIndex implements raft.LogStore.
func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }

// LastIndex implements raft.LogStore.
func (c *logCache) LastIndex() (uint64, error) { return c.store.LastIndex() }

// DeleteRange implements raft.LogStore; it empties the cache.
func (c *logCache) DeleteRange(lo, hi uint64) error {
	c.mu.Lock()
	c.slots = make([]*raft.Log, len(c.slots))
	c.bytes, c.order = 0, nil
	c.mu.Unlock()
	return c.store.DeleteRange(lo, hi)
}

// cachedBytes returns the data bytes the cache holds (tests).
func (c *logCache) cachedBytes() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bytes
}
