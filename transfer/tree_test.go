package transfer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/store"
)

// bleedNames are objects around the directory "data" that must not be taken for its content.
var bleedNames = []string{"data/", "data/x", "data/sub/y", "data/sub/", "data2/z", "data.csv", "dat", "datax/w", "other/data/q"}

func TestListPrefixBleed(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	for _, n := range bleedNames {
		e.put(t, n, []byte(n))
	}
	e.put(t, TempDir+"/me-0000000000000000/part-00000", []byte("p"))
	attrNames := func(as []store.Attrs) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Name)
		}
		return out
	}
	for _, tc := range []struct {
		dir       string
		recursive bool
		dirs      []string
		files     []string
	}{
		{"data", false, []string{"sub"}, []string{"x"}},
		{"data/", false, []string{"sub"}, []string{"x"}},
		{"data", true, []string{"sub"}, []string{"sub/y", "x"}},
		{"", false, []string{"data", "data2", "datax", "other"}, []string{"dat", "data.csv"}},
		{"", true, []string{"data", "data/sub", "data2", "datax", "other", "other/data"}, []string{"dat", "data.csv", "data/sub/y", "data/x", "data2/z", "datax/w", "other/data/q"}},
		{"nothing", false, nil, nil},
	} {
		dirs, files, err := List(ctx, e.b, tc.dir, tc.recursive)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(dirs, tc.dirs) || !slices.Equal(attrNames(files), tc.files) {
			t.Errorf("List(%q, %v) = %q, %q; want %q, %q", tc.dir, tc.recursive, dirs, attrNames(files), tc.dirs, tc.files)
		}
	}
}

func TestRemoveTreePrefixBleed(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	for _, n := range bleedNames {
		e.put(t, n, []byte(n))
	}
	p := &countingProgress{}
	s, err := RemoveTree(ctx, e.b, "data", Options{DryRun: true, Progress: p})
	if err != nil || s.Files != 4 || len(e.names(t, "")) != len(bleedNames) {
		t.Fatalf("dry run: %+v, %v; %d objects left", s, err, len(e.names(t, "")))
	}
	for _, ev := range p.events {
		if !ev.DryRun {
			t.Fatalf("dry-run event %+v", ev)
		}
	}
	var asked int64
	_, err = RemoveTree(ctx, e.b, "data", Options{Confirm: func(n, _ int64) bool { asked = n; return false }})
	if !errors.Is(err, ErrAborted) || asked != 4 || len(e.names(t, "")) != len(bleedNames) {
		t.Fatalf("declined: %v, asked about %d; %d objects left", err, asked, len(e.names(t, "")))
	}
	s, err = RemoveTree(ctx, e.b, "data", Options{})
	if err != nil || s.Files != 4 || s.Failed != 0 {
		t.Fatalf("%+v, %v", s, err)
	}
	want := []string{"dat", "data.csv", "data2/z", "datax/w", "other/data/q"}
	if got := e.names(t, ""); !slices.Equal(got, want) {
		t.Fatalf("left %q, want %q", got, want)
	}
}

func TestDownloadTreePrefixBleed(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, n := range bleedNames {
		e.put(t, n, []byte(n))
	}
	dir := t.TempDir()
	s, err := DownloadTree(context.Background(), e.b, "data", dir, Options{})
	if err != nil || s.Files != 2 || s.Failed != 0 {
		t.Fatalf("%+v, %v", s, err)
	}
	got := localFiles(t, dir)
	if !slices.Equal(keys(got), []string{"sub/y", "x"}) || string(got["sub/y"]) != "data/sub/y" {
		t.Fatalf("downloaded %q", keys(got))
	}
}

// hostileNames are object names that must never be written outside the target directory.
var hostileNames = []string{
	"../../etc/passwd",
	"/abs",
	"a/../../x",
	"nul\x00byte",
	strings.Repeat("s", 300),
	"deep/" + strings.Repeat("s", 256) + "/f",
	"a//b",
	".",
	"./dot",
	"..",
	"dir/..",
}

