package vfs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
)

// Namespace operations of a directory: create, mknod, mkdir, symlink, unlink, rmdir, rename.
// Each is one or a few conditional GCS calls (Objects); none is atomic beyond what GCS gives
// for one object (SEMANTICS.md "Namespace operations"). Calls that change the bucket run on a
// context the caller's interrupts do not cancel: a change cut off mid-request may still land,
// leaving the caller an error for something that happened. Each creation registers a new
// node at its path in place of any the mount knew there: such a node is stale (its object was
// removed behind the mount), and a file of it is detached.

// Refusals of namespace operations.
var (
	ErrCrossConnection = errors.New("rename across connections (mv copies instead)")
	ErrNotUploaded     = errors.New("not uploaded yet")
	ErrSpecialNoPOSIX  = errors.New("special files need POSIX metadata (mounted with --no-posix-metadata)")
	ErrFileType        = errors.New("unsupported file type")
)

// checkNewName refuses names the mount cannot store or would hide, and any change while the
// mount refuses them.
func (d *Dir) checkNewName(name string) error {
	if err := d.fs.Refused(); err != nil {
		return err
	}
	return d.c.objs.CheckNewName(d.Path(), name)
}

// putNew writes a small object at p (p/ for a directory placeholder) that must not exist.
func (c *Conn) putNew(ctx context.Context, p string, data []byte, md map[string]string) (store.Attrs, error) {
	return c.objs.PutNew(ctx, p, data, store.WriteOptions{Metadata: md, ContentType: ContentType(p)})
}

// created records a new entry at p: in the lookup cache and the parent's listing and times.
func (c *Conn) created(p string, info Info) {
	c.fs.meta.PutFound(MetaKey(c.Name, p), info)
	c.noteChange(p, &info)
}

// Create makes the file name, open for writing. It exists locally (a staging file) until its
// first Sync uploads it, with the precondition that no object of that name exists by then
// (ErrStale at close otherwise).
func (d *Dir) Create(ctx context.Context, caller Caller, name string, mode uint32) (*OpenFile, error) {
	if err := d.checkNewName(name); err != nil {
		return nil, err
	}
	p := ChildPath(d.Path(), name)
	now := d.fs.Now()
	pa := d.fs.newAttrs(caller, syscall.S_IFREG|mode, now)
	st, err := NewStage(d.fs.gate, d.fs.cfg.StagingDir, 0, 0)
	if err != nil {
		return nil, err
	}
	st.Created(now)
	f := d.c.newFile(p, Info{Kind: KindFile, Mtime: now, Ctime: now, Posix: pa}, now)
	f.mu.Lock()
	f.setStageLocked(st)
	h := &OpenFile{f: f, write: true, st: f.opens.OpenCached(true)}
	info := f.currentLocked()
	f.mu.Unlock()
	d.c.created(p, info)
	return h, nil
}

// Mknod makes an empty object name, with the precondition that none exists: a regular file,
// or (with POSIX metadata) a FIFO, socket or device node whose type, permissions and device
// number are in its metadata. It returns what the new entry is.
func (d *Dir) Mknod(ctx context.Context, caller Caller, name string, mode, dev uint32) (Info, error) {
	typ := mode & syscall.S_IFMT
	switch typ {
	case 0, syscall.S_IFREG:
		typ = syscall.S_IFREG
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
		if !d.fs.POSIX() {
			return Info{}, fmt.Errorf("file type %o: %w", typ, ErrSpecialNoPOSIX)
		}
	default:
		return Info{}, fmt.Errorf("file type %o: %w", typ, ErrFileType)
	}
	if err := d.checkNewName(name); err != nil {
		return Info{}, err
	}
	p := ChildPath(d.Path(), name)
	pa := d.fs.newAttrs(caller, typ|mode&0o7777, d.fs.Now())
	if typ == syscall.S_IFCHR || typ == syscall.S_IFBLK {
		pa.Rdev = dev
	}
	attrs, err := d.c.putNew(ctx, p, nil, d.fs.attrs().Metadata(pa))
	if err != nil {
		return Info{}, err
	}
	info := InfoFromAttrs(attrs)
	if info.Kind == KindSpecial {
		d.c.replace(p, d.c.newLeaf(p, info, d.fs.Now()))
	} else {
		d.c.newFile(p, info, d.fs.Now())
	}
	d.c.created(p, info)
	return info, nil
}

