package cache

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
)

// maxOpenFiles bounds the chunk files kept open between reads (see doc.go "Open files"): the
// current and readahead chunks of a few sequential readers, while a daemon at rest holds only a
// few descriptors more than an idle one (integration's soak test allows 16).
const maxOpenFiles = 12

// handle is an open chunk file, shared by readers and the open-file table. It is closed when its
// last reference goes: the table holds one while the file is indexed and recently used, and
// every read (and every Span) holds one while it uses the descriptor.
type handle struct {
	f    *os.File
	fd   uintptr
	size int64 // the length the chunk file must have (header plus data)
	refs atomic.Int32
}

func (h *handle) release() {
	if h.refs.Add(-1) == 0 {
		h.f.Close()
	}
}

// check reports a chunk file whose length is not the one its header announced (truncated
// while running) as damaged.
func (h *handle) check() error {
	st, err := h.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != h.size {
		return fmt.Errorf("%w: %d bytes, want %d", errDamaged, st.Size(), h.size)
	}
	return nil
}

// onCloseLocked is the open-file table's removal callback (runs under mu): the table's reference
// is released after unlocking, with the other garbage.
func (c *Cache) onCloseLocked(_ string, h *handle) {
	c.unref = append(c.unref, h)
}

// acquire returns the open chunk file of unit k at path (size bytes long), with a reference the
// caller releases. A file opened here enters the open-file table if it is still indexed.
func (c *Cache) acquire(k key, path string, size int64) (*handle, error) {
	c.mu.Lock()
	if h, ok := c.open.Get(path); ok {
		h.refs.Add(1)
		c.mu.Unlock()
		return h, nil
	}
	c.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	h := &handle{f: f, fd: f.Fd(), size: size}
	h.refs.Store(1)
	c.mu.Lock()
	if cur, ok := c.open.Get(path); ok { // another reader opened it meanwhile
		cur.refs.Add(1)
		c.mu.Unlock()
		f.Close()
		return cur, nil
	}
	if e, ok := c.lru.Peek(k); ok && e.path == path && !c.closed {
		h.refs.Add(1) // the table's reference
		c.open.Add(path, h)
	}
	g := c.takeDoomedLocked()
	c.mu.Unlock()
	c.removeFiles(g)
	return h, nil
}

// readChunk reads len(buf) bytes at file offset off of the chunk file of unit k at path, which
// must be exactly size bytes long; a shorter (truncated) or longer file is reported as damaged.
func (c *Cache) readChunk(k key, path string, buf []byte, off, size int64) error {
	h, err := c.acquire(k, path, size)
	if err != nil {
		return err
	}
	defer h.release()
	if err := h.check(); err != nil {
		return err
	}
	if _, err := h.f.ReadAt(buf, off); err != nil {
		return fmt.Errorf("%w: %v", errDamaged, err)
	}
	return nil
}

// Span is a byte range of an object held in one cached chunk file, open until Release. The
// file is immutable: its bytes are the object generation's bytes whatever happens to the cache
// meanwhile (an evicted file stays readable while a Span holds it open).
type Span struct {
	ref *spanRef
	// Off is the range's offset in the file (Fd), Len its length in bytes.
	Off int64
	Len int
}

// spanRef is the reference a Span holds; it is separate from the Span so that a Span dropped
// without Release releases it from a cleanup.
type spanRef struct {
	h    *handle
	done atomic.Bool
}

func (r *spanRef) release() {
	if r.done.CompareAndSwap(false, true) {
		r.h.release()
	}
}

// Fd is the open chunk file's descriptor, valid until Release. Callers must not close it.
func (s *Span) Fd() uintptr { return s.ref.h.fd }

// ReadAt reads the span's bytes (up to len(p)) into p.
func (s *Span) ReadAt(p []byte) (int, error) {
	n := min(len(p), s.Len)
	return s.ref.h.f.ReadAt(p[:n], s.Off)
}

// Release lets the chunk file be closed; it is idempotent. A Span that is dropped without
// Release is released when it is garbage collected.
func (s *Span) Release() { s.ref.release() }

// CachedSpan returns the bytes [off, off+n) of obj (clipped to its size) when they lie within
// one chunk (or one random-read block) that is cached and verified, without reading them: the
// caller hands the file range to the kernel (zero-copy) and calls Release when done. ok is false
// when the range is not fully cached in one file, the file is not yet verified after a restart,
// or it is found damaged (it is then dropped): ReadAt serves such reads. A hit counts as a read
// for sequential-reader tracking and readahead, which fetches from src.
func (c *Cache) CachedSpan(src Source, obj Object, off int64, n int) (*Span, bool) {
	if c.isClosed.Load() || obj.Generation <= 0 || off < 0 || n <= 0 || off >= obj.Size {
		return nil, false
	}
	end := min(off+int64(n), obj.Size)
	cs, bs := c.opts.ChunkSize, c.opts.blockSize
	var k key
	var e entry
	found := false
	if off/cs == (end-1)/cs {
		k = c.chunkKey(obj, off/cs)
		e, found = c.lookupVerified(k)
	}
	if !found && off/bs == (end-1)/bs {
		k = key{Bucket: obj.Bucket, Name: obj.Name, Gen: obj.Generation, Unit: bs, Index: off / bs}
		e, found = c.lookupVerified(k)
	}
	if !found {
		return nil, false
	}
	hs := header{key: k}.size()
	h, err := c.acquire(k, e.path, hs+e.dataLen)
	if err != nil {
		c.drop(k, e.path, err)
		return nil, false
	}
	if err := h.check(); err != nil {
		h.release()
		c.drop(k, e.path, err)
		return nil, false
	}
	c.hits.Add(1)
	if _, ahead := c.observe(obj, off, end); ahead && c.opts.Readahead > 0 {
		c.readahead(src, obj, (end-1)/cs+1, c.opts.Readahead)
	}
	ref := &spanRef{h: h}
	s := &Span{ref: ref, Off: hs + off - k.off(), Len: int(end - off)}
	runtime.AddCleanup(s, func(r *spanRef) { r.release() }, ref)
	return s, true
}

// lookupVerified returns the indexed entry of k (marking it recently used) if its data checksum
// has been verified.
func (c *Cache) lookupVerified(k key) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(k)
	if !ok || !e.verified {
		return entry{}, false
	}
	return *e, true
}
