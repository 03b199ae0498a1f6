package integration

// Hostile object names against every command that writes local files (download, download -r,
// init) and against the mount's listings and lookups: nothing may land outside the target,
// follow a symlink out of it, or show up in the mount under a name that is not a plain file
// name.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/internal/emulator"
)

// hostileNames are object names (relative to the directory "t" of connection "ds") with a
// segment that cannot be a file name: they try to escape (".."), are absolute, or hold an
// empty, ".", NUL or over-long segment. No command may write them, and the mount must hide
// them.
var hostileNames = []string{
	"../../etc/passwd",
	"../../../../../../../../etc/passwd",
	"/abs",
	"//abs2",
	"a/../../x",
	"b/../../../y",
	"..",
	".",
	"./dot",
	"c/./d",
	"e//f",
	"g/..",
	"nul\x00byte",
	"nul/\x00/seg",
	strings.Repeat("L", 300),
	".plxfs-tmp/part-00001", // reserved for temporary upload parts
}

// oddNames are names made of valid segments that are still unusual: over GCS's 1,024-byte
// limit, not UTF-8, with a newline, or through "link", which is a symlink out of the target in
// the download and init tests. They may be written, but only inside the target and never
// through a symlink.
var oddNames = []string{
	strings.Repeat("d/", 520) + "deep",
	"bad\xff\xfeutf8",
	"dir\xc0/file",
	"new\nline",
	"link/pwned",
	"renamed/link/pwned",
}

// safeObjects are ordinary names next to them: they must come through intact.
var safeObjects = map[string]string{
	"ok":                 "ok data",
	"sub/ok2":            "ok2 data",
	`..\..\backslash`:    "a backslash is an ordinary character on Linux",
	"unicode-été-日本.txt": "unicode",
}

// hostileSetup starts an emulator holding the hostile and safe names under pre/t/, plus
// objects outside the connection's prefix that must never appear.
func hostileSetup(t *testing.T) *emulator.Server {
	t.Helper()
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}})
	for _, n := range append(slices.Clone(hostileNames), oddNames...) {
		if err := srv.PutObject(relBucket, "pre/t/"+n, []byte("hostile "+n), ""); err != nil {
			t.Fatalf("emulator refused %q: %v", n, err)
		}
	}
	for n, data := range safeObjects {
		if err := srv.PutObject(relBucket, "pre/t/"+n, []byte(data), ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"pre/t2/bleed", "pre/tt", "other/secret", "etc/passwd"} {
		if err := srv.PutObject(relBucket, n, []byte("outside"), ""); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

// snapshot records every path under root (Lstat: type, size, content hash of small files).
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			desc += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// onlyUnder fails the test if anything in the sandbox changed outside the allowed
// directories, and returns the paths that appeared inside them.
func onlyUnder(t *testing.T, what string, before, after map[string]string, allowed ...string) []string {
	t.Helper()
	inside := func(p string) bool {
		for _, a := range allowed {
			if p == a || strings.HasPrefix(p, a+string(filepath.Separator)) {
				return true
			}
		}
		return false
	}
	var added []string
	for p, desc := range after {
		if before[p] == desc {
			continue
		}
		if !inside(p) {
			t.Errorf("%s: %s was written outside the target (%s)", what, p, desc)
			continue
		}
		added = append(added, p)
	}
	for p := range before {
		if _, ok := after[p]; !ok && !inside(p) {
			t.Errorf("%s: %s disappeared outside the target", what, p)
		}
	}
	slices.Sort(added)
	return added
}

// hostSentinels are host files a hostile name aims at: they must not change or appear.
func hostSentinels(t *testing.T) func() {
	t.Helper()
	passwd, _ := os.ReadFile("/etc/passwd")
	abs := []string{"/abs", "/abs2", "/x", "/y"}
	for _, p := range abs {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists before the test; cannot check that nothing creates it", p)
		}
	}
	return func() {
		t.Helper()
		if now, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(now, passwd) {
			t.Errorf("/etc/passwd CHANGED")
		}
		for _, p := range abs {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s was created on the host", p)
				os.RemoveAll(p)
			}
		}
	}
}

// noPanic fails if a command's output shows a Go panic or runtime crash.
func noPanic(t *testing.T, what string, res result) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine 1 [", "fatal error:", "SIGSEGV"} {
		if strings.Contains(res.Stderr, s) || strings.Contains(res.Stdout, s) {
			t.Fatalf("%s crashed (exit %d):\n%s", what, res.Code, res.Stderr)
		}
	}
	if res.Code < 0 || res.Code > 2 {
		t.Errorf("%s: exit code %d, want 0, 1 or 2 (usage error)\nstderr:\n%s", what, res.Code, res.Stderr)
	}
	if res.Code != 0 && !strings.HasPrefix(res.Stderr, "plxfs: ") && !strings.Contains(res.Stderr, "\nplxfs: ") {
		t.Errorf("%s: exit %d without a \"plxfs: ...\" error line:\n%s", what, res.Code, res.Stderr)
	}
}

