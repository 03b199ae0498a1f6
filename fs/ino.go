package fs

import (
	"hash/fnv"

	"github.com/plxfs/plxfs/vfs"
)

// kind is what a name in a connection is (vfs.Kind).
type kind = vfs.Kind

const (
	kindFile    = vfs.KindFile
	kindDir     = vfs.KindDir
	kindSymlink = vfs.KindSymlink
	kindSpecial = vfs.KindSpecial
)

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
