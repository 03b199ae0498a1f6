package fs

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sync/singleflight"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/vfs"
)

// maxCachedListing bounds the size of a listing a directory keeps for the TTL. A bigger
// directory is listed again on every opendir (its entries still land in the stat cache), so
// memory stays bounded however big the directories are.
const maxCachedListing = 50_000

// dirNode is a directory of a connection: the connection root (path "") or a prefix below it.
type dirNode struct {
	fusefs.Inode
	fsys *FS
	conn *conn

	// mu guards the fields below.
	mu     sync.Mutex
	path   string    // relative to the connection root; "" for the root
	info   objInfo   // what the placeholder object says (mode, owner, times), and this mount's changes
	infoAt time.Time // when info was learnt from the bucket; zero: not yet (see ensureInfo)
	// timesPending: an entry changed and the new mtime is not stored yet; timesStoring: a
	// store of it is under way; timesStored: when the times were last stored (see touched).
	timesPending bool
	timesStoring bool
	timesStored  time.Time
	listing      []dirEntry // cached listing (sorted), nil when none
	listedAt     time.Time
	// changes are what this mount changed in the directory since the cached listing was
	// made (nil: removed); they override the listing, so a change does not cost a relisting.
	changes map[string]*objInfo
	listGen uint64 // bumped by every change made through the mount; a listing started before is not kept
	// misses counts lookups sent to the bucket since missesSince (within one TTL); past
	// lookupListThreshold the directory is listed instead (see lookupInfo).
	misses      int
	missesSince time.Time
	bigListedAt time.Time // last listing too big to keep: no listing-for-lookups until the TTL passes

	lists singleflight.Group // one listing of this directory at a time
}

// lookupListThreshold is how many lookups of one directory may go to the bucket within a TTL
// before the next one lists the whole directory instead: a reader that opens a directory's
// files by name (without readdir) then costs one paginated listing, not two requests per file.
const lookupListThreshold = 4

var (
	_ = (fusefs.NodeGetattrer)((*dirNode)(nil))
	_ = (fusefs.NodeSetattrer)((*dirNode)(nil))
	_ = (fusefs.NodeStatfser)((*dirNode)(nil))
	_ = (fusefs.NodeLookuper)((*dirNode)(nil))
	_ = (fusefs.NodeOpendirHandler)((*dirNode)(nil))
)

func (d *dirNode) getPath() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.path
}

// childPath is the path of the entry name in a directory at dirPath.
func childPath(dirPath, name string) string { return vfs.ChildPath(dirPath, name) }

// dirPrefix is the full object prefix listing the directory at path.
func (c *conn) dirPrefix(path string) string { return c.objs.DirPrefix(path) }

// objectName is the full object name of the file at path.
func (c *conn) objectName(path string) string { return c.objs.Name(path) }

// Getattr answers stat(2) of a directory (GETATTR, sent when the attributes the kernel holds
// have expired, after the TTL). It returns what the placeholder object records (mode, owner,
// times), fetching the placeholder when that is older than the TTL (ensureInfo). It never
// fails: a fetch that fails shows what the node knows, or the defaults (logged at debug).
func (d *dirNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fsys.fillAttr(d.StableAttr().Ino, d.currentInfo(ctx), &out.Attr)
	return 0
}

// currentInfo is the directory's info, fetched from its placeholder when not known within the
// TTL.
func (d *dirNode) currentInfo(ctx context.Context) objInfo {
	d.ensureInfo(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	info := d.info
	info.Kind = kindDir
	return info
}

// Statfs answers statfs(2) inside a connection (STATFS). It never fails; see statfsOut.
func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfsOut(out)
	return 0
}

// Lookup answers the kernel's LOOKUP of name in the directory: sent for each path component
// the kernel holds no valid entry for (none, or its entry or negative entry expired). It must
// return the child's inode with its attributes in out; out's entry and attribute timeouts say
// how long the kernel may keep the answer, or the absence. plxfs finds name from, in order: a
// child with local state (a file being written), an orphaned staging file, the stat cache,
// this directory's cached listing, and finally the bucket (see lookupInfo). The timeouts are
// what is left of the TTL since the answer was learnt. Errors: ENOENT for a name that does
// not exist (the kernel keeps the absence for the rest of the TTL) or that no object can have
// (hidden names); EIO when the bucket did not answer; EACCES when the credentials are
// refused; EINTR.
func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	dirPath := d.getPath()
	p := childPath(dirPath, name)
	if hideReason(name) != "" || connspec.ObjectNameOK(name) != nil {
		return nil, d.fsys.fail("lookup", d.conn, p, errHiddenName)
	}
	info, at, err := d.lookupInfo(ctx, dirPath, name)
	if err != nil {
		if errors.Is(err, store.ErrNotExist) && !at.IsZero() {
			d.fsys.setTimeouts(out, at)
		}
		return nil, d.fsys.fail("lookup", d.conn, p, err)
	}
	ch := d.childInode(ctx, name, p, info, at)
	d.fsys.fillAttr(ch.StableAttr().Ino, nodeInfo(ctx, ch, info), &out.Attr)
	d.fsys.setTimeouts(out, at)
	return ch, 0
}

