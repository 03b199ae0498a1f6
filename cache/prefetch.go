package cache

import "time"

// The prefetch window: how many chunks ahead of a sequential reader are being fetched. With
// the parts of each chunk fetched at once (fetch.go), the window decides how many GETs are in
// flight for the reader, and so how much of the link it uses and how much memory it holds.
//
// nextWindow is the policy, the one place it is decided. A stream starts with a window of one
// chunk. Each time the reader enters a new chunk:
//   - if it had to wait for bytes since it entered the last one, the link is not keeping up
//     with it: the window doubles (up to the bound: Options.Readahead, and the memory budget,
//     which stops prefetch when it is full);
//   - if it did not wait, the window stays: a reader slower than the link (a training step
//     that computes between reads) holds only the chunks it is about to read.
//
// A read that does not continue a stream (a seek) starts a new stream with a window of one
// chunk; a stream read again after idleReset (the reader stopped) starts from one chunk too.
// Random readers (reads that never continue a stream) get no prefetch at all and are served by
// small blocks (see readRandom). A reader that only wants the first megabytes of a file (a
// header, `file`, `head`) costs at most one chunk beyond what it read.
//
// A doubling that did not make the reader faster (the link or the Source is what limits it)
// could be taken back to save memory; the rate of one reader over one chunk proved far too
// noisy for that (a prefetched chunk reads in a millisecond, the next one waits), so the
// memory budget is the bound.

// idleReset is the pause after which a stream's window starts again from one chunk.
const idleReset = time.Second

// windowState is the prefetch window of one stream.
type windowState struct {
	size   int  // chunks fetched ahead of the reader
	waited bool // the reader waited for bytes since it entered its current chunk
}

// nextWindow updates w as the reader enters a new chunk and returns the new size, at most
// limit.
func nextWindow(w *windowState, limit int) int {
	if w.waited {
		w.size *= 2
	}
	w.size = max(min(w.size, limit), 1)
	w.waited = false
	return w.size
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
