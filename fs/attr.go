package fs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/vfs"
)

// POSIX attributes kept with the objects (SEMANTICS.md "Permissions and metadata"): mode,
// owner and times live in each object's user metadata (package posixmd), a directory's in its
// placeholder object. chmod, chown and utimensat patch the metadata of the generation the
// mount knows (a generation precondition: the emulator's metadata-patch responses carry no
// metageneration to chain on), never rewriting the data. The kernel checks permissions against
// them (default_permissions).

// posixOn reports whether POSIX attributes are kept in object metadata.
func (f *FS) posixOn() bool { return !f.opts.NoPOSIXMetadata }

// newAttrs are the attributes to record for a new file of st_mode mode created by the caller of
// ctx at time now. The owner is recorded only when it is not the mount's (--uid, --gid): an
// object without owner keys belongs to whoever mounts with --uid, as it always did.
func (f *FS) newAttrs(ctx context.Context, mode uint32, now time.Time) posixmd.Attrs {
	pa := posixmd.Attrs{Mtime: now}
	if !f.posixOn() {
		return pa
	}
	pa.Mode, pa.HasMode = mode&(syscall.S_IFMT|0o7777), true
	if pa.Type() == 0 {
		pa.Mode &= 0o7777
	}
	if caller, ok := fuse.FromContext(ctx); ok {
		if caller.Uid != f.opts.UID {
			pa.UID, pa.HasUID = caller.Uid, true
		}
		if caller.Gid != f.opts.GID {
			pa.GID, pa.HasGID = caller.Gid, true
		}
	}
	return pa
}

// applySetattr returns pa with the changes of a SETATTR applied, and whether there are any
// (vfs.Attrs.Apply: the modification time shown before the change, mtime, is always recorded).
func (f *FS) applySetattr(pa posixmd.Attrs, in *fuse.SetAttrIn, mtime time.Time) (posixmd.Attrs, bool) {
	return f.attrPolicy().Apply(pa, attrChange(in), mtime, f.now())
}

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

// attrPolicy is the mount's policy for attributes kept in metadata.
func (f *FS) attrPolicy() vfs.Attrs { return vfs.Attrs{POSIX: f.posixOn()} }

// patchFor is the metadata patch recording pa (vfs.Attrs.Patch).
func (f *FS) patchFor(pa posixmd.Attrs) map[string]string { return f.attrPolicy().Patch(pa) }

// metadataFor is the metadata of a new object recording pa (vfs.Attrs.Metadata).
func (f *FS) metadataFor(pa posixmd.Attrs) map[string]string { return f.attrPolicy().Metadata(pa) }

// patchObject merges md into generation gen of the object at path p (a file, symlink or
// special file) and returns its new attributes (vfs.Objects.Patch).
func (f *FS) patchObject(ctx context.Context, c *conn, p string, gen int64, md map[string]string) (store.Attrs, error) {
	return c.objs.Patch(ctx, p, gen, md)
}

// setattrObject is Setattr of a symlink or special file: a metadata patch of its object.
func (f *FS) setattrObject(ctx context.Context, c *conn, p string, info objInfo, in *fuse.SetAttrIn) (objInfo, error) {
	pa, changed := f.applySetattr(info.Posix, in, info.Mtime)
	if !changed {
		return info, nil
	}
	if err := f.changesRefused(); err != nil {
		return info, err
	}
	attrs, err := f.patchObject(ctx, c, p, info.Gen, f.patchFor(pa))
	if err != nil {
		return info, err
	}
	next := infoFromAttrs(attrs)
	next.Kind, next.Target = info.Kind, info.Target
	if next.Kind == kindSymlink {
		next.Size = int64(len(info.Target))
	}
	f.meta.PutFound(metaKey(c.name, p), next)
	return next, nil
}

// Directory attributes.

