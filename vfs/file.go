package vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/transfer"
)

// File is a regular file of a connection: one object, or a file created through the mount
// that is not uploaded yet. Its state is what the mount knows of the object (info), its open
// handles and their modes (opens), and, while it is written, its staging file (stage) and the
// streamed upload fed by its writes (stream). Reads of the object go through the chunk cache,
// pinned to a generation; writes go to the staging file and are uploaded by Sync (at every
// close and fsync).
//
// The states of its local content, and what moves between them:
//
//	none ──open for write, create, truncate──▶ staged (clean or dirty)
//	staged, dirty ──Sync──▶ staged, clean ──last writer released──▶ none
//	staged, dirty ──forgotten by the kernel──▶ orphan (still registered; a lookup adopts it)
//	any ──Unlink, or replaced by a rename──▶ unlinked (never uploaded; open handles go on)
type File struct {
	fs *FS
	c  *Conn

	// syncMu serialises uploads of this file; it is held across the upload (a GCS call), and
	// taken before the staging file's IO lock (Stage) and mu.
	syncMu sync.Mutex

	// mu guards the fields below. It is never held across a GCS call or a read of object bytes.
	mu       sync.Mutex
	path     string
	info     Info      // the object as last seen in the bucket (or uploaded)
	infoAt   time.Time // when info was learnt from the bucket
	keepGen  int64     // generation the kernel's page cache holds: it may keep it while unchanged
	stage    *Stage    // local content; nil when the file has none
	stream   *transfer.PartWriter
	unlinked bool // removed through the mount: staged data is never uploaded then
	// successors maps a generation this mount replaced (by an upload or a rename) to what
	// replaced it, so that handles opened before read the new bytes (read-your-writes) instead
	// of a generation that is gone. Cleared when no handle is open.
	successors Successors[Info]
	// opens is the open handles and their modes, with its own lock (a leaf taken inside mu).
	opens Opens
}

// File returns the registered file at path p, which learns info (learnt at time at), or
// registers a new one.
func (c *Conn) File(p string, info Info, at time.Time) *File {
	c.mu.Lock()
	f, found := c.nodes[p].(*File)
	if !found {
		f = &File{fs: c.fs, c: c, path: p, info: info, infoAt: at}
		c.nodes[p] = f
	}
	c.mu.Unlock()
	if found {
		f.refreshAt(info, at)
	}
	return f
}

// newFile registers a new file at p in place of any other (a file the mount knew at p is
// gone: it is detached).
func (c *Conn) newFile(p string, info Info, at time.Time) *File {
	f := &File{fs: c.fs, c: c, path: p, info: info, infoAt: at}
	if old, ok := c.replace(p, f).(*File); ok {
		old.detach()
	}
	return f
}

// Path is the file's path in its connection.
func (f *File) Path() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.path
}

// Generation is the object generation the file knows (0: never uploaded).
func (f *File) Generation() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info.Gen
}

// Dirty reports whether the file has changes not uploaded (and is not unlinked).
func (f *File) Dirty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.unlinked && f.stageState().Dirty
}

// stageState is the state of the staging file (the zero state when there is none); f.mu is held.
func (f *File) stageState() StageState {
	if f.stage == nil {
		return StageState{}
	}
	return f.stage.State()
}

// Local returns the file's local view when it has staged content.
func (f *File) Local() (Info, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.localLocked()
}

func (f *File) localLocked() (Info, bool) {
	ss := f.stageState()
	if !ss.Filled {
		return Info{}, false
	}
	info := f.info
	info.Kind = KindFile
	info.Size = ss.Size
	if !ss.Mtime.IsZero() {
		info.Mtime = ss.Mtime
	} else if ss.Dirty {
		info.Mtime = ss.Modified
	}
	return info, true
}

// Info is the local view if there is one, else the object's info.
func (f *File) Info() Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.currentLocked()
}

func (f *File) currentLocked() Info {
	if info, ok := f.localLocked(); ok {
		return info
	}
	return f.info
}

// refreshAt records what the bucket said about the object at time at. A file with local
// state keeps its view of the content; an older answer is ignored.
func (f *File) refreshAt(info Info, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unlinked || at.Before(f.infoAt) {
		return
	}
	if ss := f.stageState(); ss.Filled || ss.Dirty {
		return
	}
	if info.Gen == f.info.Gen && info.DataGen == 0 && f.info.sameBytes(info) {
		info.DataGen = f.info.DataGen // the generation a metadata patch gave it: cached as another
	}
	f.info, f.infoAt = info, at
}

// Attr is what stat(2) reports: through an open handle h (nil for none), its pinned
// generation; else the staged content; an unlinked file (unlinked: nlink 0); what the file
// learnt within the TTL; else what a stat of the object says (what it knows when the backend
// does not answer: stale.go). The kernel cuts reads at the
// size it last heard, so the size is the one reads serve.
func (f *File) Attr(ctx context.Context, h *OpenFile) (info Info, unlinked bool, err error) {
	f.mu.Lock()
	info, local := f.localLocked()
	if !local {
		info = f.info
	}
	if h != nil && !local && h.Gen != 0 && h.Gen != info.Gen {
		// Asked through an open file (fstat, or the kernel revalidating the size while that
		// file is read): its generation's size, not the one learnt since, which would end the
		// reader's generation early if smaller.
		info.Gen, info.Size = h.Gen, h.Size
		f.mu.Unlock()
		return info, false, nil
	}
	if unlinked := f.unlinked; unlinked || local || f.fs.Fresh(f.infoAt) || info.Gen == 0 {
		f.mu.Unlock()
		return info, unlinked, nil
	}
	p := f.path
	f.mu.Unlock()

	start := f.fs.Now() // what the Stat says is ordered by when it was asked
	attrs, err := f.c.bucket.Stat(ctx, f.c.objs.Name(p))
	key := MetaKey(f.c.Name, p)
	if err != nil {
		if errors.Is(err, store.ErrNotExist) {
			f.fs.meta.PutMissing(key)
		}
		if noAnswer(ctx, err) {
			// The backend did not answer: what the file knows stands (see stale.go).
			f.mu.Lock()
			at := f.infoAt
			f.mu.Unlock()
			f.fs.servedStale(f.c, p, at, err)
			return f.Info(), false, nil
		}
		return Info{}, false, err
	}
	info = InfoFromAttrs(attrs)
	f.refreshAt(info, start)
	f.fs.meta.PutFoundAt(key, info, start)
	return f.Info(), false, nil
}

