package cache

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/plxfs/plxfs/internal/crc32c"
)

// Integrity of what the cache serves and keeps.
//
// GCS keeps a CRC32C of every object, and the caller hands it in (Object.CRC32C). A range
// response carries no checksum of its own, so what can be checked, and when, depends on how
// much of the object a fetch brings:
//
//   - A fetch of the whole object (small files; the only chunk of a one-chunk object) is
//     checked before any byte is served or cached; a mismatch is fetched again, then fails
//     with ErrChecksum (see runFetch).
//   - A chunk of a larger object is served as it arrives, unchecked, and its CRC is noted.
//     Once the CRCs of every chunk of a generation are known (from this process's fetches or
//     from the records of cached chunks), they are combined and compared with the object's:
//     on a mismatch every chunk of the generation is dropped, in memory and on disk, so the
//     next read fetches again; the event is logged and counted (Stats.ChecksumMismatches).
//     A generation that passed is remembered with its chunk CRCs: a later fetch of one of its
//     chunks is compared with its CRC, and on a mismatch is dropped the same way.
//   - Cached units carry their CRC in their record; units re-indexed at Open are checked
//     against it on their first read (bit rot while the daemon was down).

// genSums collects the chunk CRCs of one generation of a multi-chunk object until all are known.
type genSums struct {
	crc  []uint32
	have []bool
	left int // chunks whose CRC is not known yet
}

// maxGenSums bounds the generations whose chunk CRCs are being collected. An evicted entry only
// postpones a check (its cached chunks' records still hold their CRCs).
const maxGenSums = 4096

// noteChunk records the CRC of chunk idx of obj as fetched (idx < 0: none, only look at the
// cached chunks), and checks the generation when the set is complete.
func (c *Cache) noteChunk(obj Object, idx int64, crc uint32) {
	if !obj.HasCRC32C {
		return
	}
	id := objectID{obj.Bucket, obj.Name, obj.Generation}
	chunks := ceilDiv(obj.Size, c.opts.ChunkSize)
	c.mu.Lock()
	if known, ok := c.verifiedGens.Get(id); ok {
		// The generation passed its check: its chunk CRCs are known, and a fetch that
		// disagrees brought damaged bytes. They were served as they arrived (a range carries
		// no checksum), but they are not kept: the generation's epoch moves on.
		bad := idx >= 0 && idx < int64(len(known)) && known[idx] != crc
		c.mu.Unlock()
		if bad {
			c.mismatch(obj, fmt.Sprintf("chunk %d differs from its CRC32C learnt when the generation passed its check", idx), crc)
		}
		return
	}
	g, ok := c.sums.Get(id)
	if !ok || int64(len(g.crc)) != chunks {
		g = &genSums{crc: make([]uint32, chunks), have: make([]bool, chunks), left: int(chunks)}
		c.sums.Add(id, g)
	}
	if idx >= 0 && g.have[idx] && g.crc[idx] != crc {
		// Two fetches of one chunk disagree: one of them was damaged, and some of its bytes
		// may be cached. Which one cannot be told; drop both.
		c.sums.Remove(id)
		c.mu.Unlock()
		c.mismatch(obj, fmt.Sprintf("two fetches of chunk %d disagree", idx), crc)
		return
	}
	if idx >= 0 && !g.have[idx] {
		g.have[idx], g.crc[idx] = true, crc
		g.left--
	}
	// Chunks cached on disk count as known too (their records hold their CRCs).
	if g.left > 0 {
		for i := range g.have {
			if !g.have[i] {
				if e, ok := c.lru.Peek(c.chunkKey(obj, int64(i))); ok {
					g.have[i], g.crc[i] = true, e.crc
					g.left--
				}
			}
		}
	}
	if g.left > 0 {
		c.mu.Unlock()
		return
	}
	var sum uint32
	for i, part := range g.crc {
		sum = crc32c.Combine(sum, part, c.chunkKey(obj, int64(i)).length(obj.Size))
	}
	c.sums.Remove(id)
	if sum == obj.CRC32C {
		c.verifiedGens.Add(id, g.crc)
		c.failedGens.Remove(id)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.mismatch(obj, "chunks combined", sum)
}

// mismatch handles bytes of obj that did not match its CRC32C: it is logged and counted,
// everything held of the generation (chunks in memory and units on disk) is dropped, and the
// generation is marked failed until it passes a check again (see checkEnd).
func (c *Cache) mismatch(obj Object, what string, got uint32) {
	c.countMismatch(obj, what+"; dropping what is held of this generation, the next read fetches it again", got)
	id := objectID{obj.Bucket, obj.Name, obj.Generation}
	c.mu.Lock()
	c.failedGens.Add(id, struct{}{})
	c.verifiedGens.Remove(id) // learnt again from the next complete set of chunks
	c.mu.Unlock()
	c.poison(obj)
}

// checkEnd is the check of a read that reaches the end of obj: when obj is larger than a chunk
// and the CRC32C of its chunks, combined, did not match the object's, a reader that read it
// from the start may have been served wrong bytes, and gets ErrChecksum (EIO) instead of the
// end of the file: when the generation failed since it last passed a check, and, for a
// sequential reader (epoch >= 0: the generation's epoch when its stream started), when the
// generation failed at any time since the reader started, even if other readers fetched it
// again and it passed since. A generation whose chunks are not all known (a reader that
// skipped some; chunks evicted before they were counted) cannot be judged and passes.
func (c *Cache) checkEnd(ctx context.Context, obj Object, epoch int) error {
	if !obj.HasCRC32C || obj.Size <= c.opts.ChunkSize {
		return nil // one chunk: checked whole before a byte was served
	}
	id := objectID{obj.Bucket, obj.Name, obj.Generation}
	failed := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.failedGens.Contains(id) || epoch >= 0 && c.genEpoch[id] != epoch
	}
	if !failed() {
		// Chunks still arriving (the kernel's readahead can ask for the end while an earlier
		// chunk's parts are in flight) are waited for, so that they are counted; then chunks
		// cached on disk may complete the set, and fail it.
		if err := c.waitChunks(ctx, id, func(m *memChunk) bool { return m.state == stFetching }); err != nil {
			return err
		}
		c.noteChunk(obj, -1, 0)
	}
	if failed() {
		return fmt.Errorf("%w: gs://%s/%s generation %d: its chunks combined do not match the object's CRC32C; what was read of it may be wrong (the damaged bytes were dropped: read it again)",
			ErrChecksum, obj.Bucket, obj.Name, obj.Generation)
	}
	return nil
}