// Setattr answers chmod, chown and utimensat of a directory (SETATTR; the kernel has checked
// the caller's permission: default_permissions). It must apply the changes and return the new
// attributes. plxfs records mode, owner and times in the placeholder object, writing one for a
// directory that has none (an implicit directory). The root of a connection on a whole bucket
// has no placeholder: its attributes change for this mount's lifetime only. With
// --no-posix-metadata the changes are accepted and ignored. Errors: EROFS on a read-only or
// draining mount; EIO or EACCES when the bucket refuses the patch.
func (d *dirNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if err := d.fsys.changesRefused(); err != nil {
		return d.fsys.fail("setattr", d.conn, d.getPath(), err)
	}
	if !d.fsys.posixOn() {
		return d.Getattr(ctx, fh, out) // accepted and ignored, as before POSIX metadata
	}
	d.mu.Lock()
	pa, changed := d.fsys.applySetattr(d.info.Posix, in, d.info.Mtime)
	p := d.path
	d.mu.Unlock()
	if !changed {
		return d.Getattr(ctx, fh, out)
	}
	info := objInfo{Kind: kindDir, Posix: pa, Mtime: pa.Mtime, Ctime: d.fsys.now()}
	if placeholder := d.conn.dirPrefix(p); placeholder != "" {
		attrs, err := d.conn.bucket.UpdateMetadata(context.WithoutCancel(ctx), placeholder, 0, pa.Patch())
		if errors.Is(err, store.ErrNotExist) {
			var created store.Attrs
			created, err = d.putObject(ctx, p+"/", nil, pa.Metadata())
			if errors.Is(err, errExists) { // made meanwhile: patch it
				created, err = d.conn.bucket.UpdateMetadata(context.WithoutCancel(ctx), placeholder, 0, pa.Patch())
			}
			attrs = created
		}
		if err != nil {
			return d.fsys.fail("setattr", d.conn, p, err)
		}
		info = dirInfo(&attrs)
	}
	d.mu.Lock()
	d.info, d.infoAt = info, d.fsys.now()
	d.timesPending = false // the patch carried the times
	d.mu.Unlock()
	d.fsys.meta.PutFound(metaKey(d.conn.name, p), info)
	// The parent's cached listing carries the placeholder's attributes too (listDir).
	noteInParent(&d.Inode, info)
	return d.Getattr(ctx, fh, out)
}

// applyInfo records what the bucket says about the directory (info from its placeholder, or
// an implicit directory's empty info), learnt at time at. Times changed by this mount and not
// stored yet are kept.
func (d *dirNode) applyInfo(info objInfo, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if at.Before(d.infoAt) {
		return
	}
	if d.timesPending || d.timesStoring {
		info.Mtime, info.Ctime = d.info.Mtime, d.info.Ctime
		info.Posix.Mtime = d.info.Posix.Mtime
	}
	if info.Gen == 0 && info.Mtime.IsZero() {
		info.Mtime, info.Ctime = d.info.Mtime, d.info.Ctime // an implicit directory: keep what this mount saw
	}
	d.info, d.infoAt = info, at
}

// dirTimesOn reports whether directory times are stored for the directory at path p.
func (d *dirNode) dirTimesOn(p string) bool {
	return d.fsys.posixOn() && !d.fsys.readOnly() && d.conn.dirPrefix(p) != ""
}

// touched records that an entry of the directory was created, removed or renamed now: its
// mtime and ctime move on at once for this mount, and reach the placeholder object at most
// once per TTL (the last change of a burst at the end of the TTL, or at unmount: SyncAll).
func (d *dirNode) touched() {
	now := d.fsys.now()
	d.mu.Lock()
	d.info.Mtime, d.info.Ctime, d.info.Posix.Mtime = now, now, now
	p, pending := d.path, d.timesPending
	if !d.dirTimesOn(p) || pending {
		d.mu.Unlock()
		return
	}
	d.timesPending = true
	delay := max(d.timesStored.Add(d.fsys.ttl()).Sub(now), 0)
	d.mu.Unlock()
	d.fsys.mu.Lock()
	d.fsys.dirTimes[d] = struct{}{}
	d.fsys.mu.Unlock()
	time.AfterFunc(delay, func() { d.storeTimes(context.Background()) })
}

// dirTimesTimeout bounds one store of a directory's times.
const dirTimesTimeout = 30 * time.Second

// storeTimes writes the directory's pending times into its placeholder object. A directory
// without one (an implicit directory, or one removed meanwhile) keeps them in memory only.
func (d *dirNode) storeTimes(ctx context.Context) {
	d.mu.Lock()
	if !d.timesPending {
		d.mu.Unlock()
		return
	}
	d.timesPending, d.timesStoring = false, true
	d.timesStored = d.fsys.now()
	p, pa := d.path, d.info.Posix
	d.mu.Unlock()
	defer func() {
		// A stat of the placeholder sent before the store landed must not bring back the
		// older times: until here they were kept (applyInfo); from here on, what the bucket
		// says is learnt after this point.
		d.mu.Lock()
		d.timesStoring = false
		if now := d.fsys.now(); now.After(d.infoAt) {
			d.infoAt = now
		}
		d.mu.Unlock()
	}()
	d.fsys.mu.Lock()
	delete(d.fsys.dirTimes, d)
	d.fsys.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, dirTimesTimeout)
	defer cancel()
	md := map[string]string{posixmd.MtimeKey: fmt.Sprint(pa.Mtime.Unix()), posixmd.PlxfsMtimeKey: pa.Mtime.UTC().Format(time.RFC3339Nano)}
	_, err := d.conn.bucket.UpdateMetadata(context.WithoutCancel(ctx), d.conn.dirPrefix(p), 0, md)
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		d.fsys.log.Warn("directory times not stored", "connection", d.conn.name, "path", p, "err", err)
	}
}