// sandbox makes a directory tree whose target sits 10 levels deep, so that every relative
// escape of the hostile names lands inside the sandbox where it can be seen; it also holds a
// symlink "link" in the target that points out of it, and a file there that must not change.
func sandbox(t *testing.T) (root, target, outside string) {
	t.Helper()
	root = t.TempDir()
	target = filepath.Join(root, "1", "2", "3", "4", "5", "6", "7", "8", "9", "target")
	outside = filepath.Join(root, "outside")
	for _, d := range []string{target, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Symlinks out of the target where object paths would go: link, t/link (downloads of the
	// whole connection and init keep the "t" directory) and renamed/link (init --dirs t:renamed).
	for _, l := range []string{"link", "t/link", "renamed/link"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(target, l)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(target, l)); err != nil {
			t.Fatal(err)
		}
	}
	return root, target, outside
}

// checkSafeFiles checks that the safe objects arrived under dir with their content.
func checkSafeFiles(t *testing.T, what, dir string) {
	t.Helper()
	for n, data := range safeObjects {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil || string(got) != data {
			t.Errorf("%s: %s: %q, %v; want %q", what, n, got, err, data)
		}
	}
}

// checkNamesSafe checks that every path under dir (relative) is made of plain file names.
func checkNamesSafe(t *testing.T, what, dir string, paths []string) {
	t.Helper()
	for _, p := range paths {
		rel, err := filepath.Rel(dir, p)
		if err != nil || !filepath.IsLocal(rel) {
			if p != dir {
				t.Errorf("%s: %s is not inside %s", what, p, dir)
			}
			continue
		}
		if _, err := connspec.PathToName(rel); err != nil {
			t.Errorf("%s: %q is not a plain relative path: %v", what, rel, err)
		}
	}
}

func TestHostileDownload(t *testing.T) {
	srv := hostileSetup(t)
	common := []string{"--config", relConns(t), "--endpoint", srv.URL()}
	checkHost := hostSentinels(t)
	defer checkHost()

	t.Run("download -r", func(t *testing.T) {
		for _, remote := range []string{"ds:t", "gs://" + relBucket + "/pre/t", "ds:t/", "ds:"} {
			root, target, _ := sandbox(t)
			before := snapshot(t, root)
			res := runPlxfs(t, nil, append([]string{"download"}, append(common, "-r", "--no-basename", remote, target)...)...)
			noPanic(t, "download -r "+remote, res)
			if res.Code != 1 {
				t.Errorf("download -r %s: exit %d, want 1 (the hostile names are refused)\n%s", remote, res.Code, res.Stderr)
			}
			added := onlyUnder(t, "download -r "+remote, before, snapshot(t, root), target)
			checkNamesSafe(t, "download -r "+remote, target, added)
			dir := target
			if remote == "ds:" {
				dir = filepath.Join(target, "t")
				for _, p := range added {
					if strings.Contains(p, "secret") || strings.Contains(p, "passwd") {
						t.Errorf("download -r ds: wrote %s: an object outside the connection, or a hostile name", p)
					}
				}
			}
			checkSafeFiles(t, "download -r "+remote, dir)
			t.Logf("download -r %s: wrote %d paths inside the target, stderr %d lines", remote, len(added), strings.Count(res.Stderr, "\n"))
		}
	})

	t.Run("download of one object", func(t *testing.T) {
		for _, n := range append(append(slices.Clone(hostileNames), oddNames...), "t/../t/ok", "../pre/t/ok") {
			if strings.ContainsRune(n, 0) {
				continue // a NUL cannot be passed in argv
			}
			for _, remote := range []string{"ds:t/" + n, "gs://" + relBucket + "/pre/t/" + n} {
				root, target, _ := sandbox(t)
				before := snapshot(t, root)
				res := runPlxfs(t, nil, append([]string{"download"}, append(common, remote, target)...)...)
				what := fmt.Sprintf("download %q", remote)
				noPanic(t, what, res)
				added := onlyUnder(t, what, before, snapshot(t, root), target)
				checkNamesSafe(t, what, target, added)
				if res.Code == 0 && len(added) == 0 {
					t.Errorf("%s: exit 0 but nothing was written", what)
				}
				if bytes.ContainsRune([]byte(res.Stderr), 0) {
					t.Errorf("%s: a NUL byte reached the terminal: %q", what, res.Stderr)
				}
			}
		}
	})
}

func TestHostileInit(t *testing.T) {
	srv := hostileSetup(t)
	common := []string{"--config", relConns(t), "--endpoint", srv.URL()}
	checkHost := hostSentinels(t)
	defer checkHost()
	cases := []struct {
		name string
		args []string
		// viaUserSymlink: the TO path the user wrote passes through a symlink that already
		// exists in the destination: init refuses it (exit 1) and writes nothing outside.
		viaUserSymlink bool
	}{
		{"whole connection", nil, false},
		{"--dirs t", []string{"--dirs", "t"}, false},
		{"--dirs t:renamed", []string{"--dirs", "t:renamed"}, false},
		{"--dirs ../..", []string{"--dirs", "../.."}, false},
		{"--dirs t/..", []string{"--dirs", "t/.."}, false},
		{"--dirs /", []string{"--dirs", "/"}, false},
		{"--files escaping", []string{"--files", "t/../../etc/passwd"}, false},
		{"--files hostile object", []string{"--files", "t/../../etc/passwd:../../../../x"}, false},
		{"--files absolute target", []string{"--files", "t/ok:/abs"}, false},
		{"--files into the symlink", []string{"--files", "t/ok:link/pwned2"}, true},
		{"--dirs into the symlink", []string{"--dirs", "t/sub:link"}, true},
		{"--dirs onto the destination", []string{"--dirs", "t:."}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, target, _ := sandbox(t)
			before := snapshot(t, root)
			args := append([]string{"init"}, common...)
			args = append(args, "--connection", "ds", "--path", target)
			res := runPlxfs(t, nil, append(args, tc.args...)...)
			noPanic(t, "init "+tc.name, res)
			after := snapshot(t, root)
			if tc.viaUserSymlink && (res.Code != 1 || !strings.Contains(res.Stderr, "symbolic link")) {
				t.Errorf("init %s: exit %d, stderr %q: want 1 and a refusal naming the symbolic link", tc.name, res.Code, res.Stderr)
			}
			added := onlyUnder(t, "init "+tc.name, before, after, target)
			checkNamesSafe(t, "init "+tc.name, target, added)
			switch tc.name {
			case "whole connection":
				checkSafeFiles(t, "init "+tc.name, filepath.Join(target, "t"))
			case "--dirs t":
				checkSafeFiles(t, "init "+tc.name, filepath.Join(target, "t"))
			case "--dirs t:renamed":
				checkSafeFiles(t, "init "+tc.name, filepath.Join(target, "renamed"))
			}
			t.Logf("init %s: exit %d, %d paths written inside the target", tc.name, res.Code, len(added))
		})
	}
	// The default destination, ${POLYAXON_CONTEXT_ROOT}/artifacts/ds, is held to the same rule.
	t.Run("default destination", func(t *testing.T) {
		root, _, _ := sandbox(t)
		ctxRoot := filepath.Join(root, "1", "2", "3", "4", "5", "6", "7", "8", "9", "ctx")
		before := snapshot(t, root)
		res := runPlxfs(t, []string{"POLYAXON_CONTEXT_ROOT=" + ctxRoot}, append([]string{"init"}, append(common, "--connection", "ds", "--dirs", "t")...)...)
		noPanic(t, "init (default destination)", res)
		dest := filepath.Join(ctxRoot, "artifacts", "ds")
		added := onlyUnder(t, "init (default destination)", before, snapshot(t, root), ctxRoot)
		var inDest []string
		for _, p := range added {
			if strings.HasPrefix(p, dest+"/") {
				inDest = append(inDest, p)
			}
		}
		checkNamesSafe(t, "init (default destination)", dest, inDest)
		checkSafeFiles(t, "init (default destination)", filepath.Join(dest, "t"))
	})
}

