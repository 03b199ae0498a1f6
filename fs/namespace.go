package fs

import (
	"context"
	"errors"
	"fmt"
	"path"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/vfs"
)

// Namespace operations of directories: create, mkdir, symlink, unlink, rmdir, rename. Each
// is one or a few conditional GCS calls; none is atomic beyond what GCS gives for one object
// (SEMANTICS.md "Namespace operations"). Calls that change the bucket (here and in attr.go)
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

// checkNewName refuses names plxfs cannot store or would hide.
func (d *dirNode) checkNewName(name string) error {
	if err := d.fsys.changesRefused(); err != nil {
		return err
	}
	return d.conn.objs.CheckNewName(d.getPath(), name)
}

// maxNameLen is the longest file name (NAME_MAX), in bytes; statfs reports it.
const maxNameLen = vfs.MaxNameLen

// newChildStable is the stable attribute of a new child at path p: if a node with the same
// identity is still known (e.g. deleted behind the mount, or unlinked and still open), the
// path's generation moves on so that the new file is a new inode.
func (d *dirNode) newChildStable(name, p string, k kind, mode uint32) fusefs.StableAttr {
	key := metaKey(d.conn.name, p)
	if d.GetChild(name) != nil {
		d.fsys.bumpGen(key)
	}
	return fusefs.StableAttr{Mode: mode, Ino: inoFor(d.conn.name, p, k), Gen: d.fsys.genOf(key)}
}

// Create answers open(2) with O_CREAT of a name that does not exist (CREATE; the kernel looked
// the name up first and has checked write permission on the directory). It must make the
// child and return its inode, attributes and an open handle. The file exists locally (a
// staging file) until its first flush uploads it, with the precondition that no object of
// that name exists by then (ESTALE at close otherwise). Errors: EROFS on a read-only or
// draining mount; EPERM for .plxfs-tmp; ENAMETOOLONG; EINVAL for a name GCS cannot store;
// errors of the staging directory (ENOSPC...).
func (d *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	p := childPath(d.getPath(), name)
	if err := d.checkNewName(name); err != nil {
		return nil, nil, 0, d.fsys.fail("create", d.conn, p, err)
	}
	now := d.fsys.now()
	pa := d.fsys.newAttrs(ctx, syscall.S_IFREG|mode, now)
	fn := &fileNode{fsys: d.fsys, conn: d.conn, path: p, info: objInfo{Kind: kindFile, Mtime: now, Ctime: now, Posix: pa}, infoAt: now}
	st, err := d.fsys.newStage(fn, 0, 0)
	if err != nil {
		return nil, nil, 0, d.fsys.fail("create", d.conn, p, err)
	}
	st.Created(now)
	fn.stage = st
	hs := fn.opens.OpenCached(true)
	ch := d.NewInode(ctx, fn, d.newChildStable(name, p, kindFile, syscall.S_IFREG))
	info := fn.currentInfo()
	d.fsys.meta.PutFound(metaKey(d.conn.name, p), info)
	d.noteChange(name, &info)
	d.touched()
	d.fsys.fillAttr(ch.StableAttr().Ino, info, &out.Attr)
	return ch, &fileHandle{n: fn, write: true, st: hs}, 0, 0
}

// Mknod answers mknod(2) and mkfifo(3) (MKNOD; the kernel has checked permissions, and
// CAP_MKNOD for devices). It writes an empty object, with the precondition that none exists:
// a regular file, or (with POSIX metadata on) a FIFO, socket or device node whose type,
// permissions and device number are in its metadata. Errors: EPERM for a special file with
// --no-posix-metadata; EINVAL for an unknown file type; EEXIST when an object of that name
// exists; the name errors of Create.
func (d *dirNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	p := childPath(d.getPath(), name)
	typ := mode & syscall.S_IFMT
	switch typ {
	case 0, syscall.S_IFREG:
		typ = syscall.S_IFREG
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
		if !d.fsys.posixOn() {
			return nil, d.fsys.fail("mknod", d.conn, p, fmt.Errorf("file type %o: %w", typ, errSpecialNoPOSIX))
		}
	default:
		return nil, d.fsys.fail("mknod", d.conn, p, fmt.Errorf("file type %o: %w", typ, errFileType))
	}
	if err := d.checkNewName(name); err != nil {
		return nil, d.fsys.fail("mknod", d.conn, p, err)
	}
	pa := d.fsys.newAttrs(ctx, typ|mode&0o7777, d.fsys.now())
	if typ == syscall.S_IFCHR || typ == syscall.S_IFBLK {
		pa.Rdev = dev
	}
	attrs, err := d.putObject(ctx, p, nil, d.fsys.metadataFor(pa))
	if err != nil {
		return nil, d.fsys.fail("mknod", d.conn, p, err)
	}
	info := infoFromAttrs(attrs)
	var emb fusefs.InodeEmbedder
	if info.Kind == kindSpecial {
		emb = &specialNode{metaNode{fsys: d.fsys, conn: d.conn, path: p, info: info, infoAt: d.fsys.now()}}
	} else {
		emb = &fileNode{fsys: d.fsys, conn: d.conn, path: p, info: info, infoAt: d.fsys.now()}
	}
	ch := d.NewInode(ctx, emb, d.newChildStable(name, p, info.Kind, typ))
	d.fsys.meta.PutFound(metaKey(d.conn.name, p), info)
	d.noteChange(name, &info)
	d.touched()
	d.fsys.fillAttr(ch.StableAttr().Ino, info, &out.Attr)
	return ch, 0
}

