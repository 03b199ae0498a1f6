package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"

	"golang.org/x/sync/errgroup"
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
	seq, ahead := c.observe(obj, off, end)
	cs := c.opts.ChunkSize
	if ahead && c.opts.Readahead > 0 {
		c.readahead(src, obj, (end-1)/cs+1, c.opts.Readahead)
	}
	if spanOK && seq && diskSize(cs) <= c.opts.MaxBytes {
		sp, err := c.spanRange(ctx, src, obj, off, end)
		if err != nil {
			return nil, 0, fmt.Errorf("cache: read %s/%s gen %d at %d: %w", obj.Bucket, obj.Name, obj.Generation, off, err)
		}
		if sp != nil {
			return sp, int(end - off), nil
		}
	}
	n := 0
	for pos := off; pos < end; {
		k := c.chunkKey(obj, pos/cs)
		uend := min(k.off()+k.length(obj.Size), end)
		buf := p[pos-off : uend-off]
		var err error
		if seq {
			err = c.readUnit(ctx, src, obj, k, buf, pos-k.off())
		} else {
			err = c.readRandom(ctx, src, obj, k, buf, pos)
		}
		if err != nil {
			return nil, n, fmt.Errorf("cache: read %s/%s gen %d at %d: %w", obj.Bucket, obj.Name, obj.Generation, pos, err)
		}
		n += len(buf)
		pos = uend
	}
	if n < len(p) {
		return nil, n, io.EOF
	}
	return nil, n, nil
}

// Span is a range of cached bytes in an object's data file, for a zero-copy reply. Until
// Close the bytes stay there: the object's io lock is held shared.
type Span struct {
	f   *os.File
	off int64
	n   int
	o   *objState
}

// Fd, Off and Len locate the bytes: Len bytes at offset Off of the file Fd.
func (s *Span) Fd() uintptr { return s.f.Fd() }
func (s *Span) Off() int64  { return s.off }
func (s *Span) Len() int    { return s.n }

