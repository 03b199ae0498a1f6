package vfs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/transfer"
)

// Kind is what a name in a connection is: a regular file (an object), a directory (a prefix,
// with or without a "dir/" placeholder object), a symbolic link (an object carrying the
// symlink metadata key) or a special file.
type Kind uint8

const (
	KindFile Kind = iota + 1
	KindDir
	KindSymlink
	KindSpecial // a FIFO, socket or device node: an empty object whose metadata holds the type
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	case KindSpecial:
		return "special"
	}
	return "unknown"
}

// Sentinels of names and namespace changes, rows of fs/errno.go's table.
var (
	ErrReservedName      = errors.New(TempDirName + " is reserved for temporary upload parts")
	ErrNameTooLong       = errors.New("name longer than 255 bytes")
	ErrObjectNameTooLong = errors.New("object name would exceed GCS's 1,024 bytes")
	ErrBadObjectName     = errors.New("a name GCS cannot store")
	ErrIsDir             = errors.New("is a directory")
	ErrNotDir            = errors.New("not a directory")
	ErrIntoItself        = errors.New("a directory cannot move into itself")
)

// TempDirName is the directory transfer puts the parts of composed uploads in (relative to a
// connection root). It is hidden from listings and lookups everywhere.
const TempDirName = transfer.TempDir

// MaxNameLen is the longest file name (NAME_MAX), in bytes.
const MaxNameLen = 255

// ChildPath is the path of the entry name in a directory at dirPath.
func ChildPath(dirPath, name string) string {
	if dirPath == "" {
		return name
	}
	return dirPath + "/" + name
}

// HideReason says why a name relative to its directory cannot be shown, or "" if it can.
// Only connspec decides which object names are valid file names.
func HideReason(rel string) string {
	if rel == TempDirName {
		return reservedReason
	}
	if err := connspec.SegmentOK(rel); err != nil {
		return "not a valid file name: " + err.Error()
	}
	return ""
}

// CheckNewName refuses a new entry name in the directory at dirPath that plxfs could not
// store, or would hide.
func (o *Objects) CheckNewName(dirPath, name string) error {
	if name == TempDirName {
		return ErrReservedName
	}
	if len(name) > MaxNameLen {
		return ErrNameTooLong
	}
	if reason := HideReason(name); reason != "" {
		return fmt.Errorf("%s: %w", reason, ErrBadObjectName)
	}
	if err := connspec.ObjectNameOK(name); err != nil {
		// Such a file could never be uploaded.
		return fmt.Errorf("%w: %w", err, ErrBadObjectName)
	}
	// +1: a directory's placeholder object is its name and a slash.
	if len(o.Name(ChildPath(dirPath, name)))+1 > connspec.MaxObjectName {
		return ErrObjectNameTooLong
	}
	return nil
}

// CheckRename decides the rename of src (a from) onto dst, where exists says whether dst
// exists (a to), before anything moves, as rename(2) does: ErrExists with noReplace
// (RENAME_NOREPLACE) onto an existing name; nothing to do (move false) for a rename onto
// itself; ErrNotDir and ErrIsDir when the kinds differ. A target directory must still be
// proved empty (CheckEmpty), then a directory must not move into itself (IntoItself).
func CheckRename(src, dst string, from, to Kind, exists, noReplace bool) (move bool, err error) {
	if exists && noReplace {
		return false, fmt.Errorf("RENAME_NOREPLACE onto %s: %w", dst, ErrExists)
	}
	if src == dst {
		return false, nil
	}
	if exists {
		switch {
		case from == KindDir && to != KindDir:
			return false, fmt.Errorf("directory onto %s: %w", dst, ErrNotDir)
		case from != KindDir && to == KindDir:
			return false, fmt.Errorf("onto %s: %w", dst, ErrIsDir)
		}
	}
	return true, nil
}

// IntoItself reports whether the directory dst is src or below it.
func IntoItself(src, dst string) bool { return strings.HasPrefix(dst+"/", src+"/") }

// reservedReason is HideReason's answer for the directory of temporary upload parts: expected,
// so not logged.
const reservedReason = "reserved for plxfs's temporary upload parts"
