package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// memChunk is one chunk of one object generation in memory: arriving from the Source, complete,
// or on its way to the data file (see chunkstate.go for its states). Readers are served from buf
// as soon as the bytes they need have arrived; the disk write happens behind them.
type memChunk struct {
	k     key
	obj   Object
	n     int64  // the chunk's length
	buf   []byte // n bytes of a pool buffer
	whole bool   // the chunk's CRC is known before it arrives (the whole object's, or the chunk's
	//              of a verified generation under VerifyReads): nothing is served before it matches
	expect uint32 // that CRC

	// Guarded by Cache.mu.
	state    chunkState
	refs     int           // holders of buf: the table, the fetch, the writer, replies in flight
	parts    []fetchPart   // the ranged GETs that bring its bytes, in order (see fetch.go)
	err      error         // the fetch's error, once failed
	wake     chan struct{} // closed (and replaced) when filled grows or the state changes
	waiters  int           // readers waiting for bytes now
	consumed bool          // a reader read its last byte: the first to go under memory pressure
	skipped  bool          // not written to disk (pushed out of memory before its write, or the write failed)
	used     uint64        // last use (Cache.memTick), for eviction order
	epoch    int           // Cache.genEpoch of the generation when the fetch started
	cancel   context.CancelFunc

	crc uint32 // CRC32C of buf, once every part arrived; written by the fetch only, read after it ends
}

// arrivedLocked reports whether bytes [lo, hi) of the chunk have arrived. Callers hold Cache.mu.
func (m *memChunk) arrivedLocked(lo, hi int64) bool {
	for i := range m.parts {
		p := &m.parts[i]
		if p.hi <= lo || p.lo >= hi {
			continue
		}
		if p.lo+p.filled < min(hi, p.hi) {
			return false
		}
	}
	return true
}

// move changes m's state, refusing any move chunkMoves does not list. Callers hold Cache.mu.
func (m *memChunk) move(to chunkState) {
	for _, ok := range chunkMoves[m.state] {
		if ok == to {
			m.state = to
			m.notify()
			return
		}
	}
	panic(fmt.Sprintf("cache: chunk %d of %s: no move from %s to %s", m.k.Index, m.k.Name, m.state, to))
}

// notify wakes m's waiters. Callers hold Cache.mu.
func (m *memChunk) notify() {
	close(m.wake)
	m.wake = make(chan struct{})
}

// memPool hands out the chunk buffers of the read path, at most max at a time: the prefetch
// memory budget. Buffers are anonymous memory mappings, outside the Go heap, so a full budget
// neither makes the garbage collector work (the daemon runs with a soft heap limit) nor is
// freed late; free buffers are unmapped after poolIdle without use. Guarded by Cache.mu.
type memPool struct {
	size     int64 // bytes per buffer (the chunk size)
	max      int   // buffers allowed at once
	out      int   // buffers handed out
	free     [][]byte
	lastUsed time.Time
}

// poolIdle is how long free buffers stay mapped after the last one was handed out.
const poolIdle = 2 * time.Second

// get hands out a buffer unless that would leave fewer than reserve of the budget's buffers
// not handed out.
func (p *memPool) get(reserve int) []byte {
	if p.out >= p.max-reserve {
		return nil
	}
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		p.out++
		p.lastUsed = time.Now()
		return b
	}
	b, err := unix.Mmap(-1, 0, int(p.size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil
	}
	p.out++
	p.lastUsed = time.Now()
	return b
}

func (p *memPool) put(b []byte) {
	p.out--
	p.free = append(p.free, b[:cap(b)])
}

// reap unmaps the free buffers if none was handed out for poolIdle (or always, when force).
func (p *memPool) reap(force bool) {
	if !force && time.Since(p.lastUsed) < poolIdle {
		return
	}
	for _, b := range p.free {
		unix.Munmap(b)
	}
	p.free = nil
}

// unrefLocked drops one reference to m's buffer, returning it to the pool with the last one.
func (c *Cache) unrefLocked(m *memChunk) {
	if m.refs--; m.refs == 0 && m.buf != nil {
		c.pool.put(m.buf)
		m.buf = nil
	}
	// A buffer came back, or a chunk may have become one a reader's read can free.
	close(c.roomWake)
	c.roomWake = make(chan struct{})
}

