package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/transfer"
	"github.com/plxfs/plxfs/vfs"
)

// staging is the local state of a file being written: an unlinked temporary file under the
// staging directory (so the kernel frees it when plxfs exits, and memory stays bounded
// whatever the file size) holding the whole content the next upload will send.
type staging struct {
	f *os.File // constant

	// ioMu is held shared by writes and exclusive by fills, truncations and uploads, so that an
	// upload sends a snapshot no write tears. It is taken before fileNode.mu. Reads take no
	// lock: pread and pwrite of one file are safe together, and a read clamps to size.
	ioMu sync.RWMutex

	// Guarded by the owning fileNode's mu (or FS.mu while orphaned).
	filled   bool                 // f holds the content: the base object was copied in, or replaced
	dirty    bool                 // f has changes the bucket does not have
	size     int64                // content size
	baseGen  int64                // generation the content replaces: the upload precondition (0: must not exist)
	baseSize int64                // size of baseGen, for filling
	mtime    time.Time            // explicit modification time to store with the next upload
	modified time.Time            // time of the last change
	version  uint64               // bumped by every change
	stream   *transfer.PartWriter // parts uploaded while a new file is written in order (stream.go); nil when none
}

// stageRef is where a staging file belongs: its node, or (orphaned) its connection and path.
type stageRef struct {
	node  *fileNode // nil while orphaned
	conn  *conn
	path  string
	posix posixmd.Attrs // an orphan's attributes, for its upload
}

// newStage creates an empty staging file and registers it (see SyncAll).
func (f *FS) newStage(n *fileNode) (*staging, error) {
	if err := f.changesRefused(); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	tf, err := os.CreateTemp(f.opts.StagingDir, "stage-*")
	if err != nil {
		return nil, fmt.Errorf("create staging file: %w", err)
	}
	// Unlinked at once: nothing to clean up after a crash; the open file is the only handle.
	if err := os.Remove(tf.Name()); err != nil {
		tf.Close()
		return nil, fmt.Errorf("unlink staging file: %w", err)
	}
	st := &staging{f: tf}
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
	st.f.Close()
}

// adoptOrphan keeps the dirty staging file of a node the kernel forgot.
func (f *FS) adoptOrphan(c *conn, p string, st *staging, pa posixmd.Attrs) {
	f.mu.Lock()
	f.staged[st] = stageRef{conn: c, path: p, posix: pa}
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
			return objInfo{kind: kindFile, size: st.size, gen: st.baseGen, mtime: st.modified}, true
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
		if st, err = n.fsys.newStage(n); err != nil {
			return err
		}
		st.baseGen, st.baseSize = n.info.gen, n.info.size
		st.filled = n.info.gen == 0
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
	filled := st.filled
	n.mu.Unlock()
	if filled {
		return st, nil
	}
	st.ioMu.Lock()
	defer st.ioMu.Unlock()
	n.mu.Lock()
	filled, base, p := st.filled, objInfo{gen: st.baseGen, size: st.baseSize}, n.path
	n.mu.Unlock()
	if filled {
		return st, nil
	}
	if err := n.fsys.copyObject(ctx, n.conn, p, base, st.f); err != nil {
		return nil, fmt.Errorf("copy the current content before a change: %w", err)
	}
	n.mu.Lock()
	st.filled, st.size = true, base.size
	n.mu.Unlock()
	return st, nil
}

// copyObject copies generation info of the file at p into w through the read cache.
func (f *FS) copyObject(ctx context.Context, c *conn, p string, info objInfo, w io.WriterAt) error {
	buf := make([]byte, kernelTransfer)
	for off := int64(0); off < info.size; {
		k, err := f.readObject(ctx, c, p, info, buf, off)
		if err != nil {
			return err
		}
		if k == 0 {
			return fmt.Errorf("read %q gen %d at %d: %w", p, info.gen, off, io.ErrUnexpectedEOF)
		}
		if _, err := w.WriteAt(buf[:k], off); err != nil {
			return fmt.Errorf("write staging file: %w", err)
		}
		off += int64(k)
	}
	return nil
}

// write writes data at off into the staging file.
func (st *staging) write(n *fileNode, data []byte, off int64) (int, error) {
	st.ioMu.RLock()
	defer st.ioMu.RUnlock()
	k, err := st.f.WriteAt(data, off)
	n.mu.Lock()
	prev := st.size
	if end := off + int64(k); end > st.size {
		st.size = end
	}
	if k > 0 {
		st.dirty = true
		st.modified = n.fsys.now()
		st.version++
		if st.stream == nil && off == 0 && prev == 0 && !n.unlinked && n.fsys.streaming() {
			st.stream = n.fsys.newPartStream(n.conn, st.f)
		}
		if st.stream != nil && !st.stream.Wrote(data[:k], off) {
			st.stream.Abort()
			st.stream = nil
		}
	}
	n.mu.Unlock()
	if err != nil {
		return k, fmt.Errorf("write staging file: %w", err)
	}
	return k, nil
}

// readAt reads the staged content.
func (st *staging) readAt(n *fileNode, dest []byte, off int64) (int, error) {
	n.mu.Lock()
	size := st.size
	n.mu.Unlock()
	if off >= size {
		return 0, nil
	}
	if int64(len(dest)) > size-off {
		dest = dest[:size-off]
	}
	k, err := st.f.ReadAt(dest, off)
	if err == io.EOF {
		err = nil
	}
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
	st.ioMu.Lock()
	defer st.ioMu.Unlock()
	if err := st.f.Truncate(size); err != nil {
		return fmt.Errorf("truncate staging file: %w", err)
	}
	n.mu.Lock()
	st.filled, st.size, st.dirty = true, size, true
	st.modified = n.fsys.now()
	st.version++
	n.keepGen = 0
	if st.stream != nil {
		st.stream.Abort()
		st.stream = nil
	}
	n.mu.Unlock()
	return nil
}

