package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/splice"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/vfs"
)

// fileNode is a regular file: one object, or a file created through the mount that is not
// uploaded yet. Reads of the object go through the chunk cache, pinned to a generation;
// writes go to a staging file (see staging.go) and are uploaded on fsync and close.
type fileNode struct {
	fusefs.Inode
	fsys *FS
	conn *conn

	// syncMu serialises uploads of this file; it is held across the upload (a GCS call), and
	// taken before the staging file's IO lock (vfs.Stage) and mu.
	syncMu sync.Mutex

	// mu guards the fields below. It is never held across a GCS call or a read of object bytes.
	mu       sync.Mutex
	path     string
	info     objInfo   // the object as last seen in the bucket (or uploaded)
	infoAt   time.Time // when info was fetched from the bucket
	keepGen  int64     // generation the kernel's page cache holds: FOPEN_KEEP_CACHE while unchanged
	stage    *staging  // local state; nil when the file has none
	unlinked bool      // removed through the mount; staged data is never uploaded then
	// successors maps a generation this mount replaced (by an upload or a rename) to what
	// replaced it, so that handles opened before read the new bytes (read-your-writes) instead
	// of a generation that is gone. Cleared when no handle is open.
	successors vfs.Successors[objInfo]

	// opens is the open handles and their modes (cached, passthrough), with its own lock, a
	// leaf taken inside mu (see vfs.Opens).
	opens vfs.Opens
}

// replacedLocked records that the node's generation is replaced by info (see successors).
func (n *fileNode) replacedLocked(info objInfo) { n.successors.Replaced(n.info.Gen, info.Gen, info) }

var (
	_ = (fusefs.NodeGetattrer)((*fileNode)(nil))
	_ = (fusefs.NodeSetattrer)((*fileNode)(nil))
	_ = (fusefs.NodeOpener)((*fileNode)(nil))
	_ = (fusefs.NodeStatfser)((*fileNode)(nil))
	_ = (fusefs.NodeOnForgetter)((*fileNode)(nil))
)

func (n *fileNode) getPath() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.path
}

// localInfo returns the file's local view when it has staged content.
func (n *fileNode) localInfo() (objInfo, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.localInfoLocked()
}

func (n *fileNode) localInfoLocked() (objInfo, bool) {
	if n.stage == nil {
		return objInfo{}, false
	}
	ss := n.stage.State()
	if !ss.Filled {
		return objInfo{}, false
	}
	info := n.info
	info.Kind = kindFile
	info.Size = ss.Size
	if !ss.Mtime.IsZero() {
		info.Mtime = ss.Mtime
	} else if ss.Dirty {
		info.Mtime = ss.Modified
	}
	return info, true
}

// currentInfo is the local view if there is one, else the object's info.
func (n *fileNode) currentInfo() objInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	if info, ok := n.localInfoLocked(); ok {
		return info
	}
	return n.info
}

// refresh records what the bucket says about the object (fetched at the time given, by the
// caller, or now). A file with local state keeps its view of the content.
func (n *fileNode) refresh(info objInfo) { n.refreshAt(info, n.fsys.now()) }

func (n *fileNode) refreshAt(info objInfo, at time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.unlinked {
		return
	}
	if ss := n.stageState(); ss.Filled || ss.Dirty {
		return
	}
	if at.Before(n.infoAt) {
		return
	}
	n.info, n.infoAt = info, at
}