// lookupInfo returns what is at dirPath/name and when that was learnt, or an error wrapping
// store.ErrNotExist (with the time the absence was learnt).
func (d *dirNode) lookupInfo(ctx context.Context, dirPath, name string) (objInfo, time.Time, error) {
	p := childPath(dirPath, name)
	now := d.fsys.now()
	if ch := d.GetChild(name); ch != nil {
		if fn, ok := ch.Operations().(*fileNode); ok {
			if info, ok := fn.localInfo(); ok {
				return info, now, nil
			}
		}
	}
	if info, ok := d.fsys.orphanInfo(d.conn, p); ok {
		return info, now, nil
	}
	key := metaKey(d.conn.name, p)
	if info, at, found, missing := d.fsys.meta.Get(key); found {
		return info, at, nil
	} else if missing {
		return objInfo{}, at, store.ErrNotExist
	}
	d.mu.Lock()
	if d.listing != nil && d.fsys.fresh(d.listedAt) {
		at := d.listedAt
		info, ok := d.changes[name]
		if !ok {
			var e dirEntry
			if e, ok = findEntry(d.listing, name); ok {
				info = &e.Info
			}
		}
		d.mu.Unlock()
		if !ok || info == nil {
			return objInfo{}, at, store.ErrNotExist
		}
		return *info, at, nil
	}
	if !d.fsys.fresh(d.missesSince) {
		d.misses, d.missesSince = 0, now
	}
	d.misses++
	listInstead := d.misses > lookupListThreshold && d.fsys.opts.TTL > 0 && !d.fsys.fresh(d.bigListedAt)
	d.mu.Unlock()
	if listInstead {
		entries, at, err := d.list(ctx)
		if err == nil {
			if e, ok := findEntry(entries, name); ok {
				return e.Info, at, nil
			}
			d.fsys.meta.PutMissing(key)
			return objInfo{}, at, store.ErrNotExist
		}
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			// The backend did not answer in time (hedged, then given up): a stat would only
			// wait as long again. Other listing errors fall back to the stat.
			return objInfo{}, time.Time{}, err
		}
	}
	info, err := d.conn.objs.Stat(ctx, p)
	if errors.Is(err, store.ErrNotExist) {
		d.fsys.meta.PutMissing(key)
		return objInfo{}, now, err
	}
	if err != nil {
		return objInfo{}, time.Time{}, err
	}
	d.fsys.meta.PutFoundAt(key, info, now)
	return info, now, nil
}

// childInode returns the inode for the child name (at path p) described by info: the existing
// child when it has the same kind (its attributes refreshed), otherwise a new one.
func (d *dirNode) childInode(ctx context.Context, name, p string, info objInfo, at time.Time) *fusefs.Inode {
	if ch := d.GetChild(name); ch != nil {
		switch n := ch.Operations().(type) {
		case *fileNode:
			if info.Kind == kindFile {
				n.refreshAt(info, at)
				return ch
			}
		case *dirNode:
			if info.Kind == kindDir {
				if info.PlaceholderKnown { // a bare common prefix tells nothing of the attributes
					n.applyInfo(info, at)
				}
				return ch
			}
		case *symlinkNode:
			if info.Kind == kindSymlink {
				n.refresh(info)
				return ch
			}
		case *specialNode:
			if info.Kind == kindSpecial && info.Posix.Type() == n.StableAttr().Mode&syscall.S_IFMT {
				n.refresh(info)
				return ch
			}
		}
	}
	key := metaKey(d.conn.name, p)
	var emb fusefs.InodeEmbedder
	var mode uint32
	switch info.Kind {
	case kindDir:
		nd := &dirNode{fsys: d.fsys, conn: d.conn, path: p, info: info}
		if info.PlaceholderKnown {
			nd.infoAt = at // no stat of the placeholder (ensureInfo) before the TTL passes
		}
		emb, mode = nd, syscall.S_IFDIR
	case kindSpecial:
		emb, mode = &specialNode{metaNode{fsys: d.fsys, conn: d.conn, path: p, info: info, infoAt: at}}, info.Posix.Type()
	case kindSymlink:
		emb, mode = &symlinkNode{metaNode{fsys: d.fsys, conn: d.conn, path: p, info: info, infoAt: at}}, syscall.S_IFLNK
	default:
		fn := &fileNode{fsys: d.fsys, conn: d.conn, path: p, info: info, infoAt: at}
		fn.stage = d.fsys.takeOrphan(d.conn, p, fn)
		emb, mode = fn, syscall.S_IFREG
	}
	return d.NewInode(ctx, emb, fusefs.StableAttr{Mode: mode, Ino: inoFor(d.conn.name, p, info.Kind), Gen: d.fsys.genOf(key)})
}

