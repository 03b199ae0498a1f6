package fs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/vfs"
)

// TestSemantics_MkdirRmdir: mkdir writes a "dir/" placeholder; rmdir of a non-empty directory
// is ENOTEMPTY; rmdir of an empty one removes the placeholder.
func TestSemantics_MkdirRmdir(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.path("c", "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.get(testBucket, "d/"); !ok {
		t.Fatal("no placeholder object d/")
	}
	df, err := os.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := df.Sync(); err != nil {
		t.Fatalf("fsync of a directory: %v", err)
	}
	df.Close()
	assertErrno(t, os.Mkdir(d, 0o755), syscall.EEXIST)
	mustWrite(t, d+"/f", []byte("x"))
	assertErrno(t, os.Remove(d), syscall.ENOTEMPTY)
	if err := os.Remove(d + "/f"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(d); err != nil {
		t.Fatal(err)
	}
	if names, _ := e.emu.ObjectNames(testBucket, "d"); len(names) != 0 {
		t.Fatalf("objects left: %v", names)
	}
	_, err = os.Stat(d)
	assertErrno(t, err, syscall.ENOENT)

	// A directory whose only content is hidden is not empty.
	e.put(testBucket, "h/bad//x", []byte("x"))
	assertErrno(t, os.Remove(e.path("c", "h")), syscall.ENOTEMPTY)
}

// TestSemantics_Unlink: unlink deletes the object; a file removed while open can still be
// read through the open handle's pages already fetched, and is never uploaded again.
func TestSemantics_Unlink(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(testBucket, "gone", []byte("bye"))
	p := e.path("c", "gone")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.get(testBucket, "gone"); ok {
		t.Fatal("object still exists")
	}
	assertErrno(t, os.Remove(p), syscall.ENOENT)

	// Unlinking a file that is open for writing: its data is never uploaded.
	f, err := os.Create(e.path("c", "scratch"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("temp"))
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(e.path("c", "scratch")); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("more"))
	if err := f.Close(); err != nil {
		t.Fatalf("close after unlink: %v", err)
	}
	if _, ok := e.get(testBucket, "scratch"); ok {
		t.Fatal("an unlinked file was uploaded")
	}
}

// TestSemantics_RenameFile: rename copies then deletes; it replaces an existing target, as
// os.replace does; RENAME_NOREPLACE refuses an existing target.
func TestSemantics_RenameFile(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(testBucket, "a", []byte("A"))
	e.put(testBucket, "b", []byte("B"))
	if err := os.Rename(e.path("c", "a"), e.path("c", "b")); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.get(testBucket, "a"); ok {
		t.Fatal("source still exists")
	}
	got, _ := e.get(testBucket, "b")
	equalBytes(t, "target", got, []byte("A"))
	equalBytes(t, "target via mount", mustRead(t, e.path("c", "b")), []byte("A"))
	_, err := os.Stat(e.path("c", "a"))
	assertErrno(t, err, syscall.ENOENT)

	e.put(testBucket, "x", []byte("X"))
	err = renameat2(e.path("c", "x"), e.path("c", "b"), renameNoReplace)
	assertErrno(t, err, syscall.EEXIST)
	err = renameat2(e.path("c", "x"), e.path("c", "b"), renameExchange)
	assertErrno(t, err, syscall.EINVAL)

	// Into a subdirectory, and a file just written (renamed after its upload).
	if err := os.Mkdir(e.path("c", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, e.path("c", "fresh"), []byte("fresh"))
	if err := os.Rename(e.path("c", "fresh"), e.path("c", "sub/fresh")); err != nil {
		t.Fatal(err)
	}
	got, _ = e.get(testBucket, "sub/fresh")
	equalBytes(t, "moved fresh file", got, []byte("fresh"))
	if got := names(t, e.path("c", "")); !slices.Equal(got, []string{"b", "sub", "x"}) {
		t.Fatalf("root lists %v", got)
	}
}

const (
	renameNoReplace = 1
	renameExchange  = 2
)

func renameat2(from, to string, flags uint) error {
	return unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, flags)
}

// TestSemantics_RenameDirectory: a directory rename moves every object below it (copy +
// delete of each; not atomic).
func TestSemantics_RenameDirectory(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, n := range []string{"src/a", "src/deep/b", "src/deep/er/c"} {
		e.put(testBucket, n, []byte(n))
	}
	// Let the kernel know some nodes below, so their paths must follow the move.
	equalBytes(t, "before", mustRead(t, e.path("c", "src/deep/b")), []byte("src/deep/b"))
	if err := os.Rename(e.path("c", "src"), e.path("c", "dst")); err != nil {
		t.Fatal(err)
	}
	if left, _ := e.emu.ObjectNames(testBucket, "src/"); len(left) != 0 {
		t.Fatalf("left under src/: %v", left)
	}
	for _, n := range []string{"a", "deep/b", "deep/er/c"} {
		got, ok := e.get(testBucket, "dst/"+n)
		if !ok {
			t.Fatalf("dst/%s missing", n)
		}
		equalBytes(t, n, got, []byte("src/"+n))
		equalBytes(t, n+" via mount", mustRead(t, e.path("c", "dst/"+n)), []byte("src/"+n))
	}
	// The moved inode writes to its new name.
	mustWrite(t, e.path("c", "dst/deep/b"), []byte("new b"))
	got, _ := e.get(testBucket, "dst/deep/b")
	equalBytes(t, "write after move", got, []byte("new b"))

	// Onto an empty directory (replaced) and onto a non-empty one (ENOTEMPTY).
	if err := os.Mkdir(e.path("c", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	// (os.Rename refuses an existing target directory itself; rename(2) does not.)
	if err := unix.Rename(e.path("c", "dst"), e.path("c", "empty")); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "moved onto an empty dir", mustRead(t, e.path("c", "empty/deep/er/c")), []byte("src/deep/er/c"))
	e.put(testBucket, "full/x", []byte("x"))
	assertErrno(t, unix.Rename(e.path("c", "empty"), e.path("c", "full")), syscall.ENOTEMPTY)
	assertErrno(t, unix.Rename(e.path("c", "empty"), e.path("c", "empty/deep/inside")), syscall.EINVAL)
}

// TestSemantics_Truncate: truncate(2) on a path uploads at once; ftruncate at close.
func TestSemantics_Truncate(t *testing.T) {
	const chunk = 256 << 10
	e := newEnv(t, envOptions{chunkSize: chunk})
	data := randBytes(3, 2*chunk)
	e.put(testBucket, "t", data)
	p := e.path("c", "t")
	if err := os.Truncate(p, 1000); err != nil {
		t.Fatal(err)
	}
	got, _ := e.get(testBucket, "t")
	equalBytes(t, "shrunk", got, data[:1000])
	if err := os.Truncate(p, 1500); err != nil {
		t.Fatal(err)
	}
	got, _ = e.get(testBucket, "t")
	equalBytes(t, "grown", got, append(data[:1000:1000], make([]byte, 500)...))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ = e.get(testBucket, "t")
	equalBytes(t, "ftruncate", got, data[:10])
}

// TestSemantics_Mtime: utimens keeps the modification time in the object's metadata; it
// survives a remount. chmod and chown patch the metadata without rewriting the object.
func TestSemantics_Mtime(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(testBucket, "m", []byte("m"))
	p := e.path("c", "m")
	when := time.Date(2021, 3, 4, 5, 6, 7, 800, time.UTC)
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
	e.remount()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(when) {
		t.Fatalf("mtime %v, want %v", fi.ModTime(), when)
	}
	// Set before the first upload of a new file, it is stored with the upload.
	f, err := os.Create(e.path("c", "n"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("n"))
	if err := os.Chtimes(e.path("c", "n"), when, when); err != nil {
		t.Fatal(err)
	}
	f.Close()
	o, _ := e.emu.GetObject(testBucket, "n")
	if o.Metadata[posixmd.PlxfsMtimeKey] == "" {
		t.Fatalf("no %s in the new object's metadata: %v", posixmd.PlxfsMtimeKey, o.Metadata)
	}
	before, _ := e.emu.GetObject(testBucket, "m")
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	if err := os.Chown(p, 1234, 5678); err != nil {
		t.Fatalf("chown: %v", err)
	}
	o, _ = e.emu.GetObject(testBucket, "m")
	if o.Generation != before.Generation {
		t.Fatalf("chmod/chown rewrote the object: generation %d, was %d", o.Generation, before.Generation)
	}
	if o.Metadata["goog-reserved-posix-mode"] != "600" || o.Metadata["goog-reserved-posix-uid"] != "1234" || o.Metadata["goog-reserved-posix-gid"] != "5678" {
		t.Fatalf("metadata after chmod 0600 and chown 1234:5678: %v", o.Metadata)
	}
	e.remount()
	fi, _ = os.Stat(p)
	if fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(when) {
		t.Fatalf("after remount: mode %v mtime %v, want 0600 and %v", fi.Mode(), fi.ModTime(), when)
	}
}

// TestSemantics_Symlink: a symlink is a small object whose metadata holds the target;
// readlink works across remounts; hard links are EPERM; a FIFO is an empty object whose
// metadata holds its type.
func TestSemantics_Symlink(t *testing.T) {
	e := newEnv(t, envOptions{})
	mustWrite(t, e.path("c", "target"), []byte("T"))
	if err := os.Symlink("target", e.path("c", "link")); err != nil {
		t.Fatal(err)
	}
	o, err := e.emu.GetObject(testBucket, "link")
	if err != nil || string(o.Content) != "target" || o.Metadata[vfs.SymlinkKey] != "target" {
		t.Fatalf("link object: %+v %v", o, err)
	}
	e.remount()
	if got, err := os.Readlink(e.path("c", "link")); err != nil || got != "target" {
		t.Fatalf("readlink: %q %v", got, err)
	}
	equalBytes(t, "through the link", mustRead(t, e.path("c", "link")), []byte("T"))
	fi, err := os.Lstat(e.path("c", "link"))
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("lstat: %v %v", fi, err)
	}
	assertErrno(t, os.Link(e.path("c", "target"), e.path("c", "hard")), syscall.EPERM)
	if err := syscall.Mkfifo(e.path("c", "fifo"), 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	if o, err := e.emu.GetObject(testBucket, "fifo"); err != nil || len(o.Content) != 0 || o.Metadata["plxfs-mode"] != "10644" {
		t.Fatalf("fifo object: %+v %v", o, err)
	}
	if err := os.Remove(e.path("c", "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.emu.GetObject(testBucket, "link"); err == nil {
		t.Fatal("link object still exists")
	}
}

// TestSemantics_NamesPlxfsRefuses: .plxfs-tmp cannot be created, and names whose object name
// would exceed GCS's 1,024 bytes are ENAMETOOLONG.
func TestSemantics_NamesPlxfsRefuses(t *testing.T) {
	e := newEnv(t, envOptions{})
	err := os.Mkdir(e.path("c", ".plxfs-tmp"), 0o755)
	if !errors.Is(err, syscall.EPERM) {
		t.Fatalf("mkdir .plxfs-tmp: %v, want EPERM", err)
	}
	dir := e.path("c", "")
	for i := 0; i < 4; i++ {
		dir = filepath.Join(dir, strings.Repeat(string(rune('a'+i)), 250))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	assertErrno(t, os.WriteFile(filepath.Join(dir, strings.Repeat("x", 30)), nil, 0o644), syscall.ENAMETOOLONG)
	mustWrite(t, filepath.Join(dir, "ok"), []byte("fits"))
	// GCS names are UTF-8 without CR/LF: such a file could never be uploaded.
	assertErrno(t, os.WriteFile(e.path("c", "bad\nname"), nil, 0o644), syscall.EINVAL)
	assertErrno(t, os.WriteFile(e.path("c", "bad\xffname"), nil, 0o644), syscall.EINVAL)
}

// TestSemantics_NoPOSIXMetadata: with --no-posix-metadata every file has the mount's owner and
// mode whatever its metadata says, chmod and chown are accepted and ignored (nothing is
// written), special files are EPERM, and modification times are still kept.
func TestSemantics_NoPOSIXMetadata(t *testing.T) {
	e := newEnv(t, envOptions{noPosix: true})
	p := e.path("c", "f")
	mustWrite(t, p, []byte("f"))
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	if err := os.Chown(p, 1234, 5678); err != nil {
		t.Fatalf("chown: %v", err)
	}
	when := time.Date(2021, 3, 4, 5, 6, 7, 800, time.UTC)
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
	o, _ := e.emu.GetObject(testBucket, "f")
	if _, ok := o.Metadata["goog-reserved-posix-mode"]; ok {
		t.Fatalf("mode written with POSIX metadata off: %v", o.Metadata)
	}
	assertErrno(t, syscall.Mkfifo(e.path("c", "fifo"), 0o644), syscall.EPERM)
	// An object written by gsutil cp -P shows the mount's defaults, and its mtime.
	if _, err := e.client.Bucket(testBucket).Copy(context.Background(), "f", 0, "g", store.WriteOptions{
		Metadata: map[string]string{"goog-reserved-posix-mode": "600", "goog-reserved-posix-uid": "1234", "goog-reserved-file-mtime": "1000000000"},
	}); err != nil {
		t.Fatal(err)
	}
	e.remount()
	for name, mtime := range map[string]time.Time{"f": when, "g": time.Unix(1000000000, 0)} {
		fi, err := os.Stat(e.path("c", name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o644 || st.Uid != 0 || !fi.ModTime().Equal(mtime) {
			t.Fatalf("%s: mode %v uid %d mtime %v, want 0644, 0 and %v", name, fi.Mode(), st.Uid, fi.ModTime(), mtime)
		}
	}
}
