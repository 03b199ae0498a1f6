package vfs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plxfs/plxfs/cache"
)

// OpenFile is one open(2) of a File. Reads see the staged content when the file has local
// state, otherwise the generation pinned at open (or what this mount's own uploads replaced it
// by).
type OpenFile struct {
	f     *File
	write bool
	// Pinned at open; guarded by f.mu after that (successors update them).
	Gen, Size int64
	CRC       uint32
	HasCRC    bool
	DataGen   int64 // Info.DataGen of Gen
	// Whole is the cache's pinned data file of a passthrough open (nil otherwise): the kernel
	// reads it itself.
	Whole *cache.Whole
	st    *Handle // the handle's state in f.opens (mode, flushed, released)
}

// File is the file h opened.
func (h *OpenFile) File() *File { return h.f }

// pin makes h read generation info (its size and CRC32C with it).
func (h *OpenFile) pin(info Info) {
	h.Gen, h.Size, h.CRC, h.HasCRC, h.DataGen = info.Gen, info.Size, info.CRC, info.HasCRC, info.DataGen
}

// pinned is the generation h reads.
func (h *OpenFile) pinned() Info {
	return Info{Gen: h.Gen, Size: h.Size, CRC: h.CRC, HasCRC: h.HasCRC, DataGen: h.DataGen}
}

// Open opens the file. The handle is pinned to the generation the file knows now. With
// passthrough (the kernel offers it and the mount is read-only) a wholly cached object may be
// opened in passthrough mode (h.Whole set; see openPassthrough); otherwise the handle reads
// through the mount, and keep says whether the kernel may keep the pages it holds (they are of
// this generation). An open for writing gets the staging file, and trunc empties it at once.
func (f *File) Open(ctx context.Context, write, trunc, passthrough bool) (h *OpenFile, keep bool, err error) {
	trunc = trunc && write
	if write && f.fs.cfg.ReadOnly {
		return nil, false, ErrReadOnly
	}
	h = &OpenFile{f: f, write: write}
	if !write && passthrough {
		keep = f.openPassthrough(h)
		return h, keep, nil
	}
	f.mu.Lock()
	if write {
		if err := f.ensureStageLocked(); err != nil {
			f.mu.Unlock()
			return nil, false, err
		}
	}
	h.st = f.opens.OpenCached(write)
	keep = f.pinCachedLocked(h, trunc)
	f.mu.Unlock()
	if trunc {
		if err := f.truncate(ctx, 0); err != nil {
			h.Release()
			return nil, false, err
		}
	}
	return h, keep, nil
}

// pinCachedLocked pins a page-cached handle h to the file's current generation and reports
// whether the kernel may keep the pages it holds.
func (f *File) pinCachedLocked(h *OpenFile, trunc bool) (keep bool) {
	h.pin(f.info)
	_, local := f.localLocked()
	keep = !local && !trunc && f.info.Gen != 0 && f.keepGen == f.info.Gen
	f.keepGen = f.info.Gen
	if local || trunc {
		f.keepGen = 0
	}
	return keep
}

// releaseWait bounds how long a passthrough open waits for the releases of handles already
// closed (flushed) before it settles for the page cache or the old generation.
const releaseWait = 50 * time.Millisecond

// joinWait bounds how long a passthrough open waits for another passthrough open under way
// to take its pin before it settles for the page cache.
const joinWait = 100 * time.Millisecond

