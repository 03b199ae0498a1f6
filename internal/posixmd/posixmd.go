// Package posixmd reads and writes a file's POSIX attributes (permission bits, owner, times,
// file type and device number) in an object's user metadata, in the keys the other tools of a
// bucket use, so that a bucket written by one of them reads right in the others:
//
//   - gsutil (`cp -P`, gslib/utils/posix_util.py) and gcloud storage (`cp --preserve-posix`)
//     write goog-reserved-file-mtime and goog-reserved-file-atime as decimal seconds since the
//     epoch, goog-reserved-posix-uid and goog-reserved-posix-gid as decimal ids, and
//     goog-reserved-posix-mode as the permission bits in exactly three octal digits ("644";
//     gsutil reads only values matching ^[0-7]{3}$ and writes int(oct(mode)[-3:])).
//   - rclone writes "mtime" (RFC 3339 with nanoseconds).
//   - plxfs wrote plxfs-mtime (RFC 3339 with nanoseconds) before it wrote Google's keys.
//
// What those keys cannot say, plxfs keeps in keys of its own: plxfs-mtime and plxfs-atime
// (the nanoseconds Google's whole seconds drop), plxfs-ctime (the last change of data or
// attributes: GCS's update time is not moved by a metadata patch everywhere), plxfs-mode (the whole st_mode in octal, when it has a file type
// other than a regular file or directory, or setuid, setgid or sticky bits) and plxfs-rdev.
//
// Reading, Google's keys win over plxfs's whenever the two disagree (another tool changed the
// object after plxfs wrote it); plxfs's then only add precision or what Google's cannot hold.
package posixmd

import (
	"fmt"
	"strconv"
	"syscall"
	"time"
)

// The metadata keys.
const (
	MtimeKey       = "goog-reserved-file-mtime" // decimal seconds since the epoch
	AtimeKey       = "goog-reserved-file-atime" // decimal seconds since the epoch
	ModeKey        = "goog-reserved-posix-mode" // permission bits, three octal digits
	UIDKey         = "goog-reserved-posix-uid"  // decimal
	GIDKey         = "goog-reserved-posix-gid"  // decimal
	PlxfsMtimeKey  = "plxfs-mtime"              // RFC 3339 with nanoseconds (or decimal nanoseconds, as very old plxfs wrote)
	PlxfsAtimeKey  = "plxfs-atime"              // RFC 3339 with nanoseconds
	PlxfsCtimeKey  = "plxfs-ctime"              // RFC 3339 with nanoseconds: the last change of data or attributes
	PlxfsModeKey   = "plxfs-mode"               // the whole st_mode, octal
	RdevKey        = "plxfs-rdev"               // decimal device number of a character or block device
	RcloneMtimeKey = "mtime"                    // rclone: RFC 3339
)

// Attrs are the POSIX attributes recorded with an object. A zero field is "not recorded": the
// reader uses its default (the mount's --file-mode and --uid, the object's update time).
type Attrs struct {
	// Mode is the st_mode: file type bits (0 when the type is the object's obvious one, a
	// regular file or a directory) and the permission bits, setuid/setgid/sticky included.
	Mode    uint32
	HasMode bool
	UID     uint32
	HasUID  bool
	GID     uint32
	HasGID  bool
	Mtime   time.Time
	Atime   time.Time
	Ctime   time.Time
	Rdev    uint32 // device number of a character or block device
}

// Type is the file type bits of the mode (syscall.S_IFIFO...), 0 for a regular file or a
// directory.
func (a Attrs) Type() uint32 {
	switch t := a.Mode & syscall.S_IFMT; t {
	case syscall.S_IFIFO, syscall.S_IFCHR, syscall.S_IFBLK, syscall.S_IFSOCK:
		return t
	}
	return 0
}