// putObject writes a small object at path p (or p/ for a directory placeholder) that must not
// exist yet (errExists).
func (d *dirNode) putObject(ctx context.Context, p string, data []byte, md map[string]string) (store.Attrs, error) {
	return d.conn.objs.PutNew(ctx, p, data, store.WriteOptions{Metadata: md, ContentType: vfs.ContentType(p)})
}

// Mkdir answers mkdir(2) (MKDIR). It writes the placeholder object "dir/", with the
// precondition that none exists. Errors: EEXIST when the placeholder exists (made behind the
// mount since the kernel's lookup); the name errors of Create; EIO, EACCES.
func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	p := childPath(d.getPath(), name)
	if err := d.checkNewName(name); err != nil {
		return nil, d.fsys.fail("mkdir", d.conn, p, err)
	}
	now := d.fsys.now()
	pa := d.fsys.newAttrs(ctx, mode&0o7777, now)
	var md map[string]string
	if d.fsys.posixOn() {
		md = pa.Metadata()
	}
	attrs, err := d.putObject(ctx, p+"/", nil, md)
	if err != nil {
		return nil, d.fsys.fail("mkdir", d.conn, p, err)
	}
	info := dirInfo(&attrs)
	nd := &dirNode{fsys: d.fsys, conn: d.conn, path: p, info: info, infoAt: now, timesStored: now}
	ch := d.NewInode(ctx, nd, d.newChildStable(name, p, kindDir, syscall.S_IFDIR))
	d.fsys.meta.PutFound(metaKey(d.conn.name, p), info)
	d.noteChange(name, &info)
	d.touched()
	d.fsys.fillAttr(ch.StableAttr().Ino, info, &out.Attr)
	return ch, 0
}

// Symlink answers symlink(2) (SYMLINK). It stores the link as a small object whose content
// and metadata both hold the target, with the precondition that none exists. Errors: EEXIST;
// the name errors of Create; EIO, EACCES.
func (d *dirNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	p := childPath(d.getPath(), name)
	if err := d.checkNewName(name); err != nil {
		return nil, d.fsys.fail("symlink", d.conn, p, err)
	}
	md := d.fsys.metadataFor(d.fsys.newAttrs(ctx, 0, d.fsys.now()))
	delete(md, posixmd.ModeKey) // a symlink's mode is always 0777
	md[mdSymlink] = target
	attrs, err := d.putObject(ctx, p, []byte(target), md)
	if err != nil {
		return nil, d.fsys.fail("symlink", d.conn, p, err)
	}
	info := infoFromAttrs(attrs)
	info.Kind, info.Target = kindSymlink, target
	sn := &symlinkNode{metaNode{fsys: d.fsys, conn: d.conn, path: p, info: info, infoAt: d.fsys.now()}}
	ch := d.NewInode(ctx, sn, d.newChildStable(name, p, kindSymlink, syscall.S_IFLNK))
	d.fsys.meta.PutFound(metaKey(d.conn.name, p), info)
	d.noteChange(name, &info)
	d.touched()
	d.fsys.fillAttr(ch.StableAttr().Ino, info, &out.Attr)
	return ch, 0
}

