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
	fs   *FS
	c    *Conn
	kind Kind   // constant: a leaf of another kind or file type at its path is another leaf
	typ  uint32 // the file type (S_IFIFO...), constant

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
	l, found := c.nodes[p].(*Leaf)
	found = found && l.kind == info.Kind && l.typ == info.Posix.Type()
	if !found {
		l = c.newLeaf(p, info, at)
		c.nodes[p] = l
	}
	c.mu.Unlock()
	if found {
		l.mu.Lock()
		l.info, l.infoAt = info, at
		l.mu.Unlock()
	}
	return l
}

// newLeaf makes (does not register) the leaf at p described by info.
func (c *Conn) newLeaf(p string, info Info, at time.Time) *Leaf {
	return &Leaf{fs: c.fs, c: c, kind: info.Kind, typ: info.Posix.Type(), path: p, info: info, infoAt: at}
}

// Forget is the kernel forgetting the node: the leaf is unregistered.
func (l *Leaf) Forget() { l.c.unregister(l.Path(), l) }

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
	attrs, err := l.c.objs.Patch(ctx, p, info.Gen, l.fs.attrs().Patch(info.Posix, pa, change))
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
