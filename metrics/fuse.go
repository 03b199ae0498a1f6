package metrics

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// FUSE returns raw with every FUSE request recorded in m: plxfs_fuse_operations_total{op},
// plxfs_fuse_operation_duration_seconds{op}, plxfs_fuse_errors_total{op,errno}, the bytes
// read and written, and plxfs_open_handles (successful opens and creates minus releases).
// A lookup answered with a negative entry (node id 0, which go-fuse sends for ENOENT when
// negative caching is on) counts as an ENOENT error, as the application sees it.
// Wrap the file system go-fuse's fs.NewNodeFS returns and hand the result to fuse.NewServer.
//
// (go-fuse v2.12's Server.RecordLatencies is a no-op kept for compatibility, so timing has to
// happen here, at the one interface every request crosses.)
func FUSE(raw fuse.RawFileSystem, m *Metrics) fuse.RawFileSystem {
	return &rawFS{raw: raw, m: m}
}

type rawFS struct {
	raw fuse.RawFileSystem
	m   *Metrics
}

var _ fuse.RawFileSystem = (*rawFS)(nil)

// done records one answered request of op that started at start.
func (w *rawFS) done(op string, start time.Time, st fuse.Status) {
	w.m.fuseOps.WithLabelValues(op).Inc()
	w.m.fuseDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if st != fuse.OK {
		w.m.fuseErrors.WithLabelValues(op, errnoName(syscall.Errno(st))).Inc()
	}
}

func (w *rawFS) String() string      { return w.raw.String() }
func (w *rawFS) SetDebug(debug bool) { w.raw.SetDebug(debug) }
func (w *rawFS) Init(s *fuse.Server) { w.raw.Init(s) }
func (w *rawFS) OnUnmount()          { w.raw.OnUnmount() }

func (w *rawFS) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := w.raw.Lookup(cancel, header, name, out)
	if st == fuse.OK && out.NodeId == 0 {
		// A negative entry: the kernel caches "no such name" for the entry timeout. The
		// application sees ENOENT, so it counts as one.
		w.done("lookup", start, fuse.ENOENT)
		return st
	}
	w.done("lookup", start, st)
	return st
}

func (w *rawFS) Forget(nodeid, nlookup uint64) {
	start := time.Now()
	w.raw.Forget(nodeid, nlookup)
	w.done("forget", start, fuse.OK)
}

func (w *rawFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	start := time.Now()
	st := w.raw.GetAttr(cancel, in, out)
	w.done("getattr", start, st)
	return st
}

func (w *rawFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	start := time.Now()
	st := w.raw.SetAttr(cancel, in, out)
	w.done("setattr", start, st)
	return st
}

func (w *rawFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := w.raw.Mknod(cancel, in, name, out)
	w.done("mknod", start, st)
	return st
}

func (w *rawFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := w.raw.Mkdir(cancel, in, name, out)
	w.done("mkdir", start, st)
	return st
}

func (w *rawFS) Unlink(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	start := time.Now()
	st := w.raw.Unlink(cancel, header, name)
	w.done("unlink", start, st)
	return st
}

func (w *rawFS) Rmdir(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	start := time.Now()
	st := w.raw.Rmdir(cancel, header, name)
	w.done("rmdir", start, st)
	return st
}

func (w *rawFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	start := time.Now()
	st := w.raw.Rename(cancel, in, oldName, newName)
	w.done("rename", start, st)
	return st
}

func (w *rawFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, filename string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := w.raw.Link(cancel, in, filename, out)
	w.done("link", start, st)
	return st
}

func (w *rawFS) Symlink(cancel <-chan struct{}, header *fuse.InHeader, pointedTo, linkName string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := w.raw.Symlink(cancel, header, pointedTo, linkName, out)
	w.done("symlink", start, st)
	return st
}

func (w *rawFS) Readlink(cancel <-chan struct{}, header *fuse.InHeader) ([]byte, fuse.Status) {
	start := time.Now()
	out, st := w.raw.Readlink(cancel, header)
	w.done("readlink", start, st)
	return out, st
}

func (w *rawFS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	start := time.Now()
	st := w.raw.Access(cancel, in)
	w.done("access", start, st)
	return st
}

func (w *rawFS) GetXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	sz, st := w.raw.GetXAttr(cancel, header, attr, dest)
	w.done("getxattr", start, st)
	return sz, st
}

func (w *rawFS) ListXAttr(cancel <-chan struct{}, header *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	sz, st := w.raw.ListXAttr(cancel, header, dest)
	w.done("listxattr", start, st)
	return sz, st
}

