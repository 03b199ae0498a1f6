package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/plxfs/plxfs/vfs"
)

// POSIX attributes kept with the objects (SEMANTICS.md "Permissions and metadata"): the core
// keeps mode, owner and times in each object's user metadata (package posixmd), a directory's
// in its placeholder object (vfs.Attrs, vfs.Dir.Setattr, vfs.File.Setattr). The kernel checks
// permissions against them (default_permissions).

// attrChange decodes what a SETATTR asks to change (the size aside).
func attrChange(in *fuse.SetAttrIn) vfs.AttrChange {
	var c vfs.AttrChange
	if t, ok := in.GetMTime(); ok {
		c.Mtime = &t
	}
	if m, ok := in.GetMode(); ok {
		c.Mode = &m
	}
	if u, ok := in.GetUID(); ok {
		c.UID = &u
	}
	if g, ok := in.GetGID(); ok {
		c.GID = &g
	}
	if t, ok := in.GetATime(); ok {
		c.Atime = &t
	}
	return c
}

// leafNode is a symlink or a special file (FIFO, socket, device node): the kernel's node of a
// vfs.Leaf, an object that holds nothing but metadata. The kernel serves a special file's opens
// (a FIFO is a pipe within this mount); plxfs only keeps its attributes.
type leafNode struct {
	fusefs.Inode
	fsys *FS
	conn *conn
	l    *vfs.Leaf
}

var (
	_ = (fusefs.NodeGetattrer)((*leafNode)(nil))
	_ = (fusefs.NodeSetattrer)((*leafNode)(nil))
	_ = (fusefs.NodeReadlinker)((*leafNode)(nil))
	_ = (fusefs.NodeOnForgetter)((*leafNode)(nil))
)

// Getattr answers lstat(2) of a symlink or special file (GETATTR): the attributes the node
// knows (a symlink: mode 0777, size the target's length; a special file: the type and device
// number its metadata records). It never fails.
func (m *leafNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	m.fsys.fillAttr(m.StableAttr().Ino, m.l.Attr(), &out.Attr)
	return 0
}

// Setattr answers chmod, chown and utimensat of a symlink or special file (SETATTR; for a
// symlink lchown and utimensat with AT_SYMLINK_NOFOLLOW: its mode is always 0777, and the
// kernel does not ask to change it): a metadata patch of the generation the mount knows (such
// a node has no size). Errors: EROFS on a read-only or draining mount; ESTALE when the object
// was replaced behind the mount; EIO.
func (m *leafNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	info, err := m.l.Setattr(ctx, attrChange(in))
	if err != nil {
		return m.fsys.fail("setattr", m.conn, m.l.Path(), err)
	}
	m.fsys.fillAttr(m.StableAttr().Ino, info, &out.Attr)
	return 0
}

// Readlink answers readlink(2) of a symlink (READLINK): the target recorded in the object's
// metadata when it was looked up. It never fails.
func (m *leafNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	return []byte(m.l.Attr().Target), 0
}

// OnForget runs when the kernel forgets the inode: the core forgets it too.
func (m *leafNode) OnForget() { m.l.Forget() }
