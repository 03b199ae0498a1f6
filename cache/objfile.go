package cache

import (
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/internal/crc32c"
)

// objState is one cached object generation on disk: its data file (the object's bytes at their
// own offsets, holes where nothing is cached) and its index file (header and unit records).
type objState struct {
	id        objectID
	hdr       header
	data, idx string // paths

	// Guarded by Cache.mu.
	units    int   // units indexed; while > 0 the index file is accounted in Cache.bytes
	refs     int   // units indexed, being written, or unindexed and not yet released
	pins     int   // open Whole views
	checking bool  // checkUnits is checking its units for OpenWhole
	deferred []job // releases postponed while pinned
	epoch    int   // bumped when the data file is found damaged: writes begun before are void

	// io orders file I/O on this object: reads of cached bytes and the writes of fills hold it
	// shared; releasing a unit (clearing its record, punching its bytes) and removing the files
	// hold it exclusively. A reader therefore never sees a range punched under it.
	io sync.RWMutex

	// initMu guards ready: the files exist with this header (set on first write, cleared when
	// the files are removed).
	initMu sync.Mutex
	ready  bool
}

// job releases unit k of o: its record is cleared and its bytes punched out of the data file,
// except the parts other indexed or in-progress units still cover. own marks the release of a
// failed write by the unit's only writer (singleflight), which must not count itself as busy.
type job struct {
	o   *objState
	k   key
	own bool
}

// objLocked returns the state of obj's generation, creating it (without files) if needed.
func (c *Cache) objLocked(obj Object) *objState {
	id := objectID{obj.Bucket, obj.Name, obj.Generation}
	if o, ok := c.objs[id]; ok {
		return o
	}
	o := &objState{id: id, hdr: header{obj: id, size: obj.Size, chunk: c.opts.ChunkSize, blk: c.opts.blockSize}}
	o.data, o.idx = objectPaths(c.root, id.fileID())
	c.objs[id] = o
	return o
}

// ensure creates o's files if they do not exist yet: the data file at the object's size (all
// hole) and the index file with its header and empty records. Callers hold o.io shared.
func (o *objState) ensure() error {
	o.initMu.Lock()
	defer o.initMu.Unlock()
	if o.ready {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(o.data), 0o700); err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	ix, err := os.OpenFile(o.idx, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create index file: %w", err)
	}
	defer ix.Close()
	if _, err := ix.WriteAt(o.hdr.encode(), 0); err != nil {
		return fmt.Errorf("write index file: %w", err)
	}
	if err := ix.Truncate(o.hdr.len() + o.hdr.slots()*recordLen); err != nil {
		return fmt.Errorf("write index file: %w", err)
	}
	d, err := os.OpenFile(o.data, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create data file: %w", err)
	}
	defer d.Close()
	if err := d.Truncate(o.hdr.size); err != nil {
		return fmt.Errorf("size data file: %w", err)
	}
	o.ready = true
	return nil
}

