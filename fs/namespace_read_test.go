package fs

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/vfs"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestSemantics_RootListsConnections(t *testing.T) {
	e := newEnv(t, envOptions{
		buckets: []string{"b1", "b2"},
		conns:   []connSpec{{name: "gcs-dataset2", bucket: "b2"}, {name: "gcs-dataset1", bucket: "b1", prefix: "path1/"}},
	})
	if got, want := names(t, e.mnt), []string{"gcs-dataset1", "gcs-dataset2"}; !slices.Equal(got, want) {
		t.Fatalf("root lists %v, want %v", got, want)
	}
	for _, n := range []string{"gcs-dataset1", "gcs-dataset2"} {
		fi, err := os.Stat(filepath.Join(e.mnt, n))
		if err != nil || !fi.IsDir() {
			t.Fatalf("stat %s: %v %v", n, fi, err)
		}
	}
	assertErrno(t, os.Mkdir(filepath.Join(e.mnt, "new-conn"), 0o755), syscall.EPERM)
}

// TestSemantics_PrefixConnection: a connection on gs://bucket/path1 shows only path1/..., and
// ".." from its root leads to the mount root, never to other objects of the bucket.
func TestSemantics_PrefixConnection(t *testing.T) {
	e := newEnv(t, envOptions{conns: []connSpec{{name: "p1", bucket: testBucket, prefix: "path1/"}, {name: "all", bucket: testBucket}}})
	for name, data := range map[string]string{"path1/a": "A", "path1/sub/b": "B", "other/x": "X", "path10/y": "Y", "path1": "shadow"} {
		e.put(testBucket, name, []byte(data))
	}
	if got, want := names(t, e.path("p1", "")), []string{"a", "sub"}; !slices.Equal(got, want) {
		t.Fatalf("p1 lists %v, want %v", got, want)
	}
	if got := string(mustRead(t, e.path("p1", "sub/b"))); got != "B" {
		t.Fatalf("p1/sub/b = %q", got)
	}
	for _, escape := range []string{"../other/x", "sub/../../other/x", "../all/../other/x", "../path10/y"} {
		_, err := os.Stat(filepath.Join(e.mnt, "p1") + "/" + escape)
		assertErrno(t, err, syscall.ENOENT)
	}
	if got := string(mustRead(t, e.path("p1", "../all/other/x"))); got != "X" {
		t.Fatalf("the whole-bucket connection reads other/x as %q", got)
	}
	if got, want := names(t, e.path("all", "")), []string{"other", "path1", "path10"}; !slices.Equal(got, want) {
		t.Fatalf("all lists %v, want %v", got, want)
	}
}

