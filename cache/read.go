package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sync/errgroup"
)

// ReadAt reads len(p) bytes of obj at off through the cache, with io.ReaderAt semantics: it
// returns fewer bytes only at the end of the object, together with io.EOF (an offset at or past
// the end reads nothing and returns io.EOF). Bytes come from chunk files; missing ones are
// fetched from src, once however many readers want them.
func (c *Cache) ReadAt(ctx context.Context, src Source, obj Object, p []byte, off int64) (int, error) {
	if c.isClosed.Load() {
		return 0, ErrClosed
	}
	if obj.Generation <= 0 {
		return 0, fmt.Errorf("cache: read %s/%s: generation %d is not positive", obj.Bucket, obj.Name, obj.Generation)
	}
	if off < 0 {
		return 0, fmt.Errorf("cache: read %s/%s: negative offset %d", obj.Bucket, obj.Name, off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= obj.Size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), obj.Size)
	seq, ahead := c.observe(obj, off, end)
	cs := c.opts.ChunkSize
	if ahead && c.opts.Readahead > 0 {
		c.readahead(src, obj, (end-1)/cs+1, c.opts.Readahead)
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
			return n, fmt.Errorf("cache: read %s/%s gen %d at %d: %w", obj.Bucket, obj.Name, obj.Generation, pos, err)
		}
		n += len(buf)
		pos = uend
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
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

// readUnit copies bytes [off, off+len(buf)) of unit k into buf, from its chunk file or, on a
// miss, after the unit's shared fetch.
func (c *Cache) readUnit(ctx context.Context, src Source, obj Object, k key, buf []byte, off int64) error {
	n := k.length(obj.Size)
	hs := header{key: k}.size()
	if diskSize(hs+n) > c.opts.MaxBytes {
		// Never fits: serve it uncached rather than evicting everything for nothing.
		return c.readDirect(ctx, src, obj, k.off()+off, buf)
	}
	for range maxAttempts {
		c.mu.Lock()
		e, ok := c.lru.Get(k)
		var snap entry
		if ok {
			snap = *e
		}
		c.mu.Unlock()
		if ok {
			if !snap.verified {
				if err := c.verify(ctx, k, snap); err != nil {
					if ctx.Err() != nil {
						return err
					}
					continue
				}
			}
			err := readFile(snap.path, buf, hs+off, hs+n)
			if err == nil {
				c.hits.Add(1)
				return nil
			}
			c.drop(k, snap.path, err)
			continue
		}
		c.misses.Add(1)
		got, err := c.fetch(ctx, src, obj, k)
		if err != nil {
			return err
		}
		if err := readFile(got.path, buf, hs+off, hs+n); err != nil {
			c.drop(k, got.path, err)
			continue // evicted (or damaged) before we read it: look again
		}
		return nil
	}
	// The cache is thrashing (units evicted between fetch and read): stay correct, uncached.
	return c.readDirect(ctx, src, obj, k.off()+off, buf)
}

// readFile reads len(buf) bytes at file offset off of the chunk file path, which must be exactly
// size bytes long; a shorter (truncated) or longer file is reported as damaged.
func readFile(path string, buf []byte, off, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != size {
		return fmt.Errorf("%w: %d bytes, want %d", errDamaged, st.Size(), size)
	}
	if _, err := f.ReadAt(buf, off); err != nil {
		return fmt.Errorf("%w: %v", errDamaged, err)
	}
	return nil
}

var errDamaged = errors.New("damaged chunk file")

// drop unindexes k if it still points at path (a newer fill is left alone) and removes the file.
func (c *Cache) drop(k key, path string, why error) {
	if !errors.Is(why, os.ErrNotExist) {
		c.damaged.Add(1)
		c.log.Warn("cache: dropping damaged chunk file", "path", path, "err", why)
	}
	c.mu.Lock()
	if e, ok := c.lru.Peek(k); ok && e.path == path {
		c.lru.Remove(k)
	}
	doomed := c.takeDoomedLocked()
	c.mu.Unlock()
	c.removeFiles(doomed)
}

// verify checks the data checksum of a chunk file indexed at Open, once, shared by all readers.
// A mismatch drops the file.
func (c *Cache) verify(ctx context.Context, k key, e entry) error {
	ch := c.flights.DoChan("v"+e.path, func() (any, error) {
		err := verifyFile(e.path, k)
		if err != nil {
			c.drop(k, e.path, err)
			return nil, err
		}
		c.mu.Lock()
		if cur, ok := c.lru.Peek(k); ok && cur.path == e.path {
			cur.verified = true
		}
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

func verifyFile(path string, k key) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := readHeader(f)
	if err != nil {
		return err
	}
	if h.key != k {
		return fmt.Errorf("%w: header names another chunk", errDamaged)
	}
	crc := crc32.New(castagnoli)
	n, err := io.Copy(crc, io.NewSectionReader(f, h.size(), h.dataLen+1))
	if err != nil {
		return err
	}
	if n != h.dataLen || crc.Sum32() != h.dataCRC {
		return fmt.Errorf("%w: data checksum mismatch", errDamaged)
	}
	return nil
}

// fetch returns the chunk file of k, filling it from src unless a fill is already in progress,
// in which case it waits for that one. The fill runs detached from ctx: a waiter whose ctx is
// cancelled returns ctx.Err() while the fill goes on for the others.
func (c *Cache) fetch(ctx context.Context, src Source, obj Object, k key) (entry, error) {
	ch := c.flights.DoChan(k.flightKey(), func() (any, error) { return c.fill(ctx, src, obj, k) })
	select {
	case <-ctx.Done():
		return entry{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return entry{}, r.Err
		}
		return r.Val.(entry), nil
	}
}

// fill fetches unit k from src into a new chunk file and indexes it. It runs inside the
// singleflight call for k, on a context detached from the caller's cancellation, bounded by
// FetchTimeout and cancelled by Close.
func (c *Cache) fill(ctx context.Context, src Source, obj Object, k key) (entry, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return entry{}, ErrClosed
	}
	// A previous fill may have finished between the caller's lookup and this call (singleflight
	// forgets a key once its call returns): look again rather than fetch twice.
	if e, ok := c.lru.Peek(k); ok {
		snap := *e
		c.mu.Unlock()
		return snap, nil
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
		return entry{}, fmt.Errorf("fetch bytes %d-%d: %w", k.off(), k.off()+n-1, err)
	}
	defer rc.Close()
	e, err := c.store(k, &countingReader{r: rc, n: &c.fetched}, n)
	if err != nil {
		return entry{}, fmt.Errorf("fetch bytes %d-%d: %w", k.off(), k.off()+n-1, err)
	}
	return e, nil
}

// store writes unit k (n bytes read from body, which must hold exactly n) to a temp file, renames
// it to its unique chunk path and indexes it. Its disk space is reserved (evicting as needed)
// before writing, so chunk files in progress count against MaxBytes too.
func (c *Cache) store(k key, body io.Reader, n int64) (entry, error) {
	h := header{key: k, dataLen: n}
	hs := h.size()
	disk := diskSize(hs + n)
	c.mu.Lock()
	c.reserved += disk
	c.evictLocked()
	doomed := c.takeDoomedLocked()
	c.mu.Unlock()
	c.removeFiles(doomed)
	committed := false
	defer func() {
		if !committed {
			c.mu.Lock()
			c.reserved -= disk
			c.mu.Unlock()
		}
	}()

	id := k.id()
	dir := filepath.Join(c.root, layoutVersion, id[:2])
	f, err := os.CreateTemp(dir, "tmp-*")
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.CreateTemp(dir, "tmp-*")
		}
	}
	if err != nil {
		return entry{}, fmt.Errorf("create chunk file: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Seek(hs, io.SeekStart); err != nil {
		return entry{}, fmt.Errorf("write chunk file: %w", err)
	}
	crc := crc32.New(castagnoli)
	bufp := copyBufs.Get().(*[]byte)
	got, err := io.CopyBuffer(io.MultiWriter(f, crc), io.LimitReader(body, n), *bufp)
	copyBufs.Put(bufp)
	if err != nil {
		return entry{}, fmt.Errorf("copy %d bytes: %w", n, err)
	}
	if got < n {
		return entry{}, fmt.Errorf("%w: got %d of %d bytes", ErrShortBody, got, n)
	}
	var probe [1]byte
	if m, err := io.ReadFull(body, probe[:]); m > 0 {
		return entry{}, fmt.Errorf("%w: more than the %d bytes asked for", ErrLongBody, n)
	} else if err != io.EOF {
		return entry{}, fmt.Errorf("read past %d bytes: %w", n, err)
	}
	h.dataCRC = crc.Sum32()
	if _, err := f.WriteAt(h.encode(), 0); err != nil {
		return entry{}, fmt.Errorf("write chunk header: %w", err)
	}
	if err := f.Close(); err != nil {
		return entry{}, fmt.Errorf("close chunk file: %w", err)
	}
	path := chunkPath(c.root, k, c.fillSeq.Add(1))
	if err := os.Rename(tmp, path); err != nil {
		return entry{}, fmt.Errorf("rename chunk file: %w", err)
	}
	ok = true
	e := &entry{path: path, dataLen: n, disk: disk, verified: true}
	c.mu.Lock()
	c.reserved -= disk
	committed = true
	c.insertLocked(k, e)
	doomed = c.takeDoomedLocked()
	c.mu.Unlock()
	c.removeFiles(doomed)
	return *e, nil
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
		if diskSize(header{key: k}.size()+k.length(obj.Size)) > c.opts.MaxBytes {
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
	var used int64
	for i := int64(0); i*c.opts.ChunkSize < obj.Size; i++ {
		k := c.chunkKey(obj, i)
		n := k.length(obj.Size)
		used += diskSize(header{key: k}.size() + n)
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
		_, err := c.store(k, io.NewSectionReader(r, k.off(), n), n)
		c.wg.Done()
		if err != nil {
			return fmt.Errorf("cache: fill %s/%s gen %d chunk %d: %w", obj.Bucket, obj.Name, obj.Generation, i, err)
		}
	}
	return nil
}