// openPassthrough opens h in passthrough mode when f.opens says it may (only when every open
// handle is a passthrough handle; then every open joins them, on their generation): the
// kernel reads the cache's data file itself, pinned until the handle is released. It waits, on
// the channels Opens gives, up to releaseWait for the releases of handles already flushed, and
// up to joinWait for a concurrent passthrough open to take its pin. When the open must read
// through the mount instead, h is registered as a page-cached handle in the same critical
// section as that decision, so that no passthrough open can slip in between, and keep is
// the page-cache choice.
func (f *File) openPassthrough(h *OpenFile) (keep bool) {
	waitUntil, joinUntil := time.Now().Add(releaseWait), time.Now().Add(joinWait)
	for {
		f.mu.Lock()
		cur := Pin{Gen: f.info.Gen, Size: f.info.Size, CRC: f.info.CRC, HasCRC: f.info.HasCRC, DataGen: f.info.DataGen}
		step := f.opens.Join(cur, time.Now().Before(waitUntil), time.Now().Before(joinUntil))
		if step.Wait != nil {
			f.mu.Unlock()
			waitFor(step.Wait, waitUntil)
			continue
		}
		h.st = step.Handle
		if step.Handle.Mode() == Cached {
			keep = f.pinCachedLocked(h, false)
			f.mu.Unlock()
			return keep
		}
		p := f.path
		f.mu.Unlock()
		info := Info{Gen: step.Pin.Gen, Size: step.Pin.Size, CRC: step.Pin.CRC, HasCRC: step.Pin.HasCRC, DataGen: step.Pin.DataGen}
		if w, ok := f.fs.cfg.Cache.OpenWhole(f.c.objectOf(p, info)); ok {
			h.pin(info)
			h.Whole = w
			f.opens.Settle(step.Handle, true)
			return false
		}
		f.mu.Lock()
		cached, retry := f.opens.Settle(step.Handle, false)
		if cached {
			keep = f.pinCachedLocked(h, false)
			f.mu.Unlock()
			return keep
		}
		f.mu.Unlock()
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

// Read reads up to len(dest) bytes at off: the staged content of a file with local state,
// otherwise the generation pinned at open (or the one this mount's own upload replaced it by)
// through the cache. When spanOK it may return the bytes' place in the cache instead (a Span
// the caller closes), for a reply without a copy. A generation that is gone fails with
// ErrStale (and the file forgets it), and so does a read past its end once a bigger generation
// is known (the kernel keeps one size per file and would fill the rest with zeros).
func (h *OpenFile) Read(ctx context.Context, dest []byte, off int64, spanOK bool) (*cache.Span, int, error) {
	f := h.f
	f.mu.Lock()
	st := f.stage
	local := f.stageState().Filled
	info := h.pinned()
	if _, next, ok := f.successors.Follow(info.Gen); ok {
		info = next
	}
	h.pin(info)
	p := f.path
	outgrown := !local && info.Gen != 0 && f.info.Gen != info.Gen && f.info.Size > info.Size &&
		off+int64(len(dest)) > info.Size
	f.mu.Unlock()
	if outgrown {
		return nil, 0, errors.Join(ErrStale, fmt.Errorf("generation %d (%d bytes) was replaced by a bigger one", info.Gen, info.Size))
	}
	if local {
		k, err := st.ReadAt(dest, off)
		return nil, k, err
	}
	sp, k, err := f.readObject(ctx, p, info, dest, off, spanOK)
	if errors.Is(err, ErrStale) {
		f.staleSeen(info.Gen)
	}
	return sp, k, err
}

// Flush is a close(2) of the handle (or of a dup of it): a writing handle uploads the staged
// content if it changed (Sync), so a failed upload reaches the program; a reading handle only
// counts the flush (see Opens).
func (h *OpenFile) Flush(ctx context.Context) error {
	h.f.opens.Flush(h.st)
	if !h.write {
		return nil
	}
	return h.f.Sync(ctx)
}

// Release is the last close of the handle: it drops a clean staging file when the last writer
// goes, and stops prefetches when the last handle goes.
func (h *OpenFile) Release() {
	f := h.f
	if h.Whole != nil {
		h.Whole.Close()
	}
	f.mu.Lock()
	handles, writers := f.opens.Release(h.st)
	drop := f.takeCleanStageLocked(writers)
	if handles == 0 {
		f.successors.Clear()
	}
	last, p := handles == 0, f.path
	info := h.pinned()
	f.mu.Unlock()
	if drop != nil {
		drop.Close()
	}
	if last && info.Gen != 0 {
		// Nobody reads the file any more (a reader that was killed included): fetches started
		// ahead of its readers stop.
		f.fs.cfg.Cache.StopPrefetch(f.c.objectOf(p, info))
	}
}