// nodeInfo is the info to report for ch: a file's local view wins (size of staged data); a
// directory's attributes are its placeholder's.
func nodeInfo(ctx context.Context, ch *fusefs.Inode, info objInfo) objInfo {
	switch n := ch.Operations().(type) {
	case *fileNode:
		return n.currentInfo()
	case *dirNode:
		return n.currentInfo(ctx)
	}
	return info
}

// list returns the directory's entries and when they were listed: the cached listing while it
// is fresh, otherwise a new complete listing from the bucket, merged with files that exist
// only locally so far.
func (d *dirNode) list(ctx context.Context) ([]dirEntry, time.Time, error) {
	d.mu.Lock()
	if d.listing != nil && d.fsys.fresh(d.listedAt) {
		l, at := d.mergedLocked(), d.listedAt
		d.mu.Unlock()
		return l, at, nil
	}
	d.mu.Unlock()
	// Concurrent opendirs and lookups share one listing; it is not cancelled by one caller's
	// interrupt.
	ch := d.lists.DoChan("list", func() (any, error) {
		return d.listNow(context.WithoutCancel(ctx))
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, time.Time{}, r.Err
		}
		l := r.Val.(listed)
		return l.entries, l.at, nil
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
}

// listed is a listing and the time it started.
type listed struct {
	entries []dirEntry
	at      time.Time
}

// listNow lists the directory from the bucket.
func (d *dirNode) listNow(ctx context.Context) (listed, error) {
	d.mu.Lock()
	path, gen := d.path, d.listGen
	d.mu.Unlock()

	start := d.fsys.now()
	entries, hidden, placeholder, err := listDir(ctx, d.conn.bucket, d.conn.dirPrefix(path))
	if err != nil {
		return listed{}, err
	}
	d.fsys.logHidden(d.conn, hidden)
	entries = d.mergeLocal(entries)
	cacheable := len(entries) <= maxCachedListing
	if !cacheable {
		for _, e := range entries {
			d.fsys.meta.PutFoundAt(metaKey(d.conn.name, childPath(path, e.Name)), e.Info, start)
		}
	}

	if d.conn.dirPrefix(path) != "" { // the root of a whole bucket has no placeholder to read
		d.applyInfo(dirInfo(placeholder), start) // nil: a complete listing would have returned it
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cacheable && d.listGen == gen {
		d.listing, d.listedAt, d.changes = entries, start, nil
	}
	if !cacheable {
		d.bigListedAt = start
	}
	return listed{entries, start}, nil
}

// mergeLocal adds the files created through the mount that are not uploaded yet, and updates
// the entries of files with staged changes, so that ls shows what this mount's writers see.
func (d *dirNode) mergeLocal(entries []dirEntry) []dirEntry {
	var extra []dirEntry
	for name, ch := range d.Children() {
		fn, ok := ch.Operations().(*fileNode)
		if !ok {
			continue
		}
		info, ok := fn.localInfo()
		if !ok {
			continue
		}
		if i, found := findIndex(entries, name); found {
			if entries[i].Info.Kind == kindFile {
				entries[i].Info = info
			}
			continue
		}
		extra = append(extra, dirEntry{Name: name, Info: info})
	}
	if len(extra) == 0 {
		return entries
	}
	entries = append(entries, extra...)
	sortEntries(entries)
	return entries
}

// noteInParent records in the cached listing of in's parent directory (if any) that in's entry
// now has info: a node made again from that listing (after the kernel forgot this one) must
// show what this mount changed.
func noteInParent(in *fusefs.Inode, info objInfo) {
	if name, parent := in.Parent(); parent != nil {
		if d, ok := parent.Operations().(*dirNode); ok {
			d.noteChange(name, &info)
		}
	}
}

// noteChange records a change made through the mount to the entry name (info nil: removed).
// A cached listing stays valid with the change applied over it; a listing in flight when the
// change happens is not kept (it may or may not include the change).
func (d *dirNode) noteChange(name string, info *objInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.listGen++
	if d.listing == nil {
		return
	}
	if d.changes == nil {
		d.changes = map[string]*objInfo{}
	}
	if info != nil {
		c := *info
		info = &c
	}
	d.changes[name] = info
}

// mergedLocked is the cached listing with the changes applied, sorted.
func (d *dirNode) mergedLocked() []dirEntry {
	if len(d.changes) == 0 {
		return d.listing
	}
	out := make([]dirEntry, 0, len(d.listing)+len(d.changes))
	for _, e := range d.listing {
		if _, changed := d.changes[e.Name]; !changed {
			out = append(out, e)
		}
	}
	for name, info := range d.changes {
		if info != nil {
			out = append(out, dirEntry{Name: name, Info: *info})
		}
	}
	sortEntries(out)
	return out
}

// OpendirHandle answers opendir(3) (OPENDIR). It returns a dirHandle that lists the
// directory once, at its first READDIR, and answers READDIRPLUS lookups from that listing, so
// `ls -l` costs no request per entry. It never fails: a listing that fails fails the readdir.
func (d *dirNode) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{d: d}, 0, 0
}

// dirHandle is an open directory. go-fuse calls its methods one at a time (under the handle's
// own lock), so it needs none.
type dirHandle struct {
	d        *dirNode
	path     string
	entries  []dirEntry
	listedAt time.Time
	loaded   bool
	pos      int // index of the next entry; directory offsets are pos values
}

var (
	_ = (fusefs.FileReaddirenter)((*dirHandle)(nil))
	_ = (fusefs.FileLookuper)((*dirHandle)(nil))
	_ = (fusefs.FileSeekdirer)((*dirHandle)(nil))
	_ = (fusefs.FileReleasedirer)((*dirHandle)(nil))
	_ = (fusefs.FileFsyncdirer)((*dirHandle)(nil))
)

func (h *dirHandle) load(ctx context.Context) syscall.Errno {
	if h.loaded {
		return 0
	}
	h.path = h.d.getPath()
	entries, at, err := h.d.list(ctx)
	if err != nil {
		return h.d.fsys.fail("readdir", h.d.conn, h.path, err)
	}
	h.entries, h.listedAt, h.loaded = entries, at, true
	return 0
}

// Readdirent returns the next entry of the directory (READDIR and READDIRPLUS: go-fuse calls
// it until the kernel's buffer is full; nil ends the directory). The listing is made at the
// first call, once per handle (the directory's cached listing within the TTL, else a complete
// paginated one), and is sorted, so the stream is deterministic; offsets are positions in
// it. Errors (of the listing): EIO, EACCES, EINTR.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if errno := h.load(ctx); errno != 0 {
		return nil, errno
	}
	if h.pos >= len(h.entries) {
		return nil, 0
	}
	e := h.entries[h.pos]
	h.pos++
	mode := uint32(syscall.S_IFREG)
	switch e.Info.Kind {
	case kindDir:
		mode = syscall.S_IFDIR
	case kindSymlink:
		mode = syscall.S_IFLNK
	case kindSpecial:
		mode = e.Info.Posix.Type()
	}
	return &fuse.DirEntry{
		Name: e.Name,
		Mode: mode,
		Ino:  inoFor(h.d.conn.name, childPath(h.path, e.Name), e.Info.Kind),
		Off:  uint64(h.pos),
	}, 0
}

