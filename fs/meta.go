package fs

import (
	"time"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/vfs"
)

// Metadata keys plxfs writes into objects' user metadata.
const (
	// mdMtime holds a file's modification time (RFC 3339, nanoseconds). With POSIX metadata
	// on, it is written beside Google's goog-reserved-file-mtime (whole seconds) for the
	// nanoseconds; package posixmd reads and writes both, and rclone's "mtime".
	mdMtime = posixmd.PlxfsMtimeKey
	// mdSymlink marks an object as a symbolic link; its value is the link target (the object's
	// content holds the target too, for other tools).
	mdSymlink = vfs.SymlinkKey
)

// objInfo is what the filesystem knows about one name in a connection (vfs.Info).
type objInfo = vfs.Info

// infoFromAttrs converts an object's attributes (vfs.InfoFromAttrs).
func infoFromAttrs(a store.Attrs) objInfo { return vfs.InfoFromAttrs(a) }

// dirInfo is what a directory's placeholder object says about it (vfs.DirInfo); nil: the
// directory has no placeholder.
func dirInfo(placeholder *store.Attrs) objInfo { return vfs.DirInfo(placeholder) }

// metaCache is the lookup cache (vfs.MetaCache).
type metaCache = vfs.MetaCache

func newMetaCache(ttl time.Duration, posEntries, negEntries int, now func() time.Time) *metaCache {
	return vfs.NewMetaCache(ttl, posEntries, negEntries, now)
}

// metaKey names a path of a connection in the cache (vfs.MetaKey).
func metaKey(connection, path string) string { return vfs.MetaKey(connection, path) }
