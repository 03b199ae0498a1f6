package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/plxfs/plxfs/vfs"
)

// rootNode is the mountpoint's directory: one subdirectory per connection, fixed at mount
// time. It refuses every change with EPERM (connections come from the configuration, not
// from mkdir).
type rootNode struct {
	fusefs.Inode
	fsys *FS
}

var (
	_ = (fusefs.NodeOnAdder)((*rootNode)(nil))
	_ = (fusefs.NodeGetattrer)((*rootNode)(nil))
	_ = (fusefs.NodeSetattrer)((*rootNode)(nil))
	_ = (fusefs.NodeStatfser)((*rootNode)(nil))
	_ = (fusefs.NodeMkdirer)((*rootNode)(nil))
	_ = (fusefs.NodeCreater)((*rootNode)(nil))
	_ = (fusefs.NodeSymlinker)((*rootNode)(nil))
	_ = (fusefs.NodeUnlinker)((*rootNode)(nil))
	_ = (fusefs.NodeRmdirer)((*rootNode)(nil))
	_ = (fusefs.NodeRenamer)((*rootNode)(nil))
	_ = (fusefs.NodeMknoder)((*rootNode)(nil))
	_ = (fusefs.NodeLinker)((*rootNode)(nil))
)

// OnAdd runs once, when go-fuse makes the mountpoint's inode at mount. It creates the
// connection directories as persistent children; go-fuse's default Lookup and Readdir serve
// them from the tree (no request reaches plxfs for them).
func (r *rootNode) OnAdd(ctx context.Context) {
	for _, c := range r.fsys.conns {
		d := &dirNode{fsys: r.fsys, conn: c, d: c.core.Root()}
		ch := r.NewPersistentInode(ctx, d, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: inoFor(c.name, "", kindDir)})
		r.AddChild(c.name, ch, false)
	}
}

// Getattr answers stat(2) of the mountpoint (GETATTR, sent when the attributes the kernel
// holds have expired). It never fails: a directory with --dir-mode, --uid and --gid.
func (r *rootNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	// Links: ".", its entry, and each connection directory's "..".
	r.fsys.fillAttr(1, vfs.Info{Kind: kindDir, Links: uint32(2 + len(r.fsys.conns))}, &out.Attr)
	return 0
}

// Setattr answers chmod, chown and utimensat of the mountpoint (SETATTR). It accepts and
// ignores them (there is no object to keep them in) and returns the unchanged attributes.
func (r *rootNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return r.Getattr(ctx, fh, out)
}

// Statfs answers statfs(2) of the mountpoint (STATFS). It never fails; see statfsOut.
func (r *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfsOut(out)
	return 0
}

// refuse fails the change op of name at the mountpoint: EPERM (EROFS on a read-only mount).
func (r *rootNode) refuse(op, name string) syscall.Errno {
	err := errTopLevel
	if r.fsys.opts.ReadOnly {
		err = errReadOnly
	}
	return r.fsys.fail(op, nil, name, err)
}

// Mkdir answers mkdir(2) at the mountpoint (MKDIR): refused, see refuse. Connections come
// from the configuration.
func (r *rootNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, r.refuse("mkdir", name)
}

// Create answers open(2) with O_CREAT at the mountpoint (CREATE): refused, see refuse.
func (r *rootNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, r.refuse("create", name)
}

// Symlink answers symlink(2) at the mountpoint (SYMLINK): refused, see refuse.
func (r *rootNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, r.refuse("symlink", name)
}

// Mknod answers mknod(2) at the mountpoint (MKNOD): refused, see refuse.
func (r *rootNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, r.refuse("mknod", name)
}

// Link answers link(2) at the mountpoint (LINK): refused, see refuse.
func (r *rootNode) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, r.refuse("link", name)
}

// Unlink answers unlink(2) at the mountpoint (UNLINK): refused, see refuse.
func (r *rootNode) Unlink(ctx context.Context, name string) syscall.Errno {
	return r.refuse("unlink", name)
}

// Rmdir answers rmdir(2) of a connection directory (RMDIR): refused, see refuse.
func (r *rootNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return r.refuse("rmdir", name)
}

// Rename answers rename(2) of a connection directory (RENAME): refused, see refuse. (A
// rename into the mountpoint from a connection is refused by dirNode.Rename.)
func (r *rootNode) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return r.refuse("rename", name)
}
