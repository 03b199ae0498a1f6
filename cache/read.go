package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/plxfs/plxfs/internal/crc32c"
)

// ReadAt reads len(p) bytes of obj at off through the cache, with io.ReaderAt semantics: it
// returns fewer bytes only at the end of the object, together with io.EOF (an offset at or past
// the end reads nothing and returns io.EOF). Bytes come from the objects' data files; missing
// ones are fetched from src, once however many readers want them.
func (c *Cache) ReadAt(ctx context.Context, src Source, obj Object, p []byte, off int64) (int, error) {
	_, n, err := c.read(ctx, src, obj, p, off, false)
	return n, err
}

// ReadSpan is ReadAt for callers that can send bytes straight from a file (splice): when the
// read continues a sequential stream, it returns a Span, the place of the bytes in the
// object's data file, held until Span.Close, and copies nothing. Otherwise (a random read, a
// chunk too big to cache) it reads into p exactly as ReadAt does and returns a nil Span.
func (c *Cache) ReadSpan(ctx context.Context, src Source, obj Object, p []byte, off int64) (*Span, int, error) {
	return c.read(ctx, src, obj, p, off, true)
}

func (c *Cache) read(ctx context.Context, src Source, obj Object, p []byte, off int64, spanOK bool) (*Span, int, error) {
	if c.isClosed.Load() {
		return nil, 0, ErrClosed
	}
	if obj.Generation <= 0 {
		return nil, 0, fmt.Errorf("cache: read %s/%s: generation %d is not positive", obj.Bucket, obj.Name, obj.Generation)
	}
	if off < 0 {
		return nil, 0, fmt.Errorf("cache: read %s/%s: negative offset %d", obj.Bucket, obj.Name, off)
	}
	if len(p) == 0 {
		return nil, 0, nil
	}
	if off >= obj.Size {
		return nil, 0, io.EOF
	}
	end := min(off+int64(len(p)), obj.Size)
	if c.opts.VerifyReads && obj.HasCRC32C && obj.Size > c.opts.ChunkSize {
		if err := c.verifyWhole(ctx, src, obj); err != nil {
			return nil, 0, fmt.Errorf("cache: read %s/%s gen %d at %d: %w", obj.Bucket, obj.Name, obj.Generation, off, err)
		}
	}
	seq, window, st := c.observe(obj, off, end)
	var sp *Span
	var err error
	if seq {
		var waited bool
		sp, err = c.readChunks(ctx, src, obj, p, off, end, spanOK, window, &waited)
		if waited {
			c.noteWait(st)
		}
	} else {
		err = c.readRandomRange(ctx, src, obj, p, off, end)
	}
	if err == nil && end == obj.Size {
		if err = c.checkEnd(ctx, obj, c.startEpoch(st)); err != nil && sp != nil {
			sp.Close()
			sp = nil
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cache: read %s/%s gen %d at %d: %w", obj.Bucket, obj.Name, obj.Generation, off, err)
	}
	n := int(end - off)
	if n < len(p) {
		return sp, n, io.EOF
	}
	return sp, n, nil
}

// readRandomRange serves a read that does not continue a stream, chunk by chunk (readRandom).
func (c *Cache) readRandomRange(ctx context.Context, src Source, obj Object, p []byte, off, end int64) error {
	cs := c.opts.ChunkSize
	for pos := off; pos < end; {
		k := c.chunkKey(obj, pos/cs)
		uend := min(k.off()+k.length(obj.Size), end)
		if err := c.readRandom(ctx, src, obj, k, p[pos-off:uend-off], pos); err != nil {
			return err
		}
		pos = uend
	}
	return nil
}

// part is the share of one chunk in a read: bytes [lo, hi) of the object, served from memory
// (m, a chunk fetched or being fetched, referenced until the reply is sent), from the data file,
// or, when the memory budget has no room for a fetch, by a direct range read.
type part struct {
	k      key
	lo, hi int64
	m      *memChunk
	disk   bool
}

// readChunks serves [off, end) of obj from whole chunks: the read path of sequential readers.
// Chunks in memory (arriving or complete) serve the bytes that have arrived; cached chunks are
// read from the data file; missing chunks are fetched into memory, and, when window > 0, so
// are the window chunks after the last one the read touches. With spanOK the reply is a Span
// of the bytes where they lie (memory or data file), copying nothing; otherwise the bytes are
// copied into p. *waited (when waited is not nil) is set if the read had to wait for bytes.
func (c *Cache) readChunks(ctx context.Context, src Source, obj Object, p []byte, off, end int64, spanOK bool, window int, waited *bool) (*Span, error) {
	cs := c.opts.ChunkSize
	roomBy := time.Now().Add(roomWait)
	for attempt := 0; ; {
		parts, room := c.plan(src, obj, off, end)
		if room != nil && time.Now().Before(roomBy) {
			// The memory budget has no room for a chunk of this read now: wait (up to
			// roomWait) until a reference goes and look again. Bytes read around the budget,
			// directly, are never counted in the generation's check (see SEMANTICS.md).
			c.releaseParts(parts)
			if waited != nil {
				*waited = true
			}
			t := time.NewTimer(time.Until(roomBy))
			select {
			case <-room:
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
			t.Stop()
			continue
		}
		if window > 0 {
			c.prefetch(src, obj, (end-1)/cs+1, window)
			window = 0
		}
		sp, err := c.serveParts(ctx, src, obj, p, off, parts, spanOK, waited)
		if attempt++; errors.Is(err, errGone) && attempt <= maxAttempts {
			continue // a chunk in memory was dropped (its generation failed its check): anew
		}
		return sp, err
	}
}

// roomWait bounds how long a read waits for room in the memory budget before it reads the
// bytes it needs directly: fetches that hold the budget are bounded by hedging and the fetch
// timeout, but a read must not wait out a stall of other files' fetches.
const roomWait = 2 * time.Second

// releaseParts drops the references plan took on parts that will not be served.
func (c *Cache) releaseParts(parts []part) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pt := range parts {
		if pt.m != nil {
			c.unrefLocked(pt.m)
		}
	}
}

// plan decides where each chunk of [off, end) is served from, starting the fetches of missing
// chunks, and takes a reference to each chunk in memory (serveParts releases them). When the
// memory budget has no room for a missing chunk, room is the channel to wait on before
// planning again (the caller releases the parts first).
func (c *Cache) plan(src Source, obj Object, off, end int64) (parts []part, room <-chan struct{}) {
	cs := c.opts.ChunkSize
	parts = make([]part, 0, 2)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := off / cs; i <= (end-1)/cs; i++ {
		k := c.chunkKey(obj, i)
		pt := part{k: k, lo: max(off, k.off()), hi: min(end, k.off()+k.length(obj.Size))}
		switch m := c.mem[k]; {
		case m != nil:
			pt.m = m
			if m.state == stFetching {
				c.misses.Add(1)
			} else {
				c.hits.Add(1)
			}
		case c.lru.Contains(k) || c.busy[k] > 0:
			pt.disk = true
		default:
			pt.m = c.startFetchLocked(src, obj, k, true)
			if pt.m == nil && !c.closed {
				room = c.roomWake
			}
			c.misses.Add(1)
		}
		if pt.m != nil {
			pt.m.refs++
		}
		parts = append(parts, pt)
	}
	return parts, room
}

// serveParts waits for the parts of a read and returns them as a Span (spanOK) or copies them
// into p. Every reference plan took is released here, or by the returned Span's Close.
func (c *Cache) serveParts(ctx context.Context, src Source, obj Object, p []byte, off int64, parts []part, spanOK bool, waited *bool) (sp *Span, err error) {
	held := make([]memPiece, 0, len(parts))
	for _, pt := range parts {
		if pt.m != nil {
			// The last bytes of an object of several chunks wait for their chunk's fetch to
			// end, so that its CRC is counted before the read's end check (checkEnd).
			final := pt.hi == obj.Size && obj.HasCRC32C && obj.Size > c.opts.ChunkSize
			held = append(held, memPiece{m: pt.m, lo: pt.lo - pt.k.off(), hi: pt.hi - pt.k.off(), final: final})
		}
	}
	defer func() {
		if sp == nil || sp.f != nil {
			c.releasePieces(held)
		}
	}()
	onDisk := len(held) == 0
	for _, pt := range parts {
		onDisk = onDisk && pt.disk
	}
	if onDisk && spanOK && diskSize(c.opts.ChunkSize) <= c.opts.MaxBytes {
		if sp, err := c.spanRange(ctx, src, obj, off, parts[len(parts)-1].hi); err != nil || sp != nil {
			return sp, err
		}
	}
	vecs := make([][]byte, 0, len(parts))
	next := 0 // the next of held
	for _, pt := range parts {
		dst := p[pt.lo-off : pt.hi-off]
		var err error
		switch {
		case pt.m != nil:
			piece := held[next]
			next++
			if err = c.waitBytes(ctx, piece, waited); err == nil {
				if spanOK {
					vecs = append(vecs, piece.bytes())
				} else {
					copy(dst, piece.bytes())
				}
				continue
			}
		case pt.disk:
			err = c.readUnit(ctx, src, obj, pt.k, dst, pt.lo-pt.k.off())
		default:
			err = c.readDirect(ctx, src, obj, pt.lo, dst)
		}
		if err != nil {
			return nil, err
		}
		vecs = append(vecs, dst)
	}
	if !spanOK {
		return nil, nil
	}
	n := 0
	for _, v := range vecs {
		n += len(v)
	}
	return &Span{vecs: vecs, n: n, c: c, pieces: held}, nil
}

// waitBytes waits until the bytes of piece may be served: they have arrived (for a chunk that
// is the whole object, they have passed the CRC check too). The caller holds a reference on
// the chunk. A failed fetch returns its error; a chunk dropped because its generation failed
// its check returns errGone. *waited (when waited is not nil) is set if it had to wait.
func (c *Cache) waitBytes(ctx context.Context, piece memPiece, waited *bool) error {
	m := piece.m
	c.mu.Lock()
	for {
		if m.state == stFailed {
			err := m.err
			c.mu.Unlock()
			return err
		}
		if m.state == stAbsent || c.genEpoch[m.k.object()] != m.epoch {
			c.mu.Unlock()
			return errGone
		}
		if m.state.readable(m.whole) && m.arrivedLocked(piece.lo, piece.hi) && !(piece.final && m.state == stFetching) {
			break
		}
		ch := m.wake
		m.waiters++
		c.mu.Unlock()
		if waited != nil {
			*waited = true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			c.mu.Lock()
			m.waiters--
			c.mu.Unlock()
			return ctx.Err()
		}
		c.mu.Lock()
		m.waiters--
	}
	c.memTick++
	m.used = c.memTick
	if piece.hi == m.n {
		m.consumed = true
	}
	c.mu.Unlock()
	c.memHits.Add(1)
	return nil
}

// Span is the reply to a read, without a copy: either a range of cached bytes in an object's
// data file (Fd, Off, Len: for splice), held there until Close (the object's io lock is held
// shared), or bytes in memory (Vecs), held until Close.
type Span struct {
	// A range of the data file.
	f   *os.File
	off int64
	o   *objState
	// Bytes in memory: slices of chunk buffers (and of the caller's buffer).
	vecs   [][]byte
	pieces []memPiece
	c      *Cache

	n int
}

// Fd, Off and Len locate the bytes of a file span: Len bytes at offset Off of the file Fd.
func (s *Span) Fd() uintptr { return s.f.Fd() }
func (s *Span) Off() int64  { return s.off }
func (s *Span) Len() int    { return s.n }

// Vecs returns the bytes of a memory span, in order, or nil for a file span. They stay valid
// until Close.
func (s *Span) Vecs() [][]byte { return s.vecs }

// Close releases the span; call it once the bytes were sent.
func (s *Span) Close() {
	if s.f != nil {
		s.f.Close()
		s.o.io.RUnlock()
		return
	}
	s.c.releasePieces(s.pieces)
	s.pieces = nil
}

// spanRange returns the Span of bytes [off, end) of obj, fetching the chunks they lie in first
// if need be (a read may straddle two chunks: they are contiguous in the data file). It
// returns nil, nil when a chunk keeps being released before all can be held (the caller then
// reads a copy).
func (c *Cache) spanRange(ctx context.Context, src Source, obj Object, off, end int64) (*Span, error) {
	cs := c.opts.ChunkSize
	keys := make([]key, 0, 2)
	for i := off / cs; i <= (end-1)/cs; i++ {
		keys = append(keys, c.chunkKey(obj, i))
	}
	entries := make([]*entry, len(keys))
attempts:
	for range maxAttempts {
		for i, k := range keys {
			e, err := c.entryOf(ctx, src, obj, k)
			if errors.Is(err, errGone) {
				continue attempts
			}
			if err != nil {
				return nil, err
			}
			entries[i] = e
		}
		o := entries[0].obj
		o.io.RLock()
		held := true
		c.mu.Lock()
		for i, k := range keys {
			if cur, ok := c.lru.Peek(k); !ok || cur != entries[i] || cur.obj != o {
				held = false
			}
		}
		c.mu.Unlock()
		if !held {
			o.io.RUnlock()
			continue
		}
		f, err := o.openData(os.O_RDONLY)
		if err != nil {
			o.io.RUnlock()
			c.dropObject(o, err)
			continue
		}
		return &Span{f: f, off: off, n: int(end - off), o: o}, nil
	}
	return nil, nil
}

func (c *Cache) chunkKey(obj Object, index int64) key {
	return key{Bucket: obj.Bucket, Name: obj.Name, Gen: obj.Generation, Unit: c.opts.ChunkSize, Index: index}
}

// readRandom serves a non-sequential read within chunk ck, following opts.randomPolicy: from
// the chunk when it (or the chunk before it) is cached or being fetched, or is the whole
// object, otherwise from small blocks.
func (c *Cache) readRandom(ctx context.Context, src Source, obj Object, ck key, buf []byte, pos int64) error {
	bs := c.opts.blockSize
	if c.opts.randomPolicy == policyChunk || c.opts.VerifyReads || ck.length(obj.Size) <= 2*bs ||
		obj.HasCRC32C && obj.Size <= c.opts.ChunkSize {
		// (Under VerifyReads blocks are never used: only whole chunks can be checked. An object
		// of one chunk is always fetched whole, so that it is checked before a byte is served.)
		return c.readChunkCopy(ctx, src, obj, buf, pos)
	}
	b0, b1 := pos/bs, (pos+int64(len(buf))-1)/bs
	c.mu.Lock()
	// The whole chunk serves the read when it is cached or on its way, and also when the chunk
	// before it is: the read then most likely continues a sequential reader the stream table
	// lost track of (more concurrent readers than maxStreams), and blocks would fetch its
	// bytes twice.
	prev := ck
	prev.Index--
	useChunk := c.lru.Contains(ck) || c.busy[ck] > 0 || c.mem[ck] != nil ||
		(prev.Index >= 0 && (c.lru.Contains(prev) || c.busy[prev] > 0 || c.mem[prev] != nil))
	escalate := false
	if !useChunk && c.opts.randomPolicy == policyAdaptive {
		have := 0
		for i := ck.off() / bs; i*bs < ck.off()+ck.length(obj.Size); i++ {
			if bk := (key{Bucket: obj.Bucket, Name: obj.Name, Gen: obj.Generation, Unit: bs, Index: i}); c.lru.Contains(bk) || c.busy[bk] > 0 {
				have++
			}
		}
		escalate = have >= escalateAfter
	}
	c.mu.Unlock()
	if useChunk {
		return c.readChunkCopy(ctx, src, obj, buf, pos)
	}
	if escalate {
		c.prefetch(src, obj, ck.Index, 1)
	}
	blockKey := func(i int64) key {
		return key{Bucket: obj.Bucket, Name: obj.Name, Gen: obj.Generation, Unit: bs, Index: i}
	}
	if b0 == b1 {
		return c.readUnit(ctx, src, obj, blockKey(b0), buf, pos-b0*bs)
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := b0; i <= b1; i++ {
		k := blockKey(i)
		lo, hi := max(k.off(), pos), min(k.off()+bs, pos+int64(len(buf)))
		part := buf[lo-pos : hi-pos]
		g.Go(func() error { return c.readUnit(gctx, src, obj, k, part, lo-k.off()) })
	}
	return g.Wait()
}

// readChunkCopy copies bytes [pos, pos+len(buf)) of obj, all in one chunk, into buf through the
// chunk read path (memory, data file, or a fetch into memory), without prefetch.
func (c *Cache) readChunkCopy(ctx context.Context, src Source, obj Object, buf []byte, pos int64) error {
	_, err := c.readChunks(ctx, src, obj, buf, pos, pos+int64(len(buf)), false, 0, nil)
	return err
}

// readUnit copies bytes [off, off+len(buf)) of unit k into buf, from the object's data file or,
// on a miss, after the unit's shared fetch (which writes the unit to the data file first: the
// path of random-read blocks, and of chunks found cached).
func (c *Cache) readUnit(ctx context.Context, src Source, obj Object, k key, buf []byte, off int64) error {
	if diskSize(k.length(obj.Size)) > c.opts.MaxBytes {
		// Never fits: serve it uncached rather than evicting everything for nothing.
		return c.readDirect(ctx, src, obj, k.off()+off, buf)
	}
	for range maxAttempts {
		if k.Unit == c.opts.ChunkSize {
			// A chunk that is no longer cached (evicted, or dropped as damaged just now) is
			// fetched the way every chunk is, into memory: its readers then share one fetch
			// with the readers that come through plan. (One being filled to disk is joined.)
			c.mu.Lock()
			gone := !c.lru.Contains(k) && c.busy[k] == 0
			c.mu.Unlock()
			if gone {
				_, err := c.readChunks(ctx, src, obj, buf, k.off()+off, k.off()+off+int64(len(buf)), false, 0, nil)
				return err
			}
		}
		e, err := c.entryOf(ctx, src, obj, k)
		if errors.Is(err, errGone) {
			continue
		}
		if err != nil {
			return err
		}
		if c.readEntry(k, e, buf, off) {
			return nil
		}
		// Released (or found damaged) before we read it: look again.
	}
	// The cache is thrashing (units evicted between fetch and read): stay correct, uncached.
	return c.readDirect(ctx, src, obj, k.off()+off, buf)
}

// entryOf returns the entry of unit k: the indexed one (its checksum verified first if it was
// re-indexed at Open), or, on a miss, the one its shared fetch indexes. errGone means the
// unit was found damaged or released meanwhile: look again.
func (c *Cache) entryOf(ctx context.Context, src Source, obj Object, k key) (*entry, error) {
	c.mu.Lock()
	e, ok := c.lru.Get(k)
	verified := ok && e.verified
	filling := c.busy[k] > 0
	c.mu.Unlock()
	if !ok && k.Unit == c.opts.ChunkSize && !filling {
		// A chunk that went (dropped as damaged, evicted) since the caller found it cached is
		// fetched the way every chunk is, into memory, where its readers share one fetch:
		// filling it to disk here too fetched it twice (TestCrashDuringReads).
		return nil, errGone
	}
	if !ok {
		c.misses.Add(1)
		return c.fetch(ctx, src, obj, k)
	}
	if !verified {
		if err := c.verify(ctx, k, e); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, errGone
		}
	}
	c.hits.Add(1)
	return e, nil
}

// readEntry reads from unit k indexed as e, reporting false when it was released meanwhile or
// its data file turned out damaged (then the whole object is dropped).
func (c *Cache) readEntry(k key, e *entry, buf []byte, off int64) bool {
	err := c.readUnitBytes(e.obj, k, e, buf, off)
	if err != nil && !errors.Is(err, errGone) {
		c.dropObject(e.obj, err)
	}
	return err == nil
}

var errDamaged = errors.New("damaged cache file")

// drop unindexes k if it is still indexed as e (a newer fill is left alone) and releases it.
func (c *Cache) drop(k key, e *entry, why error) {
	c.damaged.Add(1)
	c.log.Warn("cache: dropping damaged cached bytes", "path", e.obj.data, "offset", k.off(), "err", why)
	c.mu.Lock()
	if cur, ok := c.lru.Peek(k); ok && cur == e {
		c.lru.Remove(k)
	}
	doomed := c.takeDoomedLocked()
	c.mu.Unlock()
	c.release(doomed)
}

// verify checks a unit's bytes against its record before their first read back, once, shared
// by all readers: a unit written by this process whose pages never left the page cache passes
// as it is (see settleWritten); any other is read and its CRC compared. A mismatch drops the unit.
func (c *Cache) verify(ctx context.Context, k key, e *entry) error {
	ch := c.flights.DoChan(fmt.Sprintf("v%p", e), func() (any, error) {
		if e.written && c.settleWritten(e.obj, []key{k}, []*entry{e}) == 1 {
			return nil, nil
		}
		crc, err := c.unitCRC(e.obj, k, e)
		if err != nil {
			if !errors.Is(err, errGone) {
				c.dropObject(e.obj, err)
			}
			return nil, err
		}
		if crc != e.crc {
			err := fmt.Errorf("%w: data checksum mismatch", errDamaged)
			c.drop(k, e, err)
			return nil, err
		}
		c.mu.Lock()
		e.verified = true
		c.mu.Unlock()
		return nil, nil
	})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case r := <-ch:
		return r.Err
	}
}

