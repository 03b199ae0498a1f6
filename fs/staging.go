package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/transfer"
	"github.com/plxfs/plxfs/vfs"
)

// staging is the local state of a file being written: the core's staging file and state
// (vfs.Stage: its IO lock is taken before fileNode.mu, its state lock is a leaf) and the
// streamed upload fed by its writes.
type staging struct {
	*vfs.Stage
	// stream: parts uploaded while a new file is written in order (stream.go); nil when none.
	// Guarded by the owning fileNode's mu.
	stream *transfer.PartWriter
}

// stageRef is where a staging file belongs: its node, or (orphaned) its connection and path.
type stageRef struct {
	node  *fileNode // nil while orphaned
	conn  *conn
	path  string
	Posix posixmd.Attrs // an orphan's attributes, for its upload
}

// newStage creates an empty staging file replacing generation baseGen (baseSize bytes; 0: a
// new file) and registers it (see SyncAll).
func (f *FS) newStage(n *fileNode, baseGen, baseSize int64) (*staging, error) {
	vs, err := vfs.NewStage(f.gate, f.opts.StagingDir, baseGen, baseSize)
	if err != nil {
		return nil, err
	}
	st := &staging{Stage: vs}
	f.mu.Lock()
	f.staged[st] = stageRef{node: n, conn: n.conn}
	f.mu.Unlock()
	return st, nil
}

// dropStage closes a staging file that is no longer needed.
func (f *FS) dropStage(st *staging) {
	f.mu.Lock()
	delete(f.staged, st)
	f.mu.Unlock()
	st.Close()
}

// adoptOrphan keeps the dirty staging file of a node the kernel forgot.
func (f *FS) adoptOrphan(c *conn, p string, st *staging, pa posixmd.Attrs) {
	f.mu.Lock()
	f.staged[st] = stageRef{conn: c, path: p, Posix: pa}
	f.mu.Unlock()
	f.log.Warn("file with changes that failed to upload is no longer open; its data is kept until the next successful flush or unmount",
		"connection", c.name, "path", p)
}

// takeOrphan hands the orphaned staging file of (c, p), if any, to node n.
func (f *FS) takeOrphan(c *conn, p string, n *fileNode) *staging {
	f.mu.Lock()
	defer f.mu.Unlock()
	for st, ref := range f.staged {
		if ref.node == nil && ref.conn == c && ref.path == p {
			f.staged[st] = stageRef{node: n, conn: c}
			return st
		}
	}
	return nil
}

// orphanInfo reports the local view of an orphaned staging file at (c, p).
func (f *FS) orphanInfo(c *conn, p string) (objInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for st, ref := range f.staged {
		if ref.node == nil && ref.conn == c && ref.path == p {
			ss := st.State()
			return objInfo{Kind: kindFile, Size: ss.Size, Gen: ss.BaseGen, Mtime: ss.Modified}, true
		}
	}
	return objInfo{}, false
}

// ensureStageLocked gives n a staging file if it has none. A file that was never uploaded
// starts filled (its content is empty); an existing object is copied in on the first write.
// n.mu is held; creating the (local) staging file is the only I/O done under it.
func (n *fileNode) ensureStageLocked() error {
	if n.stage != nil {
		return nil
	}
	st := n.fsys.takeOrphan(n.conn, n.path, n)
	if st == nil {
		var err error
		if st, err = n.fsys.newStage(n, n.info.Gen, n.info.Size); err != nil {
			return err
		}
	}
	n.stage = st
	return nil
}

// stageForWrite returns n's staging file with the content in place: on the first change to an
// existing object, its bytes are copied in through the read cache.
func (n *fileNode) stageForWrite(ctx context.Context) (*staging, error) {
	n.mu.Lock()
	if err := n.ensureStageLocked(); err != nil {
		n.mu.Unlock()
		return nil, err
	}
	st := n.stage
	n.mu.Unlock()
	if st.State().Filled {
		return st, nil
	}
	st.LockIO()
	defer st.UnlockIO()
	n.mu.Lock()
	ss, p := st.State(), n.path
	n.mu.Unlock()
	if ss.Filled {
		return st, nil
	}
	base := objInfo{Gen: ss.BaseGen, Size: ss.BaseSize}
	if err := n.fsys.copyObject(ctx, n.conn, p, base, st.File()); err != nil {
		return nil, fmt.Errorf("copy the current content before a change: %w", err)
	}
	n.mu.Lock()
	st.Filled(base.Size)
	n.mu.Unlock()
	return st, nil
}

// copyObject copies generation info of the file at p into w through the read cache.
func (f *FS) copyObject(ctx context.Context, c *conn, p string, info objInfo, w io.WriterAt) error {
	buf := make([]byte, kernelTransfer)
	for off := int64(0); off < info.Size; {
		k, err := f.readObject(ctx, c, p, info, buf, off)
		if err != nil {
			return err
		}
		if k == 0 {
			return fmt.Errorf("read %q gen %d at %d: %w", p, info.Gen, off, io.ErrUnexpectedEOF)
		}
		if _, err := w.WriteAt(buf[:k], off); err != nil {
			return fmt.Errorf("write staging file: %w", err)
		}
		off += int64(k)
	}
	return nil
}

