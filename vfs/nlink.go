package vfs

// Link counts. On a local disk a directory's st_nlink is 2 + its number of subdirectories
// (its entry in its parent, its own ".", each subdirectory's ".."). An object store keeps no
// such count, and counting would cost a listing per stat. plxfs reports it when the mount
// knows the directory's entries: its listing is held (listed within the TTL, or made by this
// mount, which knows a new directory empty) with this mount's own changes applied over it,
// or it was held when the directory was renamed through the mount. Otherwise a directory
// reports 1, the value by which Linux filesystems say "not counted" (ext4 past 65,000
// subdirectories, btrfs always), which find(1) and fts honour by not relying on it. Every
// other node has one link (an unlinked file that is still open: 0).

// linksLocked is the directory's link count, 0 when it is not known; d.mu is held.
func (d *Dir) linksLocked() uint32 {
	if d.listing != nil && d.fs.Fresh(d.listedAt) {
		n := 0
		for _, e := range d.listing {
			if _, changed := d.changes[e.Name]; !changed && e.Info.Kind == KindDir {
				n++
			}
		}
		for _, info := range d.changes {
			if info != nil && info.Kind == KindDir {
				n++
			}
		}
		return uint32(2 + n)
	}
	if d.keptLinks != 0 && d.fs.Fresh(d.keptLinksAt) {
		return d.keptLinks
	}
	return 0
}

// keepLinksLocked keeps the link count across the loss of the listing (a rename of the
// directory, whose entries' generations all change); d.mu is held.
func (d *Dir) keepLinksLocked() {
	if n := d.linksLocked(); n != 0 && d.listing != nil {
		d.keptLinks, d.keptLinksAt = n, d.listedAt
	}
}