// fetch returns the entry of k, filling it from src unless a fill is already in progress, in
// which case it waits for that one. The fill runs detached from ctx: a waiter whose ctx is
// cancelled returns ctx.Err() while the fill goes on for the others.
func (c *Cache) fetch(ctx context.Context, src Source, obj Object, k key) (*entry, error) {
	ch := c.flights.DoChan(k.flightKey(), func() (any, error) { return c.fill(ctx, src, obj, k) })
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*entry), nil
	}
}

// fill fetches unit k from src into the object's data file and indexes it. It runs inside the
// singleflight call for k, on a context detached from the caller's cancellation, bounded by
// FetchTimeout and cancelled by Close.
func (c *Cache) fill(ctx context.Context, src Source, obj Object, k key) (*entry, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	// A previous fill may have finished between the caller's lookup and this call (singleflight
	// forgets a key once its call returns): look again rather than fetch twice.
	if e, ok := c.lru.Peek(k); ok {
		c.mu.Unlock()
		return e, nil
	}
	c.wg.Add(1)
	c.busy[k]++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.busy[k]--; c.busy[k] <= 0 {
			delete(c.busy, k)
		}
		c.mu.Unlock()
		c.wg.Done()
	}()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.FetchTimeout)
	defer cancel()
	stop := context.AfterFunc(c.baseCtx, cancel)
	defer stop()

	n := k.length(obj.Size)
	c.mu.Lock()
	want, checked := c.expectedLocked(k)
	c.mu.Unlock()
	if k.off() == 0 && n == obj.Size && obj.HasCRC32C {
		want, checked = obj.CRC32C, true // the whole object
	}
	for attempt := 1; ; attempt++ {
		var bad bool
		var got uint32
		e, err := c.fillOnce(fctx, src, obj, k, n, func(crc uint32) bool {
			bad, got = checked && crc != want, crc
			return !bad
		})
		if !bad {
			return e, err
		}
		// Written but never indexed: no byte of it was served.
		c.countMismatch(obj, fmt.Sprintf("unit at %d of %d bytes, attempt %d of %d", k.off(), n, attempt, crcAttempts), got)
		if attempt == crcAttempts {
			return nil, fmt.Errorf("fetch bytes %d-%d: %w", k.off(), k.off()+n-1, ErrChecksum)
		}
	}
}

