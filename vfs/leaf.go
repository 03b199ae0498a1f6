package vfs

import (
	"context"
	"sync"
	"time"
)

// Leaf is a symlink or a special file (FIFO, socket, device node): an object that holds
// nothing but metadata (a symlink's target; a special file's type, permissions and device
// number). The kernel serves a special file's opens; the mount only keeps attributes.
type Leaf struct {
	fs *FS
	c  *Conn

	// mu guards the fields below.
	mu     sync.Mutex
	path   string
	info   Info
	infoAt time.Time
}

// Leaf returns the registered symlink or special file at path p, which learns info, or
// registers a new one (also when a special file's type changed).
func (c *Conn) Leaf(p string, info Info, at time.Time) *Leaf {
	c.mu.Lock()
	l := c.leaves[p]
	c.mu.Unlock()
	if l != nil && l.sameType(info) {
		l.mu.Lock()
		l.info, l.infoAt = info, at
		l.mu.Unlock()
		return l
	}
	l = &Leaf{fs: c.fs, c: c, path: p, info: info, infoAt: at}
	c.mu.Lock()
	c.leaves[p] = l
	c.mu.Unlock()
	return l
}

// sameType reports whether info is of the leaf's kind and file type.
func (l *Leaf) sameType(info Info) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info.Kind == info.Kind && l.info.Posix.Type() == info.Posix.Type()
}

// Forget is the kernel forgetting the node: the leaf is unregistered.
func (l *Leaf) Forget() { unregister(l.c, l.c.leaves, l.Path(), l) }

// Path is the leaf's path in its connection.
func (l *Leaf) Path() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.path
}

// Attr is what the leaf knows: a symlink's size is its target's length, and its mode 0777.
func (l *Leaf) Attr() Info {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info
}

// moved gives the leaf its new path p after a rename; ok: the rename says what its object is
// now (info), whole: the leaf was renamed itself (it takes all of info) rather than moved with
// its directory (it learns only the new generation).
func (l *Leaf) moved(p string, info Info, ok, whole bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.path = p
	if ok && whole {
		l.info, l.infoAt = info, l.fs.Now()
	} else if ok {
		l.info.Gen = info.Gen
	}
}

// Setattr is chmod, chown and utimensat of a symlink or special file: a metadata patch of the
// generation the mount knows (ErrStale when it was replaced behind the mount).
func (l *Leaf) Setattr(ctx context.Context, change AttrChange) (Info, error) {
	l.mu.Lock()
	p, info := l.path, l.info
	l.mu.Unlock()
	pa, changed := l.fs.attrs().Apply(info.Posix, change, info.Mtime, l.fs.Now())
	if !changed {
		return info, nil
	}
	if err := l.fs.Refused(); err != nil {
		return info, err
	}
	attrs, err := l.c.objs.Patch(ctx, p, info.Gen, l.fs.attrs().Patch(pa))
	if err != nil {
		return info, err
	}
	next := InfoFromAttrs(attrs)
	next.Kind, next.Target = info.Kind, info.Target
	if next.Kind == KindSymlink {
		next.Size = int64(len(info.Target))
	}
	l.fs.meta.PutFound(MetaKey(l.c.Name, p), next)
	l.mu.Lock()
	l.info, l.infoAt = next, l.fs.Now()
	l.mu.Unlock()
	return next, nil
}
