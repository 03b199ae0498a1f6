package vfs

import (
	"context"
	"fmt"
	"time"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
)

// AttrChange is what a setattr (chmod, chown, utimensat) asks to change; nil fields are left
// as they are. A size change (truncate) goes through the staging file, not here.
type AttrChange struct {
	Mode, UID, GID *uint32    // Mode: permission bits (the file type never changes)
	Atime, Mtime   *time.Time // access and modification times
}

// Attrs is the mount's policy for POSIX attributes kept in object metadata (package
// posixmd): with POSIX on, mode, owner and times; with it off (--no-posix-metadata), only the
// modification time, in plxfs-mtime.
type Attrs struct {
	POSIX bool
}

// Apply returns pa with change applied, and whether anything changed. A file's modification
// time is always recorded (mtime, the time shown before the change), so that the object's
// update time, which a metadata patch moves, never becomes its mtime; ctime moves to now on
// any change.
func (a Attrs) Apply(pa posixmd.Attrs, change AttrChange, mtime, now time.Time) (posixmd.Attrs, bool) {
	changed := false
	if change.Mtime != nil {
		mtime, changed = *change.Mtime, true
	}
	if a.POSIX {
		if change.Mode != nil {
			pa.Mode, pa.HasMode, changed = pa.Type()|*change.Mode&0o7777, true, true
		}
		if change.UID != nil {
			pa.UID, pa.HasUID, changed = *change.UID, true, true
		}
		if change.GID != nil {
			pa.GID, pa.HasGID, changed = *change.GID, true, true
		}
		if change.Atime != nil {
			pa.Atime, changed = *change.Atime, true
		}
	}
	pa.Mtime = mtime
	if changed {
		pa.Ctime = now
	}
	return pa, changed
}

// Patch is the metadata patch of change, given pa = Apply(old, change, ...): the keys of the
// attributes change sets, the ctime, and the mtime when it is not the one old (the object's
// recorded attributes) records (none recorded yet, or a change of this mount not stored). Nothing else: the other attributes in pa were read from an earlier
// answer that may no longer be the object's (another chmod or chown landed since), and a
// patch never writes them back. With POSIX off, only plxfs-mtime.
func (a Attrs) Patch(old, pa posixmd.Attrs, change AttrChange) map[string]string {
	if !a.POSIX {
		if pa.Mtime.IsZero() {
			return nil
		}
		return map[string]string{posixmd.PlxfsMtimeKey: pa.Mtime.UTC().Format(time.RFC3339Nano)}
	}
	full := pa.Patch()
	keys := []string{posixmd.PlxfsCtimeKey}
	if change.Mode != nil {
		keys = append(keys, posixmd.ModeKey, posixmd.PlxfsModeKey, posixmd.RdevKey)
	}
	if change.UID != nil {
		keys = append(keys, posixmd.UIDKey)
	}
	if change.GID != nil {
		keys = append(keys, posixmd.GIDKey)
	}
	if change.Atime != nil {
		keys = append(keys, posixmd.AtimeKey, posixmd.PlxfsAtimeKey)
	}
	if change.Mtime != nil || !pa.Mtime.Equal(old.Mtime) {
		keys = append(keys, posixmd.MtimeKey, posixmd.PlxfsMtimeKey)
	}
	md := make(map[string]string, len(keys))
	for _, k := range keys {
		if v, ok := full[k]; ok {
			md[k] = v
		}
	}
	return md
}

// Metadata is the metadata of a new object recording pa.
func (a Attrs) Metadata(pa posixmd.Attrs) map[string]string {
	if a.POSIX {
		return pa.Metadata()
	}
	return a.Patch(pa, pa, AttrChange{})
}

// Patch merges md into generation gen of the object at p (a file, symlink or special file;
// never its data) and returns its new attributes. A generation replaced behind the mount fails
// with store.ErrPrecondition, one deleted with store.ErrNotExist.
func (o *Objects) Patch(ctx context.Context, p string, gen int64, md map[string]string) (store.Attrs, error) {
	full := o.Name(p)
	attrs, err := o.bucket.UpdateMetadata(context.WithoutCancel(ctx), full, gen, md)
	if err != nil {
		return store.Attrs{}, fmt.Errorf("update metadata of gs://%s/%s gen %d: %w", o.bucket.Name(), full, gen, err)
	}
	return attrs, nil
}
