package fs

import "hash/fnv"

// kind is what a name in a connection is: a regular file (an object), a directory (a prefix,
// with or without a "dir/" placeholder object) or a symbolic link (an object carrying the
// symlink metadata key).
type kind uint8

const (
	kindFile kind = iota + 1
	kindDir
	kindSymlink
	kindSpecial // a FIFO, socket or device node: an empty object whose metadata holds the type
)

func (k kind) String() string {
	switch k {
	case kindFile:
		return "file"
	case kindDir:
		return "dir"
	case kindSymlink:
		return "symlink"
	case kindSpecial:
		return "special"
	}
	return "unknown"
}

// inoFor derives a stable inode number from (connection, path, kind), so that the same object
// has the same st_ino in every run of the daemon. The kind is part of the identity because
// go-fuse deduplicates inodes on their number and an inode cannot change its file type.
//
// The result avoids 0 and 1 (invalid and the root) and the top half of the range, where go-fuse
// hands out automatic numbers.
func inoFor(connection, path string, k kind) uint64 {
	h := fnv.New64a()
	h.Write([]byte(connection))
	h.Write([]byte{0, byte(k)})
	h.Write([]byte(path))
	ino := h.Sum64() &^ (1 << 63)
	if ino < 2 {
		ino += 2
	}
	return ino
}
