package vfs

import (
	"syscall"
	"time"

	"github.com/plxfs/plxfs/internal/posixmd"
)

// Stat is what stat(2) reports of a name.
type Stat struct {
	Mode                uint32 // file type and permission bits
	UID, GID            uint32
	Size                uint64
	Rdev                uint32
	Nlink               uint32
	Atime, Mtime, Ctime time.Time
}

// Stat is what stat(2) reports for info: the attributes recorded in the object's metadata
// where there are some (and POSIX metadata is on), the mount's defaults (Config.UID, GID,
// FileMode, DirMode) otherwise. A time never recorded is the mount's start.
func (f *FS) Stat(info Info) Stat {
	st := Stat{UID: f.cfg.UID, GID: f.cfg.GID, Mtime: info.Mtime, Nlink: 1}
	if st.Mtime.IsZero() {
		st.Mtime = f.started
	}
	st.Atime, st.Ctime = st.Mtime, st.Mtime
	pa := info.Posix
	if f.POSIX() {
		if pa.HasUID {
			st.UID = pa.UID
		}
		if pa.HasGID {
			st.GID = pa.GID
		}
		if !pa.Atime.IsZero() {
			st.Atime = pa.Atime
		}
		if info.Ctime.After(st.Ctime) {
			st.Ctime = info.Ctime
		}
	} else {
		pa = posixmd.Attrs{}
	}
	perm := func(def uint32) uint32 {
		if pa.HasMode {
			return pa.Mode & 0o7777
		}
		return def
	}
	st.Mode = info.FileType()
	switch info.Kind {
	case KindDir:
		st.Mode |= perm(f.cfg.DirMode)
		st.Size = 4096
		if info.Links != 0 {
			st.Nlink = info.Links // 2 + subdirectories; unknown: 1 tells find(1) not to rely on it (nlink.go)
		}
	case KindSymlink:
		st.Mode |= 0o777
		st.Size = uint64(len(info.Target))
	case KindSpecial:
		st.Mode |= perm(f.cfg.FileMode)
		st.Rdev = info.Posix.Rdev
	default:
		st.Mode |= perm(f.cfg.FileMode)
		st.Size = uint64(max(info.Size, 0))
	}
	return st
}

// FileType is the st_mode file type bits (S_IFREG...) of what info describes.
func (info Info) FileType() uint32 {
	switch info.Kind {
	case KindDir:
		return syscall.S_IFDIR
	case KindSymlink:
		return syscall.S_IFLNK
	case KindSpecial:
		return info.Posix.Type()
	}
	return syscall.S_IFREG
}