// waitChunks waits until no chunk of generation id in memory is in a state busy reports
// (counting as a waiter, so that StopPrefetch leaves their fetches running). Callers hold no
// lock.
func (c *Cache) waitChunks(ctx context.Context, id objectID, busy func(m *memChunk) bool) error {
	for {
		c.mu.Lock()
		var m *memChunk
		for k, x := range c.mem {
			if k.object() == id && busy(x) {
				m = x
				break
			}
		}
		if m == nil {
			c.mu.Unlock()
			return nil
		}
		ch := m.wake
		m.waiters++
		c.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
		c.mu.Lock()
		m.waiters--
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// countMismatch logs and counts bytes of obj that did not match its CRC32C.
func (c *Cache) countMismatch(obj Object, what string, got uint32) {
	c.crcMismatches.Add(1)
	if c.opts.OnChecksumMismatch != nil {
		c.opts.OnChecksumMismatch()
	}
	c.log.Warn("cache: object bytes from GCS do not match the object's CRC32C",
		"bucket", obj.Bucket, "object", obj.Name, "generation", obj.Generation,
		"check", what, "want_crc32c", fmt.Sprintf("%08x", obj.CRC32C), "got_crc32c", fmt.Sprintf("%08x", got))
}

// poison drops everything held of obj's generation, in memory and on disk, and keeps what is
// still arriving or queued from being cached (the generation's epoch changes).
func (c *Cache) poison(obj Object) {
	id := objectID{obj.Bucket, obj.Name, obj.Generation}
	c.mu.Lock()
	c.genEpoch[id]++
	c.sums.Remove(id)
	for k, m := range c.mem {
		// Chunks still arriving or queued finish for the readers that hold them; the epoch
		// keeps them out of the cache (see queueWrite and writeChunk), and new readers fetch anew.
		if k.object() != id {
			continue
		}
		if m.state == stInMemory {
			m.move(stAbsent)
		}
		c.untableLocked(m)
	}
	for _, k := range c.lru.Keys() {
		if k.object() == id {
			c.lru.Remove(k)
		}
	}
	doomed := c.takeDoomedLocked()
	c.mu.Unlock()
	c.release(doomed)
}

// expectedLocked returns the CRC32C chunk k must have, when reads are verified and k's
// generation has passed its check (its chunk CRCs are then known). Callers hold Cache.mu.
func (c *Cache) expectedLocked(k key) (uint32, bool) {
	if !c.opts.VerifyReads {
		return 0, false
	}
	crcs, ok := c.verifiedGens.Peek(k.object())
	if !ok || k.Index >= int64(len(crcs)) {
		return 0, false
	}
	return crcs[k.Index], true
}

// verifyWhole makes sure obj's generation has passed its whole-object check (VerifyReads). It
// streams the whole object once (one request, through a small buffer: nothing is kept),
// computing the CRC32C of each chunk and of the whole; if the whole matches the object's, the
// chunk CRCs are remembered, so that every chunk fetched from then on is checked before a
// byte of it is served (see startFetchLocked and fill), and cached chunks that disagree are
// dropped. A mismatch is fetched again once, then the read fails with ErrChecksum. Concurrent
// readers share one pass. The price is one extra transfer of the object.
func (c *Cache) verifyWhole(ctx context.Context, src Source, obj Object) error {
	id := objectID{obj.Bucket, obj.Name, obj.Generation}
	c.mu.Lock()
	done := c.verifiedGens.Contains(id)
	c.mu.Unlock()
	if done {
		return nil
	}
	ch := c.flights.DoChan("w"+id.fileID(), func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.FetchTimeout)
		defer cancel()
		for attempt := 1; ; attempt++ {
			crcs, sum, err := c.streamCRCs(fctx, src, obj)
			if err != nil {
				return nil, err
			}
			if sum == obj.CRC32C {
				c.mu.Lock()
				c.verifiedGens.Add(id, crcs)
				c.failedGens.Remove(id)
				var bad []key
				for _, k := range c.lru.Keys() {
					if k.object() == id && k.Unit == c.opts.ChunkSize {
						if e, _ := c.lru.Peek(k); k.Index < int64(len(crcs)) && e.crc != crcs[k.Index] {
							bad = append(bad, k)
						}
					}
				}
				for _, k := range bad {
					c.lru.Remove(k)
				}
				doomed := c.takeDoomedLocked()
				c.mu.Unlock()
				c.release(doomed)
				return nil, nil
			}
			c.countMismatch(obj, fmt.Sprintf("whole-object check of --verify-reads, attempt %d of 2", attempt), sum)
			if attempt == 2 {
				return nil, fmt.Errorf("%w: gs://%s/%s generation %d did not pass its whole-object check", ErrChecksum, obj.Bucket, obj.Name, obj.Generation)
			}
		}
	})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case r := <-ch:
		return r.Err
	}
}