// Link answers link(2) (LINK): refused with EPERM, an object has one name (SEMANTICS.md
// "Not supported"); EROFS on a read-only or draining mount.
func (d *dirNode) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	err := d.fsys.changesRefused()
	if err == nil {
		err = errHardLink
	}
	return nil, d.fsys.fail("link", d.conn, childPath(d.getPath(), name), err)
}

// childState is what a rename or removal needs to know about a child.
type childState struct {
	info objInfo
	node *fusefs.Inode // nil when the kernel has no inode for it
}

// stateOf finds the child name: from its node when there is one, else by lookup.
func (d *dirNode) stateOf(ctx context.Context, name string) (childState, error) {
	ch := d.GetChild(name)
	if ch != nil {
		switch n := ch.Operations().(type) {
		case *fileNode:
			return childState{info: n.currentInfo(), node: ch}, nil
		case *symlinkNode:
			n.mu.Lock()
			info := n.info
			n.mu.Unlock()
			return childState{info: info, node: ch}, nil
		case *specialNode:
			n.mu.Lock()
			info := n.info
			n.mu.Unlock()
			return childState{info: info, node: ch}, nil
		case *dirNode:
			return childState{info: objInfo{Kind: kindDir}, node: ch}, nil
		}
	}
	info, _, err := d.lookupInfo(ctx, d.getPath(), name)
	if err != nil {
		return childState{}, err
	}
	return childState{info: info}, nil
}

// Unlink answers unlink(2) (UNLINK; the kernel looked the name up and has checked
// permissions, the sticky bit included); on success go-fuse drops the child from its tree. It
// deletes the generation this mount knows; staged data of the file is dropped, and a file
// still open keeps working (nlink 0) and is never uploaded. Errors: ESTALE when the object was
// replaced behind the mount (it is not deleted); EISDIR for a directory; ENOENT; EROFS on a
// read-only or draining mount; EIO, EACCES.
func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	p := childPath(d.getPath(), name)
	if err := d.fsys.changesRefused(); err != nil {
		return d.fsys.fail("unlink", d.conn, p, err)
	}
	cs, err := d.stateOf(ctx, name)
	if err != nil {
		return d.fsys.fail("unlink", d.conn, p, err)
	}
	if cs.info.Kind == kindDir {
		return d.fsys.fail("unlink", d.conn, p, errIsDir)
	}
	gen := cs.info.Gen
	var fn *fileNode
	if cs.node != nil {
		fn, _ = cs.node.Operations().(*fileNode)
	}
	if fn != nil {
		fn.syncMu.Lock() // no upload of this file is in flight while it goes
		defer fn.syncMu.Unlock()
		fn.mu.Lock()
		gen = fn.info.Gen
		fn.mu.Unlock()
	}
	if gen != 0 {
		if err := d.conn.objs.Delete(ctx, p, gen); err != nil {
			return d.fsys.fail("unlink", d.conn, p, err)
		}
	}
	if fn != nil {
		fn.markUnlinked()
	}
	d.removed(p)
	return 0
}

// markUnlinked drops the file's staged data (never uploaded now) unless handles still use it.
func (n *fileNode) markUnlinked() {
	n.mu.Lock()
	n.unlinked = true
	if n.stage != nil && n.stage.stream != nil {
		n.stage.stream.Abort()
		n.stage.stream = nil
	}
	var drop *staging
	if n.stage != nil && n.opens.Writers() == 0 {
		drop, n.stage = n.stage, nil
	}
	n.mu.Unlock()
	if drop != nil {
		n.fsys.dropStage(drop)
	}
}

// removed records that the child at p is gone.
func (d *dirNode) removed(p string) {
	key := metaKey(d.conn.name, p)
	d.fsys.meta.ForgetTree(key)
	d.fsys.meta.PutMissing(key)
	d.fsys.bumpGen(key)
	d.noteChange(path.Base(p), nil)
	d.touched()
}

// Rmdir answers rmdir(2) (RMDIR). It deletes the placeholder of an empty directory. Errors:
// ENOTEMPTY if any object (even one hidden from listings) or any file being written is below
// it; ENOTDIR for a file; ENOENT; EROFS on a read-only or draining mount; EIO, EACCES.
func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	p := childPath(d.getPath(), name)
	if err := d.fsys.changesRefused(); err != nil {
		return d.fsys.fail("rmdir", d.conn, p, err)
	}
	cs, err := d.stateOf(ctx, name)
	if err != nil {
		return d.fsys.fail("rmdir", d.conn, p, err)
	}
	if cs.info.Kind != kindDir {
		return d.fsys.fail("rmdir", d.conn, p, errNotDir)
	}
	if err := d.checkEmpty(ctx, p, cs.node); err != nil {
		return d.fsys.fail("rmdir", d.conn, p, err)
	}
	if err := d.conn.objs.RemoveDir(ctx, p); err != nil {
		return d.fsys.fail("rmdir", d.conn, p, err)
	}
	d.removed(p)
	return 0
}