// Close releases the span; call it once the bytes were sent.
func (s *Span) Close() {
	s.f.Close()
	s.o.io.RUnlock()
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
// the chunk when it (or the chunk before it) is cached or being fetched, otherwise from small
// blocks.
func (c *Cache) readRandom(ctx context.Context, src Source, obj Object, ck key, buf []byte, pos int64) error {
	bs := c.opts.blockSize
	if c.opts.randomPolicy == policyChunk || ck.length(obj.Size) <= 2*bs {
		return c.readUnit(ctx, src, obj, ck, buf, pos-ck.off())
	}
	b0, b1 := pos/bs, (pos+int64(len(buf))-1)/bs
	c.mu.Lock()
	// The whole chunk serves the read when it is cached or on its way, and also when the chunk
	// before it is: the read then most likely continues a sequential reader the stream table
	// lost track of (more concurrent readers than maxStreams), and blocks would fetch its
	// bytes twice.
	prev := ck
	prev.Index--
	useChunk := c.lru.Contains(ck) || c.busy[ck] > 0 ||
		(prev.Index >= 0 && (c.lru.Contains(prev) || c.busy[prev] > 0))
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
		return c.readUnit(ctx, src, obj, ck, buf, pos-ck.off())
	}
	if escalate {
		c.readahead(src, obj, ck.Index, 1)
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

// readUnit copies bytes [off, off+len(buf)) of unit k into buf, from the object's data file or,
// on a miss, after the unit's shared fetch.
func (c *Cache) readUnit(ctx context.Context, src Source, obj Object, k key, buf []byte, off int64) error {
	if diskSize(k.length(obj.Size)) > c.opts.MaxBytes {
		// Never fits: serve it uncached rather than evicting everything for nothing.
		return c.readDirect(ctx, src, obj, k.off()+off, buf)
	}
	for range maxAttempts {
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
	c.mu.Unlock()
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

// verify checks the data checksum of a unit indexed at Open, once, shared by all readers. A
// mismatch drops the unit.
func (c *Cache) verify(ctx context.Context, k key, e *entry) error {
	ch := c.flights.DoChan(fmt.Sprintf("v%p", e), func() (any, error) {
		buf := make([]byte, k.length(e.obj.hdr.size))
		if err := c.readUnitBytes(e.obj, k, e, buf, 0); err != nil {
			if !errors.Is(err, errGone) {
				c.dropObject(e.obj, err)
			}
			return nil, err
		}
		if crc32.Checksum(buf, castagnoli) != e.crc {
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
	c.fetches.Add(1)
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	rc, err := src.NewRangeReader(fctx, obj.Name, obj.Generation, k.off(), n)
	if err != nil {
		return nil, fmt.Errorf("fetch bytes %d-%d: %w", k.off(), k.off()+n-1, err)
	}
	defer rc.Close()
	e, err := c.store(obj, k, &countingReader{r: rc, n: &c.fetched}, n)
	if err != nil {
		return nil, fmt.Errorf("fetch bytes %d-%d: %w", k.off(), k.off()+n-1, err)
	}
	return e, nil
}

// store writes unit k of obj (n bytes read from body, which must hold exactly n) into the
// object's data file and indexes it. Its disk space is reserved (evicting as needed) before
// writing, so units being written count against MaxBytes too. Callers run it inside the
// singleflight call for k, so a unit has one writer at a time; a failed write releases what it
// wrote.
func (c *Cache) store(obj Object, k key, body io.Reader, n int64) (*entry, error) {
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

	crc, epoch, err := c.writeUnit(o, k, body, n, c.fillSeq.Add(1))
	c.mu.Lock()
	c.reserved -= disk
	if c.writing[k]--; c.writing[k] <= 0 {
		delete(c.writing, k)
	}
	if err == nil && o.epoch != epoch {
		err = fmt.Errorf("%w: data file found damaged during the write", errDamaged)
	}
	if err != nil {
		c.mu.Unlock()
		c.release([]job{{o: o, k: k, own: true}})
		return nil, err
	}
	e := &entry{obj: o, disk: disk, crc: crc, verified: true}
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

// readDirect reads buf at off straight from src, uncached, on the caller's context.
func (c *Cache) readDirect(ctx context.Context, src Source, obj Object, off int64, buf []byte) error {
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

// readahead starts background fetches of up to depth chunks of obj from chunk index from on,
// skipping chunks that are cached or already being fetched. The global semaphore bounds
// background fetches; when it is exhausted the rest are skipped, not queued (the reader will
// fetch them on demand, and its next read tries again).
func (c *Cache) readahead(src Source, obj Object, from int64, depth int) {
	last := (obj.Size - 1) / c.opts.ChunkSize
	for i := from; i <= last && i < from+int64(depth); i++ {
		k := c.chunkKey(obj, i)
		if diskSize(k.length(obj.Size)) > c.opts.MaxBytes {
			return
		}
		c.mu.Lock()
		if c.closed || c.busy[k] > 0 || c.lru.Contains(k) {
			c.mu.Unlock()
			continue
		}
		if !c.bgSem.TryAcquire(1) {
			c.mu.Unlock()
			return
		}
		c.busy[k]++
		c.wg.Add(1)
		c.mu.Unlock()
		c.readaheads.Add(1)
		go func() {
			defer c.wg.Done()
			defer c.bgSem.Release(1)
			_, err := c.fetch(c.baseCtx, src, obj, k)
			c.mu.Lock()
			if c.busy[k]--; c.busy[k] <= 0 {
				delete(c.busy, k)
			}
			c.mu.Unlock()
			if err != nil && c.baseCtx.Err() == nil {
				c.log.Warn("cache: readahead failed", "bucket", obj.Bucket, "object", obj.Name,
					"generation", obj.Generation, "chunk", i, "err", err)
			}
		}()
	}
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
			return c.store(obj, k, io.NewSectionReader(r, k.off(), n), n)
		})
		c.wg.Done()
		if err != nil {
			return fmt.Errorf("cache: fill %s/%s gen %d chunk %d: %w", obj.Bucket, obj.Name, obj.Generation, i, err)
		}
	}
	return nil
}