// flushDirTimes stores every directory's pending times now (SyncAll, at unmount).
func (f *FS) flushDirTimes(ctx context.Context) {
	f.mu.Lock()
	dirs := make([]*dirNode, 0, len(f.dirTimes))
	for d := range f.dirTimes {
		dirs = append(dirs, d)
	}
	f.mu.Unlock()
	for _, d := range dirs {
		d.storeTimes(ctx)
	}
}

// ensureInfo fetches the placeholder of a directory whose attributes are not known within the
// TTL (a node made from a bare common prefix, or whose info has expired), at most once per TTL,
// so that its recorded mode and owner are shown. Listings and lookups bring the placeholder's
// attributes along (placeholderKnown), so a directory just listed or looked up costs none.
func (d *dirNode) ensureInfo(ctx context.Context) {
	d.mu.Lock()
	p, fresh := d.path, d.fsys.fresh(d.infoAt)
	d.mu.Unlock()
	if fresh || !d.fsys.posixOn() || d.conn.dirPrefix(p) == "" {
		return
	}
	start := d.fsys.now()
	attrs, err := d.conn.bucket.Stat(ctx, d.conn.dirPrefix(p))
	switch {
	case err == nil:
		d.applyInfo(dirInfo(&attrs), start)
	case errors.Is(err, store.ErrNotExist):
		d.applyInfo(dirInfo(nil), start)
	default:
		d.fsys.log.Debug("directory attributes not fetched; showing defaults", "connection", d.conn.name, "path", p, "err", err)
	}
}

// Symlinks and special files.

// metaNode is a node whose object holds nothing but metadata: a symlink (its target) or a
// special file (its type and device number). Both keep their attributes the same way.
type metaNode struct {
	fusefs.Inode
	fsys *FS
	conn *conn

	// mu guards the fields below.
	mu     sync.Mutex
	path   string
	info   objInfo
	infoAt time.Time
}

func (m *metaNode) refresh(info objInfo) {
	m.mu.Lock()
	m.info, m.infoAt = info, m.fsys.now()
	m.mu.Unlock()
}

func (m *metaNode) getPath() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.path
}

// moved gives the node its new path p after a rename; ok: the rename says what its object is
// now (info), whole: the node was renamed itself (it takes all of info) rather than moved
// with its directory (it learns only the new generation).
func (m *metaNode) moved(p string, info objInfo, ok, whole bool, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.path = p
	if ok && whole {
		m.info, m.infoAt = info, now
	} else if ok {
		m.info.Gen = info.Gen
	}
}

// Getattr answers lstat(2) of a symlink or special file (GETATTR): the attributes the node
// knows (a symlink: mode 0777, size the target's length; a special file: the type and device
// number its metadata records). It never fails.
func (m *metaNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	m.mu.Lock()
	info := m.info
	m.mu.Unlock()
	m.fsys.fillAttr(m.StableAttr().Ino, info, &out.Attr)
	return 0
}

// Setattr answers chmod, chown and utimensat of a symlink or special file (SETATTR; for a
// symlink lchown and utimensat with AT_SYMLINK_NOFOLLOW: its mode is always 0777, and the
// kernel does not ask to change it): a metadata patch of the generation the mount knows (such
// a node has no size). Errors: EROFS on a read-only or draining mount; ESTALE when the object
// was replaced behind the mount; EIO.
func (m *metaNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	m.mu.Lock()
	p, info := m.path, m.info
	m.mu.Unlock()
	next, err := m.fsys.setattrObject(ctx, m.conn, p, info, in)
	if err != nil {
		return m.fsys.fail("setattr", m.conn, p, err)
	}
	m.mu.Lock()
	m.info, m.infoAt = next, m.fsys.now()
	m.mu.Unlock()
	return m.Getattr(ctx, fh, out)
}

// specialNode is a FIFO, socket or device node: an empty object whose metadata holds the file
// type, permissions and device number. The kernel serves opens of it (a FIFO is a pipe within
// this mount); plxfs only keeps its attributes.
type specialNode struct{ metaNode }

var (
	_ = (fusefs.NodeGetattrer)((*specialNode)(nil))
	_ = (fusefs.NodeSetattrer)((*specialNode)(nil))
)