// checkEmpty fails with ENOTEMPTY if the directory at p has anything below it.
func (d *dirNode) checkEmpty(ctx context.Context, p string, node *fusefs.Inode) error {
	if node != nil && hasLocalFiles(node) {
		return fmt.Errorf("files are being written below it: %w", errNotEmpty)
	}
	return d.conn.objs.CheckEmpty(ctx, p)
}

// hasLocalFiles reports whether any file below the directory node has local state.
func hasLocalFiles(dir *fusefs.Inode) bool {
	for _, ch := range dir.Children() {
		switch n := ch.Operations().(type) {
		case *fileNode:
			if _, ok := n.localInfo(); ok {
				return true
			}
		case *dirNode:
			if hasLocalFiles(ch) {
				return true
			}
		}
	}
	return false
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
	src := childPath(d.getPath(), name)
	if err := d.fsys.changesRefused(); err != nil {
		return d.fsys.fail("rename", d.conn, src, err)
	}
	nd, ok := newParent.(*dirNode)
	if !ok {
		return d.fsys.fail("rename", d.conn, src, errTopLevel) // into the mountpoint
	}
	if nd.conn != d.conn {
		return d.fsys.fail("rename", d.conn, src, errCrossConnection) // mv falls back to copy + delete
	}
	if flags&^uint32(unixRenameNoreplace) != 0 {
		return d.fsys.fail("rename", d.conn, src, fmt.Errorf("flags %#x: %w", flags, errRenameFlags))
	}
	dst := childPath(nd.getPath(), newName)
	if err := nd.checkNewName(newName); err != nil {
		return d.fsys.fail("rename", d.conn, src, err)
	}
	if err := d.rename(ctx, name, src, nd, newName, dst, flags&unixRenameNoreplace != 0); err != nil {
		return d.fsys.fail("rename", d.conn, src+" -> "+dst, err)
	}
	return 0
}

// unixRenameNoreplace is RENAME_NOREPLACE from renameat2(2).
const unixRenameNoreplace = 1

func (d *dirNode) rename(ctx context.Context, name, src string, nd *dirNode, newName, dst string, noReplace bool) error {
	from, err := d.stateOf(ctx, name)
	if err != nil {
		return err
	}
	to, err := nd.stateOf(ctx, newName)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		return err
	}
	move, err := vfs.CheckRename(src, dst, from.info.Kind, to.info.Kind, exists, noReplace)
	if !move {
		return err
	}
	if exists && to.info.Kind == kindDir {
		if err := nd.checkEmpty(ctx, dst, to.node); err != nil {
			return err
		}
	}
	if from.info.Kind == kindDir {
		if vfs.IntoItself(src, dst) {
			return errIntoItself
		}
		return d.renameDir(ctx, src, from, nd, dst, exists)
	}
	return d.renameFile(ctx, src, from, nd, dst, to, exists)
}