// Getattr answers stat(2) and fstat(2) of a file (GETATTR, sent when the attributes the kernel
// holds have expired, and by fstat with the handle). The kernel cuts reads at the size it
// last heard, so the size must be the one reads serve. plxfs reports, in order: the pinned
// generation of the handle asked through; the staged content (size, mtime); an unlinked file,
// with nlink 0; what the node learnt within the TTL; else what a stat of the object says.
// Errors: ENOENT when the object is gone (the absence is cached); EIO when the bucket did not
// answer; EINTR.
func (n *fileNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.mu.Lock()
	info, local := n.localInfoLocked()
	if !local {
		info = n.info
	}
	if h := handleOf(fh); h != nil && !local && h.Gen != 0 && h.Gen != info.Gen {
		// Asked through an open file (fstat, or the kernel revalidating the size while that
		// file is read): its generation's size, not the one the node has learnt since. The
		// kernel cuts reads at the size it last heard, so a smaller newer size would end the
		// reader's generation early.
		info.Gen, info.Size = h.Gen, h.Size
		n.mu.Unlock()
		n.fsys.fillAttr(n.StableAttr().Ino, info, &out.Attr)
		return 0
	}
	if n.unlinked {
		n.mu.Unlock()
		n.fsys.fillAttr(n.StableAttr().Ino, info, &out.Attr)
		out.Nlink = 0 // still open, no longer has a name
		return 0
	}
	if local || n.fsys.fresh(n.infoAt) || info.Gen == 0 {
		n.mu.Unlock()
		n.fsys.fillAttr(n.StableAttr().Ino, info, &out.Attr)
		return 0
	}
	p := n.path
	n.mu.Unlock()

	start := n.fsys.now() // what the Stat says is ordered by when it was asked (see putFoundAt)
	attrs, err := n.conn.bucket.Stat(ctx, n.conn.objectName(p))
	key := metaKey(n.conn.name, p)
	if err != nil {
		if errors.Is(err, store.ErrNotExist) {
			n.fsys.meta.PutMissing(key)
		}
		return n.fsys.fail("getattr", n.conn, p, err)
	}
	info = infoFromAttrs(attrs)
	n.refreshAt(info, start)
	n.fsys.meta.PutFoundAt(key, info, start)
	n.fsys.fillAttr(n.StableAttr().Ino, n.currentInfo(), &out.Attr)
	return 0
}

// Statfs answers statfs(2) of a file (STATFS). It never fails; see statfsOut.
func (n *fileNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfsOut(out)
	return 0
}

// Open answers open(2) of an existing file (OPEN; the kernel has checked permissions; O_CREAT
// of a new name is dirNode.Create). It must return a handle and FOPEN_* flags. The handle is
// pinned to the generation the node knows now. On a mount with passthrough (read-only mounts,
// see TuneMount) a wholly cached object is opened in passthrough mode (see openPassthrough);
// otherwise the handle reads through plxfs, and the kernel keeps its page cache
// (FOPEN_KEEP_CACHE) only while the generation is the one it cached. An open for writing gets
// the file's staging file, and O_TRUNC empties it at once. Errors: EROFS for writing on a
// read-only mount, or on a draining one for a file not being written already; errors of
// the staging directory (ENOSPC...).
func (n *fileNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	trunc := flags&syscall.O_TRUNC != 0 && write
	if write && n.fsys.opts.ReadOnly {
		return nil, 0, n.fsys.fail("open", n.conn, n.getPath(), errReadOnly)
	}
	h := &fileHandle{n: n, write: write}
	var keep bool
	if !write && n.fsys.passthrough.Load() {
		pt, k := n.openPassthrough(h)
		if pt != nil {
			return pt, 0, 0
		}
		keep = k
	} else {
		n.mu.Lock()
		if write {
			if err := n.ensureStageLocked(); err != nil {
				p := n.path
				n.mu.Unlock()
				return nil, 0, n.fsys.fail("open", n.conn, p, err)
			}
		}
		h.st = n.opens.OpenCached(write)
		keep = n.pinCachedLocked(h, trunc)
		p := n.path
		n.mu.Unlock()
		if trunc {
			if err := n.truncate(ctx, 0); err != nil {
				h.Release(ctx)
				return nil, 0, n.fsys.fail("open", n.conn, p, err)
			}
		}
	}
	var fuseFlags uint32
	if keep {
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	}
	return h, fuseFlags, 0
}

// pinCachedLocked pins a page-cached handle h to the node's current generation and reports
// whether the kernel may keep the pages it holds (they are of this generation).
func (n *fileNode) pinCachedLocked(h *fileHandle, trunc bool) (keep bool) {
	h.pin(n.info)
	_, local := n.localInfoLocked()
	keep = !local && !trunc && n.info.Gen != 0 && n.keepGen == n.info.Gen
	n.keepGen = n.info.Gen
	if local || trunc {
		n.keepGen = 0
	}
	return keep
}

// releaseWait bounds how long a passthrough open waits for the releases of handles already
// closed (flushed) before it settles for the page cache or the old generation.
const releaseWait = 50 * time.Millisecond