// Mkdir writes the placeholder object "dir/", with the precondition that none exists
// (ErrExists: made behind the mount since the kernel's lookup).
func (d *Dir) Mkdir(ctx context.Context, caller Caller, name string, mode uint32) (Info, error) {
	if err := d.checkNewName(name); err != nil {
		return Info{}, err
	}
	p := ChildPath(d.Path(), name)
	now := d.fs.Now()
	var md map[string]string
	if d.fs.POSIX() {
		md = d.fs.newAttrs(caller, mode&0o7777, now).Metadata()
	}
	attrs, err := d.c.putNew(ctx, p+"/", nil, md)
	if err != nil {
		return Info{}, err
	}
	info := DirInfo(&attrs)
	// Nothing was at p (the placeholder's precondition, the kernel's lookup): the new
	// directory's listing is known, empty, for the TTL like any listing.
	nd := &Dir{fs: d.fs, c: d.c, path: p, info: info, infoAt: now, timesStored: now, listing: []Entry{}, listedAt: now}
	d.c.replace(p, nd)
	d.c.created(p, info)
	nd.mu.Lock()
	info.Links = nd.linksLocked()
	nd.mu.Unlock()
	return info, nil
}

// Symlink stores the link name as a small object whose content and metadata both hold the
// target, with the precondition that none exists.
func (d *Dir) Symlink(ctx context.Context, caller Caller, target, name string) (Info, error) {
	if err := d.checkNewName(name); err != nil {
		return Info{}, err
	}
	p := ChildPath(d.Path(), name)
	md := d.fs.attrs().Metadata(d.fs.newAttrs(caller, 0, d.fs.Now()))
	delete(md, posixmd.ModeKey) // a symlink's mode is always 0777
	md[SymlinkKey] = target
	attrs, err := d.c.putNew(ctx, p, []byte(target), md)
	if err != nil {
		return Info{}, err
	}
	info := InfoFromAttrs(attrs)
	info.Kind, info.Target = KindSymlink, target
	d.c.replace(p, d.c.newLeaf(p, info, d.fs.Now()))
	d.c.created(p, info)
	return info, nil
}

// Child returns the registered node of the entry name, described by info (learnt at time
// at): the one registered at its path when it is of the same kind (it learns info), otherwise
// a new one.
func (d *Dir) Child(name string, info Info, at time.Time) Node {
	p := ChildPath(d.Path(), name)
	switch info.Kind {
	case KindDir:
		return d.c.Dir(p, info, at, info.PlaceholderKnown)
	case KindSymlink, KindSpecial:
		return d.c.Leaf(p, info, at)
	}
	return d.c.File(p, info, at)
}

// child is what a removal or rename needs to know of the entry name: what it is, and its file
// when it is a registered one.
func (d *Dir) child(ctx context.Context, name string) (Info, *File, error) {
	p := ChildPath(d.Path(), name)
	d.c.mu.Lock()
	n := d.c.nodes[p]
	d.c.mu.Unlock()
	switch n := n.(type) {
	case *File:
		return n.Info(), n, nil
	case *Leaf:
		return n.Attr(), nil, nil
	case *Dir:
		return Info{Kind: KindDir}, nil, nil
	}
	info, _, err := d.Lookup(ctx, name)
	return info, nil, err
}

// Unlink deletes the generation this mount knows of the file name (ErrStale when it was
// replaced behind the mount: it is not deleted); its staged data is dropped, and handles
// still open keep working and are never uploaded.
func (d *Dir) Unlink(ctx context.Context, name string) error {
	if err := d.fs.Refused(); err != nil {
		return err
	}
	info, f, err := d.child(ctx, name)
	if err != nil {
		return err
	}
	if info.Kind == KindDir {
		return ErrIsDir
	}
	p, gen := ChildPath(d.Path(), name), info.Gen
	if f != nil {
		f.syncMu.Lock() // no upload of this file is in flight while it goes
		defer f.syncMu.Unlock()
		gen = f.Generation()
	}
	if gen != 0 {
		if err := d.c.objs.Delete(ctx, p, gen); err != nil {
			return err
		}
	}
	if f != nil {
		f.detach()
	}
	d.c.forgetPath(p)
	d.c.removed(p)
	return nil
}

// Rmdir deletes the placeholder of the empty directory name: ErrNotEmpty if any object (even
// one hidden from listings) or any file being written is below it.
func (d *Dir) Rmdir(ctx context.Context, name string) error {
	if err := d.fs.Refused(); err != nil {
		return err
	}
	info, _, err := d.child(ctx, name)
	if err != nil {
		return err
	}
	if info.Kind != KindDir {
		return ErrNotDir
	}
	p := ChildPath(d.Path(), name)
	if err := d.c.checkEmpty(ctx, p); err != nil {
		return err
	}
	if err := d.c.objs.RemoveDir(ctx, p); err != nil {
		return err
	}
	d.c.forgetPath(p)
	d.c.removed(p)
	return nil
}

