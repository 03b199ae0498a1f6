package cache

// nextWindow is the prefetch policy, the one place it is decided: how many chunks ahead of a
// sequential reader are fetched into memory. A stream starts with a window of one chunk; each
// time the reader moves on to a new chunk the window doubles, up to max (Options.Readahead,
// bounded by the memory budget). A read that does not continue a stream (a seek) starts a new
// stream, so its window is one chunk again; random readers (reads that never continue a
// stream) get no prefetch at all and are served by small blocks (see readRandom).
//
// Doubling is what lets one design serve both ends: a reader that only wants the first
// megabytes of a file (a header, `file`, `head`) costs at most one chunk beyond what it read,
// while a reader that streams a whole object reaches max chunks in flight after log2(max)
// chunks, which hides the first-byte latency of each request (tens of milliseconds on GCS)
// behind the transfer of the others.
func nextWindow(cur, max int, newChunk bool) int {
	if cur < 1 {
		cur = 1
	}
	if newChunk {
		cur *= 2
	}
	return min(cur, max)
}

// prefetch starts fetches into memory of the chunks of obj from index from on, up to window
// of them, skipping those in memory, cached or being filled. It stops at the first chunk the
// memory budget has no room for: prefetch never pushes out bytes a reader has yet to read, so
// when the budget is full it waits for the reader (the next read tries again).
func (c *Cache) prefetch(src Source, obj Object, from int64, window int) {
	last := (obj.Size - 1) / c.opts.ChunkSize
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := from; i <= last && i < from+int64(window); i++ {
		k := c.chunkKey(obj, i)
		if _, ok := c.mem[k]; ok || c.lru.Contains(k) || c.busy[k] > 0 {
			continue
		}
		if c.startFetchLocked(src, obj, k, false) == nil {
			return
		}
		c.readaheads.Add(1)
	}
}