// joinWait bounds how long a passthrough open waits for another passthrough open under way
// to take its pin before it settles for the page cache.
const joinWait = 100 * time.Millisecond

// openPassthrough opens the node in passthrough mode when n.opens says it may (see vfs.Opens:
// only when every open handle is a passthrough handle; then every open joins them, on their
// generation): the kernel reads the cache's data file itself, pinned (kept whole) until the
// handle is released. It waits, on the channels vfs.Opens gives, up to releaseWait for the
// releases of handles already flushed, and up to joinWait for a concurrent passthrough open to
// take its pin. When the open must read through plxfs instead (the object is not wholly
// cached, or page-cached handles are open), h is registered as a page-cached handle in the
// same critical section as that decision, so that no passthrough open can slip in between;
// it then returns nil and the FOPEN_KEEP_CACHE choice.
func (n *fileNode) openPassthrough(h *fileHandle) (pt *passthroughHandle, keep bool) {
	waitUntil, joinUntil := time.Now().Add(releaseWait), time.Now().Add(joinWait)
	for {
		n.mu.Lock()
		cur := vfs.Pin{Gen: n.info.Gen, Size: n.info.Size, CRC: n.info.CRC, HasCRC: n.info.HasCRC}
		step := n.opens.Join(cur, time.Now().Before(waitUntil), time.Now().Before(joinUntil))
		if step.Wait != nil {
			n.mu.Unlock()
			waitFor(step.Wait, waitUntil)
			continue
		}
		h.st = step.Handle
		if step.Handle.Mode() == vfs.Cached {
			keep = n.pinCachedLocked(h, false)
			n.mu.Unlock()
			return nil, keep
		}
		p := n.path
		n.mu.Unlock()
		info := objInfo{Gen: step.Pin.Gen, Size: step.Pin.Size, CRC: step.Pin.CRC, HasCRC: step.Pin.HasCRC}
		if w, ok := n.fsys.opts.Cache.OpenWhole(n.conn.objectOf(p, info)); ok {
			h.pin(info)
			h.whole = w
			n.opens.Settle(step.Handle, true)
			return &passthroughHandle{h}, false
		}
		n.mu.Lock()
		cached, retry := n.opens.Settle(step.Handle, false)
		if cached {
			keep = n.pinCachedLocked(h, false)
			n.mu.Unlock()
			return nil, keep
		}
		n.mu.Unlock()
		// Another passthrough open is under way: once it holds its pin, OpenWhole of its
		// generation succeeds for this one too.
		waitFor(retry, joinUntil)
	}
}

// waitFor waits until ch is closed or the deadline passes.
func waitFor(ch <-chan struct{}, deadline time.Time) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// stageState is the state of the node's staging file (the zero state when it has none).
// n.mu is held.
func (n *fileNode) stageState() vfs.StageState {
	if n.stage == nil {
		return vfs.StageState{}
	}
	return n.stage.State()
}

// takeCleanStageLocked takes the staging file from the node when no writer is left (writers)
// and it has nothing to upload; the caller drops it (FS.dropStage) after unlocking n.mu.
func (n *fileNode) takeCleanStageLocked(writers int) (drop *staging) {
	if writers == 0 && n.stage != nil && !n.stage.State().Dirty {
		drop, n.stage = n.stage, nil
	}
	return drop
}

// OnForget runs when the kernel forgets the inode (FORGET: no entry, handle or reference to it
// is left). It keeps staged data that failed to upload, so that a later lookup of the same
// path (and SyncAll at unmount) still finds it.
func (n *fileNode) OnForget() {
	n.mu.Lock()
	st, p, unlinked, pa := n.stage, n.path, n.unlinked, n.info.Posix
	dirty := n.stageState().Dirty
	if st != nil && !dirty {
		n.stage = nil
	}
	n.mu.Unlock()
	if st == nil {
		return
	}
	if !dirty || unlinked {
		n.fsys.dropStage(st)
		return
	}
	n.fsys.adoptOrphan(n.conn, p, st, pa)
}

// objectOf is the cache identity of generation info of the file at path p.
func (c *conn) objectOf(p string, info objInfo) cache.Object {
	return cache.Object{Bucket: c.bucket.Name(), Name: c.objectName(p), Generation: info.Gen, Size: info.Size,
		CRC32C: info.CRC, HasCRC32C: info.HasCRC}
}

