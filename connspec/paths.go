package connspec

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// maxSegment is Linux's NAME_MAX: the longest file name, in bytes.
const maxSegment = 255

// ErrUnsafeName is wrapped by every error that rejects an object name or a path as unsafe to
// map between GCS and a local directory.
var ErrUnsafeName = errors.New("unsafe name")

// SegmentOK reports whether seg can be one component of a local path: not empty, not "." or
// "..", no "/" and no NUL, at most 255 bytes. Bytes that are not valid UTF-8 are allowed, since
// Linux paths are byte strings (GCS itself only stores UTF-8 names, so they only arrive from
// local files). Backslashes are ordinary characters on Linux and are allowed too.
func SegmentOK(seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("%w: empty path segment", ErrUnsafeName)
	case seg == "." || seg == "..":
		return fmt.Errorf("%w: %q segment", ErrUnsafeName, seg)
	case strings.IndexByte(seg, 0) >= 0:
		return fmt.Errorf("%w: NUL byte in segment", ErrUnsafeName)
	case strings.IndexByte(seg, '/') >= 0:
		return fmt.Errorf("%w: %q in segment", ErrUnsafeName, "/")
	case len(seg) > maxSegment:
		return fmt.Errorf("%w: segment is %d bytes (at most %d)", ErrUnsafeName, len(seg), maxSegment)
	}
	return nil
}

// NameToPath maps a GCS object name, relative to a connection's root (prefix already removed),
// to a clean relative local path. A name ending in "/" is a directory placeholder and maps to
// its directory ("a/b/" → "a/b"); only that one trailing slash is removed. Every segment must
// pass SegmentOK, so absolute names ("/a"), empty segments ("a//b"), "." and ".." segments,
// NUL and over-long segments are errors wrapping ErrUnsafeName. The result is always
// filepath.IsLocal and never "." (the root itself is not an object).
func NameToPath(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("object name %q: %w: absolute name", name, ErrUnsafeName)
	}
	rel := strings.TrimSuffix(name, "/")
	if rel == "" {
		return "", fmt.Errorf("object name %q: %w: names no file or directory", name, ErrUnsafeName)
	}
	for seg := range strings.SplitSeq(rel, "/") {
		if err := SegmentOK(seg); err != nil {
			return "", fmt.Errorf("object name %q: %w", name, err)
		}
	}
	return filepath.FromSlash(rel), nil
}

// PathToName maps a clean relative local path (as filepath.Rel returns) to the object name
// relative to a connection's root: "a/b/c.txt" → "a/b/c.txt". It is the inverse of NameToPath
// for names that are not directory placeholders. A path that is absolute, empty, ".", not
// clean ("a/./b", "a//b", "a/"), or that climbs out ("../x") is an error wrapping
// ErrUnsafeName: it is rejected, never resolved. The name must fit GCS's 1024-byte limit once
// the connection prefix is added; callers check that, since only they know the prefix.
func PathToName(rel string) (string, error) {
	if rel == "" || rel == "." || filepath.IsAbs(rel) || filepath.Clean(rel) != rel || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("path %q: %w: expected a clean relative path inside the directory", rel, ErrUnsafeName)
	}
	name := filepath.ToSlash(rel)
	for seg := range strings.SplitSeq(name, "/") {
		if err := SegmentOK(seg); err != nil {
			return "", fmt.Errorf("path %q: %w", rel, err)
		}
	}
	return name, nil
}

// SafeJoin joins root and rel and proves, lexically, that the result stays under root: rel must
// be filepath.IsLocal (relative, no "..", not empty; "." gives root itself). It does not touch
// the file system, so it cannot see symlinks: a symlink already inside root could still lead a
// write elsewhere. plxfs's writers therefore create files through os.Root (os.OpenRoot(root),
// then Root.OpenFile / Root.MkdirAll with the relative path), which refuses to follow a symlink
// out of root; SafeJoin is the check for names, os.Root the check for the disk.
func SafeJoin(root, rel string) (string, error) {
	if root == "" {
		return "", fmt.Errorf("%w: empty root directory", ErrUnsafeName)
	}
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("path %q: %w: not a relative path inside %q", rel, ErrUnsafeName, root)
	}
	joined := filepath.Join(root, rel)
	back, err := filepath.Rel(filepath.Clean(root), joined)
	if err != nil || !filepath.IsLocal(back) {
		return "", fmt.Errorf("path %q: %w: escapes %q", rel, ErrUnsafeName, root)
	}
	return joined, nil
}

// MaxObjectName is GCS's limit on an object name, in bytes of UTF-8.
const MaxObjectName = 1024

// ObjectNameOK reports whether name can be (part of) a GCS object name: valid UTF-8, without
// CR or LF, at most MaxObjectName bytes. GCS stores no other name, so a name that fails can
// never be uploaded, and no object can have it. The error wraps ErrUnsafeName.
func ObjectNameOK(name string) error {
	switch {
	case !utf8.ValidString(name):
		return fmt.Errorf("object name %q: %w: GCS names must be valid UTF-8", name, ErrUnsafeName)
	case strings.ContainsAny(name, "\r\n"):
		return fmt.Errorf("object name %q: %w: GCS names cannot contain CR or LF", name, ErrUnsafeName)
	case len(name) > MaxObjectName:
		return fmt.Errorf("object name of %d bytes: %w: GCS names are at most %d bytes", len(name), ErrUnsafeName, MaxObjectName)
	}
	return nil
}
