package fs

import (
	"context"
	"errors"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/vfs"
)

// dirNode is a directory of a connection: the kernel's node of a vfs.Dir (its attributes,
// times and cached listing live in the core).
type dirNode struct {
	fusefs.Inode
	fsys *FS
	conn *conn
	d    *vfs.Dir
}

var (
	_ = (fusefs.NodeGetattrer)((*dirNode)(nil))
	_ = (fusefs.NodeSetattrer)((*dirNode)(nil))
	_ = (fusefs.NodeStatfser)((*dirNode)(nil))
	_ = (fusefs.NodeLookuper)((*dirNode)(nil))
	_ = (fusefs.NodeOpendirHandler)((*dirNode)(nil))
	_ = (fusefs.NodeOnForgetter)((*dirNode)(nil))
)

// childPath is the path of the entry name in a directory at dirPath.
func childPath(dirPath, name string) string { return vfs.ChildPath(dirPath, name) }

// Getattr answers stat(2) of a directory (GETATTR, sent when the attributes the kernel holds
// have expired, after the TTL). It returns what the placeholder object records (mode, owner,
// times), fetching the placeholder when that is older than the TTL (ensureInfo). It never
// fails: a fetch that fails shows what the node knows, or the defaults (logged at debug).
func (d *dirNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fsys.fillAttr(d.StableAttr().Ino, d.d.Attr(ctx), &out.Attr)
	return 0
}

// Setattr answers chmod, chown and utimensat of a directory (SETATTR; the kernel has checked
// the caller's permission: default_permissions). It must apply the changes and return the new
// attributes. plxfs records mode, owner and times in the placeholder object, writing one for a
// directory that has none (an implicit directory). The root of a connection on a whole bucket
// has no placeholder: its attributes change for this mount's lifetime only. With
// --no-posix-metadata the changes are accepted and ignored. Errors: EROFS on a read-only or
// draining mount; EIO or EACCES when the bucket refuses the patch.
func (d *dirNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	info, err := d.d.Setattr(ctx, attrChange(in))
	if err != nil {
		return d.fsys.fail("setattr", d.conn, d.d.Path(), err)
	}
	d.fsys.fillAttr(d.StableAttr().Ino, info, &out.Attr)
	return 0
}

// OnForget runs when the kernel forgets the directory's inode: the core forgets it too.
func (d *dirNode) OnForget() { d.d.Forget() }

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
	info, at, err := d.d.Lookup(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotExist) && !at.IsZero() {
			d.fsys.setTimeouts(out, at)
		}
		return nil, d.fsys.fail("lookup", d.conn, childPath(d.d.Path(), name), err)
	}
	ch := d.childInode(ctx, name, info, at)
	d.fsys.fillAttr(ch.StableAttr().Ino, nodeInfo(ctx, ch, info), &out.Attr)
	d.fsys.setTimeouts(out, at)
	return ch, 0
}

// childInode returns the inode for the child name described by info (learnt at time at): the
// existing child when it is the kernel's node of the core's node for it, otherwise a new one.
func (d *dirNode) childInode(ctx context.Context, name string, info vfs.Info, at time.Time) *fusefs.Inode {
	node := d.d.Child(name, info, at)
	if ch := d.GetChild(name); ch != nil && coreOf(ch) == node {
		return ch
	}
	return d.NewInode(ctx, d.fsys.nodeFor(d.conn, node), d.stable(node.Path(), info))
}

// stable is the stable attribute of the node at path p described by info.
func (d *dirNode) stable(p string, info vfs.Info) fusefs.StableAttr {
	return fusefs.StableAttr{Mode: info.FileType(), Ino: inoFor(d.conn.name, p, info.Kind), Gen: d.conn.core.Incarnation(p)}
}

// nodeFor wraps a core node in its kernel node.
func (f *FS) nodeFor(c *conn, node vfs.Node) fusefs.InodeEmbedder {
	switch n := node.(type) {
	case *vfs.Dir:
		return &dirNode{fsys: f, conn: c, d: n}
	case *vfs.Leaf:
		return &leafNode{fsys: f, conn: c, l: n}
	}
	return &fileNode{fsys: f, conn: c, f: node.(*vfs.File)}
}

// coreOf is the core's node behind the kernel's node ch.
func coreOf(ch *fusefs.Inode) vfs.Node {
	switch n := ch.Operations().(type) {
	case *fileNode:
		return n.f
	case *dirNode:
		return n.d
	case *leafNode:
		return n.l
	}
	return nil
}

// nodeInfo is the info to report for ch: a file's local view wins (size of staged data); a
// directory's attributes are its placeholder's.
func nodeInfo(ctx context.Context, ch *fusefs.Inode, info vfs.Info) vfs.Info {
	switch n := ch.Operations().(type) {
	case *fileNode:
		return n.f.Info()
	case *dirNode:
		return n.d.Attr(ctx)
	}
	return info
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
	entries  []vfs.Entry
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
	h.path = h.d.d.Path()
	entries, at, err := h.d.d.List(ctx)
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
	st := h.d.stable(childPath(h.path, e.Name), e.Info)
	return &fuse.DirEntry{Name: e.Name, Mode: st.Mode, Ino: st.Ino, Off: uint64(h.pos)}, 0
}

// Lookup answers READDIRPLUS for the entry Readdirent returned last (go-fuse calls it instead
// of dirNode.Lookup). It returns the child made from the listing's entry, with the listing's
// age as timeouts, and sends no request. ENOENT for a name not in the listing.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	var e vfs.Entry
	if h.pos > 0 && h.pos <= len(h.entries) && h.entries[h.pos-1].Name == name {
		e = h.entries[h.pos-1]
	} else if found, ok := vfs.FindEntry(h.entries, name); ok {
		e = found
	} else {
		return nil, h.d.fsys.fail("lookup", h.d.conn, childPath(h.path, name), errNotInListing)
	}
	ch := h.d.childInode(ctx, name, e.Info, h.listedAt)
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