// write writes data at off into the staging file, and feeds a new file written in order to
// its streamed upload.
func (st *staging) write(n *fileNode, data []byte, off int64) (int, error) {
	st.RLockIO()
	defer st.RUnlockIO()
	k, err := st.WriteAt(data, off)
	n.mu.Lock()
	prev := st.Wrote(off, k, n.fsys.now())
	if k > 0 {
		if st.stream == nil && off == 0 && prev == 0 && !n.unlinked && n.fsys.streaming() {
			st.stream = n.conn.up.NewStream(st.File())
		}
		if st.stream != nil && !st.stream.Wrote(data[:k], off) {
			st.stream.Abort()
			st.stream = nil
		}
	}
	n.mu.Unlock()
	return k, err
}

// truncate sets the file's size through its staging file. Truncating to 0 needs no copy of the
// old content.
func (n *fileNode) truncate(ctx context.Context, size int64) error {
	var st *staging
	if size == 0 {
		n.mu.Lock()
		err := n.ensureStageLocked()
		st = n.stage
		n.mu.Unlock()
		if err != nil {
			return err
		}
	} else {
		var err error
		if st, err = n.stageForWrite(ctx); err != nil {
			return err
		}
	}
	st.LockIO()
	defer st.UnlockIO()
	if err := st.Truncate(size); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st.Truncated(size, n.fsys.now())
	n.keepGen = 0
	if st.stream != nil {
		st.stream.Abort()
		st.stream = nil
	}
	return nil
}

// sync uploads the staged content if it has changes. On failure the staged data stays, dirty,
// for the next flush; nothing partial is visible in the bucket (transfer.Upload's guarantee).
func (n *fileNode) sync(ctx context.Context) error {
	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	n.mu.Lock()
	st := n.stage
	if st == nil || !st.State().Dirty || n.unlinked {
		n.mu.Unlock()
		return nil
	}
	n.mu.Unlock()

	st.LockIO()
	defer st.UnlockIO()
	n.mu.Lock()
	ss := st.State()
	if n.unlinked || !ss.Dirty {
		n.mu.Unlock()
		return nil
	}
	p, size, baseGen, version, pa := n.path, ss.Size, ss.BaseGen, ss.Version, n.info.Posix
	mtime := ss.ModTime() // the last local change, not the upload's time (see StageState)
	ps := st.stream
	st.stream = nil
	n.mu.Unlock()

	attrs, err := n.conn.up.Send(ctx, p, st.File(), size, n.fsys.writeOptions(p, baseGen, mtime, pa), ps)
	if err != nil {
		return err
	}
	info := infoFromAttrs(attrs)
	info.Size = size
	n.mu.Lock()
	n.replacedLocked(info)
	n.info, n.infoAt = info, n.fsys.now()
	st.Uploaded(version, info.Gen, size)
	n.keepGen = 0 // the kernel's pages came from writes; let the next open start clean
	n.mu.Unlock()

	n.fsys.meta.PutFound(metaKey(n.conn.name, p), info)
	noteInParent(&n.Inode, info)
	if err := n.fsys.opts.Cache.Fill(n.conn.objectOf(p, info), st.File()); err != nil {
		n.fsys.log.Warn("cache fill after upload failed; reads will fetch", "connection", n.conn.name, "path", p, "err", err)
	}
	return nil
}

// writeOptions are the options of a new generation of the file at p: its modification time and
// the attributes pa (mode, owner, atime) carried over from the generation it replaces, or given
// at its creation.
func (f *FS) writeOptions(p string, ifGen int64, mtime time.Time, pa posixmd.Attrs) store.WriteOptions {
	wo := store.WriteOptions{IfGen: ifGen, ContentType: vfs.ContentType(p)}
	pa.Mtime = mtime
	if md := f.metadataFor(pa); len(md) > 0 {
		wo.Metadata = md
	}
	return wo
}

// SyncAll uploads every file with changes not yet uploaded (open or not), for a clean
// unmount. It returns the failures, joined; the data of failed files is lost when the process
// exits, and each is logged.
func (f *FS) SyncAll(ctx context.Context) error {
	f.flushDirTimes(ctx)
	f.mu.Lock()
	refs := make([]stageRef, 0, len(f.staged))
	stages := make([]*staging, 0, len(f.staged))
	for st, ref := range f.staged {
		refs = append(refs, ref)
		stages = append(stages, st)
	}
	f.mu.Unlock()
	var errs []error
	for i, ref := range refs {
		if ref.node != nil {
			if err := ref.node.sync(ctx); err != nil {
				f.log.Error("unmount: upload failed; this file's changes are lost", "connection", ref.conn.name, "path", ref.node.getPath(), "err", err)
				errs = append(errs, err)
			}
			continue
		}
		st := stages[i]
		st.LockIO()
		ss := st.State()
		if ss.Dirty {
			wo := f.writeOptions(ref.path, ss.BaseGen, ss.ModTime(), ref.Posix)
			if _, err := ref.conn.up.Upload(ctx, ref.path, st.File(), ss.Size, wo); err != nil {
				f.log.Error("unmount: upload failed; this file's changes are lost", "connection", ref.conn.name, "path", ref.path, "err", err)
				errs = append(errs, err)
			} else {
				st.Clean()
			}
		}
		st.UnlockIO()
	}
	return errors.Join(errs...)
}

// Pending reports how many files have changes not yet uploaded.
func (f *FS) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for st := range f.staged {
		if st.State().Dirty {
			n++
		}
	}
	return n
}