// renameFile moves the file's object to dst (objs.MoveFile: a copy replacing the target
// generation this mount knows, or requiring that none exists, then a delete of the source
// generation), and then the node, the metadata cache and the listings.
func (d *dirNode) renameFile(ctx context.Context, src string, from childState, nd *dirNode, dst string, to childState, exists bool) error {
	fn, _ := nodeFile(from.node)
	// The target's pending changes are uploaded first (they are replaced, but its generation is
	// the precondition), before the source's upload lock is taken: one syncMu at a time.
	ifGen := int64(0)
	if exists {
		ifGen = to.info.Gen
		if tn, ok := nodeFile(to.node); ok {
			if err := tn.sync(ctx); err != nil {
				return err
			}
			ifGen = tn.generation()
		}
	}
	gen := from.info.Gen
	if fn != nil {
		// A file with changes is uploaded first, then renamed as an object; its uploads are
		// held off until the rename is done so none lands at the old name.
		if err := fn.sync(ctx); err != nil {
			return err
		}
		fn.syncMu.Lock()
		defer fn.syncMu.Unlock()
		gen = fn.generation()
	}
	if gen == 0 {
		return fmt.Errorf("%s has no object to rename: %w", src, store.ErrNotExist)
	}
	if exists && ifGen == 0 {
		return fmt.Errorf("target %s: %w", dst, errNotUploaded)
	}
	attrs, err := d.conn.objs.MoveFile(ctx, src, gen, dst, ifGen)
	if attrs.Generation == 0 {
		return err // nothing moved
	}
	info := infoFromAttrs(attrs)
	if from.info.Kind == kindSymlink && info.Kind != kindSymlink {
		info.Kind, info.Target = kindSymlink, from.info.Target
	}
	if from.info.Kind == kindSpecial && info.Kind != kindSpecial {
		info.Kind, info.Posix = kindSpecial, from.info.Posix // the copy's metadata was not returned
	}
	if from.node != nil {
		moveNode(from.node, dst, map[string]objInfo{dst: info}, d.fsys.now(), true)
	}
	if exists {
		if tn, ok := nodeFile(to.node); ok {
			tn.markUnlinked()
		}
		d.fsys.bumpGen(metaKey(d.conn.name, dst))
	}
	d.removed(src)
	d.fsys.meta.PutFound(metaKey(d.conn.name, dst), info)
	nd.noteChange(path.Base(dst), &info)
	nd.touched()
	return err
}

func nodeFile(ch *fusefs.Inode) (*fileNode, bool) {
	if ch == nil {
		return nil, false
	}
	fn, ok := ch.Operations().(*fileNode)
	return fn, ok
}

// generation is the object generation the file's node knows (0: never uploaded).
func (n *fileNode) generation() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.info.Gen
}

// renameDir moves every object below src to dst (objs.MoveDir; not atomic), after uploading
// the changes of files below it, and then the nodes, the metadata cache and the listings.
func (d *dirNode) renameDir(ctx context.Context, src string, from childState, nd *dirNode, dst string, dstExists bool) error {
	if from.node != nil {
		if err := syncTree(ctx, from.node); err != nil {
			return err
		}
	}
	copied, err := d.conn.objs.MoveDir(ctx, src, dst, dstExists)
	if copied == nil {
		return err
	}
	if from.node != nil {
		moved := make(map[string]objInfo, len(copied))
		for p, a := range copied {
			moved[p] = infoFromAttrs(a)
		}
		moveNode(from.node, dst, moved, d.fsys.now(), false)
	}
	d.fsys.meta.ForgetTree(metaKey(d.conn.name, dst))
	d.removed(src)
	d.fsys.meta.PutFound(metaKey(d.conn.name, dst), objInfo{Kind: kindDir})
	if dstExists {
		d.fsys.bumpGen(metaKey(d.conn.name, dst))
	}
	nd.noteChange(path.Base(dst), &objInfo{Kind: kindDir})
	nd.touched()
	return err
}

// syncTree uploads every file with changes below a directory node.
func syncTree(ctx context.Context, dir *fusefs.Inode) error {
	for _, ch := range dir.Children() {
		switch n := ch.Operations().(type) {
		case *fileNode:
			if err := n.sync(ctx); err != nil {
				return err
			}
		case *dirNode:
			if err := syncTree(ctx, ch); err != nil {
				return err
			}
		}
	}
	return nil
}

// moveNode gives a moved node, and every node the kernel knows below it, its new path, and
// files their new generations (moved, by new path; a file's node follows its object, and
// handles pinned to the old generation follow it too). A symlink or special file moved with a
// directory learns only its new generation; one renamed itself (whole) takes the whole new
// info.
func moveNode(ch *fusefs.Inode, p string, moved map[string]objInfo, now time.Time, whole bool) {
	info, ok := moved[p]
	switch n := ch.Operations().(type) {
	case *fileNode:
		n.mu.Lock()
		n.path = p
		if ok {
			n.replacedLocked(info)
			n.info, n.infoAt = info, now
			if n.stage != nil {
				n.stage.Rebase(info.Gen, info.Size)
			}
		}
		n.mu.Unlock()
	case *symlinkNode:
		n.moved(p, info, ok, whole, now)
	case *specialNode:
		n.moved(p, info, ok, whole, now)
	case *dirNode:
		n.mu.Lock()
		n.path = p
		n.listing = nil
		n.listGen++
		n.mu.Unlock()
		for name, c := range ch.Children() {
			moveNode(c, childPath(p, name), moved, now, false)
		}
	}
}
