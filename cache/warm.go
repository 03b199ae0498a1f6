package cache

import "context"

// What a caller that fills the cache ahead of its readers (plxfs warmup) asks of it: is a
// generation wholly cached, and checked; wait until what a read fetched has reached the disk
// (or has been given up on); and what a generation costs against MaxBytes.

// Cached reports whether every byte of obj's generation is cached (whole, in chunks or in the
// blocks of a chunk) and whether every one of those units has been checked against its
// record in this process (checked). A whole but unchecked generation (re-indexed at Open) is
// checked by reading it through the cache: from the disk, with no fetch unless a unit is
// found damaged.
func (c *Cache) Cached(obj Object) (whole, checked bool) {
	if obj.Generation <= 0 || obj.Size <= 0 {
		return false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.objs[objectID{obj.Bucket, obj.Name, obj.Generation}]
	if !ok || o.hdr.size != obj.Size {
		return false, false
	}
	_, entries, whole := c.coverLocked(o)
	return whole, whole && allVerified(entries)
}

// WaitWrites waits until no chunk of obj's generation is being fetched into memory, queued
// for the write-behind workers or being written by them: each has then been cached or given
// up on (pushed out of memory before a worker took it, or its write failed). A reader that
// wants what it read to be on disk before it goes on (and so never has more chunks in memory
// than it reads at once) calls it after its last read.
func (c *Cache) WaitWrites(ctx context.Context, obj Object) error {
	return c.waitChunks(ctx, objectID{obj.Bucket, obj.Name, obj.Generation}, func(m *memChunk) bool {
		return m.state == stFetching || m.state == stWriting || m.state == stInMemory && !m.skipped
	})
}

// Footprint is what obj's generation takes of MaxBytes once wholly cached: its chunks, each
// rounded up to the 4 KiB disk block, and its index file (see doc.go "Space accounting").
func (c *Cache) Footprint(obj Object) int64 {
	if obj.Size <= 0 {
		return 0
	}
	cs := c.opts.ChunkSize
	full := obj.Size / cs * diskSize(cs)
	if rest := obj.Size % cs; rest > 0 {
		full += diskSize(rest)
	}
	h := header{obj: objectID{obj.Bucket, obj.Name, obj.Generation}, size: obj.Size, chunk: cs, blk: c.opts.blockSize}
	return full + diskSize(h.len()+h.slots()*recordLen)
}

// ChunkBuffers is how many chunks the read path may hold in memory at once (PrefetchMemory
// in whole chunks): a caller reading many objects at once gains nothing from more readers
// than that, whose reads would go straight to the Source, uncached.
func (c *Cache) ChunkBuffers() int { return c.pool.max }