// readObject reads generation gen (size bytes) of the file at path p through the cache.
// A generation that is gone becomes errStale.
func (f *FS) readObject(ctx context.Context, c *conn, p string, info objInfo, dest []byte, off int64) (int, error) {
	_, k, err := f.readObjectSpan(ctx, c, p, info, dest, off, false)
	return k, err
}

// readObjectSpan is readObject that, when spanOK, may return the bytes' place in the cache
// (a Span, for a zero-copy reply) instead of copying them into dest.
func (f *FS) readObjectSpan(ctx context.Context, c *conn, p string, info objInfo, dest []byte, off int64, spanOK bool) (*cache.Span, int, error) {
	if off >= info.Size || info.Gen == 0 {
		return nil, 0, nil
	}
	if int64(len(dest)) > info.Size-off {
		dest = dest[:info.Size-off]
	}
	var sp *cache.Span
	var k int
	var err error
	if spanOK {
		sp, k, err = f.opts.Cache.ReadSpan(ctx, c.bucket, c.objectOf(p, info), dest, off)
	} else {
		k, err = f.opts.Cache.ReadAt(ctx, c.bucket, c.objectOf(p, info), dest, off)
	}
	f.opts.Observer.CacheServed(int64(k))
	if err == io.EOF {
		err = nil
	}
	if err != nil && (errors.Is(err, store.ErrNotExist) || errors.Is(err, store.ErrPrecondition)) {
		err = errors.Join(errStale, err)
	}
	return sp, k, err
}

// pipeIdle is how long after the last spliced reply the pipes go-fuse keeps for splicing are
// closed. Its pool only grows (two descriptors and up to 1 MiB of pipe buffer for every reply
// in flight at once); an idle mount gives them back.
const pipeIdle = time.Second

// spanDone counts a spliced reply sent, and closes the pooled pipes once replies stop.
func (f *FS) spanDone() {
	if f.spans.Add(-1) != 0 {
		return
	}
	f.reapMu.Lock()
	defer f.reapMu.Unlock()
	if f.reaper == nil {
		f.reaper = time.AfterFunc(pipeIdle, func() {
			if f.spans.Load() == 0 {
				splice.ClearSplicePool()
			}
		})
	} else {
		f.reaper.Reset(pipeIdle)
	}
}

// copyResult replies to a read with bytes in memory. (A vector result is written with one
// writev; go-fuse would first try, and fail, to splice a plain data result.)
func copyResult(b []byte) fuse.ReadResult { return fuse.ReadResultVector([][]byte{b}) }

// spanResult replies to a read from a cache Span: go-fuse splices the bytes from the data file
// into /dev/fuse (or, where it cannot, reads them with pread), then calls Done.
type spanResult struct {
	sp *cache.Span
	f  *FS
}

func (r spanResult) Size() int { return r.sp.Len() }
func (r spanResult) Done() {
	r.sp.Close()
	r.f.spanDone()
}
func (r spanResult) Seekable() (fd uintptr, off int64, sz int) {
	return r.sp.Fd(), r.sp.Off(), r.sp.Len()
}
func (r spanResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	n, err := syscall.Pread(int(r.sp.Fd()), buf[:min(len(buf), r.sp.Len())], r.sp.Off())
	if err != nil {
		return nil, fuse.Status(toErrno(err))
	}
	return buf[:n], fuse.OK
}

// memResult replies to a read with bytes the cache holds in memory (chunks arriving from GCS):
// go-fuse writes them to /dev/fuse with one writev, straight from the chunk buffers, then calls
// Done, which lets the cache reuse them.
type memResult struct{ sp *cache.Span }

func (r memResult) Size() int                       { return r.sp.Len() }
func (r memResult) Done()                           { r.sp.Close() }
func (r memResult) Slices() ([][]byte, fuse.Status) { return r.sp.Vecs(), fuse.OK }
func (r memResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	out := buf[:0]
	for _, v := range r.sp.Vecs() {
		out = append(out, v...)
	}
	return out, fuse.OK
}