// Lookup answers READDIRPLUS for the entry Readdirent returned last (go-fuse calls it instead
// of dirNode.Lookup). It returns the child made from the listing's entry, with the listing's
// age as timeouts, and sends no request. ENOENT for a name not in the listing.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	var e dirEntry
	if h.pos > 0 && h.pos <= len(h.entries) && h.entries[h.pos-1].Name == name {
		e = h.entries[h.pos-1]
	} else if found, ok := findEntry(h.entries, name); ok {
		e = found
	} else {
		return nil, h.d.fsys.fail("lookup", h.d.conn, childPath(h.path, name), errNotInListing)
	}
	p := childPath(h.path, name)
	ch := h.d.childInode(ctx, name, p, e.Info, h.listedAt)
	h.d.fsys.fillAttr(ch.StableAttr().Ino, nodeInfo(ctx, ch, e.Info), &out.Attr)
	h.d.fsys.setTimeouts(out, h.listedAt)
	return ch, 0
}

// Seekdir answers seekdir(3) and rewinddir(3) (go-fuse calls it when a READDIR asks for an
// offset other than the stream's). Offset 0 lists the directory again; any other offset is a
// position in this handle's listing. It never fails.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == 0 {
		h.loaded, h.entries = false, nil
	}
	h.pos = int(off)
	return 0
}

// Releasedir is the kernel's RELEASEDIR after the last close of the directory: nothing to
// free, the listing goes with the handle.
func (h *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {}

// Fsyncdir answers fsync(2) of a directory (FSYNCDIR). It succeeds: every namespace change is
// made in the bucket before its call returns, so there is nothing to flush (programs fsync a
// directory after a rename for durability).
func (h *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno { return 0 }