// sync uploads the staged content if it has changes. On failure the staged data stays, dirty,
// for the next flush; nothing partial is visible in the bucket (transfer.Upload's guarantee).
func (n *fileNode) sync(ctx context.Context) error {
	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	n.mu.Lock()
	st := n.stage
	if st == nil || !st.dirty || n.unlinked {
		n.mu.Unlock()
		return nil
	}
	n.mu.Unlock()

	st.ioMu.Lock()
	defer st.ioMu.Unlock()
	n.mu.Lock()
	if n.unlinked || !st.dirty {
		n.mu.Unlock()
		return nil
	}
	p, size, baseGen, mtime, version, pa := n.path, st.size, st.baseGen, st.mtime, st.version, n.info.posix
	if mtime.IsZero() {
		// The file's time is its last local change, not the upload's: what stat showed
		// before the upload stays true after it.
		mtime = st.modified
	}
	ps := st.stream
	st.stream = nil
	n.mu.Unlock()

	var attrs store.Attrs
	var err error
	streamed := ps != nil && ps.Started()
	if streamed {
		n.fsys.opts.Observer.UploadStarted()
		attrs, err = ps.Commit(context.WithoutCancel(ctx), p, size, n.fsys.writeOptions(p, baseGen, mtime, pa))
		n.fsys.opts.Observer.UploadFinished(size, err)
		if err != nil {
			n.fsys.log.Warn("upload of parts written so far failed; uploading the whole file again", "connection", n.conn.name, "path", p, "err", err)
		}
	} else if ps != nil {
		ps.Abort()
	}
	if !streamed || err != nil {
		attrs, err = n.fsys.upload(ctx, n.conn, p, st.f, size, baseGen, mtime, pa)
	}
	if err != nil {
		return err
	}
	info := infoFromAttrs(attrs)
	info.size = size
	n.mu.Lock()
	n.replacedLocked(info)
	n.info, n.infoAt = info, n.fsys.now()
	st.baseGen, st.baseSize, st.mtime = info.gen, size, time.Time{}
	if st.version == version {
		st.dirty = false
	}
	n.keepGen = 0 // the kernel's pages came from writes; let the next open start clean
	n.mu.Unlock()

	n.fsys.meta.putFound(metaKey(n.conn.name, p), info)
	if name, parent := n.Parent(); parent != nil {
		if d, ok := parent.Operations().(*dirNode); ok {
			d.noteChange(name, &info)
		}
	}
	if err := n.fsys.opts.Cache.Fill(n.conn.objectOf(p, info), st.f); err != nil {
		n.fsys.log.Warn("cache fill after upload failed; reads will fetch", "connection", n.conn.name, "path", p, "err", err)
	}
	return nil
}

// upload sends size bytes of src as the object at path p of c, replacing generation ifGen (0:
// the object must not exist). It is not cancelled by the caller's interrupts: a close cannot
// be retried by the application, so an upload once started runs to its end.
func (f *FS) upload(ctx context.Context, c *conn, p string, src io.ReaderAt, size, ifGen int64, mtime time.Time, pa posixmd.Attrs) (store.Attrs, error) {
	wo := f.writeOptions(p, ifGen, mtime, pa)
	ctx = context.WithoutCancel(ctx)
	start := f.now()
	f.opts.Observer.UploadStarted()
	attrs, err := transfer.Upload(ctx, c.view, p, src, size, wo, f.opts.Upload)
	f.opts.Observer.UploadFinished(size, err)
	if err != nil {
		return store.Attrs{}, fmt.Errorf("upload gs://%s/%s (%d bytes, if generation %d): %w", c.bucket.Name(), c.objectName(p), size, ifGen, err)
	}
	f.log.Debug("uploaded", "connection", c.name, "path", p, "bytes", size, "generation", attrs.Generation, "elapsed", f.now().Sub(start))
	return attrs, nil
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
		st.ioMu.Lock()
		f.mu.Lock()
		size, gen, mtime, dirty := st.size, st.baseGen, st.mtime, st.dirty
		if mtime.IsZero() {
			mtime = st.modified
		}
		f.mu.Unlock()
		if dirty {
			if _, err := f.upload(ctx, ref.conn, ref.path, st.f, size, gen, mtime, ref.posix); err != nil {
				f.log.Error("unmount: upload failed; this file's changes are lost", "connection", ref.conn.name, "path", ref.path, "err", err)
				errs = append(errs, err)
			} else {
				f.mu.Lock()
				st.dirty = false
				f.mu.Unlock()
			}
		}
		st.ioMu.Unlock()
	}
	return errors.Join(errs...)
}

// Pending reports how many files have changes not yet uploaded.
func (f *FS) Pending() int {
	f.mu.Lock()
	stages := make([]*staging, 0, len(f.staged))
	refs := make([]stageRef, 0, len(f.staged))
	for st, ref := range f.staged {
		stages = append(stages, st)
		refs = append(refs, ref)
	}
	f.mu.Unlock()
	n := 0
	for i, st := range stages {
		if ref := refs[i]; ref.node != nil {
			ref.node.mu.Lock()
			if st.dirty {
				n++
			}
			ref.node.mu.Unlock()
			continue
		}
		f.mu.Lock()
		if st.dirty {
			n++
		}
		f.mu.Unlock()
	}
	return n
}
