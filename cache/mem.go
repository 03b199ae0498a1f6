package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/internal/crc32c"
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
	filled   int64         // bytes arrived (published in steps of publishStep)
	err      error         // the fetch's error, once failed
	wake     chan struct{} // closed (and replaced) when filled grows or the state changes
	waiters  int           // readers waiting for bytes now
	consumed bool          // a reader read its last byte: the first to go under memory pressure
	skipped  bool          // not written to disk (pushed out of memory before its write, or the write failed)
	used     uint64        // last use (Cache.memTick), for eviction order
	epoch    int           // Cache.genEpoch of the generation when the fetch started
	cancel   context.CancelFunc

	crc uint32 // CRC32C of buf[:filled]; written by the fetch only, read after it ends
}

// publishStep is how many newly arrived bytes a fetch accumulates before it wakes readers.
const publishStep = 256 << 10

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

func (p *memPool) get() []byte {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		p.out++
		p.lastUsed = time.Now()
		return b
	}
	if p.out >= p.max {
		return nil
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
// Prefetch never pushes out bytes a reader has not read yet.
func (c *Cache) bufferLocked(demand bool) []byte {
	for {
		if b := c.pool.get(); b != nil {
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
		k: k, obj: obj, n: n, buf: buf[:n],
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

// ErrChecksum is wrapped by read errors when the bytes received for a whole object did not
// match the CRC32C that GCS holds for it, after retries.
var ErrChecksum = errors.New("object bytes do not match their CRC32C")

// crcAttempts bounds how often a whole object whose bytes fail their CRC check is fetched.
const crcAttempts = 3

// runFetch fills m from src, checks it and hands it to the write-behind queue.
func (c *Cache) runFetch(ctx context.Context, src Source, m *memChunk) {
	defer c.wg.Done()
	defer m.cancel()
	var err error
	for attempt := 1; ; attempt++ {
		err = c.download(ctx, src, m)
		if err != nil || !m.whole || m.crc == m.expect {
			break
		}
		// Nothing was served or kept: only this fetch is retried.
		c.countMismatch(m.obj, fmt.Sprintf("whole-object read, attempt %d of %d; fetching again before serving a byte", attempt, crcAttempts), m.crc)
		if attempt == crcAttempts {
			err = fmt.Errorf("%w: gs://%s/%s generation %d, %d attempts", ErrChecksum, m.obj.Bucket, m.obj.Name, m.obj.Generation, crcAttempts)
			break
		}
		c.mu.Lock()
		m.filled = 0
		c.mu.Unlock()
		m.crc = 0
	}
	if err == nil && (!m.whole || m.n != m.obj.Size) {
		// Noted before the readers wake: one that waits for the generation's check (verifyWhole)
		// must find this chunk's CRC counted.
		c.noteChunk(m.obj, m.k.Index, m.crc)
	}
	defer c.fetchesRunning.Add(-1) // after the write is queued (see waitIdle in the tests)
	c.mu.Lock()
	if err != nil {
		if m.waiters == 0 && ctx.Err() != nil && c.baseCtx.Err() == nil {
			m.move(stAbsent) // cancelled with nobody waiting (StopPrefetch)
		} else {
			m.err = err
			m.move(stFailed)
		}
		c.untableLocked(m)
		c.unrefLocked(m)
		c.mu.Unlock()
		return
	}
	m.move(stInMemory)
	c.unrefLocked(m)
	c.mu.Unlock()
	c.queueWrite(m)
}

// maxResumes bounds how often one chunk fetch continues after a body that broke off (a reset,
// a truncated response, a stall the Source gave up on), from the byte where it stopped.
const maxResumes = 3

// download reads m's bytes from src into m.buf, publishing progress to readers, and resumes a
// body that broke off from where it stopped. It checks the length: short (after resumes) and
// long bodies are errors.
func (c *Cache) download(ctx context.Context, src Source, m *memChunk) error {
	var crc uint32
	var filled int64
	for resumes := 0; ; resumes++ {
		err := c.downloadFrom(ctx, src, m, &filled, &crc)
		if err == nil || ctx.Err() != nil || resumes == maxResumes || errors.Is(err, ErrLongBody) || filled == 0 && !retryable(err) {
			m.crc = crc
			return err
		}
		c.resumes.Add(1)
	}
}

// retryable reports whether a failed request is worth sending again from the same offset:
// anything but a refusal to open the range (the Source retries those itself).
func retryable(err error) bool { return errors.Is(err, ErrShortBody) || errors.Is(err, errBodyBroke) }

var errBodyBroke = errors.New("response body broke off")

// downloadFrom sends one range request for the bytes of m from *filled on and copies them in.
func (c *Cache) downloadFrom(ctx context.Context, src Source, m *memChunk, filled *int64, crc *uint32) error {
	off := m.k.off() + *filled
	want := m.n - *filled
	c.fetches.Add(1)
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	n := want
	if off == 0 && want == m.obj.Size {
		// The whole object: asked for as such (no range), the request every server handles
		// best, and the one on which a GCS client checks the object's CRC32C itself.
		n = -1
	}
	rc, err := src.NewRangeReader(ctx, m.obj.Name, m.obj.Generation, off, n)
	if err != nil {
		return fmt.Errorf("fetch bytes %d-%d: %w", off, off+want-1, err)
	}
	defer rc.Close()
	published := *filled
	for *filled < m.n {
		k, rerr := rc.Read(m.buf[*filled:])
		if k > 0 {
			*crc = crc32.Update(*crc, crc32c.Table, m.buf[*filled:*filled+int64(k)])
			*filled += int64(k)
			c.fetched.Add(int64(k))
			// The last bytes are published after the length check below.
			if *filled-published >= publishStep && *filled < m.n {
				published = *filled
				c.mu.Lock()
				m.filled = published
				m.notify()
				c.mu.Unlock()
			}
		}
		if rerr == io.EOF && *filled < m.n {
			return fmt.Errorf("%w: got %d of %d bytes", ErrShortBody, *filled, m.n)
		}
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("%w at byte %d: %v", errBodyBroke, m.k.off()+*filled, rerr)
		}
	}
	var probe [1]byte
	if k, _ := io.ReadFull(rc, probe[:]); k > 0 {
		return fmt.Errorf("%w: more than the %d bytes asked for", ErrLongBody, want)
	}
	c.mu.Lock()
	m.filled = m.n
	m.notify()
	c.mu.Unlock()
	return nil
}

// memPiece is a part of a read served from a chunk in memory; it holds a reference to the
// chunk's buffer until released.
type memPiece struct {
	m      *memChunk
	lo, hi int64 // offsets within the chunk
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