// openData opens o's data file and checks that it still has the object's size: a data file
// of another length was damaged outside plxfs, and then none of its units can be trusted.
func (o *objState) openData(flag int) (*os.File, error) {
	f, err := os.OpenFile(o.data, flag, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && st.Size() != o.hdr.size {
		err = fmt.Errorf("%w: data file has %d bytes, want %d", errDamaged, st.Size(), o.hdr.size)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openForWrite opens o's data file for a unit write, creating the files if need be, and
// returns it with o's epoch at that time. A data file found damaged (of the wrong length) is
// dropped with all its units and truncated back to the object's size.
func (c *Cache) openForWrite(o *objState) (*os.File, int, error) {
	o.io.RLock()
	err := o.ensure()
	var f *os.File
	if err == nil {
		f, err = o.openData(os.O_WRONLY)
	}
	o.io.RUnlock()
	if errors.Is(err, errDamaged) {
		c.dropObject(o, err)
		o.io.RLock()
		if f, err = os.OpenFile(o.data, os.O_WRONLY, 0); err == nil {
			err = f.Truncate(o.hdr.size)
		}
		o.io.RUnlock()
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, 0, fmt.Errorf("open data file: %w", err)
	}
	c.mu.Lock()
	epoch := o.epoch
	c.mu.Unlock()
	return f, epoch, nil
}

// writeUnit writes unit k (n bytes of body, which must hold exactly n) into o's data file and
// then its record. The caller holds a reference on o, so the files cannot be removed meanwhile;
// o.io is held shared around each write only, so releases of other units interleave.
// It returns the data checksum and o's epoch when the data file was opened.
func (c *Cache) writeUnit(o *objState, k key, body io.Reader, n int64, seq uint64) (crc uint32, epoch int, err error) {
	f, epoch, err := c.openForWrite(o)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	buf := *bufp
	for done := int64(0); done < n; {
		m, rerr := io.ReadFull(body, buf[:min(int64(len(buf)), n-done)])
		if m > 0 {
			crc = crc32.Update(crc, crc32c.Table, buf[:m])
			o.io.RLock()
			_, werr := f.WriteAt(buf[:m], k.off()+done)
			o.io.RUnlock()
			if werr != nil {
				return 0, 0, fmt.Errorf("write data file: %w", werr)
			}
			done += int64(m)
		}
		if rerr == io.ErrUnexpectedEOF || rerr == io.EOF {
			return 0, 0, fmt.Errorf("%w: got %d of %d bytes", ErrShortBody, done, n)
		}
		if rerr != nil {
			return 0, 0, fmt.Errorf("copy %d bytes: %w", n, rerr)
		}
	}
	var probe [1]byte
	if m, err := io.ReadFull(body, probe[:]); m > 0 {
		return 0, 0, fmt.Errorf("%w: more than the %d bytes asked for", ErrLongBody, n)
	} else if err != io.EOF {
		return 0, 0, fmt.Errorf("read past %d bytes: %w", n, err)
	}
	o.io.RLock()
	defer o.io.RUnlock()
	if err := writeRecord(o, k, record{dataCRC: crc, seq: seq}.encode()); err != nil {
		return 0, 0, err
	}
	return crc, epoch, nil
}

// writeUnitBytes is writeUnit for bytes already in memory whose CRC32C is known (the
// write-behind of a fetched chunk): no copy, no second checksum pass.
func (c *Cache) writeUnitBytes(o *objState, k key, data []byte, crc uint32, seq uint64) (epoch int, err error) {
	f, epoch, err := c.openForWrite(o)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// The aligned part goes around the page cache (O_DIRECT): copying a chunk into page-cache
	// pages and writing them back cost the daemon a third of its CPU on a cold read.
	direct := directPart(data, k.off())
	if direct > 0 {
		df, derr := os.OpenFile(o.data, os.O_WRONLY|unix.O_DIRECT, 0)
		if derr != nil {
			direct = 0
		} else {
			defer df.Close()
			for done := 0; done < direct; {
				n := min(directStep, direct-done)
				o.io.RLock()
				_, werr := df.WriteAt(data[done:done+n], k.off()+int64(done))
				o.io.RUnlock()
				if errors.Is(werr, unix.EINVAL) {
					// A file system with stricter O_DIRECT rules: the rest goes through the
					// page cache.
					direct = done
					break
				}
				if werr != nil {
					return 0, fmt.Errorf("write data file: %w", werr)
				}
				done += n
			}
		}
	}
	const step = 1 << 20 // o.io is held shared around each write only
	for done := direct; done < len(data); done += step {
		part := data[done:min(done+step, len(data))]
		o.io.RLock()
		_, werr := f.WriteAt(part, k.off()+int64(done))
		o.io.RUnlock()
		if werr != nil {
			return 0, fmt.Errorf("write data file: %w", werr)
		}
	}
	o.io.RLock()
	defer o.io.RUnlock()
	if err := writeRecord(o, k, record{dataCRC: crc, seq: seq}.encode()); err != nil {
		return 0, err
	}
	return epoch, nil
}

const (
	directAlign = 4096    // O_DIRECT alignment of buffer, offset and length (a page covers every block size in use)
	directStep  = 8 << 20 // o.io is held shared around each write only
)

// directPart returns how many leading bytes of data, to be written at off, can be written
// with O_DIRECT: a multiple of directAlign, 0 when the buffer or the offset is not aligned.
func directPart(data []byte, off int64) int {
	if len(data) == 0 || off%directAlign != 0 || uintptr(unsafe.Pointer(&data[0]))%directAlign != 0 {
		return 0
	}
	return len(data) &^ (directAlign - 1)
}

// idxDisk is the accounted size of o's index file.
func (o *objState) idxDisk() int64 { return diskSize(o.hdr.len() + o.hdr.slots()*recordLen) }

func writeRecord(o *objState, k key, rec []byte) error {
	ix, err := os.OpenFile(o.idx, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write index record: %w", err)
	}
	defer ix.Close()
	if _, err := ix.WriteAt(rec, o.hdr.recordOff(k)); err != nil {
		return fmt.Errorf("write index record: %w", err)
	}
	return nil
}

// readUnitBytes copies len(buf) bytes at offset off of unit k from o's data file, provided k is
// still indexed as e (it may have been released since the caller looked it up).
func (c *Cache) readUnitBytes(o *objState, k key, e *entry, buf []byte, off int64) error {
	o.io.RLock()
	defer o.io.RUnlock()
	f, err := c.openUnit(o, k, e)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.ReadAt(buf, k.off()+off); err != nil {
		return fmt.Errorf("%w: %v", errDamaged, err)
	}
	return nil
}

// openUnit opens o's data file to read unit k, provided k is still indexed as e (it may have
// been released since the caller looked it up: errGone). The caller holds o.io shared.
func (c *Cache) openUnit(o *objState, k key, e *entry) (*os.File, error) {
	c.mu.Lock()
	cur, ok := c.lru.Peek(k)
	c.mu.Unlock()
	if !ok || cur != e {
		return nil, errGone
	}
	return o.openData(os.O_RDONLY)
}

// crcBufs holds the buffers unitCRC reads through.
var crcBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// unitCRC returns the CRC32C of unit k's bytes in o's data file, read a piece at a time,
// provided k is still indexed as e.
func (c *Cache) unitCRC(o *objState, k key, e *entry) (uint32, error) {
	o.io.RLock()
	defer o.io.RUnlock()
	f, err := c.openUnit(o, k, e)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bp := crcBufs.Get().(*[]byte)
	defer crcBufs.Put(bp)
	var crc uint32
	for off, end := k.off(), k.off()+k.length(o.hdr.size); off < end; {
		buf := (*bp)[:min(int64(len(*bp)), end-off)]
		if _, err := f.ReadAt(buf, off); err != nil {
			return 0, fmt.Errorf("%w: %v", errDamaged, err)
		}
		crc = crc32.Update(crc, crc32c.Table, buf)
		off += int64(len(buf))
	}
	return crc, nil
}

// errGone: the unit was released between lookup and read; look again.
var errGone = errors.New("cache: unit released")

// release runs jobs: for each, clear the unit's record and punch the bytes no other indexed or
// in-progress unit covers; when an object has no units left, remove its files. A pinned object
// (see Whole) keeps its bytes: its jobs wait for the last unpin.
func (c *Cache) release(jobs []job) {
	for _, j := range jobs {
		o := j.o
		o.io.Lock()
		c.mu.Lock()
		if o.pins > 0 {
			o.deferred = append(o.deferred, j)
			c.mu.Unlock()
			o.io.Unlock()
			continue
		}
		gaps, clear := c.uncoveredLocked(j)
		c.mu.Unlock()
		var err error
		if clear && o.ready {
			err = writeRecord(o, j.k, make([]byte, recordLen))
		}
		if err == nil && len(gaps) > 0 && o.ready {
			err = punch(o.data, o.hdr.size, gaps)
		}
		switch {
		case errors.Is(err, unix.EOPNOTSUPP):
			if !c.noPunch.Swap(true) {
				c.log.Warn("cache: the cache dir's file system cannot punch holes: evicted bytes stay on disk until all of their object is evicted, so the cache can exceed its size bound; use a cache dir on ext4, xfs, btrfs or tmpfs", "dir", c.root)
			}
		case err != nil && !errors.Is(err, os.ErrNotExist):
			c.log.Warn("cache: release cached bytes", "path", o.data, "err", err)
		}
		c.mu.Lock()
		o.refs--
		last := o.refs == 0 && o.pins == 0
		c.mu.Unlock()
		if last {
			c.removeObjectFiles(o)
		}
		o.io.Unlock()
	}
}

// removeObjectFiles removes o's files. The caller holds o.io exclusively and has seen o unused;
// o leaves the index unless a writer took a reference meanwhile (it then recreates the files).
func (c *Cache) removeObjectFiles(o *objState) {
	o.initMu.Lock()
	for _, p := range []string{o.idx, o.data} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("cache: remove cache file", "path", p, "err", err)
		}
	}
	o.ready = false
	o.initMu.Unlock()
	c.mu.Lock()
	if o.refs == 0 && o.pins == 0 && c.objs[o.id] == o {
		delete(c.objs, o.id)
	}
	c.mu.Unlock()
}

// uncoveredLocked returns the byte ranges of j's unit that no other indexed unit or unit being
// written covers, and whether j's record is to be cleared. Nothing is released when the unit
// itself is indexed again or (for eviction) being written again: that write indexes it, or
// releases it if it fails. (Being written, not merely busy: a unit's fetch marks it busy until
// after the unit is indexed, and an eviction in that window must still release it.)
func (c *Cache) uncoveredLocked(j job) (holes [][2]int64, clear bool) {
	k, o := j.k, j.o
	if c.lru.Contains(k) || (!j.own && c.writing[k] > 0) {
		return nil, false
	}
	lo, hi := k.off(), k.off()+k.length(o.hdr.size)
	var cover [][2]int64
	add := func(u key) {
		if u == k || u.off() >= o.hdr.size {
			return
		}
		if c.lru.Contains(u) || c.writing[u] > 0 {
			cover = append(cover, [2]int64{u.off(), u.off() + u.length(o.hdr.size)})
		}
	}
	unit := func(unit, i int64) key {
		return key{Bucket: k.Bucket, Name: k.Name, Gen: k.Gen, Unit: unit, Index: i}
	}
	for _, u := range []int64{c.opts.ChunkSize, c.opts.blockSize} {
		for i := lo / u; i*u < hi; i++ {
			add(unit(u, i))
		}
	}
	return gaps(lo, hi, cover), true
}

// gaps returns the parts of [lo, hi) that none of the ranges in cover (sorted in place)
// covers, in order.
func gaps(lo, hi int64, cover [][2]int64) (out [][2]int64) {
	slices.SortFunc(cover, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	pos := lo
	for _, r := range cover {
		if pos >= hi {
			break
		}
		if r[0] > pos {
			out = append(out, [2]int64{pos, min(r[0], hi)})
		}
		pos = max(pos, r[1])
	}
	if pos < hi {
		out = append(out, [2]int64{pos, hi})
	}
	return out
}

// punch deallocates the given byte ranges of the data file at path, of size bytes (they read
// as zeros after). A range that ends at the end of the file is extended to the end of its last
// disk block, which would otherwise stay allocated (partial blocks are only zeroed).
func punch(path string, size int64, ranges [][2]int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, r := range ranges {
		if r[1] <= r[0] {
			continue
		}
		if r[1] >= size {
			r[1] = diskSize(size)
		}
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, r[0], r[1]-r[0]); err != nil {
			return fmt.Errorf("punch hole: %w", err)
		}
	}
	return nil
}

// dropObject unindexes every unit of o: its data file was found damaged, so none can be trusted.
func (c *Cache) dropObject(o *objState, why error) {
	c.damaged.Add(1)
	c.log.Warn("cache: dropping damaged cache file", "path", o.data, "err", why)
	c.mu.Lock()
	o.epoch++
	for _, k := range c.lru.Keys() {
		if e, _ := c.lru.Peek(k); e.obj == o {
			c.lru.Remove(k)
		}
	}
	jobs := c.takeDoomedLocked()
	c.mu.Unlock()
	c.release(jobs)
}

// Whole is a pinned view of a fully cached object generation: its data file holds every byte
// of the object and keeps them until Close, whatever eviction decides meanwhile (the cache
// can then exceed MaxBytes by the object's size). A FUSE mount can hand the file to the kernel
// to serve reads itself (passthrough).
type Whole struct {
	c    *Cache
	o    *objState
	f    *os.File
	once sync.Once
}

// File is the object's data file, open read-only. It stays valid until Close.
func (w *Whole) File() *os.File { return w.f }

// Close unpins the object; releases postponed while it was pinned run now.
func (w *Whole) Close() error {
	var err error
	w.once.Do(func() {
		err = w.f.Close()
		w.c.unpin(w.o)
	})
	return err
}

// OpenWhole returns a pinned view of obj when every one of its bytes is cached and checked
// (chunk by chunk, or block by block within a chunk), or obj is pinned already, and false
// otherwise: the caller then reads through the cache, which checks each unit it reads back
// from the disk. The kernel checks nothing behind a passthrough handle, so when every byte is
// cached but some units are not checked yet, OpenWhole checks them first (units still in the
// page cache since this process wrote them pass at once, see settleWritten); an object over
// syncCheckBytes is checked in the background instead, and OpenWhole refuses until that is
// done: a later open gets the view. Opening it counts as a use of every unit for
// eviction.
func (c *Cache) OpenWhole(obj Object) (*Whole, bool) {
	if obj.Generation <= 0 || obj.Size <= 0 || c.isClosed.Load() {
		return nil, false
	}
	id := objectID{obj.Bucket, obj.Name, obj.Generation}
	c.mu.Lock()
	if o, ok := c.objs[id]; ok && o.pins == 0 && o.hdr.size == obj.Size {
		if keys, entries, whole := c.coverLocked(o); whole && !allVerified(entries) {
			c.mu.Unlock()
			c.settleWritten(o, keys, entries)
			if obj.Size <= c.opts.syncCheck {
				c.checkUnits(o, keys, entries) // a few milliseconds: the open gets its view now
			}
			c.mu.Lock()
		}
	}
	o, ok := c.objs[id]
	if !ok || o.hdr.size != obj.Size {
		c.mu.Unlock()
		return nil, false
	}
	// A pinned object keeps all its bytes (its releases wait for the last unpin).
	if o.pins == 0 {
		keys, entries, whole := c.coverLocked(o)
		if !whole || !allVerified(entries) {
			if whole && !o.checking {
				o.checking = true
				c.wg.Add(1)
				go func() {
					defer c.wg.Done()
					c.checkUnits(o, keys, entries)
					c.mu.Lock()
					o.checking = false
					c.mu.Unlock()
				}()
			}
			c.mu.Unlock()
			return nil, false
		}
		for _, k := range keys {
			c.lru.Get(k) // a use of each unit
		}
	}
	o.pins++
	c.mu.Unlock()
	o.io.RLock()
	f, err := o.openData(os.O_RDONLY)
	o.io.RUnlock()
	if err != nil {
		c.unpin(o)
		if errors.Is(err, errDamaged) {
			c.dropObject(o, err)
		}
		return nil, false
	}
	return &Whole{c: c, o: o, f: f}, true
}

// syncCheckBytes is the size up to which OpenWhole checks an object's unchecked units before it
// answers (tens of milliseconds at most); larger objects are checked in the background.
const syncCheckBytes = 64 << 20

// checkUnits checks the units keys of o (indexed as entries) that are not checked yet, one at
// a time (see OpenWhole); a unit that fails is dropped (verify).
func (c *Cache) checkUnits(o *objState, keys []key, entries []*entry) {
	for i, k := range keys {
		c.mu.Lock()
		done := entries[i].verified
		c.mu.Unlock()
		if !done && c.verify(c.baseCtx, k, entries[i]) != nil && c.baseCtx.Err() != nil {
			return
		}
	}
}

func allVerified(entries []*entry) bool {
	for _, e := range entries {
		if !e.verified {
			return false
		}
	}
	return true
}

// settleWritten marks verified those of the units keys (indexed as entries) that this process
// wrote and whose pages are all in the page cache, and returns how many it marked. Such bytes
// are the ones this process wrote and have not been read back from the disk since, so there is
// nothing to check yet; a unit with a page gone is read from the disk next, and checked then.
func (c *Cache) settleWritten(o *objState, keys []key, entries []*entry) int {
	o.io.RLock()
	defer o.io.RUnlock()
	f, err := o.openData(os.O_RDONLY)
	if err != nil {
		return 0
	}
	defer f.Close()
	marked := 0
	for i, k := range keys {
		if !entries[i].written || !resident(f, k.off(), k.length(o.hdr.size)) {
			continue
		}
		c.mu.Lock()
		if cur, ok := c.lru.Peek(k); ok && cur == entries[i] {
			cur.verified = true
			marked++
		}
		c.mu.Unlock()
	}
	return marked
}

// resident reports whether every page of bytes [off, off+n) of f is in the page cache.
func resident(f *os.File, off, n int64) bool {
	if n <= 0 {
		return true
	}
	ps := int64(unix.Getpagesize())
	lo := off &^ (ps - 1)
	m, err := unix.Mmap(int(f.Fd()), lo, int(off+n-lo), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return false
	}
	defer unix.Munmap(m)
	vec := make([]byte, (int64(len(m))+ps-1)/ps)
	// (x/sys/unix has no Mincore wrapper on Linux.)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		return false
	}
	for _, v := range vec {
		if v&1 == 0 {
			return false
		}
	}
	return true
}