// Forget is the kernel forgetting the file's node. A file whose changes failed to upload
// stays registered (an orphan), so that a later lookup of its path and SyncAll find it;
// anything else is dropped.
func (f *File) Forget() {
	f.mu.Lock()
	st, p := f.stage, f.path
	keep := st != nil && !f.unlinked && f.stageState().Dirty
	if !keep {
		f.setStageLocked(nil)
		f.abortStreamLocked()
	}
	f.mu.Unlock()
	if keep {
		f.fs.log.Warn("file with changes that failed to upload is no longer open; its data is kept until the next successful flush or unmount",
			"connection", f.c.Name, "path", p)
		return
	}
	if st != nil {
		st.Close()
	}
	f.c.unregister(p, f)
}

// detach is the file losing its path to another (Unlink, a rename onto it, a new file made
// in its place): it is unregistered, and its staged data, never uploaded now, is dropped
// unless handles still use it.
func (f *File) detach() {
	f.mu.Lock()
	f.unlinked = true
	f.abortStreamLocked()
	f.setStageLocked(f.stage) // out of the staged set: it is never uploaded or listed now
	var drop *Stage
	if f.stage != nil && f.opens.Writers() == 0 {
		drop = f.stage
		f.setStageLocked(nil)
	}
	p := f.path
	f.mu.Unlock()
	if drop != nil {
		drop.Close()
	}
	f.c.unregister(p, f)
}

// setStageLocked gives the file the staging file st (nil: none) and keeps its connection's
// set of staged files in step (an unlinked file is never in it); f.mu is held.
func (f *File) setStageLocked(st *Stage) {
	f.stage = st
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if st != nil && !f.unlinked {
		f.c.staged[f] = struct{}{}
	} else {
		delete(f.c.staged, f)
	}
}

// abortStreamLocked abandons the streamed upload, if any (its parts are deleted in the
// background); f.mu is held.
func (f *File) abortStreamLocked() {
	if f.stream != nil {
		f.stream.Abort()
		f.stream = nil
	}
}

// moved gives the file its new path p after a rename; info, when ok, is what its object is
// now (handles pinned to the old generation follow it).
func (f *File) moved(p string, info Info, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.path = p
	if ok {
		f.successors.Replaced(f.info.Gen, info.Gen, info)
		f.info, f.infoAt = info, f.fs.Now()
		if f.stage != nil {
			f.stage.Rebase(info.Gen, info.Size)
		}
	}
}

// takeCleanStageLocked takes the staging file when no writer is left (writers) and it has
// nothing to upload; the caller closes it after unlocking f.mu.
func (f *File) takeCleanStageLocked(writers int) (drop *Stage) {
	if writers == 0 && f.stage != nil && !f.stage.State().Dirty {
		drop = f.stage
		f.setStageLocked(nil)
	}
	return drop
}

// staleSeen forgets the file's view of generation gen after a read found it gone, so that
// the next open sees the new object.
func (f *File) staleSeen(gen int64) {
	f.mu.Lock()
	if f.info.Gen == gen {
		f.infoAt = time.Time{}
	}
	p := f.path
	f.mu.Unlock()
	f.fs.meta.Forget(MetaKey(f.c.Name, p))
}

// readObject reads generation info of the file at p through the cache; when spanOK, it may
// return the bytes' place in the cache (a Span, for a zero-copy reply) instead of copying them
// into dest. A generation that is gone becomes ErrStale.
func (f *File) readObject(ctx context.Context, p string, info Info, dest []byte, off int64, spanOK bool) (*cache.Span, int, error) {
	if off >= info.Size || info.Gen == 0 {
		return nil, 0, nil
	}
	if int64(len(dest)) > info.Size-off {
		dest = dest[:info.Size-off]
	}
	var sp *cache.Span
	var k int
	var err error
	obj, src := f.c.objectOf(p, info), f.c.sourceOf(info)
	if spanOK {
		sp, k, err = f.fs.cfg.Cache.ReadSpan(ctx, src, obj, dest, off)
	} else {
		k, err = f.fs.cfg.Cache.ReadAt(ctx, src, obj, dest, off)
	}
	f.fs.cfg.Observer.CacheServed(int64(k))
	if err == io.EOF {
		err = nil
	}
	if err != nil && (errors.Is(err, store.ErrNotExist) || errors.Is(err, store.ErrPrecondition)) {
		err = errors.Join(ErrStale, err)
	}
	return sp, k, err
}

// copyChunk is the size of the reads that copy an object into a staging file.
const copyChunk = 1 << 20

// copyObject copies generation info of the file at p into w through the read cache.
func (f *File) copyObject(ctx context.Context, p string, info Info, w io.WriterAt) error {
	buf := make([]byte, copyChunk)
	for off := int64(0); off < info.Size; {
		_, k, err := f.readObject(ctx, p, info, buf, off, false)
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