// fileHandle is an open file. Reads see the staged content when the file has local state,
// otherwise the generation pinned at open (or what this mount's own uploads replaced it by).
type fileHandle struct {
	n     *fileNode
	write bool
	// Pinned at open; guarded by n.mu after that (successor updates them).
	Gen, Size int64
	CRC       uint32
	HasCRC    bool
	// whole is the cache's pinned data file of a passthrough handle (nil otherwise).
	whole *cache.Whole
	// st is the handle's state in n.opens (mode, flushed, released).
	st *vfs.Handle
}

// handleOf returns the fileHandle behind fh, or nil.
func handleOf(fh fusefs.FileHandle) *fileHandle {
	switch h := fh.(type) {
	case *fileHandle:
		return h
	case *passthroughHandle:
		return h.fileHandle
	}
	return nil
}

// pin makes h read generation info (its size and CRC32C with it).
func (h *fileHandle) pin(info objInfo) {
	h.Gen, h.Size, h.CRC, h.HasCRC = info.Gen, info.Size, info.CRC, info.HasCRC
}

// passthroughHandle is a fileHandle whose reads the kernel serves from the cache's data file.
// go-fuse registers the file with the kernel when it sees this type at open.
type passthroughHandle struct{ *fileHandle }

var _ = (fusefs.FilePassthroughFder)((*passthroughHandle)(nil))

// PassthroughFd gives the kernel the cache's data file as this handle's backing file. go-fuse
// calls it once, at open; the kernel then serves the handle's reads without plxfs.
func (h *passthroughHandle) PassthroughFd() (int, bool) { return int(h.whole.File().Fd()), true }

var (
	_ = (fusefs.FileReader)((*fileHandle)(nil))
	_ = (fusefs.FileWriter)((*fileHandle)(nil))
	_ = (fusefs.FileFlusher)((*fileHandle)(nil))
	_ = (fusefs.FileFsyncer)((*fileHandle)(nil))
	_ = (fusefs.FileReleaser)((*fileHandle)(nil))
	_ = (fusefs.FileGetattrer)((*fileHandle)(nil))
)

// Getattr answers fstat(2) through this handle (GETATTR with a handle): fileNode.Getattr, which
// reports the handle's generation.
func (h *fileHandle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.n.Getattr(ctx, h, out)
}

// Read answers read(2) and the kernel's readahead (READ, at most kernelTransfer bytes at a
// time, several in flight; unless the handle is direct I/O the reply fills the kernel's page
// cache). It must return at most len(dest) bytes at off; a short reply is the end of the
// file. plxfs reads the staged content of a file with local state, otherwise the generation
// pinned at open (or the one this mount's own upload replaced it by) through the cache; the
// reply is spliced from the cache's data file or written from chunk memory, not copied.
// Errors: ESTALE when the pinned generation is gone and its bytes are not cached, or for a
// read past its end once a bigger generation is known; EIO when the backend failed (or a
// checksum kept mismatching); EINTR.
func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n := h.n
	n.mu.Lock()
	st := n.stage
	local := n.stageState().Filled
	info := objInfo{Gen: h.Gen, Size: h.Size, CRC: h.CRC, HasCRC: h.HasCRC}
	if _, next, ok := n.successors.Follow(info.Gen); ok {
		info = next
	}
	h.pin(info)
	p := n.path
	// The kernel keeps one size per inode: once the node has learnt a bigger generation, a
	// read of an older pinned one past that one's end would be cut short there, and the kernel
	// would fill the rest of the request with zeros. Such a read fails cleanly instead.
	outgrown := !local && info.Gen != 0 && n.info.Gen != info.Gen && n.info.Size > info.Size &&
		off+int64(len(dest)) > info.Size
	n.mu.Unlock()
	if outgrown {
		return nil, n.fsys.fail("read", n.conn, p, errors.Join(errStale, fmt.Errorf("generation %d (%d bytes) was replaced by a bigger one", info.Gen, info.Size)))
	}

	if local {
		k, err := st.ReadAt(dest, off)
		if err != nil {
			return nil, n.fsys.fail("read", n.conn, p, err)
		}
		return copyResult(dest[:k]), 0
	}
	sp, k, err := n.fsys.readObjectSpan(ctx, n.conn, p, info, dest, off, n.fsys.canSplice)
	if err != nil {
		if errors.Is(err, errStale) {
			n.staleSeen(info.Gen)
		}
		return nil, n.fsys.fail("read", n.conn, p, err)
	}
	if sp != nil && sp.Vecs() != nil {
		return memResult{sp}, 0
	}
	if sp != nil {
		n.fsys.spans.Add(1)
		return spanResult{sp, n.fsys}, 0
	}
	return copyResult(dest[:k]), 0
}

