package fs

import (
	"context"
	"fmt"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/plxfs/plxfs/vfs"
)

// Namespace operations of directories: create, mknod, mkdir, symlink, unlink, rmdir, rename.
// The core does each (vfs.Dir); here the kernel's nodes follow. Calls that change the bucket
// run on a context the caller's interrupts do not cancel: go-fuse cancels a request's context
// on any interrupt (a Go caller's SIGURG included), and a change cut off mid-request may still
// land, leaving the caller an EINTR for something that happened. --op-timeout bounds them.

var (
	_ = (fusefs.NodeCreater)((*dirNode)(nil))
	_ = (fusefs.NodeMkdirer)((*dirNode)(nil))
	_ = (fusefs.NodeMknoder)((*dirNode)(nil))
	_ = (fusefs.NodeSymlinker)((*dirNode)(nil))
	_ = (fusefs.NodeLinker)((*dirNode)(nil))
	_ = (fusefs.NodeUnlinker)((*dirNode)(nil))
	_ = (fusefs.NodeRmdirer)((*dirNode)(nil))
	_ = (fusefs.NodeRenamer)((*dirNode)(nil))
)

// maxNameLen is the longest file name (NAME_MAX), in bytes; statfs reports it.
const maxNameLen = vfs.MaxNameLen

// caller is who asks, for the owner of a new file.
func caller(ctx context.Context) vfs.Caller {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return vfs.Caller{}
	}
	return vfs.Caller{UID: c.Uid, GID: c.Gid, Known: true}
}

// newChild makes the node of a new entry name described by info. If the kernel still knows a
// node of the same name (deleted behind the mount, or unlinked and still open), the path's
// generation moves on so that the new entry is a new inode.
func (d *dirNode) newChild(ctx context.Context, name string, info vfs.Info, out *fuse.EntryOut) *fusefs.Inode {
	node := d.d.Child(name, info, d.fsys.core.Now())
	return d.newInode(ctx, name, node, info, out)
}

func (d *dirNode) newInode(ctx context.Context, name string, node vfs.Node, info vfs.Info, out *fuse.EntryOut) *fusefs.Inode {
	if d.GetChild(name) != nil {
		d.conn.core.NewIncarnation(node.Path())
	}
	ch := d.NewInode(ctx, d.fsys.nodeFor(d.conn, node), d.stable(node.Path(), info))
	d.fsys.fillAttr(ch.StableAttr().Ino, info, &out.Attr)
	return ch
}

// Create answers open(2) with O_CREAT of a name that does not exist (CREATE; the kernel looked
// the name up first and has checked write permission on the directory). It must make the
// child and return its inode, attributes and an open handle. The file exists locally (a
// staging file) until its first flush uploads it, with the precondition that no object of
// that name exists by then (ESTALE at close otherwise). Errors: EROFS on a read-only or
// draining mount; EPERM for .plxfs-tmp; ENAMETOOLONG; EINVAL for a name GCS cannot store;
// errors of the staging directory (ENOSPC...).
func (d *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	h, err := d.d.Create(ctx, caller(ctx), name, mode)
	if err != nil {
		return nil, nil, 0, d.fsys.fail("create", d.conn, childPath(d.d.Path(), name), err)
	}
	ch := d.newInode(ctx, name, h.File(), h.File().Info(), out)
	return ch, &fileHandle{OpenFile: h, n: ch.Operations().(*fileNode)}, 0, 0
}

// Mknod answers mknod(2) and mkfifo(3) (MKNOD; the kernel has checked permissions, and
// CAP_MKNOD for devices). It writes an empty object, with the precondition that none exists:
// a regular file, or (with POSIX metadata on) a FIFO, socket or device node whose type,
// permissions and device number are in its metadata. Errors: EPERM for a special file with
// --no-posix-metadata; EINVAL for an unknown file type; EEXIST when an object of that name
// exists; the name errors of Create.
func (d *dirNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	info, err := d.d.Mknod(ctx, caller(ctx), name, mode, dev)
	if err != nil {
		return nil, d.fsys.fail("mknod", d.conn, childPath(d.d.Path(), name), err)
	}
	return d.newChild(ctx, name, info, out), 0
}