func (w *rawFS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	start := time.Now()
	st := w.raw.SetXAttr(cancel, in, attr, data)
	w.done("setxattr", start, st)
	return st
}

func (w *rawFS) RemoveXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string) fuse.Status {
	start := time.Now()
	st := w.raw.RemoveXAttr(cancel, header, attr)
	w.done("removexattr", start, st)
	return st
}

func (w *rawFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	start := time.Now()
	st := w.raw.Create(cancel, in, name, out)
	if st == fuse.OK {
		w.m.handleOpened()
	}
	w.done("create", start, st)
	return st
}

func (w *rawFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	start := time.Now()
	st := w.raw.Tmpfile(cancel, in, out)
	if st == fuse.OK {
		w.m.handleOpened()
	}
	w.done("tmpfile", start, st)
	return st
}

func (w *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	st := w.raw.Open(cancel, in, out)
	if st == fuse.OK {
		w.m.handleOpened()
	}
	w.done("open", start, st)
	return st
}

func (w *rawFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	start := time.Now()
	res, st := w.raw.Read(cancel, in, buf)
	if st == fuse.OK && res != nil {
		w.m.fuseRead(res.Size())
	}
	w.done("read", start, st)
	return res, st
}

func (w *rawFS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	start := time.Now()
	st := w.raw.Lseek(cancel, in, out)
	w.done("lseek", start, st)
	return st
}

func (w *rawFS) GetLk(cancel <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	start := time.Now()
	st := w.raw.GetLk(cancel, in, out)
	w.done("getlk", start, st)
	return st
}

func (w *rawFS) SetLk(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	start := time.Now()
	st := w.raw.SetLk(cancel, in)
	w.done("setlk", start, st)
	return st
}

func (w *rawFS) SetLkw(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	start := time.Now()
	st := w.raw.SetLkw(cancel, in)
	w.done("setlkw", start, st)
	return st
}

func (w *rawFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	start := time.Now()
	w.raw.Release(cancel, in)
	w.m.handleClosed()
	w.done("release", start, fuse.OK)
}

func (w *rawFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := w.raw.Write(cancel, in, data)
	if st == fuse.OK {
		w.m.fuseWritten(n)
	}
	w.done("write", start, st)
	return n, st
}

// Writev is recorded as "write". When the file system answers ENOSYS the server falls back to
// Write, which is then the one recorded.
func (w *rawFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := w.raw.Writev(cancel, in, data)
	if st == fuse.ENOSYS {
		return n, st
	}
	if st == fuse.OK {
		w.m.fuseWritten(n)
	}
	w.done("write", start, st)
	return n, st
}

func (w *rawFS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	start := time.Now()
	n, st := w.raw.CopyFileRange(cancel, in)
	w.done("copy_file_range", start, st)
	return n, st
}

func (w *rawFS) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	start := time.Now()
	st := w.raw.Ioctl(cancel, in, inbuf, out, outbuf)
	w.done("ioctl", start, st)
	return st
}

func (w *rawFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	start := time.Now()
	st := w.raw.Flush(cancel, in)
	w.done("flush", start, st)
	return st
}

func (w *rawFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	start := time.Now()
	st := w.raw.Fsync(cancel, in)
	w.done("fsync", start, st)
	return st
}

func (w *rawFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	start := time.Now()
	st := w.raw.Fallocate(cancel, in)
	w.done("fallocate", start, st)
	return st
}

func (w *rawFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	st := w.raw.OpenDir(cancel, in, out)
	w.done("opendir", start, st)
	return st
}

func (w *rawFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	start := time.Now()
	st := w.raw.ReadDir(cancel, in, out)
	w.done("readdir", start, st)
	return st
}

func (w *rawFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	start := time.Now()
	st := w.raw.ReadDirPlus(cancel, in, out)
	w.done("readdirplus", start, st)
	return st
}

func (w *rawFS) ReleaseDir(in *fuse.ReleaseIn) {
	start := time.Now()
	w.raw.ReleaseDir(in)
	w.done("releasedir", start, fuse.OK)
}

func (w *rawFS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	start := time.Now()
	st := w.raw.FsyncDir(cancel, in)
	w.done("fsyncdir", start, st)
	return st
}

func (w *rawFS) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	start := time.Now()
	st := w.raw.StatFs(cancel, in, out)
	w.done("statfs", start, st)
	return st
}

func (w *rawFS) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	start := time.Now()
	st := w.raw.Statx(cancel, in, out)
	w.done("statx", start, st)
	return st
}
