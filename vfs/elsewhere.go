package vfs

import (
	"strings"
	"time"
)

// ChangedElsewhere is told that objects at the path p of the connection changed outside this
// mount: p is an object that was created, replaced or deleted, or, with tree, a directory below
// which objects were (plxfs upload and rm on this host tell the daemon; see cmd/plxfs). It
// forgets what lookups learnt of p and below, the cached absence of p's ancestors (an upload
// may have made them), the listings of the directories holding them and the attributes of the
// files there, so that the next lookup, stat or listing asks the bucket instead of reusing
// what it learnt within the TTL. A file with local state (being written through the mount)
// keeps it.
func (c *Conn) ChangedElsewhere(p string, tree bool) {
	key := MetaKey(c.Name, p)
	if tree {
		c.fs.meta.ForgetTree(key)
	} else {
		c.fs.meta.Forget(key)
	}
	for a := p; a != ""; {
		a = parentOf(a)
		c.fs.meta.Forget(MetaKey(c.Name, a))
	}
	below := p + "/"
	c.mu.Lock()
	var changed, ancestors []Node // p (and below it), and the directories holding p
	if n, ok := c.nodes[p]; ok {
		changed = append(changed, n)
	}
	for a := p; a != ""; {
		a = parentOf(a)
		if n, ok := c.nodes[a]; ok {
			ancestors = append(ancestors, n)
		}
	}
	if tree {
		for np, n := range c.nodes {
			if p == "" && np != "" || strings.HasPrefix(np, below) {
				changed = append(changed, n)
			}
		}
	}
	c.mu.Unlock()
	for _, n := range ancestors {
		if d, ok := n.(*Dir); ok {
			d.forgetListing(false)
		}
	}
	for _, n := range changed {
		switch n := n.(type) {
		case *Dir:
			n.forgetListing(true)
		case *File:
			n.forgetInfo()
		}
	}
}

// forgetListing drops the directory's cached listing (a listing under way is not kept either)
// and, with attrs, its attributes (its placeholder may have changed).
func (d *Dir) forgetListing(attrs bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.listing, d.listedAt, d.changes = nil, time.Time{}, nil
	d.listGen++
	if attrs {
		d.infoAt = time.Time{}
	}
}

// forgetInfo makes the next stat of the file ask the bucket, unless it has local state.
func (f *File) forgetInfo() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, local := f.localLocked(); !local {
		f.infoAt = time.Time{}
	}
}