// untableLocked removes m from the table of chunks in memory (if it is still there).
func (c *Cache) untableLocked(m *memChunk) {
	if c.mem[m.k] == m {
		delete(c.mem, m.k)
		c.unrefLocked(m)
	}
}

// bufferLocked returns a chunk buffer from the budget, or nil. When the budget is used up it
// frees a chunk that is in memory only for its readers (not being fetched or written, no reply
// in flight), the cheapest first (evictRank): one already on disk and read to the end, then
// one read to the end, then, for a reader's own read (demand), the least recently used.
// Prefetch never pushes out bytes a reader has not read yet, and never takes the budget's last
// buffer: that one is kept for readers' own reads, which wait for room when there is none
// (readChunks) rather than read around the budget, so prefetch alone can never make them wait.
func (c *Cache) bufferLocked(demand bool) []byte {
	reserve := 1
	if demand {
		reserve = 0
	}
	for {
		if b := c.pool.get(reserve); b != nil {
			return b
		}
		var victim *memChunk
		for _, m := range c.mem {
			r := m.evictRank()
			if r < 0 || r == rankUnread && !demand {
				continue
			}
			if victim == nil || r < victim.evictRank() || r == victim.evictRank() && m.used < victim.used {
				victim = m
			}
		}
		if victim == nil {
			return nil
		}
		if victim.state == stInMemory {
			victim.move(stAbsent)
			if !victim.skipped {
				victim.skipped = true
				c.writeSkips.Add(1) // still queued: the disk was behind
			}
		}
		c.untableLocked(victim)
	}
}

// Eviction ranks of a chunk in memory, cheapest to lose first.
const (
	rankOnDisk = iota // cached and read to the end: losing it costs nothing
	rankRead          // read to the end, not on disk
	rankUnread        // not read to the end: only a reader's own read may push it out
)

// evictRank returns m's eviction rank, or -1 when m cannot be freed now (being fetched or
// written, or a reply in flight holds it). Callers hold Cache.mu.
func (m *memChunk) evictRank() int {
	if (m.state != stInMemory && m.state != stCached) || m.refs != 1 { // 1: the table's
		return -1
	}
	switch {
	case !m.consumed:
		return rankUnread
	case m.state == stCached:
		return rankOnDisk
	}
	return rankRead
}

// startFetchLocked starts fetching chunk k of obj into memory and returns its memChunk, or nil
// when the budget has no buffer for it. Callers hold Cache.mu and have checked that k is
// neither in memory nor cached.
func (c *Cache) startFetchLocked(src Source, obj Object, k key, demand bool) *memChunk {
	if c.closed {
		return nil
	}
	buf := c.bufferLocked(demand)
	if buf == nil {
		return nil
	}
	n := k.length(obj.Size)
	m := &memChunk{
		k: k, obj: obj, n: n, buf: buf[:n], parts: c.link.split(n, c.opts.ChunkSize, c.opts.partSize),
		whole: k.off() == 0 && n == obj.Size && obj.HasCRC32C, expect: obj.CRC32C,
		state: stAbsent, refs: 2, wake: make(chan struct{}), // the table's and the fetch's
	}
	if crc, ok := c.expectedLocked(k); ok && !m.whole {
		m.whole, m.expect = true, crc
	}
	c.memTick++
	m.used = c.memTick
	m.epoch = c.genEpoch[k.object()]
	m.move(stFetching)
	c.mem[k] = m
	ctx, cancel := context.WithTimeout(c.baseCtx, c.opts.FetchTimeout)
	m.cancel = cancel
	c.wg.Add(1)
	c.fetchesRunning.Add(1)
	go c.runFetch(ctx, src, m)
	return m
}

// memPiece is a part of a read served from a chunk in memory; it holds a reference to the
// chunk's buffer until released.
type memPiece struct {
	m      *memChunk
	lo, hi int64 // offsets within the chunk
	final  bool  // the object's last bytes: served once the chunk's fetch has ended (checkEnd)
}

func (p memPiece) bytes() []byte { return p.m.buf[p.lo:p.hi] }

func (c *Cache) releasePieces(ps []memPiece) {
	if len(ps) == 0 {
		return
	}
	c.mu.Lock()
	for _, p := range ps {
		c.unrefLocked(p.m)
	}
	c.mu.Unlock()
}