// TestSemantics_DirectoryShadowsObject: when both the object "dup" and objects under "dup/"
// exist, "dup" is a directory and the object is hidden (in listings and in lookups).
func TestSemantics_DirectoryShadowsObject(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(testBucket, "dup", []byte("object"))
	e.put(testBucket, "dup/inner", []byte("inner"))
	// A lookup before any listing.
	fi, err := os.Stat(e.path("c", "dup"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("stat dup: %v, %v; want a directory", fi, err)
	}
	if got, want := names(t, e.path("c", "")), []string{"dup"}; !slices.Equal(got, want) {
		t.Fatalf("root lists %v, want %v", got, want)
	}
	ents, err := os.ReadDir(e.path("c", ""))
	if err != nil || !ents[0].IsDir() {
		t.Fatalf("readdir: %v %v; want dup as a directory", ents, err)
	}
	if got := string(mustRead(t, e.path("c", "dup/inner"))); got != "inner" {
		t.Fatalf("dup/inner = %q", got)
	}
}

// TestSemantics_ImplicitDirectories: a prefix with objects and no placeholder is a directory.
func TestSemantics_ImplicitDirectories(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(testBucket, "imp/deep/file", []byte("f"))
	for _, d := range []string{"imp", "imp/deep"} {
		fi, err := os.Stat(e.path("c", d))
		if err != nil || !fi.IsDir() {
			t.Fatalf("stat %s: %v %v; want a directory", d, fi, err)
		}
	}
	if got := names(t, e.path("c", "imp")); !slices.Equal(got, []string{"deep"}) {
		t.Fatalf("imp lists %v", got)
	}
}

// TestSemantics_HiddenNames: object names that cannot be file names are not shown, and the
// reserved .plxfs-tmp directory is hidden.
func TestSemantics_HiddenNames(t *testing.T) {
	e := newEnv(t, envOptions{})
	long := strings.Repeat("x", 256)
	for _, n := range []string{"ok", "bad//x", "a/./b", "a/../c", "d/" + long, ".plxfs-tmp/owner-1/part-00001", "/abs"} {
		e.put(testBucket, n, []byte("data"))
	}
	// "bad" is a directory (objects exist below it) whose only entry is hidden.
	if got, want := names(t, e.path("c", "")), []string{"a", "bad", "d", "ok"}; !slices.Equal(got, want) {
		t.Fatalf("root lists %v, want %v", got, want)
	}
	for _, d := range []string{"a", "bad", "d"} {
		if got := names(t, e.path("c", d)); len(got) != 0 {
			t.Fatalf("%s lists %v, want nothing", d, got)
		}
	}
	_, err := os.Stat(e.path("c", ".plxfs-tmp"))
	assertErrno(t, err, syscall.ENOENT)
}

// TestSemantics_GzipStoredBytes: an object stored with Content-Encoding gzip is read as its
// stored (compressed) bytes, with the stored size, never as decompressed bytes of another size.
func TestSemantics_GzipStoredBytes(t *testing.T) {
	const chunk = 256 << 10
	e := newEnv(t, envOptions{chunkSize: chunk})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat([]byte("plxfs gzip "), 200_000)) // ~2 MiB, compresses well
	zw.Close()
	stored := buf.Bytes()
	if err := e.emu.PutObject(testBucket, "z/data.txt", stored, "gzip"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(e.path("c", "z/data.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != int64(len(stored)) {
		t.Fatalf("size %d, want the stored size %d", fi.Size(), len(stored))
	}
	equalBytes(t, "gzip object", mustRead(t, e.path("c", "z/data.txt")), stored)

	big := randBytes(3, 3*chunk) // incompressible, several chunks
	buf.Reset()
	zw = gzip.NewWriter(&buf)
	zw.Write(big)
	zw.Close()
	if err := e.emu.PutObject(testBucket, "z/big.gz", buf.Bytes(), "gzip"); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "multi-chunk gzip object", mustRead(t, e.path("c", "z/big.gz")), buf.Bytes())
}

// TestSemantics_NegativeLookupTTL: a name found missing stays missing for the TTL even if the
// object appears meanwhile, and is found after the TTL.
func TestSemantics_NegativeLookupTTL(t *testing.T) {
	const ttl = 700 * time.Millisecond
	e := newEnv(t, envOptions{ttl: ttl})
	p := e.path("c", "later")
	_, err := os.Stat(p)
	assertErrno(t, err, syscall.ENOENT)
	e.put(testBucket, "later", []byte("now"))
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Logf("note: the new object was visible within the TTL (%v); allowed but unexpected", err)
	}
	time.Sleep(ttl + 200*time.Millisecond)
	if got := string(mustRead(t, p)); got != "now" {
		t.Fatalf("after the TTL: %q", got)
	}
}

