package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
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

// OnAdd creates the connection directories as persistent children; go-fuse's default Lookup
// and Readdir serve them from the tree.
func (r *rootNode) OnAdd(ctx context.Context) {
	for _, c := range r.fsys.conns {
		d := &dirNode{fsys: r.fsys, conn: c}
		ch := r.NewPersistentInode(ctx, d, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: inoFor(c.name, "", kindDir)})
		r.AddChild(c.name, ch, false)
	}
}

func (r *rootNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.fsys.fillAttr(1, objInfo{kind: kindDir}, &out.Attr)
	return 0
}

// Setattr accepts and ignores mode, owner and time changes, as for every directory.
func (r *rootNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return r.Getattr(ctx, fh, out)
}

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

func (r *rootNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, r.refuse("mkdir", name)
}

func (r *rootNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, r.refuse("create", name)
}

func (r *rootNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, r.refuse("symlink", name)
}

func (r *rootNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, r.refuse("mknod", name)
}

func (r *rootNode) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, r.refuse("link", name)
}

func (r *rootNode) Unlink(ctx context.Context, name string) syscall.Errno {
	return r.refuse("unlink", name)
}

func (r *rootNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return r.refuse("rmdir", name)
}

func (r *rootNode) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return r.refuse("rename", name)
}