// queueWrite offers a complete chunk to the write-behind worker. The chunk stays in memory,
// served to its readers, and the worker takes it when it gets to it: queued chunks pin no
// memory, so a disk slower than the network never holds up a reader. A queued chunk that
// memory pressure pushes out before the worker took it is not cached (a write skip, see
// bufferLocked); a later read fetches it again.
func (c *Cache) queueWrite(m *memChunk) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// (Not refused after Close began: Close waits for the fetches, then drains the queue.)
	if m.state != stInMemory || diskSize(m.n) > c.opts.MaxBytes || c.genEpoch[m.k.object()] != m.epoch {
		m.skipped = true
		m.notify() // WaitWrites: nothing will be written
		return
	}
	c.toWrite = append(c.toWrite, m)
	c.pendingWrites.Add(1)
	select {
	case c.writeWake <- struct{}{}:
	default:
	}
}

// nextWrite takes the oldest queued chunk that is still in memory for writing, or returns nil
// when none is left.
func (c *Cache) nextWrite() *memChunk {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.toWrite) > 0 {
		m := c.toWrite[0]
		c.toWrite[0] = nil
		c.toWrite = c.toWrite[1:]
		if m.state == stInMemory && c.mem[m.k] == m {
			m.refs++
			m.move(stWriting)
			return m
		}
		c.pendingWrites.Add(-1) // pushed out of memory, or its generation was dropped
	}
	c.toWrite = nil // let the backing array go
	return nil
}

// writeBehind is the write-behind worker: it writes queued chunks into their data files and
// indexes them, one at a time, until Close. Chunks still queued at Close are written first.
func (c *Cache) writeBehind() {
	defer c.writers.Done()
	for {
		for m := c.nextWrite(); m != nil; m = c.nextWrite() {
			c.writeChunk(m)
		}
		select {
		case <-c.writeWake:
		case <-c.stopWrites:
			for m := c.nextWrite(); m != nil; m = c.nextWrite() {
				c.writeChunk(m)
			}
			return
		}
	}
}

// writeChunk stores one chunk from memory. Once it is indexed, readers go to the data file and
// its buffer returns to the pool with the last reply that still uses it. A failed write (disk
// full, an I/O error) only costs the caching: the chunk goes on serving from memory.
func (c *Cache) writeChunk(m *memChunk) {
	defer c.pendingWrites.Add(-1)
	if c.opts.beforeWrite != nil {
		c.opts.beforeWrite()
	}
	_, err := c.storeBytes(m.obj, m.k, m.buf, m.crc, func(uint32) bool {
		// Cache.mu is held: the generation has not failed a check since the fetch began.
		return c.genEpoch[m.k.object()] == m.epoch
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(err, errGone) {
		// Not a write error: the generation failed a check (its bytes were dropped) while
		// this chunk was on its way to disk, so it is not stored.
		m.move(stInMemory)
		m.skipped = true
		c.unrefLocked(m)
		c.log.Debug("cache: chunk not stored: its generation failed a check meanwhile", "object", m.obj.Name, "generation", m.obj.Generation)
		return
	}
	if err != nil {
		m.move(stInMemory)
		m.skipped = true
		c.unrefLocked(m)
		c.writeErrors.Add(1)
		if time.Since(c.lastWriteWarn) > time.Minute {
			c.lastWriteWarn = time.Now()
			c.log.Warn("cache: cannot write to the cache dir; reads go on from memory and GCS, uncached", "dir", c.root, "err", err)
		}
		return
	}
	m.move(stCached)
	if m.consumed {
		c.untableLocked(m)
	}
	c.unrefLocked(m)
}

// StopPrefetch cancels the fetches of obj's generation that no reader is waiting for: the
// last reader of the file went away (its handle was released), so nobody will read them.
func (c *Cache) StopPrefetch(obj Object) {
	id := objectID{obj.Bucket, obj.Name, obj.Generation}
	c.mu.Lock()
	for k, m := range c.mem {
		if k.object() == id && m.state == stFetching && m.waiters == 0 {
			m.cancel()
		}
	}
	c.mu.Unlock()
	c.seqMu.Lock()
	c.seq.Remove(id)
	c.seqMu.Unlock()
}
