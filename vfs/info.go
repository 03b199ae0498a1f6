package vfs

import (
	"time"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
)

// SymlinkKey is the metadata key that marks an object as a symbolic link; its value is the
// link target (the object's content holds the target too, for other tools).
const SymlinkKey = "plxfs-symlink-target"

// modeTypeMask is S_IFMT: the file-type bits of a mode.
const modeTypeMask = 0o170000

// Info is what the filesystem knows about one name in a connection.
type Info struct {
	Kind   Kind
	Size   int64
	Gen    int64 // object generation; 0 for a directory without placeholder or a file never uploaded
	Mtime  time.Time
	Target string // symlink target
	// Posix are the attributes recorded in the object's metadata (mode, owner, times, special
	// file type); Ctime is the object's last change (data or metadata), GCS's update time.
	Posix posixmd.Attrs
	Ctime time.Time
	// CRC is GCS's CRC32C of the generation, when HasCRC: reads are checked against it.
	CRC    uint32
	HasCRC bool
	// DataGen, when not 0, is the generation whose bytes Gen's are: a metadata patch gave the
	// object a new generation (fake-gcs-server's filesystem backend does; GCS keeps it) and
	// the read cache holds its bytes under the old one (see BytesGen).
	DataGen int64
	// PlaceholderKnown, for a directory, says that the fields above are what its placeholder
	// object said when this was learnt (Gen 0: it had none); false when only a common prefix
	// was seen, which tells nothing of the directory's attributes.
	PlaceholderKnown bool
	// Links is a directory's link count when the mount knows it (Dir.Attr; see nlink.go), 0
	// when it does not (stat reports 1).
	Links uint32
}

// BytesGen is the generation the read cache keys the bytes of generation Gen by: DataGen when
// a metadata patch renamed the generation, else Gen.
func (i Info) BytesGen() int64 {
	if i.DataGen != 0 {
		return i.DataGen
	}
	return i.Gen
}

// sameBytes reports whether next, an answer about the object after a metadata patch of
// generation i, holds the same bytes as i: same size and CRC32C (a patch never changes data;
// a concurrent overwrite would show another CRC32C).
func (i Info) sameBytes(next Info) bool {
	return i.Gen != 0 && next.Size == i.Size && i.HasCRC && next.HasCRC && next.CRC == i.CRC
}

// InfoFromAttrs converts an object's attributes. An object with the symlink key is a symlink;
// one whose recorded mode has a special file type (FIFO, socket, device) is a special file.
func InfoFromAttrs(a store.Attrs) Info {
	info := Info{Kind: KindFile, Size: a.Size, Gen: a.Generation, Mtime: a.Updated, CRC: a.CRC32C, HasCRC: a.HasCRC32C, Ctime: a.Updated}
	info.Posix = posixmd.Parse(a.Metadata)
	if !info.Posix.Mtime.IsZero() {
		info.Mtime = info.Posix.Mtime
	}
	if info.Posix.Ctime.After(info.Ctime) {
		info.Ctime = info.Posix.Ctime
	}
	if info.Posix.Type() != 0 {
		info.Kind, info.Size = KindSpecial, 0
	}
	if target, ok := a.Metadata[SymlinkKey]; ok {
		info.Kind = KindSymlink
		info.Target = target
		info.Size = int64(len(target))
	}
	return info
}

// DirInfo is what a directory's placeholder object says about it; nil: the directory has no
// placeholder (known from a stat, or from a listing that would have returned it).
func DirInfo(placeholder *store.Attrs) Info {
	if placeholder == nil {
		return Info{Kind: KindDir, PlaceholderKnown: true}
	}
	info := InfoFromAttrs(*placeholder)
	info.Kind, info.Size, info.Target = KindDir, 0, ""
	info.Posix.Mode &^= modeTypeMask
	info.PlaceholderKnown = true
	return info
}