func TestDownloadTreeHostileNames(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	// The emulator stores some of these names but not all; the rest are injected into listings
	// (and reads of them would fail, which is fine: they must never be read).
	fb := &faultBucket{Bucket: e.b}
	var stored []string
	for _, n := range hostileNames {
		if err := e.emu.PutObject(testBucket, "t/"+n, []byte("bad"), ""); err == nil {
			stored = append(stored, n)
			continue
		}
		fb.extra = append(fb.extra, store.Attrs{Name: "t/" + n, Size: 3, Generation: 1})
	}
	t.Logf("stored in the emulator: %q; the rest injected into listings", stored)
	e.put(t, "t/ok.txt", []byte("ok"))
	e.put(t, "t/clash", []byte("file")) // object "clash" and prefix "clash/"
	e.put(t, "t/clash/inside", []byte("inside"))

	sandbox := t.TempDir()
	target := filepath.Join(sandbox, "one", "two", "target")
	s, err := DownloadTree(ctx, fb, "t", target, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Files != 2 || s.Failed != len(hostileNames)+1 {
		t.Fatalf("summary %+v", s)
	}
	for _, f := range s.Failures {
		t.Logf("%q: %v", f.Name, f.Err)
		if !errors.Is(f.Err, connspec.ErrUnsafeName) && !strings.Contains(f.Err.Error(), "clashes") {
			t.Errorf("failure %q: %v", f.Name, f.Err)
		}
		if !strings.HasPrefix(f.Err.Error(), "refused: ") {
			t.Errorf("failure %q does not say it was refused: %v", f.Name, f.Err)
		}
	}
	all := localFiles(t, sandbox)
	want := []string{"one/two/target/clash/inside", "one/two/target/ok.txt"}
	if !slices.Equal(keys(all), want) {
		t.Fatalf("files in the sandbox: %q, want %q", keys(all), want)
	}
}

func TestDownloadTreeSymlinkEscape(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.put(t, "t/link/x", []byte("x"))
	e.put(t, "t/ok", []byte("ok"))
	sandbox := t.TempDir()
	target, outside := filepath.Join(sandbox, "target"), filepath.Join(sandbox, "outside")
	os.MkdirAll(target, 0o755)
	os.MkdirAll(outside, 0o755)
	if err := os.Symlink(outside, filepath.Join(target, "link")); err != nil {
		t.Fatal(err)
	}
	s, err := DownloadTree(context.Background(), e.b, "t", target, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Files != 1 || s.Failed != 1 || s.Failures[0].Name != "t/link/x" {
		t.Fatalf("summary %+v", s)
	}
	if files := localFiles(t, outside); len(files) != 0 {
		t.Fatalf("written through the symlink: %q", keys(files))
	}
}

func TestDownloadTreeExisting(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	e.put(t, "r/same", []byte("same"))
	e.put(t, "r/diff", []byte("remote"))
	e.put(t, "r/new", []byte("new"))
	for _, tc := range []struct {
		name                   string
		opts                   Options
		files, skipped, failed int
		wantDiff               string
	}{
		{"default", Options{}, 1, 1, 1, "local!"},
		{"skip-unchanged", Options{SkipUnchanged: true}, 2, 1, 0, "remote"},
		{"force", Options{Force: true}, 3, 0, 0, "remote"},
		{"dry run", Options{DryRun: true, SkipUnchanged: true}, 2, 1, 0, "local!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "same"), []byte("same"), 0o644)
			os.WriteFile(filepath.Join(dir, "diff"), []byte("local!"), 0o644)
			s, err := DownloadTree(ctx, e.b, "r", dir, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if s.Files != int64(tc.files) || s.Skipped != tc.skipped || s.Failed != tc.failed {
				t.Fatalf("summary %+v", s)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "diff")); string(got) != tc.wantDiff {
				t.Fatalf("diff holds %q, want %q", got, tc.wantDiff)
			}
			if tc.failed > 0 && !strings.Contains(s.Failures[0].Err.Error(), "--skip-unchanged or --force") {
				t.Fatalf("failure does not say what to do: %v", s.Failures[0].Err)
			}
			_, statErr := os.Stat(filepath.Join(dir, "new"))
			if tc.opts.DryRun != errors.Is(statErr, os.ErrNotExist) {
				t.Fatalf("dry run %v, new file stat: %v", tc.opts.DryRun, statErr)
			}
		})
	}
	// Re-running a complete download skips everything.
	dir := t.TempDir()
	if _, err := DownloadTree(ctx, e.b, "r", dir, Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := DownloadTree(ctx, e.b, "r", dir, Options{})
	if err != nil || s.Skipped != 3 || s.Files != 0 || s.Failed != 0 {
		t.Fatalf("re-run: %+v, %v", s, err)
	}
}

func TestDownloadTreeFilters(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	e.put(t, "r/a.txt", []byte("a"))
	e.put(t, "r/logs/b.log", []byte("b"))
	e.put(t, "r/c.log", []byte("c"))
	e.put(t, "r/empty/", nil) // placeholder: an empty directory
	dir := t.TempDir()
	e.put(t, "r/cache/deep/x.txt", []byte("x")) // excluded through its directory
	s, err := DownloadTree(ctx, e.b, "r", dir, Options{Exclude: []string{"*.log", "cache"}})
	if err != nil || s.Files != 1 {
		t.Fatalf("%+v %v", s, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "empty")); err != nil || !fi.IsDir() {
		t.Fatalf("placeholder not made a directory: %v", err)
	}
	if got := keys(localFiles(t, dir)); !slices.Equal(got, []string{"a.txt"}) {
		t.Fatalf("got %q", got)
	}
	s, err = DownloadTree(ctx, e.b, "r", t.TempDir(), Options{Since: time.Now().Add(time.Hour)})
	if err != nil || s.Files != 0 {
		t.Fatalf("since the future: %+v %v", s, err)
	}
}

func TestUploadTree(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	src := t.TempDir()
	files := map[string][]byte{
		"a.txt":             []byte("a"),
		"empty":             nil,
		"nested/deep/b.bin": randBytes(1, 1<<20+5), // stat-first size
		"ünïcødé/名前.txt":    []byte("unicode"),
		"skip.log":          []byte("excluded"),
		"composed/big.bin":  randBytes(2, 3<<20),
	}
	for rel, data := range files {
		p := filepath.Join(src, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(filepath.Join(src, "nested"), filepath.Join(src, "dirlink")) // not followed
	os.Symlink(filepath.Join(src, "a.txt"), filepath.Join(src, "filelink")) // followed
	opts := composeOpts()
	opts.Exclude = []string{"*.log"}
	s, err := UploadTree(ctx, e.b, src, "dst/run1", opts)
	if err != nil || s.Failed != 0 || s.Files != 6 || s.Skipped != 1 {
		t.Fatalf("%+v %v", s, err)
	}
	for rel, data := range files {
		if rel == "skip.log" {
			continue
		}
		if got := e.content(t, "dst/run1/"+rel); !bytes.Equal(got, data) {
			t.Fatalf("%s differs", rel)
		}
	}
	if got := e.content(t, "dst/run1/filelink"); string(got) != "a" {
		t.Fatalf("filelink %q", got)
	}
	o, _ := e.emu.GetObject(testBucket, "dst/run1/a.txt")
	if o.ContentType != "text/plain; charset=utf-8" || o.Metadata[MtimeKey] == "" {
		t.Fatalf("content type %q metadata %v", o.ContentType, o.Metadata)
	}
	// Re-run: everything identical is skipped, whatever its size.
	s, err = UploadTree(ctx, e.b, src, "dst/run1", opts)
	if err != nil || s.Failed != 0 || s.Files != 0 || s.Skipped != 7 {
		t.Fatalf("re-run %+v %v", s, err)
	}
	// A changed file is refused by default, replaced with --skip-unchanged.
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("changed"), 0o644)
	os.WriteFile(filepath.Join(src, "nested/deep/b.bin"), randBytes(3, 1<<20+5), 0o644)
	s, _ = UploadTree(ctx, e.b, src, "dst/run1", opts)
	if s.Failed != 3 || s.Files != 0 { // a.txt, filelink, b.bin
		t.Fatalf("changed, default: %+v", s)
	}
	s, _ = UploadTree(ctx, e.b, src, "dst/run1", Options{SkipUnchanged: true, Exclude: []string{"*.log"}})
	if s.Failed != 0 || s.Files != 3 {
		t.Fatalf("changed, skip-unchanged: %+v", s)
	}
	if got := e.content(t, "dst/run1/a.txt"); string(got) != "changed" {
		t.Fatalf("a.txt %q", got)
	}
	// Round trip back.
	back := t.TempDir()
	s, err = DownloadTree(ctx, e.b, "dst/run1", back, Options{})
	if err != nil || s.Failed != 0 {
		t.Fatalf("%+v %v", s, err)
	}
	want := localFiles(t, src)
	delete(want, "skip.log")
	want["filelink"] = want["a.txt"] // the symlink was followed on upload
	got := localFiles(t, back)
	if !slices.Equal(keys(got), keys(want)) {
		t.Fatalf("round trip: %q, want %q", keys(got), keys(want))
	}
	for k := range want {
		if !bytes.Equal(got[k], want[k]) {
			t.Fatalf("%s differs after the round trip", k)
		}
	}
	fi, _ := os.Stat(filepath.Join(src, "a.txt"))
	fb, _ := os.Stat(filepath.Join(back, "a.txt"))
	if fi.ModTime().Unix() != fb.ModTime().Unix() {
		t.Fatalf("mtime not kept: %v vs %v", fi.ModTime(), fb.ModTime())
	}
}

func TestUploadTreeSince(t *testing.T) {
	e := newEnv(t, envOpts{})
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "old"), []byte("o"), 0o644)
	os.WriteFile(filepath.Join(src, "new"), []byte("n"), 0o644)
	past := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Join(src, "old"), past, past)
	s, err := UploadTree(context.Background(), e.b, src, "", Options{Since: time.Now().Add(-time.Hour)})
	if err != nil || s.Files != 1 {
		t.Fatalf("%+v %v", s, err)
	}
	if got := e.names(t, ""); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("uploaded %q", got)
	}
}

