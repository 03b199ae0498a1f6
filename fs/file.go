package fs

import (
	"context"
	"errors"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/splice"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/vfs"
)

// fileNode is a regular file: the kernel's node of a vfs.File, whose state (the object, the
// staging file, the open handles and their modes) lives in the core.
type fileNode struct {
	fusefs.Inode
	fsys *FS
	conn *conn
	f    *vfs.File
}

var (
	_ = (fusefs.NodeGetattrer)((*fileNode)(nil))
	_ = (fusefs.NodeSetattrer)((*fileNode)(nil))
	_ = (fusefs.NodeOpener)((*fileNode)(nil))
	_ = (fusefs.NodeStatfser)((*fileNode)(nil))
	_ = (fusefs.NodeOnForgetter)((*fileNode)(nil))
)

// Getattr answers stat(2) and fstat(2) of a file (GETATTR, sent when the attributes the kernel
// holds have expired, and by fstat with the handle). The kernel cuts reads at the size it
// last heard, so the size must be the one reads serve. plxfs reports, in order: the pinned
// generation of the handle asked through; the staged content (size, mtime); an unlinked file,
// with nlink 0; what the node learnt within the TTL; else what a stat of the object says.
// Errors: ENOENT when the object is gone (the absence is cached); EIO when the bucket did not
// answer; EINTR.
func (n *fileNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var h *vfs.OpenFile
	if fh := handleOf(fh); fh != nil {
		h = fh.OpenFile
	}
	info, unlinked, err := n.f.Attr(ctx, h)
	if err != nil {
		return n.fsys.fail("getattr", n.conn, n.f.Path(), err)
	}
	n.fsys.fillAttr(n.StableAttr().Ino, info, &out.Attr)
	if unlinked {
		out.Nlink = 0 // still open, no longer has a name
	}
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
	trunc := flags&syscall.O_TRUNC != 0
	h, keep, err := n.f.Open(ctx, write, trunc, n.fsys.passthrough.Load())
	if err != nil {
		return nil, 0, n.fsys.fail("open", n.conn, n.f.Path(), err)
	}
	fh := &fileHandle{OpenFile: h, n: n}
	if h.Whole != nil {
		return &passthroughHandle{fh}, 0, 0
	}
	var fuseFlags uint32
	if keep {
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	}
	return fh, fuseFlags, 0
}

// OnForget runs when the kernel forgets the inode (FORGET: no entry, handle or reference to it
// is left). It keeps staged data that failed to upload, so that a later lookup of the same
// path (and SyncAll at unmount) still finds it.
func (n *fileNode) OnForget() { n.f.Forget() }

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
	info, err := n.f.Setattr(ctx, int64(size), hasSize, attrChange(in), fh == nil)
	if err != nil {
		op := "setattr"
		if hasSize {
			op = "truncate"
		}
		return n.fsys.fail(op, n.conn, n.f.Path(), err)
	}
	n.fsys.fillAttr(n.StableAttr().Ino, info, &out.Attr)
	return 0
}

// fileHandle is an open file (vfs.OpenFile).
type fileHandle struct {
	*vfs.OpenFile
	n *fileNode
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

// passthroughHandle is a fileHandle whose reads the kernel serves from the cache's data file.
// go-fuse registers the file with the kernel when it sees this type at open.
type passthroughHandle struct{ *fileHandle }

var _ = (fusefs.FilePassthroughFder)((*passthroughHandle)(nil))

// PassthroughFd gives the kernel the cache's data file as this handle's backing file. go-fuse
// calls it once, at open; the kernel then serves the handle's reads without plxfs.
func (h *passthroughHandle) PassthroughFd() (int, bool) { return int(h.Whole.File().Fd()), true }

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
	sp, k, err := h.OpenFile.Read(ctx, dest, off, n.fsys.canSplice)
	if err != nil {
		if errors.Is(err, errStale) {
			n.notifyStale()
		}
		return nil, n.fsys.fail("read", n.conn, n.f.Path(), err)
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

// notifyStale tells the kernel, after a read found the file's generation gone, to drop its
// cached attributes and pages, so that the next open sees the new object. Asynchronously: a
// notification must not run inside an operation on the same inode.
func (n *fileNode) notifyStale() {
	go func() {
		n.NotifyContent(0, 0)
		if name, parent := n.Parent(); parent != nil {
			parent.NotifyEntry(name)
		}
	}()
}

// Write answers write(2) (WRITE, at most kernelTransfer bytes per request). It must write all
// of data at off and return len(data); a short count is an error to the writer. Data goes to
// the staging file (an existing object is copied in through the cache at the first change)
// and, for a new file written in order, feeds the streamed upload. Nothing reaches GCS before
// Flush or Fsync. Errors: EBADF on a handle not open for writing (the kernel checks first);
// EIO or ESTALE when copying the object in fails; ENOSPC, EDQUOT of the staging directory.
func (h *fileHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	k, err := h.OpenFile.Write(ctx, data, off)
	if err != nil {
		return uint32(k), h.n.fsys.fail("write", h.n.conn, h.n.f.Path(), err)
	}
	return uint32(k), 0
}

// Flush answers every close(2) of a descriptor of this handle (FLUSH; a descriptor dup'ed
// closes more than once, so it is idempotent), and its errno is what close returns. A
// writing handle uploads the staged content if it changed (sync): this is where a failed
// upload reaches the program. A reading handle only counts the flush (see
// vfs.Opens). Errors: EIO (the upload failed after retries; the data stays staged,
// and a later flush retries); ESTALE (the object changed behind the mount); EACCES. An
// interrupt does not stop an upload: the program cannot retry a close.
func (h *fileHandle) Flush(ctx context.Context) syscall.Errno {
	if err := h.OpenFile.Flush(ctx); err != nil {
		return h.n.fsys.fail("close", h.n.conn, h.n.f.Path(), err)
	}
	return 0
}

// Fsync answers fsync(2) and fdatasync(2) (FSYNC): the staged content is uploaded as by
// Flush, and the call returns once the object is in GCS. Errors as for Flush.
func (h *fileHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if err := h.n.f.Sync(ctx); err != nil {
		return h.n.fsys.fail("fsync", h.n.conn, h.n.f.Path(), err)
	}
	return 0
}

// Release is the kernel's RELEASE, sent asynchronously after the last close of the handle;
// the kernel ignores its result, so everything that can fail happened in Flush. It drops a
// clean stage when the last writer goes, and stops prefetches when the last handle goes.
func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	h.OpenFile.Release()
	return 0
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