// streamCRCs reads all of obj in one request and returns the CRC32C of each chunk and of the
// whole.
func (c *Cache) streamCRCs(ctx context.Context, src Source, obj Object) ([]uint32, uint32, error) {
	c.fetches.Add(1)
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	rc, err := src.NewRangeReader(ctx, obj.Name, obj.Generation, 0, -1)
	if err != nil {
		return nil, 0, fmt.Errorf("verify: %w", err)
	}
	defer rc.Close()
	cs := c.opts.ChunkSize
	crcs := make([]uint32, ceilDiv(obj.Size, cs))
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	buf := *bufp
	var whole uint32
	var off int64
	for off < obj.Size {
		n := min(int64(len(buf)), cs-off%cs, obj.Size-off) // never across a chunk boundary
		m, err := io.ReadFull(rc, buf[:n])
		crcs[off/cs] = crc32.Update(crcs[off/cs], crc32c.Table, buf[:m])
		whole = crc32.Update(whole, crc32c.Table, buf[:m])
		off += int64(m)
		c.fetched.Add(int64(m))
		if err != nil {
			return nil, 0, fmt.Errorf("verify: %w: got %d of %d bytes: %v", ErrShortBody, off, obj.Size, err)
		}
	}
	var probe [1]byte
	if m, _ := io.ReadFull(rc, probe[:]); m > 0 {
		return nil, 0, fmt.Errorf("verify: %w", ErrLongBody)
	}
	return crcs, whole, nil
}
