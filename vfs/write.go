package vfs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
)

// ErrNotWritable: a write through a handle not open for writing (the kernel checks first).
var ErrNotWritable = errors.New("handle not open for writing")

// ensureStageLocked gives f a staging file if it has none: a file never uploaded starts filled
// (its content is empty); an existing object is copied in on the first write. f.mu is held;
// creating the (local) staging file is the only I/O done under it.
func (f *File) ensureStageLocked() error {
	if f.stage != nil {
		return nil
	}
	st, err := NewStage(f.fs.gate, f.fs.cfg.StagingDir, f.info.Gen, f.info.Size)
	if err != nil {
		return err
	}
	f.setStageLocked(st)
	return nil
}

// stageForWrite returns the staging file with the content in place: on the first change to an
// existing object, its bytes are copied in through the read cache.
func (f *File) stageForWrite(ctx context.Context) (*Stage, error) {
	f.mu.Lock()
	if err := f.ensureStageLocked(); err != nil {
		f.mu.Unlock()
		return nil, err
	}
	st := f.stage
	f.mu.Unlock()
	if st.State().Filled {
		return st, nil
	}
	st.LockIO()
	defer st.UnlockIO()
	f.mu.Lock()
	ss, p := st.State(), f.path
	base := Info{Gen: ss.BaseGen, Size: ss.BaseSize}
	if f.info.Gen == base.Gen && f.info.Size == base.Size {
		base = f.info // with its CRC32C, and the generation its bytes are cached under
	}
	f.mu.Unlock()
	if ss.Filled {
		return st, nil
	}
	if err := f.copyObject(ctx, p, base, st.File()); err != nil {
		return nil, fmt.Errorf("copy the current content before a change: %w", err)
	}
	st.Filled(base.Size)
	return st, nil
}

// Write writes data at off into the staging file (an existing object is copied in through
// the cache at the first change) and feeds a new file written in order to its streamed
// upload. Nothing reaches the bucket before Sync.
func (h *OpenFile) Write(ctx context.Context, data []byte, off int64) (int, error) {
	if !h.write {
		return 0, ErrNotWritable
	}
	f := h.f
	st, err := f.stageForWrite(ctx)
	if err != nil {
		return 0, err
	}
	st.RLockIO()
	defer st.RUnlockIO()
	k, err := st.WriteAt(data, off)
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := st.Wrote(off, k, f.fs.Now())
	if k == 0 || f.stage != st {
		return k, err
	}
	if f.stream == nil && off == 0 && prev == 0 && !f.unlinked && f.fs.streaming() {
		f.stream = f.c.up.NewStream(st.File())
	}
	if f.stream != nil && !f.stream.Wrote(data[:k], off) {
		f.abortStreamLocked()
	}
	return k, err
}

// streaming reports whether uploads of big files start while they are written: a new or
// truncated file written in order from offset 0 feeds a transfer.PartWriter (Uploader's
// stream), whose completed parts upload in the background once the file reaches the compose
// threshold; Sync then only uploads the tail and composes. Any other write, a truncate or an
// unlink abandons the stream.
func (f *FS) streaming() bool {
	return !f.cfg.ReadOnly && f.cfg.Upload.ComposeThreshold >= 0
}

// truncate sets the size through the staging file; truncating to 0 needs no copy of the old
// content.
func (f *File) truncate(ctx context.Context, size int64) error {
	var st *Stage
	if size == 0 {
		f.mu.Lock()
		err := f.ensureStageLocked()
		st = f.stage
		f.mu.Unlock()
		if err != nil {
			return err
		}
	} else {
		var err error
		if st, err = f.stageForWrite(ctx); err != nil {
			return err
		}
	}
	st.LockIO()
	defer st.UnlockIO()
	if err := st.Truncate(size); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st.Truncated(size, f.fs.Now())
	f.keepGen = 0
	f.abortStreamLocked()
	return nil
}

// Sync uploads the staged content if it has changes, under the precondition of the generation
// it replaces (0: none may exist), on a context the caller's interrupts do not cancel. On
// failure the staged data stays, dirty, for the next Sync; nothing partial is visible in the
// bucket. After the upload the file serves the new generation, handles opened earlier follow
// it, and the written bytes are stored in the cache so they are not fetched again.
func (f *File) Sync(ctx context.Context) error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	f.mu.Lock()
	st := f.stage
	if st == nil || !st.State().Dirty || f.unlinked {
		f.mu.Unlock()
		return nil
	}
	f.mu.Unlock()

	st.LockIO()
	defer st.UnlockIO()
	f.mu.Lock()
	ss := st.State()
	if f.unlinked || !ss.Dirty || f.stage != st {
		f.mu.Unlock()
		return nil
	}
	p, size, version := f.path, ss.Size, ss.Version
	wo := f.fs.writeOptions(p, ss.BaseGen, ss.ModTime(), f.info.Posix) // mtime: the last local change
	stream := f.stream
	f.stream = nil
	f.mu.Unlock()

	attrs, err := f.c.up.Send(ctx, p, st.File(), size, wo, stream)
	if err != nil {
		return err
	}
	info := InfoFromAttrs(attrs)
	info.Size = size
	f.mu.Lock()
	f.successors.Replaced(f.info.Gen, info.Gen, info)
	f.info, f.infoAt = info, f.fs.Now()
	st.Uploaded(version, info.Gen, size)
	f.keepGen = 0 // the kernel's pages came from writes; let the next open start clean
	f.mu.Unlock()

	f.fs.meta.PutFound(MetaKey(f.c.Name, p), info)
	f.c.noteInParent(p, info)
	if err := f.fs.cfg.Cache.Fill(f.c.objectOf(p, info), st.File()); err != nil {
		f.fs.log.Warn("cache fill after upload failed; reads will fetch", "connection", f.c.Name, "path", p, "err", err)
	}
	return nil
}