// fillOnce fetches unit k (n bytes) of obj and stores it, if valid accepts its CRC32C.
func (c *Cache) fillOnce(ctx context.Context, src Source, obj Object, k key, n int64, valid func(crc uint32) bool) (*entry, error) {
	c.fetches.Add(1)
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	rc, err := src.NewRangeReader(ctx, obj.Name, obj.Generation, k.off(), n)
	if err != nil {
		return nil, fmt.Errorf("fetch bytes %d-%d: %w", k.off(), k.off()+n-1, err)
	}
	defer rc.Close()
	e, err := c.store(obj, k, &countingReader{r: rc, n: &c.fetched}, n, valid)
	if err != nil {
		return nil, fmt.Errorf("fetch bytes %d-%d: %w", k.off(), k.off()+n-1, err)
	}
	return e, nil
}

// store writes unit k of obj (n bytes read from body, which must hold exactly n) into the
// object's data file and indexes it, if valid (when set) accepts its CRC32C. Callers run it
// inside the singleflight call for k, so a unit has one writer at a time.
func (c *Cache) store(obj Object, k key, body io.Reader, n int64, valid func(crc uint32) bool) (*entry, error) {
	return c.storeWith(obj, k, n, func(o *objState, seq uint64) (uint32, int, error) {
		return c.writeUnit(o, k, body, n, seq)
	}, valid)
}