// Parse reads the attributes from an object's metadata. Values it cannot read are ignored
// (the attribute counts as not recorded), as gsutil does.
func Parse(md map[string]string) Attrs {
	var a Attrs
	a.Mtime = parseMtime(md)
	a.Atime = parseTime(md, AtimeKey, PlxfsAtimeKey)
	if t, err := time.Parse(time.RFC3339Nano, md[PlxfsCtimeKey]); err == nil {
		a.Ctime = t
	}
	if s, ok := md[UIDKey]; ok {
		if v, err := strconv.ParseUint(s, 10, 32); err == nil {
			a.UID, a.HasUID = uint32(v), true
		}
	}
	if s, ok := md[GIDKey]; ok {
		if v, err := strconv.ParseUint(s, 10, 32); err == nil {
			a.GID, a.HasGID = uint32(v), true
		}
	}
	var full uint32
	hasFull := false
	if s, ok := md[PlxfsModeKey]; ok {
		if v, err := strconv.ParseUint(s, 8, 32); err == nil {
			full, hasFull = uint32(v), true
		}
	}
	if s, ok := md[ModeKey]; ok {
		if v, err := strconv.ParseUint(s, 8, 32); err == nil {
			perm := uint32(v) & 0o777
			a.Mode, a.HasMode = perm, true
			if hasFull && full&0o777 == perm {
				a.Mode = full // plxfs's key agrees: it adds the type and special bits
			} else if hasFull {
				a.Mode = full&syscall.S_IFMT | perm // another tool changed the permissions since
			}
		}
	} else if hasFull {
		a.Mode, a.HasMode = full, true
	}
	if a.Type() == syscall.S_IFCHR || a.Type() == syscall.S_IFBLK {
		if v, err := strconv.ParseUint(md[RdevKey], 10, 32); err == nil {
			a.Rdev = uint32(v)
		}
	}
	return a
}

// parseTime reads a time kept in Google's key (whole seconds) and plxfs's (nanoseconds): plxfs's
// when it names the same second, or stands alone.
func parseTime(md map[string]string, googKey, plxfsKey string) time.Time {
	plx, err := time.Parse(time.RFC3339Nano, md[plxfsKey])
	if err != nil {
		plx = time.Time{}
	}
	if s, ok := md[googKey]; ok {
		if sec, err := strconv.ParseInt(s, 10, 64); err == nil && sec >= 0 {
			if !plx.IsZero() && plx.Unix() == sec {
				return plx
			}
			return time.Unix(sec, 0)
		}
	}
	return plx
}

// parseMtime prefers Google's key; plxfs's adds the nanoseconds when it names the same second,
// and stands in for Google's when that is missing; rclone's comes last.
func parseMtime(md map[string]string) time.Time {
	var plx time.Time
	if s, ok := md[PlxfsMtimeKey]; ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			plx = t
		} else if ns, err := strconv.ParseInt(s, 10, 64); err == nil {
			plx = time.Unix(0, ns)
		}
	}
	if s, ok := md[MtimeKey]; ok {
		if sec, err := strconv.ParseInt(s, 10, 64); err == nil && sec >= 0 {
			if !plx.IsZero() && plx.Unix() == sec {
				return plx
			}
			return time.Unix(sec, 0)
		}
	}
	if !plx.IsZero() {
		return plx
	}
	if s, ok := md[RcloneMtimeKey]; ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// Metadata returns the keys recording a, for a new object: only what is recorded.
func (a Attrs) Metadata() map[string]string {
	md := map[string]string{}
	if !a.Mtime.IsZero() {
		md[MtimeKey] = strconv.FormatInt(a.Mtime.Unix(), 10)
		md[PlxfsMtimeKey] = a.Mtime.UTC().Format(time.RFC3339Nano)
	}
	if !a.Atime.IsZero() {
		md[AtimeKey] = strconv.FormatInt(a.Atime.Unix(), 10)
		md[PlxfsAtimeKey] = a.Atime.UTC().Format(time.RFC3339Nano)
	}
	if !a.Ctime.IsZero() {
		md[PlxfsCtimeKey] = a.Ctime.UTC().Format(time.RFC3339Nano)
	}
	if a.HasUID {
		md[UIDKey] = strconv.FormatUint(uint64(a.UID), 10)
	}
	if a.HasGID {
		md[GIDKey] = strconv.FormatUint(uint64(a.GID), 10)
	}
	if a.HasMode {
		md[ModeKey] = fmt.Sprintf("%03o", a.Mode&0o777)
		if a.needsFullMode() {
			md[PlxfsModeKey] = strconv.FormatUint(uint64(a.Mode), 8)
		}
		if t := a.Type(); t == syscall.S_IFCHR || t == syscall.S_IFBLK {
			md[RdevKey] = strconv.FormatUint(uint64(a.Rdev), 10)
		}
	}
	return md
}

// Patch returns the keys to merge into an existing object's metadata to record a: as Metadata,
// plus the removal ("" value) of plxfs-mode when the mode no longer needs it.
func (a Attrs) Patch() map[string]string {
	md := a.Metadata()
	if a.HasMode && !a.needsFullMode() {
		md[PlxfsModeKey] = ""
	}
	return md
}

// needsFullMode reports whether the mode says more than Google's three digits can.
func (a Attrs) needsFullMode() bool {
	return a.Type() != 0 || a.Mode&0o7000 != 0
}