// Mkdir answers mkdir(2) (MKDIR). It writes the placeholder object "dir/", with the
// precondition that none exists. Errors: EEXIST when the placeholder exists (made behind the
// mount since the kernel's lookup); the name errors of Create; EIO, EACCES.
func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	info, err := d.d.Mkdir(ctx, caller(ctx), name, mode)
	if err != nil {
		return nil, d.fsys.fail("mkdir", d.conn, childPath(d.d.Path(), name), err)
	}
	return d.newChild(ctx, name, info, out), 0
}

// Symlink answers symlink(2) (SYMLINK). It stores the link as a small object whose content
// and metadata both hold the target, with the precondition that none exists. Errors: EEXIST;
// the name errors of Create; EIO, EACCES.
func (d *dirNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	info, err := d.d.Symlink(ctx, caller(ctx), target, name)
	if err != nil {
		return nil, d.fsys.fail("symlink", d.conn, childPath(d.d.Path(), name), err)
	}
	return d.newChild(ctx, name, info, out), 0
}

// Link answers link(2) (LINK): refused with EPERM, an object has one name (SEMANTICS.md
// "Not supported"); EROFS on a read-only or draining mount.
func (d *dirNode) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	err := d.fsys.core.Refused()
	if err == nil {
		err = errHardLink
	}
	return nil, d.fsys.fail("link", d.conn, childPath(d.d.Path(), name), err)
}

// Unlink answers unlink(2) (UNLINK; the kernel looked the name up and has checked
// permissions, the sticky bit included); on success go-fuse drops the child from its tree. It
// deletes the generation this mount knows; staged data of the file is dropped, and a file
// still open keeps working (nlink 0) and is never uploaded. Errors: ESTALE when the object was
// replaced behind the mount (it is not deleted); EISDIR for a directory; ENOENT; EROFS on a
// read-only or draining mount; EIO, EACCES.
func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if err := d.d.Unlink(ctx, name); err != nil {
		return d.fsys.fail("unlink", d.conn, childPath(d.d.Path(), name), err)
	}
	return 0
}

// Rmdir answers rmdir(2) (RMDIR). It deletes the placeholder of an empty directory. Errors:
// ENOTEMPTY if any object (even one hidden from listings) or any file being written is below
// it; ENOTDIR for a file; ENOENT; EROFS on a read-only or draining mount; EIO, EACCES.
func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if err := d.d.Rmdir(ctx, name); err != nil {
		return d.fsys.fail("rmdir", d.conn, childPath(d.d.Path(), name), err)
	}
	return 0
}

// Rename answers rename(2) and renameat2(2) (RENAME2; the kernel has checked permissions);
// on success go-fuse moves the child in its tree. It moves a file (copy + delete, with
// generation preconditions on both) or a directory (copy + delete of every object below it;
// not atomic), and replaces an existing target file or empty directory, as rename(2) does.
// Errors: EXDEV across connections; EPERM into the mountpoint; EINVAL for RENAME_EXCHANGE
// (RENAME_NOREPLACE is honoured) and for a directory moved into itself; EEXIST with
// RENAME_NOREPLACE onto an existing name; ENOTEMPTY onto a directory with objects below it;
// EISDIR and ENOTDIR when the kinds differ; ESTALE when a generation was replaced behind the
// mount; EBUSY onto a file whose staged data is not uploaded; the name errors of Create;
// EROFS on a read-only or draining mount; EIO, EACCES.
func (d *dirNode) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	src := childPath(d.d.Path(), name)
	nd, ok := newParent.(*dirNode)
	err := d.fsys.core.Refused()
	switch {
	case err != nil:
	case !ok:
		err = errTopLevel // into the mountpoint
	case flags&^uint32(unixRenameNoreplace) != 0:
		err = fmt.Errorf("flags %#x: %w", flags, errRenameFlags)
	default:
		err = d.d.Rename(ctx, name, nd.d, newName, flags&unixRenameNoreplace != 0)
	}
	if err != nil {
		if ok {
			src += " -> " + childPath(nd.d.Path(), newName)
		}
		return d.fsys.fail("rename", d.conn, src, err)
	}
	return 0
}

// unixRenameNoreplace is RENAME_NOREPLACE from renameat2(2).
const unixRenameNoreplace = 1
