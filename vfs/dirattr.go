package vfs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
)

// Directory attributes: mode, owner and times live in the placeholder object "path/"
// (SEMANTICS.md "Permissions and metadata"). A directory's mtime moves on with each create,
// unlink and rename in it, and is stored at most once per TTL.

// Setattr is chmod, chown and utimensat of the directory: mode, owner and times are recorded
// in the placeholder object, written for a directory that has none (an implicit directory).
// The root of a connection on a whole bucket has no placeholder: its attributes change for
// this mount's lifetime only. Without POSIX metadata the changes are accepted and ignored.
func (d *Dir) Setattr(ctx context.Context, change AttrChange) (Info, error) {
	if err := d.fs.Refused(); err != nil {
		return Info{}, err
	}
	if !d.fs.POSIX() {
		return d.Attr(ctx), nil
	}
	d.mu.Lock()
	old := d.info.Posix
	pa, changed := d.fs.attrs().Apply(old, change, d.info.Mtime, d.fs.Now())
	p, carry := d.path, change
	if d.timesPending && carry.Mtime == nil {
		carry.Mtime = &pa.Mtime // the patch stores the times not stored yet
	}
	d.mu.Unlock()
	if !changed {
		return d.Attr(ctx), nil
	}
	info := Info{Kind: KindDir, Posix: pa, Mtime: pa.Mtime, Ctime: d.fs.Now()}
	if placeholder := d.c.objs.DirPrefix(p); placeholder != "" {
		md := d.fs.attrs().Patch(old, pa, carry)
		attrs, err := d.c.bucket.UpdateMetadata(context.WithoutCancel(ctx), placeholder, 0, md)
		if errors.Is(err, store.ErrNotExist) {
			var created store.Attrs
			created, err = d.c.putNew(ctx, p+"/", nil, pa.Metadata())
			if errors.Is(err, ErrExists) { // made meanwhile: patch it
				created, err = d.c.bucket.UpdateMetadata(context.WithoutCancel(ctx), placeholder, 0, md)
			}
			attrs = created
		}
		if err != nil {
			return Info{}, err
		}
		info = DirInfo(&attrs)
	}
	d.mu.Lock()
	d.info, d.infoAt = info, d.fs.Now()
	d.timesPending = false // the patch carried the times
	d.mu.Unlock()
	d.fs.meta.PutFound(MetaKey(d.c.Name, p), info)
	d.c.noteInParent(p, info) // the parent's cached listing carries the placeholder's attributes too
	return d.Attr(ctx), nil
}

// applyInfo records what the bucket says about the directory (info from its placeholder, or
// an implicit directory's empty info), learnt at time at. Times changed by this mount and not
// stored yet are kept.
func (d *Dir) applyInfo(info Info, at time.Time) {
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

// touched records that an entry of the directory was created, removed or renamed now: its
// mtime and ctime move on at once for this mount, and reach the placeholder object at most
// once per TTL (the last change of a burst at the end of the TTL, or at unmount: SyncAll).
func (d *Dir) touched() {
	now := d.fs.Now()
	d.mu.Lock()
	d.info.Mtime, d.info.Ctime, d.info.Posix.Mtime = now, now, now
	p, pending := d.path, d.timesPending
	if !d.fs.POSIX() || d.fs.Refused() != nil || d.c.objs.DirPrefix(p) == "" || pending {
		d.mu.Unlock()
		return
	}
	d.timesPending = true
	delay := max(d.timesStored.Add(d.fs.TTL()).Sub(now), 0)
	d.mu.Unlock()
	d.fs.mu.Lock()
	d.fs.dirTimes[d] = struct{}{}
	d.fs.mu.Unlock()
	time.AfterFunc(delay, func() { d.storeTimes(context.Background()) })
}

// dirTimesTimeout bounds one store of a directory's times.
const dirTimesTimeout = 30 * time.Second

// storeTimes writes the directory's pending times into its placeholder object. A directory
// without one (an implicit directory, or one removed meanwhile) keeps them in memory only.
func (d *Dir) storeTimes(ctx context.Context) {
	d.mu.Lock()
	if !d.timesPending {
		d.mu.Unlock()
		return
	}
	d.timesPending, d.timesStoring = false, true
	d.timesStored = d.fs.Now()
	p, pa := d.path, d.info.Posix
	d.mu.Unlock()
	defer func() {
		// A stat of the placeholder sent before the store landed must not bring back the
		// older times: until here they were kept (applyInfo); from here on, what the bucket
		// says is learnt after this point.
		d.mu.Lock()
		d.timesStoring = false
		if now := d.fs.Now(); now.After(d.infoAt) {
			d.infoAt = now
		}
		d.mu.Unlock()
	}()
	d.fs.mu.Lock()
	delete(d.fs.dirTimes, d)
	d.fs.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, dirTimesTimeout)
	defer cancel()
	md := map[string]string{posixmd.MtimeKey: fmt.Sprint(pa.Mtime.Unix()), posixmd.PlxfsMtimeKey: pa.Mtime.UTC().Format(time.RFC3339Nano)}
	_, err := d.c.bucket.UpdateMetadata(context.WithoutCancel(ctx), d.c.objs.DirPrefix(p), 0, md)
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		d.fs.log.Warn("directory times not stored", "connection", d.c.Name, "path", p, "err", err)
	}
}

// flushDirTimes stores every directory's pending times now (SyncAll, at unmount).
func (f *FS) flushDirTimes(ctx context.Context) {
	f.mu.Lock()
	dirs := make([]*Dir, 0, len(f.dirTimes))
	for d := range f.dirTimes {
		dirs = append(dirs, d)
	}
	f.mu.Unlock()
	for _, d := range dirs {
		d.storeTimes(ctx)
	}
}

// ensureInfo fetches the placeholder of a directory whose attributes are not known within the
// TTL (one made from a bare common prefix, or whose info has expired), at most once per TTL,
// so that its recorded mode and owner are shown. Listings and lookups bring the placeholder's
// attributes along (Info.PlaceholderKnown), so a directory just listed or looked up costs none.
func (d *Dir) ensureInfo(ctx context.Context) {
	d.mu.Lock()
	p, fresh := d.path, d.fs.Fresh(d.infoAt)
	d.mu.Unlock()
	prefix := d.c.objs.DirPrefix(p)
	if fresh || !d.fs.POSIX() || prefix == "" {
		return
	}
	start := d.fs.Now()
	attrs, err := d.c.bucket.Stat(ctx, prefix)
	switch {
	case err == nil:
		d.applyInfo(DirInfo(&attrs), start)
	case errors.Is(err, store.ErrNotExist):
		d.applyInfo(DirInfo(nil), start)
	default:
		d.fs.log.Debug("directory attributes not fetched; showing defaults", "connection", d.c.Name, "path", p, "err", err)
	}
}