// TestSemantics_LargeDirectory: a directory of 10,000 objects lists completely, in pages, and
// stat'ing every entry afterwards (what ls -l does) sends no request per entry.
func TestSemantics_LargeDirectory(t *testing.T) {
	const n = 10_000
	e := newEnv(t, envOptions{backend: "filesystem"})
	for i := 0; i < n; i++ {
		e.put(testBucket, fmt.Sprintf("big/f%05d", i), []byte(strings.Repeat("x", i%100)))
	}
	dir := e.path("c", "big")
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	e.emu.ResetCounts()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != n {
		t.Fatalf("listed %d entries, want %d", len(ents), n)
	}
	for i, ent := range ents {
		if want := fmt.Sprintf("f%05d", i); ent.Name() != want {
			t.Fatalf("entry %d is %q, want %q", i, ent.Name(), want)
		}
		fi, err := os.Lstat(filepath.Join(dir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != int64(i%100) {
			t.Fatalf("%s: size %d, want %d", ent.Name(), fi.Size(), i%100)
		}
	}
	c := e.emu.Requests()
	t.Logf("requests for readdir + 10,000 lstat: %+v", struct{ Total, Lists, Stats, MediaGets int }{c.Total, c.Lists, c.Stats, c.MediaGets})
	if c.Stats != 0 || c.MediaGets != 0 {
		t.Fatalf("per-entry requests: %d stats, %d reads", c.Stats, c.MediaGets)
	}
	if c.Lists > n/1000+1 { // listings ask for pages of 1,000
		t.Fatalf("%d list requests for %d entries", c.Lists, n)
	}
}

// TestSemantics_SubdirectoryAttributesFromListing: `ls -l` of a cold directory whose
// subdirectories have placeholders carrying their mode and owner (set through the mount) costs
// the listing's pages and no request per entry, subdirectories included, and shows what the
// placeholders record. The memory backend keeps "dir/" placeholder objects (the filesystem
// backend does not).
func TestSemantics_SubdirectoryAttributesFromListing(t *testing.T) {
	const dirs, files = 50, 50
	e := newEnv(t, envOptions{})
	top := e.path("c", "top")
	if err := os.Mkdir(top, 0o755); err != nil {
		t.Fatal(err)
	}
	dirMode := func(i int) fs.FileMode { return fs.FileMode(0o700 | (i%2)*0o050) } // 0700, 0750
	const owner = 4242                                                             // of every fifth subdirectory
	for i := range dirs {
		d := filepath.Join(top, fmt.Sprintf("d%02d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, dirMode(i)); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if err := os.Chown(d, owner, owner); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(d, "inside"), []byte("x")) // a subdirectory with content too
		}
	}
	for i := range files {
		f := filepath.Join(top, fmt.Sprintf("f%02d", i))
		mustWrite(t, f, bytes.Repeat([]byte{'x'}, i))
		if err := os.Chmod(f, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	e.remount()

	if _, err := os.Stat(top); err != nil { // the directory's own lookup is not the listing's
		t.Fatal(err)
	}
	e.emu.ResetCounts()
	ents, err := os.ReadDir(top)
	if err != nil {
		t.Fatal(err)
	}
	infos := make([]fs.FileInfo, len(ents))
	for i, ent := range ents {
		if infos[i], err = ent.Info(); err != nil { // lstat, as ls -l does
			t.Fatal(err)
		}
	}
	c := e.emu.Requests()
	t.Logf("readdir + lstat of %d subdirectories and %d files: %d requests (%d lists, %d stats)", dirs, files, c.Total, c.Lists, c.Stats)
	if len(ents) != dirs+files {
		t.Fatalf("listed %d entries, want %d", len(ents), dirs+files)
	}
	for i, fi := range infos {
		st := fi.Sys().(*syscall.Stat_t)
		if i < dirs {
			wantOwner := uint32(0)
			if i%5 == 0 {
				wantOwner = owner
			}
			if want := fmt.Sprintf("d%02d", i); fi.Name() != want || fi.Mode() != fs.ModeDir|dirMode(i) || st.Uid != wantOwner || st.Gid != wantOwner {
				t.Errorf("entry %d: %s %v uid %d gid %d; want %s %v owned by %d", i, fi.Name(), fi.Mode(), st.Uid, st.Gid, want, fs.ModeDir|dirMode(i), wantOwner)
			}
			continue
		}
		j := i - dirs
		if want := fmt.Sprintf("f%02d", j); fi.Name() != want || fi.Mode() != 0o640 || fi.Size() != int64(j) {
			t.Errorf("entry %d: %s %v size %d; want %s -rw-r----- size %d", i, fi.Name(), fi.Mode(), fi.Size(), want, j)
		}
	}
	if c.Lists != 1 || c.Total != c.Lists {
		t.Errorf("ls -l of %d subdirectories and %d files: %d requests (%d lists, %d stats); want 1 list and nothing else", dirs, files, c.Total, c.Lists, c.Stats)
	}

	// A chmod through the mount reaches the parent's cached listing, which a node made again
	// (once the kernel forgets d00's) would take its attributes from.
	if err := os.Chmod(filepath.Join(top, "d00"), 0o711); err != nil {
		t.Fatal(err)
	}
	topNode := e.fsys.root.GetChild("c").GetChild("top").Operations().(*dirNode)
	listing, _, err := topNode.d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ent, ok := vfs.FindEntry(listing, "d00"); !ok || ent.Info.Kind != kindDir || ent.Info.Posix.Mode&0o7777 != 0o711 || !ent.Info.PlaceholderKnown {
		t.Errorf("d00 in the parent's cached listing after chmod 0711: %+v (found %v)", ent.Info, ok)
	}
	// The same for a file's chmod (a metadata patch of its object).
	if err := os.Chmod(filepath.Join(top, "f00"), 0o600); err != nil {
		t.Fatal(err)
	}
	if listing, _, err = topNode.d.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ent, ok := vfs.FindEntry(listing, "f00"); !ok || ent.Info.Kind != kindFile || ent.Info.Posix.Mode&0o7777 != 0o600 {
		t.Errorf("f00 in the parent's cached listing after chmod 0600: %+v (found %v)", ent.Info, ok)
	}
}

// TestSemantics_LookupsBecomeListing: opening many files of one directory by name (no
// readdir) costs a few lookups, then one listing of the directory, not two requests per file.
func TestSemantics_LookupsBecomeListing(t *testing.T) {
	e := newEnv(t, envOptions{})
	for i := 0; i < 50; i++ {
		e.put(testBucket, fmt.Sprintf("walk/f%02d", i), []byte{byte(i)})
	}
	if _, err := os.Stat(e.path("c", "walk")); err != nil {
		t.Fatal(err)
	}
	e.emu.ResetCounts()
	for i := 0; i < 50; i++ {
		if got := mustRead(t, e.path("c", fmt.Sprintf("walk/f%02d", i))); len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("walk/f%02d = %v", i, got)
		}
	}
	_, err := os.Stat(e.path("c", "walk/missing"))
	assertErrno(t, err, syscall.ENOENT)
	c := e.emu.Requests()
	t.Logf("requests: %d lists, %d stats, %d reads", c.Lists, c.Stats, c.MediaGets)
	if c.Lists != vfs.LookupListThreshold+1 || c.Stats != vfs.LookupListThreshold {
		t.Fatalf("%d lists and %d stats for 50 lookups; want %d lookups (a list and a stat each) then one listing", c.Lists, c.Stats, vfs.LookupListThreshold)
	}
}

// TestSemantics_StalenessBoundedByTTL: metadata served from a cached listing is never kept
// (here or in the kernel) longer than one TTL after it was listed.
func TestSemantics_StalenessBoundedByTTL(t *testing.T) {
	const ttl = time.Second
	e := newEnv(t, envOptions{ttl: ttl})
	e.put(testBucket, "st/f", make([]byte, 10))
	start := time.Now()
	names(t, e.path("c", "st"))
	time.Sleep(ttl / 2)
	e.put(testBucket, "st/f", make([]byte, 20))
	time.Sleep(ttl*8/10 - time.Since(start))
	names(t, e.path("c", "st")) // the cached listing, handed to the kernel again
	if fi, err := os.Lstat(e.path("c", "st/f")); err != nil {
		t.Fatal(err)
	} else if fi.Size() != 10 && fi.Size() != 20 {
		t.Fatalf("size %d", fi.Size())
	}
	time.Sleep(ttl*13/10 - time.Since(start))
	fi, err := os.Lstat(e.path("c", "st/f"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 20 {
		t.Fatalf("%v after the listing, stat still shows the old size %d", time.Since(start), fi.Size())
	}
}