// staleSeen forgets the node's view of generation gen after a read found it gone, and tells
// the kernel (asynchronously: notifications must not run inside an operation on the same
// inode) to drop its cached attributes and pages, so that the next open sees the new object.
func (n *fileNode) staleSeen(gen int64) {
	n.mu.Lock()
	if n.info.Gen == gen {
		n.infoAt = time.Time{}
	}
	p := n.path
	n.mu.Unlock()
	n.fsys.meta.Forget(metaKey(n.conn.name, p))
	go func() {
		n.NotifyContent(0, 0)
		if name, parent := n.Parent(); parent != nil {
			parent.NotifyEntry(name)
		}
	}()
}

// Flush answers every close(2) of a descriptor of this handle (FLUSH; a descriptor dup'ed
// closes more than once, so it is idempotent), and its errno is what close returns. A
// writing handle uploads the staged content if it changed (sync): this is where a failed
// upload reaches the program. A reading handle only counts the flush (see
// vfs.Opens). Errors: EIO (the upload failed after retries; the data stays staged,
// and a later flush retries); ESTALE (the object changed behind the mount); EACCES. An
// interrupt does not stop an upload: the program cannot retry a close.
func (h *fileHandle) Flush(ctx context.Context) syscall.Errno {
	h.n.opens.Flush(h.st)
	if !h.write {
		return 0
	}
	if err := h.n.sync(ctx); err != nil {
		return h.n.fsys.fail("close", h.n.conn, h.n.getPath(), err)
	}
	return 0
}

// Fsync answers fsync(2) and fdatasync(2) (FSYNC): the staged content is uploaded as by
// Flush, and the call returns once the object is in GCS. Errors as for Flush.
func (h *fileHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if err := h.n.sync(ctx); err != nil {
		return h.n.fsys.fail("fsync", h.n.conn, h.n.getPath(), err)
	}
	return 0
}

// Release is the kernel's RELEASE, sent asynchronously after the last close of the handle;
// the kernel ignores its result, so everything that can fail happened in Flush. It drops a
// clean stage when the last writer goes, and stops prefetches when the last handle goes.
func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	n := h.n
	if h.whole != nil {
		h.whole.Close()
	}
	n.mu.Lock()
	handles, writers := n.opens.Release(h.st)
	drop := n.takeCleanStageLocked(writers)
	if handles == 0 {
		n.successors.Clear()
	}
	last, p := handles == 0, n.path
	info := objInfo{Gen: h.Gen, Size: h.Size}
	n.mu.Unlock()
	if drop != nil {
		n.fsys.dropStage(drop)
	}
	if last && info.Gen != 0 {
		// Nobody reads the file any more (a reader that was killed included): fetches started
		// ahead of its readers stop.
		n.fsys.opts.Cache.StopPrefetch(n.conn.objectOf(p, info))
	}
	return 0
}

// symlinkNode is a symbolic link: an object whose metadata holds the target.
type symlinkNode struct{ metaNode }

var (
	_ = (fusefs.NodeGetattrer)((*symlinkNode)(nil))
	_ = (fusefs.NodeSetattrer)((*symlinkNode)(nil))
	_ = (fusefs.NodeReadlinker)((*symlinkNode)(nil))
)

// Readlink answers readlink(2) (READLINK): the target recorded in the object's metadata when
// it was looked up. It never fails.
func (s *symlinkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []byte(s.info.Target), 0
}

// Write answers write(2) (WRITE, at most kernelTransfer bytes per request). It must write all
// of data at off and return len(data); a short count is an error to the writer. Data goes to
// the staging file (an existing object is copied in through the cache at the first change)
// and, for a new file written in order, feeds the streamed upload. Nothing reaches GCS before
// Flush or Fsync. Errors: EBADF on a handle not open for writing (the kernel checks first);
// EIO or ESTALE when copying the object in fails; ENOSPC, EDQUOT of the staging directory.
func (h *fileHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n := h.n
	if !h.write {
		return 0, n.fsys.fail("write", n.conn, n.getPath(), errNotWritable)
	}
	st, err := n.stageForWrite(ctx)
	if err != nil {
		return 0, n.fsys.fail("write", n.conn, n.getPath(), err)
	}
	k, err := st.write(n, data, off)
	if err != nil {
		return uint32(k), n.fsys.fail("write", n.conn, n.getPath(), err)
	}
	return uint32(k), 0
}