// coverLocked returns the indexed units that hold every byte of o (each chunk, or the blocks
// of a chunk that is not indexed whole), verified or not, and whether they cover all of it.
func (c *Cache) coverLocked(o *objState) (keys []key, entries []*entry, whole bool) {
	cs, bs := c.opts.ChunkSize, c.opts.blockSize
	have := func(k key) bool {
		e, ok := c.lru.Peek(k)
		if ok && e.obj == o {
			keys, entries = append(keys, k), append(entries, e)
		}
		return ok && e.obj == o
	}
	for i := int64(0); i*cs < o.hdr.size; i++ {
		k := key{Bucket: o.id.bucket, Name: o.id.name, Gen: o.id.gen, Unit: cs, Index: i}
		if have(k) {
			continue
		}
		if cs%bs != 0 {
			return nil, nil, false
		}
		for b := k.off() / bs; b*bs < k.off()+k.length(o.hdr.size); b++ {
			if !have(key{Bucket: o.id.bucket, Name: o.id.name, Gen: o.id.gen, Unit: bs, Index: b}) {
				return nil, nil, false
			}
		}
	}
	return keys, entries, true
}

func (c *Cache) unpin(o *objState) {
	c.mu.Lock()
	o.pins--
	var jobs []job
	if o.pins == 0 {
		jobs, o.deferred = o.deferred, nil
	}
	c.mu.Unlock()
	c.release(jobs)
}