// TestHostileMount mounts a connection holding the hostile names: listings show plain names
// only (and log what they hide), lookups of the hidden names fail cleanly, the safe objects
// read correctly, and the daemon writes nothing named after an object anywhere.
func TestHostileMount(t *testing.T) {
	srv := hostileSetup(t)
	checkHost := hostSentinels(t)
	defer checkHost()
	root := t.TempDir()
	mnt := filepath.Join(root, "mnt")
	cacheDir := filepath.Join(root, "cache")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t), mnt: mnt, cacheDir: cacheDir,
		flags: []string{"--chunk-size", "1MiB", "--cache-size", "16MiB"}})

	// Walk the whole connection: every name is a plain file name; the reserved directory of
	// temporary parts and the objects outside the prefix never appear.
	var seen []string
	err := filepath.WalkDir(d.path("ds"), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walking the mount: %v", err)
			return nil
		}
		rel, _ := filepath.Rel(d.path("ds"), p)
		if rel == "." {
			return nil
		}
		seen = append(seen, rel)
		name := e.Name()
		if err := connspec.SegmentOK(name); err != nil {
			t.Errorf("the mount lists %q: %v", rel, err)
		}
		if name == ".plxfs-tmp" || name == "secret" || rel == "etc" {
			t.Errorf("the mount lists %q", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var top []string
	for _, p := range seen {
		if strings.Count(p, "/") <= 1 {
			top = append(top, p)
		}
	}
	t.Logf("the mount shows %d paths; those at most two levels deep: %q", len(seen), top)
	for n, data := range safeObjects {
		got, err := os.ReadFile(d.path("ds", "t", n))
		if err != nil || string(got) != data {
			t.Errorf("%s through the mount: %q, %v", n, got, err)
		}
	}
	for _, n := range oddNames {
		if strings.HasPrefix(n, "d/") || !utf8.ValidString(n) {
			continue // over-long and non-UTF-8 names are not looked up below
		}
		if data, err := os.ReadFile(d.path("ds", "t", n)); err != nil || string(data) != "hostile "+n {
			t.Errorf("%q, made of valid file names, through the mount: %q, %v", n, data, err)
		}
	}

	// Lookups of the names the listing hid. The kernel resolves "." and ".." itself (never
	// beyond the mount's own root: the mount cannot see those lookups); every other name
	// reaches plxfs and must fail with a plain errno, never show the hostile object.
	for _, n := range hostileNames {
		if strings.ContainsRune(n, 0) {
			continue // a NUL cannot be passed to a syscall at all
		}
		p := d.path("ds", "t") + "/" + n
		if !strings.HasPrefix(filepath.Clean(p), d.path("ds", "t")) {
			continue // the kernel resolves ".." out of t before plxfs sees a name
		}
		data, err := os.ReadFile(p)
		switch errno := errnoOf(err); {
		case err == nil && bytes.HasPrefix(data, []byte("hostile ")):
			t.Errorf("the hidden object %q is readable through the mount at %s", n, filepath.Clean(p))
		case errno == syscall.EISDIR, errno == syscall.ENOENT, errno == syscall.ENAMETOOLONG:
		case err != nil:
			t.Errorf("read %q through the mount: %v (errno %d), want ENOENT, ENAMETOOLONG or EISDIR", n, err, errno)
		}
	}
	// A non-UTF-8 name can be created locally but cannot be a GCS object name: the mount must
	// refuse it when it is created, not accept the data and fail every upload later.
	bad := d.path("ds", "t", "made\xff\xfe")
	if f, err := os.Create(bad); err == nil {
		_, werr := f.Write([]byte("x"))
		cerr := f.Close()
		names, _ := srv.ObjectNames(relBucket, "pre/t/made")
		t.Errorf("creating a name that is not UTF-8 through the mount was accepted (write %v, close %v, objects %q): "+
			"GCS refuses such names, so fs must refuse them at create/mkdir/symlink/rename (EINVAL) instead of staging "+
			"data that can never be uploaded (the daemon then exits 1 at unmount)", werr, cerr, names)
		for _, n := range names {
			if !utf8.ValidString(n) {
				t.Errorf("the mount stored an object whose name is not UTF-8: %q", n)
			}
		}
		if err := os.Remove(bad); err != nil {
			t.Errorf("unlink of the refused file: %v", err)
		}
	} else if errnoOf(err) != syscall.EINVAL {
		t.Logf("creating a non-UTF-8 name: %v (EINVAL would be clearest)", err)
	}

	log := d.log()
	if !strings.Contains(log, "not a valid file name") {
		t.Errorf("the daemon did not log the names it hid (\"not a valid file name\"); log:\n%s", log)
	}
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, log)
	}
	// The daemon wrote only below its cache dir, and only files named by plxfs.
	added := onlyUnder(t, "mount", before, snapshot(t, root), cacheDir, mnt)
	for _, p := range added {
		rel, _ := filepath.Rel(cacheDir, p)
		for _, n := range append(append(slices.Clone(hostileNames), oddNames...), "ok", "ok2", "passwd") {
			base := filepath.Base(n)
			if base != "." && base != ".." && base != "/" && len(base) > 2 && strings.Contains(rel, base) {
				t.Errorf("the cache dir holds %s, named after the object %q", rel, n)
			}
		}
	}
}