// writeOptions are the options of a new generation of the file at p: its modification time and
// the attributes pa (mode, owner, atime) carried over from the generation it replaces, or given
// at its creation.
func (f *FS) writeOptions(p string, ifGen int64, mtime time.Time, pa posixmd.Attrs) store.WriteOptions {
	wo := store.WriteOptions{IfGen: ifGen, ContentType: ContentType(p)}
	pa.Mtime = mtime
	if md := f.attrs().Metadata(pa); len(md) > 0 {
		wo.Metadata = md
	}
	return wo
}

// Setattr is truncate(2), ftruncate(2), chmod, chown and utimensat of the file (size when
// hasSize; pathOnly: no handle, as truncate(2)). A size change goes through the staging file:
// on a path it is uploaded at once, through a handle at close. Mode, owner and times ride with
// the pending upload when there is one, else they are a metadata patch of the generation the
// mount knows. It returns what stat reports afterwards.
func (f *File) Setattr(ctx context.Context, size int64, hasSize bool, change AttrChange, pathOnly bool) (Info, error) {
	_, changed := f.fs.attrs().Apply(f.Info().Posix, change, time.Time{}, f.fs.Now())
	if f.fs.cfg.ReadOnly && (hasSize || changed) {
		return Info{}, ErrReadOnly
	}
	if hasSize {
		if err := f.setSize(ctx, size, pathOnly); err != nil {
			return Info{}, err
		}
	}
	if changed {
		if err := f.setAttrs(ctx, change); err != nil {
			return Info{}, err
		}
	}
	return f.Info(), nil
}

// setSize truncates the file. A truncate(2) on a path with no writer open is uploaded at once,
// since no close will follow it.
func (f *File) setSize(ctx context.Context, size int64, pathOnly bool) error {
	f.opens.Hold() // keep the stage while we use it
	err := f.truncate(ctx, size)
	if err == nil && pathOnly && f.opens.Writers() == 1 {
		err = f.Sync(ctx)
	}
	f.mu.Lock()
	drop := f.takeCleanStageLocked(f.opens.Unhold())
	f.mu.Unlock()
	if drop != nil {
		drop.Close()
	}
	return err
}

// setAttrs records mode, owner and time changes: with the pending upload when there is one,
// otherwise as a metadata patch of the generation the mount knows (no data is rewritten; a
// generation replaced behind the mount fails the patch with ErrStale).
func (f *File) setAttrs(ctx context.Context, change AttrChange) error {
	f.mu.Lock()
	cur, _ := f.localLocked()
	if !f.stageState().Filled {
		cur = f.info
	}
	old := f.info.Posix
	pa, _ := f.fs.attrs().Apply(old, change, cur.Mtime, f.fs.Now())
	if st := f.stage; f.stageState().Dirty || f.info.Gen == 0 {
		f.info.Posix, f.info.Ctime = pa, f.fs.Now()
		if change.Mtime != nil && st != nil {
			st.SetMtime(*change.Mtime)
		}
		f.mu.Unlock()
		return nil
	}
	p, gen := f.path, f.info.Gen
	f.mu.Unlock()
	if f.fs.gate.Draining() {
		// A new change to an object nobody is writing: refused from SIGTERM on, as a new
		// writer would be (changes to a file being written go with its pending upload).
		return ErrDraining
	}
	attrs, err := f.c.objs.Patch(ctx, p, gen, f.fs.attrs().Patch(old, pa, change))
	if errors.Is(err, store.ErrPrecondition) || errors.Is(err, store.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrStale, err)
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	info := f.patchedLocked(gen, InfoFromAttrs(attrs))
	f.mu.Unlock()
	f.fs.meta.PutFound(MetaKey(f.c.Name, p), info)
	f.c.noteInParent(p, info)
	return nil
}

// patchedLocked takes next, the answer to a metadata patch of generation gen, as the truth of
// the object (its attributes are what the bucket holds now; what the mount knew before may
// be older) unless the mount replaced gen meanwhile, and returns the file's info; f.mu is
// held. GCS keeps the generation across a patch; fake-gcs-server's filesystem backend gives
// the object a new one with the same bytes: the file then reads the new generation, finds
// those bytes in the cache under the old one (Info.DataGen), and its handles, staged content
// and kernel pages follow, as after an upload. A new generation with other bytes (someone
// overwrote the object meanwhile) is learnt without that: open handles keep theirs.
func (f *File) patchedLocked(gen int64, next Info) Info {
	if f.info.Gen != gen {
		return f.info
	}
	if next.Gen != gen && f.info.sameBytes(next) {
		next.DataGen = f.info.BytesGen()
		f.successors.Replaced(gen, next.Gen, next)
		if f.keepGen == gen {
			f.keepGen = next.Gen
		}
		if f.stage != nil && f.stage.State().BaseGen == gen {
			f.stage.Rebase(next.Gen, next.Size)
		}
	}
	f.info, f.infoAt = next, f.fs.Now()
	return f.info
}
