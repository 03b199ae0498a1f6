package fs

import (
	"strings"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
)

// ChangedElsewhere is told that objects of the mounted connection name changed outside the
// mount at path p (relative to the connection; with tree, everything below the directory p):
// the core forgets what it learnt of them (vfs.Conn.ChangedElsewhere) and the kernel drops the
// directory entry on the way to p that it may hold (a negative one for a name that now
// exists), p's own entry, attributes and cached pages, so that the next access asks plxfs
// instead of reusing what it learnt within the TTL. Directories above p that the kernel knows
// keep their entries (a shell's working directory there stays valid). It reports whether the
// connection is mounted here.
func (f *FS) ChangedElsewhere(name, p string, tree bool) bool {
	var c *conn
	for _, mc := range f.conns {
		if mc.name == name {
			c = mc
		}
	}
	if c == nil {
		return false
	}
	c.core.ChangedElsewhere(p, tree)
	// Not before the mount: the connection directories are made at mount (rootNode.OnAdd).
	dir := f.root.GetChild(name)
	if dir == nil {
		return true
	}
	if p == "" {
		notifyChildren(dir)
		return true
	}
	parts := strings.Split(p, "/")
	for i, part := range parts {
		child := dir.GetChild(part)
		if child == nil || i == len(parts)-1 {
			// Errors only say that the kernel held nothing to drop.
			if child != nil {
				child.NotifyContent(0, 0)
			}
			dir.NotifyEntry(part)
			return true
		}
		dir = child
	}
	return true
}

// notifyChildren drops the kernel's entries for every child it knows of dir (a whole
// connection changed).
func notifyChildren(dir *fusefs.Inode) {
	for name, child := range dir.Children() {
		child.NotifyContent(0, 0)
		dir.NotifyEntry(name)
	}
}