// checkEmpty fails with ErrNotEmpty if the directory at p has anything below it.
func (c *Conn) checkEmpty(ctx context.Context, p string) error {
	for _, f := range c.stagedUnder(p) {
		if _, ok := f.Local(); ok {
			return fmt.Errorf("files are being written below it: %w", ErrNotEmpty)
		}
	}
	return c.objs.CheckEmpty(ctx, p)
}

// Rename moves the entry name to newName in nd, as rename(2) does: a file (copy + delete,
// with generation preconditions on both) or a directory (copy + delete of every object below
// it; not atomic), replacing an existing target file or empty directory unless noReplace.
// A target file whose staged data is not uploaded fails with ErrNotUploaded.
func (d *Dir) Rename(ctx context.Context, name string, nd *Dir, newName string, noReplace bool) error {
	if err := d.fs.Refused(); err != nil {
		return err
	}
	if nd.c != d.c {
		return ErrCrossConnection
	}
	if err := nd.checkNewName(newName); err != nil {
		return err
	}
	src, dst := ChildPath(d.Path(), name), ChildPath(nd.Path(), newName)
	from, fromFile, err := d.child(ctx, name)
	if err != nil {
		return err
	}
	to, toFile, err := nd.child(ctx, newName)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		return err
	}
	move, err := CheckRename(src, dst, from.Kind, to.Kind, exists, noReplace)
	if !move {
		return err
	}
	if exists && to.Kind == KindDir {
		if err := d.c.checkEmpty(ctx, dst); err != nil {
			return err
		}
	}
	if from.Kind == KindDir {
		if IntoItself(src, dst) {
			return ErrIntoItself
		}
		return d.c.renameDir(ctx, src, dst, exists)
	}
	return d.c.renameFile(ctx, src, from, fromFile, dst, to, toFile, exists)
}

// renameFile moves the file's object to dst (Objects.MoveFile: a copy replacing the target
// generation this mount knows, or requiring that none exists, then a delete of the source
// generation), then the registry, the lookup cache and the listings.
func (c *Conn) renameFile(ctx context.Context, src string, from Info, f *File, dst string, to Info, target *File, exists bool) error {
	// The target's pending changes are uploaded first (they are replaced, but its generation is
	// the precondition), before the source's upload lock is taken: one syncMu at a time.
	ifGen := int64(0)
	if exists {
		ifGen = to.Gen
		if target != nil {
			if err := target.Sync(ctx); err != nil {
				return err
			}
			ifGen = target.Generation()
		}
	}
	gen := from.Gen
	if f != nil {
		// A file with changes is uploaded first, then renamed as an object; its uploads are
		// held off until the rename is done so none lands at the old name.
		if err := f.Sync(ctx); err != nil {
			return err
		}
		f.syncMu.Lock()
		defer f.syncMu.Unlock()
		gen = f.Generation()
	}
	if gen == 0 {
		return fmt.Errorf("%s has no object to rename: %w", src, store.ErrNotExist)
	}
	if exists && ifGen == 0 {
		return fmt.Errorf("target %s: %w", dst, ErrNotUploaded)
	}
	attrs, err := c.objs.MoveFile(ctx, src, gen, dst, ifGen)
	if attrs.Generation == 0 {
		return err // nothing moved
	}
	info := InfoFromAttrs(attrs)
	if from.Kind == KindSymlink && info.Kind != KindSymlink {
		info.Kind, info.Target = KindSymlink, from.Target
	}
	if from.Kind == KindSpecial && info.Kind != KindSpecial {
		info.Kind, info.Posix = KindSpecial, from.Posix // the copy's metadata was not returned
	}
	if target != nil {
		target.detach()
	}
	c.forgetPath(dst)
	c.moveRegistered(src, dst, false, map[string]Info{dst: info})
	if exists {
		c.NewIncarnation(dst)
	}
	c.removed(src)
	c.created(dst, info)
	return err
}

// renameDir moves every object below src to dst (Objects.MoveDir; not atomic), after uploading
// the changes of files below it, then the registry, the lookup cache and the listings.
func (c *Conn) renameDir(ctx context.Context, src, dst string, dstExists bool) error {
	for _, f := range c.stagedUnder(src) {
		if err := f.Sync(ctx); err != nil {
			return err
		}
	}
	copied, err := c.objs.MoveDir(ctx, src, dst, dstExists)
	if copied == nil {
		return err
	}
	moved := make(map[string]Info, len(copied))
	for p, a := range copied {
		moved[p] = InfoFromAttrs(a)
	}
	c.forgetPath(dst)
	c.moveRegistered(src, dst, true, moved)
	c.fs.meta.ForgetTree(MetaKey(c.Name, dst))
	c.removed(src)
	if dstExists {
		c.NewIncarnation(dst)
	}
	c.created(dst, Info{Kind: KindDir})
	return err
}