// storeBytes is store for a chunk already in memory with its CRC32C (the write-behind): it
// joins a fill of the same unit in progress rather than write it twice, and indexes the unit
// only if valid (called under Cache.mu) still holds once it is written.
func (c *Cache) storeBytes(obj Object, k key, data []byte, crc uint32, valid func(crc uint32) bool) (*entry, error) {
	v, err, _ := c.flights.Do(k.flightKey(), func() (any, error) {
		c.mu.Lock()
		e, ok := c.lru.Peek(k)
		c.mu.Unlock()
		if ok {
			return e, nil
		}
		return c.storeWith(obj, k, int64(len(data)), func(o *objState, seq uint64) (uint32, int, error) {
			epoch, err := c.writeUnitBytes(o, k, data, crc, seq)
			return crc, epoch, err
		}, valid)
	})
	if err != nil {
		return nil, err
	}
	return v.(*entry), nil
}

// storeWith is what store and storeBytes share: the unit's disk space is reserved (evicting
// as needed) before write puts its n bytes and record into o's files, so units being written
// count against MaxBytes too; then the unit is indexed, unless the data file was found
// damaged meanwhile or valid (when set, called under Cache.mu with the unit's CRC32C) says no. A failed write
// releases what it wrote.
func (c *Cache) storeWith(obj Object, k key, n int64, write func(o *objState, seq uint64) (crc uint32, epoch int, err error), valid func(crc uint32) bool) (*entry, error) {
	disk := diskSize(n)
	c.mu.Lock()
	c.reserved += disk
	c.evictLocked()
	doomed := c.takeDoomedLocked()
	o := c.objLocked(obj)
	o.refs++
	c.writing[k]++
	c.mu.Unlock()
	c.release(doomed)

	crc, epoch, err := write(o, c.fillSeq.Add(1))
	c.mu.Lock()
	c.reserved -= disk
	if c.writing[k]--; c.writing[k] <= 0 {
		delete(c.writing, k)
	}
	if err == nil && o.epoch != epoch {
		err = fmt.Errorf("%w: data file found damaged during the write", errDamaged)
	}
	if err == nil && valid != nil && !valid(crc) {
		err = errGone
	}
	if err != nil {
		c.mu.Unlock()
		c.release([]job{{o: o, k: k, own: true}})
		return nil, err
	}
	e := &entry{obj: o, disk: disk, crc: crc, written: true}
	c.insertLocked(k, e) // the entry now holds o's reference
	doomed = c.takeDoomedLocked()
	c.mu.Unlock()
	c.release(doomed)
	return e, nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

type countingReader struct {
	r io.Reader
	n interface{ Add(int64) int64 }
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// readDirect reads buf at off straight from src, uncached, on the caller's context. Bytes of
// an object of at most one chunk are read as the whole object and checked against its CRC32C
// first, as every path checks them (see readWholeDirect).
func (c *Cache) readDirect(ctx context.Context, src Source, obj Object, off int64, buf []byte) error {
	if obj.HasCRC32C && obj.Size <= c.opts.ChunkSize {
		return c.readWholeDirect(ctx, src, obj, off, buf)
	}
	return c.readRangeDirect(ctx, src, obj, off, buf)
}

// readWholeDirect reads the whole of obj into memory, checks it against its CRC32C (fetching
// again up to crcAttempts times) and copies bytes [off, off+len(buf)) into buf.
func (c *Cache) readWholeDirect(ctx context.Context, src Source, obj Object, off int64, buf []byte) error {
	whole := make([]byte, obj.Size)
	for attempt := 1; ; attempt++ {
		if err := c.readRangeDirect(ctx, src, obj, 0, whole); err != nil {
			return err
		}
		got := crc32.Checksum(whole, crc32c.Table)
		if got == obj.CRC32C {
			copy(buf, whole[off:])
			return nil
		}
		c.countMismatch(obj, fmt.Sprintf("whole-object read (uncached), attempt %d of %d", attempt, crcAttempts), got)
		if attempt == crcAttempts {
			return fmt.Errorf("direct read: %w: gs://%s/%s generation %d, %d attempts", ErrChecksum, obj.Bucket, obj.Name, obj.Generation, crcAttempts)
		}
	}
}

// readRangeDirect reads buf at off with one request, uncached and unchecked.
func (c *Cache) readRangeDirect(ctx context.Context, src Source, obj Object, off int64, buf []byte) error {
	n := int64(len(buf))
	c.fetches.Add(1)
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	rc, err := src.NewRangeReader(ctx, obj.Name, obj.Generation, off, n)
	if err != nil {
		return fmt.Errorf("direct read bytes %d-%d: %w", off, off+n-1, err)
	}
	defer rc.Close()
	body := &countingReader{r: rc, n: &c.fetched}
	if got, err := io.ReadFull(body, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("direct read: %w: got %d of %d bytes", ErrShortBody, got, n)
		}
		return fmt.Errorf("direct read bytes %d-%d: %w", off, off+n-1, err)
	}
	var probe [1]byte
	if m, _ := io.ReadFull(body, probe[:]); m > 0 {
		return fmt.Errorf("direct read: %w: more than the %d bytes asked for", ErrLongBody, n)
	}
	return nil
}

// Fill stores the chunks of a just-uploaded generation from a local copy r of its obj.Size
// bytes (write-through, so a reader of the new generation needs no fetch). At most half of
// MaxBytes of one object is stored (its first chunks), so one large upload cannot flush the
// whole cache.
func (c *Cache) Fill(obj Object, r io.ReaderAt) error {
	if obj.Generation <= 0 {
		return fmt.Errorf("cache: fill %s/%s: generation %d is not positive", obj.Bucket, obj.Name, obj.Generation)
	}
	var probe [1]byte
	if m, _ := r.ReadAt(probe[:], obj.Size); m > 0 {
		return fmt.Errorf("cache: fill %s/%s: local copy is longer than the object's %d bytes", obj.Bucket, obj.Name, obj.Size)
	}
	if m, _ := r.ReadAt(probe[:], obj.Size-1); obj.Size > 0 && m == 0 {
		return fmt.Errorf("cache: fill %s/%s: %w: local copy is shorter than the object's %d bytes", obj.Bucket, obj.Name, ErrShortBody, obj.Size)
	}
	var used int64
	for i := int64(0); i*c.opts.ChunkSize < obj.Size; i++ {
		k := c.chunkKey(obj, i)
		n := k.length(obj.Size)
		used += diskSize(n)
		if used > c.opts.MaxBytes/2 {
			break
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		c.wg.Add(1)
		c.mu.Unlock()
		_, err, _ := c.flights.Do(k.flightKey(), func() (any, error) {
			c.mu.Lock()
			e, ok := c.lru.Peek(k)
			c.mu.Unlock()
			if ok {
				return e, nil
			}
			return c.store(obj, k, io.NewSectionReader(r, k.off(), n), n, nil)
		})
		c.wg.Done()
		if err != nil {
			return fmt.Errorf("cache: fill %s/%s gen %d chunk %d: %w", obj.Bucket, obj.Name, obj.Generation, i, err)
		}
	}
	return nil
}