// TestTreeKeepsPOSIXAttrs: upload records each file's mode, owner and mtime in the keys of
// gsutil cp -P (mtime and mode in gsutil's formats), and download gives them back.
func TestTreeKeepsPOSIXAttrs(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	src := t.TempDir()
	when := time.Date(2019, 1, 2, 3, 4, 5, 600, time.UTC)
	files := map[string]os.FileMode{"ro.txt": 0o444, "x/run.sh": 0o750, "secret": 0o600}
	for rel, mode := range files {
		p := filepath.Join(src, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(rel), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, 1234, 5678); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := UploadTree(ctx, e.b, src, "up", Options{}); err != nil || s.Failed != 0 {
		t.Fatalf("upload: %+v %v", s, err)
	}
	a, err := e.b.Stat(ctx, "up/x/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	if md := a.Metadata; md["goog-reserved-posix-mode"] != "750" || md["goog-reserved-file-mtime"] != "1546398245" ||
		md["goog-reserved-posix-uid"] != "1234" || md["goog-reserved-posix-gid"] != "5678" {
		t.Fatalf("metadata of an uploaded file: %v", md)
	}
	dst := t.TempDir()
	if s, err := DownloadTree(ctx, e.b, "up", dst, Options{}); err != nil || s.Failed != 0 {
		t.Fatalf("download: %+v %v", s, err)
	}
	for rel, mode := range files {
		fi, err := os.Stat(filepath.Join(dst, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != mode || !fi.ModTime().Equal(when) || st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("%s: mode %v mtime %v owner %d:%d, want %v %v 1234:5678", rel, fi.Mode(), fi.ModTime(), st.Uid, st.Gid, mode, when)
		}
	}
}