// Setattr answers truncate(2), ftruncate(2), chmod, chown and utimensat of a file (SETATTR;
// the kernel has checked permissions; fh is the handle for ftruncate). It must apply every
// change asked and return the new attributes. A size change goes through the staging file: on
// a path it is uploaded at once, through a handle at close. Mode, owner and times are kept
// in the object's metadata (SEMANTICS.md "Permissions and metadata"): with the pending upload
// when there is one, else as a metadata patch. Errors: EROFS on a read-only mount, or for a
// truncate or an attribute change of a file not being written on a draining one; ESTALE when the generation patched was replaced behind the
// mount; EIO.
func (n *fileNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	size, hasSize := in.GetSize()
	_, changed := n.fsys.applySetattr(n.currentInfo().Posix, in, time.Time{})
	p := n.getPath()
	if n.fsys.opts.ReadOnly && (hasSize || changed) {
		return n.fsys.fail("setattr", n.conn, p, errReadOnly)
	}
	if hasSize {
		if err := n.setSize(ctx, int64(size), fh == nil); err != nil {
			return n.fsys.fail("truncate", n.conn, p, err)
		}
	}
	if changed {
		if err := n.setAttrs(ctx, in); err != nil {
			return n.fsys.fail("setattr", n.conn, p, err)
		}
	}
	n.fsys.fillAttr(n.StableAttr().Ino, n.currentInfo(), &out.Attr)
	return 0
}

// setSize truncates the file. A truncate(2) on a path (no handle) with no writer open is
// uploaded at once, since no close will follow it.
func (n *fileNode) setSize(ctx context.Context, size int64, pathOnly bool) error {
	n.opens.Hold() // keep the stage while we use it
	err := n.truncate(ctx, size)
	if err == nil && pathOnly && n.opens.Writers() == 1 {
		err = n.sync(ctx)
	}
	n.mu.Lock()
	drop := n.takeCleanStageLocked(n.opens.Unhold())
	n.mu.Unlock()
	if drop != nil {
		n.fsys.dropStage(drop)
	}
	return err
}

// setAttrs records mode, owner and time changes: with the pending upload when there is one,
// otherwise as a metadata patch of the generation the mount knows (no data is rewritten; a
// generation replaced behind the mount fails the patch with ESTALE).
func (n *fileNode) setAttrs(ctx context.Context, in *fuse.SetAttrIn) error {
	n.mu.Lock()
	cur, _ := n.localInfoLocked()
	if !n.stageState().Filled {
		cur = n.info
	}
	pa, _ := n.fsys.applySetattr(n.info.Posix, in, cur.Mtime)
	if st := n.stage; n.stageState().Dirty || n.info.Gen == 0 {
		n.info.Posix, n.info.Ctime = pa, n.fsys.now()
		if t, ok := in.GetMTime(); ok && st != nil {
			st.SetMtime(t)
		}
		n.mu.Unlock()
		return nil
	}
	p, gen := n.path, n.info.Gen
	n.mu.Unlock()
	if n.fsys.gate.Draining() {
		// A new change to an object nobody is writing: refused from SIGTERM on, as a new
		// writer would be (changes to a file being written go with its pending upload).
		return errDraining
	}
	attrs, err := n.fsys.patchObject(ctx, n.conn, p, gen, n.fsys.patchFor(pa))
	if errors.Is(err, store.ErrPrecondition) || errors.Is(err, store.ErrNotExist) {
		return fmt.Errorf("%w: %w", errStale, err)
	}
	if err != nil {
		return err
	}
	info := infoFromAttrs(attrs)
	n.mu.Lock()
	if n.info.Gen == gen && attrs.Generation == gen {
		n.info, n.infoAt = info, n.fsys.now()
	}
	info = n.info
	n.mu.Unlock()
	n.fsys.meta.PutFound(metaKey(n.conn.name, p), info)
	noteInParent(&n.Inode, info)
	return nil
}
